"""Top reason codes per transaction, ranked across the three layers and the user's baseline.

Every source of evidence is turned into *points* for a reason code (the table
in ``fraud_assets.features.reason_wording`` maps each feature and rule to one
code), so codes from different layers compare:

* **rules**: a fired rule gives its code the rule's risk points (40 for the
  amount spike, 60 for new device + new country, …);
* **autoencoder**: the row's per-feature squared reconstruction error (in the
  network's standardised units) minus that feature's mean error over a
  reference sample of ordinary rows; the positive excess, as shares, splits
  the row's calibrated autoencoder risk (0–100) over the features' codes;
* **Isolation Forest**: for each tree, each split on the row's path credits
  its feature with ``log2(parent samples / child samples) − 1`` — the bits by
  which that split isolated the row beyond an even halving (what a normal row
  gets); summed over trees and clipped at 0, the shares split the row's
  calibrated forest risk the same way;
* **baseline**: comparisons with the user's own 30-day history already in the
  features (amount × average, pace × usual, device / country / wallet new
  today, withdrawals just below the limit, dormancy), with points that grow
  with the ratio.

Points are summed per code; a row's device and country codes fold into the
one "new device + new country" code when both speak. The ``top_n`` codes with
at least ``min_points`` are the row's reasons, each phrased with the row's own
numbers.

Cost: the model attributions need a forward pass and a walk of every tree, so
full explanations are computed only for the rows an analyst looks at — those
not approved, plus the hour's riskiest ``explain_top_fraction`` — at most
``max_explained_rows`` (the riskiest first). Every other row gets its fired
rules and met baselines in static wording (no numbers), built once per
combination; most approved rows meet none and get an empty list.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from fraud_assets.detectors.rules import gc_paused
from fraud_assets.features.reason_wording import (
    BASELINE_WORDS,
    FEATURE_REASON,
    PHRASE_COLUMNS,
    REASON_BY_CODE,
    REASON_CODES,
    RULE_REASON,
)

CODE_INDEX = {code: k for k, code in enumerate(REASON_CODES)}
DEVICE, COUNTRY, DEVICE_COUNTRY = (CODE_INDEX[c] for c in ("device", "country", "device_country"))
REFERENCE_ROWS = 20_000
TREE_BLOCK_ROWS = 2_048  # a block's cells over 100 trees: ~2M (int64, float64)


@dataclass(frozen=True)
class ReasonConfig:
    """How many reasons, how strong, and which rows are explained in full."""

    top_n: int = 3
    min_points: float = 5.0
    explain_decisions: tuple[str, ...] = ("review", "blocked")
    explain_top_fraction: float = 0.01
    max_explained_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError("top_n must be at least 1")
        if not 0 <= self.explain_top_fraction <= 1:
            raise ValueError("explain_top_fraction must be within [0, 1]")
        if self.max_explained_rows < 0 or self.min_points < 0:
            raise ValueError("max_explained_rows and min_points must be non-negative")
        object.__setattr__(self, "explain_decisions", tuple(self.explain_decisions))


@dataclass(frozen=True)
class Explanation:
    """Ranked reason codes and their wording, one list per row."""

    codes: list[list[str]]
    texts: list[list[str]]


def explained_rows(
    decision: np.ndarray, total_risk: np.ndarray, config: ReasonConfig
) -> np.ndarray:
    """Row indices explained in full (ascending): not approved or among the riskiest."""
    risk = np.asarray(total_risk, dtype=np.float64)
    n = risk.size
    chosen = np.isin(np.asarray(decision, dtype=object), config.explain_decisions)
    top = int(math.ceil(config.explain_top_fraction * n))
    if top:
        chosen[np.argpartition(-risk, top - 1)[:top]] = True
    rows = np.flatnonzero(chosen)
    if rows.size > config.max_explained_rows:
        keep = np.argsort(-risk[rows], kind="stable")[: config.max_explained_rows]
        rows = np.sort(rows[keep])
    return rows


# ---------------------------------------------------------------- model attributions


def autoencoder_excess_error(
    autoencoder: Any, x: np.ndarray, reference: np.ndarray | None = None
) -> np.ndarray:
    """Per-feature squared reconstruction error above the reference rows' mean (>= 0).

    ``x`` and ``reference`` are the scaled model input (the scaler's output).
    Without a reference the rows themselves are it.
    """
    errors = _feature_errors(autoencoder, x)
    base = errors if reference is None else _feature_errors(autoencoder, reference)
    mean = base.mean(axis=0) if base.shape[0] else np.zeros(errors.shape[1], np.float32)
    return np.maximum(errors - mean, 0.0)


def _feature_errors(autoencoder: Any, x: np.ndarray) -> np.ndarray:
    z = autoencoder.standardized(x)
    return np.square(autoencoder.reconstruct(x) - z)


def isolation_credit(forest: Any, x: np.ndarray) -> np.ndarray:
    """Per-feature isolation bits beyond an even halving, summed over trees (>= 0).

    ``forest`` is an ``IsolationForestDetector`` (or scikit-learn's
    ``IsolationForest``); ``x`` the scaled model input.
    """
    model = getattr(forest, "model_", forest)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, n_features = x.shape
    credit = np.zeros((n, n_features), dtype=np.float64)
    # As scikit-learn scores: trees fitted on every feature read the input as it is (their
    # estimators_features_ is then a permutation they never used), others their subset.
    subset = getattr(model, "_max_features", n_features) != n_features
    trees = []
    for tree, features in zip(model.estimators_, model.estimators_features_, strict=True):
        columns = np.asarray(features) if subset else np.arange(n_features)
        trees.append((tree, columns if subset else None, *_tree_credit(tree, columns)))
    for begin in range(0, n, TREE_BLOCK_ROWS):
        block = x[begin : begin + TREE_BLOCK_ROWS]
        rows = block.shape[0]
        cells, weights = [], []
        for tree, columns, node_feature, node_credit in trees:
            inputs = block if columns is None else np.ascontiguousarray(block[:, columns])
            path = tree.decision_path(inputs, check_input=False)
            row = np.repeat(np.arange(rows, dtype=np.int64), np.diff(path.indptr))
            cells.append(row * n_features + node_feature[path.indices])
            weights.append(node_credit[path.indices])
        # One sum per block over every tree's (row, feature) cells.
        credit[begin : begin + rows] = np.bincount(
            np.concatenate(cells), weights=np.concatenate(weights), minlength=rows * n_features
        ).reshape(rows, n_features)
    return np.maximum(credit, 0.0)


# Per tree (weakly held: a replaced model's trees go with it): node features and credits.
_TREE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tree_credit(tree: Any, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node: the feature its parent split on (model column) and the credit of reaching it."""
    cached = _TREE_CACHE.get(tree)
    if cached is not None:
        return cached
    t = tree.tree_
    parent = np.zeros(t.node_count, dtype=np.int64)
    internal = np.flatnonzero(t.children_left >= 0)
    parent[t.children_left[internal]] = internal
    parent[t.children_right[internal]] = internal
    samples = t.n_node_samples.astype(np.float64)
    node_credit = np.log2(samples[parent] / samples) - 1.0
    node_credit[0] = 0.0  # the root: no split leads to it
    node_feature = columns[np.maximum(t.feature[parent], 0)].astype(np.int64)
    node_feature[0] = 0
    _TREE_CACHE[tree] = (node_feature, node_credit)
    return node_feature, node_credit


# ---------------------------------------------------------------- points per code


def feature_code_matrix(feature_columns: Sequence[str]) -> np.ndarray:
    """(features, codes) 0/1: the code each model input feature counts for."""
    unknown = [c for c in feature_columns if c not in FEATURE_REASON]
    if unknown:
        raise KeyError(f"features without a reason code in reason_wording: {unknown}")
    matrix = np.zeros((len(feature_columns), len(REASON_CODES)))
    for j, column in enumerate(feature_columns):
        matrix[j, CODE_INDEX[FEATURE_REASON[column]]] = 1.0
    return matrix


def layer_points(per_feature: np.ndarray, risk: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A layer's 0–100 risk split over codes by the features' shares of its evidence."""
    evidence = np.maximum(np.asarray(per_feature, dtype=np.float64), 0.0)
    total = evidence.sum(axis=1, keepdims=True)
    shares = np.divide(evidence, total, out=np.zeros_like(evidence), where=total > 0)
    risk = np.nan_to_num(np.asarray(risk, dtype=np.float64), nan=0.0)
    return (shares * risk[:, None]) @ codes


def rule_points(fired: np.ndarray, names: Sequence[str], points: Mapping[str, float]) -> np.ndarray:
    """(rows, codes): each fired rule's risk points on its code."""
    weights = np.zeros((len(names), len(REASON_CODES)))
    for j, name in enumerate(names):
        weights[j, CODE_INDEX[RULE_REASON[name]]] = float(points.get(name, 0.0))
    return np.asarray(fired, dtype=np.float64) @ weights


def _log_ratio(ratio: np.ndarray, floor: float, scale: float, cap: float) -> np.ndarray:
    """``scale·log2(ratio)`` (capped) from ``floor`` up, else 0."""
    return np.where(ratio >= floor, np.minimum(scale * np.log2(np.maximum(ratio, 1.0)), cap), 0.0)


def _steps(count: np.ndarray, floor: float, scale: float, cap: float) -> np.ndarray:
    """``scale`` points per step from ``floor − 1`` (capped) from ``floor`` up, else 0."""
    return np.where(count >= floor, np.minimum(scale * (count - floor + 1), cap), 0.0)


def _new_today(v: Mapping[str, np.ndarray], column: str) -> np.ndarray:
    """New today for a user who was active before today (a new account is new everywhere)."""
    return 15.0 * ((v[column] > 0.5) & (v["log_user_tx_count_before_24h"] > 0))


def _dormant(v: Mapping[str, np.ndarray]) -> np.ndarray:
    cash_out = (v["type_withdraw"] > 0.5) | (v["type_sell"] > 0.5)
    old = v["log_user_account_age_days"] >= np.log1p(90.0)
    return 30.0 * ((v["log_user_tx_count_before_24h"] == 0) & old & cash_out)


@dataclass(frozen=True)
class Baseline:
    """A comparison with the user's own history: its code, the feature columns it reads, its
    points per row (0: not met) and its points where it is just met (how the rule-and-baseline
    wording ranks it)."""

    name: str
    code: str
    columns: tuple[str, ...]
    points: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    nominal: float


_ACTIVE_BEFORE = "log_user_tx_count_before_24h"
BASELINES: tuple[Baseline, ...] = (
    Baseline(
        "amount_vs_average",
        "amount",
        ("user_tx_count_30d", "amount_to_user_avg"),
        lambda v: np.where(
            v["user_tx_count_30d"] >= 1, _log_ratio(v["amount_to_user_avg"], 3.0, 15.0, 60.0), 0.0
        ),
        15.0 * math.log2(3.0),
    ),
    Baseline(
        "burst_5min",
        "velocity",
        ("tx_count_5m",),
        lambda v: _steps(v["tx_count_5m"], 3, 10.0, 40.0),
        10.0,
    ),
    Baseline(
        "pace_vs_usual",
        "velocity",
        ("velocity_1h_vs_30d",),
        lambda v: _log_ratio(v["velocity_1h_vs_30d"], 5.0, 15.0, 50.0),
        15.0 * math.log2(5.0),
    ),
    Baseline(
        "withdrawals_24h",
        "withdrawals",
        ("withdraw_count_24h",),
        lambda v: _steps(v["withdraw_count_24h"], 5, 8.0, 40.0),
        8.0,
    ),
    Baseline(
        "device_new_today",
        "device",
        ("is_recent_device_for_user", _ACTIVE_BEFORE),
        lambda v: _new_today(v, "is_recent_device_for_user"),
        15.0,
    ),
    Baseline(
        "country_new_today",
        "country",
        ("is_recent_country_for_user", _ACTIVE_BEFORE),
        lambda v: _new_today(v, "is_recent_country_for_user"),
        15.0,
    ),
    Baseline(
        "wallet_new_today",
        "new_wallet",
        ("type_withdraw", "is_recent_wallet_for_user"),
        lambda v: 10.0 * ((v["type_withdraw"] > 0.5) & (v["is_recent_wallet_for_user"] > 0.5)),
        10.0,
    ),
    Baseline(
        "near_limit_withdrawals",
        "structuring",
        ("near_limit_withdrawals_24h",),
        lambda v: _steps(v["near_limit_withdrawals_24h"], 2, 20.0, 60.0),
        20.0,
    ),
    Baseline(
        "dormant_cash_out",
        "dormant",
        ("type_withdraw", "type_sell", "log_user_account_age_days", _ACTIVE_BEFORE),
        _dormant,
        30.0,
    ),
    Baseline(
        "fast_travel",
        "travel",
        ("country_changed", "geo_velocity_kmh"),
        lambda v: 30.0 * ((v["country_changed"] > 0.5) & (v["geo_velocity_kmh"] > 900.0)),
        30.0,
    ),
)
BASELINE_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for b in BASELINES for c in b.columns))


def _floats(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The baseline columns ``values`` holds, as float64 (an absent column is left out)."""
    return {
        name: np.asarray(values[name], dtype=np.float64)
        for name in BASELINE_COLUMNS
        if name in values
    }


def _usable(v: Mapping[str, np.ndarray]) -> list[tuple[int, Baseline]]:
    """The baselines whose columns are all present: a frame without a column (features an
    older pipeline did not compute) simply lacks that comparison."""
    return [(j, b) for j, b in enumerate(BASELINES) if all(c in v for c in b.columns)]


def baseline_points(values: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
    """(rows, codes): comparisons with the user's own history, stronger the further off."""
    v = _floats(values)
    points = np.zeros((rows, len(REASON_CODES)))
    for _, baseline in _usable(v):
        points[:, CODE_INDEX[baseline.code]] += baseline.points(v)
    return points


def baseline_bits(values: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
    """One integer per row: bit ``j`` set when ``BASELINES[j]`` is met."""
    v = _floats(values)
    bits = np.zeros(rows, dtype=np.int64)
    for j, baseline in _usable(v):
        bits |= (baseline.points(v) > 0).astype(np.int64) << j
    return bits


def fold_device_country(points: np.ndarray, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Device and country evidence becomes the one "new device + new country" code when the
    takeover rule fired, or when both speak and both are new today (unknown without the
    novelty columns: then only the rule folds them)."""
    points = points.copy()
    if {"is_recent_device_for_user", "is_recent_country_for_user"} <= set(values):
        new = (np.asarray(values["is_recent_device_for_user"]) > 0.5) & (
            np.asarray(values["is_recent_country_for_user"]) > 0.5
        )
    else:
        new = np.zeros(points.shape[0], dtype=bool)
    speak = (points[:, DEVICE] > 0) & (points[:, COUNTRY] > 0)
    both = (speak & new) | (points[:, DEVICE_COUNTRY] > 0)
    points[both, DEVICE_COUNTRY] += points[both, DEVICE] + points[both, COUNTRY]
    points[both, DEVICE] = 0.0
    points[both, COUNTRY] = 0.0
    return points


def rank(points: np.ndarray, top_n: int, min_points: float) -> list[list[int]]:
    """The strongest ``top_n`` code indices per row with at least ``min_points`` (ties: table order)."""
    if points.shape[0] == 0:
        return []
    order = np.argsort(-points, axis=1, kind="stable")[:, :top_n]
    strong = np.take_along_axis(points, order, axis=1) >= max(min_points, 1e-9)
    # Sorted strongest first, so a row's strong codes are a prefix of its order.
    kept = strong.sum(axis=1).tolist()
    return [row[:k] for row, k in zip(order.tolist(), kept, strict=True)]


# ---------------------------------------------------------------- wording


class _Row(Mapping[str, float]):
    """One row's raw feature values, read from columns converted to Python lists once."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: Mapping[str, list], i: int) -> None:
        self._columns, self._i = columns, i

    def __getitem__(self, name: str) -> float:
        return self._columns[name][self._i]

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def phrase_rows(ranked: list[list[int]], values: Mapping[str, np.ndarray]) -> Explanation:
    """Codes and the wording with each row's own numbers (the static wording where a phrase
    needs a column ``values`` lacks)."""
    columns = {
        name: np.asarray(column, dtype=np.float64).tolist() for name, column in values.items()
    }
    reasons = [REASON_BY_CODE[code] for code in REASON_CODES]
    codes, texts = [], []
    with gc_paused():
        for i, row_codes in enumerate(ranked):
            row = _Row(columns, i)
            codes.append([REASON_CODES[k] for k in row_codes])
            texts.append([_phrase(reasons[k], row) for k in row_codes])
    return Explanation(codes, texts)


_PHRASE_COLUMNS = frozenset(PHRASE_COLUMNS)


def _phrase(reason: Any, row: _Row) -> str:
    try:
        return reason.phrase(row)
    except KeyError as exc:  # a feature this frame does not hold: the words without numbers
        if exc.args and exc.args[0] in _PHRASE_COLUMNS:
            return reason.static
        raise


def explain(
    values: Mapping[str, np.ndarray],
    fired: np.ndarray,
    rule_names: Sequence[str],
    rule_risk_points: Mapping[str, float],
    *,
    feature_columns: Sequence[str] = (),
    ae_excess: np.ndarray | None = None,
    ae_risk: np.ndarray | None = None,
    iso_credit: np.ndarray | None = None,
    iso_risk: np.ndarray | None = None,
    config: ReasonConfig | None = None,
) -> Explanation:
    """Full reasons for some rows: every argument holds those rows only, in one order.

    ``values`` maps each feature to its raw values; ``fired`` is the rules'
    (rows, rules) matrix; ``ae_excess`` / ``iso_credit`` are (rows, features)
    in ``feature_columns`` order (None leaves that layer out).
    """
    config = config or ReasonConfig()
    fired = np.asarray(fired)
    points = rule_points(fired, rule_names, rule_risk_points) + baseline_points(
        values, fired.shape[0]
    )
    if ae_excess is not None or iso_credit is not None:
        codes = feature_code_matrix(feature_columns)
        if ae_excess is not None:
            points += layer_points(ae_excess, ae_risk, codes)
        if iso_credit is not None:
            points += layer_points(iso_credit, iso_risk, codes)
    ranked = rank(fold_device_country(points, values), config.top_n, config.min_points)
    return phrase_rows(ranked, values)


def static_reasons(
    rule_names: Sequence[str],
    baselines: Sequence[str],
    points: Mapping[str, float],
    config: ReasonConfig,
) -> tuple[list[str], list[str]]:
    """Codes and wording without numbers for fired rules and met baselines, strongest first.

    A code's points are its rules' risk points plus its baselines' nominal points;
    its words are those of its strongest contributor.
    """
    per_code: dict[str, float] = {}
    words: dict[str, tuple[float, str]] = {}

    def add(code: str, p: float, text: str) -> None:
        per_code[code] = per_code.get(code, 0.0) + p
        if p > words.get(code, (-1.0, ""))[0]:
            words[code] = (p, text)

    for name in rule_names:
        code = RULE_REASON[name]
        add(code, float(points.get(name, 0.0)), REASON_BY_CODE[code].static)
    nominal = {b.name: b for b in BASELINES}
    for name in baselines:
        add(nominal[name].code, nominal[name].nominal, BASELINE_WORDS[name])
    if "device_country" in per_code or {"device", "country"} <= set(per_code):
        together = sum(per_code.pop(c, 0.0) for c in ("device", "country", "device_country"))
        per_code["device_country"] = together
        words["device_country"] = (together, REASON_BY_CODE["device_country"].static)
    ranked = sorted(per_code.items(), key=lambda item: (-item[1], CODE_INDEX[item[0]]))
    kept = [code for code, p in ranked if p >= max(config.min_points, 1e-9)][: config.top_n]
    return kept, [words[code][1] for code in kept]


def rule_reasons(
    names: Sequence[str], points: Mapping[str, float], config: ReasonConfig
) -> tuple[list[str], list[str]]:
    """Codes and static wording for one combination of fired rules, strongest first."""
    return static_reasons(names, (), points, config)


# ---------------------------------------------------------------- a whole hour


@dataclass(frozen=True)
class HourReasons:
    """Per-row reasons as a small table of distinct lists and each row's index into it."""

    table_texts: list[list[str]]
    table_codes: list[list[str]]
    index: np.ndarray
    explained: np.ndarray  # the rows explained in full

    @property
    def texts(self) -> pl.Series:
        """The wording per row (``reason_codes``)."""
        return _gathered("reason_codes", self.table_texts, self.index)

    @property
    def codes(self) -> pl.Series:
        """The stable codes per row (``REASON_CODES``), for tests and analysis."""
        return _gathered("reason_code_keys", self.table_codes, self.index)


def _gathered(name: str, table: list[list[str]], index: np.ndarray) -> pl.Series:
    """A list column from distinct lists and row indices, built through Arrow: polars
    converts nested Python lists several times slower."""
    import pyarrow as pa  # here: loading the definitions does not need it

    offsets = np.zeros(len(table) + 1, dtype=np.int32)
    np.cumsum([len(row) for row in table], out=offsets[1:])
    flat = pa.array([text for row in table for text in row], type=pa.large_string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), flat)
    series = pl.Series(name, pl.from_arrow(lists), dtype=pl.List(pl.Utf8))
    return series.gather(pl.Series(index, dtype=pl.UInt32))


def _combinations(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, each row's position among them); a lookup table instead of
    a sort when the keys are small (they are bit sets of rules and baselines)."""
    if keys.size == 0 or keys.max() >= 1 << 22:
        distinct, inverse = np.unique(keys, return_inverse=True)
        return distinct, inverse.ravel()
    present = np.bincount(keys, minlength=1) > 0
    distinct = np.flatnonzero(present)
    lookup = np.cumsum(present) - 1
    return distinct, lookup[keys]


def reasons_for_rows(
    features: pl.DataFrame,
    fired: np.ndarray,
    rule_names: Sequence[str],
    rule_risk_points: Mapping[str, float],
    decision: np.ndarray,
    total_risk: np.ndarray,
    iso_risk: np.ndarray,
    ae_risk: np.ndarray,
    scaler: Any,
    isolation_forest: Any,
    autoencoder: Any,
    config: ReasonConfig | None = None,
) -> HourReasons:
    """Reason codes for every row of a scored frame (see the module docstring for which rows
    are explained in full). ``features`` holds the model input columns of every row; the
    baselines and the wording read whichever of their columns it holds."""
    config = config or ReasonConfig()
    n = features.height
    fired = np.asarray(fired, dtype=bool)
    rows = explained_rows(decision, total_risk, config)
    # Rules and baselines in static words, once per combination met.
    values = {
        name: features.get_column(name).to_numpy()
        for name in BASELINE_COLUMNS
        if name in features.columns
    }
    rule_bits = fired.astype(np.int64) @ (np.int64(1) << np.arange(fired.shape[1], dtype=np.int64))
    combo = rule_bits | (baseline_bits(values, n) << fired.shape[1])
    distinct, index = _combinations(combo)
    table_codes, table_texts = [], []
    for key in distinct.tolist():
        rules = [name for j, name in enumerate(rule_names) if (key >> j) & 1]
        met = [b.name for j, b in enumerate(BASELINES) if (key >> (fired.shape[1] + j)) & 1]
        kept, words = static_reasons(rules, met, rule_risk_points, config)
        table_codes.append(kept)
        table_texts.append(words)
    index = index.astype(np.int64)
    if rows.size:
        explanation = explain_in_full(
            features, rows, fired, rule_names, rule_risk_points, iso_risk, ae_risk,
            scaler, isolation_forest, autoencoder, config,
        )  # fmt: skip
        index[rows] = len(distinct) + np.arange(rows.size)
        table_codes += explanation.codes
        table_texts += explanation.texts
    assert index.size == n
    return HourReasons(table_texts, table_codes, index, rows)


def explain_in_full(
    features: pl.DataFrame,
    rows: np.ndarray,
    fired: np.ndarray,
    rule_names: Sequence[str],
    rule_risk_points: Mapping[str, float],
    iso_risk: np.ndarray,
    ae_risk: np.ndarray,
    scaler: Any,
    isolation_forest: Any,
    autoencoder: Any,
    config: ReasonConfig,
) -> Explanation:
    """Full reasons for ``rows`` of a scored frame: the model input of those rows through the
    bundle's scaler, both models' attributions, the rules and the baselines.

    The models' attributions are over the bundle's own columns (``scaler.columns``:
    those it was trained on, which may be fewer than the code's ``FEATURE_COLUMNS``);
    the baselines and the wording read the frame's current features.
    The autoencoder's reference is every k-th row of the whole frame (about
    ``REFERENCE_ROWS``): what an ordinary row of the hour leaves unreconstructed.
    """
    columns = list(scaler.columns)
    read = [
        name
        for name in dict.fromkeys([*columns, *PHRASE_COLUMNS, *BASELINE_COLUMNS])
        if name in features.columns
    ]
    subset = features.select(read)[pl.Series(rows, dtype=pl.UInt32)]
    x = np.asarray(scaler.transform(subset), dtype=np.float32)
    step = max(1, features.height // REFERENCE_ROWS)
    reference = np.asarray(scaler.transform(features.select(columns)[::step]), dtype=np.float32)
    values = {name: subset.get_column(name).to_numpy() for name in read}
    return explain(
        values,
        fired[rows],
        rule_names,
        rule_risk_points,
        feature_columns=columns,
        ae_excess=autoencoder_excess_error(autoencoder, x, reference),
        ae_risk=np.asarray(ae_risk)[rows],
        iso_credit=isolation_credit(isolation_forest, x),
        iso_risk=np.asarray(iso_risk)[rows],
        config=config,
    )
