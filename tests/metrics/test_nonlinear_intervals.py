"""Intervals of non-linear classification metrics at zero and small disagreement counts.

Through the public API (``run_validation``) and the table accumulator: identical predictions
pass a tight macro-F1 margin instead of being "inconclusive", zero disagreements never give a
zero-width interval, and the interval is a function of the table alone (batch size, seed).
"""

from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows

from compval import run_validation
from compval.metrics import ContingencyTable, Resampling, SegmentTable
from compval.metrics.classification import TableMetrics
from compval.spec import AcceptanceSpec

NONLINEAR = ("macro_f1_score", "weighted_f1_score", "precision_score[", "f1_score[")


def _spec(criteria: list[dict[str, object]]) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "unused.npz"},
            "criteria": criteria,
            "statistics": {"replicates": 500, "discovery": False},
        }
    )


def _three_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    pred = np.where(rng.random(n) < 0.9, y, (y + rng.integers(1, 3, size=n)) % 3)
    return y, pred


def test_identical_predictions_pass_a_one_point_macro_f1_margin() -> None:
    y, pred = _three_classes(3000, seed=0)
    x = np.arange(y.size, dtype=np.float32).reshape(-1, 1)
    report = run_validation(
        _spec(
            [
                {"id": "macro", "metric": "macro_f1_score", "max_drop": 0.01},
                {"id": "weighted", "metric": "weighted_f1_score", "max_drop": 0.01},
            ]
        ),
        reference=lambda a: np.eye(3)[pred[a[:, 0].astype(int)]],
        candidates={"cand": lambda a: np.eye(3)[pred[a[:, 0].astype(int)]]},
        data=(x, y),
    )
    checks = {c.id: c for c in report.checks}
    for name in ("macro", "weighted"):
        assert checks[name].verdict == "pass", checks[name].message
        assert "bayesian table bootstrap" in checks[name].message.lower()
    assert report.passed
    macro = next(m for m in report.metrics if m.metric == "macro_f1_score" and m.segment is None)
    assert macro.ci_low is not None and macro.ci_high is not None
    # About 3.7 discordant rows of 3,000 at most, each moving macro F1 by about 1.5 / 3,000.
    assert -0.004 < macro.ci_low < -0.0002 and 0.0002 < macro.ci_high < 0.004


def test_a_small_identical_segment_does_not_pass_a_tight_macro_f1_margin() -> None:
    y, pred = _three_classes(40, seed=1)
    x = np.arange(y.size, dtype=np.float32).reshape(-1, 1)
    report = run_validation(
        _spec([{"id": "macro", "metric": "macro_f1_score", "max_drop": 0.005}]),
        reference=lambda a: np.eye(3)[pred[a[:, 0].astype(int)]],
        candidates={"cand": lambda a: np.eye(3)[pred[a[:, 0].astype(int)]]},
        data=(x, y),
    )
    check = next(c for c in report.checks if c.id == "macro")
    assert check.verdict == "inconclusive"
    assert not report.passed


@pytest.mark.parametrize("n_classes", [2, 3, 120])
def test_zero_disagreements_never_give_a_zero_width_interval(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    n = 30 * n_classes
    y = rng.integers(0, n_classes, size=n)
    pred = np.where(rng.random(n) < 0.8, y, rng.integers(0, n_classes, size=n))
    table = SegmentTable()
    acc = ContingencyTable(table)
    acc.update(
        make_rows(table, ref=np.eye(n_classes)[pred], cand=np.eye(n_classes)[pred], labels=y)
    )
    estimates = acc.estimates(Resampling(replicates=300, confidence=0.95, seed=0))
    nonlinear = [e for e in estimates if e.metric.startswith(NONLINEAR)]
    assert len(nonlinear) >= 2 + 2 * n_classes - 2  # macro, weighted, per-class (sampled classes)
    for e in nonlinear:
        assert e.delta == 0.0 and e.ci is not None, e.metric
        assert e.ci[0] < 0.0 < e.ci[1], (e.metric, e.ci)
        assert e.ci_method == "bayesian_table_bootstrap"
        assert e.ci_candidate is not None and e.ci_candidate[0] < e.ci_candidate[1]


def test_one_broken_rare_class_widens_its_own_interval_not_the_others() -> None:
    """The per-class prior is local: class 2's F1 interval reflects class 2's counts only."""
    rng = np.random.default_rng(5)
    y = np.concatenate([rng.integers(0, 2, size=2000), np.full(40, 2)])
    ref = y.copy()
    cand = y.copy()
    cand[-8:] = 0  # the candidate misses 8 of the 40 rare rows
    table = SegmentTable()
    acc = ContingencyTable(table)
    acc.update(make_rows(table, ref=np.eye(3)[ref], cand=np.eye(3)[cand], labels=y))
    by = {
        e.metric: e
        for e in acc.estimates(Resampling(replicates=1000, confidence=0.95, seed=0))
        if e.segment is None
    }
    rare = by["f1_score[2]"]
    assert rare.delta is not None and rare.ci is not None
    assert rare.delta == pytest.approx(2 * 32 / 72 - 1.0)
    assert rare.ci[1] < 0  # 8 of 40 rows lost: shown worse
    common = by["f1_score[1]"]
    assert common.ci is not None and common.ci[1] - common.ci[0] < 0.01


def test_intervals_depend_on_the_table_not_on_batching() -> None:
    y, pred = _three_classes(1200, seed=2)
    cand = pred.copy()
    cand[:30] = (cand[:30] + 1) % 3
    resampling = Resampling(replicates=300, confidence=0.95, seed=4)

    def run(batch: int) -> list[tuple[float, float] | None]:
        table = SegmentTable()
        acc = ContingencyTable(table)
        for start in range(0, y.size, batch):
            part = slice(start, start + batch)
            acc.update(
                make_rows(
                    table,
                    ref=np.eye(3)[pred[part]],
                    cand=np.eye(3)[cand[part]],
                    labels=y[part],
                    row_ids=np.arange(y.size)[part],
                )
            )
        return [e.ci for e in acc.estimates(resampling) if e.metric.startswith(NONLINEAR)]

    assert run(64) == run(1200)
    other = ContingencyTable(SegmentTable())
    other.update(make_rows(other.segments, ref=np.eye(3)[pred], cand=np.eye(3)[cand], labels=y))
    assert [
        e.ci
        for e in other.estimates(Resampling(300, 0.95, seed=5))
        if e.metric.startswith(NONLINEAR)
    ] != run(1200)


def test_each_interval_end_has_its_own_prior() -> None:
    """Lower ends from draws where only the candidate may be worse, upper ends the reverse."""
    label = np.array([0, 1, 2, 0])
    pred = np.array([0, 1, 2, 1])
    count = np.array([50, 40, 30, 5])
    metrics = TableMetrics(label, pred, pred)
    sums, rows = metrics.posterior_sums(count, per_class=True, replicates=400, seed=0, stream=0)
    np.testing.assert_array_equal(sums[0], metrics.sums(count[None, :].astype(float))[0])
    ref_ok, cand_ok = sums[:, 2], sums[:, 3]  # rows each model got right
    # Two prior cells per class the candidate gets wrong (a miss and a false alarm).
    for name, prior_rows in (("aggregate", 2.0), ("per_class", 6.0)):
        low, high = rows[name]
        # Identical predictions: only the prior separates the models, one way on each side.
        assert np.all(cand_ok[low] <= ref_ok[low]) and np.all(cand_ok[high] >= ref_ok[high])
        # Gamma(1 / classes) per cell for the segment-wide prior, Gamma(1) per cell for the
        # per-class one; the mean of their sum is the shapes' sum.
        gap = ref_ok[low] - cand_ok[low]
        assert gap.mean() == pytest.approx(prior_rows, rel=0.25)
    low_agg, low_per = rows["aggregate"][0], rows["per_class"][0]
    # The observed cells share their draws across priors: their sums differ only by prior mass.
    assert np.all(np.abs(sums[low_agg, 0] - sums[low_per, 0]) > 0)
