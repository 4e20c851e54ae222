"""Labels as an exchange receives them: per fraud case, from a source, after a delay.

Every fraudulent transaction gets an ``is_fraud = 1`` row. All transactions of
one incident are labelled together (one case), at the incident's last
transaction plus the source's delay:

* ``analyst`` (monitoring, compliance): hours, median 8 h, at most 3 days;
* ``customer_report`` (the victim notices): median 30 h, at most 10 days;
* ``chargeback`` (card-funded purchases reversed): median 6 days, at most 14.

A share (``review_rate``) of odd-looking legitimate transactions (VPN
sessions, a new device, a one-off withdrawal address, an unusually large
amount) was reviewed by an analyst and confirmed legitimate: ``is_fraud = 0``
with an empty ``fraud_type``. Those are what false-positive metrics need.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraud_assets.generator.hashing import uniform

_SOURCE, _DELAY, _REVIEW = 51, 52, 53
SOURCES = ("analyst", "customer_report", "chargeback")
# (median hours, log-sd, min hours, max hours) per source.
DELAYS = {
    "analyst": (8.0, 0.9, 1.0, 72.0),
    "customer_report": (30.0, 0.8, 2.0, 240.0),
    "chargeback": (144.0, 0.4, 48.0, 336.0),
}
# Probability of each source, per scenario.
SOURCE_MIX = {
    "account_takeover": {"customer_report": 0.7, "analyst": 0.3},
    "velocity_burst": {"analyst": 0.6, "chargeback": 0.4},
    "amount_spike": {"customer_report": 0.8, "analyst": 0.2},
    "impossible_travel": {"analyst": 0.7, "customer_report": 0.3},
    "structuring": {"analyst": 1.0},
    "dormant_reactivation": {"customer_report": 0.6, "analyst": 0.4},
    "wallet_draining": {"customer_report": 0.8, "analyst": 0.2},
}
LABEL_COLUMNS = (
    "transaction_id",
    "is_fraud",
    "fraud_type",
    "labeled_at",
    "source",
    "user_id",
    "wallet_address",
    "transaction_timestamp",
)


def _delay_s(source: np.ndarray, u: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    z = ndtri(np.clip(u, 1e-9, 1 - 1e-9))
    hours = np.zeros(len(source))
    for name, (median, sigma, low, high) in DELAYS.items():
        mask = source == name
        hours[mask] = np.clip(median * np.exp(sigma * z[mask]), low, high)
    return (hours * 3600).astype(np.int64)


def _source(seed: int, fraud_type: np.ndarray, incident: np.ndarray) -> np.ndarray:
    u = uniform(seed, _SOURCE, incident)
    out = np.empty(len(fraud_type), dtype=object)
    for scenario, mix in SOURCE_MIX.items():
        mask = fraud_type == scenario
        edges = np.cumsum(list(mix.values()))
        pick = np.minimum(np.searchsorted(edges, u[mask], side="right"), len(edges) - 1)
        out[mask] = np.array(list(mix), dtype=object)[pick]
    return out


def build_labels(
    seed: int, frame: pl.DataFrame, incident_end_s: pl.DataFrame, review_rate: float
) -> pl.DataFrame:
    """Label rows for ``frame`` (generated rows with fraud_type, incident, unusual, ts).

    ``incident_end_s`` maps each incident to the time of its last transaction,
    including transactions outside the written range.
    """
    fraud = frame.filter(pl.col("fraud_type") != "").join(incident_end_s, on="incident", how="left")
    fraud_type = fraud["fraud_type"].to_numpy()
    incident = fraud["incident"].to_numpy()
    source = _source(seed, fraud_type, incident)
    labeled = fraud["incident_end_s"].to_numpy() + _delay_s(source, uniform(seed, _DELAY, incident))
    fraud = fraud.with_columns(
        is_fraud=pl.lit(1, dtype=pl.UInt8),
        source=pl.Series(source, dtype=pl.String),
        labeled_s=pl.Series(labeled),
    )

    legit = frame.filter((pl.col("fraud_type") == "") & pl.col("unusual"))
    key = legit["txid0"].to_numpy()
    legit = legit.filter(pl.Series(uniform(seed, _REVIEW, key) < review_rate))
    analyst = np.full(legit.height, "analyst", dtype=object)
    legit = legit.with_columns(
        is_fraud=pl.lit(0, dtype=pl.UInt8),
        source=pl.lit("analyst"),
        labeled_s=legit["ts"]
        + pl.Series(_delay_s(analyst, uniform(seed, _DELAY, legit["txid0"].to_numpy()))),
    )
    columns = [
        "transaction_id",
        "is_fraud",
        "fraud_type",
        "labeled_s",
        "source",
        "user_id",
        "wallet_address",
        "ts",
    ]
    return (
        pl.concat([fraud.select(columns), legit.select(columns)])
        .with_columns(
            labeled_at=pl.from_epoch("labeled_s", time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us"),
            transaction_timestamp=pl.from_epoch("ts", time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us"),
        )
        .select(LABEL_COLUMNS)
        .sort("transaction_timestamp", "transaction_id")
    )
