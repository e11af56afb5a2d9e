"""Criteria resolution: every concise spec form becomes exactly one explicit criterion."""

from __future__ import annotations

import math
from typing import Any

import pytest

from compval.checks import OPS, Criterion, resolve_criteria, resolve_criterion
from compval.errors import SpecValidationError
from compval.spec import CriterionSpec


def _resolve(
    *,
    task: str = "classification",
    resampling: bool = True,
    columns: tuple[str, ...] = (),
    **fields: Any,
) -> Criterion:
    spec = CriterionSpec(id=fields.pop("id", "c"), **fields)
    return resolve_criterion(
        spec, index=3, task=task, resampling=resampling, segment_columns=columns
    )


@pytest.mark.parametrize(
    ("fields", "task", "compare", "op", "threshold", "written_as"),
    [
        (
            {"metric": "accuracy_score", "max_drop": 0.01},
            "classification",
            "delta",
            ">=",
            -0.01,
            "max_drop: 0.01",
        ),
        (
            {"metric": "r2_score", "max_drop": 0.25},
            "regression",
            "delta",
            ">=",
            -0.25,
            "max_drop: 0.25",
        ),
        (
            {"metric": "brier_loss", "max_increase": 0.02},
            "classification",
            "delta",
            "<=",
            0.02,
            "max_increase: 0.02",
        ),
        (
            {"metric": "mean_absolute_error", "max_increase": 3.0},
            "regression",
            "delta",
            "<=",
            3.0,
            "max_increase: 3",
        ),
        (
            {"metric": "accuracy_score", "max_relative_drop": 0.05},
            "classification",
            "ratio",
            ">=",
            0.95,
            "max_relative_drop: 0.05",
        ),
        (
            {"metric": "mean_absolute_error", "max_relative_increase": 0.1},
            "regression",
            "ratio",
            "<=",
            1.1,
            "max_relative_increase: 0.1",
        ),
        (
            {"metric": "top1_agreement", "min": 0.98},
            "classification",
            "candidate",
            ">=",
            0.98,
            "min: 0.98",
        ),
        (
            {"metric": "mean_kl_divergence", "max": 0.05},
            "classification",
            "candidate",
            "<=",
            0.05,
            "max: 0.05",
        ),
        ({"metric": "nan_count", "max": 0}, "generic", "candidate", "<=", 0.0, "max: 0"),
        ({"metric": "sqnr_db", "min": 30}, "generic", "candidate", ">=", 30.0, "min: 30"),
        (
            {"metric": "recall_score[2]", "max_drop": 0.05},
            "classification",
            "delta",
            ">=",
            -0.05,
            "max_drop: 0.05",
        ),
    ],
)
def test_concise_forms_become_exactly_their_explicit_form(
    fields: dict[str, Any], task: str, compare: str, op: str, threshold: float, written_as: str
) -> None:
    c = _resolve(task=task, **fields)
    assert (c.compare, c.op, c.written_as) == (compare, op, written_as)
    assert c.threshold == pytest.approx(threshold, abs=1e-15)
    assert c.metric == fields["metric"]
    explicit = c.explicit()
    assert explicit["compare"] == compare and explicit["op"] == op
    assert explicit["threshold"] == c.threshold
    assert explicit["written_as"] == written_as


@pytest.mark.parametrize(
    "fields",
    [
        {"metric": "accuracy_score", "max_drop": 0.01},
        {"metric": "accuracy_score", "max_relative_drop": 0.05},
        {"metric": "top1_agreement", "min": 0.98},
        {"metric": "brier_loss", "max_increase": 0.02},
    ],
)
def test_concise_form_decides_like_its_explicit_form(fields: dict[str, Any]) -> None:
    concise = _resolve(**fields)
    explicit = _resolve(
        metric=fields["metric"], compare=concise.compare, op=concise.op, threshold=concise.threshold
    )
    assert (explicit.compare, explicit.op, explicit.threshold) == (
        concise.compare,
        concise.op,
        concise.threshold,
    )
    assert explicit.statistic == concise.statistic
    assert explicit.written_as is None
    for value in (concise.threshold - 1e-3, concise.threshold, concise.threshold + 1e-3):
        assert OPS[concise.op](value, concise.threshold) == OPS[explicit.op](
            value, explicit.threshold
        )


def test_explicit_form_is_kept_and_compare_defaults_to_candidate() -> None:
    c = _resolve(metric="top1_agreement", op=">", threshold=0.9)
    assert (c.compare, c.op, c.threshold, c.written_as) == ("candidate", ">", 0.9, None)
    d = _resolve(metric="accuracy_score", compare="ratio", op=">=", threshold=0.97)
    assert (d.compare, d.threshold) == ("ratio", 0.97)


@pytest.mark.parametrize(
    ("fields", "resampling", "statistic"),
    [
        ({"metric": "accuracy_score", "max_drop": 0.01}, True, "interval"),
        ({"metric": "accuracy_score", "max_drop": 0.01}, False, "point"),
        ({"metric": "top1_agreement", "min": 0.9}, True, "interval"),
        ({"metric": "accuracy_score", "min": 0.9}, True, "interval"),
        (
            {"metric": "accuracy_score", "compare": "reference", "op": ">=", "threshold": 0.9},
            True,
            "point",
        ),
        ({"metric": "p99_kl_divergence", "max": 0.1}, True, "point"),
        ({"metric": "nonfinite_count", "max": 0}, True, "point"),
        ({"metric": "accuracy_score", "max_drop": 0.01, "statistic": "point"}, True, "point"),
        (
            {"metric": "accuracy_score", "max_drop": 0.01, "statistic": "interval"},
            False,
            "interval",
        ),
    ],
)
def test_statistic_auto_is_interval_only_when_an_interval_exists(
    fields: dict[str, Any], resampling: bool, statistic: str
) -> None:
    assert _resolve(resampling=resampling, **fields).statistic == statistic


@pytest.mark.parametrize(
    ("segment", "resolved"),
    [
        (None, None),
        ("overall", None),
        ("*", "*"),
        ("discovered", "discovered"),
        ("label=*", "label=*"),
        ("label=2", "label=2"),
        ("region=*", "region=*"),
        ("region=north", "region=north"),
    ],
)
def test_segment_scopes(segment: str | None, resolved: str | None) -> None:
    c = _resolve(metric="accuracy_score", max_drop=0.01, segment=segment, columns=("region",))
    assert c.segment == resolved
    assert c.explicit()["segment"] == resolved


@pytest.mark.parametrize("scope", ["label=*", "label=3", "perturbation=noise,label=*"])
def test_label_scopes_are_a_spec_error_for_a_task_without_label_segments(scope: str) -> None:
    # Before, 'label=*' on a regression criterion was accepted and the check came out
    # inconclusive ("no rows") at the end of the run: exit 1 instead of a spec error, exit 4.
    spec = CriterionSpec(id="c", metric="mean_absolute_error", max_increase=0.1, segment=scope)
    with pytest.raises(SpecValidationError, match="this task has no label segments"):
        resolve_criterion(
            spec,
            index=0,
            task="regression",
            resampling=True,
            segment_columns=("region",),
            perturbations=["noise"],
            label_segments=False,
        )
    ok = resolve_criterion(
        spec.model_copy(update={"segment": "region=*"}),
        index=0,
        task="regression",
        resampling=True,
        segment_columns=("region",),
        label_segments=False,
    )
    assert ok.segment == "region=*"


def test_other_fields_are_carried_over() -> None:
    c = _resolve(
        id="acc", metric="accuracy_score", min=0.9, severity="warn", candidates=["int8", "pruned"]
    )
    assert (c.id, c.severity, c.candidates, c.higher_is_better) == (
        "acc",
        "warn",
        ("int8", "pruned"),
        True,
    )
    assert _resolve(metric="accuracy_score", min=0.9).candidates is None
    assert _resolve(metric="brier_loss", max=0.3).higher_is_better is False
    assert _resolve(metric="flip_wrong_to_correct_rate", max=0.3).higher_is_better is None


def test_exact_metrics_are_flagged() -> None:
    assert _resolve(metric="nan_count", max=0).is_exact
    assert _resolve(metric="max_abs_diff", max=0.1).is_exact
    assert not _resolve(metric="accuracy_score", min=0.5).is_exact


@pytest.mark.parametrize(
    ("fields", "path", "expected"),
    [
        ({"metric": "acuracy_score", "min": 0.9}, "metric", "Did you mean 'accuracy_score'"),
        ({"metric": "zzzz", "min": 0.9}, "metric", "unknown metric 'zzzz'. See docs/spec.md"),
        ({"metric": "mean_absolute_error", "max": 1.0}, "metric", "needs task regression"),
        ({"metric": "f1_score", "min": 0.5}, "metric", "name the class, e.g. 'f1_score[3]'"),
        ({"metric": "accuracy_score", "max_drop": 5}, "max_drop", "got 5. Did you mean 0.05?"),
        (
            {"metric": "accuracy_score", "max_drop": 250},
            "max_drop",
            "must be a fraction in [0, 1]; got 250. Thresholds",
        ),
        ({"metric": "accuracy_score", "max_drop": -0.01}, "max_drop", "must be >= 0"),
        (
            {"metric": "expected_calibration_error", "max_increase": 2},
            "max_increase",
            "Did you mean 0.02?",
        ),
        (
            {"metric": "brier_loss", "max_drop": 0.01},
            "max_drop",
            "'brier_loss' is lower-is-better. Use 'max_increase' instead",
        ),
        (
            {"metric": "accuracy_score", "max_increase": 0.01},
            "max_increase",
            "higher-is-better. Use 'max_drop' instead",
        ),
        ({"metric": "top1_agreement", "max_drop": 0.01}, "max_drop", "one value for the pair"),
        (
            {"metric": "mean_kl_divergence", "max_relative_increase": 0.1},
            "max_relative_increase",
            "one value for the pair",
        ),
        (
            {"metric": "accuracy_score", "max_relative_drop": 5},
            "max_relative_drop",
            "Did you mean 0.05?",
        ),
        (
            {"metric": "accuracy_score", "max_relative_drop": -0.1},
            "max_relative_drop",
            "must be a fraction in [0, 1]",
        ),
        (
            {"metric": "accuracy_score", "min": 95},
            "min",
            "Did you mean 0.95? Thresholds are fractions",
        ),
        ({"metric": "top1_agreement", "max": -0.5}, "max", "is a fraction in [0, 1]; got -0.5"),
        (
            {"metric": "accuracy_score", "compare": "delta", "op": ">=", "threshold": -2},
            "threshold",
            "Did you mean -0.02?",
        ),
        (
            {"metric": "top1_agreement", "compare": "delta", "op": ">=", "threshold": 0},
            "compare",
            "use compare: candidate",
        ),
        (
            {"metric": "accuracy_score", "max_drop": 0.01, "segment": "region"},
            "segment",
            "unknown segment scope 'region'",
        ),
        (
            {"metric": "accuracy_score", "max_drop": 0.01, "segment": "country=de"},
            "segment",
            "expected one of 'label', 'region'",
        ),
    ],
)
def test_invalid_criteria_name_the_field(fields: dict[str, Any], path: str, expected: str) -> None:
    with pytest.raises(SpecValidationError, match="criteria\\[3\\]") as info:
        _resolve(columns=("region",), **fields)
    assert info.value.path == f"criteria[3].{path}"
    assert str(info.value).startswith(f"criteria[3].{path}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("fields", "task", "path", "expected"),
    [
        ({"metric": "r2_score", "max_drop": 5}, "regression", "max_drop", "Did you mean 0.05?"),
        ({"metric": "r2_score", "max_drop": 250}, "regression", "max_drop", "got 250. Margins"),
        ({"metric": "r2_score", "min": 90}, "regression", "min", "Did you mean 0.9?"),
        ({"metric": "cosine_similarity", "min": 99}, "generic", "min", "Did you mean 0.99?"),
        ({"metric": "cosine_similarity", "max": 1.5}, "generic", "max", "never be met (or"),
        (
            {"metric": "r2_score", "compare": "delta", "op": ">=", "threshold": -3},
            "regression",
            "threshold",
            "Did you mean -0.03?",
        ),
        (
            {"metric": "r2_score", "compare": "reference", "op": ">=", "threshold": 80},
            "regression",
            "threshold",
            "Did you mean 0.8?",
        ),
        (
            {"metric": "similarity_spearman_score", "min": 95},
            "embedding",
            "min",
            "is at most 1",
        ),
    ],
)
def test_metrics_at_most_one_refuse_percents(
    fields: dict[str, Any], task: str, path: str, expected: str
) -> None:
    # R², cosine similarity and rank correlations are at most 1 but not fractions (they can
    # be negative): before, 'max_drop: 5' on R² (meaning 5%) let any candidate pass.
    with pytest.raises(SpecValidationError) as info:
        _resolve(task=task, **fields)
    assert info.value.path == f"criteria[3].{path}"
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("fields", "task"),
    [
        ({"metric": "r2_score", "max_drop": 1}, "regression"),
        ({"metric": "r2_score", "min": -0.5}, "regression"),  # worse than the mean: allowed
        ({"metric": "r2_score", "min": 1}, "regression"),
        ({"metric": "cosine_similarity", "min": -0.2}, "generic"),
        ({"metric": "r2_score", "compare": "delta", "op": ">=", "threshold": -1}, "regression"),
    ],
)
def test_metrics_at_most_one_keep_every_reachable_threshold(
    fields: dict[str, Any], task: str
) -> None:
    assert _resolve(task=task, **fields).metric == fields["metric"]


def test_flip_wrong_to_correct_has_no_direction_for_a_drop() -> None:
    with pytest.raises(SpecValidationError, match="one value for the pair"):
        _resolve(metric="flip_wrong_to_correct_rate", max_drop=0.01)


def test_resolve_criteria_adds_the_built_in_nonfinite_check() -> None:
    specs = [CriterionSpec(id="acc", metric="accuracy_score", max_drop=0.01)]
    out = resolve_criteria(specs, task="classification", resampling=True)
    assert [c.id for c in out] == ["acc", "nonfinite-outputs"]
    builtin = out[1]
    assert (builtin.metric, builtin.compare, builtin.op, builtin.threshold) == (
        "nonfinite_count",
        "candidate",
        "==",
        0.0,
    )
    assert (builtin.statistic, builtin.segment, builtin.severity) == ("point", None, "error")
    assert "allow_nonfinite" in (builtin.written_as or "")


def test_allow_nonfinite_removes_the_built_in_check() -> None:
    specs = [CriterionSpec(id="acc", metric="accuracy_score", max_drop=0.01)]
    out = resolve_criteria(specs, task="classification", resampling=True, allow_nonfinite=True)
    assert [c.id for c in out] == ["acc"]
    assert resolve_criteria([], task="generic", resampling=False, allow_nonfinite=True) == ()


def test_a_user_criterion_named_nonfinite_outputs_replaces_the_built_in() -> None:
    specs = [
        CriterionSpec(id="nonfinite-outputs", metric="nonfinite_count", max=5, severity="warn")
    ]
    out = resolve_criteria(specs, task="classification", resampling=True)
    assert len(out) == 1
    assert (out[0].threshold, out[0].severity) == (5.0, "warn")


def test_resolve_criteria_reports_the_index_of_the_bad_criterion() -> None:
    specs = [
        CriterionSpec(id="ok", metric="accuracy_score", max_drop=0.01),
        CriterionSpec(id="bad", metric="accuracy_score", max_drop=3),
    ]
    with pytest.raises(SpecValidationError) as info:
        resolve_criteria(specs, task="classification", resampling=True)
    assert info.value.path == "criteria[1].max_drop"


@pytest.mark.parametrize(
    ("metric", "form", "task"),
    [
        ("mean_absolute_error", "max_relative_drop", "regression"),
        ("accuracy_score", "max_relative_increase", "classification"),
    ],
)
def test_relative_forms_check_the_metric_direction(metric: str, form: str, task: str) -> None:
    with pytest.raises(SpecValidationError, match="better"):
        resolve_criterion(
            CriterionSpec(id="c", metric=metric, **{form: 0.05}),
            index=0,
            task=task,
            resampling=True,
        )


def test_nan_threshold_is_a_spec_error() -> None:
    from compval.spec import spec_from_mapping

    raw = {
        "version": 1,
        "reference": {"path": "a.onnx"},
        "candidate": {"path": "b.onnx"},
        "data": {"path": "d.csv", "labels": "y"},
        "criteria": [{"id": "c", "metric": "accuracy_score", "max_drop": math.nan}],
    }
    with pytest.raises(SpecValidationError, match=r"criteria\[0\]\.max_drop"):
        spec_from_mapping(raw)


def test_the_robustness_gap_is_a_fraction_for_classification_only() -> None:
    """A classification gap is a difference of accuracies (5 means 0.05); a regression gap is a
    difference of mean absolute errors, in the targets' units, so 5 is a valid margin."""
    spec = CriterionSpec(id="gap", metric="robustness_gap", max=5)
    with pytest.raises(SpecValidationError, match=r"Did you mean 0\.05"):
        resolve_criterion(spec, index=0, task="classification", resampling=True)
    resolved = resolve_criterion(spec, index=0, task="regression", resampling=True)
    assert (resolved.op, resolved.threshold, resolved.segment) == ("<=", 5.0, "perturbation=*")
