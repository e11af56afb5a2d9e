from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows, synthetic_classification
from scipy.special import softmax as _softmax
from sklearn import metrics as skm

from compval.metrics import ContingencyTable, Resampling, SegmentTable


def softmax(x):
    return _softmax(x, axis=1)


def _estimates(data, batch=700):
    table = SegmentTable()
    acc = ContingencyTable(table, class_names=[str(i) for i in range(5)])
    n = data["labels"].size
    for lo in range(0, n, batch):
        sl = slice(lo, lo + batch)
        acc.update(
            make_rows(
                table,
                ref=data["ref"][sl],
                cand=data["cand"][sl],
                labels=data["labels"][sl],
                region=data["region"][sl],
                row_ids=np.arange(lo, min(lo + batch, n)),
            )
        )
    return {(e.metric, e.segment): e for e in acc.estimates()}


@pytest.mark.parametrize("segment", [None, "region=north", "region=east"])
def test_table_metrics_match_sklearn(segment):
    data = synthetic_classification()
    est = _estimates(data)
    mask = (
        np.ones(data["labels"].size, bool)
        if segment is None
        else data["region"] == segment.split("=")[1]
    )
    y = data["labels"][mask]
    pr = softmax(data["ref"][mask]).argmax(1)
    pc = softmax(data["cand"][mask]).argmax(1)
    e = est[("accuracy_score", segment)]
    assert e.reference == pytest.approx(skm.accuracy_score(y, pr), rel=1e-12)
    assert e.candidate == pytest.approx(skm.accuracy_score(y, pc), rel=1e-12)
    assert e.delta == pytest.approx(e.candidate - e.reference)
    assert e.n == mask.sum()
    for avg in ("macro", "weighted"):
        e = est[(f"{avg}_f1_score", segment)]
        assert e.reference == pytest.approx(skm.f1_score(y, pr, average=avg), rel=1e-12)
        assert e.candidate == pytest.approx(skm.f1_score(y, pc, average=avg), rel=1e-12)
    labels = np.arange(5)
    for name, fn in (
        ("precision_score", skm.precision_score),
        ("recall_score", skm.recall_score),
        ("f1_score", skm.f1_score),
    ):
        ref_k = fn(y, pr, average=None, labels=labels, zero_division=0)
        cand_k = fn(y, pc, average=None, labels=labels, zero_division=0)
        for k in labels:
            e = est[(f"{name}[{k}]", segment)]
            assert e.reference == pytest.approx(ref_k[k], rel=1e-12)
            assert e.candidate == pytest.approx(cand_k[k], rel=1e-12)
    assert est[("top1_agreement", segment)].candidate == pytest.approx(np.mean(pr == pc))
    c2w = np.mean((pr == y) & (pc != y))
    w2c = np.mean((pr != y) & (pc == y))
    assert est[("flip_correct_to_wrong_rate", segment)].candidate == pytest.approx(c2w)
    assert est[("flip_wrong_to_correct_rate", segment)].candidate == pytest.approx(w2c)


def test_label_segment_accuracy_is_class_recall():
    data = synthetic_classification()
    est = _estimates(data)
    for k in range(5):
        seg = est[("accuracy_score", f"label={k}")]
        overall = est[(f"recall_score[{k}]", None)]
        assert seg.reference == pytest.approx(overall.reference)
        assert seg.candidate == pytest.approx(overall.candidate)
        # per-class metrics are not reported inside a label segment
        assert ("macro_f1_score", f"label={k}") not in est
    # the planted damage shows on class 2 only
    others = [est[("accuracy_score", f"label={k}")].delta for k in (0, 1, 3, 4)]
    assert est[("accuracy_score", "label=2")].delta < min(others) - 0.2


def test_macro_f1_ignores_absent_classes_like_sklearn():
    # class 4 never occurs in labels nor predictions of this subset
    table = SegmentTable()
    acc = ContingencyTable(table, class_names=[str(i) for i in range(5)])
    y = np.array([0, 1, 2, 3, 0, 1])
    ref = np.eye(5)[[0, 1, 2, 0, 0, 1]] * 5
    cand = np.eye(5)[[0, 2, 2, 3, 1, 1]] * 5
    acc.update(make_rows(table, ref=ref, cand=cand, labels=y))
    est = {(e.metric, e.segment): e for e in acc.estimates()}
    assert est[("macro_f1_score", None)].reference == pytest.approx(
        skm.f1_score(y, [0, 1, 2, 0, 0, 1], average="macro")
    )
    assert est[("macro_f1_score", None)].candidate == pytest.approx(
        skm.f1_score(y, [0, 2, 2, 3, 1, 1], average="macro")
    )
    assert ("precision_score[4]", None) not in est


def test_nonfinite_candidate_rows_count_as_wrong():
    table = SegmentTable()
    acc = ContingencyTable(table, class_names=["0", "1"])
    y = np.array([0, 1, 0, 1])
    ref = np.array([[5, 0], [0, 5], [5, 0], [0, 5]], float)
    cand = ref.copy()
    cand[1] = np.nan
    acc.update(make_rows(table, ref=ref, cand=cand, labels=y))
    est = {(e.metric, e.segment): e for e in acc.estimates()}
    assert est[("accuracy_score", None)].candidate == pytest.approx(0.75)
    assert est[("recall_score[1]", None)].candidate == pytest.approx(0.5)


def test_unlabelled_table_gives_agreement_only():
    table = SegmentTable()
    acc = ContingencyTable(table)
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(50, 3))
    cand = ref + rng.normal(scale=0.5, size=(50, 3))
    acc.update(make_rows(table, ref=ref, cand=cand, labels=None))
    names = {e.metric for e in acc.estimates()}
    # Agreement, and the label-free tests of the two predicted-class distributions.
    tests = {e.metric for e in acc.paired_tests()}
    assert "mcnemar_pvalue" not in tests
    assert names - tests == {"top1_agreement"}


def test_intervals_cover_and_are_deterministic():
    from compval.metrics import Resampling

    data = synthetic_classification(n=2000)
    table = SegmentTable()
    acc = ContingencyTable(table, class_names=[str(i) for i in range(5)])
    acc.update(make_rows(table, ref=data["ref"], cand=data["cand"], labels=data["labels"]))
    r = Resampling(replicates=500, confidence=0.95, seed=3)
    a = {(e.metric, e.segment): e for e in acc.estimates(r)}
    b = {(e.metric, e.segment): e for e in acc.estimates(r)}
    e = a[("accuracy_score", None)]
    assert e.ci is not None and e.ci[0] < e.delta < e.ci[1]
    assert a[("accuracy_score", None)].ci == b[("accuracy_score", None)].ci
    # the percentile interval of the delta is close to a normal-theory paired interval
    y, pr, pc = data["labels"], softmax(data["ref"]).argmax(1), softmax(data["cand"]).argmax(1)
    d = (pc == y).astype(float) - (pr == y)
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert e.ci[0] == pytest.approx(d.mean() - half, abs=0.006)
    assert e.ci[1] == pytest.approx(d.mean() + half, abs=0.006)


def test_a_30_row_segment_without_flips_cannot_pass_a_tiny_margin() -> None:
    """The audit's example: 30 identical rows gave "95% CI [0, 0]" and passed max_drop 0.001."""
    table = SegmentTable()
    acc = ContingencyTable(table)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=30)
    scores = np.eye(3)[labels] + rng.normal(scale=0.1, size=(30, 3))
    acc.update(make_rows(table, ref=scores, cand=scores, labels=labels))
    estimates = acc.estimates(Resampling(replicates=200, confidence=0.95, seed=0))
    delta = next(e for e in estimates if e.metric == "accuracy_score" and e.segment is None)
    assert delta.delta == 0.0
    assert delta.ci is not None and delta.ci[0] < -0.1  # about -3.8/30 at 95%
    assert delta.ci_method == "tango_score"
    # Non-linear metrics: the prior on unobserved discordant cells keeps the interval open on
    # both sides (the old bootstrap of a table without discordant cells returned [0, 0]).
    for metric in ("macro_f1_score", "weighted_f1_score", "f1_score[0]", "precision_score[0]"):
        e = next(e for e in estimates if e.metric == metric and e.segment is None)
        assert e.delta == 0.0 and e.ci_method == "bayesian_table_bootstrap"
        assert e.ci is not None and e.ci[0] < -0.001 and e.ci[1] > 0.001
