"""Windowed look-backs over grouped, time-ordered rows, vectorised with numpy.

A :class:`Timeline` sorts every row by (group, global order) once; a window
"rows of my group from time s up to me" is then a pair of positions (lo, hi)
found with one ``searchsorted`` over a composite key ``group · stride + time``.
Counts are ``hi − lo`` and sums are differences of integer prefix sums.

Sums are taken over integers (cents, quantised logs) on purpose: integer
prefix-sum differences are exact, so a transaction's window statistics do not
depend on which other rows happened to be in the frame. Float prefix sums would
differ in the last bits between an hourly and a monthly computation. Wrap-around
in the int64 cumulative sum is harmless: the difference of two wrapped sums is
exact whenever the window's own sum fits in int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Positions [lo, hi) in a timeline's sorted order, one pair per target (sorted by position)."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def count(self) -> np.ndarray:
        return self.hi - self.lo


class Timeline:
    """Rows grouped by ``group`` and ordered by ``global_order`` within each group.

    ``global_order`` is a permutation listing the rows in (timestamp,
    transaction_id) order; ``targets`` are the row indices features are
    computed for. Every method returns arrays in the order of ``targets``.
    ``time_origin`` must not exceed any row time or window start, and
    ``stride`` must exceed every (time − time_origin).
    """

    def __init__(
        self,
        group: np.ndarray,
        time_ms: np.ndarray,
        global_order: np.ndarray,
        targets: np.ndarray,
        time_origin: int,
        stride: int,
    ) -> None:
        n = group.shape[0]
        # A stable sort by group of rows already in time order gives (group, time) order.
        self.order = global_order[np.argsort(group[global_order], kind="stable")]
        sorted_group = group[self.order]
        starts_group = np.ones(n, dtype=bool)
        starts_group[1:] = sorted_group[1:] != sorted_group[:-1]
        dense_group = np.cumsum(starts_group, dtype=np.int64) - 1
        if n and int(dense_group[-1]) >= np.iinfo(np.int64).max // max(stride, 1):
            raise OverflowError("too many groups for the time span; narrow the input window")
        self._base = dense_group * stride - time_origin
        self._key = self._base + time_ms[self.order]
        self._group_start = np.maximum.accumulate(np.where(starts_group, np.arange(n), 0))

        position = np.empty(n, dtype=np.int64)
        position[self.order] = np.arange(n, dtype=np.int64)
        target_position = position[targets]
        self._query_order = np.argsort(target_position, kind="stable")
        self.position = target_position[self._query_order]

    def to_targets(self, values: np.ndarray) -> np.ndarray:
        """Values computed per sorted query → the order of ``targets``."""
        out = np.empty_like(values)
        out[self._query_order] = values
        return out

    def sorted_queries(self, per_target: np.ndarray) -> np.ndarray:
        return per_target[self._query_order]

    def window(self, start_ms: np.ndarray, *, inclusive_start: bool, include_self: bool) -> Window:
        """Rows of the target's group from ``start_ms`` up to the target (sorted-query order)."""
        query = self._base[self.position] + self.sorted_queries(start_ms)
        lo = np.searchsorted(self._key, query, side="left" if inclusive_start else "right")
        hi = self.position + 1 if include_self else self.position.copy()
        return Window(lo=np.minimum(lo, hi), hi=hi)

    def prefix(self, values: np.ndarray) -> np.ndarray:
        """Cumulative sums of per-row ``values`` in timeline order, with a leading 0."""
        out = np.zeros(values.shape[0] + 1, dtype=np.int64)
        np.cumsum(values[self.order], dtype=np.int64, out=out[1:])
        return out

    @staticmethod
    def window_sum(prefix: np.ndarray, window: Window) -> np.ndarray:
        return prefix[window.hi] - prefix[window.lo]

    def previous_row(self, window: Window) -> np.ndarray:
        """Row index of the target's predecessor in its group inside ``window``, else −1."""
        previous = self.position - 1
        valid = (previous >= window.lo) & (previous >= self._group_start[self.position])
        return np.where(valid, self.order[np.maximum(previous, 0)], -1)

    def changes_from_predecessor(self, codes: np.ndarray) -> np.ndarray:
        """Per row (timeline order): 1 where ``codes`` differs from the previous row of the group."""
        sorted_codes = codes[self.order]
        changed = np.zeros(codes.shape[0], dtype=np.int64)
        changed[1:] = sorted_codes[1:] != sorted_codes[:-1]
        changed[self._group_start == np.arange(codes.shape[0])] = 0
        return changed

    @staticmethod
    def pairs_sum(prefix_sorted: np.ndarray, window: Window) -> np.ndarray:
        """Sum of a predecessor-relative flag over rows whose predecessor is also in ``window``."""
        inner_lo = np.minimum(window.lo + 1, window.hi)
        return prefix_sorted[window.hi] - prefix_sorted[inner_lo]

    @staticmethod
    def prefix_sorted(values_sorted: np.ndarray) -> np.ndarray:
        out = np.zeros(values_sorted.shape[0] + 1, dtype=np.int64)
        np.cumsum(values_sorted, dtype=np.int64, out=out[1:])
        return out
