"""Perturbation suites and the differential search on real ONNX models, checked against
independent numpy / onnxruntime / scipy computations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from scipy import stats as sps
from sklearn.datasets import load_digits

from compval.data import ArrayDataset
from compval.engine import run_validation
from compval.reports import render_html, render_markdown
from compval.robustness import write_edge_cases
from compval.spec import AcceptanceSpec

SHIFT = 0.5  # the shift perturbation, in per-feature std
GAP_MAX = 0.05


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x.astype(np.float32)})[1])


def _spec(
    models: Any, robustness: dict, criteria: list[dict], batch_size: int = 100
) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(models.fp32)},
            "candidates": [
                {"name": "qdq", "path": str(models.qdq)},
                {"name": "narrow", "path": str(models.narrow)},
            ],
            "data": {"path": "unused.npz"},
            "batch_size": batch_size,
            "statistics": {"replicates": 400, "discovery": False},
            "robustness": robustness,
            "criteria": criteria,
        }
    )


def _metric(report: Any, candidate: str, metric: str, segment: str | None) -> Any:
    (m,) = [
        m
        for m in report.metrics
        if m.candidate == candidate and m.metric == metric and m.segment == segment
    ]
    return m


@pytest.fixture(scope="module")
def suite(models: Any, digits: tuple[np.ndarray, np.ndarray]) -> Any:
    x, y = digits
    spec = _spec(
        models,
        {
            "perturbations": [
                {"name": "shift", "kind": "shift", "params": {"std": SHIFT}},
                {"name": "noise", "kind": "noise", "params": {"std": 0.3}},
            ]
        },
        [{"id": "gap", "metric": "robustness_gap", "max": GAP_MAX}],
    )
    return run_validation(spec, data=ArrayDataset(x, labels=y))


def test_gap_matches_an_independent_computation(suite: Any, models: Any, digits: Any) -> None:
    x, y = digits
    shifted = x.astype(np.float64) + SHIFT * x.astype(np.float64).std(axis=0)
    ref_clean = _predict(models.fp32, x).argmax(1) == y
    ref_pert = _predict(models.fp32, shifted).argmax(1) == y
    for name, path in (("qdq", models.qdq), ("narrow", models.narrow)):
        cand_clean = _predict(path, x).argmax(1) == y
        cand_pert = _predict(path, shifted).argmax(1) == y
        expected = (cand_clean.mean() - cand_pert.mean()) - (ref_clean.mean() - ref_pert.mean())
        gap = _metric(suite, name, "robustness_gap", "perturbation=shift")
        assert gap.candidate_value == pytest.approx(expected, abs=1e-12)
        assert gap.n == len(y)
        assert gap.ci_low <= gap.candidate_value <= gap.ci_high
        acc = _metric(suite, name, "accuracy_score", "perturbation=shift")
        assert acc.candidate_value == pytest.approx(cand_pert.mean(), abs=1e-12)
        assert acc.reference_value == pytest.approx(ref_pert.mean(), abs=1e-12)
        # The perturbed scope composes with segments, labels kept.
        for label in (0, 3):
            seg = _metric(suite, name, "accuracy_score", f"perturbation=shift,label={label}")
            assert seg.candidate_value == pytest.approx(cand_pert[y == label].mean(), abs=1e-12)


def test_gap_interval_is_paired(suite: Any, models: Any, digits: Any) -> None:
    """Pairing across passes: the gap's interval is narrower than the unpaired one (sum of
    the two passes' delta variances), because the rows' common noise cancels."""
    gap = _metric(suite, "narrow", "robustness_gap", "perturbation=noise")
    clean = _metric(suite, "narrow", "accuracy_score", None)
    pert = _metric(suite, "narrow", "accuracy_score", "perturbation=noise")
    unpaired = np.hypot(clean.ci_high - clean.ci_low, pert.ci_high - pert.ci_low)
    assert gap.ci_high - gap.ci_low < unpaired


def test_narrow_calibration_fails_the_gap_and_the_good_one_passes(suite: Any) -> None:
    verdicts = {(c.candidate, c.segment): c.verdict for c in suite.checks if c.id == "gap"}
    assert verdicts[("narrow", "perturbation=shift")] == "fail"
    assert verdicts[("qdq", "perturbation=shift")] == "pass"
    assert _metric(suite, "narrow", "robustness_gap", "perturbation=shift").ci_low > GAP_MAX
    assert _metric(suite, "qdq", "robustness_gap", "perturbation=shift").ci_high < GAP_MAX


def test_report_carries_the_section(suite: Any) -> None:
    out = suite.to_dict()
    kinds = {p["name"]: (p["kind"], p["params"]) for p in out["robustness"]["perturbations"]}
    assert kinds == {"shift": ("shift", {"std": SHIFT}), "noise": ("noise", {"std": 0.3})}
    markdown = render_markdown(suite)
    assert "### Robustness" in markdown
    gap = _metric(suite, "narrow", "robustness_gap", "perturbation=shift")
    assert "| narrow | shift (shift) |" in markdown
    assert f"{gap.candidate_value:.4f}"[:4] in markdown
    html = render_html(suite)
    assert '<section id="robustness">' in html and "shift (shift)" in html


def test_results_do_not_depend_on_the_batch_size(models: Any, digits: Any) -> None:
    x, y = digits
    robustness = {"perturbations": [{"name": "drop", "kind": "dropout", "params": {"rate": 0.2}}]}
    reports = [
        run_validation(_spec(models, robustness, [], batch_size=b), data=ArrayDataset(x, labels=y))
        for b in (64, 300)
    ]
    values = [
        sorted(
            (m.candidate, m.metric, m.segment or "", m.candidate_value, m.ci_low)
            for m in r.metrics
            if (m.segment or "").startswith("perturbation=")
        )
        for r in reports
    ]
    assert values[0] == values[1]
    assert len(values[0]) > 20


@pytest.fixture(scope="module")
def searched(models: Any, digits: Any) -> Any:
    x, y = digits
    spec = _spec(
        models,
        {"search": {"seeds": 30, "epsilon": 0.5, "budget": 60}},
        [{"id": "robust", "metric": "robust_agreement[eps=0.5]", "min": 0.5}],
    )
    return run_validation(spec, data=ArrayDataset(x, labels=y))


def test_search_finds_real_disagreements_within_the_ball(
    searched: Any, models: Any, digits: Any, tmp_path: Path
) -> None:
    x, _ = digits
    results = {r.candidate: r for r in searched.robustness.search_results}
    narrow = results["narrow"]
    assert narrow.seeds == 30
    assert narrow.seeds_with_disagreement >= 5
    assert narrow.evaluations <= 30 * (60 + 1)  # the budget, plus one confirmation per case
    # robust_agreement and its Clopper-Pearson interval, from scipy's beta quantiles.
    k, n = 30 - narrow.seeds_with_disagreement, 30
    agreement = _metric(searched, "narrow", "robust_agreement[eps=0.5]", None)
    assert agreement.candidate_value == pytest.approx(k / n)
    low = sps.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    high = sps.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    assert (agreement.ci_low, agreement.ci_high) == pytest.approx((low, high), abs=1e-9)
    # Every found case replays: the reference predicts its label, the candidate does not.
    files = write_edge_cases(searched.robustness, tmp_path)
    # One file per candidate with a found case, none for a candidate without.
    assert {f.name for f in files} == {
        f"edge_cases_{name}.npz" for name, r in results.items() if r.seeds_with_disagreement
    }
    edge = np.load(tmp_path / "edge_cases_narrow.npz")
    found = edge["input"]
    assert found.shape == (narrow.seeds_with_disagreement, 64)
    assert (_predict(models.fp32, found).argmax(1) == edge["labels"]).all()
    assert (_predict(models.narrow, found).argmax(1) != edge["labels"]).all()
    # Within the ball: |x - x0| <= eps * std (float32 rounding aside).
    seeds = x[edge["seed_row_ids"]].astype(np.float64)
    std = x.astype(np.float64).std(axis=0)
    assert (np.abs(found - seeds) <= 0.5 * std + 1e-6).all()
    assert (edge["size"] <= 0.5 + 1e-6).all()
    # ... and as a compval dataset: the candidate disagrees with the reference on every row.
    replay = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(models.fp32)},
            "candidates": [{"name": "narrow", "path": str(models.narrow)}],
            "data": {
                "path": str(tmp_path / "edge_cases_narrow.npz"),
                "features": ["input"],
                "labels": "labels",
            },
            "statistics": {"replicates": 0},
        }
    )
    report = run_validation(replay)
    assert _metric(report, "narrow", "top1_agreement", None).candidate_value == 0.0
    assert _metric(report, "narrow", "accuracy_score", None).reference_value == 1.0


def test_search_is_deterministic(searched: Any, models: Any, digits: Any) -> None:
    x, y = digits
    spec = _spec(models, {"search": {"seeds": 30, "epsilon": 0.5, "budget": 60}}, [])
    again = run_validation(spec, data=ArrayDataset(x, labels=y))
    assert again.robustness is not None and searched.robustness is not None
    assert [r.to_dict() for r in again.robustness.search_results] == [
        r.to_dict() for r in searched.robustness.search_results
    ]
