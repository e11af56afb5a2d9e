"""run_validation through the Python API: callables as models, DataFrames as data.

The models are plain functions of a one-hot design (as in tests/cli/cli_builders.py): features
``f0..f2`` are the one-hot of the reference's prediction and ``f3`` a marker that makes the
candidate predict class 1. So each test plans exactly which rows the candidate gets wrong or
right, and checks metrics against scikit-learn and verdicts exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats
from sklearn.metrics import accuracy_score, recall_score
from statsmodels.stats.multitest import multipletests

from compval.engine import RunOptions, run_validation
from compval.errors import SpecValidationError
from compval.results import Report
from compval.spec import AcceptanceSpec, spec_from_mapping

W_REF = np.zeros((4, 3))
W_REF[:3, :3] = 5 * np.eye(3)
W_PUSH = W_REF.copy()
W_PUSH[3, 1] = 20.0


def reference_model(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ W_REF


def push_model(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ W_PUSH


class Rows:
    """Planned labels, reference predictions, regions, and rows the candidate flips."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        ref_error_rate: float = 0.1,
        label_weights: Sequence[float] = (1 / 3, 1 / 3, 1 / 3),
        regions: Mapping[str, float] | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.y = self.rng.choice(3, size=n, p=np.asarray(label_weights))
        wrong = self.rng.random(n) < ref_error_rate
        self.ref_pred = np.where(wrong, (self.y + self.rng.integers(1, 3, size=n)) % 3, self.y)
        self.push = np.zeros(n)
        regions = regions or {"north": 0.5, "south": 0.5}
        names = np.asarray(list(regions), dtype=object)
        self.region = names[self.rng.choice(len(names), size=n, p=list(regions.values()))]

    def correct_to_wrong(self, k: int, *, label: int | None = None) -> None:
        mask = (self.ref_pred == self.y) & (self.y != 1) & (self.push == 0)
        if label is not None:
            mask &= self.y == label
        self.push[self.rng.choice(np.flatnonzero(mask), size=k, replace=False)] = 1

    def wrong_to_correct(self, k: int) -> None:
        mask = (self.ref_pred != self.y) & (self.y == 1) & (self.push == 0)
        self.push[self.rng.choice(np.flatnonzero(mask), size=k, replace=False)] = 1

    @property
    def cand_pred(self) -> np.ndarray:
        return np.where(self.push > 0, 1, self.ref_pred)

    def frame(self) -> pd.DataFrame:
        x = np.zeros((self.n, 4))
        x[np.arange(self.n), self.ref_pred] = 1
        x[:, 3] = self.push
        frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
        frame["y"] = self.y
        frame["region"] = self.region.astype(str)
        return frame


def make_spec(criteria: list[dict[str, Any]], **overrides: Any) -> AcceptanceSpec:
    data: dict[str, Any] = {
        "version": 1,
        "reference": {"name": "ref"},
        "candidates": [{"name": "cand"}],
        "data": {"path": "in-memory", "labels": "y", "segments": ["region"]},
        "statistics": {"replicates": 200},
        "criteria": criteria,
    }
    data.update(overrides)
    return spec_from_mapping(data)


def validate(
    criteria: list[dict[str, Any]],
    rows: Rows,
    *,
    candidate: Any = push_model,
    options: RunOptions | None = None,
    **overrides: Any,
) -> Report:
    return run_validation(
        make_spec(criteria, **overrides),
        reference=reference_model,
        candidates={"cand": candidate},
        data=rows.frame(),
        options=options or RunOptions(),
    )


def verdicts(report: Report, check_id: str) -> dict[str | None, str]:
    return {c.segment: c.verdict for c in report.checks if c.id == check_id}


def check(
    report: Report, check_id: str, segment: str | None = None, candidate: str = "cand"
) -> Any:
    (found,) = [
        c
        for c in report.checks
        if c.id == check_id and c.segment == segment and c.candidate == candidate
    ]
    return found


def value(report: Report, metric: str, segment: str | None = None) -> Any:
    (found,) = [m for m in report.metrics if m.metric == metric and m.segment == segment]
    return found


ACCURACY = {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.02}
PER_SEGMENT = {"id": "per-segment", "metric": "accuracy_score", "max_drop": 0.05, "segment": "*"}


# -- the key scenario --------------------------------------------------------------
def test_recall_loss_on_one_class_fails_its_segment_while_overall_accuracy_holds() -> None:
    rows = Rows(6000, seed=31, ref_error_rate=0.05, label_weights=(0.45, 0.45, 0.10))
    rows.correct_to_wrong(70, label=2)

    report = validate([ACCURACY, PER_SEGMENT], rows)

    assert verdicts(report, "accuracy") == {None: "pass"}
    assert verdicts(report, "per-segment") == {
        None: "pass",
        "label=0": "pass",
        "label=1": "pass",
        "label=2": "fail",
        "region=north": "pass",
        "region=south": "pass",
    }
    assert report.passed is False
    assert report.candidate_passed("cand") is False
    overall = value(report, "accuracy_score")
    assert overall.delta == pytest.approx(
        accuracy_score(rows.y, rows.cand_pred) - accuracy_score(rows.y, rows.ref_pred)
    )
    assert overall.delta > -0.02
    recall = value(report, "recall_score[2]")
    expected = recall_score(rows.y, rows.cand_pred, labels=[0, 1, 2], average=None)
    assert recall.candidate_value == pytest.approx(expected[2])
    assert value(report, "accuracy_score", "label=2").candidate_value == pytest.approx(expected[2])
    failed = check(report, "per-segment", "label=2")
    assert failed.observed == pytest.approx(recall.delta)
    assert "violates >= -0.05 (max_drop: 0.05)" in failed.message
    assert failed.blocking is True


# -- statistics ----------------------------------------------------------------------------
def test_identical_candidate_passes_with_intervals_around_zero() -> None:
    rows = Rows(1000, seed=32)
    report = validate(
        [ACCURACY, PER_SEGMENT, {"id": "agree", "metric": "top1_agreement", "min": 0.99}],
        rows,
        candidate=reference_model,
    )
    assert report.passed
    assert all(c.verdict == "pass" for c in report.checks)
    for m in report.metrics:
        if m.metric == "accuracy_score" and not str(m.segment).startswith("slice:"):
            assert m.delta == 0.0
            # Zero flips is not certainty: n rows without a flip still allow about 3.8/n.
            assert m.ci_low is not None and m.ci_high is not None
            assert m.ci_low < 0.0 < m.ci_high
            assert m.ci_high == pytest.approx(-m.ci_low)
            assert m.ci_method == "tango_score"
    assert value(report, "top1_agreement").candidate_value == 1.0
    assert value(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(rows.y, rows.ref_pred)
    )


def test_a_real_two_point_drop_on_5000_rows_fails_a_one_point_margin() -> None:
    rows = Rows(5000, seed=33)
    rows.correct_to_wrong(100)
    report = validate([{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.01}], rows)

    result = check(report, "accuracy")
    assert result.verdict == "fail"
    assert result.observed == pytest.approx(-0.02)
    m = value(report, "accuracy_score")
    assert m.ci_low < -0.02 < m.ci_high < -0.01
    # Tango's score interval, from the discordant counts (hand-checked against statsmodels'
    # paired-proportion test below); close to the normal approximation at these counts.
    diff = (rows.cand_pred == rows.y).astype(float) - (rows.ref_pred == rows.y)
    half = sstats.norm.ppf(0.975) * diff.std() / math.sqrt(rows.n)
    assert (m.ci_high - m.ci_low) / 2 == pytest.approx(half, rel=0.1)
    assert m.ci_method == "tango_score"
    assert m.confidence == 0.95


def test_a_small_drop_on_small_data_is_inconclusive_not_passed() -> None:
    rows = Rows(250, seed=34)
    rows.correct_to_wrong(3)
    rows.wrong_to_correct(2)
    criteria = [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.005}]

    blocked = validate(criteria, rows)
    warned = validate(criteria, rows, statistics={"replicates": 200, "inconclusive": "warn"})

    result = check(blocked, "accuracy")
    assert result.verdict == "inconclusive"
    assert result.observed == pytest.approx(-0.004)
    assert result.details["rows_needed"] > 250
    assert "if the candidate were truly no worse than the reference (have 250)" in result.message
    assert blocked.passed is False
    assert check(warned, "accuracy").verdict == "inconclusive"
    assert warned.passed is True


def test_segments_below_min_rows_are_inconclusive() -> None:
    rows = Rows(600, seed=35, regions={"north": 0.48, "south": 0.48, "island": 0.04})
    n_island = int((rows.region == "island").sum())
    assert 5 < n_island < 30
    report = validate([PER_SEGMENT], rows, candidate=reference_model)
    island = check(report, "per-segment", "region=island")
    assert island.verdict == "inconclusive"
    assert "too small to decide" in island.message
    assert island.details["n"] == n_island
    assert report.passed is False


def test_holm_adjusted_p_values_are_in_the_details_of_star_criteria() -> None:
    rows = Rows(2000, seed=36)
    rows.correct_to_wrong(30)
    rows.wrong_to_correct(10)
    report = validate([PER_SEGMENT], rows)

    results = [c for c in report.checks if c.id == "per-segment"]
    assert len(results) == 6
    raw = np.array([c.details["p_value"] for c in results])
    adjusted = np.array([c.details["p_adjusted"] for c in results])
    np.testing.assert_allclose(adjusted, multipletests(raw, method="holm")[1], rtol=1e-9)
    assert all(c.details["correction"] == "holm" for c in results)
    # The raw p-value (of "the criterion is met") uses the standard error the interval implies.
    overall = results[0]
    m = value(report, "accuracy_score")
    se = (m.ci_high - m.ci_low) / (2 * sstats.norm.ppf(0.975))
    assert overall.details["p_value"] == pytest.approx(
        sstats.norm.sf((-0.05 - m.delta) / se), rel=1e-9
    )


def _tabular(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    weights = np.array([[3, 0, -3], [0, 3, 0], [1, -1, 0], [0, 0, 1]], dtype=float)
    pred = (x @ weights).argmax(axis=1)
    y = np.where(rng.random(n) < 0.1, (pred + 1) % 3, pred)
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"])
    frame["y"] = y
    return frame, weights


def test_discovered_scope_catches_a_planted_weak_slice() -> None:
    frame, weights = _tabular(3000, seed=37)

    def reference(x: np.ndarray) -> np.ndarray:
        return np.asarray(x) @ weights

    def weak_in_a_corner(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(x) @ weights
        weak = (x[:, 2] > 1.0) & (x[:, 3] > 0.0)
        wrong = (logits.argmax(axis=1) + 1) % 3
        logits[weak] = 0.0
        logits[weak, wrong[weak]] = 10.0
        return logits

    criteria = [
        {"id": "slices", "metric": "accuracy_score", "max_drop": 0.05, "segment": "discovered"}
    ]
    spec = make_spec(criteria, data={"path": "in-memory", "labels": "y"})
    bad = run_validation(
        spec, reference=reference, candidates={"cand": weak_in_a_corner}, data=frame
    )
    good = run_validation(spec, reference=reference, candidates={"cand": reference}, data=frame)

    slices = [c for c in bad.checks if c.id == "slices"]
    assert slices and all(str(c.segment).startswith("slice:") for c in slices)
    assert bad.statistics is not None
    top = bad.statistics.discovered["cand"][0]
    assert "x2" in top.description
    assert top.delta < -0.3
    assert top.p_value_adjusted < 1e-6
    assert check(bad, "slices", f"slice:{top.description}").verdict == "fail"
    assert bad.passed is False
    assert all(c.verdict == "pass" for c in good.checks)
    assert good.passed is True


def test_warn_severity_reports_a_failure_without_closing_the_gate() -> None:
    rows = Rows(600, seed=47)
    rows.correct_to_wrong(60)
    report = validate(
        [{**ACCURACY, "severity": "warn"}, {"id": "agree", "metric": "top1_agreement", "min": 0.8}],
        rows,
        statistics={"replicates": 0},
    )
    warned = check(report, "accuracy")
    assert (warned.verdict, warned.severity, warned.blocking) == ("fail", "warn", False)
    assert check(report, "agree").verdict == "pass"
    assert report.passed is True


# -- options and Python inputs -------------------------------------------------------------
def test_replicates_option_overrides_the_spec_and_progress_is_reported() -> None:
    rows = Rows(300, seed=38)
    calls: list[tuple[str, int, int]] = []
    report = validate(
        [ACCURACY],
        rows,
        options=RunOptions(replicates=0, progress=lambda *a: calls.append(a)),
        batch_size=64,
    )
    assert check(report, "accuracy").criterion["statistic"] == "point"
    assert all(m.ci_low is None for m in report.metrics if not str(m.segment).startswith("slice:"))
    assert calls and calls[-1][1:] == (300, 300)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)


def test_arrays_with_labels_work_without_column_names() -> None:
    rows = Rows(300, seed=39)
    x = rows.frame()[["f0", "f1", "f2", "f3"]].to_numpy()
    spec = make_spec([ACCURACY], data={"path": "in-memory"})
    report = run_validation(
        spec, reference=reference_model, candidates={"cand": reference_model}, data=(x, rows.y)
    )
    assert report.passed
    assert value(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(rows.y, rows.ref_pred)
    )


def test_no_criteria_and_nonfinite_allowed_says_nothing_is_gated() -> None:
    report = validate([], Rows(100, seed=40), allow_nonfinite=True)
    assert report.checks == ()
    assert report.passed
    assert "No criteria: nothing is gated." in report.run.notes


def test_spec_without_model_paths_needs_model_objects() -> None:
    spec = make_spec([ACCURACY])
    frame = Rows(100, seed=41).frame()
    with pytest.raises(SpecValidationError, match=r"reference\.path: required key is missing"):
        run_validation(spec, candidates={"cand": push_model}, data=frame)
    with pytest.raises(SpecValidationError, match=r"candidates\[0\]\.path: .*'cand'"):
        run_validation(spec, reference=reference_model, data=frame)


def test_duplicate_model_names_from_python_are_refused() -> None:
    spec = make_spec([ACCURACY])
    with pytest.raises(SpecValidationError, match=r"model names must be unique; \['ref'\]"):
        run_validation(
            spec,
            reference=reference_model,
            candidates={"cand": push_model, "ref": push_model},
            data=Rows(100, seed=42).frame(),
        )


def test_extra_python_candidates_are_validated_too() -> None:
    rows = Rows(300, seed=43)
    rows.correct_to_wrong(30)
    report = run_validation(
        make_spec([ACCURACY]),
        reference=reference_model,
        candidates={"cand": reference_model, "pushed": push_model},
        data=rows.frame(),
    )
    assert report.candidates == ("cand", "pushed")
    assert report.candidate_passed("cand") is True
    assert report.candidate_passed("pushed") is False
    assert check(report, "accuracy").verdict == "pass"
    assert check(report, "accuracy", candidate="pushed").verdict == "fail"


def test_label_outputs_and_probability_outputs_are_detected() -> None:
    rows = Rows(400, seed=46)
    rows.correct_to_wrong(8)

    def push_labels(x: np.ndarray) -> np.ndarray:
        return push_model(x).argmax(axis=1)

    def softmax_reference(x: np.ndarray) -> np.ndarray:
        logits = reference_model(x)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    kl = {"id": "kl", "metric": "mean_kl_divergence", "max": 0.1}
    labels = validate([ACCURACY, kl], rows, candidate=push_labels, statistics={"replicates": 0})
    probs = validate([kl], rows, candidate=softmax_reference, statistics={"replicates": 0})

    assert labels.run.models["cand"]["output_kind"] == "labels"
    assert labels.run.models["ref"]["output_kind"] == "logits"
    assert value(labels, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(rows.y, rows.cand_pred)
    )
    missing = check(labels, "kl")
    assert missing.verdict == "inconclusive"
    assert "mean_kl_divergence was not computed for this run" in missing.message
    # Logits are compared as probabilities: softmax(logits) is the same model.
    assert probs.run.models["cand"]["output_kind"] == "probabilities"
    assert value(probs, "max_abs_diff").candidate_value < 1e-9
    assert check(probs, "kl").verdict == "pass"


# -- regressions of fixed bugs -------------------------------------------------------------
def test_unknown_candidate_name_in_a_criterion_is_a_spec_error() -> None:
    rows = Rows(300, seed=44)
    rows.correct_to_wrong(30)
    with pytest.raises(SpecValidationError, match=r"criteria\[0\]\.candidates"):
        validate([{**ACCURACY, "candidates": ["typo"]}], rows)


def test_discovered_scope_with_discovery_off_says_why() -> None:
    rows = Rows(300, seed=45)
    criteria = [
        {"id": "slices", "metric": "accuracy_score", "max_drop": 0.05, "segment": "discovered"}
    ]
    try:
        report = validate(criteria, rows, statistics={"replicates": 0, "discovery": False})
    except SpecValidationError as exc:
        assert "discovery" in str(exc)
        return
    assert "discovery" in check(report, "slices", "discovered").message


def test_min_criterion_across_segments_keeps_uncertain_segments_inconclusive() -> None:
    rows = Rows(1000, seed=3, ref_error_rate=0.08)
    criteria = [{"id": "min", "metric": "accuracy_score", "min": 0.9, "segment": "*"}]
    report = validate(criteria, rows, candidate=reference_model)
    results = [c for c in report.checks if c.id == "min"]
    crossing = [c for c in results if c.details["ci"][0] < 0.9 <= (c.observed or 0.0)]
    assert crossing  # segments whose own interval reaches below the threshold
    assert [c.verdict for c in crossing] == ["inconclusive"] * len(crossing)
