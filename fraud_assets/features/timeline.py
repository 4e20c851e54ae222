"""Windowed look-backs over grouped, time-ordered rows, vectorised with numpy.

A :class:`Timeline` sorts every row by (group, global order) once; a window
"rows of my group from time s up to me" is then a pair of positions (lo, hi)
found with one ``searchsorted`` over a composite key ``group · stride + time``.
Counts and sums are differences of integer prefix sums (counts sum the
``agg_rows`` weights, since a summary row stands for several transactions).

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
import polars as pl


@dataclass(frozen=True)
class Window:
    """Positions [lo, hi) in a timeline's sorted order, one pair per target (sorted by position)."""

    lo: np.ndarray
    hi: np.ndarray


class Timeline:
    """Rows grouped by ``group``, in (timestamp, transaction_id) order within each group.

    ``time_order`` lists the rows by timestamp (ties in any order): ties inside
    a group, rare, are then put in ``transaction_ids`` order, so the result
    never depends on how the rows happened to be arranged (``is_summary`` rows
    excepted; see ``_order_ties_by_id``). The first
    ``n_targets`` rows are the ones features are computed for; every method
    returns arrays in their order. ``time_origin`` must not exceed any row time
    or window start, and ``stride`` must exceed every (time − time_origin).
    """

    def __init__(
        self,
        group: np.ndarray,
        time_ms: np.ndarray,
        time_us: np.ndarray,
        time_order: np.ndarray,
        transaction_ids: pl.Series,
        is_summary: np.ndarray,
        n_targets: int,
        time_origin: int,
        stride: int,
    ) -> None:
        n = group.shape[0]
        # A stable sort by group of rows already in time order gives (group, time) order.
        self.order = time_order[_stable_order(group[time_order])]
        sorted_group = group[self.order]
        starts_group = np.ones(n, dtype=bool)
        starts_group[1:] = sorted_group[1:] != sorted_group[:-1]
        _order_ties_by_id(self.order, starts_group, time_us, transaction_ids, is_summary)

        dense_group = np.cumsum(starts_group, dtype=np.int64) - 1
        if n and int(dense_group[-1]) >= np.iinfo(np.int64).max // max(stride, 1):
            raise OverflowError("too many groups for the time span; narrow the input window")
        self._base = dense_group * stride - time_origin
        self._key = self._base + time_ms[self.order]
        self._group_start = np.maximum.accumulate(np.where(starts_group, np.arange(n), 0))

        # Targets in timeline order, without a sort: the positions holding a target row.
        self.position = np.flatnonzero(self.order < n_targets)
        self._query_order = self.order[self.position]

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


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """The permutation sorting non-negative ``keys``, equal keys kept in their order.

    Each key packed with its position into one int64 sorts as a plain value, about
    twice as fast as polars' order-keeping arg sort, which keys too large to pack take.
    """
    n = keys.shape[0]
    bits = max(n - 1, 1).bit_length()
    if n and int(keys.max()) < 1 << (63 - bits):
        packed = pl.Series((keys.astype(np.int64) << bits) | np.arange(n, dtype=np.int64))
        return packed.sort().to_numpy() & ((1 << bits) - 1)
    by_key = pl.DataFrame({"key": keys}).select(pl.arg_sort_by("key", maintain_order=True))
    return by_key.to_series().to_numpy()


def _order_ties_by_id(
    order: np.ndarray,
    starts_group: np.ndarray,
    time_us: np.ndarray,
    ids: pl.Series,
    is_summary: np.ndarray,
) -> None:
    """Within runs of equal (group, timestamp), reorder ``order`` by transaction id, in place.

    Summary rows are left alone: they precede every window, so their order never matters.
    """
    sorted_time = time_us[order]
    raw = ~is_summary[order]
    tie = np.zeros(order.shape[0], dtype=bool)  # tie[p]: row at p ties with the one at p − 1
    tie[1:] = (sorted_time[1:] == sorted_time[:-1]) & ~starts_group[1:] & raw[1:] & raw[:-1]
    if not tie.any():
        return
    members = np.flatnonzero(tie | np.append(tie[1:], False))
    run = np.maximum.accumulate(np.where(tie[members], 0, members))
    rows = order[members]
    ranked = pl.DataFrame({"run": run, "id": ids.gather(rows), "row": rows}).sort(
        ["run", "id"], maintain_order=True
    )
    order[members] = ranked.get_column("row").to_numpy()
