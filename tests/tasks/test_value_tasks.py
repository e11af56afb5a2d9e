"""Value tasks (regression, generic) on in-memory models: what they cannot compare, and scopes.

Rows with NaN/Inf outputs are counted in run.notes, not dropped quietly; a label= scope is a
spec error for a task that does not segment rows by label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error

from compval.engine import run_validation
from compval.errors import ExitCode, SpecValidationError, exit_code_for
from compval.spec import spec_from_mapping
from compval.tasks import get_task


def _spec(task: str, criteria: list[dict[str, Any]], **extra: Any) -> Any:
    return spec_from_mapping(
        {
            "version": 1,
            "task": task,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": criteria,
            **extra,
        }
    )


@pytest.mark.parametrize("task", ["regression", "generic"])
def test_rows_with_nan_outputs_are_counted_in_a_note(task: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4))
    y = x @ [1.0, 2.0, 3.0, 4.0] + rng.normal(size=1000)
    model = LinearRegression().fit(x, y)
    hard = np.abs(x[:, 0]) > 1.0  # NaN exactly where the candidate would do worst

    def candidate(a: np.ndarray) -> np.ndarray:
        out = model.predict(a) + 0.5
        out[np.abs(a[:, 0]) > 1.0] = np.nan
        return out

    criteria = (
        [{"id": "mae", "metric": "mean_absolute_error", "max_relative_increase": 0.05}]
        if task == "regression"
        else [{"id": "diff", "metric": "mean_abs_diff", "max": 1.0}]
    )
    report = run_validation(
        _spec(task, criteria, allow_nonfinite=True, batch_size=128),
        reference=model.predict,
        candidates={"cand": candidate},
        data=(x, y) if task == "regression" else x,
    )
    notes = [n for n in report.run.notes if n.startswith("Candidate 'cand'")]
    assert notes == [
        f"Candidate 'cand': {int(hard.sum()):,} row(s) where it or the reference output NaN or "
        "Inf are left out of the output-fidelity metrics"
        + (" and both models' MAE, RMSE and R²" if task == "regression" else "")
        + " (nan_count and inf_count count them)."
    ]
    by_metric = {m.metric: m for m in report.metrics if m.segment is None}
    assert by_metric["nan_count"].candidate_value == hard.sum()
    if task == "regression":
        mae = by_metric["mean_absolute_error"]
        assert mae.n == (~hard).sum()
        assert mae.reference_value == pytest.approx(
            mean_absolute_error(y[~hard], model.predict(x[~hard]))
        )
    else:
        assert by_metric["mean_abs_diff"].candidate_value == pytest.approx(0.5)


def test_no_note_when_every_row_compares() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    model = LinearRegression().fit(x, x.sum(axis=1))
    report = run_validation(
        _spec(
            "generic",
            [{"id": "diff", "metric": "mean_abs_diff", "max": 1.0}],
            allow_nonfinite=True,
        ),
        reference=model.predict,
        candidates={"cand": lambda a: model.predict(a) + 0.1},
        data=x,
    )
    assert not [n for n in report.run.notes if "left out" in n]


def _label_criterion(task: str) -> dict[str, Any]:
    if task == "regression":
        return {
            "id": "c",
            "metric": "mean_absolute_error",
            "max_increase": 0.1,
            "segment": "label=*",
        }
    return {"id": "c", "metric": "accuracy_score", "max_drop": 0.1, "segment": "label=*"}


def test_only_classification_segments_by_label() -> None:
    assert get_task("classification").label_segments
    assert not any(get_task(name).label_segments for name in ("regression", "generic", "embedding"))


def test_a_label_scope_on_a_regression_run_is_a_spec_error_before_any_model_runs() -> None:
    calls = []

    def model(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x.sum(axis=1)

    x = np.random.default_rng(0).normal(size=(200, 3))
    with pytest.raises(SpecValidationError, match="no label segments") as caught:
        run_validation(
            _spec("regression", [_label_criterion("regression")]),
            reference=model,
            candidates={"cand": model},
            data=(x, x.sum(axis=1)),
        )
    assert exit_code_for(caught.value) == ExitCode.USAGE_ERROR
    assert calls == []


def test_a_label_scope_still_works_for_classification() -> None:
    x = np.random.default_rng(1).normal(size=(300, 3))
    y = (x[:, 0] > 0).astype(int)

    def model(a: np.ndarray) -> np.ndarray:
        return (a[:, 0] > 0).astype(int)

    report = run_validation(
        _spec("classification", [_label_criterion("classification")]),
        reference=model,
        candidates={"cand": model},
        data=(x, y),
    )
    assert {c.segment for c in report.checks if c.id == "c"} == {"label=0", "label=1"}


def test_integer_outputs_compared_as_numbers_are_noted() -> None:
    """A classifier's predicted labels under task: regression are compared as numbers: noted."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    clf = LogisticRegression().fit(x, y)
    report = run_validation(
        _spec("regression", [{"id": "mae", "metric": "mean_absolute_error", "max": 1.0}]),
        reference=clf.predict,
        candidates={"cand": clf.predict},
        data=(x, y.astype(float)),
    )
    notes = [n for n in report.run.notes if "compared as numbers" in n]
    assert [n.split(":")[0] for n in notes] == ["Model 'ref'", "Model 'cand'"]
    assert "use task: classification" in notes[0]
    # Float outputs (a regressor's) get no such note.
    floats = run_validation(
        _spec("regression", [{"id": "mae", "metric": "mean_absolute_error", "max": 1.0}]),
        reference=lambda a: clf.predict_proba(a)[:, 1],
        candidates={"cand": lambda a: clf.predict_proba(a)[:, 1]},
        data=(x, y.astype(float)),
    )
    assert not [n for n in floats.run.notes if "compared as numbers" in n]
