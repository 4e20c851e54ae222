"""The SVG charts attached to materializations: bins, markers and the data-URI wrapper."""

import base64
import math
import re

import numpy as np

from fraud_assets.metadata_charts import _bin_counts, histogram, line_chart, markdown_image

EDGES = list(range(0, 105, 5))


def test_bins_are_half_open_except_the_last_which_holds_the_upper_edge():
    counts = _bin_counts([0.0, 4.99, 5.0, 95.0, 99.9, 100.0], EDGES)
    assert counts[0] == 2  # 0 and 4.99
    assert counts[1] == 1  # 5 starts the second bin
    assert counts[-1] == 3  # 95, 99.9 and the upper edge 100
    assert sum(counts) == 6


def test_values_outside_the_edges_and_non_finite_values_are_left_out():
    counts = _bin_counts([-0.1, 100.1, math.nan, math.inf, -math.inf, 50.0], EDGES)
    assert sum(counts) == 1
    assert counts[10] == 1


def test_a_numpy_array_and_a_list_give_the_same_counts():
    values = np.random.default_rng(0).uniform(-10, 110, 10_000)
    assert _bin_counts(values, EDGES) == _bin_counts(values.tolist(), EDGES)
    expected, _ = np.histogram(values[(values >= 0) & (values <= 100)], bins=EDGES)
    assert _bin_counts(values, EDGES) == expected.tolist()


def test_histogram_draws_one_bar_per_non_empty_bin_and_each_marker():
    svg = histogram(
        np.array([1.0, 2.0, 51.0, 99.0]),
        edges=EDGES,
        title="Total risk score",
        x_label="risk",
        markers={"review ≥ 30": 30, "block > 70": 70},
    )
    bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="#4f43dd"', svg)
    assert len(bars) == 3
    assert "review ≥ 30" in svg and "block &gt; 70" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_empty_input_still_draws_axes():
    svg = histogram([], edges=EDGES, title="t", x_label="x")
    assert "<line" in svg and 'fill="#4f43dd"' not in svg


def test_line_chart_skips_non_finite_points_and_markdown_wraps_it_as_a_data_uri():
    svg = line_chart({"loss": [1.0, math.nan, 0.5]}, title="t", x_label="epoch", y_label="loss")
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(points) == 2
    image = markdown_image(svg, "curve")
    encoded = re.fullmatch(r"!\[curve\]\(data:image/svg\+xml;base64,(.+)\)", image).group(1)
    assert base64.b64decode(encoded).decode() == svg
