"""``task: embedding`` keeps each row's embeddings once, and retrieval has a row cap.

With relevance judgements the retrieval accumulator also reports the neighbour metrics from
its own buffer (before, a second accumulator kept a second copy of every row). Retrieval is
exact, so it never samples: beyond its cap it stops the run with a DataError. Neighbour
agreement beyond ``max_rows`` is estimated on a sample and says so in ``run.notes``.

The models are numpy callables (embedding = the input, and a deterministic perturbation of
it); neighbours are recomputed with scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.neighbors import NearestNeighbors

from compval import run_validation
from compval.engine import RunOptions
from compval.errors import DataError
from compval.metrics import (
    NeighbourAgreement,
    PairedRows,
    Resampling,
    RetrievalQuality,
    SegmentTable,
)
from compval.metrics.embedding import RETRIEVAL_MAX_ROWS
from compval.spec import AcceptanceSpec
from compval.stats import row_blocks
from compval.tasks import TaskState, get_task

N_DOCS, N_QUERIES, DIM = 260, 40, 16
RESAMPLING = Resampling(replicates=100, confidence=0.9, seed=1)


def _reference(x):
    return np.asarray(x, dtype=np.float64)


def _candidate(x):
    x = np.asarray(x, dtype=np.float64)
    return x + 0.15 * np.sin(7.0 * x)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedding_memory")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, DIM))
    docs = centres[rng.integers(0, 10, N_DOCS)] + 0.5 * rng.normal(size=(N_DOCS, DIM))
    queries = docs[: 2 * N_QUERIES : 2] + 0.2 * rng.normal(size=(N_QUERIES, DIM))
    x = np.vstack([queries, docs]).astype(np.float32)
    ids = np.array([f"q{q}" for q in range(N_QUERIES)] + [f"d{d}" for d in range(N_DOCS)])
    np.savez(out / "rows.npz", x=x, id=ids)
    lines = ["query_id\tdoc_id"] + [f"q{q}\td{2 * q}" for q in range(N_QUERIES)]
    (out / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return {"data": out / "rows.npz", "qrels": out / "qrels.tsv", "x": x}


def _spec(files, *, qrels=True, **embedding):
    cfg = {"neighbours_k": [5, 10], **embedding}
    if qrels:
        cfg["qrels"] = str(files["qrels"])
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {"type": "embedding", "embedding": cfg},
            "reference": {"path": "unused.onnx", "name": "ref"},
            "candidates": [{"path": "unused.onnx", "name": "cand"}],
            "data": {"path": str(files["data"]), "features": ["x"], "labels": "id"},
            "batch_size": 64,
            "statistics": {"replicates": 100, "seed": 3},
        }
    )


def _run(spec):
    return run_validation(
        spec,
        reference=_reference,
        candidates={"cand": _candidate},
        options=RunOptions(replicates=100),
    )


def _neighbour_values(report):
    return {
        (m.metric, m.segment): (m.n, m.candidate_value, m.ci_low, m.ci_high)
        for m in report.metrics
        if m.candidate == "cand" and ("neighbour" in m.metric or "spearman" in m.metric)
    }


def _sklearn_agreement(x, k):
    def nn(v):
        found = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(v)
        idx = found.kneighbors(v, return_distance=False)
        return [[j for j in row if j != i][:k] for i, row in enumerate(idx)]

    a = nn(_reference(x).astype(np.float32))
    b = nn(_candidate(x).astype(np.float32))
    return np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b, strict=True)])


def test_with_qrels_one_buffer_gives_the_same_neighbour_metrics(files):
    with_qrels = _run(_spec(files))
    without = _run(_spec(files, qrels=False))
    got = _neighbour_values(with_qrels)
    assert got and got == _neighbour_values(without)
    for k in (5, 10):
        value = got[(f"neighbour_agreement[k={k}]", None)][1]
        assert value == pytest.approx(_sklearn_agreement(files["x"], k), abs=1e-9)
    # The retrieval metrics are there too, and the rows are exact (no note).
    assert any(m.metric == "ndcg_score[k=10]" for m in with_qrels.metrics)
    assert not [n for n in with_qrels.run.notes if "sample" in n]

    # The task keeps one buffer of embeddings per candidate with qrels, as without.
    task = get_task("embedding")
    for spec in (_spec(files), _spec(files, qrels=False)):
        accs = task.accumulators(
            TaskState(spec=spec, has_labels=True),
            reference_kind="values",
            candidate_kind="values",
            width=DIM,
        )
        buffers = [a for a in accs if isinstance(a, NeighbourAgreement | RetrievalQuality)]
        assert len(buffers) == 1


def test_sampled_neighbours_are_noted_and_match_with_and_without_qrels(files):
    with_qrels = _run(_spec(files, max_rows=120))
    without = _run(_spec(files, qrels=False, max_rows=120))
    got = _neighbour_values(with_qrels)
    assert got == _neighbour_values(without)
    assert got[("neighbour_agreement[k=10]", None)][0] == 120  # the sample's rows
    for report in (with_qrels, without):
        notes = [n for n in report.run.notes if "deterministic sample of 120 of the 300" in n]
        assert len(notes) == 1, report.run.notes


def test_retrieval_beyond_its_row_cap_stops_the_run(files):
    spec = _spec(files)
    # task.embedding.max_retrieval_rows is the proposed spec field; the task reads it by name.
    cfg = spec.task.embedding.model_copy(update={"max_retrieval_rows": 250})
    spec = spec.model_copy(update={"task": spec.task.model_copy(update={"embedding": cfg})})
    with pytest.raises(DataError, match=r"300 rows exceed its limit of 250"):
        _run(spec)
    cfg = spec.task.embedding.model_copy(update={"max_retrieval_rows": 300})
    spec = spec.model_copy(update={"task": spec.task.model_copy(update={"embedding": cfg})})
    assert any(m.metric == "mrr_score[k=10]" for m in _run(spec).metrics)
    assert RETRIEVAL_MAX_ROWS >= 1_000_000  # the documented default


def _rows(table, x, ids):
    n = x.shape[0]
    return PairedRows(
        reference=_reference(x),
        candidate=_candidate(x),
        row_ids=ids.astype(np.int64),
        blocks=row_blocks(ids.astype(np.int64), seed=0, n_blocks=256),
        segment_ids=np.zeros((1, n), dtype=np.int64),
        finite=np.ones(n, dtype=bool),
    )


def _snapshot(acc):
    return sorted(
        (e.metric, str(e.segment), e.n, e.reference, e.candidate, e.ci)
        for e in acc.estimates(RESAMPLING)
    )


@pytest.mark.parametrize("max_rows", [1000, 90])
def test_combined_accumulator_keeps_the_merge_laws(files, max_rows):
    x = files["x"]
    ids = np.arange(x.shape[0])
    qrels = tuple((str(q), str(N_QUERIES + 2 * q), 1.0) for q in range(N_QUERIES))
    config = {
        "qrels": qrels,
        "ks": (5,),
        "neighbours": {"ks": (5,), "max_rows": max_rows, "pairs": 500, "seed": 2},
    }
    notes: list[str] = []

    def fed(part):
        table = SegmentTable()
        acc = RetrievalQuality(table, notes=notes, **config)
        acc.update(_rows(table, x[part], ids[part]))
        return acc

    whole = fed(slice(None))
    a, b = fed(slice(0, 170)), fed(slice(170, None))
    assert _snapshot(a.merge(b)) == _snapshot(whole)
    assert _snapshot(b.merge(a)) == _snapshot(whole)
    assert _snapshot(whole.merge(whole.empty())) == _snapshot(whole)
    assert _snapshot(RetrievalQuality.from_state(whole.state())) == _snapshot(whole)
    # The neighbour part equals a NeighbourAgreement of the same configuration.
    table = SegmentTable()
    alone = NeighbourAgreement(table, **config["neighbours"])
    alone.update(_rows(table, x, ids))
    neighbours = [s for s in _snapshot(whole) if "neighbour" in s[0] or "spearman" in s[0]]
    assert neighbours == _snapshot(alone)
    assert (len(notes) == 1) == (max_rows < x.shape[0])


def test_retrieval_cap_holds_across_merges(files):
    x = files["x"][:200]
    ids = np.arange(200)

    def fed(part, cap):
        table = SegmentTable()
        acc = RetrievalQuality(table, qrels=(("0", "1", 1.0),), max_rows=cap)
        acc.update(_rows(table, x[part], ids[part]))
        return acc

    with pytest.raises(DataError, match="200 rows exceed its limit of 150"):
        fed(slice(None), 150)
    a, b = fed(slice(0, 100), 150), fed(slice(100, None), 150)
    with pytest.raises(DataError, match="200 rows exceed its limit of 150"):
        a.merge(b)
    assert fed(slice(None), 200).estimates(None)  # at the cap: fine
