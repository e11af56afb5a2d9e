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

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, SupportsFloat, TypeGuard

from compval.reports._model import CheckResult, MetricValue, Report

__all__ = ["render_markdown"]

_LIMIT_BYTES = 58_000
_FAILING_CAP_BYTES = 30_000
_OVERALL_CAP_BYTES = 14_000
_MAX_CELL_CHARS = 300
_NONE = "—"

_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "~": "\\~",
        "|": "\\|",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\r": " ",
        "\n": " ",
        "\t": " ",
        "\u2028": " ",
        "\u2029": " ",
    }
)
_VERDICT_RANK = {"fail": 0, "inconclusive": 1, "pass": 2}


def render_markdown(report: Report) -> str:
    """Render ``report`` as compact Markdown for a pull-request comment.

    Args:
        report: The report to render.

    Returns:
        The Markdown text, ending with a newline; at most about 60 KB whatever the report's
        size (rows that do not fit are counted in a note pointing to ``report.json``).

    Example:
        >>> from compval.reports import Report, RunInfo
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
    fixed = _size(head) + _size(perf)

    failing = _sorted_checks(c for c in report.checks if c.verdict != "pass")
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


def _header(report: Report) -> list[str]:
    icon, word = ("✅", "PASSED") if report.passed else ("❌", "FAILED")
    lines = [f"## {icon} compval: {word}", ""]
    names = list(report.candidates)
    names += [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]
    for name in names:
        lines.append(_candidate_line(report, name))
    if not report.checks:
        lines.append("No acceptance criteria were checked: nothing is gated.")
    run = report.run
    facts = [f"{_fmt_number(run.data_rows)} rows", f"task {run.task}", f"seed {run.seed}"]
    facts.append(f"compval {run.compval_version}")
    if run.spec_hash:
        facts.append(f"spec {_shorten(run.spec_hash, 19)}")
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
                _fmt_segment(c.segment),
                _fmt_verdict(c),
                _fmt_observed(c),
                _fmt_threshold(c),
                c.message,
            ]
        )
        for c in failing
    ]
    return [f"### Checks not passed ({len(failing)})", "", *_table(header, rows, budget), ""]


def _overall_section(report: Report, budget: int) -> list[str]:
    overall = [m for m in report.metrics if m.segment is None]
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
                [m.metric, _fmt_number(m.reference_value), _fmt_number(m.candidate_value)]
                + [_fmt_delta(m.delta)]
                + ([_fmt_interval(m.ci_low, m.ci_high)] if with_ci else [])
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
    segmented = [m for m in report.metrics if m.segment is not None]
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
                [m.candidate, _fmt_segment(m.segment), m.metric]
                + [_fmt_number(m.reference_value), _fmt_number(m.candidate_value)]
                + [_fmt_delta(m.delta)]
                + ([_fmt_interval(m.ci_low, m.ci_high)] if with_ci else [])
                + [_fmt_number(m.n)]
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
                    _fmt_segment(c.segment),
                    _fmt_observed(c),
                    _fmt_threshold(c),
                    c.message,
                ]
            )
            for c in _sorted_checks(passing)
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


def _performance(profile: Mapping[str, Any]) -> list[str]:
    latency = _profile_latency_rows(profile)
    speedups = _profile_speedup_rows(profile)
    target = _profile_target_line(profile)
    unsupported = _profile_unsupported_lines(profile)
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


def _profile_target_line(profile: Mapping[str, Any]) -> str:
    """One line describing the profiling target and settings, or '' when there is none."""
    target = _mapping(profile.get("target"))
    settings = _mapping(profile.get("settings"))
    facts = []
    if target.get("name") is not None:
        facts.append(f"target {target['name']}")
    if target.get("threads") is not None:
        facts.append(f"threads {_fmt_number(target['threads'])}")
    for key, label in (("batch_sizes", "batch sizes"), ("concurrency", "clients")):
        values = target.get(key)
        if isinstance(values, (list, tuple)) and values:
            facts.append(f"{label} {', '.join(_fmt_number(v) for v in values)}")
    for key, label in (("warmup", "warm-up"), ("min_iterations", "min iterations")):
        if settings.get(key) is not None:
            facts.append(f"{label} {_fmt_number(settings[key])}")
    if settings.get("min_duration_s") is not None:
        facts.append(f"min duration {_fmt_number(settings['min_duration_s'])} s")
    return " · ".join(facts)


def _profile_latency_rows(profile: Mapping[str, Any]) -> list[list[str]]:
    """Rows: model, role, batch, p50 ms, p95 ms, throughput, size MB, peak MB."""
    rows = []
    for name, model in _mapping(profile.get("models")).items():
        info = _mapping(model)
        role = str(info.get("role", ""))
        size = _fmt_number(info.get("size_mb"))
        peak = _fmt_number(info.get("peak_memory_mb"))
        entries = _mappings(info.get("latency"))
        if not entries:
            rows.append([str(name), role, _NONE, _NONE, _NONE, _NONE, size, peak])
        for entry in entries:
            rows.append(
                [
                    str(name),
                    role,
                    _fmt_number(entry.get("batch_size")),
                    _fmt_number(entry.get("p50_ms")),
                    _fmt_number(entry.get("p95_ms")),
                    _fmt_number(entry.get("throughput_sps")),
                    size,
                    peak,
                ]
            )
    return rows


def _profile_speedup_rows(profile: Mapping[str, Any]) -> list[list[str]]:
    """Rows: candidate, batch, speedup ratio, interval (with its confidence)."""
    rows = []
    for entry in _mappings(profile.get("speedup")):
        ratio = entry.get("ratio")
        interval = _fmt_interval(entry.get("ci_low"), entry.get("ci_high"))
        confidence = entry.get("confidence")
        if interval and _is_number(confidence):
            interval += f" ({_fmt_number(100 * float(confidence))}%)"
        rows.append(
            [
                str(entry.get("candidate", _NONE)),
                _fmt_number(entry.get("batch_size")),
                f"{_fmt_number(ratio)}x" if _is_number(ratio) else _NONE,
                interval or _NONE,
            ]
        )
    return rows


def _profile_concurrency_rows(profile: Mapping[str, Any]) -> list[list[str]]:
    """Rows: model, clients, batch, throughput, p50/p95/p99 ms, errors/requests."""
    rows = []
    for name, model in _mapping(profile.get("models")).items():
        for entry in _mappings(_mapping(model).get("concurrency")):
            errors = _fmt_number(entry.get("errors"))
            if entry.get("requests") is not None:
                errors += f" / {_fmt_number(entry.get('requests'))}"
            rows.append(
                [
                    str(name),
                    _fmt_number(entry.get("clients")),
                    _fmt_number(entry.get("batch_size")),
                    _fmt_number(entry.get("throughput_sps")),
                    _fmt_number(entry.get("p50_ms")),
                    _fmt_number(entry.get("p95_ms")),
                    _fmt_number(entry.get("p99_ms")),
                    errors,
                ]
            )
    return rows


def _profile_unsupported_lines(profile: Mapping[str, Any]) -> list[str]:
    """One line per model with unsupported operators."""
    lines = []
    for name, model in _mapping(profile.get("models")).items():
        ops = _mapping(model).get("unsupported_ops")
        if isinstance(ops, (list, tuple)) and ops:
            shown = ", ".join(str(op) for op in ops[:10])
            more = f" and {len(ops) - 10} more" if len(ops) > 10 else ""
            lines.append(f"{name}: unsupported operators: {shown}{more}")
    return lines


# --- formatting (shared with the console renderer) -----------------------------------------


def _fmt_number(value: object) -> str:
    """4 significant digits; large values without exponent; None as a dash."""
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return _fmt_float(float(value), sign="")
    return str(value)


def _fmt_delta(value: object) -> str:
    """Like ``_fmt_number`` with an explicit sign."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _fmt_float(float(value), sign="+")
    return _fmt_number(value)


def _fmt_float(value: float, *, sign: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return f"{'+' if sign and value > 0 else ''}{'inf' if value > 0 else '-inf'}"
    value += 0.0  # turns -0.0 into 0.0
    rounded = float(f"{value:.4g}")
    if 1e4 <= abs(rounded) < 1e15:
        # Keep 4 significant digits but spell them out: 123,500 reads better than 1.235e+05.
        return f"{rounded:{sign},.0f}"
    return f"{value:{sign}.4g}"


def _fmt_interval(low: object, high: object) -> str:
    """``[low, high]``, or '' when neither bound is present."""
    if low is None and high is None:
        return ""
    return f"[{_fmt_number(low)}, {_fmt_number(high)}]"


def _fmt_segment(segment: str | None) -> str:
    return "overall" if segment is None else segment


def _fmt_verdict(check: CheckResult) -> str:
    if check.verdict == "pass":
        return "✅ pass"
    if check.blocking:
        return f"❌ {check.verdict}"
    return f"⚠️ {check.verdict} (non-blocking)"


def _fmt_observed(check: CheckResult) -> str:
    if _mapping(check.criterion).get("compare") == "delta":
        return _fmt_delta(check.observed)
    return _fmt_number(check.observed)


def _fmt_threshold(check: CheckResult) -> str:
    op = _mapping(check.criterion).get("op")
    op = getattr(op, "value", op)
    text = _fmt_number(check.threshold)
    return f"{op} {text}" if isinstance(op, str) and op else text


def _interval_notes(metrics: Iterable[MetricValue]) -> str:
    kinds = {
        (m.confidence, m.ci_method)
        for m in metrics
        if (m.ci_low is not None or m.ci_high is not None)
        and (m.confidence is not None or m.ci_method is not None)
    }
    if not kinds:
        return ""
    parts = []
    for confidence, method in sorted(kinds, key=lambda k: (str(k[0]), str(k[1]))):
        level = f"{_fmt_number(100 * float(confidence))}%" if _is_number(confidence) else ""
        parts.append(" ".join(p for p in (level, method or "") if p))
    return "Intervals: " + "; ".join(parts) + "."


# --- Markdown helpers ----------------------------------------------------------------------


def _escape(text: str) -> str:
    """Neutralise Markdown/HTML syntax in text that comes from data."""
    return text.translate(_ESCAPES)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(_escape(_shorten(str(c), _MAX_CELL_CHARS)) for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[str], budget: int | None) -> list[str]:
    """A table, with as many rows as fit in ``budget`` bytes and a note counting the rest."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if budget is None:
        return out + list(rows)
    room = budget - _size(out) - 60  # keep room for the note
    shown = 0
    for row in rows:
        size = len(row.encode("utf-8")) + 1
        if size > room:
            break
        out.append(row)
        room -= size
        shown += 1
    if shown < len(rows):
        if shown == 0:
            out = []
        more = len(rows) - shown
        out += ["", f"_{more:,} more {'row' if more == 1 else 'rows'} in report.json._"]
    return out


def _size(lines: Sequence[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sorted_checks(checks: Iterable[CheckResult]) -> list[CheckResult]:
    """Non-passing first; among them blocking first, then fail before inconclusive; stable."""
    return sorted(
        checks,
        key=lambda c: (c.verdict == "pass", not c.blocking, _VERDICT_RANK.get(c.verdict, 3)),
    )


def _group(
    metrics: Iterable[MetricValue], key: Callable[[MetricValue], str]
) -> dict[str, list[MetricValue]]:
    groups: dict[str, list[MetricValue]] = {}
    for m in metrics:
        groups.setdefault(key(m), []).append(m)
    return groups


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, (list, tuple)):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _is_number(value: object) -> TypeGuard[SupportsFloat]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
