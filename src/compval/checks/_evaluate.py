"""Criteria -> verdicts. Pure: no I/O, no computation of metrics.

Decision rules (documented in docs/statistics.md):

* ``point``: pass when the estimate satisfies ``op threshold``, else fail.
* ``interval`` (non-inferiority): pass when the interval's worst end satisfies the threshold
  (the two-sided interval at ``confidence``, so a one-sided level of (1 - confidence) / 2);
  fail when the point estimate does not; otherwise inconclusive, with a sample-size estimate.
* Segments with fewer than ``min_rows`` rows are inconclusive ("too small to decide"), never
  silently passed; counts and extremes (``nan_count``, ``max_abs_diff``...) are exempt.
* A criterion over several segments (``*``, ``column=*``) with ``interval`` decides each
  segment on a one-sided p-value (normal approximation with the bootstrap standard error)
  adjusted across the segments (Holm by default, Benjamini-Hochberg as an option); raw and
  adjusted p-values are in each check's ``details``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from compval.checks._criteria import OPS, Criterion
from compval.metrics import MetricEstimate
from compval.results import CheckResult, Verdict

__all__ = ["CheckSettings", "evaluate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSettings:
    """How verdicts are reached."""

    min_rows: int = 30
    confidence: float = 0.95
    correction: Literal["holm", "bh", "none"] = "holm"
    inconclusive: Literal["block", "warn"] = "block"
    power: float = 0.8


@dataclass(frozen=True, slots=True)
class _Decision:
    verdict: Verdict
    observed: float | None
    message: str
    details: dict[str, Any]


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _observed(
    est: MetricEstimate, compare: str
) -> tuple[float | None, tuple[float, float] | None, float | None]:
    """The compared value, its interval and its standard error."""
    if compare == "candidate":
        if est.paired:
            return est.candidate, est.ci, est.se
        return est.candidate, est.ci_candidate, est.se_candidate
    if compare == "reference":
        return est.reference, None, None
    if compare == "delta":
        return est.delta, est.ci, est.se
    return est.ratio, est.ci_ratio, est.se_ratio


def _worst_end(op: str, ci: tuple[float, float]) -> float:
    return ci[0] if op in (">=", ">") else ci[1]


def _p_value(op: str, value: float, threshold: float, se: float | None) -> float:
    """One-sided p-value of H0 'the criterion is violated' (normal approximation)."""
    if op == "==":
        return 0.0 if value == threshold else 1.0
    margin = value - threshold if op in (">=", ">") else threshold - value
    if se is None or se <= 0 or not math.isfinite(se):
        return 0.0 if margin > 0 or (margin == 0 and op in (">=", "<=")) else 1.0
    from scipy import stats as sstats  # lazily: keeps `compval --help` fast

    return float(sstats.norm.sf(margin / se))


def _rows_needed(
    c: Criterion, est: MetricEstimate, value: float, se: float | None, settings: CheckSettings
) -> int | None:
    from compval.stats import rows_needed_noninferiority

    if se is None or est.n <= 0 or c.op not in (">=", ">", "<=", "<"):
        return None
    # The bootstrap standard error of a mean of n rows is sd / sqrt(n).
    return rows_needed_noninferiority(
        estimate=value,
        threshold=c.threshold,
        op=c.op,
        per_row_sd=se * math.sqrt(est.n),
        confidence=settings.confidence,
        power=settings.power,
    )


def _describe(c: Criterion, est: MetricEstimate | None, segment: str | None) -> str:
    what = {"candidate": "", "reference": " (reference)", "delta": " delta", "ratio": " ratio"}
    where = f"[{segment}]" if segment is not None else ""
    return f"{c.metric}{what[c.compare]}{where}"


def _decide_one(
    c: Criterion, est: MetricEstimate, settings: CheckSettings
) -> tuple[_Decision, float | None]:
    """Decide a single (criterion, segment); also return the raw one-sided p-value."""
    value, ci, se = _observed(est, c.compare)
    subject = _describe(c, est, est.segment)
    rule = f"{c.op} {_fmt(c.threshold)}" + (f" ({c.written_as})" if c.written_as else "")
    details: dict[str, Any] = {"n": est.n}
    if ci is not None:
        details["ci"] = list(ci)
    if value is None or math.isnan(value):
        return (
            _Decision(
                "inconclusive", None, f"{subject} is undefined on this data (n={est.n}).", details
            ),
            None,
        )
    if not c.is_exact and est.n < settings.min_rows:
        return (
            _Decision(
                "inconclusive",
                value,
                f"{subject} = {_fmt(value)} on {est.n} rows: too small to decide "
                f"(min_rows = {settings.min_rows}).",
                details,
            ),
            None,
        )
    ok = OPS[c.op](value, c.threshold)
    if not ok and est.p_adjusted is not None and est.p_adjusted > 1 - settings.confidence:
        # A discovered slice was picked as the worst of many: without search-corrected
        # evidence that the drop is real, its point estimate alone must not fail the gate.
        details["p_adjusted"] = est.p_adjusted
        return (
            _Decision(
                "inconclusive",
                value,
                f"{subject} = {_fmt(value, c.compare == 'delta')} violates {c.op} "
                f"{_fmt(c.threshold)}, but the slice was found by searching many slices and the "
                f"drop is not significant after correcting for the search (Holm-adjusted "
                f"p = {_fmt(est.p_adjusted)}).",
                details,
            ),
            None,
        )
    p = _p_value(c.op, value, c.threshold, se) if c.statistic == "interval" else None
    if p is not None:
        details["p_value"] = p
    if c.statistic == "point" or ci is None:
        verdict: Verdict = "pass" if ok else "fail"
        basis = "" if c.statistic == "point" else " (no interval available: point estimate)"
        verb = "meets" if ok else "violates"
        msg = f"{subject} = {_fmt(value, c.compare == 'delta')} {verb} {rule}{basis}."
        return _Decision(verdict, value, msg, details), p
    level = f"{round(settings.confidence * 100):g}% CI [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    worst = _worst_end(c.op, ci)
    if not ok:
        return (
            _Decision(
                "fail",
                value,
                f"{subject} = {_fmt(value, c.compare == 'delta')} ({level}) violates {rule}.",
                details,
            ),
            p,
        )
    if OPS[c.op](worst, c.threshold):
        return (
            _Decision(
                "pass",
                value,
                f"{subject} = {_fmt(value, c.compare == 'delta')} ({level}): the whole "
                f"interval meets {rule}.",
                details,
            ),
            p,
        )
    needed = _rows_needed(c, est, value, se, settings)
    details["rows_needed"] = needed
    hint = (
        f" About {needed:,} rows would be needed to decide (have {est.n:,})."
        if needed is not None
        else ""
    )
    return (
        _Decision(
            "inconclusive",
            value,
            f"{subject} = {_fmt(value, c.compare == 'delta')} meets {rule}, but its {level} "
            f"reaches {_fmt(worst)}: the data cannot tell.{hint}",
            details,
        ),
        p,
    )


def _adjust(
    decisions: list[tuple[_Decision, float | None]], c: Criterion, settings: CheckSettings
) -> list[_Decision]:
    """Apply the multiple-testing correction across the segments of one criterion."""
    from compval.stats import adjust_pvalues

    raw = np.array([np.nan if p is None else p for _, p in decisions], dtype=np.float64)
    if settings.correction == "none" or np.isfinite(raw).sum() <= 1:
        adjusted = raw
    else:
        adjusted = adjust_pvalues(raw, method=settings.correction)
    alpha = (1 - settings.confidence) / 2
    out = []
    for (d, p), adj in zip(decisions, adjusted, strict=True):
        if p is None or math.isnan(adj):
            out.append(d)
            continue
        details = {**d.details, "p_adjusted": float(adj), "correction": settings.correction}
        verdict = d.verdict
        message = d.message
        if d.verdict != "fail":
            verdict = "pass" if adj <= alpha else "inconclusive"
            if verdict != d.verdict or settings.correction != "none":
                message = (
                    f"{d.message} Across segments ({settings.correction}): p = {_fmt(p)}, "
                    f"adjusted {_fmt(float(adj))} {'<=' if adj <= alpha else '>'} {alpha:g}."
                )
        out.append(_Decision(verdict, d.observed, message, details))
    return out


def _segments_in_scope(
    c: Criterion, by_key: Mapping[tuple[str, str | None], MetricEstimate]
) -> list[str | None]:
    present = [seg for (metric, seg) in by_key if metric == c.metric]
    if c.segment is None:
        return [None]
    if c.segment == "*":
        return [s for s in present if s is None or not s.startswith("slice:")]
    if c.segment == "discovered":
        return [s for s in present if s is not None and s.startswith("slice:")]
    if c.segment.endswith("=*"):
        prefix = c.segment[:-1]
        return [s for s in present if s is not None and s.startswith(prefix)]
    return [c.segment]


def evaluate(
    criteria: Sequence[Criterion],
    estimates: Mapping[str, Sequence[MetricEstimate]],
    *,
    settings: CheckSettings = CheckSettings(),
) -> list[CheckResult]:
    """Evaluate every criterion for every candidate it applies to, in every scoped segment.

    Args:
        criteria: Resolved criteria.
        estimates: Candidate name -> its metric estimates (all segments).
        settings: Decision settings.

    Returns:
        One CheckResult per (criterion, candidate, segment).
    """
    results: list[CheckResult] = []
    for c in criteria:
        for candidate, ests in estimates.items():
            if c.candidates is not None and candidate not in c.candidates:
                continue
            by_key = {(e.metric, e.segment): e for e in ests}
            segments = _segments_in_scope(c, by_key)
            decided: list[tuple[str | None, tuple[_Decision, float | None]]] = []
            for seg in segments:
                est = by_key.get((c.metric, seg))
                if est is None:
                    decided.append((seg, (_missing(c, seg, by_key), None)))
                else:
                    decided.append((seg, _decide_one(c, est, settings)))
            if not segments:
                decided.append((c.segment, (_missing(c, c.segment, by_key), None)))
            decisions = [d for _, d in decided]
            if c.statistic == "interval" and len(decisions) > 1 and c.segment != "discovered":
                final = _adjust(decisions, c, settings)
            else:
                final = [d for d, _ in decisions]
            for (seg, _), d in zip(decided, final, strict=True):
                blocking = c.severity == "error" and (
                    d.verdict != "inconclusive" or settings.inconclusive == "block"
                )
                results.append(
                    CheckResult(
                        id=c.id,
                        candidate=candidate,
                        metric=c.metric,
                        segment=seg,
                        verdict=d.verdict,
                        observed=d.observed,
                        threshold=c.threshold,
                        message=d.message,
                        severity=c.severity,
                        blocking=blocking,
                        criterion=c.explicit(),
                        details=d.details,
                    )
                )
    return results


def _missing(
    c: Criterion, seg: str | None, by_key: Mapping[tuple[str, str | None], MetricEstimate]
) -> _Decision:
    metrics = {m for m, _ in by_key}
    base = c.metric.split("[", 1)[0]
    if c.metric not in metrics and "[" in c.metric:
        known = sorted({m for m in metrics if m.startswith(base + "[")})
        return _Decision(
            "inconclusive",
            None,
            f"{c.metric} was not computed: no such class or setting in this run; "
            f"computed: {', '.join(known[:12]) or 'none'}{' ...' if len(known) > 12 else ''}.",
            {},
        )
    if c.metric not in metrics:
        return _Decision(
            "inconclusive",
            None,
            f"{c.metric} was not computed for this run (the models' outputs or the data do not "
            "provide it, e.g. KL needs probabilities or logits, accuracy needs labels).",
            {},
        )
    column = (seg or "").split("=", 1)[0]
    present = [str(s) for (m, s) in by_key if m == c.metric and s is not None]
    if seg == "discovered" or (seg or "").startswith("slice:"):
        return _Decision(
            "inconclusive",
            None,
            "no discovered slices to check: slice discovery is off (statistics.discovery), or "
            "the data is not tabular with labels, or no slice reached min_rows.",
            {"n": 0},
        )
    same = sorted(s for s in present if s.startswith(f"{column}="))
    segs = same or sorted(s for s in present if not s.startswith("slice:"))
    return _Decision(
        "inconclusive",
        None,
        f"segment {seg!r} has no rows in the data, so {c.metric} cannot be decided there; "
        f"segments present: {', '.join(segs[:12])}{' ...' if len(segs) > 12 else ''}.",
        {"n": 0},
    )
