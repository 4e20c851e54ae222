"""Small charts for Dagster metadata: SVG images inside markdown, no plotting library.

The UI renders markdown metadata and allows ``data:`` image sources, so a chart
travels with the materialization as text and shows on the asset page, where an
analyst reads a training curve or a risk distribution at a glance.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

WIDTH, HEIGHT = 520, 240
_MARGIN = {"left": 56, "right": 16, "top": 28, "bottom": 40}
_COLOURS = ("#4f43dd", "#e5534b", "#2da44e", "#d4a72c")


def markdown_image(svg: str, alt: str) -> str:
    """Markdown that shows ``svg`` as an image (base64 data URI)."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"


def line_chart(
    series: Mapping[str, Sequence[float]], *, title: str, x_label: str, y_label: str
) -> str:
    """One line per named series over x = 1..n (e.g. loss per epoch); NaN points are skipped."""
    points = [v for values in series.values() for v in values if _finite(v)]
    n = max((len(values) for values in series.values()), default=0)
    frame = _Frame(1, max(n, 2), *_pad(min(points, default=0.0), max(points, default=1.0)))
    frame.integer_x = True
    body = [frame.axes(title, x_label, y_label)]
    for colour, values in zip(_COLOURS, series.values(), strict=False):
        coords = [
            f"{frame.x(i + 1):.1f},{frame.y(v):.1f}" for i, v in enumerate(values) if _finite(v)
        ]
        if coords:
            body.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                f'points="{" ".join(coords)}"/>'
            )
    body.append(_legend(list(series)))
    return _svg(body)


def histogram(
    values: Sequence[float] | np.ndarray,
    *,
    edges: Sequence[float],
    title: str,
    x_label: str,
    markers: Mapping[str, float] | None = None,
) -> str:
    """Counts of ``values`` in the bins between consecutive ``edges``, with labelled x markers."""
    counts = _bin_counts(values, edges)
    frame = _Frame(edges[0], edges[-1], 0.0, max(max(counts, default=0), 1) * 1.1)
    body = [frame.axes(title, x_label, "transactions")]
    for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
        if count:
            x0, x1, y = frame.x(low), frame.x(high), frame.y(count)
            body.append(
                f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
                f'height="{frame.y(0) - y:.1f}" fill="{_COLOURS[0]}"/>'
            )
    for label, at in (markers or {}).items():
        x = frame.x(at)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.bottom}" '
            f'stroke="{_COLOURS[1]}" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{frame.top + 10}" font-size="10" fill="{_COLOURS[1]}">'
            f"{escape(label)}</text>"
        )
    return _svg(body)


class _Frame:
    """Data → pixel mapping and the axes of one plot area."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1
        self.left, self.right = _MARGIN["left"], WIDTH - _MARGIN["right"]
        self.top, self.bottom = _MARGIN["top"], HEIGHT - _MARGIN["bottom"]
        self.integer_x = False

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, title: str, x_label: str, y_label: str) -> str:
        parts = [
            f'<text x="{self.left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" '
            'stroke="#888"/>',
            f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" '
            'stroke="#888"/>',
            f'<text x="{(self.left + self.right) / 2:.0f}" y="{HEIGHT - 6}" font-size="11" '
            f'text-anchor="middle">{escape(x_label)}</text>',
            f'<text x="12" y="{(self.top + self.bottom) / 2:.0f}" font-size="11" '
            f'text-anchor="middle" transform="rotate(-90 12 {(self.top + self.bottom) / 2:.0f})">'
            f"{escape(y_label)}</text>",
        ]
        for tick in _ticks(self.x0, self.x1):
            if self.integer_x and tick != int(tick):
                continue
            parts.append(
                f'<text x="{self.x(tick):.1f}" y="{self.bottom + 14}" font-size="10" '
                f'text-anchor="middle">{_fmt(tick)}</text>'
            )
        for tick in _ticks(self.y0, self.y1):
            parts.append(
                f'<text x="{self.left - 4}" y="{self.y(tick) + 3:.1f}" font-size="10" '
                f'text-anchor="end">{_fmt(tick)}</text>'
                f'<line x1="{self.left}" x2="{self.right}" y1="{self.y(tick):.1f}" '
                f'y2="{self.y(tick):.1f}" stroke="#eee"/>'
            )
        return "".join(parts)


def _legend(names: Sequence[str]) -> str:
    parts = []
    for index, (colour, name) in enumerate(zip(_COLOURS, names, strict=False)):
        x = WIDTH - _MARGIN["right"] - 90 * (len(names) - index)
        parts.append(
            f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="17" font-size="11">{escape(name)}</text>'
        )
    return "".join(parts)


def _svg(body: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>{"".join(body)}</svg>'
    )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= high + 1e-12]


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _pad(low: float, high: float) -> tuple[float, float]:
    span = (high - low) or abs(high) or 1.0
    return low - 0.05 * span, high + 0.05 * span


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _bin_counts(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts per bin [edge_i, edge_i+1), the last bin closed; NaN and out-of-range skipped."""
    array = np.asarray(values, dtype=np.float64)
    limits = np.asarray(edges, dtype=np.float64)
    inside = array[np.isfinite(array) & (array >= limits[0]) & (array <= limits[-1])]
    index = np.minimum(np.searchsorted(limits, inside, side="right") - 1, len(limits) - 2)
    return np.bincount(index, minlength=len(limits) - 1).tolist()
