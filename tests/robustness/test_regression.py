"""Regression: perturbed passes report the usual metrics and the MAE-based robustness gap
(tests/robustness/test_regression_gap.py checks it in depth); the search uses the tolerance on
the max absolute output difference. Real scikit-learn models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from compval.data import ArrayDataset
from compval.engine import RunOptions, run_validation
from compval.errors import SpecValidationError
from compval.spec import AcceptanceSpec

TOLERANCE = 2.0


@pytest.fixture(scope="module")
def setup() -> tuple[np.ndarray, np.ndarray, Ridge, Ridge]:
    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float64)
    reference = Ridge(alpha=0.1).fit(x, y)
    # A "compressed" copy: coefficients rounded to a coarse grid (like weight quantization).
    rounded = copy.deepcopy(reference)
    rounded.coef_ = np.round(reference.coef_ / 40.0) * 40.0
    return x, y, reference, rounded


def _spec(search: dict) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": "regression",
            "reference": {"name": "ref"},
            "candidates": [{"name": "rounded"}],
            "data": {"path": "unused.npz"},
            "statistics": {"replicates": 100},
            "robustness": {
                "perturbations": [{"name": "noise", "kind": "noise", "params": {"std": 0.2}}],
                "search": search,
            },
        }
    )


def test_regression_perturbation_and_search(setup) -> None:
    x, y, reference, rounded = setup
    stages: set[str] = set()
    report = run_validation(
        _spec({"seeds": 20, "epsilon": 0.5, "budget": 40, "tolerance": TOLERANCE}),
        reference=reference,
        candidates={"rounded": rounded},
        data=ArrayDataset(x, labels=y),
        options=RunOptions(progress=lambda stage, done, total: stages.add(stage)),
    )
    assert stages == {"validate", "perturbation=noise"}
    segments = {m.segment for m in report.metrics if m.metric == "mean_absolute_error"}
    assert "perturbation=noise" in segments
    # The gap is the perturbed pass's MAE delta less the clean pass's.
    (gap,) = [m for m in report.metrics if m.metric == "robustness_gap"]
    assert gap.segment == "perturbation=noise" and gap.n == len(y)
    mae = {m.segment: m for m in report.metrics if m.metric == "mean_absolute_error"}
    expected = mae["perturbation=noise"].delta - mae[None].delta
    assert gap.candidate_value == pytest.approx(expected, abs=1e-12)
    assert gap.ci_low <= gap.candidate_value <= gap.ci_high
    assert not any("robustness_gap" in n for n in report.run.notes)
    assert report.robustness is not None
    (result,) = report.robustness.search_results
    assert result.seeds_with_disagreement > 0
    found = np.asarray(result.edge_cases["input"], dtype=np.float64)  # the model's input name
    difference = np.abs(reference.predict(found) - rounded.predict(found))
    assert (difference > TOLERANCE).all()
    np.testing.assert_allclose(result.edge_cases["labels"], reference.predict(found), rtol=1e-9)


def test_regression_search_needs_a_tolerance(setup) -> None:
    x, y, reference, rounded = setup
    with pytest.raises(SpecValidationError, match="tolerance"):
        run_validation(
            _spec({"seeds": 5}),
            reference=reference,
            candidates={"rounded": rounded},
            data=ArrayDataset(x, labels=y),
        )
