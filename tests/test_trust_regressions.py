"""The statistics audit's examples, through the public API (issue: every pass is earned)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from compval import run_validation
from compval.spec import AcceptanceSpec


def _spec(criteria: list[dict[str, object]], **statistics: object) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "unused.npz"},
            "criteria": criteria,
            "statistics": {"replicates": 200, "discovery": False, **statistics},
        }
    )


def _onehot(labels: np.ndarray, k: int = 3) -> np.ndarray:
    return np.eye(k)[labels]


def test_mcnemar_p_value_of_a_badly_broken_candidate_is_tiny_not_one() -> None:
    n = 20_000
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=n)
    x = np.arange(n, dtype=np.float32).reshape(-1, 1)
    broken = np.zeros(n, dtype=bool)
    broken[rng.choice(n, size=1200, replace=False)] = True
    cand_pred = np.where(broken, (y + 1) % 3, y)
    report = run_validation(
        _spec([{"id": "mcnemar", "metric": "mcnemar_pvalue", "min": 0.05}]),
        reference=lambda a: _onehot(y[a[:, 0].astype(int)]),
        candidates={"cand": lambda a: _onehot(cand_pred[a[:, 0].astype(int)])},
        data=(x, y),
    )
    p = next(m for m in report.metrics if m.metric == "mcnemar_pvalue" and m.segment is None)
    assert p.candidate_value is not None and 0 < p.candidate_value < 1e-100
    check = next(c for c in report.checks if c.id == "mcnemar")
    assert check.verdict == "fail"
    assert not report.passed


def test_stuart_maxwell_sees_a_directed_prediction_shift() -> None:
    n = 10_000
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=n)
    x = np.arange(n, dtype=np.float32).reshape(-1, 1)
    ref_pred = y.copy()
    cand_pred = ref_pred.copy()
    cand_pred[np.flatnonzero(ref_pred == 0)[:40]] = 1  # 0.4% of rows: class 0 -> class 1
    report = run_validation(
        _spec([{"id": "shift", "metric": "stuart_maxwell_pvalue", "min": 0.05}]),
        reference=lambda a: _onehot(ref_pred[a[:, 0].astype(int)]),
        candidates={"cand": lambda a: _onehot(cand_pred[a[:, 0].astype(int)])},
        data=(x, y),
    )
    p = next(m for m in report.metrics if m.metric == "stuart_maxwell_pvalue" and m.segment is None)
    # 40 discordant rows, all 0 -> 1: the statistic is 40^2 / 40 on 1 degree of freedom.
    assert p.candidate_value == pytest.approx(chi2.sf(40.0, 1), rel=1e-9)
    assert next(c for c in report.checks if c.id == "shift").verdict == "fail"


def test_discovered_slices_keep_dataframe_column_names() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"age": rng.uniform(size=n), "income": rng.uniform(size=n)})
    frame["label"] = (frame["age"] > 0.5).astype(int)

    def reference(a: np.ndarray) -> np.ndarray:
        return _onehot((a[:, 0] > 0.5).astype(int), 2)

    def candidate(a: np.ndarray) -> np.ndarray:
        out = reference(a)
        rich = a[:, 1] > 0.8  # the candidate is wrong for every high-income row
        out[rich] = out[rich][:, ::-1]
        return out

    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "unused", "labels": "label"},
            "statistics": {"replicates": 100},
        }
    )
    report = run_validation(spec, reference=reference, candidates={"cand": candidate}, data=frame)
    assert report.statistics is not None
    top = report.statistics.discovered["cand"][0]
    assert top.description.startswith("income")
    assert top.features == ("income",)
