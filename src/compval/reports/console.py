r"""The console rendering of a report, with rich: what a person reads in a terminal or a CI log.

Two views. The default one is short: one verdict line per candidate, the checks that did not
pass with a one-line reason each (the first 12 blocking and 4 non-blocking ones; the rest are
counted), a compact table of the headline metrics (the overall values of the metrics that
blocking checks gate), and the speedups when the report has a profile (with the latency table
for a ``compval profile`` report). ``verbose=True`` prints the full tables instead: every
non-passing check and the first passing ones with their messages, every overall metric with
its interval, and the latency table.

Layout rules, for 80-column CI logs: no line is wider than the console, and no word is split
across lines (rich's ``overflow="fold"`` would print ``Candidat`` / ``e``). Name columns may be
cut with an ellipsis when the console is too narrow; number columns never wrap.

Data strings are passed to rich as ``Text`` objects, never as markup, so a segment named
``[red]x`` prints as written, and go through ``visible`` first, so a segment value holding
an ESC sequence prints as ``\x1b[31m`` instead of recolouring the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from compval.reports._format import (
    NONE,
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
from compval.reports._robustness import ROBUSTNESS_HEADERS, robustness_rows, search_lines
from compval.results import POINT_ONLY_NOTE, CheckResult, MetricValue, NumericsSection, Report

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["render_console", "verdict_line"]

_MAX_PASSING_ROWS = 10
_MAX_MESSAGES = 20
# The default view lists this many non-passing checks of each kind; the rest are counted.
_MAX_BLOCKING_LINES = 12
_MAX_WARNING_LINES = 4
# Without checks, the default view's metric table shows this many overall metrics.
_MAX_UNGATED_METRICS = 8


def render_console(
    report: Report,
    console: Console,
    *,
    verbose: bool = False,
    files: Mapping[str, Path] | None = None,
) -> None:
    """Print ``report`` to ``console``, ending with the one overall verdict line.

    Args:
        report: The report to render.
        console: Where to print, e.g. ``rich.console.Console(stderr=True)``.
        verbose: Also print the full tables: the checks (non-passing first, then up to 10
            passing ones) with the messages of the non-passing ones, and every overall
            metric with its interval.
        files: Report files written (format -> path), listed before the verdict line.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=0, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> console = Console(record=True, width=80, file=io.StringIO())
        >>> render_console(Report(run=run, metrics=(), checks=(), candidates=()), console)
        >>> "nothing is gated" in console.export_text()
        True
    """
    if verbose and report.checks:
        console.print(_checks_table(report))
        _print_messages(report, console)
    for name in _candidate_names(report):
        console.print(_candidate_line(report, name), overflow="ellipsis")
    if not report.checks:
        console.print("No acceptance criteria were checked: nothing is gated.", style="yellow")
    elif not verbose:
        _print_not_passed(report, console)
    _print_metrics(report, console, verbose=verbose)
    if report.profile is not None:
        # The latency table is the point of `compval profile`; beside a validation the
        # speedup lines (and the gated metrics above) say enough unless asked for more.
        _print_profile(report, console, table=verbose or report.run.task == "profile")
    if report.numerics is not None:
        _print_numerics(report.numerics, console)
    if report.robustness is not None:
        _print_robustness(report, console)
    if report.statistics is not None and report.statistics.point_only:
        console.print(POINT_ONLY_NOTE, style="yellow")
    if files:
        console.print(
            Text("reports: " + ", ".join(visible(str(p)) for p in files.values()), style="dim")
        )
    console.print(verdict_line(report))


def _print_robustness(report: Report, console: Console) -> None:
    """The perturbed passes (after the clean results) and the search's outcome."""
    assert report.robustness is not None
    rows = robustness_rows(report)
    if rows:
        table = Table(title="Robustness (perturbed passes)", title_justify="left")
        for header in ROBUSTNESS_HEADERS:
            table.add_column(header)
        for row in rows:
            table.add_row(*(visible(cell) for cell in row))
        console.print(table)
    for line in search_lines(report.robustness):
        console.print(Text(visible(line)))


def _print_numerics(section: NumericsSection, console: Console) -> None:
    """Per candidate: the summary line and the layers that add the most error."""
    for c in section.candidates:
        console.print(Text("numerics " + numerics_summary(c, section.sqnr_threshold_db)))
        if c.layers:
            table = Table(title=f"Error introduced per layer: {c.candidate}", title_justify="left")
            for header in LAYER_HEADERS:
                table.add_column(header)
            for layer in c.layers[:TOP_LAYERS]:
                table.add_row(*(visible(cell) for cell in layer_cells(layer)))
            console.print(table)


def verdict_line(report: Report) -> Text:
    """The overall verdict: ``compval: PASSED (2 candidate(s), 14 checks)``."""
    word, style = ("PASSED", "bold green") if report.passed else ("FAILED", "bold red")
    names = _candidate_names(report)
    return Text.assemble(
        "compval: ",
        (word, style),
        f" ({len(names)} candidate(s), {len(report.checks)} checks)",
    )


def _candidate_names(report: Report) -> list[str]:
    names = list(report.candidates)
    return names + [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]


def _candidate_line(report: Report, name: str) -> Text:
    checks = [c for c in report.checks if c.candidate == name]
    passed = sum(c.verdict == "pass" for c in checks)
    ok = report.candidate_passed(name)
    word, style = ("PASSED", "bold green") if ok else ("FAILED", "bold red")
    blocking = sum(c.verdict != "pass" and c.blocking for c in checks)
    warnings = sum(c.verdict != "pass" and not c.blocking for c in checks)
    detail = f" ({passed}/{len(checks)} passed"
    not_passed = [f"{blocking} blocking"] if blocking else []
    not_passed += [f"{warnings} non-blocking"] if warnings else []
    if not_passed:
        detail += f"; not passed: {', '.join(not_passed)}"
    detail += ")"
    return Text.assemble((visible(name), "bold"), ": ", (word, style), detail)


# -- the default view -----------------------------------------------------------------------
def _print_not_passed(report: Report, console: Console) -> None:
    failing = [c for c in sorted_checks(report.checks) if c.verdict != "pass"]
    blocking = [c for c in failing if c.blocking]
    warnings = [c for c in failing if not c.blocking]
    for title, checks, limit in (
        ("Blocking checks not passed", blocking, _MAX_BLOCKING_LINES),
        ("Non-blocking checks not passed", warnings, _MAX_WARNING_LINES),
    ):
        if not checks:
            continue
        console.print(Text(f"{title} ({len(checks)}):", style="bold"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="ellipsis")
        for check in checks[:limit]:
            grid.add_row(_verdict_word(check), _reason(check))
        console.print(grid)
        if len(checks) > limit:
            console.print(
                Text(f"... {len(checks) - limit} more in report.md and report.json", style="dim")
            )


def _reason(check: CheckResult) -> Text:
    """``id[candidate][segment]: metric Δ -0.04 [-0.06, -0.03], needs >= -0.02``."""
    head = Text(visible(check.junit_name), style="bold")
    if check.observed is None:
        return Text.assemble(head, ": ", visible(_first_sentence(check.message)))
    compare = check.criterion.get("compare") if isinstance(check.criterion, Mapping) else None
    what = {"delta": " Δ", "ratio": " ratio"}.get(str(compare), "")
    ci = check.details.get("ci") if isinstance(check.details, Mapping) else None
    interval = ""
    if isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2:
        interval = " " + fmt_interval(ci[0], ci[1])
    return Text.assemble(
        head,
        f": {visible(check.metric)}{what} {fmt_observed(check)}{interval},",
        f" needs {fmt_threshold(check)}",
    )


def _first_sentence(message: str, limit: int = 160) -> str:
    end = message.find(". ")
    text = message if end < 0 else message[: end + 1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict_word(check: CheckResult) -> Text:
    style = "bold red" if check.verdict == "fail" else "bold yellow"
    return Text(check.verdict, style=style if check.blocking else "yellow")


def _verdict_mark(check: CheckResult) -> Text:
    """The verdict, starred when it does not block (the table's caption says so)."""
    if check.verdict == "pass":
        return Text("pass", style="green")
    if check.blocking:
        return _verdict_word(check)
    return Text(f"{check.verdict}*", style="yellow")


def _headline(report: Report) -> list[MetricValue]:
    """The overall metrics that blocking checks gate (else any check), in check order.

    Without checks: the first few overall metrics of each candidate.
    """
    overall = [m for m in report.metrics if is_overall(m.segment)]
    gating = [c for c in report.checks if c.severity == "error"] or list(report.checks)
    gated = list(dict.fromkeys(c.metric for c in gating))
    if gated:
        order = {name: i for i, name in enumerate(gated)}
        chosen = [m for m in overall if m.metric in order]
        return sorted(chosen, key=lambda m: (order[m.metric],))
    plain = [m for m in overall if "[" not in m.metric]
    by_candidate: dict[str, list[MetricValue]] = {}
    for m in plain:
        by_candidate.setdefault(m.candidate, []).append(m)
    return [m for rows in by_candidate.values() for m in rows[:_MAX_UNGATED_METRICS]]


def _print_metrics(report: Report, console: Console, *, verbose: bool) -> None:
    if not verbose:
        rows = _headline(report)
        if rows:
            console.print(_metrics_table("Headline metrics (overall)", rows, report))
        return
    # Per-class and per-batch-size entries would flood a terminal even here: they are in
    # report.md and report.json. One table per candidate leaves the width to the numbers.
    headline = _headline(report)
    for name in _candidate_names(report):
        rows = [m for m in report.metrics if m.candidate == name and is_overall(m.segment)]
        rows = [m for m in rows if "[" not in m.metric or m in headline]
        if rows:
            title = Text.assemble("Overall metrics: ", (visible(name), "bold"))
            console.print(_metrics_table(title, rows, report, intervals=True))


def _metrics_table(
    title: str | Text, rows: Sequence[MetricValue], report: Report, *, intervals: bool = False
) -> Table:
    by_candidate = intervals
    with_ci = intervals and any(m.ci_low is not None or m.ci_high is not None for m in rows)
    table = _table(title)
    if not by_candidate:
        table.add_column("Candidate", overflow="ellipsis")
    # Metric names are what a reader searches for: never cut (the candidate column gives way).
    table.add_column("Metric", no_wrap=True)
    for name in ("Reference", "Value", "Δ"):
        table.add_column(name, justify="right", no_wrap=True)
    if with_ci:
        # Wraps at the space after the comma, never inside a number.
        table.add_column("Interval", justify="right", overflow="ellipsis")
    rank = {name: i for i, name in enumerate(_candidate_names(report))}
    ordered = sorted(rows, key=lambda m: rank.get(m.candidate, len(rank)))  # stable
    previous = None
    for m in ordered:
        cells = (
            [] if by_candidate else [Text(visible(m.candidate) if m.candidate != previous else "")]
        )
        cells += [
            Text(visible(metric_label(m.metric, m.segment))),
            Text(fmt_number(m.reference_value)),
            Text(fmt_number(m.candidate_value)),
            _delta_text(m.delta, m.higher_is_better),
        ]
        if with_ci:
            cells.append(Text(fmt_interval(m.ci_low, m.ci_high)))
        previous = m.candidate
        table.add_row(*cells)
    return table


def _table(title: str | Text, **options: Any) -> Table:
    """A table that spends its width on content: light rules, one space between columns."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
        **options,
    )


def _delta_text(delta: float | None, higher_is_better: bool | None) -> Text:
    """The delta, green when it goes the metric's good way, red when it goes the bad way."""
    text = Text(fmt_delta(delta))
    if delta is None or higher_is_better is None or delta != delta or delta == 0:
        return text
    text.stylize("green" if (delta > 0) == higher_is_better else "red")
    return text


# -- the verbose view -----------------------------------------------------------------------
def _checks_table(report: Report) -> Table:
    table = _table("Checks")
    table.add_column("Check", no_wrap=True)
    table.add_column("Candidate", overflow="ellipsis")
    table.add_column("Segment", overflow="ellipsis")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Observed", justify="right", no_wrap=True)
    table.add_column("Threshold", justify="right", no_wrap=True)
    ordered = sorted_checks(report.checks)
    passing_shown = 0
    for check in ordered:
        if check.verdict == "pass":
            if passing_shown == _MAX_PASSING_ROWS:
                continue
            passing_shown += 1
        table.add_row(
            Text(visible(check.id)),
            Text(visible(check.candidate)),
            Text(fmt_segment(check.segment)),
            _verdict_mark(check),
            Text(fmt_observed(check)),
            Text(fmt_threshold(check)),
        )
    hidden = sum(c.verdict == "pass" for c in ordered) - passing_shown
    notes = []
    if any(c.verdict != "pass" and not c.blocking for c in ordered):
        notes.append("* non-blocking (severity: warn, or inconclusive allowed)")
    if hidden:
        notes.append(f"{hidden} more passing checks in report.json")
    if notes:
        table.caption = "; ".join(notes)
    return table


def _print_messages(report: Report, console: Console) -> None:
    failing = [c for c in sorted_checks(report.checks) if c.verdict != "pass"]
    for check in failing[:_MAX_MESSAGES]:
        head = Text.assemble((visible(check.junit_name), "bold"), ": ")
        console.print(head + Text(visible(check.message)))
    if len(failing) > _MAX_MESSAGES:
        console.print(f"... {len(failing) - _MAX_MESSAGES} more in report.md and report.json")


# -- both views -----------------------------------------------------------------------------
def _print_profile(report: Report, console: Console, *, table: bool = True) -> None:
    profile = report.profile
    if profile is None:
        return
    target = profile_target_line(profile)
    latency = profile_latency_rows(profile)
    speedups = profile_speedup_rows(profile)
    if not (target or latency or speedups):
        return
    if table:
        rows = _table("Performance", caption=Text(visible(target)) if target else None)
        for name in ("Model", "Role"):
            rows.add_column(name, overflow="ellipsis")
        for name in ("Batch", "p50 ms", "p95 ms", "Throughput /s", "Size MB", "Peak MB"):
            rows.add_column(name, justify="right", no_wrap=True)
        for row in latency:
            rows.add_row(*(Text(visible(cell)) for cell in row))
        if latency:
            console.print(rows)
        elif target:
            console.print(Text(visible(target)))
    for candidate, batch, ratio, interval in speedups:
        console.print(
            Text.assemble(
                "speedup ",
                (visible(candidate), "bold"),
                f" at batch {batch}: ",
                (ratio, "bold"),
                f" {interval}" if interval != NONE else "",
            )
        )
    for line in profile_unsupported_lines(profile):
        console.print(Text(visible(line), style="yellow"))
