"""Performance of stored decisions once their labels have matured, and when it calls for rollback.

Fraud labels arrive days after the transaction (the generator: analysts within
3 days, customer reports within 10, chargebacks within 14; 91% of fraud labels
within 3 days, 99% within 7). A day's decisions are measured ``label_delay``
days later, against the labels known by then: ``is_fraud = 1`` is fraud,
everything else (no label, or confirmed legitimate) is not.

The decisions are attributed to the version that made them (the
``model_version`` of each stored row). The active version is rolled back when
its decisions breached a floor on each of the last K evaluated days. So a
version can be judged only once it has been active for ``label_delay`` + K − 1
days: with weekly promotions that needs ``label_delay + K <= 7``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from clickhouse_connect.driver.client import Client

FLAGGED = "final_decision != 'approved'"


@dataclass(frozen=True)
class Floors:
    """What the active bundle must keep on matured labels; None switches a floor off.

    Defaults sit well below a healthy bundle on generated traffic (1,500 users,
    labels matured 5 days: precision 0.38–0.47, recall 0.95–1.00, FP rate
    0.5–1.0% per day), so one noisy day of ~20 frauds does not breach them.
    """

    min_precision: float | None = 0.10
    min_recall: float | None = 0.50
    max_fp_rate: float | None = 0.05
    min_decisions: int = 200
    min_frauds: int = 5


@dataclass
class DayPerformance:
    evaluated_date: date
    as_of_date: date
    model_version: str
    label_delay_days: int
    decisions: int
    flagged: int
    frauds: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    breaches: list[str] = field(default_factory=list)
    evaluable: bool = False

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.frauds if self.frauds else None

    @property
    def fp_rate(self) -> float | None:
        negatives = self.false_positives + self.true_negatives
        return self.false_positives / negatives if negatives else None

    def judge(self, floors: Floors) -> DayPerformance:
        """Fill ``evaluable`` and ``breaches``: too few decisions or frauds means no verdict."""
        self.evaluable = self.decisions >= floors.min_decisions and self.frauds >= floors.min_frauds
        self.breaches = breaches(self, floors) if self.evaluable else []
        return self


def breaches(day: DayPerformance, floors: Floors) -> list[str]:
    """The floors ``day`` breached; a metric that is undefined (None) breaches nothing."""
    checks = (
        ("precision", day.precision, floors.min_precision, "<"),
        ("recall", day.recall, floors.min_recall, "<"),
        ("FP rate", day.fp_rate, floors.max_fp_rate, ">"),
    )
    return [
        f"{name} {value:.3f} {op} {limit:.3f}"
        for name, value, limit, op in checks
        if value is not None
        and limit is not None
        and (value < limit if op == "<" else value > limit)
    ]


def breached_every_day(history: dict[date, list[str]], last_day: date, days: int) -> bool:
    """True when each of the ``days`` days ending with ``last_day`` has a recorded breach."""
    return all(history.get(last_day - timedelta(days=i)) for i in range(days))


_PERFORMANCE_SQL = f"""
SELECT
    e.model_version AS model_version,
    count() AS decisions,
    countIf({FLAGGED}) AS flagged,
    countIf(l.is_fraud = 1) AS frauds,
    countIf({FLAGGED} AND l.is_fraud = 1) AS true_positives,
    countIf({FLAGGED} AND l.is_fraud != 1) AS false_positives,
    countIf(NOT ({FLAGGED}) AND l.is_fraud = 1) AS false_negatives,
    countIf(NOT ({FLAGGED}) AND l.is_fraud != 1) AS true_negatives
FROM detected_anomalies_ensemble AS e
LEFT JOIN (
    SELECT transaction_id, argMax(is_fraud, labeled_at) AS is_fraud
    FROM transaction_labels
    WHERE labeled_at < {{known_by:DateTime('UTC')}}
      AND transaction_id IN (
        SELECT transaction_id FROM detected_anomalies_ensemble
        WHERE timestamp >= {{start:DateTime('UTC')}} AND timestamp < {{end:DateTime('UTC')}}
      )
    GROUP BY transaction_id
) AS l ON l.transaction_id = e.transaction_id
WHERE e.timestamp >= {{start:DateTime('UTC')}} AND e.timestamp < {{end:DateTime('UTC')}}
GROUP BY model_version
ORDER BY model_version
"""  # noqa: S608 (a constant of this module; values are bound parameters)


def measure_day(
    client: Client, evaluated: date, as_of: date, label_delay_days: int
) -> list[DayPerformance]:
    """One DayPerformance per version that made decisions on ``evaluated``."""
    start = datetime(evaluated.year, evaluated.month, evaluated.day)
    known_by = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
    result = client.query(
        _PERFORMANCE_SQL,
        parameters={"start": start, "end": start + timedelta(days=1), "known_by": known_by},
    )
    return [
        DayPerformance(
            evaluated_date=evaluated,
            as_of_date=as_of,
            label_delay_days=label_delay_days,
            **{k: (v if k == "model_version" else int(v)) for k, v in row.items()},
        )
        for row in (dict(zip(result.column_names, r, strict=True)) for r in result.result_rows)
    ]


_COLUMNS = [
    "evaluated_date", "as_of_date", "model_version", "label_delay_days", "decisions", "flagged",
    "frauds", "true_positives", "false_positives", "false_negatives", "true_negatives",
    "precision", "recall", "fp_rate", "evaluable", "breaches",
]  # fmt: skip


def write_days(client: Client, evaluated: date, days: Iterable[DayPerformance]) -> None:
    """Replace the rows of ``evaluated`` (a re-scored day may have lost a version)."""
    client.command(
        "DELETE FROM model_performance_matured WHERE evaluated_date = {day:Date}",
        parameters={"day": evaluated},
        settings={"lightweight_deletes_sync": 2},
    )
    rows = [
        [getattr(d, c) if c != "evaluable" else int(d.evaluable) for c in _COLUMNS] for d in days
    ]
    if rows:
        client.insert("model_performance_matured", rows, column_names=_COLUMNS)


def breach_history(
    client: Client, version: str, last_day: date, days: int
) -> dict[date, list[str]]:
    """{evaluated_date: breaches} of ``version`` over the ``days`` days ending with ``last_day``."""
    result = client.query(
        "SELECT evaluated_date, breaches FROM model_performance_matured FINAL "
        "WHERE model_version = {version:String} AND evaluated_date > {first:Date} "
        "AND evaluated_date <= {last:Date}",
        parameters={"version": version, "first": last_day - timedelta(days=days), "last": last_day},
    )
    return {day: list(found) for day, found in result.result_rows}
