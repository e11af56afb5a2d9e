"""Issue 3 benchmark: what the statistics cost.

1,000,000 rows, 50 segments, 2,000 bootstrap replicates. Prints compval's wall time with the
statistics (intervals on every metric in every segment, paired and distribution tests,
weak-slice discovery) as a ratio to the same run without them (replicates 0, no discovery),
both in this process, alternately; and the time of a naive index-resampling bootstrap of the
overall accuracy delta alone on the same predictions (measured on a few replicates and
scaled to 2,000, since running it in full takes minutes).

Run: python benchmarks/bench_statistics.py [--rows 1000000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _models import build_mlp, make_data


def run(
    fp32: Path, int8: Path, data: dict[str, np.ndarray], *, replicates: int, discovery: bool
) -> float:
    from compval.engine import RunOptions, run_validation
    from compval.spec import spec_from_mapping

    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(fp32), "threads": 1},
            "candidates": [{"name": "int8", "path": str(int8), "threads": 1}],
            "data": {"path": "in-memory", "labels": "y", "segments": ["segment"]},
            "batch_size": 1024,
            "statistics": {"replicates": replicates, "discovery": discovery},
            "criteria": [
                {"id": "acc", "metric": "accuracy_score", "max_drop": 0.01},
                {
                    "id": "acc-seg",
                    "metric": "accuracy_score",
                    "max_drop": 0.03,
                    "segment": "segment=*",
                },
            ],
        }
    )
    from compval.data import ArrayDataset

    dataset = ArrayDataset(data["x"], data["y"], segments={"segment": data["segment"]})
    t0 = time.perf_counter()
    run_validation(spec, data=dataset, options=RunOptions(replicates=replicates))
    return time.perf_counter() - t0


def naive_bootstrap_s(
    ref_ok: np.ndarray, cand_ok: np.ndarray, *, replicates: int, measured: int
) -> float:
    rng = np.random.default_rng(0)
    n = ref_ok.size
    t0 = time.perf_counter()
    for _ in range(measured):
        idx = rng.integers(0, n, n)
        _ = cand_ok[idx].mean() - ref_ok[idx].mean()
    return (time.perf_counter() - t0) / measured * replicates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = build_mlp(Path(tmp), hidden=128)
        data = make_data(fp32, rows=args.rows, segments=args.segments)
        with_stats, without = [], []
        for _ in range(args.repeats):
            without.append(run(fp32, int8, data, replicates=0, discovery=False))
            with_stats.append(run(fp32, int8, data, replicates=2000, discovery=True))
            print(f"  without {without[-1]:7.2f} s   with {with_stats[-1]:7.2f} s")
        a, b = statistics.median(without), statistics.median(with_stats)
        import onnxruntime as ort

        preds = {}
        for name, path in (("ref", fp32), ("cand", int8)):
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            preds[name] = np.concatenate(
                [
                    sess.run(None, {"input": data["x"][i : i + 65536]})[0].argmax(1)
                    for i in range(0, args.rows, 65536)
                ]
            )
        naive = naive_bootstrap_s(
            preds["ref"] == data["y"], preds["cand"] == data["y"], replicates=2000, measured=10
        )
        print(f"\nrows={args.rows} segments={args.segments} replicates=2000 repeats={args.repeats}")
        print(f"compval without statistics: median {a:.2f} s")
        print(
            f"compval with statistics:    median {b:.2f} s   ratio {b / a:.3f}   "
            f"(statistics cost {b - a:.2f} s)"
        )
        print(
            "naive index bootstrap of the overall accuracy delta only: "
            f"{naive:.1f} s (scaled from 10 replicates)"
        )


if __name__ == "__main__":
    main()
