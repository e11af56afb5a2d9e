"""The HTML report's plots, written as inline SVG by ``_svg`` (standard library only).

STYLE.md prefers matplotlib for plots; this module deviates for speed. With matplotlib the
plots cost about 0.8 s of a 2.4 s ``compval validate`` on a 200k-row file (importing
matplotlib about 0.45 s, drawing 4 figures about 0.17 s), and the plots are simple primitives
whose layout compval computed itself anyway (the browser draws the text). Written directly,
a page's plots take a few milliseconds and import nothing beyond the standard library.

Every string that comes from data (segment values, class and model names, slice conditions)
goes through ``visible`` and is XML-escaped by the canvas: it stays text (``$x$`` is drawn
as ``$x$``, ``</svg>`` closes nothing). The plots take already-extracted values; they format, never
compute a metric. Sizes are in pt (1 inch = 72 pt); coordinates are clamped to each panel, so
no clip path (and no id) is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from compval.reports._format import visible
from compval.reports._svg import (
    INCH,
    Canvas,
    log_ticks,
    nice_ticks,
    reds,
    text_width,
    tick_label,
)
from compval.results import CalibrationBins, LatencyStats, LoadStats, SliceResult

__all__ = [
    "VERDICT_COLORS",
    "ForestRow",
    "SvgPage",
    "concurrency_svg",
    "flip_svg",
    "forest_svg",
    "latency_svg",
    "model_colors",
    "reliability_svg",
    "slices_svg",
]

VERDICT_COLORS = {"fail": "#c62828", "inconclusive": "#e08a00", "pass": "#3b6ea5"}
_REFERENCE_COLOR = "#222222"
_CANDIDATE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_LABEL_CHARS = 48
_GRID = "#e4e4e4"
_SPINE = "#333333"
_DASH = "3.7 1.6"  # matplotlib's "--" at a 1 pt line
_TICK = 3.5  # tick length, and the gap from a tick to its label
_LEGEND_ROW = 13.0


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One segment of a forest plot: its value, interval and verdict."""

    value: float | None
    low: float | None
    high: float | None
    verdict: str
    blocking: bool


class SvgPage:
    """The figures of one page: ``figure`` starts the next one and counts it."""

    def __init__(self) -> None:
        self.count = 0

    def figure(self, width: float, height: float) -> Canvas:
        """A blank canvas of ``width`` x ``height`` pt."""
        self.count += 1
        return Canvas(width, height)


# --- panels: a data range mapped onto a box, with its axes --------------------------------


@dataclass(frozen=True, slots=True)
class _Scale:
    """Data ``low..high`` onto coordinates ``start..end`` (log10 if ``log``), clamped."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        if self.log:
            lo, hi = math.log10(self.low), math.log10(self.high)
            t = (math.log10(value) - lo) / (hi - lo) if value > 0 else 0.0
        else:
            t = (value - self.low) / (self.high - self.low)
        return self.start + min(max(t, 0.0), 1.0) * (self.end - self.start)


def _limits(
    values: Sequence[float], *, log: bool = False, zero: bool = False
) -> tuple[float, float]:
    """The data range with 5% margins (in log space on a log axis); ``zero``: from 0."""
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return (1.0, 10.0) if log else (0.0, 1.0)
    if log:
        lo, hi = math.log10(min(finite)), math.log10(max(finite))
        pad = (hi - lo) * 0.05 or 0.5
        return 10 ** (lo - pad), 10 ** (hi + pad)
    lo, hi = min(finite), max(finite)
    if zero:
        lo = min(lo, 0.0)
        return lo, (hi * 1.05 if hi > 0 else 1.0)
    pad = (hi - lo) * 0.05 or (abs(lo) * 0.05 or 0.05)
    return lo - pad, hi + pad


def _is_log(values: Sequence[float]) -> bool:
    """A log scale when the positive values span a factor of 8 or more."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) >= 8


@dataclass(frozen=True, slots=True)
class _Panel:
    """One plot area: ``x`` and ``y`` map data to pixels inside (left, top, right, bottom)."""

    x: _Scale
    y: _Scale

    @property
    def left(self) -> float:
        return self.x.start

    @property
    def right(self) -> float:
        return self.x.end

    @property
    def top(self) -> float:
        return min(self.y.start, self.y.end)

    @property
    def bottom(self) -> float:
        return max(self.y.start, self.y.end)


def _panel(
    box: tuple[float, float, float, float],
    x: tuple[float, float],
    y: tuple[float, float],
    *,
    xlog: bool = False,
    ylog: bool = False,
    yflip: bool = False,
) -> _Panel:
    """A panel over ``box`` (left, top, width, height pt); y grows upwards unless ``yflip``."""
    left, top, width, height = box
    ys = (top, top + height) if yflip else (top + height, top)
    return _Panel(_Scale(*x, left, left + width, xlog), _Scale(*y, *ys, ylog))


def _axes(
    c: Canvas,
    p: _Panel,
    *,
    xticks: Sequence[tuple[float, str]] = (),
    yticks: Sequence[tuple[float, str]] = (),
    ylabels: bool = True,
    grid: str = "xy",
    title: str = "",
) -> None:
    """Grid, left and bottom spines, tick marks and labels, and a title above on the left.

    An x tick label that would overlap the one before it is left out (its tick stays).
    """
    for value, _ in xticks if "x" in grid else ():
        c.line(p.x(value), p.top, p.x(value), p.bottom, _GRID, 0.6)
    for value, _ in yticks if "y" in grid else ():
        c.line(p.left, p.y(value), p.right, p.y(value), _GRID, 0.6)
    c.line(p.left, p.top, p.left, p.bottom, _SPINE, 0.8)
    c.line(p.left, p.bottom, p.right, p.bottom, _SPINE, 0.8)
    drawn_to = -math.inf
    for value, label in xticks:
        x = p.x(value)
        c.line(x, p.bottom, x, p.bottom + _TICK, _SPINE, 0.8)
        half = text_width(label) / 2
        if x - half >= drawn_to + 3:
            c.text(x, p.bottom + 2 * _TICK, label, anchor="middle", valign="top")
            drawn_to = x + half
    for value, label in yticks:
        y = p.y(value)
        c.line(p.left - _TICK, y, p.left, y, _SPINE, 0.8)
        if ylabels:
            c.text(p.left - 2 * _TICK, y, label, anchor="end", valign="middle")
    if title:
        c.text(p.left, p.top - 6, title, size=10)


def _numbered(values: Sequence[float]) -> list[tuple[float, str]]:
    return [(v, tick_label(v)) for v in values]


def _xlabel(c: Canvas, p: _Panel, text: str) -> None:
    """An axis label under the tick labels, centred on the panel."""
    c.text(
        (p.left + p.right) / 2, p.bottom + 2 * _TICK + 9 + 4, text, anchor="middle", valign="top"
    )


def _ylabel(c: Canvas, p: _Panel, text: str, tick_width: float) -> None:
    """An axis label reading upwards, left of tick labels ``tick_width`` pt wide."""
    x = p.left - 2 * _TICK - tick_width - 4 - 2  # its baseline (descenders reach right of it)
    c.text(x, (p.top + p.bottom) / 2, text, anchor="middle", vertical=True)


def _ylabel_room(labels: Sequence[str]) -> float:
    """The room a y axis needs left of its panel: tick labels, the axis label and gaps."""
    return 2 * _TICK + max((text_width(t) for t in labels), default=0.0) + 6 + 9 + 4


# --- legends ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    """A legend entry: a short line and/or marker in ``color``, then ``label``."""

    label: str
    color: str
    line: str | None = "solid"  # solid, dashed or None
    marker: str | None = "o"  # o, x or None
    width: float = 1.4


_KEY_SIZE = 8.0
_HANDLE = 16.0


def _key_width(key: _Key) -> float:
    return _HANDLE + 5 + text_width(key.label, _KEY_SIZE)


def _legend_rows(keys: Sequence[_Key], width: float) -> list[list[_Key]]:
    """The entries in rows of at most ``width`` pt (one row unless they do not fit)."""
    rows: list[list[_Key]] = [[]]
    used = 0.0
    for key in keys:
        wide = _key_width(key)
        if rows[-1] and used + wide > width:
            rows.append([])
            used = 0.0
        rows[-1].append(key)
        used += wide + 12
    return rows if rows[0] else []


def _draw_key(c: Canvas, key: _Key, x: float, y: float) -> None:
    if key.line is not None:
        dash = _DASH if key.line == "dashed" else None
        c.line(x, y, x + _HANDLE, y, key.color, key.width, dash=dash)
    _marker(c, x + _HANDLE / 2, y, key.marker, key.color)
    c.text(x + _HANDLE + 5, y, key.label, size=_KEY_SIZE, valign="middle")


def _legend(c: Canvas, rows: Sequence[Sequence[_Key]], x0: float, y0: float) -> None:
    """Rows of entries from (x0, y0): y0 is the middle of the first row."""
    for i, row in enumerate(rows):
        x = x0
        for key in row:
            _draw_key(c, key, x, y0 + i * _LEGEND_ROW)
            x += _key_width(key) + 12


def _marker(c: Canvas, x: float, y: float, marker: str | None, color: str, r: float = 2.2) -> None:
    if marker == "o":
        c.circle(x, y, r, color)
    elif marker == "x":
        c.line(x - 4, y - 4, x + 4, y + 4, color, 1.3)
        c.line(x - 4, y + 4, x + 4, y - 4, color, 1.3)


def _label(text: str, limit: int = _LABEL_CHARS) -> str:
    shown = visible(text)
    return shown if len(shown) <= limit else shown[: max(limit - 1, 0)] + "…"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fits(width: float, size: float = 9.0) -> int:
    """How many characters fit in ``width`` pt at ``size`` pt."""
    return max(4, int(width / text_width("x", size)))


# --- the plots ----------------------------------------------------------------------------


def forest_svg(
    page: SvgPage,
    labels: Sequence[str],
    panels: Sequence[tuple[str, Sequence[ForestRow | None]]],
    *,
    thresholds: Sequence[tuple[str, float]],
    xlabel: str,
    verdict_labels: Mapping[str, str] | None = None,
) -> str:
    """Each segment's value with its interval, the reference line(s), failing rows in red.

    One panel per (title, rows) pair, side by side (at most 4 a row) with the segment
    ``labels`` shared: ``rows[i]`` belongs to ``labels[i]`` (None where that panel has no
    such segment). ``thresholds`` are (legend label, x) pairs; ``verdict_labels`` names the
    colours in the legend (default: the verdict itself). Non-finite values are not drawn.
    """
    names = verdict_labels or {v: v for v in VERDICT_COLORS}
    shown_labels = [_label(t) for t in labels]
    n = max(len(labels), 1)
    ncols = max(min(len(panels), 4), 1)
    nrows = -(-len(panels) // ncols)
    left = 0.25 * INCH + max((text_width(t) for t in shown_labels), default=0.0)
    panel_w = (2.4 if len(panels) > 1 else 4.8) * INCH
    panel_h = (0.25 + 0.2 * n) * INCH
    gap_w, gap_h = 0.3 * INCH, 0.6 * INCH
    width = left + panel_w * ncols + gap_w * (ncols - 1) + 0.25 * INCH
    lines = [(text, t) for text, t in thresholds if math.isfinite(t)]
    all_rows = [r for _, rows in panels for r in rows if r is not None]
    keys = [
        _Key(names.get(v, v), color)
        for v, color in VERDICT_COLORS.items()
        if any(r.verdict == v for r in all_rows)
    ]
    keys += [_Key(_label(text, 40), "#444444", "dashed", None, 1.0) for text, _ in lines]
    legend = _legend_rows(keys, width - 0.2 * INCH)
    top = 0.75 * INCH + _LEGEND_ROW * max(len(legend) - 1, 0)
    height = top + panel_h * nrows + gap_h * (nrows - 1) + 0.6 * INCH
    c = page.figure(width, height)

    # One x range for every panel (they compare the same metric): data, intervals, thresholds.
    xs = [t for _, t in lines]
    for r in all_rows:
        xs += [v for v in (r.value,) if v is not None and _finite(v)]
        if r.low is not None and r.high is not None and _finite(r.low) and _finite(r.high):
            xs += [r.low, r.high]
    xrange = _limits(xs)
    ticks = _numbered(nice_ticks(*xrange, 5 if len(panels) > 1 else 7))
    title_chars = min(40, _fits(panel_w + gap_w * 0.8, 10))
    failing: set[int] = set()
    placed: list[tuple[int, _Panel]] = []
    for i, (title, rows) in enumerate(panels):
        col, row = i % ncols, i // ncols
        box = (left + col * (panel_w + gap_w), top + row * (panel_h + gap_h), panel_w, panel_h)
        p = _panel(box, xrange, (-0.5, n - 0.5), yflip=True)
        placed.append((col, p))
        step = panel_h / n
        shown = [(y, r) for y, r in enumerate(rows) if r is not None]
        fails = [y for y, r in shown if r.verdict == "fail"]
        failing.update(fails)
        for y in fails:  # a pale band behind each failing row, across the panel
            c.rect(p.left, p.y(y) - step / 2, panel_w, step, "#fde8e8")
        _axes(c, p, xticks=ticks, grid="x", title=_label(title, title_chars))
        for _, t in lines:
            c.line(p.x(t), p.top, p.x(t), p.bottom, "#444444", 1.0, dash=_DASH)
        for y, r in shown:
            color = VERDICT_COLORS.get(r.verdict, "#777777")
            if r.low is not None and r.high is not None and _finite(r.low) and _finite(r.high):
                c.line(p.x(r.low), p.y(y), p.x(r.high), p.y(y), color, 1.6)
            if r.value is not None and _finite(r.value):
                hollow = r.verdict != "pass" and not r.blocking
                c.circle(
                    p.x(r.value),
                    p.y(y),
                    2.4,
                    "white" if hollow else color,
                    stroke=color,
                    stroke_width=1.2,
                )
    # Segment names once per row of panels, beside its first panel; failing ones red and bold.
    for col, p in placed:
        if col:
            continue
        for y, text in enumerate(shown_labels):
            fail = y in failing
            c.text(
                p.left - 0.02 * panel_w,
                p.y(y),
                text,
                anchor="end",
                valign="middle",
                color=VERDICT_COLORS["fail"] if fail else "#222222",
                bold=fail,
            )
    shown_xlabel = _label(xlabel, _fits(width - 0.2 * INCH))
    c.text(left + (width - left - 0.25 * INCH) / 2, height - 8, shown_xlabel, anchor="middle")
    _legend(c, legend, 0.1 * INCH, 10)
    return c.svg()


def flip_svg(
    page: SvgPage,
    classes: Sequence[str],
    counts: Sequence[Sequence[int]],
    *,
    reference: str,
    candidate: str,
) -> str:
    """A (reference class x candidate class) heat map: off-diagonal cells are the moves.

    ``counts[i][j]`` is the rows the reference predicted as ``classes[i]`` and the candidate as
    ``classes[j]``; the diagonal (agreement) is grey so the moves stand out, the moves are
    shaded white to dark red ("Reds", up to 1.15 x the largest move). Every non-empty cell is
    labelled with its count (callers pass at most about 20 classes).
    """
    k = len(classes)
    labels = [_label(c, 18) for c in classes]
    label_w = max((text_width(t) for t in labels), default=0.0)
    side = max(2.8, 0.32 * k) * INCH
    margin = 0.55 * INCH + label_w
    c = page.figure(margin + side + 0.3 * INCH, margin + side + 0.2 * INCH)
    p = _panel((margin, 0.2 * INCH, side, side), (0.0, max(k, 1)), (0.0, max(k, 1)), yflip=True)
    cell = side / max(k, 1)
    moved = [[0 if i == j else counts[i][j] for j in range(k)] for i in range(k)]
    top = max((max(row) for row in moved), default=0)
    vmax = max(top, 1) * 1.15  # the largest move stays readable under a dark label
    for i in range(k):
        for j in range(k):
            x, y = p.x(j), p.y(i)
            if i == j:
                c.rect(x, y, cell, cell, "#eeeeee", stroke="white")
            elif moved[i][j] > 0:
                c.rect(x, y, cell, cell, reds(moved[i][j] / vmax), stroke="white", stroke_width=0.5)
    for i in range(k):
        for j in range(k):
            count = counts[i][j]
            if count:
                color = "#777777" if i == j else ("white" if count > 0.6 * top else "#222222")
                c.text(
                    p.x(j + 0.5),
                    p.y(i + 0.5),
                    f"{count:,}",
                    size=7,
                    anchor="middle",
                    valign="middle",
                    color=color,
                )
    _axes(c, p, yticks=[(i + 0.5, t) for i, t in enumerate(labels)], grid="")
    for j, text in enumerate(labels):  # reading upwards, ending at the tick
        x = p.x(j + 0.5)
        c.line(x, p.bottom, x, p.bottom + _TICK, _SPINE, 0.8)
        c.text(x, p.bottom + 2 * _TICK, text, anchor="end", valign="middle", vertical=True)
    middle = (p.left + p.right) / 2
    room = min(40, _fits(side) - len("predicted by  (reference)"))  # a name fits along the side
    candidate_text = f"predicted by {_label(candidate, room)} (candidate)"
    c.text(
        middle, p.bottom + 2 * _TICK + label_w + 4, candidate_text, anchor="middle", valign="top"
    )
    reference_text = f"predicted by {_label(reference, room)} (reference)"
    _ylabel(c, p, reference_text, label_w)
    return c.svg()


def reliability_svg(
    page: SvgPage, panels: Sequence[tuple[str, Sequence[tuple[str, CalibrationBins, str]]]]
) -> str:
    """Accuracy against mean confidence per bin: a panel per (title, curves), 3 a row.

    Each curve is (label, bins, colour); a dot's area grows with its bin's rows.
    """
    ncols = max(min(len(panels), 3), 1)
    nrows = -(-len(panels) // ncols)
    size, gap_w, gap_h = 3.0 * INCH, 0.5 * INCH, 0.75 * INCH
    left, top = 0.6 * INCH, 0.35 * INCH
    width = left + size * ncols + gap_w * (ncols - 1) + 0.2 * INCH
    height = top + size * nrows + gap_h * (nrows - 1) + 0.55 * INCH
    c = page.figure(width, height)
    ticks = _numbered([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for i, (title, curves) in enumerate(panels):
        col, row = i % ncols, i // ncols
        box = (left + col * (size + gap_w), top + row * (size + gap_h), size, size)
        p = _panel(box, (0.0, 1.0), (0.0, 1.02))
        _axes(c, p, xticks=ticks, yticks=ticks, ylabels=col == 0, title=_label(title, 40))
        c.line(p.x(0), p.y(0), p.x(1), p.y(1), "#999999", 1.0, dash=_DASH)
        biggest = max((max(bins.rows, default=0) for _, bins, _ in curves), default=0)
        for _, bins, color in curves:
            points = [
                (p.x(conf), p.y(acc), rows)
                for conf, acc, rows in zip(bins.confidence, bins.accuracy, bins.rows, strict=True)
                if conf is not None
                and acc is not None
                and math.isfinite(conf)
                and math.isfinite(acc)
            ]
            c.polyline([(x, y) for x, y, _ in points], color, 1.2)
            for x, y, rows in points:  # area (pt²) 6 + 60 x the bin's share of the biggest bin
                c.circle(x, y, math.sqrt(6 + 60 * rows / max(biggest, 1)) / 2, color)
        _xlabel(c, p, "mean top-class probability in bin")
        if col == 0:
            _ylabel(c, p, "accuracy in bin", text_width("0.8"))
        # The legend in the lower right corner, where a calibrated curve (the diagonal) is not.
        keys = [_Key(_label(label, 40), color, None) for label, _, color in curves]
        key_w = max((_key_width(k) for k in keys), default=0.0)
        x0, y0 = p.right - 4 - key_w, p.bottom - 8 - _LEGEND_ROW * (len(keys) - 1)
        _legend(c, [[k] for k in keys], x0, y0)
    return c.svg()


def model_colors(names: Sequence[str], reference: str) -> dict[str, str]:
    """One colour per model, the same in every plot of a page; the reference in near-black."""
    others = [n for n in names if n != reference]
    colors = {n: _CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)] for i, n in enumerate(others)}
    colors[reference] = _REFERENCE_COLOR
    return colors


def _model_label(model: str, reference: str) -> str:
    return _label(model, 30) + (" (reference)" if model == reference else "")


def _series(
    c: Canvas, p: _Panel, points: Sequence[tuple[float, float]], color: str, width: float
) -> None:
    """A line with dot markers through the finite points (positive ones on a log axis)."""
    kept = [
        (p.x(x), p.y(y))
        for x, y in points
        if math.isfinite(x)
        and math.isfinite(y)
        and (x > 0 or not p.x.log)
        and (y > 0 or not p.y.log)
    ]
    c.polyline(kept, color, width)
    for x, y in kept:
        c.circle(x, y, 2.2, color)


def latency_svg(
    page: SvgPage, models: Mapping[str, Sequence[LatencyStats]], *, reference: str
) -> str:
    """p50 / p95 / p99 latency against batch size, one line per model, sharing the y axis.

    An axis whose values span a factor of 8 or more is logarithmic.
    """
    colors = model_colors(list(models), reference)
    percentiles = (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    batches = sorted({s.batch_size for stats in models.values() for s in stats})
    values = [
        float(getattr(s, f)) for stats in models.values() for s in stats for _, f in percentiles
    ]
    xlog, ylog = _is_log(batches), _is_log(values)
    yrange = _limits(values, log=ylog)
    yvalues = log_ticks(*yrange) if ylog else nice_ticks(*yrange, 6)
    yticks = _numbered(yvalues)
    width = 8.4 * INCH
    keys = [
        _Key(_model_label(m, reference), colors[m], width=2.0 if m == reference else 1.4)
        for m in models
    ]
    legend = _legend_rows(keys, width - 0.2 * INCH)
    top = 0.6 * INCH + _LEGEND_ROW * max(len(legend) - 1, 0)
    height = top + 2.1 * INCH + 0.5 * INCH
    left = max(0.7 * INCH, _ylabel_room([t for _, t in yticks]))
    gap = 0.25 * INCH
    panel_w = (width - left - 0.2 * INCH - 2 * gap) / 3
    c = page.figure(width, height)
    xrange = _limits([float(b) for b in batches], log=xlog)
    xticks = [(float(b), f"{b:,}") for b in batches]
    for i, (name, field) in enumerate(percentiles):
        box = (left + i * (panel_w + gap), top, panel_w, height - top - 0.5 * INCH)
        p = _panel(box, xrange, yrange, xlog=xlog, ylog=ylog)
        _axes(c, p, xticks=xticks, yticks=yticks, ylabels=i == 0, title=f"{name} latency")
        for model, stats in models.items():
            points = sorted((float(s.batch_size), float(getattr(s, field))) for s in stats)
            _series(c, p, points, colors[model], 2.0 if model == reference else 1.4)
        _xlabel(c, p, "batch size")
        if i == 0:
            _ylabel(c, p, "ms per batch", max(text_width(t) for _, t in yticks) if yticks else 0.0)
    _legend(c, legend, 0.1 * INCH, 10)
    return c.svg()


def concurrency_svg(
    page: SvgPage, models: Mapping[str, Sequence[LoadStats]], *, reference: str
) -> str:
    """Throughput and p95 latency against concurrent clients, one line per model.

    Both y axes start at 0; a red x marks a client count where requests failed.
    """
    colors = model_colors(list(models), reference)
    clients = sorted({s.clients for stats in models.values() for s in stats})
    ordered = {m: sorted(stats, key=lambda s: s.clients) for m, stats in models.items()}
    throughput = {
        m: [(float(s.clients), s.throughput_sps) for s in st] for m, st in ordered.items()
    }
    p95 = {
        m: [(float(s.clients), s.p95_ms) for s in st if s.p95_ms is not None]
        for m, st in ordered.items()
    }
    width = 8.4 * INCH
    keys: list[_Key] = []
    for model, stats in ordered.items():
        keys.append(
            _Key(
                _model_label(model, reference),
                colors[model],
                width=2.0 if model == reference else 1.4,
            )
        )
        if any(s.errors for s in stats):
            keys.append(
                _Key(f"{_label(model, 30)}: requests failed", VERDICT_COLORS["fail"], None, "x")
            )
    legend = _legend_rows(keys, width - 0.2 * INCH)
    top = 0.6 * INCH + _LEGEND_ROW * max(len(legend) - 1, 0)
    height = top + 2.1 * INCH + 0.5 * INCH
    sides = []
    for series in (throughput, p95):
        yrange = _limits([y for pts in series.values() for _, y in pts], zero=True)
        sides.append((series, yrange, _numbered(nice_ticks(*yrange, 6))))
    rooms = [max(0.8 * INCH, _ylabel_room([t for _, t in ticks])) for _, _, ticks in sides]
    rooms[1] = max(rooms[1], 0.9 * INCH)
    panel_w = (width - rooms[0] - rooms[1] - 0.2 * INCH) / 2
    c = page.figure(width, height)
    xrange = _limits([float(n) for n in clients])
    xticks = [(float(n), f"{n:,}") for n in clients]
    titles = (("throughput", "rows per second"), ("p95 latency", "ms per request"))
    x = 0.0
    for (series, yrange, yticks), room, (title, ylabel) in zip(sides, rooms, titles, strict=True):
        x += room
        p = _panel((x, top, panel_w, height - top - 0.5 * INCH), xrange, yrange)
        x += panel_w
        _axes(c, p, xticks=xticks, yticks=yticks, title=title)
        for model, points in series.items():
            _series(c, p, points, colors[model], 2.0 if model == reference else 1.4)
        if series is throughput:
            for stats in ordered.values():
                for s in stats:
                    if s.errors and math.isfinite(s.throughput_sps):
                        _marker(
                            c, p.x(s.clients), p.y(s.throughput_sps), "x", VERDICT_COLORS["fail"]
                        )
        _xlabel(c, p, "concurrent clients")
        _ylabel(c, p, ylabel, max((text_width(t) for _, t in yticks), default=0.0))
    _legend(c, legend, 0.1 * INCH, 10)
    return c.svg()


def slices_svg(page: SvgPage, slices: Sequence[SliceResult], *, title: str, alpha: float) -> str:
    """Each discovered slice's accuracy delta with its interval; significant drops in red."""
    rows: list[ForestRow | None] = [
        ForestRow(
            value=s.delta,
            low=s.ci[0],
            high=s.ci[1],
            verdict="fail" if s.delta < 0 and s.p_value_adjusted < alpha else "pass",
            blocking=True,
        )
        for s in slices
    ]
    return forest_svg(
        page,
        [f"{s.description} (n={s.n:,})" for s in slices],
        [(title, rows)],
        thresholds=[("no difference", 0.0)],
        xlabel="accuracy delta on the slice (candidate - reference)",
        verdict_labels={
            "fail": f"worse (Holm-adjusted p < {alpha:g})",
            "pass": "not shown worse",
        },
    )
