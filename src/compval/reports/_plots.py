"""The HTML report's plots: matplotlib figures written as inline SVG text.

Imported only by ``compval.reports.html`` when it renders, so ``import compval`` and
``compval --help`` never load matplotlib; a missing matplotlib is an ``ImportError`` here that
the renderer turns into a note. Figures are built with ``matplotlib.figure.Figure`` and drawn
by ``FigureCanvasSVG`` directly: no pyplot, no ``matplotlib.use``, nothing global left behind
(the style is an ``rc_context`` that ends with each figure).

Every string that comes from data (segment values, class and model names, slice conditions)
goes through ``visible`` first and is drawn with mathtext off, so ``$x$`` stays ``$x$`` and a
control character cannot reach the SVG. matplotlib escapes ``<``, ``&`` and quotes in the SVG
it writes. The plots take already-extracted values; they format, never compute a metric.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from compval.reports._format import visible
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
# Layout is computed, not measured (constrained layout took most of the render time, and the
# browser draws the text in its own font anyway): about this many inches per character at 9 pt.
_CHAR_IN = 0.068

_STYLE: dict[Any, Any] = {
    # Text stays text: small, selectable, drawn with the browser's fonts.
    "svg.fonttype": "none",
    "text.parse_math": False,  # '$' in a segment name is a dollar sign, not mathtext
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # one name in the SVG's font-family, not a list of 12
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
    "figure.dpi": 72.0,  # 1 pt = 1 px: the SVG's size is the size it is shown at
}
# Group ids (figure_1, axes_1, ...) are never referenced, and repeat across the figures of one
# page; clip-path and marker ids, which are, stay (unique per figure through svg.hashsalt).
_GROUP_ID = re.compile(r'<g id="[^"]*">')
_INDENT = re.compile(r"\n +")


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One segment of a forest plot: its value, interval and verdict."""

    value: float | None
    low: float | None
    high: float | None
    verdict: str
    blocking: bool


class SvgPage:
    """Numbers the figures of one page: each gets its own svg.hashsalt, so ids never collide.

    One per rendered page: the same report then gives the same salts, hence the same bytes.
    """

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def figure(self, width: float, height: float) -> Iterator[tuple[Figure, list[str]]]:
        """A styled Figure (inches); its SVG text is appended to the yielded list on exit."""
        self.count += 1
        out: list[str] = []
        salt = f"compval-figure-{self.count}"
        with mpl.rc_context({**_STYLE, "svg.hashsalt": salt}), warnings.catch_warnings():
            # With svg.fonttype 'none' the browser draws the text with its own fonts; a glyph
            # missing from matplotlib's layout font (CJK, emoji) does not matter.
            warnings.filterwarnings("ignore", "Glyph .* missing", UserWarning)
            fig = Figure(figsize=(width, height))
            yield fig, out
            FigureCanvasSVG(fig)  # drawn by the SVG canvas itself: no backend switch, no pyplot
            buf = io.StringIO()
            fig.savefig(
                buf,
                format="svg",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
            )
        text = buf.getvalue()
        text = text[text.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML
        out.append(_INDENT.sub("\n", _GROUP_ID.sub("<g>", text)).strip())


def _grid(
    fig: Figure,
    nrows: int,
    ncols: int,
    *,
    margins: tuple[float, float, float, float],
    gaps: tuple[float, float] = (0.3, 0.6),
    sharex: bool = False,
    sharey: bool = False,
) -> list[Axes]:
    """Axes on a grid with margins (left, right, top, bottom) and gaps (w, h) in inches."""
    width, height = fig.get_size_inches()
    left, right, top, bottom = margins
    cell_w = (width - left - right - (ncols - 1) * gaps[0]) / ncols
    cell_h = (height - top - bottom - (nrows - 1) * gaps[1]) / nrows
    grid = fig.add_gridspec(
        nrows,
        ncols,
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=gaps[0] / cell_w,
        hspace=gaps[1] / cell_h,
    )
    axes = grid.subplots(sharex=sharex, sharey=sharey, squeeze=False)
    return cast(list[Axes], list(np.asarray(axes).ravel()))


def _legend(fig: Figure, handles: Sequence[Any], *, left: float, ncols: int) -> None:
    """A one-line legend along the top of the figure, from ``left`` inches."""
    width, height = fig.get_size_inches()
    fig.legend(
        handles=list(handles),
        loc="upper left",
        bbox_to_anchor=(left / width, 1 - 0.04 / height),
        ncols=max(1, ncols),
        borderaxespad=0.0,
        handlelength=1.6,
        columnspacing=1.2,
    )


def _label(text: str, limit: int = _LABEL_CHARS) -> str:
    shown = visible(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _text_in(labels: Sequence[str]) -> float:
    return _CHAR_IN * max((len(t) for t in labels), default=0)


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

    One panel per (title, rows) pair, side by side with the segment ``labels`` shared:
    ``rows[i]`` belongs to ``labels[i]`` (None where that panel has no such segment).
    ``thresholds`` are (legend label, x) pairs; ``verdict_labels`` names the colours in the
    legend (default: the verdict itself).
    """
    names = verdict_labels or {v: v for v in VERDICT_COLORS}
    shown_labels = [_label(t) for t in labels]
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    left = 0.25 + _text_in(shown_labels)
    panel_h = 0.25 + 0.2 * len(labels)
    panel_w = 2.4 if len(panels) > 1 else 4.8
    width = left + panel_w * ncols + 0.3 * (ncols - 1) + 0.25
    height = 0.75 + panel_h * nrows + 0.6 * (nrows - 1) + 0.6
    with page.figure(width, height) as (fig, out):
        # Rows are not shared axes: only the first column carries the segment ticks (a shared
        # axis would build every tick in every panel, most of the drawing time).
        axes = _grid(fig, nrows, ncols, margins=(left, 0.25, 0.75, 0.6), sharex=True)
        failing: set[int] = set()
        seen: set[str] = set()
        for ax, (title, rows) in zip(axes, panels, strict=False):
            ax.grid(axis="y", visible=False)
            ax.set_title(_label(title, 40), loc="left")
            shown = [(y, r) for y, r in enumerate(rows) if r is not None]
            fails = [y for y, r in shown if r.verdict == "fail"]
            failing.update(fails)
            seen.update(r.verdict for _, r in shown)
            if fails:
                # A band across the panel per failing row: one collection, x in axes
                # coordinates, as thick as a row, and no effect on the data limits.
                bands = LineCollection(
                    [[(0.0, y), (1.0, y)] for y in fails],
                    transform=ax.get_yaxis_transform(),
                    linewidths=72 * panel_h / len(labels),
                    colors="#fde8e8",
                    zorder=0,
                )
                ax.add_collection(bands, autolim=False)
            bars = [
                (y, r.low, r.high, VERDICT_COLORS.get(r.verdict, "#777777"))
                for y, r in shown
                if r.low is not None and r.high is not None and _finite(r.low) and _finite(r.high)
            ]
            if bars:
                ax.hlines(
                    [b[0] for b in bars],
                    [b[1] for b in bars],
                    [b[2] for b in bars],
                    colors=[b[3] for b in bars],
                    linewidth=1.6,
                    zorder=2,
                )
            dots = [(y, r.value, r) for y, r in shown if r.value is not None and _finite(r.value)]
            if dots:
                edge = [VERDICT_COLORS.get(r.verdict, "#777777") for _, _, r in dots]
                face = [
                    "white" if r.verdict != "pass" and not r.blocking else e
                    for (_, _, r), e in zip(dots, edge, strict=True)
                ]
                ax.scatter(
                    [x for _, x, _ in dots],
                    [y for y, _, _ in dots],
                    s=22,
                    c=face,
                    edgecolors=edge,
                    linewidths=1.2,
                    zorder=3,
                )
            for _, threshold in thresholds:
                if math.isfinite(threshold):
                    ax.axvline(threshold, color="#444444", linestyle="--", linewidth=1)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        for i, ax in enumerate(axes[: len(panels)]):
            ax.set_ylim(len(labels) - 0.5, -0.5)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.set_yticks([])
            if i % ncols:
                continue
            # Segment names as plain text beside the first panel of each row: a tick per
            # segment per panel cost most of the drawing time of a many-segment report.
            for y, text in enumerate(shown_labels):
                ax.text(
                    -0.02,
                    y,
                    text,
                    transform=ax.get_yaxis_transform(),
                    ha="right",
                    va="center",
                    color=VERDICT_COLORS["fail"] if y in failing else "#222222",
                    fontweight="bold" if y in failing else "normal",
                )
        fig.text(
            (left + (width - left - 0.25) / 2) / width,
            0.08 / height,
            _label(xlabel, int((width - 0.2) / _CHAR_IN)),
            ha="center",
            va="bottom",
        )
        handles = [
            Line2D([], [], color=c, marker="o", linestyle="-", label=names.get(v, v))
            for v, c in VERDICT_COLORS.items()
            if v in seen
        ]
        handles += [
            Line2D([], [], color="#444444", linestyle="--", label=_label(text, 40))
            for text, t in thresholds
            if math.isfinite(t)
        ]
        _legend(fig, handles, left=0.1, ncols=len(handles))
    return out[0]


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
    ``classes[j]``; the diagonal (agreement) is grey so the moves stand out. Every non-empty
    cell is labelled with its count (callers pass at most about 20 classes).
    """
    k = len(classes)
    labels = [_label(c, 18) for c in classes]
    side = max(2.8, 0.32 * k)
    margin = 0.55 + _text_in(labels)
    with page.figure(margin + side + 0.3, margin + side + 0.2) as (fig, out):
        (ax,) = _grid(fig, 1, 1, margins=(margin, 0.3, 0.2, margin))
        ax.grid(visible=False)
        moved = [[0 if i == j else counts[i][j] for j in range(k)] for i in range(k)]
        top = max((max(row) for row in moved), default=0)
        ax.pcolormesh(
            # Zero and diagonal cells are NaN: drawn white, then the diagonal grey below.
            [
                [float(moved[i][j]) if moved[i][j] else float("nan") for j in range(k)]
                for i in range(k)
            ],
            cmap=mpl.colormaps["Reds"].with_extremes(bad="white"),
            vmin=0,
            vmax=max(top, 1) * 1.15,  # the largest move stays readable under a dark label
            edgecolors="white",
            linewidth=0.5,
        )
        for i in range(k):
            ax.add_patch(Rectangle((i, i), 1, 1, facecolor="#eeeeee", edgecolor="white"))
        for i in range(k):
            for j in range(k):
                n = counts[i][j]
                if n:
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        f"{n:,}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="#777777" if i == j else ("white" if n > 0.6 * top else "#222222"),
                    )
        ax.set_xticks([j + 0.5 for j in range(k)], labels=labels, rotation=90)
        ax.set_yticks([i + 0.5 for i in range(k)], labels=labels)
        ax.set_xlim(0, k)
        ax.set_ylim(k, 0)
        ax.set_xlabel(f"predicted by {_label(candidate, 40)} (candidate)")
        ax.set_ylabel(f"predicted by {_label(reference, 40)} (reference)")
    return out[0]


def reliability_svg(
    page: SvgPage, panels: Sequence[tuple[str, Sequence[tuple[str, CalibrationBins, str]]]]
) -> str:
    """Accuracy against mean confidence per bin: a panel per (title, curves).

    Each curve is (label, bins, colour); a dot's area grows with its bin's rows.
    """
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    width = 0.6 + 3.0 * ncols + 0.5 * (ncols - 1) + 0.2
    height = 0.35 + 3.0 * nrows + 0.75 * (nrows - 1) + 0.55
    with page.figure(width, height) as (fig, out):
        axes = _grid(
            fig, nrows, ncols, margins=(0.6, 0.2, 0.35, 0.55), gaps=(0.5, 0.75), sharey=True
        )
        for ax, (title, curves) in zip(axes, panels, strict=False):
            ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
            biggest = max((max(bins.rows, default=0) for _, bins, _ in curves), default=0)
            for label, bins, color in curves:
                points = [
                    (c, a, n)
                    for c, a, n in zip(bins.confidence, bins.accuracy, bins.rows, strict=True)
                    if c is not None and a is not None
                ]
                ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1.2)
                ax.scatter(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    s=[6 + 60 * p[2] / max(biggest, 1) for p in points],
                    color=color,
                    label=_label(label, 40),
                    zorder=3,
                )
            ax.set_title(_label(title, 40), loc="left")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("mean top-class probability in bin")
            ax.legend(loc="lower right", markerscale=0.8)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        axes[0].set_ylabel("accuracy in bin")
    return out[0]


def model_colors(names: Sequence[str], reference: str) -> dict[str, str]:
    """One colour per model, the same in every plot of a page; the reference in near-black."""
    others = [n for n in names if n != reference]
    colors = {n: _CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)] for i, n in enumerate(others)}
    colors[reference] = _REFERENCE_COLOR
    return colors


def _scale(ax: Axes, values: Sequence[float], axis: str) -> None:
    """A log scale when the values span a factor of 8 or more."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and max(positive) / min(positive) >= 8:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _model_label(model: str, reference: str) -> str:
    return _label(model, 30) + (" (reference)" if model == reference else "")


def latency_svg(
    page: SvgPage, models: Mapping[str, Sequence[LatencyStats]], *, reference: str
) -> str:
    """p50 / p95 / p99 latency against batch size, one line per model."""
    colors = model_colors(list(models), reference)
    percentiles = (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    with page.figure(8.4, 3.2) as (fig, out):
        axes = _grid(fig, 1, 3, margins=(0.7, 0.2, 0.6, 0.5), gaps=(0.25, 0.0), sharey=True)
        batches = sorted({s.batch_size for stats in models.values() for s in stats})
        values = [getattr(s, f) for stats in models.values() for s in stats for _, f in percentiles]
        for ax, (name, field) in zip(axes, percentiles, strict=True):
            for model, stats in models.items():
                points = sorted((s.batch_size, getattr(s, field)) for s in stats)
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    marker="o",
                    markersize=3.5,
                    color=colors[model],
                    linewidth=2.0 if model == reference else 1.4,
                    label=_model_label(model, reference),
                )
            ax.set_title(f"{name} latency", loc="left")
            ax.set_xlabel("batch size")
            _scale(ax, batches, "x")
            ax.set_xticks(batches, labels=[f"{b:,}" for b in batches])
            ax.minorticks_off()
        _scale(axes[0], values, "y")
        axes[0].set_ylabel("ms per batch")
        handles, _ = axes[0].get_legend_handles_labels()
        _legend(fig, handles, left=0.1, ncols=min(len(handles), 5))
    return out[0]


def concurrency_svg(
    page: SvgPage, models: Mapping[str, Sequence[LoadStats]], *, reference: str
) -> str:
    """Throughput and p95 latency against concurrent clients, one line per model."""
    colors = model_colors(list(models), reference)
    with page.figure(8.4, 3.2) as (fig, out):
        left, right = _grid(fig, 1, 2, margins=(0.8, 0.2, 0.6, 0.5), gaps=(0.9, 0.0))
        clients = sorted({s.clients for stats in models.values() for s in stats})
        for model, stats in models.items():
            points = sorted(stats, key=lambda s: s.clients)
            style: dict[str, Any] = {
                "marker": "o",
                "markersize": 3.5,
                "color": colors[model],
                "linewidth": 2.0 if model == reference else 1.4,
                "label": _model_label(model, reference),
            }
            left.plot([s.clients for s in points], [s.throughput_sps for s in points], **style)
            p95 = [(s.clients, s.p95_ms) for s in points if s.p95_ms is not None]
            right.plot([p[0] for p in p95], [p[1] for p in p95], **style)
            failed = [s for s in points if s.errors]
            if failed:
                left.plot(
                    [s.clients for s in failed],
                    [s.throughput_sps for s in failed],
                    marker="x",
                    markersize=8,
                    color=VERDICT_COLORS["fail"],
                    linestyle="none",
                    label=f"{_label(model, 30)}: requests failed",
                )
        left.set_title("throughput", loc="left")
        left.set_ylabel("rows per second")
        right.set_title("p95 latency", loc="left")
        right.set_ylabel("ms per request")
        for ax in (left, right):
            ax.set_xlabel("concurrent clients")
            ax.set_xticks(clients, labels=[f"{c:,}" for c in clients])
            ax.set_ylim(bottom=0)
        handles, _ = left.get_legend_handles_labels()
        _legend(fig, handles, left=0.1, ncols=min(len(handles), 5))
    return out[0]


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
