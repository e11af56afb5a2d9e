"""Verdicts from hand-made MetricEstimates: point and interval rules, min_rows, corrections."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sstats
from statsmodels.stats.multitest import multipletests

from compval.checks import CheckSettings, Criterion, evaluate
from compval.metrics import MetricEstimate

Z95 = sstats.norm.ppf(0.975)


def crit(**overrides: Any) -> Criterion:
    fields: dict[str, Any] = {
        "id": "acc",
        "metric": "accuracy_score",
        "compare": "delta",
        "op": ">=",
        "threshold": -0.01,
        "statistic": "point",
        "segment": None,
        "severity": "error",
        "candidates": None,
        "higher_is_better": True,
        "written_as": "max_drop: 0.01",
    }
    fields.update(overrides)
    return Criterion(**fields)


def est(
    delta: float | None = 0.0,
    *,
    metric: str = "accuracy_score",
    segment: str | None = None,
    n: int = 1000,
    reference: float | None = 0.9,
    ci: tuple[float, float] | None = None,
    se: float | None = None,
    **extra: Any,
) -> MetricEstimate:
    candidate = None if delta is None or reference is None else reference + delta
    if "candidate" in extra:
        candidate = extra.pop("candidate")
    return MetricEstimate(
        metric=metric,
        segment=segment,
        higher_is_better=extra.pop("higher_is_better", True),
        paired=extra.pop("paired", False),
        n=n,
        reference=reference,
        candidate=candidate,
        delta=delta,
        ci=ci,
        se=se,
        **extra,
    )


def one(c: Criterion, *estimates: MetricEstimate, **settings: Any) -> Any:
    (result,) = evaluate([c], {"cand": list(estimates)}, settings=CheckSettings(**settings))
    return result


# -- point ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("delta", "verdict"), [(-0.005, "pass"), (-0.01, "pass"), (-0.02, "fail")])
def test_point_rule(delta: float, verdict: str) -> None:
    c = crit()
    r = one(c, est(delta))
    assert r.verdict == verdict
    assert r.observed == pytest.approx(delta)
    assert (r.id, r.candidate, r.metric, r.segment, r.threshold) == (
        "acc",
        "cand",
        "accuracy_score",
        None,
        -0.01,
    )
    assert r.blocking is True
    assert r.criterion == c.explicit()
    assert r.details["n"] == 1000
    assert ("meets" if verdict == "pass" else "violates") in r.message
    assert "(max_drop: 0.01)" in r.message


def test_equality_op_on_counts() -> None:
    c = crit(
        id="nonfinite-outputs",
        metric="nonfinite_count",
        compare="candidate",
        op="==",
        threshold=0.0,
        written_as=None,
        higher_is_better=False,
    )
    ok = est(metric="nonfinite_count", reference=0.0, delta=0.0, n=5)
    bad = est(metric="nonfinite_count", reference=0.0, delta=3.0, n=5)
    assert one(c, ok).verdict == "pass"  # exact metric: no min_rows
    assert one(c, bad).verdict == "fail"
    assert one(c, bad).observed == 3.0


# -- interval (non-inferiority) ------------------------------------------------------------
def test_interval_passes_when_the_worst_end_meets_the_threshold() -> None:
    r = one(crit(statistic="interval"), est(-0.002, ci=(-0.008, 0.004), se=0.003))
    assert r.verdict == "pass"
    assert "the whole interval meets >= -0.01" in r.message
    assert r.details["ci"] == [-0.008, 0.004]
    # p of "the criterion is met", with the standard error the interval implies.
    se = 0.012 / (2 * Z95)
    assert r.details["p_value"] == pytest.approx(sstats.norm.sf(-0.008 / se))


def test_interval_fails_only_when_the_whole_interval_violates() -> None:
    r = one(crit(statistic="interval"), est(-0.02, ci=(-0.03, -0.011), se=0.005))
    assert r.verdict == "fail"
    assert "the whole interval violates >= -0.01" in r.message and "shown worse" in r.message
    # The point estimate violates, but the interval reaches the passing side: not shown.
    straddle = one(crit(statistic="interval"), est(-0.02, ci=(-0.03, -0.005), se=0.006))
    assert straddle.verdict == "inconclusive"
    assert "straddles" in straddle.message and "cannot tell" in straddle.message


def test_interval_is_inconclusive_when_only_the_interval_crosses_with_rows_needed() -> None:
    n, delta = 1000, -0.004
    r = one(crit(statistic="interval"), est(delta, ci=(-0.012, 0.004), se=0.004, n=n))
    assert r.verdict == "inconclusive"
    assert r.blocking is True
    assert "the data cannot tell" in r.message
    # Planned at a candidate truly no worse (delta 0), not at the observed -0.004.
    se = 0.016 / (2 * Z95)
    z = Z95 + sstats.norm.ppf(0.8)
    expected = (z * se * math.sqrt(n) / 0.01) ** 2
    assert r.details["rows_needed"] == pytest.approx(expected, rel=0.01, abs=1)
    assert f"About {r.details['rows_needed']:,} rows would give" in r.message
    assert "if the candidate were truly no worse than the reference (have 1,000)" in r.message


def test_lower_is_better_uses_the_upper_end() -> None:
    c = crit(
        metric="brier_loss",
        op="<=",
        threshold=0.02,
        statistic="interval",
        higher_is_better=False,
        written_as=None,
    )
    clear = est(0.01, metric="brier_loss", ci=(0.0, 0.015), se=0.004)
    reaches = est(0.01, metric="brier_loss", ci=(-0.02, 0.03), se=0.008)
    assert one(c, clear).verdict == "pass"
    assert one(c, reaches).verdict == "inconclusive"
    assert "[-0.02, 0.03]" in one(c, reaches).message


def test_compare_sides_read_their_own_interval() -> None:
    e = est(
        -0.01,
        reference=0.9,
        ci=(-0.05, 0.03),
        se=0.02,
        ratio=0.8 / 0.9 + 0.1,
        ci_ratio=(0.98, 1.02),
        ci_candidate=(0.885, 0.895),
    )
    ratio = one(crit(compare="ratio", threshold=0.95, statistic="interval"), e)
    assert ratio.verdict == "pass"
    assert ratio.details["ci"] == [0.98, 1.02]
    candidate = one(crit(compare="candidate", threshold=0.88, statistic="interval"), e)
    assert candidate.observed == pytest.approx(0.89)
    assert candidate.details["ci"] == [0.885, 0.895]
    assert candidate.verdict == "pass"
    reference = one(crit(compare="reference", threshold=0.95), e)
    assert (reference.observed, reference.verdict) == (0.9, "fail")


def test_paired_metrics_read_the_value_interval() -> None:
    paired = est(
        None,
        metric="top1_agreement",
        reference=None,
        candidate=0.97,
        paired=True,
        ci=(0.95, 0.99),
        se=0.01,
    )
    c = crit(metric="top1_agreement", compare="candidate", threshold=0.96, statistic="interval")
    r = one(c, paired)
    assert r.verdict == "inconclusive"
    assert r.details["ci"] == [0.95, 0.99]


def test_interval_statistic_without_an_interval_is_inconclusive_not_a_point_pass() -> None:
    r = one(crit(statistic="interval"), est(-0.005))
    assert r.verdict == "inconclusive"
    assert "cannot be decided on an interval" in r.message
    untrusted = one(
        crit(statistic="interval"),
        est(-0.005, ci_method="none: too few disagreements for the bootstrap"),
    )
    assert "too few disagreements for the bootstrap" in untrusted.message


def test_point_statistic_says_it_carries_no_guarantee() -> None:
    r = one(crit(statistic="point"), est(-0.005, ci=(-0.5, 0.5)))
    assert r.verdict == "pass"
    assert "point comparison: no statistical guarantee" in r.message


# -- evidence that cannot decide -----------------------------------------------------------
def test_segments_below_min_rows_are_too_small_to_decide() -> None:
    small = est(-0.5, n=12, ci=(-0.9, -0.1), se=0.2)
    r = one(crit(statistic="interval"), small)
    assert r.verdict == "inconclusive"
    assert r.message.endswith("on 12 rows: too small to decide (min_rows = 30).")
    assert one(crit(statistic="interval"), small, min_rows=10).verdict == "fail"


def test_missing_metric_is_inconclusive() -> None:
    r = one(crit(metric="recall_score[9]"), est(0.0))
    assert r.verdict == "inconclusive"
    assert r.observed is None
    assert "recall_score[9] was not computed: no such class" in r.message


def test_missing_class_lists_the_computed_ones() -> None:
    estimates = [est(0.0, metric="recall_score[0]"), est(0.0, metric="recall_score[1]")]
    r = one(crit(metric="recall_score[7]"), *estimates)
    assert r.verdict == "inconclusive"
    assert "computed: recall_score[0], recall_score[1]." in r.message


def test_missing_segment_is_inconclusive_and_lists_present_segments() -> None:
    estimates = [est(0.0), est(0.0, segment="region=north"), est(0.0, segment="region=south")]
    r = one(crit(segment="region=west"), *estimates)
    assert (r.verdict, r.segment, r.details) == ("inconclusive", "region=west", {"n": 0})
    assert "segments present: region=north, region=south." in r.message


def test_undefined_value_is_inconclusive() -> None:
    r = one(crit(), est(float("nan")))
    assert r.verdict == "inconclusive"
    assert "undefined on this data" in r.message


# -- blocking ------------------------------------------------------------------------------
def test_warn_severity_never_blocks() -> None:
    r = one(crit(severity="warn"), est(-0.5))
    assert (r.verdict, r.severity, r.blocking) == ("fail", "warn", False)


def test_inconclusive_warn_setting_unblocks_only_inconclusive_verdicts() -> None:
    inconclusive = one(
        crit(statistic="interval"), est(-0.004, ci=(-0.012, 0.004), se=0.004), inconclusive="warn"
    )
    failed = one(crit(), est(-0.5), inconclusive="warn")
    assert (inconclusive.verdict, inconclusive.blocking) == ("inconclusive", False)
    assert (failed.verdict, failed.blocking) == ("fail", True)


def test_criteria_apply_only_to_their_candidates() -> None:
    results = evaluate(
        [crit(candidates=("a",))], {"a": [est(0.0)], "b": [est(-0.5)]}, settings=CheckSettings()
    )
    assert [(r.candidate, r.verdict) for r in results] == [("a", "pass")]


# -- scopes and multiple testing -----------------------------------------------------------
SEGMENTED = [
    est(0.0, segment=None),
    est(0.0, segment="label=0"),
    est(0.0, segment="region=north"),
    est(0.0, segment="region=south"),
    est(0.0, segment="slice:x0 < 1"),
]


@pytest.mark.parametrize(
    ("scope", "segments"),
    [
        ("*", [None, "label=0", "region=north", "region=south"]),
        ("region=*", ["region=north", "region=south"]),
        ("label=*", ["label=0"]),
        ("discovered", ["slice:x0 < 1"]),
        ("region=north", ["region=north"]),
        (None, [None]),
    ],
)
def test_scopes_select_segments(scope: str | None, segments: list[str | None]) -> None:
    results = evaluate([crit(segment=scope)], {"cand": SEGMENTED}, settings=CheckSettings())
    assert [r.segment for r in results] == segments


def test_column_scope_with_no_values_is_inconclusive() -> None:
    (r,) = evaluate([crit(segment="device=*")], {"cand": SEGMENTED}, settings=CheckSettings())
    assert (r.segment, r.verdict) == ("device=*", "inconclusive")


def _holm_case() -> tuple[list[MetricEstimate], np.ndarray]:
    """Three segments whose intervals all violate -0.01, with one-sided p 1e-4, 0.014, 0.015.

    p is that of "the criterion is met" given the interval's standard error.
    """
    p = np.array([1e-4, 0.014, 0.015])
    se = 0.004
    out = []
    for i, pi in enumerate(p):
        delta = -0.01 - sstats.norm.isf(pi) * se
        ci = (float(delta - Z95 * se), float(delta + Z95 * se))
        out.append(est(float(delta), segment=f"region=r{i}", ci=ci, se=se))
    return out, p


@pytest.mark.parametrize(
    ("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh"), ("none", None)]
)
def test_multiple_testing_correction_guards_the_fails(correction: str, method: str | None) -> None:
    estimates, p = _holm_case()
    for e in estimates:  # each interval alone is wholly below the threshold
        assert one(crit(statistic="interval", segment=e.segment), e).verdict == "fail"

    results = evaluate(
        [crit(statistic="interval", segment="*")],
        {"cand": estimates},
        settings=CheckSettings(correction=correction),  # type: ignore[arg-type]
    )

    raw = np.array([r.details["p_value"] for r in results])
    np.testing.assert_allclose(raw, p, rtol=1e-9)
    adjusted = np.array([r.details["p_adjusted"] for r in results])
    expected = p if method is None else multipletests(p, method=method)[1]
    np.testing.assert_allclose(adjusted, expected, rtol=1e-9)
    assert all(r.details["correction"] == correction for r in results)
    verdicts = ["fail" if a <= 0.025 else "inconclusive" for a in expected]
    assert [r.verdict for r in results] == verdicts
    if correction == "holm":
        # Holm: 3 x 1e-4, then max(2 x 0.014, .) = 0.028 > 0.025 for the other two.
        assert verdicts == ["fail", "inconclusive", "inconclusive"]
        assert "does not survive the holm correction" in results[1].message
        assert "not shown worse" in results[1].message


def test_passes_need_no_correction() -> None:
    se = 0.004
    passing = [est(0.0, segment=f"region=r{i}", ci=(-Z95 * se, Z95 * se), se=se) for i in range(20)]
    results = evaluate(
        [crit(statistic="interval", segment="*")], {"cand": passing}, settings=CheckSettings()
    )
    assert [r.verdict for r in results] == ["pass"] * 20


def test_small_segments_are_left_out_of_the_correction() -> None:
    estimates, p = _holm_case()
    tiny = est(0.0, segment="region=tiny", n=5, ci=(-0.2, 0.2), se=0.1)
    results = evaluate(
        [crit(statistic="interval", segment="*")],
        {"cand": [*estimates, tiny]},
        settings=CheckSettings(),
    )
    assert results[-1].verdict == "inconclusive"
    assert "p_adjusted" not in results[-1].details
    np.testing.assert_allclose(
        [r.details["p_adjusted"] for r in results[:-1]], multipletests(p, method="holm")[1]
    )


def test_discovered_slices_are_decided_on_their_confirmed_intervals_with_holm() -> None:
    """Discovered slices carry intervals from rows the search never saw: the one rule applies,
    and the correction guards their fails like any multi-segment criterion's."""
    c = crit(
        segment="discovered", threshold=-0.05, statistic="interval", written_as="max_drop: 0.05"
    )
    weak = est(-0.2, segment="slice:x0 < 0", n=60, ci=(-0.35, -0.04), se=0.07)
    real = est(-0.2, segment="slice:x1 < 0", n=600, ci=(-0.25, -0.15), se=0.02)
    results = evaluate([c], {"cand": [weak, real]}, settings=CheckSettings())
    assert [r.verdict for r in results] == ["inconclusive", "fail"]
    assert "straddles" in results[0].message
    assert results[1].details["correction"] == "holm"
    assert results[1].details["p_adjusted"] <= 0.025


# -- candidate-value criteria use the candidate's own uncertainty --------------------------
def _candidate_value_estimate(segment: str | None, n: int) -> MetricEstimate:
    """Candidate accuracy 0.92 whose own interval crosses 0.9; the paired delta is exactly 0."""
    se = math.sqrt(0.92 * 0.08 / n)
    return est(
        0.0,
        segment=segment,
        n=n,
        reference=0.92,
        ci=(0.0, 0.0),
        se=0.0,
        ci_candidate=(0.92 - Z95 * se, min(1.0, 0.92 + Z95 * se)),
        se_candidate=se,
    )


def test_candidate_criteria_across_segments_use_the_candidate_uncertainty() -> None:
    c = crit(
        compare="candidate", threshold=0.9, statistic="interval", segment="*", written_as="min: 0.9"
    )
    estimates = [_candidate_value_estimate(None, 5000), _candidate_value_estimate("region=a", 80)]
    alone = crit(compare="candidate", threshold=0.9, statistic="interval", segment="region=a")
    assert one(alone, estimates[1]).verdict == "inconclusive"

    results = evaluate([c], {"cand": estimates}, settings=CheckSettings())

    assert [r.verdict for r in results] == ["pass", "inconclusive"]


def test_rows_needed_for_a_candidate_criterion_exceeds_the_rows_seen() -> None:
    c = crit(compare="candidate", threshold=0.9, statistic="interval", segment="region=a")
    r = one(c, _candidate_value_estimate("region=a", 80))
    assert r.verdict == "inconclusive"
    z = Z95 + sstats.norm.ppf(0.8)
    expected = (z * math.sqrt(0.92 * 0.08) / 0.02) ** 2
    assert r.details["rows_needed"] == pytest.approx(expected, rel=0.01)
    assert r.details["rows_needed"] > 80


@pytest.mark.parametrize(
    ("compare", "threshold", "value", "ci"),
    [
        ("delta", -0.01, -0.002, (-0.008, 0.004)),
        ("candidate", 0.85, 0.898, (0.878, 0.918)),
        ("ratio", 0.97, 0.998, (0.958, 1.038)),
    ],
)
def test_p_values_use_the_interval_of_the_compared_quantity(
    compare: str, threshold: float, value: float, ci: tuple[float, float]
) -> None:
    e = est(
        -0.002,
        reference=0.9,
        ci=(-0.008, 0.004),
        se=0.003,
        ci_candidate=(0.878, 0.918),
        se_candidate=0.01,
        ratio=0.998,
        ci_ratio=(0.958, 1.038),
        se_ratio=0.02,
    )
    r = one(crit(compare=compare, threshold=threshold, statistic="interval"), e)
    se = (ci[1] - ci[0]) / (2 * Z95)
    assert r.details["p_value"] == pytest.approx(sstats.norm.sf((threshold - value) / se))
