"""Benchmark: the cost of neighbour agreement (``task: embedding``) at 10k and 100k rows.

Scenario: 384-d embeddings (all-MiniLM-L6-v2's width) of rows drawn around 50 centres; the
candidate adds 5% noise. ``NeighbourAgreement.estimates`` finds each row's 10 nearest
neighbours (cosine) among all rows under both models, in blocks of rows (memory: rows x block,
about 64 MiB of similarities), then the agreement with block-bootstrap intervals and the
Spearman correlation of 100,000 pairs.

* compval: ``NeighbourAgreement`` fed in 16,384-row chunks, then ``estimates`` (200 replicates).
* bare: the same exact k-NN written as a plain numpy loop (normalise, block matmul,
  ``argpartition``) for both models, and the overlap; no ties handling, intervals or pairs.

The cost is quadratic in rows: 100k rows is 100x the 10k work. By default the 100k case runs
with ``max_rows: 20000`` (the bounded-buffer approximation: a 20k-row sample, 25x cheaper than
exact) and the exact 100k cost is extrapolated from 10k and 20k; ``--exact-100k`` runs it.

Memory with relevance judgements (``qrels``): the embeddings kept per candidate, before (a
NeighbourAgreement and a RetrievalQuality, each with its own copy of the rows) and now (one
RetrievalQuality that also reports the neighbour metrics), at 20k rows.

Run: ``PYTHONPATH=src python benchmarks/bench_embedding.py``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from compval.metrics import (
    NeighbourAgreement,
    PairedRows,
    Resampling,
    RetrievalQuality,
    SegmentTable,
)
from compval.stats import row_blocks

DIM = 384
K = 10
CHUNK = 16_384


def make(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIM)).astype(np.float32)
    ref = centres[rng.integers(0, 50, n)] + 0.7 * rng.normal(size=(n, DIM)).astype(np.float32)
    cand = ref + 0.05 * rng.normal(size=(n, DIM)).astype(np.float32)
    return ref, cand


def run_compval(ref: np.ndarray, cand: np.ndarray, max_rows: int) -> tuple[float, float]:
    table = SegmentTable()
    acc = NeighbourAgreement(table, ks=(K,), max_rows=max_rows, seed=0)
    start = time.perf_counter()
    _fed(acc, ref, cand)
    est = acc.estimates(Resampling(replicates=200, confidence=0.95, seed=0))
    seconds = time.perf_counter() - start
    value = next(e.candidate for e in est if e.metric == f"neighbour_agreement[k={K}]")
    return seconds, float(value)


def _fed(acc: Any, ref: np.ndarray, cand: np.ndarray) -> Any:
    for lo in range(0, ref.shape[0], CHUNK):
        ids = np.arange(lo, min(lo + CHUNK, ref.shape[0]), dtype=np.int64)
        acc.update(
            PairedRows(
                reference=ref[ids].astype(np.float64),
                candidate=cand[ids].astype(np.float64),
                row_ids=ids,
                blocks=row_blocks(ids, seed=0, n_blocks=256),
                segment_ids=np.zeros((1, ids.size), dtype=np.int64),
                finite=np.ones(ids.size, dtype=bool),
            )
        )
    return acc


def _kept_bytes(acc: Any) -> int:
    """Bytes of the rows an accumulator keeps (embeddings, ids, blocks, segments)."""
    total = 0
    for value in acc.state()["rows"].values():
        total += value.nbytes
        if value.dtype == object:
            total += sum(len(str(v)) + 49 for v in value.tolist())  # str objects
    return total


def memory_with_qrels(n: int) -> None:
    ref, cand = make(n)
    qrels = tuple((str(q), str(q + 1), 1.0) for q in range(0, 200, 2))
    nn = {"ks": (K,), "max_rows": 100_000, "pairs": 100_000, "seed": 0}
    before = _kept_bytes(
        _fed(NeighbourAgreement(SegmentTable(), ks=(K,), seed=0), ref, cand)
    ) + _kept_bytes(_fed(RetrievalQuality(SegmentTable(), qrels=qrels), ref, cand))
    now = _kept_bytes(_fed(RetrievalQuality(SegmentTable(), qrels=qrels, neighbours=nn), ref, cand))
    print(
        f"{n:>7,} rows with qrels, kept per candidate: before {before / 1e6:6.1f} MB "
        f"(two copies), now {now / 1e6:6.1f} MB (one)"
    )


def run_bare(ref: np.ndarray, cand: np.ndarray) -> tuple[float, float]:
    start = time.perf_counter()
    tops = []
    for emb in (ref, cand):
        unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        n = unit.shape[0]
        step = max(1, (1 << 24) // n)
        top = np.empty((n, K), dtype=np.int64)
        for lo in range(0, n, step):
            sims = unit[lo : lo + step] @ unit.T
            sims[np.arange(sims.shape[0]), np.arange(lo, lo + sims.shape[0])] = -np.inf
            top[lo : lo + step] = np.argpartition(-sims, K - 1, axis=1)[:, :K]
        tops.append(np.sort(top, axis=1))
    both = np.sort(np.concatenate(tops, axis=1), axis=1)
    share = (both[:, 1:] == both[:, :-1]).sum(axis=1) / K
    return time.perf_counter() - start, float(share.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exact-100k", action="store_true", help="run 100k rows exactly")
    args = parser.parse_args()
    exact_times = {}
    for n in (10_000, 20_000):
        ref, cand = make(n)
        t_c, v_c = run_compval(ref, cand, max_rows=100_000)
        t_b, v_b = run_bare(ref, cand)
        exact_times[n] = t_c
        print(
            f"{n:>7,} rows exact: compval {t_c:6.2f} s, bare loop {t_b:6.2f} s, "
            f"ratio {t_c / t_b:4.2f}x; agreement {v_c:.4f} (bare {v_b:.4f})"
        )
    # Quadratic fit through the two points: t = a n^2 (+ the linear part, small).
    a = exact_times[20_000] / 20_000**2
    print(f"100,000 rows exact (extrapolated n^2 from 20k): about {a * 100_000**2:,.0f} s")
    ref, cand = make(100_000)
    if args.exact_100k:
        t_c, v_c = run_compval(ref, cand, max_rows=100_000)
        print(f"100,000 rows exact: compval {t_c:6.1f} s; agreement {v_c:.4f}")
    t_s, v_s = run_compval(ref, cand, max_rows=20_000)
    print(f"100,000 rows, max_rows 20,000 (sampled): compval {t_s:6.2f} s; agreement {v_s:.4f}")
    memory_with_qrels(20_000)


if __name__ == "__main__":
    main()
