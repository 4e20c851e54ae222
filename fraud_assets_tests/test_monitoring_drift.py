"""Drift: reference histograms, bin counts by ClickHouse, PSI / KS, windows and levels.

The SQL bin counts are checked against the numpy reference implementation on
random data (ties, point masses, Float32 rounding), windows of several hours
against numpy over their rows, and the whole check is run on generated
traffic through the real feature pipeline: a day's transactions split at random
in two is undrifted (nothing fires), and the same half with one feature shifted
fires on that feature alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.monitoring import drift, drift_sql, histograms, snapshots

T0 = datetime(2026, 3, 2, tzinfo=UTC)


# ------------------------------------------------------------------ pure histograms


def test_quantile_edges_for_continuous_values_and_one_bin_per_value_for_few():
    rng = np.random.default_rng(0)
    continuous = histograms.reference_histogram(rng.normal(size=10_000))
    assert len(continuous.edges) == 9 and np.all(np.diff(continuous.edges) > 0)
    assert continuous.counts.sum() == 10_000
    assert np.all(np.abs(continuous.counts / 10_000 - 0.1) < 0.01)

    flags = histograms.reference_histogram((rng.random(1000) < 0.1).astype(float))
    assert flags.edges.tolist() == [0.0, 1.0]  # (-inf, 0), [0, 1), [1, inf)
    assert flags.counts[0] == 0 and flags.counts[1] + flags.counts[2] == 1000

    point_mass = histograms.reference_histogram(np.r_[np.zeros(900), np.arange(100.0)])
    assert len(np.unique(point_mass.edges)) == len(point_mass.edges)
    assert point_mass.counts.sum() == 1000


def test_edges_are_float32_values_and_nan_lands_in_the_last_bin():
    values = np.array([0.1, 0.2, 0.3] * 10 + [np.nan, np.inf], dtype=np.float64)
    h = histograms.reference_histogram(values)
    assert np.all(h.edges == h.edges.astype(np.float32))
    assert histograms.bin_counts([np.nan], h.edges).tolist()[-1] == 1


def test_psi_and_ks_are_zero_for_identical_histograms_and_grow_with_a_shift():
    rng = np.random.default_rng(1)
    h = histograms.reference_histogram(rng.normal(size=5000))
    assert histograms.psi(h.counts, h.counts) == pytest.approx(0.0)
    assert histograms.binned_ks(h.counts, h.counts) == pytest.approx(0.0)
    small = histograms.bin_counts(rng.normal(0.1, size=5000), h.edges)
    large = histograms.bin_counts(rng.normal(1.0, size=5000), h.edges)
    assert histograms.psi(small, h.counts) < 0.1 < histograms.psi(large, h.counts)
    assert histograms.binned_ks(large, h.counts) > 0.3


def test_levels_classify_psi_and_reject_inverted_levels():
    levels = drift.DriftLevels(warn=0.1, error=0.25)
    assert [levels.level(p) for p in (0.0, 0.1, 0.2, 0.25, 3.0)] == [
        "ok", "warn", "warn", "error", "error",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="warn"):
        drift.DriftLevels(warn=0.3, error=0.2)


def test_a_thin_hour_is_widened_back_until_it_has_enough_rows():
    hour = datetime(2026, 3, 2, 10)
    counts = {hour - timedelta(hours=h): {"v2": 100} for h in range(5)}
    counts[hour]["v1"] = 30  # a few rows of another version: the hour's majority decides
    version, start, rows = drift.choose_window(counts, hour, min_rows=250, max_window_hours=24)
    assert (version, start, rows) == ("v2", hour - timedelta(hours=2), 300)
    assert drift.choose_window(counts, hour, min_rows=1000, max_window_hours=24)[1] is None
    assert drift.choose_window(counts, hour, min_rows=250, max_window_hours=2)[1] is None
    assert drift.choose_window({}, hour, 1, 24) == (None, None, 0)


# ------------------------------------------------------------------ SQL == numpy


def _write_snapshot(client, version: str, columns: dict[str, np.ndarray], start=T0) -> None:
    names = list(columns)
    snapshots.ensure_feature_columns(client, names)
    n = len(next(iter(columns.values())))
    frame = pl.DataFrame(
        {
            "transaction_id": [f"{version}-{i}" for i in range(n)],
            "timestamp": [start + timedelta(seconds=int(i % 3600)) for i in range(n)],
            "model_version": [version] * n,
            **{name: pl.Series(values, dtype=pl.Float32) for name, values in columns.items()},
        }
    )
    client.insert_arrow("feature_snapshots", frame.to_arrow())


value_arrays = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False, width=32),
        st.sampled_from([0.0, 1.0, 2.0, -0.5]),  # ties and point masses
    ),
    min_size=1,
    max_size=300,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reference=value_arrays, current=value_arrays, bins=st.integers(2, 12))
def test_sql_bin_counts_equal_numpy(clickhouse: ClickHouseResource, reference, current, bins):
    version = f"v-{uuid.uuid4().hex[:8]}"
    h = histograms.reference_histogram(np.array(reference), bins)
    with clickhouse.get_client() as client:
        _write_snapshot(client, version, {"x_value": np.array(current)})
        hourly = drift_sql.hourly_bin_counts(
            client, drift_sql.FEATURE, version, {"x_value": h}, T0, T0 + timedelta(hours=1)
        )
    ((hour, (n, (counts,))),) = hourly.items()
    assert hour.replace(tzinfo=None) == T0.replace(tzinfo=None) and n == len(current)
    assert counts.tolist() == histograms.bin_counts(np.array(current), h.edges).tolist()


def test_every_window_of_a_backfill_equals_numpy_over_its_rows(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
):
    """Hours of 100, 400, 50, 300 and 0 rows (min_rows 350): the first too thin to judge,
    then windows of one and two hours from one counting query, each the PSI and KS of its
    rows' values, drifted or not."""
    version = f"v-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(11)
    h = histograms.reference_histogram(rng.normal(size=5000))
    hours = [T0 + timedelta(hours=i) for i in range(5)]
    values = [rng.normal(0.6 * i, size=n) for i, n in enumerate((100, 400, 50, 300, 0))]
    queries = []
    count_hours = drift_sql.hourly_bin_counts
    monkeypatch.setattr(
        drift_sql, "hourly_bin_counts", lambda *a: queries.append(a[4:]) or count_hours(*a)
    )
    with clickhouse.get_client() as client:
        for start, hour_values in zip(hours, values, strict=True):
            if hour_values.size:
                _write_snapshot(client, version, {"x_value": hour_values}, start=start)
        drift_sql.write_reference(client, version, drift_sql.FEATURE, {"x_value": h}, "test")
        verdicts = drift.evaluate_hours(
            client, drift_sql.FEATURE, hours, drift.DriftLevels(), min_rows=350,
            max_window_hours=24,
        )  # fmt: skip
    assert [v.window_start for v in verdicts] == [None, hours[1], hours[1], hours[2], None]
    assert [v.rows for v in verdicts] == [100, 400, 450, 350, 0]
    assert queries == [(hours[1], hours[4])], "one scan for every window"
    for verdict, window in (
        (verdicts[1], values[1:2]),
        (verdicts[2], values[1:3]),
        (verdicts[3], values[2:4]),
    ):
        expected = histograms.bin_counts(np.concatenate(window), h.edges)
        (column,) = verdict.series
        assert column.rows == sum(w.size for w in window)
        assert column.psi == pytest.approx(histograms.psi(expected, h.counts), rel=1e-12)
        assert column.ks == pytest.approx(histograms.binned_ks(expected, h.counts), rel=1e-12)
    assert verdicts[3].series[0].psi > verdicts[1].series[0].psi  # the shifted hours drift
    assert not verdicts[0].series and "fewer than min_rows" in verdicts[0].note
    assert not verdicts[4].series and verdicts[4].note == "no rows in this hour"


def test_hours_scored_by_two_versions_are_judged_each_against_its_own_reference(
    clickhouse: ClickHouseResource,
):
    """A backfill across a promotion: each hour is judged on its version's rows and
    reference only, the earlier version's rows never widening the later one's window."""
    rng = np.random.default_rng(5)
    old, new = f"v-old-{uuid.uuid4().hex[:6]}", f"v-new-{uuid.uuid4().hex[:6]}"
    hours = [T0 + timedelta(hours=i) for i in range(4)]
    with clickhouse.get_client() as client:
        for i, hour in enumerate(hours):
            version = old if i < 2 else new
            _write_snapshot(client, version, {"x_value": rng.normal(size=300)}, start=hour)
        drift_sql.write_reference(
            client, old, drift_sql.FEATURE,
            {"x_value": histograms.reference_histogram(rng.normal(size=4000))}, "old",
        )  # fmt: skip
        drift_sql.write_reference(
            client, new, drift_sql.FEATURE,
            {"x_value": histograms.reference_histogram(rng.normal(3.0, size=4000))}, "new",
        )  # fmt: skip
        verdicts = drift.evaluate_hours(
            client, drift_sql.FEATURE, hours, drift.DriftLevels(), min_rows=500,
            max_window_hours=24,
        )  # fmt: skip
    assert [v.version for v in verdicts] == [old, old, new, new]
    assert [v.window_start for v in verdicts] == [None, hours[0], None, hours[2]]
    assert [v.rows for v in verdicts] == [300, 600, 300, 600]
    assert verdicts[1].level == drift.OK and verdicts[3].level == drift.ERROR


def test_reference_is_replaced_per_version_and_series(clickhouse: ClickHouseResource):
    h = histograms.reference_histogram(np.arange(100.0))
    with clickhouse.get_client() as client:
        drift_sql.write_reference(client, "v1", "feature", {"a": h, "b": h}, "first")
        drift_sql.write_reference(client, "v1", "score", {"total_risk_score": h}, "first")
        drift_sql.write_reference(client, "v1", "feature", {"a": h}, "second")
        assert list(drift_sql.read_reference(client, "v1", "feature")) == ["a"]
        assert list(drift_sql.read_reference(client, "v1", "score")) == ["total_risk_score"]
        stored = drift_sql.read_reference(client, "v1", "feature")["a"]
    assert stored.edges.tolist() == h.edges.tolist() and stored.counts.tolist() == h.counts.tolist()


# ------------------------------------------------------------------ generated traffic


@pytest.fixture(scope="module")
def generated_day(tmp_path_factory: pytest.TempPathFactory):
    """One day of generated traffic through the real feature pipeline, and its database."""
    from fraud_assets.features import extract_features, load_feature_inputs
    from fraud_assets.generator.config import GeneratorConfig
    from fraud_assets.generator.load import generate_into_clickhouse

    resource = ClickHouseResource(dsn=f"chdb://{tmp_path_factory.mktemp('drift') / 'ch'}")
    day = datetime(2026, 11, 10, tzinfo=UTC)
    generate_into_clickhouse(
        resource,
        GeneratorConfig(start=day - timedelta(days=31), end=day + timedelta(days=1), users=1200),
    )
    with resource.get_client() as client:
        inputs = load_feature_inputs(client, day, day + timedelta(days=1))
    features = extract_features(inputs.transactions, inputs.history, inputs.labels)
    return resource, day, features


def _halves(features: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A random split of the rows: two samples of one distribution."""
    pick = np.random.default_rng(7).random(features.height) < 0.5
    return features.filter(pl.Series(pick)), features.filter(pl.Series(~pick))


def _judge(resource, day, version, current: pl.DataFrame, reference: pl.DataFrame):
    frame = snapshots.snapshot_frame(current.with_columns(pl.lit(version).alias("model_version")))
    with resource.get_client() as client:
        client.command("TRUNCATE TABLE feature_snapshots")  # one version per hour
        snapshots.ensure_feature_columns(
            client, [c for c in frame.columns if c not in snapshots.KEY_COLUMNS]
        )
        client.insert_arrow("feature_snapshots", frame.to_arrow())
        drift_sql.write_reference(
            client, version, drift_sql.FEATURE, snapshots.feature_references(reference), "half"
        )
        (verdict,) = drift.evaluate_hours(
            client,
            drift_sql.FEATURE,
            [day + timedelta(hours=23)],
            drift.DriftLevels(),
            min_rows=current.height,
            max_window_hours=24,
        )
    return verdict


def test_undrifted_generated_traffic_fires_nothing(generated_day):
    resource, day, features = generated_day
    reference, current = _halves(features)
    assert current.height > 500
    verdict = _judge(resource, day, "v-undrifted", current, reference)
    assert verdict.rows == current.height and verdict.window_start == day
    assert len(verdict.series) == len(snapshots.monitored_features())
    assert verdict.breaches == [], [(s.name, s.psi) for s in verdict.breaches]
    assert max(s.psi for s in verdict.series) < 0.1


def test_injected_drift_in_one_feature_is_detected_and_only_there(generated_day):
    resource, day, features = generated_day
    reference, current = _halves(features)
    shifted = current.with_columns(pl.col("log_amount") + 1.0)  # amounts × e in one feature
    verdict = _judge(resource, day, "v-drifted", shifted, reference)
    assert [s.name for s in verdict.breaches] == ["log_amount"]
    assert verdict.breaches[0].level == drift.ERROR and verdict.breaches[0].ks > 0.2
    assert verdict.level == drift.ERROR


def test_an_hour_without_a_reference_or_rows_is_not_judged(generated_day):
    resource, day, _ = generated_day
    later = day + timedelta(days=3)
    with resource.get_client() as client:
        _write_snapshot(client, "v-unreferenced", {"log_amount": np.ones(20)}, start=later)
        verdicts = drift.evaluate_hours(
            client,
            drift_sql.FEATURE,
            [later, later + timedelta(days=1)],
            drift.DriftLevels(),
            min_rows=10,
            max_window_hours=1,
        )
    assert verdicts[0].version == "v-unreferenced" and not verdicts[0].series
    assert "no feature reference stored" in verdicts[0].note
    assert verdicts[1].note == "no rows in this hour" and not verdicts[1].series


def test_snapshot_keeps_quiet_hours_whole_and_samples_busy_ones_the_same_way_twice():
    names = snapshots.monitored_features()
    start = T0
    rng = np.random.default_rng(3)
    busy, quiet = 5000, 300
    frame = pl.DataFrame(
        {
            "transaction_id": [f"t{i:06d}" for i in range(busy + quiet)],
            "timestamp": [start + timedelta(seconds=i % 3600) for i in range(busy)]
            + [start + timedelta(hours=1, seconds=i) for i in range(quiet)],
            "model_version": "v1",
            **{n: rng.normal(size=busy + quiet) for n in names},
        }
    )
    snapshot = snapshots.snapshot_frame(frame, rows_per_hour=1000)
    per_hour = snapshot.group_by(pl.col("timestamp").dt.hour()).len().sort("timestamp")
    assert per_hour["len"].to_list() == [1000, quiet]
    assert snapshot.equals(snapshots.snapshot_frame(frame, rows_per_hour=1000)), "a rerun"
    sampled = snapshot.filter(pl.col("timestamp") < start + timedelta(hours=1))
    assert sampled["transaction_id"].is_unique().all()
    # uniform: the sample's mean of a feature is close to the hour's
    hour = frame.head(busy)
    assert abs(sampled[names[0]].mean() - hour[names[0]].mean()) < 0.15
    assert snapshots.snapshot_frame(frame).height == busy + quiet, "under the cap: whole"
