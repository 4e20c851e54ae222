"""Reference histograms and the drift statistics computed from them (pure numpy).

A histogram is a set of ascending bin *edges* and the rows per bin. The bins
are ``(-inf, e1), [e1, e2), ..., [en, +inf)``: a value's bin is the number of
edges at or below it (``numpy.searchsorted(edges, v, side="right")``), the
same rule the SQL in ``drift_sql`` applies, so a histogram counted here and
one counted by ClickHouse agree row for row.

Values are rounded to Float32 first because that is how ClickHouse stores
features and scores; every edge is then a Float32 value, exact in Float64, and
a comparison gives the same answer in numpy and in SQL.

This module is also the reference implementation the SQL is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 10
# Pseudo-count added to every bin of both histograms before PSI: an empty bin
# would otherwise make log(a/e) infinite, and a fixed tiny floor (1e-4) makes
# one empty bin of a small hour worth more than real drift.
PSEUDO_COUNT = 0.5


@dataclass(frozen=True)
class Histogram:
    edges: np.ndarray  # float64, ascending, Float32-exact
    counts: np.ndarray  # int64, len(edges) + 1

    @property
    def rows(self) -> int:
        return int(self.counts.sum())


def as_float32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def bin_edges(values, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Quantile edges of ``values``, or one bin per value when there are few distinct values.

    Quantiles are taken with the ``inverted_cdf`` method so every edge is a
    value that occurs (hence Float32-exact). Repeated quantiles (a point mass,
    as in counts and flags) collapse to one edge. With at most ``bins``
    distinct values each value gets its own bin, so a 0/1 flag is split at 1
    instead of landing whole in one bin.
    """
    v = as_float32(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([], dtype=np.float64)
    distinct = np.unique(v)
    if distinct.size <= bins:
        return distinct.astype(np.float64)
    quantiles = np.quantile(v, np.arange(1, bins) / bins, method="inverted_cdf")
    return np.unique(quantiles.astype(np.float32)).astype(np.float64)


def bin_counts(values, edges: np.ndarray) -> np.ndarray:
    """Rows per bin of ``values`` for ``edges`` (NaN falls in the last bin, as in SQL)."""
    v = as_float32(values).astype(np.float64)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="right")
    index[np.isnan(v)] = len(edges)
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def reference_histogram(values, bins: int = DEFAULT_BINS) -> Histogram:
    edges = bin_edges(values, bins)
    return Histogram(edges=edges, counts=bin_counts(values, edges))


def smoothed(counts, pseudo_count: float = PSEUDO_COUNT) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + pseudo_count) / (counts.sum() + pseudo_count * len(counts))


def psi(actual_counts, expected_counts, pseudo_count: float = PSEUDO_COUNT) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), smoothed proportions."""
    a, e = smoothed(actual_counts, pseudo_count), smoothed(expected_counts, pseudo_count)
    return float(np.sum((a - e) * np.log(a / e)))


def binned_ks(actual_counts, expected_counts) -> float:
    """Kolmogorov–Smirnov distance of the two CDFs at the reference edges.

    The empirical CDFs are exact at every edge, so this is the KS statistic
    restricted to the edges: a lower bound of the full one, free once the bins
    are counted. 0 when either side is empty.
    """
    a = np.asarray(actual_counts, dtype=np.float64)
    e = np.asarray(expected_counts, dtype=np.float64)
    if a.sum() == 0 or e.sum() == 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(a / a.sum()) - np.cumsum(e / e.sum()))))
