"""Benchmark: Poisson table bootstrap vs a naive row-index bootstrap.

Scenario: 1,000,000 labelled rows in 50 segments, 10 classes; each segment's 3-way table
(label, reference prediction, candidate prediction) has about 200 non-empty cells. We want 2,000
bootstrap replicates of every segment's accuracy delta (candidate - reference).

* table: ``poisson_table_counts`` per segment (50 x 200 cells x 2,000 replicates), then the
  delta per replicate from the resampled counts.
* naive: per replicate, draw 1,000,000 row indices with replacement (``rng.choice``) and
  recompute every segment's accuracies with ``bincount``. This is slow, so by default it runs
  ``--naive-replicates`` replicates and extrapolates linearly to 2,000 (printed as such); pass
  ``--naive-replicates 2000`` for the full run.

Run: ``PYTHONPATH=src python benchmarks/bench_resampling.py``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from compval.stats import percentile_interval, poisson_table_counts, stable_hash

ROWS = 1_000_000
SEGMENTS = 50
CLASSES = 10
REPLICATES = 2_000


def make_rows(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, CLASSES, ROWS)
    segment = rng.integers(0, SEGMENTS, ROWS)
    # The reference errs on 10% of rows (any other class); the candidate changes 0.6% of the
    # reference's predictions at random: about 200 non-empty cells per segment.
    wrong = (label + rng.integers(1, CLASSES, ROWS)) % CLASSES
    ref = np.where(rng.uniform(size=ROWS) < 0.9, label, wrong)
    flip = rng.uniform(size=ROWS) < 0.006
    cand = np.where(flip, rng.integers(0, CLASSES, ROWS), ref)
    return {"label": label, "segment": segment, "ref": ref, "cand": cand}


def build_tables(rows: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per segment: sorted cell keys (label, ref, cand) and counts."""
    key = (rows["label"] * CLASSES + rows["ref"]) * CLASSES + rows["cand"]
    tables = []
    for s in range(SEGMENTS):
        cells, counts = np.unique(key[rows["segment"] == s], return_counts=True)
        tables.append((cells, counts))
    return tables


def table_bootstrap(
    tables: list[tuple[np.ndarray, np.ndarray]], seed: int
) -> list[tuple[float, float]]:
    intervals = []
    for s, (cells, counts) in enumerate(tables):
        label, rest = np.divmod(cells, CLASSES * CLASSES)
        ref, cand = np.divmod(rest, CLASSES)
        replicate = poisson_table_counts(
            counts, replicates=REPLICATES, seed=seed, stream=stable_hash(f"segment={s}")
        )
        total = replicate.sum(axis=1)
        delta = (
            replicate @ (cand == label).astype(np.int64)
            - replicate @ (ref == label).astype(np.int64)
        ) / total
        intervals.append(percentile_interval(delta, confidence=0.95))
    return intervals


def naive_bootstrap(rows: dict[str, np.ndarray], replicates: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ref_ok = (rows["ref"] == rows["label"]).astype(np.float64)
    cand_ok = (rows["cand"] == rows["label"]).astype(np.float64)
    deltas = np.empty((replicates, SEGMENTS))
    for r in range(replicates):
        index = rng.choice(ROWS, size=ROWS, replace=True)
        segment = rows["segment"][index]
        n = np.bincount(segment, minlength=SEGMENTS)
        diff = np.bincount(segment, weights=cand_ok[index] - ref_ok[index], minlength=SEGMENTS)
        deltas[r] = diff / n
    return deltas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-replicates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = make_rows(args.seed)
    tables = build_tables(rows)
    cells = [len(c) for c, _ in tables]
    print(f"{ROWS:,} rows, {SEGMENTS} segments, {np.mean(cells):.0f} cells per segment on average")

    start = time.perf_counter()
    table_bootstrap(tables, args.seed)
    table_s = time.perf_counter() - start
    print(f"table bootstrap:  {REPLICATES} replicates x {SEGMENTS} segments in {table_s:.3f} s")

    start = time.perf_counter()
    naive_bootstrap(rows, args.naive_replicates, args.seed)
    measured_s = time.perf_counter() - start
    naive_s = measured_s * REPLICATES / args.naive_replicates
    extrapolated = args.naive_replicates != REPLICATES
    print(
        f"naive bootstrap:  {args.naive_replicates} replicates in {measured_s:.3f} s"
        + (f" -> {naive_s:.1f} s for {REPLICATES} (extrapolated)" if extrapolated else "")
    )
    print(f"ratio naive / table: {naive_s / table_s:.0f}x")


if __name__ == "__main__":
    main()
