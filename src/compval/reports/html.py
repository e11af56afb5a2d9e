"""The HTML rendering of a report: one self-contained page to look at (``report.html``).

Layout: the verdict first (one line per candidate), then the checks that did not pass with
their reasons, then plots where looking beats reading: a forest plot per segmented criterion
(each segment's value with its interval, the threshold, failing segments in red), the flip
matrix (which classes move where between reference and candidate), reliability diagrams of
both models, latency against batch size and throughput under concurrency, and the discovered
slices. Overall metrics and passing checks follow in collapsed blocks. A section appears only
when the report holds its data.

Self-contained: inline CSS and inline SVG, no script, nothing fetched. A Content-Security-
Policy ``<meta>`` forbids scripts and every network request, a second line of defence behind
the escaping: every string from data (segment values, class, column and model names, ids,
messages) goes through ``visible`` (control characters spelled out) and ``html.escape``;
inside the plots the SVG writer (``_svg``) escapes it the same way.

The plots are drawn by compval's own SVG writer (``_plots``, standard library only): they
need no optional package and cost a few milliseconds.

Deterministic: the same report gives the same bytes (no render time is written; the run's
start time comes from the report, and the SVG has no ids and fixed-precision coordinates).
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Sequence

from compval.reports._format import (
    _mapping,
    _profile_concurrency_rows,
    fmt_delta,
    fmt_interval,
    fmt_number,
    fmt_observed,
    fmt_segment,
    fmt_threshold,
    is_overall,
    metric_label,
    profile_latency_rows,
    profile_speedup_rows,
    profile_target_line,
    profile_unsupported_lines,
    sorted_checks,
    visible,
)
from compval.reports._numerics import LAYER_HEADERS, TOP_LAYERS, layer_cells, numerics_summary
from compval.reports._plots import (
    ForestRow,
    SvgPage,
    concurrency_svg,
    flip_svg,
    forest_svg,
    latency_svg,
    model_colors,
    reliability_svg,
    slices_svg,
)
from compval.reports._robustness import ROBUSTNESS_HEADERS, robustness_rows, search_lines
from compval.results import (
    POINT_ONLY_NOTE,
    CheckResult,
    FlipMatrix,
    MetricValue,
    ProfileSection,
    Report,
    SliceResult,
)

__all__ = ["render_html"]

_MAX_TABLE_ROWS = 500
_MAX_FOREST_ROWS = 40
_MAX_FOREST_FIGURES = 24
_MAX_FLIP_CLASSES = 20
_MAX_FLIP_ROWS = 10
_MAX_CELL_CHARS = 1000
_VERDICT_RANK = {"fail": 0, "inconclusive": 1, "pass": 2}

_CSS = """
:root{--fail:#c62828;--inconclusive:#b36b00;--pass:#2e7d32;--muted:#5f6368;--line:#dadce0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#202124;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
section,header{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;
margin:0 0 16px}
h1{margin:0 0 8px;font-size:26px}h2{margin:0 0 12px;font-size:19px}h3{margin:16px 0 8px;
font-size:15px}
header.pass{border-top:6px solid var(--pass)}header.fail{border-top:6px solid var(--fail)}
.badge{display:inline-block;padding:1px 10px;border-radius:12px;color:#fff;font-weight:600}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.badge.inconclusive{background:var(--inconclusive)}
ul.candidates{list-style:none;padding:0;margin:8px 0}ul.candidates li{margin:4px 0}
.facts,.note,figcaption{color:var(--muted)}
.warn{background:#fff4e5;border-left:4px solid var(--inconclusive);padding:6px 10px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 8px}
table.compact{width:auto;min-width:40%}
.scroll{overflow-x:auto}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top;
overflow-wrap:break-word}
th{background:#f1f3f4;font-weight:600}td.num{text-align:right;white-space:nowrap}
td.fail{color:var(--fail);font-weight:600}td.inconclusive{color:var(--inconclusive);
font-weight:600}td.pass{color:var(--pass)}
figure{margin:12px 0}figure svg{max-width:100%;height:auto}
details>summary{cursor:pointer;font-weight:600;font-size:16px}
"""


def render_html(report: Report) -> str:
    """Render ``report`` as one self-contained HTML page.

    Args:
        report: The report to render.

    Returns:
        The HTML text, ending with a newline. The same report gives the same text.

    Example:
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=10, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> page = render_html(Report(run=run, metrics=(), checks=(), candidates=()))
        >>> "<title>compval: PASSED</title>" in page
        True
    """
    context = _Context(report)
    word = "PASSED" if report.passed else "FAILED"
    body = [
        *_header(report),
        *_failing_section(report),
        *_forest_section(context),
        *_flip_section(context),
        *_reliability_section(context),
        *_performance_section(context),
        *_numerics_section(report),
        *_robustness_section(report),
        *_slices_section(context),
        *_overall_section(report),
        *_passing_section(report),
        '<p class="facts">All values, including rows left out here: report.json.</p>',
    ]
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # No script may run and nothing may be fetched: the page needs neither.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>compval: {word}</title>",
        f"<style>{_CSS.strip()}</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    return "\n".join([*head, *body, "</main>", "</body>", "</html>"]) + "\n"


class _Context:
    """What the plotting sections share: the report and the page's figures."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.page = SvgPage()
        self.reference = _reference_name(report)
        self.metrics: dict[tuple[str, str, str | None], MetricValue] = {
            (m.candidate, m.metric, m.segment): m for m in report.metrics
        }

    def figure(self, svg: str, caption: str) -> list[str]:
        """An inline SVG with its caption."""
        return ["<figure>", svg, f"<figcaption>{_h(caption)}</figcaption>", "</figure>"]


# --- escaping and tables --------------------------------------------------------------------


def _h(text: object) -> str:
    """Text from anywhere, safe as HTML text or a quoted attribute value."""
    return html.escape(visible(str(text)), quote=True)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_CELL_CHARS else text[: _MAX_CELL_CHARS - 1] + "…"


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    numeric: Iterable[int] = (),
    classes: Sequence[str | None] | None = None,
    compact: bool = False,
) -> list[str]:
    """A table of escaped cells; ``classes[i]`` is a CSS class for row i's verdict cell."""
    right = set(numeric)
    out = [
        '<div class="scroll"><table class="compact">' if compact else '<div class="scroll"><table>'
    ]
    out.append("<tr>" + "".join(f"<th>{_h(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows[:_MAX_TABLE_ROWS]):
        cells = []
        for j, cell in enumerate(row):
            css = "num" if j in right else (classes[i] if classes and j == 0 else None)
            attr = f' class="{css}"' if css else ""
            cells.append(f"<td{attr}>{_h(_short(str(cell)))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    if len(rows) > _MAX_TABLE_ROWS:
        more = len(rows) - _MAX_TABLE_ROWS
        out.append(f'<p class="note">{more:,} more rows in report.json.</p>')
    return out


def _verdict_text(check: CheckResult) -> str:
    if check.verdict == "pass" or check.blocking:
        return check.verdict
    return f"{check.verdict} (non-blocking)"


def _reference_name(report: Report) -> str:
    for name, model in report.run.models.items():
        if _mapping(model).get("role") == "reference":
            return str(name)
    if report.profile is not None:
        return report.profile.reference
    return "reference"


def _number(value: object) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


# --- verdict and checks ---------------------------------------------------------------------


def _header(report: Report) -> list[str]:
    word = "pass" if report.passed else "fail"
    out = [
        f'<header class="{word}">',
        f'<h1><span class="badge {word}">{word.upper()}ED</span> compval</h1>',
    ]
    names = list(report.candidates)
    names += [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]
    if names:
        out.append('<ul class="candidates">')
        out += [_candidate_item(report, name) for name in names]
        out.append("</ul>")
    if not report.checks:
        out.append("<p>No acceptance criteria were checked: nothing is gated.</p>")
    if report.statistics is not None and report.statistics.point_only:
        out.append(f'<p class="warn">{_h(POINT_ONLY_NOTE)}</p>')
    run = report.run
    facts = [f"{fmt_number(run.data_rows)} rows", f"task {run.task}", f"seed {run.seed}"]
    facts += [f"reference {_reference_name(report)}", f"compval {run.compval_version}"]
    if run.spec_hash:
        facts.append(f"spec {run.spec_hash[:19]}")
    facts.append(f"run {run.started_at}")
    out.append(f'<p class="facts">{_h(" · ".join(facts))}</p>')
    if run.notes:
        out.append("<ul>" + "".join(f"<li>{_h(n)}</li>" for n in run.notes) + "</ul>")
    out.append("</header>")
    return out


def _candidate_item(report: Report, name: str) -> str:
    checks = [c for c in report.checks if c.candidate == name]
    passed = sum(c.verdict == "pass" for c in checks)
    notes = [f"{passed} of {len(checks)} checks passed"]
    for verdict in ("fail", "inconclusive"):
        count = sum(c.verdict == verdict and c.blocking for c in checks)
        if count:
            notes.append(f"{count} {'failed' if verdict == 'fail' else 'inconclusive'}")
    warnings = sum(c.verdict != "pass" and not c.blocking for c in checks)
    if warnings:
        notes.append(f"{warnings} non-blocking " + ("warning" if warnings == 1 else "warnings"))
    word = "pass" if report.candidate_passed(name) else "fail"
    return (
        f'<li><span class="badge {word}">{word.upper()}ED</span> <strong>{_h(name)}</strong> '
        f"({_h('; '.join(notes))})</li>"
    )


def _failing_section(report: Report) -> list[str]:
    if not report.checks:
        return []
    failing = sorted_checks(c for c in report.checks if c.verdict != "pass")
    blocking = [c for c in failing if c.blocking]
    warnings = [c for c in failing if not c.blocking]
    out = ['<section id="checks-not-passed">', f"<h2>Checks not passed ({len(failing)})</h2>"]
    if not failing:
        return [*out, "<p>Every check passed.</p>", "</section>"]
    if blocking:
        out += _check_table(blocking)
    else:
        out.append("<p>Every blocking check passed.</p>")
    if warnings:
        # Non-blocking checks do not close the gate: collapsed, so the plots stay near the top.
        out += [
            "<details>",
            f"<summary>Non-blocking warnings ({len(warnings)})</summary>",
            *_check_table(warnings),
            "</details>",
        ]
    return [*out, "</section>"]


def _check_table(checks: Sequence[CheckResult]) -> list[str]:
    header = ["Verdict", "Check", "Candidate", "Segment", "Observed", "Threshold", "Reason"]
    rows = [
        [
            _verdict_text(c),
            c.id,
            c.candidate,
            fmt_segment(c.segment),
            fmt_observed(c),
            fmt_threshold(c),
            c.message,
        ]
        for c in checks
    ]
    return _table(header, rows, numeric=(4,), classes=[c.verdict for c in checks])


def _passing_section(report: Report) -> list[str]:
    passing = [c for c in report.checks if c.verdict == "pass"]
    if not passing:
        return []
    return [
        '<section id="checks-passed"><details>',
        f"<summary>Passing checks ({len(passing)})</summary>",
        *_check_table(passing),
        "</details></section>",
    ]


def _overall_section(report: Report) -> list[str]:
    overall = [m for m in report.metrics if is_overall(m.segment)]
    if not overall:
        return []
    out = [
        '<section id="metrics"><details>',
        f"<summary>Overall metrics ({len(overall)})</summary>",
    ]
    groups: dict[str, list[MetricValue]] = {}
    for m in overall:
        groups.setdefault(m.candidate, []).append(m)
    header = ["Metric", "Reference", "Candidate", "Δ", "Interval", "Rows"]
    for candidate, rows_of in groups.items():
        rows = [
            [
                metric_label(m.metric, m.segment),
                fmt_number(m.reference_value),
                fmt_number(m.candidate_value),
                fmt_delta(m.delta),
                fmt_interval(m.ci_low, m.ci_high),
                fmt_number(m.n),
            ]
            for m in rows_of
        ]
        out += [f"<h3>{_h(candidate)}</h3>", *_table(header, rows, numeric=(1, 2, 3, 5))]
    return [*out, "</details></section>"]


# --- forest plots ---------------------------------------------------------------------------


def _forest_section(ctx: _Context) -> list[str]:
    by_id: dict[str, list[CheckResult]] = {}
    for check in ctx.report.checks:
        by_id.setdefault(check.id, []).append(check)
    segmented = [g for g in by_id.values() if any(c.segment is not None for c in g)]
    if not segmented:
        return []
    out = [
        '<section id="segments">',
        "<h2>Per-segment checks</h2>",
        "<p>One row per segment, one panel per candidate: the dot is the value the threshold "
        "is compared with, the bar its interval, the dashed line the threshold. Failing "
        "segments are red, inconclusive ones amber; a hollow dot is a non-blocking check.</p>",
    ]
    for checks in segmented[:_MAX_FOREST_FIGURES]:
        out += _forest_figure(ctx, checks)
    if len(segmented) > _MAX_FOREST_FIGURES:
        more = len(segmented) - _MAX_FOREST_FIGURES
        out.append(f'<p class="note">{more:,} more segmented criteria in report.json.</p>')
    return [*out, "</section>"]


def _forest_figure(ctx: _Context, checks: Sequence[CheckResult]) -> list[str]:
    """One criterion: a panel per candidate, a row per segment (overall first)."""
    first = checks[0]
    worst: dict[str | None, int] = {}
    for c in checks:
        rank = _VERDICT_RANK.get(c.verdict, 3)
        worst[c.segment] = min(rank, worst.get(c.segment, rank))
    order = sorted(worst, key=lambda s: s is not None)  # stable: report order after overall
    # Past the row limit, the segments with the worst verdict in any panel are kept.
    kept = set(sorted(order, key=lambda s: worst[s])[:_MAX_FOREST_ROWS])
    segments = [s for s in order if s in kept]
    candidates = list(dict.fromkeys(c.candidate for c in checks))
    cell = {(c.candidate, c.segment): c for c in checks}
    compare = _mapping(first.criterion).get("compare")
    what = {"delta": "Δ (candidate - reference)", "ratio": "ratio (candidate / reference)"}
    xlabel = f"{first.metric} {what.get(str(compare), 'of the candidate')}"
    thresholds = sorted({(fmt_threshold(c), c.threshold) for c in checks}, key=lambda t: t[1])
    lines = []
    for name in candidates:
        failed = [
            fmt_segment(c.segment) for c in checks if c.candidate == name and c.verdict == "fail"
        ]
        total = sum(c.candidate == name for c in checks)
        text = f"{name}: {len(failed)} of {total} failed"
        text += f" ({', '.join(failed[:8])}{', …' if len(failed) > 8 else ''})" if failed else ""
        lines.append(text)
    caption = f"{first.id}: " + "; ".join(lines) + "."
    if len(segments) < len(worst):
        hidden = len(worst) - len(segments)
        caption += f" {hidden:,} segments with the best verdicts are not drawn (see report.json)."
    panels = []
    for name in candidates:
        rows: list[ForestRow | None] = []
        for segment in segments:
            check = cell.get((name, segment))
            if check is None:
                rows.append(None)
                continue
            low, high = _interval(ctx, check)
            rows.append(
                ForestRow(
                    value=_number(check.observed),
                    low=low,
                    high=high,
                    verdict=check.verdict,
                    blocking=check.blocking,
                )
            )
        panels.append((name, rows))
    svg = forest_svg(
        ctx.page,
        [fmt_segment(s) for s in segments],
        panels,
        thresholds=[(f"threshold {text}", value) for text, value in thresholds],
        xlabel=xlabel,
    )
    return [f"<h3>{_h(first.id)}</h3>", *ctx.figure(svg, caption)]


def _interval(ctx: _Context, check: CheckResult) -> tuple[float | None, float | None]:
    """The check's interval: from its details, else from the metric it compared."""
    ci = _mapping(check.details).get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return _number(ci[0]), _number(ci[1])
    metric = ctx.metrics.get((check.candidate, check.metric, check.segment))
    compare = _mapping(check.criterion).get("compare")
    if metric is not None and (compare == "delta") == (metric.delta is not None):
        return _number(metric.ci_low), _number(metric.ci_high)
    return None, None


# --- flip matrix and reliability --------------------------------------------------------------


def _first_dataset(report: Report) -> str:
    """With several datasets, the sentence saying a plot is of the first one's rows."""
    if not report.run.datasets:
        return ""
    return f" Rows of the first dataset, {_h(str(report.run.datasets[0]['name']))}."


def _flip_section(ctx: _Context) -> list[str]:
    stats = ctx.report.statistics
    if stats is None or not stats.flips:
        return []
    out = [
        '<section id="flips">',
        "<h2>Flip matrix</h2>",
        "<p>Rows the reference predicted as one class (row) and the candidate as another "
        f"(column). The grey diagonal is agreement.{_first_dataset(ctx.report)}</p>",
    ]
    for candidate, matrix in stats.flips.items():
        out += _flip_figure(ctx, candidate, matrix)
    return [*out, "</section>"]


def _flip_figure(ctx: _Context, candidate: str, matrix: FlipMatrix) -> list[str]:
    moved = sum(n for _, _, n in matrix.moved)
    total = moved + sum(matrix.agreed)
    out = [f"<h3>{_h(ctx.reference)} → {_h(candidate)}</h3>"]
    if not matrix.moved:
        text = f"The candidate predicted the reference's class on all {total:,} rows."
        return [*out, f"<p>{_h(text)}</p>"]
    # Only the classes most involved in moves are drawn (a 1000-class matrix is unreadable).
    involved: dict[int, int] = {}
    for i, j, n in matrix.moved:
        involved[i] = involved.get(i, 0) + n
        involved[j] = involved.get(j, 0) + n
    chosen = sorted(sorted(involved, key=lambda c: (-involved[c], c))[:_MAX_FLIP_CLASSES])
    pos = {c: k for k, c in enumerate(chosen)}
    counts = [[0] * len(chosen) for _ in chosen]
    for c in chosen:
        counts[pos[c]][pos[c]] = matrix.agreed[c]
    for i, j, n in matrix.moved:
        if i in pos and j in pos:
            counts[pos[i]][pos[j]] += n
    caption = f"{moved:,} of {total:,} rows changed class"
    if len(chosen) < len(involved):
        caption += f"; the {len(chosen)} classes most involved are drawn, of {len(involved)}"
    elif len(chosen) < len(matrix.classes):
        caption += "; classes that did not move are not drawn"
    svg = flip_svg(
        ctx.page,
        [matrix.classes[c] for c in chosen],
        counts,
        reference=ctx.reference,
        candidate=candidate,
    )
    rows = [
        [matrix.classes[i], matrix.classes[j], fmt_number(n)]
        for i, j, n in matrix.moved[:_MAX_FLIP_ROWS]
    ]
    header = ["Reference predicted", "Candidate predicted", "Rows"]
    table = _table(header, rows, numeric=(2,), compact=True)
    if len(matrix.moved) > _MAX_FLIP_ROWS:
        more = len(matrix.moved) - _MAX_FLIP_ROWS
        moves = "move" if more == 1 else "moves"
        table.append(f'<p class="note">{more:,} smaller {moves} in report.json.</p>')
    return [*out, *ctx.figure(svg, caption + "."), *table]


def _reliability_section(ctx: _Context) -> list[str]:
    stats = ctx.report.statistics
    if stats is None or not stats.reliability:
        return []
    panels = []
    lines = []
    for candidate, bins in stats.reliability.items():
        ece = ctx.metrics.get((candidate, "expected_calibration_error", None))
        ref_label, cand_label = f"{ctx.reference} (reference)", candidate
        if ece is not None:
            ref_label += f", ECE {fmt_number(ece.reference_value)}"
            cand_label += f", ECE {fmt_number(ece.candidate_value)}"
        lines.append(f"{cand_label} against {ref_label}")
        panels.append((candidate, ref_label, bins.reference, cand_label, bins.candidate))
    colors = model_colors([ctx.reference, *(p[0] for p in panels)], ctx.reference)
    svg = reliability_svg(
        ctx.page,
        [
            (name, [(rl, rb, colors[ctx.reference]), (cl, cb, colors[name])])
            for name, rl, rb, cl, cb in panels
        ],
    )
    return [
        '<section id="reliability">',
        "<h2>Reliability diagrams</h2>",
        "<p>Rows binned by the top-class probability: a calibrated model's accuracy in each "
        "bin equals its mean confidence there (the dashed diagonal). A dot's area grows with "
        f"the rows in its bin.{_first_dataset(ctx.report)}</p>",
        *ctx.figure(svg, "; ".join(lines) + "."),
        "</section>",
    ]


# --- performance and slices -----------------------------------------------------------------


def _performance_section(ctx: _Context) -> list[str]:
    profile = ctx.report.profile
    if profile is None:
        return []
    out = ['<section id="performance">', "<h2>Performance</h2>"]
    out.append(f'<p class="facts">{_h(profile_target_line(profile))}</p>')
    out += _latency_part(ctx, profile)
    speedups = profile_speedup_rows(profile)
    if speedups:
        header = ["Candidate", "Batch", "Speedup", "Interval"]
        out += ["<h3>Speedup</h3>", *_table(header, speedups, numeric=(1, 2), compact=True)]
    out += _concurrency_part(ctx, profile)
    lines = profile_unsupported_lines(profile)
    if lines:
        out += ["<h3>Operators</h3>", "<ul>", *(f"<li>{_h(line)}</li>" for line in lines), "</ul>"]
    return [*out, "</section>"]


def _latency_part(ctx: _Context, profile: ProfileSection) -> list[str]:
    series = {name: m.latency for name, m in profile.models.items() if m.latency}
    rows = profile_latency_rows(profile)
    if not series and not rows:
        return []
    out = ["<h3>Latency against batch size</h3>"]
    if series:
        svg = latency_svg(ctx.page, series, reference=profile.reference)
        caption = "Milliseconds per batch at the 50th, 95th and 99th percentiles, per model."
        out += ctx.figure(svg, caption)
    header = ["Model", "Role", "Batch", "p50 ms", "p95 ms", "Throughput /s", "Size MB"]
    header += ["Peak MB"]
    return [*out, *_table(header, rows, numeric=(2, 3, 4, 5, 6, 7))]


def _concurrency_part(ctx: _Context, profile: ProfileSection) -> list[str]:
    series = {name: m.concurrency for name, m in profile.models.items() if m.concurrency}
    if not series:
        return []
    svg = concurrency_svg(ctx.page, series, reference=profile.reference)
    caption = "Rows per second and p95 latency of successful requests, per model and client count."
    header = ["Model", "Clients", "Batch", "Throughput /s", "p50 ms", "p95 ms", "p99 ms"]
    header += ["Errors / requests"]
    rows = _profile_concurrency_rows(profile)
    return [
        "<h3>Throughput under concurrency</h3>",
        *ctx.figure(svg, caption),
        *_table(header, rows, numeric=(1, 2, 3, 4, 5, 6, 7)),
    ]


def _numerics_section(report: Report) -> list[str]:
    section = report.numerics
    if section is None:
        return []
    out = [
        '<section id="numerics">',
        "<h2>Numerics</h2>",
        f"<p>The layers that add the most error, on {section.sample:,} sample rows "
        "(docs/numerics.md); every tensor is in report.json.</p>",
    ]
    for c in section.candidates:
        out.append(f'<p class="facts">{_h(numerics_summary(c, section.sqnr_threshold_db))}</p>')
        if c.layers:
            rows = [layer_cells(layer) for layer in c.layers[:TOP_LAYERS]]
            out += _table(LAYER_HEADERS, rows, numeric=(2, 3, 4, 5), compact=True)
    return [*out, "</section>"]


def _robustness_section(report: Report) -> list[str]:
    if report.robustness is None:
        return []
    out = [
        '<section id="robustness">',
        "<h2>Robustness</h2>",
        "<p>Accuracy (MAE for regression) under each perturbation and the robustness gap (how "
        "much more the candidate loses than the reference), with its paired interval "
        "(docs/robustness.md).</p>",
    ]
    rows = robustness_rows(report)
    if rows:
        out += _table(ROBUSTNESS_HEADERS, rows, numeric=(3, 4, 5), compact=True)
    out += [f'<p class="facts">{_h(line)}</p>' for line in search_lines(report.robustness)]
    return [*out, "</section>"]


def _slices_section(ctx: _Context) -> list[str]:
    stats = ctx.report.statistics
    discovered = {} if stats is None else {n: s for n, s in stats.discovered.items() if s}
    if not discovered:
        return []
    out = [
        '<section id="slices">',
        "<h2>Discovered slices</h2>",
        "<p>The weakest slices of the data the search found for each candidate: accuracy "
        "delta with its interval (per slice, not simultaneous). Red: worse with a "
        "Holm-adjusted p-value below the interval's error rate, across every slice "
        "searched.</p>",
    ]
    for candidate, slices in discovered.items():
        out += _slice_part(ctx, candidate, slices)
    return [*out, "</section>"]


def _slice_part(ctx: _Context, candidate: str, slices: Sequence[SliceResult]) -> list[str]:
    alpha = 1.0 - slices[0].confidence
    searched = slices[0].slices_searched
    svg = slices_svg(ctx.page, slices, title=candidate, alpha=alpha)
    caption = f"{len(slices)} weakest of {searched:,} slices searched for {candidate}."
    header = ["Slice", "Rows", "Reference acc.", "Candidate acc.", "Δ", "Interval"]
    header += ["p (Holm)", "Correct → wrong"]
    rows = [
        [
            s.description,
            fmt_number(s.n),
            fmt_number(s.reference_accuracy),
            fmt_number(s.candidate_accuracy),
            fmt_delta(s.delta),
            fmt_interval(*s.ci),
            fmt_number(s.p_value_adjusted),
            fmt_number(s.flip_correct_to_wrong_rate),
        ]
        for s in slices
    ]
    return [
        f"<h3>{_h(candidate)}</h3>",
        *ctx.figure(svg, caption),
        *_table(header, rows, numeric=(1, 2, 3, 4, 6, 7)),
    ]
