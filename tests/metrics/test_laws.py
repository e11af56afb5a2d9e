"""Registry-wide laws: split invariance, merge commutativity/associativity, identity,
state round-trip, and the name/direction suffix contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_helpers import make_rows, synthetic_classification

from compval.metrics import (
    METRICS,
    Calibration,
    ChoiceAccuracy,
    ConfidenceShift,
    ContingencyTable,
    CosineQuantiles,
    EmbeddingFidelity,
    KLQuantiles,
    NeighbourAgreement,
    NonFiniteCounts,
    OutputFidelity,
    ProbabilityDivergence,
    RegressionErrors,
    Resampling,
    RetrievalQuality,
    SegmentTable,
    TokenKLQuantiles,
    TokenStatistics,
)

CLASSIFICATION = [
    ContingencyTable,
    OutputFidelity,
    ProbabilityDivergence,
    KLQuantiles,
    Calibration,
    NonFiniteCounts,
    ConfidenceShift,
]
# task: embedding: the probability rows serve as 5-d embeddings; rows 0-19 are queries.
EMBEDDING = [EmbeddingFidelity, CosineQuantiles, NeighbourAgreement, RetrievalQuality]
QRELS = tuple(
    (str(q), str(20 + (7 * q + j) % 580), float(1 + j)) for q in range(20) for j in range(3)
)
# task: causal_lm: the probability rows serve as token rows (NLL, KL, same top).
TOKENS = [TokenStatistics, TokenKLQuantiles, ChoiceAccuracy]
ALL = [*CLASSIFICATION, RegressionErrors, *EMBEDDING, *TOKENS]
DATA = synthetic_classification(n=600, seed=4)
RNG = np.random.default_rng(9)
REG = {
    "ref": RNG.normal(size=(600, 1)),
    "cand": RNG.normal(size=(600, 1)),
    "labels": RNG.normal(size=(600, 1)),
    "region": DATA["region"],
}
RESAMPLING = Resampling(replicates=50, confidence=0.9, seed=2)


def _fed(cls, rows_slice, order=1):
    table = SegmentTable()
    kwargs = {"class_names": [str(i) for i in range(5)]} if cls is ContingencyTable else {}
    if cls is RegressionErrors:
        kwargs = {"width": 1}
    if cls is NeighbourAgreement:
        kwargs = {"ks": (5, 10), "pairs": 5000}
    if cls is RetrievalQuality:
        kwargs = {"qrels": QRELS, "ks": (5, 10)}
    acc = cls(table, **kwargs)
    idx = np.arange(600)[rows_slice][::order]
    data = REG if cls is RegressionErrors else DATA
    acc.update(
        make_rows(
            table,
            ref=data["ref"][idx],
            cand=data["cand"][idx],
            labels=data["labels"][idx],
            region=data["region"][idx],
            row_ids=idx,
            classification=cls is not RegressionErrors,
        )
    )
    return acc


def _snapshot(acc):
    return sorted(
        (
            (e.metric, str(e.segment), e.n, e.reference, e.candidate, e.ci)
            for e in acc.estimates(RESAMPLING)
        ),
        key=lambda t: (t[0], t[1]),
    )


def _close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[:3] == y[:3]
        for u, v in zip(x[3:], y[3:], strict=True):
            np.testing.assert_allclose(
                np.asarray(u, float), np.asarray(v, float), rtol=1e-12, atol=1e-12
            )


@pytest.mark.parametrize("cls", ALL)
@settings(max_examples=8, deadline=None)
@given(cut=st.integers(min_value=1, max_value=599))
def test_split_then_merge_equals_one_pass(cls, cut):
    whole = _fed(cls, slice(0, 600))
    # the second half arrives reversed, so its segments get ids in another order
    merged = _fed(cls, slice(0, cut)).merge(_fed(cls, slice(cut, 600), order=-1))
    _close(_snapshot(whole), _snapshot(merged))


@pytest.mark.parametrize("cls", ALL)
def test_merge_commutes_associates_and_has_identity(cls):
    a, b, c = _fed(cls, slice(0, 200)), _fed(cls, slice(200, 450)), _fed(cls, slice(450, 600))
    _close(_snapshot(a.merge(b)), _snapshot(b.merge(a)))
    _close(_snapshot(a.merge(b).merge(c)), _snapshot(a.merge(b.merge(c))))
    _close(_snapshot(a.merge(a.empty())), _snapshot(a))


@pytest.mark.parametrize("cls", ALL)
def test_state_round_trip(cls):
    a = _fed(cls, slice(0, 600))
    _close(_snapshot(type(a).from_state(a.state())), _snapshot(a))


def test_merge_refuses_different_configuration():
    from compval.errors import IncompatibleMergeError

    with pytest.raises(IncompatibleMergeError):
        RegressionErrors(SegmentTable(), width=1).merge(RegressionErrors(SegmentTable(), width=2))
    with pytest.raises(IncompatibleMergeError):
        OutputFidelity(SegmentTable()).merge(ProbabilityDivergence(SegmentTable()))


HIGHER = ("_score", "_agreement", "_similarity", "_db", "_pvalue")
LOWER = ("_error", "_loss", "_diff", "_rate", "_divergence", "_count", "_distance", "perplexity")
NEUTRAL = ("_norm",)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_suffix_agrees_with_direction(name):
    info = METRICS[name]
    if name.endswith(HIGHER):
        assert info.higher_is_better is True
    elif name.endswith(LOWER):
        assert info.higher_is_better in (False, None)
    elif name.endswith(NEUTRAL):
        assert info.higher_is_better is None
    else:
        pytest.fail(f"{name} has no direction suffix")


def test_every_registered_metric_is_produced():
    produced = set()
    for cls in [*ALL, ConfidenceShift]:
        acc = _fed(cls, slice(0, 600))
        produced |= {e.metric.split("[")[0] for e in acc.estimates()}
    assert not set(METRICS) - produced
