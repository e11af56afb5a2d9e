"""The engine tells criterion resolution which tasks segment rows by label."""

from __future__ import annotations

import numpy as np
import pytest

from compval.engine import run_validation
from compval.errors import ExitCode, SpecValidationError, exit_code_for
from compval.spec import spec_from_mapping
from compval.tasks import get_task


def _spec(task: str, segment: str) -> object:
    metric = "mean_absolute_error" if task == "regression" else "accuracy_score"
    bound = {"max_increase": 0.1} if task == "regression" else {"max_drop": 0.1}
    return spec_from_mapping(
        {
            "version": 1,
            "task": task,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "c", "metric": metric, "segment": segment, **bound}],
        }
    )


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
            _spec("regression", "label=*"),
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
        _spec("classification", "label=*"), reference=model, candidates={"cand": model}, data=(x, y)
    )
    assert {c.segment for c in report.checks if c.id == "c"} == {"label=0", "label=1"}
