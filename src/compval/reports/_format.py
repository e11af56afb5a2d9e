"""Formatting shared by the text renderers (Markdown, console, JUnit).

Numbers, intervals, segments, check order, Markdown escaping and the performance tables.
Nothing here computes a metric.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, SupportsFloat, TypeGuard

from compval.results import CheckResult, MetricValue, ProfileSection, interval_method_name

NONE = "—"
_VERDICT_RANK = {"fail": 0, "inconclusive": 1, "pass": 2}
_MAX_CELL_CHARS = 300
# Whole numbers below this print exactly; above it a float has no exact integer digits left.
_EXACT_INTEGER_LIMIT = 2.0**53
#: Characters that data must never emit raw: C0 controls (ESC recolours a terminal), DEL, C1
#: controls (U+0080-U+009F; some terminals act on them as on ESC sequences), the Unicode line
#: separators and the bidirectional overrides (they reorder what a reader sees).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_WHITESPACE = {"\t": " ", "\n": " ", "\r": " ", "\u2028": " ", "\u2029": " "}


def visible(text: str) -> str:
    r"""``text`` with every control character spelled out (``\x1b``); tabs and newlines as spaces.

    Used on every string that comes from data (segment values, column and class names, model
    names, messages quoting them) before any renderer prints or writes it.

    Example:
        >>> visible("a\x1b[31mb\tc")
        'a\\x1b[31mb c'
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: _WHITESPACE.get(m.group()) or ascii(m.group())[1:-1], text)


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


def profile_target_line(profile: ProfileSection) -> str:
    """One line describing the profiling target and settings."""
    facts = [f"target {profile.target}"]
    if profile.threads is not None:
        facts.append(f"threads {fmt_number(profile.threads)}")
    for values, label in ((profile.batch_sizes, "batch sizes"), (profile.concurrency, "clients")):
        if values:
            facts.append(f"{label} {', '.join(fmt_number(v) for v in values)}")
    facts.append(f"warm-up {fmt_number(profile.warmup)}")
    facts.append(f"min iterations {fmt_number(profile.min_iterations)}")
    facts.append(f"min duration {fmt_number(profile.min_duration_s)} s")
    return " · ".join(facts)


def profile_latency_rows(profile: ProfileSection) -> list[list[str]]:
    """Rows: model, role, batch, p50 ms, p95 ms, throughput, size MB, peak MB."""
    rows = []
    for name, model in profile.models.items():
        size = fmt_number(model.size_mb)
        peak = fmt_number(model.peak_memory_mb)
        if not model.latency:
            rows.append([name, model.role, NONE, NONE, NONE, NONE, size, peak])
        for entry in model.latency:
            rows.append(
                [
                    name,
                    model.role,
                    fmt_number(entry.batch_size),
                    fmt_number(entry.p50_ms),
                    fmt_number(entry.p95_ms),
                    fmt_number(entry.throughput_sps),
                    size,
                    peak,
                ]
            )
    return rows


def profile_speedup_rows(profile: ProfileSection) -> list[list[str]]:
    """Rows: candidate, batch, speedup ratio, interval (with its confidence)."""
    rows = []
    for entry in profile.speedups:
        interval = fmt_interval(entry.ci_low, entry.ci_high)
        if interval:
            interval += f" ({fmt_number(100 * entry.confidence)}%)"
        rows.append(
            [
                entry.candidate,
                fmt_number(entry.batch_size),
                f"{fmt_number(entry.ratio)}x" if math.isfinite(entry.ratio) else NONE,
                interval or NONE,
            ]
        )
    return rows


def _profile_concurrency_rows(profile: ProfileSection) -> list[list[str]]:
    """Rows: model, clients, batch, throughput, p50/p95/p99 ms, errors/requests."""
    rows = []
    for name, model in profile.models.items():
        for entry in model.concurrency:
            rows.append(
                [
                    name,
                    fmt_number(entry.clients),
                    fmt_number(entry.batch_size),
                    fmt_number(entry.throughput_sps),
                    fmt_number(entry.p50_ms),
                    fmt_number(entry.p95_ms),
                    fmt_number(entry.p99_ms),
                    f"{fmt_number(entry.errors)} / {fmt_number(entry.requests)}",
                ]
            )
    return rows


def profile_unsupported_lines(profile: ProfileSection) -> list[str]:
    """One line per model with unsupported operators, then one per model and accelerator EP."""
    lines = []
    for name, model in profile.models.items():
        ops = model.unsupported_ops
        if ops:
            shown = ", ".join(ops[:10])
            more = f" and {len(ops) - 10} more" if len(ops) > 10 else ""
            lines.append(f"{name}: unsupported operators: {shown}{more}")
    for name, model in profile.models.items():
        for ep in model.execution_providers or ():
            if ep.falls_back_to is None:
                continue  # the CPU EP's findings are the unsupported operators above
            nodes = ep.unsupported
            parts = f"; {ep.partitions} partition(s)" if ep.partitions is not None else ""
            if not nodes:
                lines.append(f"{name}: {ep.provider}: all {ep.nodes} nodes supported{parts}")
                continue
            reasons: dict[str, int] = {}
            for node in nodes:
                for reason in node.reasons:
                    reasons[reason] = reasons.get(reason, 0) + 1
            why = ", ".join(f"{r.replace('_', ' ')}: {n}" for r, n in reasons.items())
            shown = ", ".join(f"{n.node!r} ({n.op})" for n in nodes[:5])
            more = f" and {len(nodes) - 5} more" if len(nodes) > 5 else ""
            lines.append(
                f"{name}: {ep.provider}: {len(nodes)} of {ep.nodes} nodes fall back to "
                f"{ep.falls_back_to} ({why}){parts}: {shown}{more}"
            )
    return lines


# --- formatting (shared with the console renderer) -----------------------------------------


def fmt_number(value: object) -> str:
    """Integers exactly; other numbers to 4 significant digits; None as a dash.

    A float that holds a whole number (a count that went through a float, such as
    ``parameter_count`` 17227.0) is an integer too: rounding it to 4 digits would show
    17,230 for 17,227.
    """
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return _fmt_float(float(value), sign="")
    return visible(str(value))


def fmt_delta(value: object) -> str:
    """Like ``fmt_number`` with an explicit sign."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _fmt_float(float(value), sign="+")
    return fmt_number(value)


def _fmt_float(value: float, *, sign: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return f"{'+' if sign and value > 0 else ''}{'inf' if value > 0 else '-inf'}"
    value += 0.0  # turns -0.0 into 0.0
    if value.is_integer() and abs(value) < _EXACT_INTEGER_LIMIT:
        return f"{int(value):{sign},}"
    rounded = float(f"{value:.4g}")
    if 1e4 <= abs(rounded) < 1e15:
        # Keep 4 significant digits but spell them out: 123,500 reads better than 1.235e+05.
        return f"{rounded:{sign},.0f}"
    return f"{value:{sign}.4g}"


def fmt_interval(low: object, high: object) -> str:
    """``[low, high]``, or '' when neither bound is present."""
    if low is None and high is None:
        return ""
    return f"[{fmt_number(low)}, {fmt_number(high)}]"


def fmt_segment(segment: str | None) -> str:
    return "overall" if segment is None else visible(segment)


def is_overall(segment: str | None) -> bool:
    """True for an overall value: unscoped, or one dataset's overall (``dataset=<name>``).

    With several datasets (``data:`` as a list) every per-dataset value is scoped
    ``dataset=<name>``; the renderers show each dataset's overall values with the overall
    ones, labelled by :func:`metric_label`.
    """
    return segment is None or (segment.startswith("dataset=") and "," not in segment)


def metric_label(metric: str, segment: str | None) -> str:
    """The metric's name, with its dataset for one dataset's overall value (``acc @ ood``)."""
    if segment is not None and segment.startswith("dataset=") and "," not in segment:
        return f"{metric} @ {segment.partition('=')[2]}"
    return metric


def _fmt_verdict(check: CheckResult) -> str:
    if check.verdict == "pass":
        return "✅ pass"
    if check.blocking:
        return f"❌ {check.verdict}"
    return f"⚠️ {check.verdict} (non-blocking)"


def fmt_observed(check: CheckResult) -> str:
    if _mapping(check.criterion).get("compare") == "delta":
        return fmt_delta(check.observed)
    return fmt_number(check.observed)


def fmt_threshold(check: CheckResult) -> str:
    op = _mapping(check.criterion).get("op")
    op = getattr(op, "value", op)
    text = fmt_number(check.threshold)
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
        level = f"{fmt_number(100 * float(confidence))}%" if _is_number(confidence) else ""
        parts.append(" ".join(p for p in (level, interval_method_name(method)) if p))
    return "Intervals: " + "; ".join(parts) + "."


# --- Markdown helpers ----------------------------------------------------------------------


def _escape(text: str) -> str:
    """Neutralise Markdown/HTML syntax and control characters in text that comes from data."""
    return visible(text).translate(_ESCAPES)


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


def sorted_checks(checks: Iterable[CheckResult]) -> list[CheckResult]:
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


def _is_number(value: object) -> TypeGuard[SupportsFloat]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
