"""How well the detectors find the injected faults: recall and precision per fault type.

A labelled fault is an *event* (one ``fault_id``: a window of one sensor).
An event is found when any detection of that sensor falls inside its window;
the per-row recall (labelled readings flagged by any detector) is given too,
except for dropouts, whose readings do not exist. A detector's precision is
the share of its detections inside a labelled window of its own fault type;
the Isolation Forest, which names no fault type, counts any labelled window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_assets.generator.sensors import FAULT_TYPES

QUALITY_COLUMNS: tuple[str, ...] = (
    "fault_type",
    "events",
    "events_found",
    "event_recall",
    "row_recall",
    "detections",
    "true_detections",
    "precision",
)


def fault_events(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per injected fault: its sensor, type and [start, end] window."""
    if labels.empty:
        return pd.DataFrame(columns=["fault_id", "sensor_id", "fault_type", "start", "end", "rows"])
    return (
        labels.groupby("fault_id", sort=False)
        .agg(
            sensor_id=("sensor_id", "first"),
            fault_type=("fault_type", "first"),
            start=("timestamp", "min"),
            end=("timestamp", "max"),
            rows=("timestamp", "size"),
        )
        .reset_index()
    )


def _inside(detections: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Pairs (detection, event) where the detection lies inside the event's window."""
    left = detections.reset_index(names="detection")
    pairs = left.merge(events, on="sensor_id", how="inner", suffixes=("", "_event"))
    return pairs[(pairs["timestamp"] >= pairs["start"]) & (pairs["timestamp"] <= pairs["end"])]


def detection_quality(detections: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per fault type: event recall (any detector), row recall, and the matching detector's precision."""
    events = fault_events(labels)
    pairs = _inside(detections, events)
    flagged = set(zip(detections["sensor_id"], detections["timestamp"], strict=True))
    rows = []
    for fault_type in FAULT_TYPES:
        typed_events = events[events["fault_type"] == fault_type]
        found = pairs.loc[pairs["fault_type"] == fault_type, "fault_id"].nunique()
        typed_labels = labels[labels["fault_type"] == fault_type]
        if fault_type == "dropout" or typed_labels.empty:
            row_recall = np.nan
        else:
            hits = sum(
                (s, t) in flagged
                for s, t in zip(typed_labels["sensor_id"], typed_labels["timestamp"], strict=True)
            )
            row_recall = hits / len(typed_labels)
        own = detections["anomaly_type"] == fault_type
        own_pairs = pairs[
            (pairs["anomaly_type"] == fault_type) & (pairs["fault_type"] == fault_type)
        ]
        true_detections = own_pairs["detection"].nunique()
        rows.append(
            {
                "fault_type": fault_type,
                "events": len(typed_events),
                "events_found": found,
                "event_recall": found / len(typed_events) if len(typed_events) else np.nan,
                "row_recall": row_recall,
                "detections": int(own.sum()),
                "true_detections": true_detections,
                "precision": true_detections / own.sum() if own.sum() else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))


def detector_recall(detections: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Event recall of each detector alone, by fault type, with its precision on any fault.

    This is the table behind the choice of detector per fault: rows are
    detectors (``anomaly_type``), columns fault types.
    """
    events = fault_events(labels)
    pairs = _inside(detections, events)
    table = {}
    for detector in sorted(detections["anomaly_type"].unique()):
        mine = pairs[pairs["anomaly_type"] == detector]
        entry = {}
        for fault_type in FAULT_TYPES:
            total = (events["fault_type"] == fault_type).sum()
            found = mine.loc[mine["fault_type"] == fault_type, "fault_id"].nunique()
            entry[fault_type] = found / total if total else np.nan
        count = int((detections["anomaly_type"] == detector).sum())
        entry["detections"] = count
        entry["precision_any_fault"] = mine["detection"].nunique() / count if count else np.nan
        table[detector] = entry
    return pd.DataFrame.from_dict(table, orient="index")
