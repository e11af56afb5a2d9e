"""The Markdown rendering of a report: compact, for a pull-request comment.

Layout: a verdict title and one line per candidate; the checks that did not pass (blocking
first); the overall metrics per candidate; a short performance table when the report has a
profile; then per-segment metrics and passing checks in a collapsed ``<details>`` block. Large
reports are cut to about 60 KB (comment size limits), with a note that the full rows are in
``report.json``.

Everything that comes from data (ids, names, segments, messages) is escaped, so a segment
named ``a|b`` or ``<script>`` cannot break the table or inject HTML.

The private ``_fmt_*`` and ``_profile_*`` helpers are shared with the console renderer; they
return plain, unescaped text.
"""

from __future__ import annotations

from collections.abc import Sequence

from compval.reports._format import (
    _escape,
    _fmt_verdict,
    _group,
    _interval_notes,
    _profile_concurrency_rows,
    _row,
    _shorten,
    _size,
    _table,
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
)
from compval.reports._numerics import LAYER_HEADERS, TOP_LAYERS, layer_cells, numerics_summary
from compval.reports._robustness import ROBUSTNESS_HEADERS, robustness_rows, search_lines
from compval.results import POINT_ONLY_NOTE, CheckResult, NumericsSection, ProfileSection, Report

__all__ = ["render_markdown"]

_LIMIT_BYTES = 58_000
_FAILING_CAP_BYTES = 30_000
_OVERALL_CAP_BYTES = 14_000


def render_markdown(report: Report) -> str:
    """Render ``report`` as compact Markdown for a pull-request comment.

    Args:
        report: The report to render.

    Returns:
        The Markdown text, ending with a newline; at most about 60 KB whatever the report's
        size (rows that do not fit are counted in a note pointing to ``report.json``).

    Example:
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=10, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> render_markdown(Report(run=run, metrics=(), checks=(), candidates=())).splitlines()[0]
        '## ✅ compval: PASSED'
    """
    head = _header(report)
    perf = _performance(report.profile) if report.profile is not None else []
    perf += _numerics(report.numerics) if report.numerics is not None else []
    perf += _robustness(report) if report.robustness is not None else []
    fixed = _size(head) + _size(perf)

    failing = sorted_checks(c for c in report.checks if c.verdict != "pass")
    failing_part = _failing_section(failing, min(_FAILING_CAP_BYTES, _LIMIT_BYTES - fixed))
    used = fixed + _size(failing_part)
    overall_part = _overall_section(report, min(_OVERALL_CAP_BYTES, _LIMIT_BYTES - used))
    used += _size(overall_part)
    details_part = _details_section(report, _LIMIT_BYTES - used)

    lines = [*head, *failing_part, *overall_part, *perf, *details_part]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


# --- sections -------------------------------------------------------------------------------


def _robustness(report: Report) -> list[str]:
    """Perturbed accuracy and robustness gap per candidate and perturbation; the search."""
    assert report.robustness is not None
    lines = ["### Robustness", ""]
    rows = robustness_rows(report)
    if rows:
        lines.append("| " + " | ".join(ROBUSTNESS_HEADERS) + " |")
        lines.append("|" + "---|" * len(ROBUSTNESS_HEADERS))
        lines += ["| " + " | ".join(_escape(x) for x in row) + " |" for row in rows]
        lines.append("")
    lines += [f"- {_escape(line)}" for line in search_lines(report.robustness)]
    return [*lines, ""]


def _numerics(section: NumericsSection) -> list[str]:
    """Per candidate: the summary line and the layers that add the most error."""
    lines = ["### Numerics", ""]
    for c in section.candidates:
        lines += [_escape(numerics_summary(c, section.sqnr_threshold_db)), ""]
        if c.layers:
            lines.append("| " + " | ".join(LAYER_HEADERS) + " |")
            lines.append("|" + "---|" * len(LAYER_HEADERS))
            for layer in c.layers[:TOP_LAYERS]:
                lines.append("| " + " | ".join(_escape(x) for x in layer_cells(layer)) + " |")
            lines.append("")
    return lines


def _header(report: Report) -> list[str]:
    icon, word = ("✅", "PASSED") if report.passed else ("❌", "FAILED")
    lines = [f"## {icon} compval: {word}", ""]
    names = list(report.candidates)
    names += [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]
    for name in names:
        lines.append(_candidate_line(report, name))
    if not report.checks:
        lines.append("No acceptance criteria were checked: nothing is gated.")
    if report.statistics is not None and report.statistics.point_only:
        lines += ["", f"⚠️ {POINT_ONLY_NOTE}"]
    run = report.run
    facts = [f"{fmt_number(run.data_rows)} rows", f"task {run.task}", f"seed {run.seed}"]
    facts.append(f"compval {run.compval_version}")
    if run.spec_hash:
        facts.append(f"spec {_shorten(run.spec_hash, 19)}")
    # The run's start time is in every report file (report.json run.started_at, junit.xml
    # timestamp): files of one folder that disagree on it come from different runs.
    facts.append(f"run {run.started_at}")
    lines += ["", _escape(" · ".join(facts)), ""]
    return lines


def _candidate_line(report: Report, name: str) -> str:
    checks = [c for c in report.checks if c.candidate == name]
    passed = sum(c.verdict == "pass" for c in checks)
    fails = sum(c.verdict == "fail" and c.blocking for c in checks)
    inconclusive = sum(c.verdict == "inconclusive" and c.blocking for c in checks)
    warnings = sum(c.verdict != "pass" and not c.blocking for c in checks)
    ok = report.candidate_passed(name)
    notes = [f"{passed} of {len(checks)} checks passed"]
    if fails:
        notes.append(f"{fails} failed")
    if inconclusive:
        notes.append(f"{inconclusive} inconclusive")
    if warnings:
        notes.append(f"{warnings} non-blocking " + ("warning" if warnings == 1 else "warnings"))
    icon, word = ("✅", "PASSED") if ok else ("❌", "FAILED")
    return f"- {icon} **{_escape(name)}**: {word} ({'; '.join(notes)})"


def _failing_section(failing: Sequence[CheckResult], budget: int) -> list[str]:
    if not failing:
        return []
    header = ["Check", "Candidate", "Segment", "Verdict", "Observed", "Threshold", "Message"]
    rows = [
        _row(
            [
                c.id,
                c.candidate,
                fmt_segment(c.segment),
                _fmt_verdict(c),
                fmt_observed(c),
                fmt_threshold(c),
                c.message,
            ]
        )
        for c in failing
    ]
    return [f"### Checks not passed ({len(failing)})", "", *_table(header, rows, budget), ""]


def _overall_section(report: Report, budget: int) -> list[str]:
    overall = [m for m in report.metrics if is_overall(m.segment)]
    if not overall:
        return []
    with_ci = any(m.ci_low is not None or m.ci_high is not None for m in overall)
    header = ["Metric", "Reference", "Candidate", "Δ"] + (["Interval"] if with_ci else [])
    out = ["### Overall metrics", ""]
    by_candidate = _group(overall, lambda m: m.candidate)
    remaining = budget - _size(out)
    for candidate, rows_of in by_candidate.items():
        title = [f"#### {_escape(candidate)}", ""]
        rows = [
            _row(
                [
                    metric_label(m.metric, m.segment),
                    fmt_number(m.reference_value),
                    fmt_number(m.candidate_value),
                ]
                + [fmt_delta(m.delta)]
                + ([fmt_interval(m.ci_low, m.ci_high)] if with_ci else [])
            )
            for m in rows_of
        ]
        part = [*title, *_table(header, rows, remaining - _size(title)), ""]
        remaining -= _size(part)
        out += part
    notes = _interval_notes(overall)
    if notes:
        out += [_escape(notes), ""]
    return out


def _details_section(report: Report, budget: int) -> list[str]:
    segmented = [m for m in report.metrics if not is_overall(m.segment)]
    passing = [c for c in report.checks if c.verdict == "pass"]
    concurrency = _profile_concurrency_rows(report.profile) if report.profile is not None else []
    if not (segmented or passing or concurrency):
        return []
    parts = []
    if segmented:
        parts.append(f"per-segment metrics ({len(segmented)})")
    if passing:
        parts.append(f"passing checks ({len(passing)})")
    if concurrency:
        parts.append(f"concurrency ({len(concurrency)})")
    summary = ", ".join(parts)
    opening = ["<details>", f"<summary>{summary[0].upper()}{summary[1:]}</summary>", ""]
    closing = ["</details>", ""]
    sections: list[tuple[str, list[str], list[str]]] = []
    if segmented:
        with_ci = any(m.ci_low is not None or m.ci_high is not None for m in segmented)
        header = ["Candidate", "Segment", "Metric", "Reference", "Candidate value", "Δ"]
        header += ["Interval"] if with_ci else []
        header += ["n"]
        rows = [
            _row(
                [m.candidate, fmt_segment(m.segment), m.metric]
                + [fmt_number(m.reference_value), fmt_number(m.candidate_value)]
                + [fmt_delta(m.delta)]
                + ([fmt_interval(m.ci_low, m.ci_high)] if with_ci else [])
                + [fmt_number(m.n)]
            )
            for m in segmented
        ]
        sections.append(("#### Per-segment metrics", header, rows))
    if passing:
        header = ["Check", "Candidate", "Segment", "Observed", "Threshold", "Message"]
        rows = [
            _row(
                [
                    c.id,
                    c.candidate,
                    fmt_segment(c.segment),
                    fmt_observed(c),
                    fmt_threshold(c),
                    c.message,
                ]
            )
            for c in sorted_checks(passing)
        ]
        sections.append(("#### Passing checks", header, rows))
    if concurrency:
        header = ["Model", "Clients", "Batch", "Throughput /s", "p50 ms", "p95 ms", "p99 ms"]
        header += ["Errors"]
        sections.append(("#### Concurrency", header, [_row(r) for r in concurrency]))

    out = list(opening)
    remaining = budget - _size(opening) - _size(closing)
    for title, header, rows in sections:
        part = [title, "", *_table(header, rows, remaining - _size([title, "", ""])), ""]
        remaining -= _size(part)
        out += part
    return out + closing


def _performance(profile: ProfileSection) -> list[str]:
    latency = profile_latency_rows(profile)
    speedups = profile_speedup_rows(profile)
    target = profile_target_line(profile)
    unsupported = profile_unsupported_lines(profile)
    if not (latency or speedups or target or unsupported):
        return []
    out = ["### Performance", ""]
    if target:
        out += [_escape(target), ""]
    if latency:
        header = ["Model", "Role", "Batch", "p50 ms", "p95 ms", "Throughput /s", "Size MB"]
        header += ["Peak MB"]
        out += [*_table(header, [_row(r) for r in latency], None), ""]
    if speedups:
        header = ["Candidate", "Batch", "Speedup", "Interval"]
        out += [*_table(header, [_row(r) for r in speedups], None), ""]
    for line in unsupported:
        out += [_escape(line), ""]
    return out


# --- profile extraction (shared with the console renderer) ---------------------------------
