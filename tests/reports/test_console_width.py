"""The console at 80 columns (CI logs): no line too wide, no name split, integers exact.

The report is shaped like the demo's: four candidates, per-class and per-column segments,
blocking and non-blocking criteria, 27 overall metrics per candidate and a profile.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import re

import pytest
from rich.console import Console

from compval.reports import render_console, render_markdown
from compval.results import CheckResult, MetricValue, Report

CANDIDATES = ("int8_dynamic", "int8_static", "pruned50", "distilled")
SEGMENTS = [None, *(f"label={i}" for i in range(10)), "ink=heavy", "ink=light", "ink=medium"]
METRICS = [
    "nan_count",
    "inf_count",
    "nonfinite_count",
    "mcnemar_pvalue",
    "stuart_maxwell_pvalue",
    "prediction_js_distance",
    "prediction_psi_distance",
    "top1_agreement",
    "accuracy_score",
    "flip_correct_to_wrong_rate",
    "flip_wrong_to_correct_rate",
    "macro_f1_score",
    "weighted_f1_score",
    "mean_abs_diff",
    "sqnr_db",
    "cosine_similarity",
    "max_abs_diff",
    "mean_kl_divergence",
    "p99_kl_divergence",
    "brier_loss",
    "expected_calibration_error",
    "confidence_ks_distance",
    "confidence_wasserstein_distance",
    "model_size_mb",
    "parameter_count",
    "load_time_ms",
    "speedup[batch=64]",
]
CRITERIA = [
    # id, metric, compare, op, threshold, per-segment, severity
    ("accuracy-overall", "accuracy_score", "delta", ">=", -0.02, False, "error"),
    ("accuracy-per-segment", "accuracy_score", "delta", ">=", -0.05, True, "error"),
    ("macro-f1", "macro_f1_score", "delta", ">=", -0.02, False, "error"),
    ("agreement", "top1_agreement", "candidate", ">=", 0.95, False, "error"),
    ("model-size", "model_size_mb", "candidate", "<=", 0.05, False, "error"),
    ("kl", "mean_kl_divergence", "candidate", "<=", 0.05, False, "warn"),
    ("flips", "flip_correct_to_wrong_rate", "candidate", "<=", 0.03, True, "warn"),
    ("not-slower", "speedup[batch=64]", "candidate", ">=", 1.0, False, "warn"),
]


def _check(i: int, candidate: str, criterion: tuple, segment: str | None) -> CheckResult:
    check_id, metric, compare, op, threshold, _, severity = criterion
    verdict = ("fail", "inconclusive", "pass", "pass")[(i + len(candidate)) % 4]
    observed = -0.04079 if compare == "delta" else 0.9468
    return CheckResult(
        id=check_id,
        candidate=candidate,
        metric=metric,
        segment=segment,
        verdict=verdict,  # type: ignore[arg-type]
        observed=observed,
        threshold=threshold,
        message=f"{metric} delta = {observed} (95% Tango score interval [-0.05768, -0.02732]): "
        f"the interval straddles {op} {threshold} (max_drop: 0.05), so the data cannot tell. "
        "About 153 rows would give a probability of 80% to pass (have 809).",
        severity=severity,  # type: ignore[arg-type]
        blocking=severity == "error",
        criterion={"metric": metric, "compare": compare, "op": op, "threshold": threshold},
        details={"n": 809, "ci": [-0.05767999623799122, -0.027322345021039467]},
    )


def _metric(candidate: str, name: str) -> MetricValue:
    if name == "parameter_count":
        reference, value = 17227.0, 17233.0
    else:
        reference, value = 0.98146, 0.940667
    return MetricValue(
        candidate=candidate,
        metric=name,
        segment=None,
        reference_value=reference,
        candidate_value=value,
        delta=value - reference,
        n=809,
        higher_is_better=True,
        ci_low=-0.0047259631986137605,
        ci_high=0.0047259631986137605,
        confidence=0.95,
        ci_method="tango_score",
    )


@pytest.fixture
def demo_like(report: Report) -> Report:
    checks = []
    for candidate in CANDIDATES:
        for criterion in CRITERIA:
            for i, segment in enumerate(SEGMENTS if criterion[5] else [None]):
                checks.append(_check(i, candidate, criterion, segment))
    metrics = [_metric(c, m) for c in CANDIDATES for m in METRICS]
    return dataclasses.replace(
        report, checks=tuple(checks), metrics=tuple(metrics), candidates=CANDIDATES
    )


def _render(report: Report, *, verbose: bool) -> str:
    console = Console(record=True, width=80, file=io.StringIO())
    render_console(report, console, verbose=verbose)
    return console.export_text()


@pytest.mark.parametrize("verbose", [False, True])
def test_no_line_is_wider_than_80_columns(demo_like: Report, verbose: bool) -> None:
    lines = _render(demo_like, verbose=verbose).splitlines()
    assert max(len(line) for line in lines) <= 80


def test_default_view_is_short_and_names_every_non_passing_check_whole(
    demo_like: Report,
) -> None:
    text = _render(demo_like, verbose=False)
    assert len(text.splitlines()) < 120  # the demo printed 559 lines before
    names = [c.junit_name for c in demo_like.checks if c.verdict != "pass"]
    shown = [n for n in names if n in text]
    assert len(shown) >= 12  # the first 12 blocking and 4 non-blocking, each on its lines
    for line in text.splitlines():
        # A name cut at the line end would leave "accuracy-per-segme" or "[pruned5".
        assert not re.search(r"[\w\-]\[\w*$|-$", line.rstrip()), line


@pytest.mark.parametrize("verbose", [False, True])
def test_check_ids_and_metric_names_are_never_split(demo_like: Report, verbose: bool) -> None:
    text = _render(demo_like, verbose=verbose)
    names = {c.id for c in demo_like.checks} | {m.metric for m in demo_like.metrics}
    names |= set(CANDIDATES) | {"Candidate", "Metric", "Reference"}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for above, below in itertools.pairwise(lines):
        last, first = above.split()[-1], below.split()[0]
        for name in names:
            joined = name in last + first and name not in last and name not in first
            assert not joined, f"{name!r} split over lines: {above!r} / {below!r}"
    if verbose:
        for name in {m.metric for m in demo_like.metrics if "[" not in m.metric}:
            assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), name
    else:
        for name in ("accuracy_score", "macro_f1_score", "top1_agreement", "model_size_mb"):
            assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), name


def test_integers_are_never_rounded(demo_like: Report) -> None:
    verbose = _render(demo_like, verbose=True)
    assert "17,227" in verbose and "17,233" in verbose and "17,230" not in verbose
    markdown = render_markdown(demo_like)
    assert "17,227" in markdown and "17,230" not in markdown
