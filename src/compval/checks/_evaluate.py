"""Criteria -> verdicts. Pure: no I/O, no computation of metrics.

One decision rule for every check (``compval.stats.noninferiority_verdict``; documented in
docs/statistics.md):

* ``interval``: **pass** when the whole confidence interval meets ``op threshold``, **fail**
  when the whole interval violates it ("shown worse"), **inconclusive** otherwise, with the
  rows that would give an 80% chance to pass. An estimate without an interval that can be
  trusted at its counts is inconclusive, never passed on its point value.
* ``point``: pass when the estimate satisfies ``op threshold``, else fail; the message says it
  is a point comparison without statistical guarantee (``statistic: point`` or
  ``replicates: 0``).
* Segments with fewer than ``min_rows`` rows are inconclusive ("too small to decide"), never
  silently passed; counts and extremes (``nan_count``, ``max_abs_diff``...) are exempt.
* A criterion over several segments (``*``, ``column=*``) passes only if every segment passes:
  an intersection-union test, whose wrong-pass rate needs no correction. The correction
  (Holm by default, Benjamini-Hochberg, or none) protects against spurious **fails**: a
  segment's fail stands only if its one-sided p-value of "the criterion is met", from its
  interval, survives the adjustment across the criterion's segments; otherwise the verdict is
  inconclusive. Raw and adjusted p-values are in each check's ``details``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from compval.checks._criteria import OPS, Criterion
from compval.metrics import MetricEstimate
from compval.results import CheckResult, Verdict, interval_method_name
from compval.spec import echo
from compval.stats import noninferiority_verdict

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


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _interval_se(ci: tuple[float, float], confidence: float) -> float:
    """The standard error an interval implies (its half-width over z)."""
    return (ci[1] - ci[0]) / (2.0 * _z(confidence))


def _p_violation_shown(op: str, value: float, threshold: float, se: float) -> float:
    """One-sided p-value of H0 "the criterion is met", from the interval's standard error."""
    shortfall = threshold - value if op in (">=", ">") else value - threshold
    if se <= 0 or not math.isfinite(se):
        return 0.0 if shortfall > 0 else 1.0
    return 1.0 - NormalDist().cdf(shortfall / se)


def _rows_needed(
    c: Criterion, est: MetricEstimate, value: float, se: float, settings: CheckSettings
) -> tuple[int | None, str]:
    """Rows for an 80% chance (``settings.power``) to pass, and what it assumes.

    For a delta whose threshold leaves room below 0 (``max_drop``), the planning value is a
    candidate truly no worse than the reference (delta 0), with the per-row spread the metric
    reports for that case (``planning_sd``), else the one its interval implies. Plugging in
    the observed delta instead would be biased, since an inconclusive verdict selects a low
    one. Other criteria plan at the observed value.
    """
    from compval.stats import rows_needed_noninferiority

    if est.n <= 0 or c.op not in (">=", ">", "<=", "<") or se <= 0:
        return None, ""
    planning, assumes = value, "if the observed value were the truth"
    per_row_sd = se * math.sqrt(est.n)
    if c.compare == "delta" and OPS[c.op](0.0, c.threshold) and c.threshold != 0.0:
        planning, assumes = 0.0, "if the candidate were truly no worse than the reference"
        if est.planning_sd is not None:
            # The metric knows its spread under delta 0 (paired proportions: the discordant
            # share); an interval's width overstates it at small counts.
            per_row_sd = est.planning_sd
    needed = rows_needed_noninferiority(
        estimate=planning,
        threshold=c.threshold,
        op=c.op,
        per_row_sd=per_row_sd,
        confidence=settings.confidence,
        power=settings.power,
    )
    return needed, assumes


def _describe(c: Criterion, est: MetricEstimate | None, segment: str | None) -> str:
    what = {"candidate": "", "reference": " (reference)", "delta": " delta", "ratio": " ratio"}
    where = f"[{segment}]" if segment is not None else ""
    return f"{c.metric}{what[c.compare]}{where}"


def _decide_one(
    c: Criterion, est: MetricEstimate, settings: CheckSettings
) -> tuple[_Decision, float | None]:
    """Decide a single (criterion, segment); also return the raw one-sided p-value."""
    value, ci, _ = _observed(est, c.compare)
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
    signed = c.compare == "delta"
    if c.statistic == "point" or c.op not in (">=", ">", "<=", "<"):
        verdict: Verdict = "pass" if ok else "fail"
        msg = (
            f"{subject} = {_fmt(value, signed)} {'meets' if ok else 'violates'} {rule} "
            "(point comparison: no statistical guarantee)."
        )
        return _Decision(verdict, value, msg, details), None
    if ci is None or any(math.isnan(x) for x in ci):
        why = est.ci_method if est.ci_method and est.ci_method.startswith("none") else None
        reason = why.removeprefix("none: ") if why else "no confidence interval was computed"
        return (
            _Decision(
                "inconclusive",
                value,
                f"{subject} = {_fmt(value, signed)} cannot be decided on an interval here "
                f"({reason}); a point comparison would carry no guarantee.",
                details,
            ),
            None,
        )
    confidence = est.confidence or settings.confidence
    method = interval_method_name(est.ci_method)
    level = f"{round(confidence * 100):g}% {method} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    details["ci_method"] = est.ci_method
    verdict = noninferiority_verdict(value, ci, op=c.op, threshold=c.threshold)
    ci_se = _interval_se(ci, confidence)
    p = _p_violation_shown(c.op, value, c.threshold, ci_se)
    details["p_value"] = p
    if verdict == "pass":
        return (
            _Decision(
                "pass",
                value,
                f"{subject} = {_fmt(value, signed)} ({level}): the whole interval meets {rule}.",
                details,
            ),
            p,
        )
    if verdict == "fail":
        return (
            _Decision(
                "fail",
                value,
                f"{subject} = {_fmt(value, signed)} ({level}): the whole interval violates "
                f"{rule} (shown worse).",
                details,
            ),
            p,
        )
    needed, assumes = _rows_needed(c, est, value, ci_se, settings)
    details["rows_needed"] = needed
    hint = (
        f" About {needed:,} rows would give a probability of {settings.power:.0%} to pass "
        f"{assumes} (have {est.n:,})."
        if needed is not None
        else ""
    )
    return (
        _Decision(
            "inconclusive",
            value,
            f"{subject} = {_fmt(value, signed)} ({level}): the interval straddles {rule}, so "
            f"the data cannot tell.{hint}",
            details,
        ),
        p,
    )


def _adjust(
    decisions: list[tuple[_Decision, float | None]], c: Criterion, settings: CheckSettings
) -> list[_Decision]:
    """Guard the fails of a multi-segment criterion against multiplicity.

    Passes need no correction (every segment must pass: an intersection-union test). A fail
    stands only if its p-value of "the criterion is met" survives the correction across the
    criterion's segments; else it becomes inconclusive, and the message says why.
    """
    from compval.stats import adjust_pvalues

    raw = np.array([np.nan if p is None else p for _, p in decisions], dtype=np.float64)
    if settings.correction == "none" or np.isfinite(raw).sum() <= 1:
        adjusted = raw
    else:
        adjusted = adjust_pvalues(raw, method=settings.correction)
    alpha = (1 - settings.confidence) / 2
    m = int(np.isfinite(raw).sum())
    out = []
    for (d, p), adj in zip(decisions, adjusted, strict=True):
        if p is None or math.isnan(adj):
            out.append(d)
            continue
        details = {**d.details, "p_adjusted": float(adj), "correction": settings.correction}
        if d.verdict == "fail" and adj > alpha:
            out.append(
                _Decision(
                    "inconclusive",
                    d.observed,
                    f"{d.message} Across the {m} segments of this criterion the evidence does "
                    f"not survive the {settings.correction} correction (one-sided p = {_fmt(p)}, "
                    f"adjusted {_fmt(float(adj))} > {alpha:g}): not shown worse.",
                    details,
                )
            )
        else:
            out.append(_Decision(d.verdict, d.observed, d.message, details))
    return out


def _segments_in_scope(
    c: Criterion, by_key: Mapping[tuple[str, str | None], MetricEstimate]
) -> list[str | None]:
    present = [seg for (metric, seg) in by_key if metric == c.metric]
    if c.segment is None:
        return [None]
    if c.segment == "*":
        # Perturbed passes are gated only when a criterion names them (perturbation=...).
        return [s for s in present if s is None or not s.startswith(("slice:", "perturbation="))]
    if c.segment == "discovered":
        return [s for s in present if s is not None and s.startswith("slice:")]
    if c.segment == "perturbation=*":
        # Each perturbation overall (its segments need an explicit scope).
        return [
            s for s in present if s is not None and s.startswith("perturbation=") and "," not in s
        ]
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
            decided: list[tuple[str | None, tuple[_Decision, float | None]]] = []
            for dataset in c.datasets or [None]:
                by_key = _keyed(ests, dataset)
                segments = _segments_in_scope(c, by_key)
                for seg in segments:
                    est = by_key.get((c.metric, seg))
                    if est is None:
                        decided.append((_scoped(dataset, seg), (_missing(c, seg, by_key), None)))
                    else:
                        decided.append((_scoped(dataset, seg), _decide_one(c, est, settings)))
                if not segments:
                    missing = _missing(c, c.segment, by_key)
                    decided.append((_scoped(dataset, c.segment), (missing, None)))
            decisions = [d for _, d in decided]
            # Discovered slices are confirmed on rows the search never saw, so their intervals
            # are selection-valid; the correction then guards the fails across the slices.
            if c.statistic == "interval" and len(decisions) > 1:
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


def _keyed(
    ests: Sequence[MetricEstimate], dataset: str | None
) -> dict[tuple[str, str | None], MetricEstimate]:
    """Estimates by (metric, segment); for one dataset, its own with the prefix removed.

    A spec with several datasets scopes every per-dataset estimate ``dataset=<name>`` or
    ``dataset=<name>,<segment>``; gating one dataset is then gating a single-dataset run.
    """
    if dataset is None:
        return {(e.metric, e.segment): e for e in ests}
    head = f"dataset={dataset}"
    out: dict[tuple[str, str | None], MetricEstimate] = {}
    for e in ests:
        if e.segment == head:
            out[(e.metric, None)] = e
        elif e.segment is not None and e.segment.startswith(head + ","):
            out[(e.metric, e.segment[len(head) + 1 :])] = e
    return out


def _scoped(dataset: str | None, segment: str | None) -> str | None:
    """A check's segment: ``segment`` within ``dataset`` (its scope prefix added)."""
    if dataset is None:
        return segment
    return f"dataset={dataset}" if segment is None else f"dataset={dataset},{segment}"


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
        f"segment {echo(seg)} has no rows in the data, so {echo(c.metric)} cannot be decided "
        "there; "
        f"segments present: {', '.join(segs[:12])}{' ...' if len(segs) > 12 else ''}.",
        {"n": 0},
    )
