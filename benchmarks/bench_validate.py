"""Issue 2 benchmark: compval's wall time against a plain onnxruntime loop.

Validates a float MLP against its dynamic INT8 version on 200,000 rows. The baseline does the
same inference (both models, same batches) and computes both accuracies in a bare loop. Both
run in this process, alternately, and the ratio of medians is printed (aim: below 1.5).

Run: python benchmarks/bench_validate.py [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _models import build_mlp, make_data


def plain_loop(
    fp32: Path, int8: Path, x: np.ndarray, y: np.ndarray, batch: int, threads: int
) -> tuple[float, float]:
    import onnxruntime as ort

    def session(path: Path) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    ref, cand = session(fp32), session(int8)
    correct_ref = correct_cand = 0
    for lo in range(0, x.shape[0], batch):
        xb = x[lo : lo + batch]
        yb = y[lo : lo + batch]
        correct_ref += int((ref.run(None, {"input": xb})[0].argmax(1) == yb).sum())
        correct_cand += int((cand.run(None, {"input": xb})[0].argmax(1) == yb).sum())
    return correct_ref / x.shape[0], correct_cand / x.shape[0]


def compval_run(
    fp32: Path,
    int8: Path,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    threads: int,
    replicates: int,
    discovery: bool,
) -> tuple[float, float]:
    from compval.runner import RunOptions, run_validation
    from compval.spec import spec_from_mapping

    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(fp32), "threads": threads},
            "candidates": [{"name": "int8", "path": str(int8), "threads": threads}],
            "data": {"path": "in-memory", "labels": "y"},
            "batch_size": batch,
            "statistics": {"replicates": replicates, "discovery": discovery},
            "criteria": [{"id": "acc", "metric": "accuracy_score", "max_drop": 0.01}],
        }
    )
    report = run_validation(spec, data=(x, y), options=RunOptions(replicates=replicates))
    acc = next(m for m in report.metrics if m.metric == "accuracy_score" and m.segment is None)
    return float(acc.reference_value or 0), float(acc.candidate_value or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = build_mlp(Path(tmp))
        data = make_data(fp32, rows=args.rows)
        x, y = data["x"], data["y"]
        variants = {
            "plain": None,
            "compval core (no statistics)": (0, False),
            "compval defaults (2000 reps, discovery)": (2000, True),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        # One untimed round first: imports and onnxruntime's first-session costs are paid once
        # per process, not per validation.
        for round_ in range(args.repeats + 1):
            for name, config in variants.items():
                t0 = time.perf_counter()
                if config is None:
                    acc = plain_loop(fp32, int8, x, y, args.batch, args.threads)
                else:
                    acc = compval_run(fp32, int8, x, y, args.batch, args.threads, *config)
                if round_ == 0:
                    continue
                times[name].append(time.perf_counter() - t0)
                print(
                    f"  {name:42s} {times[name][-1]:7.2f} s  "
                    f"accuracy ref={acc[0]:.4f} int8={acc[1]:.4f}"
                )
        base = statistics.median(times["plain"])
        print(
            f"\nrows={args.rows} batch={args.batch} threads={args.threads} repeats={args.repeats}"
        )
        for name, values in times.items():
            med = statistics.median(values)
            print(f"{name:42s} median {med:7.2f} s   ratio to plain loop {med / base:5.2f}")


if __name__ == "__main__":
    main()
