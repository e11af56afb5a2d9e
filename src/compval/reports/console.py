"""The console rendering of a report, with rich: checks, verdicts, overall metrics, profile.

Data strings are passed to rich as ``Text`` objects, never as markup, so a segment named
``[red]x`` prints as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    profile_latency_rows,
    profile_speedup_rows,
    profile_target_line,
    profile_unsupported_lines,
    sorted_checks,
)
from compval.results import POINT_ONLY_NOTE, CheckResult, Report

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["render_console"]

_MAX_PASSING_ROWS = 10
_MAX_MESSAGES = 20


def render_console(report: Report, console: Console) -> None:
    """Print ``report`` to ``console``: checks, one verdict line per candidate, metrics, profile.

    Non-passing checks come first and are all shown; passing ones are cut after 10 rows (the
    rest are counted, and listed in ``report.json``). The messages of non-passing checks are
    printed under the table, where a narrow terminal does not have to squeeze them into a column.

    Args:
        report: The report to render.
        console: Where to print, e.g. ``rich.console.Console(stderr=True)``.

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
    if report.checks:
        console.print(_checks_table(report))
        _print_messages(report, console)
    else:
        console.print("No acceptance criteria were checked: nothing is gated.", style="yellow")
    overall = _metrics_table(report)
    if overall is not None:
        console.print(overall)
    if report.profile is not None:
        _print_profile(report, console)
    names = list(report.candidates)
    names += [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]
    for name in names:
        console.print(_verdict_line(report, name))
    if report.statistics is not None and report.statistics.point_only:
        console.print(POINT_ONLY_NOTE, style="yellow")
    word, style = ("PASSED", "bold green") if report.passed else ("FAILED", "bold red")
    console.print(Text.assemble("compval: ", (word, style)))


def _checks_table(report: Report) -> Table:
    table = Table(title="Checks", title_justify="left")
    table.add_column("Check", overflow="fold")
    table.add_column("Candidate", overflow="fold")
    table.add_column("Segment", overflow="fold")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Observed", justify="right")
    table.add_column("Threshold", justify="right")
    ordered = sorted_checks(report.checks)
    passing_shown = 0
    for check in ordered:
        if check.verdict == "pass":
            if passing_shown == _MAX_PASSING_ROWS:
                continue
            passing_shown += 1
        table.add_row(
            Text(check.id),
            Text(check.candidate),
            Text(fmt_segment(check.segment)),
            _verdict_text(check),
            Text(fmt_observed(check)),
            Text(fmt_threshold(check)),
        )
    hidden = sum(c.verdict == "pass" for c in ordered) - passing_shown
    if hidden:
        table.caption = f"{hidden} more passing checks in report.json"
    return table


def _print_messages(report: Report, console: Console) -> None:
    failing = [c for c in sorted_checks(report.checks) if c.verdict != "pass"]
    for check in failing[:_MAX_MESSAGES]:
        head = Text.assemble((check.junit_name, "bold"), ": ")
        console.print(head + Text(check.message))
    if len(failing) > _MAX_MESSAGES:
        console.print(f"... {len(failing) - _MAX_MESSAGES} more in report.md and report.json")


def _verdict_text(check: CheckResult) -> Text:
    if check.verdict == "pass":
        return Text("pass", style="green")
    if check.blocking:
        return Text(check.verdict, style="bold red" if check.verdict == "fail" else "bold yellow")
    return Text(f"{check.verdict} (warn)", style="yellow")


def _metrics_table(report: Report) -> Table | None:
    # Headline metrics only: per-class and per-batch-size entries would flood a terminal
    # (they are in report.json and report.md).
    overall = [m for m in report.metrics if m.segment is None and "[" not in m.metric]
    if not overall:
        return None
    with_ci = any(m.ci_low is not None or m.ci_high is not None for m in overall)
    table = Table(title="Overall metrics", title_justify="left")
    table.add_column("Candidate", overflow="fold")
    table.add_column("Metric", overflow="fold")
    for name in ("Reference", "Candidate value", "Δ"):
        table.add_column(name, justify="right")
    if with_ci:
        table.add_column("Interval", justify="right")
    table.add_column("n", justify="right")
    for m in overall:
        cells = [Text(m.candidate), Text(m.metric), Text(fmt_number(m.reference_value))]
        cells += [Text(fmt_number(m.candidate_value)), _delta_text(m.delta, m.higher_is_better)]
        if with_ci:
            cells.append(Text(fmt_interval(m.ci_low, m.ci_high)))
        cells.append(Text(fmt_number(m.n)))
        table.add_row(*cells)
    return table


def _delta_text(delta: float | None, higher_is_better: bool | None) -> Text:
    """The delta, green when it goes the metric's good way, red when it goes the bad way."""
    text = Text(fmt_delta(delta))
    if delta is None or higher_is_better is None or delta != delta or delta == 0:
        return text
    text.stylize("green" if (delta > 0) == higher_is_better else "red")
    return text


def _print_profile(report: Report, console: Console) -> None:
    profile = report.profile
    if profile is None:
        return
    target = profile_target_line(profile)
    latency = profile_latency_rows(profile)
    speedups = profile_speedup_rows(profile)
    if not (target or latency or speedups):
        return
    table = Table(title="Performance", title_justify="left", caption=target or None)
    for name in ("Model", "Role"):
        table.add_column(name, overflow="fold")
    for name in ("Batch", "p50 ms", "p95 ms", "Throughput /s", "Size MB", "Peak MB"):
        table.add_column(name, justify="right")
    for row in latency:
        table.add_row(*(Text(cell) for cell in row))
    if latency:
        console.print(table)
    elif target:
        console.print(Text(target))
    for candidate, batch, ratio, interval in speedups:
        console.print(
            Text.assemble(
                "speedup ",
                (candidate, "bold"),
                f" at batch {batch}: ",
                (ratio, "bold"),
                f" {interval}" if interval != NONE else "",
            )
        )
    for line in profile_unsupported_lines(profile):
        console.print(Text(line, style="yellow"))


def _verdict_line(report: Report, name: str) -> Text:
    checks = [c for c in report.checks if c.candidate == name]
    passed = sum(c.verdict == "pass" for c in checks)
    ok = report.candidate_passed(name)
    word, style = ("PASSED", "bold green") if ok else ("FAILED", "bold red")
    blocking = [c for c in checks if c.verdict != "pass" and c.blocking]
    warnings = sum(c.verdict != "pass" and not c.blocking for c in checks)
    detail = f" ({passed}/{len(checks)} checks passed"
    if blocking:
        detail += f"; blocking: {', '.join(c.junit_name for c in blocking[:5])}"
        detail += f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
    if warnings:
        detail += f"; {warnings} non-blocking"
    detail += ")"
    return Text.assemble((name, "bold"), ": ", (word, style), detail)
