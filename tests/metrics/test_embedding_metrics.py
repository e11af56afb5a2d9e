"""Embedding metrics against independent computations (numpy, scipy, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score
from sklearn.neighbors import NearestNeighbors

from compval.errors import DataError
from compval.metrics import (
    CosineQuantiles,
    EmbeddingFidelity,
    EmbeddingRows,
    NeighbourAgreement,
    Resampling,
    RetrievalQuality,
    SegmentTable,
    nearest_neighbours,
    retrieval_scores,
)

RESAMPLING = Resampling(replicates=200, confidence=0.95, seed=3)


def _pairs(n=400, d=24, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d))
    ref = centres[rng.integers(0, 8, n)] + 0.6 * rng.normal(size=(n, d))
    cand = ref + noise * rng.normal(size=(n, d)) * np.abs(ref).mean()
    region = rng.choice(np.array(["a", "b"]), n)
    return ref, cand, region


def _feed(acc_cls, ref, cand, region, **kwargs):
    table = SegmentTable()
    acc = acc_cls(table, **kwargs)
    half = ref.shape[0] // 2
    for part in (slice(0, half), slice(half, None)):
        ids = np.arange(ref.shape[0])[part]
        acc.update(
            make_rows(
                table,
                ref=ref[part],
                cand=cand[part],
                region=region[part],
                row_ids=ids,
                classification=False,
            )
        )
    return acc


def _by(estimates, metric, segment=None):
    (found,) = [e for e in estimates if e.metric == metric and e.segment == segment]
    return found


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _sklearn_neighbours(x, k):
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    # Drop each row itself (always its own nearest at distance 0).
    return np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])


def test_norms_min_and_p1_cosine_match_numpy():
    ref, cand, region = _pairs()
    est = _feed(EmbeddingFidelity, ref, cand, region).estimates(RESAMPLING)
    est += _feed(CosineQuantiles, ref, cand, region).estimates(RESAMPLING)
    cos = _cos(ref, cand)
    for seg, mask in ((None, slice(None)), ("region=a", region == "a")):
        norm = _by(est, "embedding_norm", seg)
        assert norm.reference == pytest.approx(np.linalg.norm(ref[mask], axis=1).mean(), 1e-10)
        assert norm.candidate == pytest.approx(np.linalg.norm(cand[mask], axis=1).mean(), 1e-10)
        assert _by(est, "min_cosine_similarity", seg).candidate == pytest.approx(
            cos[mask].min(), abs=1e-12
        )
    p1 = _by(est, "p1_cosine_similarity")
    exact = np.quantile(cos, 0.01)
    # Histogram of 1 - cos with 64 log bins per decade: within one bin (3.7 % of 1 - cos).
    assert abs((1 - p1.candidate) / (1 - exact) - 1) < 0.04
    low, high = p1.ci
    assert low <= exact <= high and low < p1.candidate < high
    # The order-statistic interval: binomial ranks of the 0.99 quantile of 1 - cos.
    from scipy.stats import binom

    gaps = np.sort(1 - cos)
    n = gaps.size
    lo_rank = int(binom.ppf(0.025, n, 0.99))
    hi_rank = int(binom.ppf(0.975, n, 0.99)) + 1
    assert 1 - high == pytest.approx(gaps[lo_rank - 1], rel=0.05)
    assert 1 - low == pytest.approx(gaps[min(hi_rank, n) - 1], rel=0.05)


def test_nearest_neighbours_match_sklearn_and_break_ties_by_index():
    ref, _, _ = _pairs(n=300)
    ours = nearest_neighbours(ref, ref, 7, exclude_self=True)
    np.testing.assert_array_equal(ours, _sklearn_neighbours(ref, 7))
    # Duplicated rows tie exactly: the lower index comes first, whatever the block size.
    dup = np.vstack([ref[:5], ref[:5], ref[5:50]])
    nn = nearest_neighbours(dup, dup, 3, exclude_self=True)
    assert nn[0, 0] == 5 and nn[5, 0] == 0
    assert nn[1, 0] == 6


def test_neighbour_agreement_and_spearman_match_independent_computation():
    ref, cand, region = _pairs(n=400)
    est = _feed(NeighbourAgreement, ref, cand, region, ks=(5, 10), pairs=10**6).estimates(
        RESAMPLING
    )
    for k in (5, 10):
        a, b = _sklearn_neighbours(ref, k), _sklearn_neighbours(cand, k)
        share = np.array([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])
        same = np.array([set(x) == set(y) for x, y in zip(a, b, strict=True)])
        overall = _by(est, f"neighbour_agreement[k={k}]")
        assert overall.candidate == pytest.approx(share.mean(), abs=1e-12)
        assert overall.ci[0] < share.mean() < overall.ci[1]
        assert _by(est, f"neighbour_set_agreement[k={k}]").candidate == pytest.approx(same.mean())
        seg = _by(est, f"neighbour_agreement[k={k}]", "region=b")
        assert seg.candidate == pytest.approx(share[region == "b"].mean(), abs=1e-12)
    # Every pair i < j (400 rows: 79,800 pairs <= the pairs setting): scipy's Spearman.
    i, j = np.triu_indices(400, k=1)
    rn = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cn = cand / np.linalg.norm(cand, axis=1, keepdims=True)
    rho = spearmanr((rn[i] * rn[j]).sum(1), (cn[i] * cn[j]).sum(1)).statistic
    spear = _by(est, "similarity_spearman_score")
    assert spear.n == i.size
    # float32 similarities: ranks of near-equal values may swap.
    assert spear.candidate == pytest.approx(rho, abs=1e-5)


def test_sampled_pairs_spearman_is_close_to_all_pairs():
    ref, cand, region = _pairs(n=400)
    every = _feed(NeighbourAgreement, ref, cand, region, pairs=10**6).estimates()
    some = _feed(NeighbourAgreement, ref, cand, region, pairs=5000, seed=1).estimates()
    a = _by(every, "similarity_spearman_score").candidate
    b = _by(some, "similarity_spearman_score").candidate
    assert _by(some, "similarity_spearman_score").n == 5000
    assert abs(a - b) < 0.02


def test_bounded_buffer_approximation_error_is_small_and_deterministic():
    """Beyond max_rows, agreement is computed in a bottom-k hash sample; measure the error."""
    ref, cand, region = _pairs(n=3000, noise=0.2, seed=5)
    exact = _by(
        _feed(NeighbourAgreement, ref, cand, region, ks=(10,)).estimates(),
        "neighbour_agreement[k=10]",
    )
    errors = []
    for seed in range(3):
        acc = _feed(NeighbourAgreement, ref, cand, region, ks=(10,), max_rows=1000, seed=seed)
        approx = _by(acc.estimates(), "neighbour_agreement[k=10]")
        assert approx.n == 1000
        errors.append(approx.candidate - exact.candidate)
    # Measured: errors of -0.017 to -0.029 with a third of the rows kept (docs/tasks.md); a
    # plain agreement at k in the sample would be off by +0.08 here.
    assert max(abs(e) for e in errors) < 0.04, errors


def test_bottom_k_sample_ignores_batching():
    ref, cand, region = _pairs(n=600, seed=2)
    a = _feed(NeighbourAgreement, ref, cand, region, max_rows=200, seed=4)
    table = SegmentTable()
    b = NeighbourAgreement(table, max_rows=200, seed=4)
    for part in np.array_split(np.arange(600)[::-1], 7):
        b.update(
            make_rows(
                table,
                ref=ref[part],
                cand=cand[part],
                region=region[part],
                row_ids=part,
                classification=False,
            )
        )
    ea, eb = a.estimates(), b.estimates()
    assert [(e.metric, e.segment, e.candidate) for e in ea] == [
        (e.metric, e.segment, e.candidate) for e in eb
    ]


def test_retrieval_scores_hand_computed():
    rel = {"d1": 3.0, "d2": 1.0, "d3": 0.0, "d9": 2.0}
    ranked = ["d3", "d2", "d5", "d1"]
    recall, ndcg, mrr = retrieval_scores(ranked, rel, 3)
    assert recall == pytest.approx(1 / 3)  # d2 of {d1, d2, d9}
    dcg = 1 / np.log2(3)
    idcg = 3 / np.log2(2) + 2 / np.log2(3) + 1 / np.log2(4)
    assert ndcg == pytest.approx(dcg / idcg)
    assert mrr == pytest.approx(1 / 2)
    assert retrieval_scores(["x", "y"], rel, 2).tolist() == [0.0, 0.0, 0.0]


def _retrieval_rows(table, emb_ref, emb_cand, ids, region):
    n = len(ids)
    base = make_rows(
        table, ref=emb_ref, cand=emb_cand, region=region, row_ids=np.arange(n), classification=False
    )
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    return EmbeddingRows(**fields, ids=np.array(ids, dtype=object))


def test_retrieval_quality_matches_direct_ranking():
    rng = np.random.default_rng(7)
    n_q, n_d, d = 40, 200, 16
    docs = rng.normal(size=(n_d, d))
    qrels = []
    queries = np.empty((n_q, d))
    for q in range(n_q):
        relevant = rng.choice(n_d, 3, replace=False)
        queries[q] = docs[relevant].mean(0) + 0.8 * rng.normal(size=d)
        qrels += [(f"q{q}", f"d{r}", float(g)) for r, g in zip(relevant, (3, 2, 1), strict=True)]
    emb_ref = np.vstack([queries, docs])
    emb_cand = emb_ref + 0.3 * rng.normal(size=emb_ref.shape)
    ids = [f"q{q}" for q in range(n_q)] + [f"d{i}" for i in range(n_d)]
    region = np.array(["x", "y"])[np.arange(n_q + n_d) % 2]
    table = SegmentTable()
    acc = RetrievalQuality(table, qrels=tuple(sorted(qrels)), ks=(5, 10))
    acc.update(_retrieval_rows(table, emb_ref, emb_cand, ids, region))
    est = acc.estimates(RESAMPLING)
    judged = {}
    for q, doc, g in qrels:
        judged.setdefault(q, {})[doc] = g
    for k in (5, 10):
        per = {}
        for side, emb in (("ref", emb_ref), ("cand", emb_cand)):
            sims = _cos_matrix(emb[:n_q], emb[n_q:])
            rows = []
            for q in range(n_q):
                order = np.argsort(-sims[q], kind="stable")[:k]
                rel = np.zeros(n_d)
                for doc, g in judged[f"q{q}"].items():
                    rel[int(doc[1:])] = g
                hits = rel[order] > 0
                ndcg = ndcg_score(rel[None, :], sims[q][None, :], k=k)
                first = np.flatnonzero(hits)
                rows.append([hits.sum() / 3, ndcg, 1 / (first[0] + 1) if first.size else 0.0])
            per[side] = np.array(rows)
        for j, metric in enumerate(("retrieval_recall_score", "ndcg_score", "mrr_score")):
            e = _by(est, f"{metric}[k={k}]")
            assert e.n == n_q
            assert e.reference == pytest.approx(per["ref"][:, j].mean(), abs=1e-12)
            assert e.candidate == pytest.approx(per["cand"][:, j].mean(), abs=1e-12)
            delta = per["cand"][:, j].mean() - per["ref"][:, j].mean()
            assert e.delta == pytest.approx(delta, abs=1e-12)
            assert e.ci[0] <= e.delta <= e.ci[1]
            seg = _by(est, f"{metric}[k={k}]", "region=x")
            assert seg.reference == pytest.approx(per["ref"][::2, j].mean(), abs=1e-12)


def _cos_matrix(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a.astype(np.float32) @ b.astype(np.float32).T).astype(np.float64)


def test_retrieval_refuses_ambiguous_ids_and_unmatched_queries():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 4))
    region = np.array(["a"] * 6)
    table = SegmentTable()
    acc = RetrievalQuality(table, qrels=(("q", "d1", 1.0),), ks=(2,))
    acc.update(_retrieval_rows(table, emb, emb, ["q", "d1", "d1", "d2", "d3", "d4"], region))
    with pytest.raises(DataError, match="unique"):
        acc.estimates()
    table = SegmentTable()
    acc = RetrievalQuality(table, qrels=(("zz", "d1", 1.0),), ks=(2,))
    acc.update(_retrieval_rows(table, emb, emb, ["q", "d1", "d5", "d2", "d3", "d4"], region))
    with pytest.raises(DataError, match="query ids"):
        acc.estimates()
