"""The SVG writer of report.html's plots: ticks, colours, escaping, scales and determinism."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from compval.reports._plots import (
    ForestRow,
    SvgPage,
    concurrency_svg,
    flip_svg,
    forest_svg,
    latency_svg,
    reliability_svg,
)
from compval.reports._svg import Canvas, log_ticks, nice_ticks, reds, tick_label
from compval.results import CalibrationBins, LatencyStats, LoadStats

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def _texts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{NS}text"))


def _text(root: ET.Element, content: str) -> ET.Element:
    (found,) = [t for t in _texts(root) if t.text == content]
    return found


# --- ticks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "most", "expected"),
    [
        (-0.013, 0.004, 5, [-0.01, -0.005, 0.0]),  # steps 0.002 and 0.0025 give 9 and 7
        (-0.31, 0.13, 5, [-0.3, -0.2, -0.1, 0.0, 0.1]),
        (-0.31, 0.13, 4, [-0.2, 0.0]),  # 0.1 gives 5 ticks; 0.2 is the first step that fits
        (0.0, 1.0, 6, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.0, 1.0, 5, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (0.0, 0.35, 5, [0.0, 0.1, 0.2, 0.3]),  # 3 x 0.1 printed as 0.3
        (0.0, 85_000.0, 6, [0.0, 20_000.0, 40_000.0, 60_000.0, 80_000.0]),
        (2.0, 2.0, 5, [2.0]),
        (1.0, 0.0, 5, []),
        (0.0, math.inf, 5, []),
    ],
)
def test_nice_ticks(low: float, high: float, most: int, expected: list[float]) -> None:
    assert nice_ticks(low, high, most) == expected


def test_nice_ticks_have_no_float_noise_or_negative_zero() -> None:
    ticks = nice_ticks(-0.7, 0.7, 7)
    assert ticks == [-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6]
    assert [repr(t) for t in ticks] == ["-0.6", "-0.4", "-0.2", "0.0", "0.2", "0.4", "0.6"]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0.1 + 0.2, "0.3"),
        (-0.01, "-0.01"),
        (-0.005, "-0.005"),
        (0.0, "0"),
        (-0.0, "0"),
        (0.25, "0.25"),
        (1.0, "1"),
        (80_000.0, "80,000"),
        (1234.5, "1,234.5"),
        (0.0001, "0.0001"),
        (1e-05, "1e-05"),
        (2.5e9, "2.5e+09"),
    ],
)
def test_tick_labels_are_compact(value: float, label: str) -> None:
    assert tick_label(value) == label


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.013, 0.4, [0.02, 0.05, 0.1, 0.2]),  # under two decades: 1, 2 and 5 x 10^k
        (0.5, 2000.0, [1.0, 10.0, 100.0, 1000.0]),
        (1e-6, 1e6, [1e-6, 1e-3, 1.0, 1e3, 1e6]),  # 13 powers of ten thinned to every third
        (0.0, 10.0, []),
    ],
)
def test_log_ticks(low: float, high: float, expected: list[float]) -> None:
    assert log_ticks(low, high) == expected


# --- colours and escaping ---------------------------------------------------------------------


def test_reds_runs_from_the_palettes_first_to_its_last_anchor() -> None:
    assert reds(0.0) == "#fff5f0"
    assert reds(1.0) == "#67000d"
    assert reds(0.5) == "#fb6a4a"  # the middle anchor of nine
    assert reds(-1.0) == reds(0.0) and reds(2.0) == reds(1.0) and reds(math.nan) == reds(0.0)


def test_the_canvas_escapes_text_and_prints_fixed_coordinates() -> None:
    canvas = Canvas(100.0, 50.0)
    canvas.text(-0.001, 1 / 3, '</svg><script>x</script> & "q" $x^2$ a\x1b\ud800\uffff')
    canvas.line(0.1 + 0.2, 0.0, 10.0, -0.004, "#000")
    svg = canvas.svg()
    root = _parse(svg)
    (text,) = _texts(root)
    assert text.text == '</svg><script>x</script> & "q" $x^2$ a\\x1b\\ud800\\uffff'
    assert text.get("x") == "0" and text.get("y") == "0.33"
    assert '<line x1="0.3" y1="0" x2="10" y2="0" stroke="#000" stroke-width="1"/>' in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="100pt" height="50pt" ')
    assert 'viewBox="0 0 100 50"' in svg


# --- the plots --------------------------------------------------------------------------------


def _flip() -> str:
    counts = [[50, 7, 0], [0, 40, 0], [1, 3, 30]]
    return flip_svg(SvgPage(), ["cat", "dog", "bird"], counts, reference="fp32", candidate="int8")


def test_the_flip_matrix_shades_moves_and_greys_agreement() -> None:
    root = _parse(_flip())
    fills = [r.get("fill") for r in root.iter(f"{NS}rect")][1:]  # after the background
    assert fills.count("#eeeeee") == 3  # the diagonal
    # The largest move is 1/1.15 of the top of the scale; zero cells are not drawn.
    assert fills[1] == reds(1 / 1.15) and reds(3 / 8.05) in fills and reds(1 / 8.05) in fills
    assert len(fills) == 3 + 3
    assert _text(root, "7").get("fill") == "white"  # dark cell, light label
    assert _text(root, "1").get("fill") is None  # the default dark text
    assert _text(root, "50").get("fill") == "#777777"
    assert _text(root, "predicted by int8 (candidate)") is not None
    y_label, x_label = [t for t in _texts(root) if t.text == "dog"]
    assert "transform" not in y_label.attrib
    assert x_label.get("transform", "").startswith("rotate(-90 ")  # x labels read upwards


def _latency(batches: list[int], scale: float) -> dict[str, list[LatencyStats]]:
    def stats(batch: int, ms: float) -> LatencyStats:
        return LatencyStats(
            batch_size=batch,
            iterations=100,
            p50_ms=ms,
            p90_ms=ms,
            p95_ms=ms * 1.2,
            p99_ms=ms * 1.5,
            mean_ms=ms,
            std_ms=0.1,
            cv=0.01,
            throughput_sps=batch / ms,
        )

    return {
        "fp32": [stats(b, 0.05 * b * scale) for b in batches],
        "int8": [stats(b, 0.03 * b * scale) for b in batches],
    }


def _tick_x(root: ET.Element, label: str) -> float:
    return float(_text(root, label).get("x", "nan"))


def test_latency_axes_turn_logarithmic_when_values_span_a_factor_of_8() -> None:
    root = _parse(latency_svg(SvgPage(), _latency([1, 8, 64], 1.0), reference="fp32"))
    # Log x: batch 8 lies halfway between 1 and 64 in every panel (tick labels per panel).
    xs = sorted(
        float(t.get("x", "nan"))
        for t in _texts(root)
        if t.text in ("1", "8", "64") and t.get("text-anchor") == "middle"  # not y labels
    )
    one, eight, sixty_four = xs[:3]  # the first panel's
    assert eight - one == pytest.approx(sixty_four - eight, abs=0.02)
    # Log y: 0.03 ms .. 7.2 ms -> powers of ten.
    labels = {t.text for t in _texts(root)}
    assert {"0.1", "1"} <= labels and "ms per batch" in labels
    # A narrow range stays linear, with nice ticks.
    root = _parse(latency_svg(SvgPage(), _latency([1, 2], 20.0), reference="fp32"))
    labels = {t.text for t in _texts(root)}
    assert {"1", "2", "p99 latency", "fp32 (reference)", "int8"} <= labels
    assert not {"0.1", "10"} & labels


def test_concurrency_marks_failed_requests_and_starts_at_zero() -> None:
    def load(clients: int, sps: float, errors: int = 0) -> LoadStats:
        return LoadStats(
            clients=clients,
            batch_size=1,
            duration_s=1.0,
            requests=100,
            errors=errors,
            throughput_sps=sps,
            p50_ms=1.0,
            p95_ms=2.0 * clients,
            p99_ms=3.0,
        )

    models = {"fp32": [load(1, 80_000.0), load(4, 30_000.0)], "int8": [load(1, 50_000.0, 3)]}
    root = _parse(concurrency_svg(SvgPage(), models, reference="fp32"))
    labels = [t.text for t in _texts(root)]
    assert "int8: requests failed" in labels
    assert labels.count("0") == 2 and "80,000" in labels  # both y axes from 0
    crosses = [
        ln for ln in root.iter(f"{NS}line") if ln.get("stroke") == "#c62828"
    ]  # the x in the plot and in the legend
    assert len(crosses) == 4


def test_forest_leaves_out_non_finite_values_and_draws_hollow_warnings() -> None:
    rows: list[ForestRow | None] = [
        ForestRow(math.nan, -math.inf, 0.1, "pass", True),
        ForestRow(-0.02, -0.04, 0.0, "inconclusive", False),
        None,
    ]
    svg = forest_svg(
        SvgPage(),
        ["a", "b", "c"],
        [("m", rows)],
        thresholds=[("threshold", -0.05), ("never", math.nan)],
        xlabel="x",
    )
    root = _parse(svg)
    assert not re.search(r"nan|inf", svg, re.I)
    (dot,) = [c for c in root.iter(f"{NS}circle") if c.get("stroke")]  # legend dots have none
    assert dot.get("fill") == "white" and dot.get("stroke") == "#e08a00"
    labels = [t.text for t in _texts(root)]
    assert "threshold" in labels and "never" not in labels
    assert "inconclusive" in labels and "pass" in labels  # legend: the verdicts drawn


def test_the_same_inputs_give_the_same_bytes() -> None:
    bins = CalibrationBins(rows=(0, 10, 90), confidence=(None, 0.5, 0.9), accuracy=(None, 0.4, 0.8))

    def draw() -> list[str]:
        page = SvgPage()
        return [
            _flip(),
            reliability_svg(page, [("m", [("ref", bins, "#222222"), ("cand", bins, "#1f77b4")])]),
            latency_svg(page, _latency([1, 8, 64], 1.0), reference="fp32"),
        ]

    first, second = draw(), draw()
    assert first == second
    for svg in first:
        _parse(svg)
