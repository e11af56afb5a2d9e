"""Benchmark of compval's profiler.

1. Overhead: compval's p50 latency of a tiny ONNX model (through ``profile_models``) against
   a bare ``time.perf_counter_ns`` loop around the same ``session.run`` in the same process.
   The two are alternated several times and the median ratio is printed (aim: within 1.05).
2. Stability: the speedup of a narrow MLP over a wide one, measured 5 times with the default
   timing settings; prints each ratio, its 95% interval and the interval's width.

Run: ``PYTHONPATH=src python benchmarks/bench_profiler.py [--threads 1] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.profiling import ProfileSettings, profile_models


def write_mlp(path: Path, width: int, *, inputs: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((inputs, width)) / np.sqrt(inputs)).astype(np.float32)
    w2 = (rng.standard_normal((width, 10)) / np.sqrt(width)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("MatMul", ["a", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def bare_p50_ms(session: object, feed: dict[str, np.ndarray], iterations: int) -> float:
    run = session.run  # type: ignore[attr-defined]
    for _ in range(5):
        run(None, feed)
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        run(None, feed)
        t1 = time.perf_counter_ns()
        samples.append(t1 - t0)
    return statistics.median(samples) / 1e6


def overhead(tmp: Path, threads: int, repeats: int) -> None:
    path = write_mlp(tmp / "tiny.onnx", 32)
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    settings = ProfileSettings(
        batch_sizes=(1,),
        concurrency=(),
        warmup=5,
        min_iterations=3000,
        min_duration_s=0.3,
        rounds=10,
        measure_memory=False,
        threads=threads,
    )
    ratios = []
    with OnnxRuntimeAdapter(path, name="tiny", threads=threads) as adapter:
        for _ in range(repeats):
            result = profile_models(adapter, {}, {"x": x}, settings=settings)
            stats = result.models["tiny"].latency[0]
            bare = bare_p50_ms(adapter.session, {"x": x}, stats.iterations)
            ratios.append(stats.p50_ms / bare)
            print(
                f"  compval p50 {stats.p50_ms * 1000:8.2f} us ({stats.iterations} runs)   "
                f"bare p50 {bare * 1000:8.2f} us   ratio {stats.p50_ms / bare:.3f}"
            )
    print(f"overhead: median ratio compval/bare = {statistics.median(ratios):.3f} (aim <= 1.05)")


def stability(tmp: Path, threads: int, repeats: int) -> None:
    wide = write_mlp(tmp / "wide.onnx", 1024, seed=1)
    narrow = write_mlp(tmp / "narrow.onnx", 256, seed=2)
    sample = {"x": np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)}
    settings = ProfileSettings(
        batch_sizes=(1, 32), concurrency=(), measure_memory=False, threads=threads
    )
    widths: dict[int, list[float]] = {1: [], 32: []}
    with (
        OnnxRuntimeAdapter(wide, name="wide", threads=threads) as ref,
        OnnxRuntimeAdapter(narrow, name="narrow", threads=threads) as cand,
    ):
        for run in range(repeats):
            start = time.perf_counter()
            result = profile_models(ref, {"narrow": cand}, sample, settings=settings, seed=run)
            took = time.perf_counter() - start
            for s in result.speedups:
                widths[s.batch_size].append(s.ci_high - s.ci_low)
                print(
                    f"  run {run + 1} batch {s.batch_size:3d}: speedup {s.ratio:6.3f}  "
                    f"95% CI [{s.ci_low:6.3f}, {s.ci_high:6.3f}]  width {s.ci_high - s.ci_low:.3f}"
                    f"  ({took:.1f} s for the run)"
                )
    for size, values in widths.items():
        print(
            f"stability batch {size}: CI width median {statistics.median(values):.3f}, "
            f"max {max(values):.3f} over {repeats} runs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"1. overhead (threads={args.threads})")
        overhead(Path(tmp), args.threads, args.repeats)
        print(f"2. speedup interval stability (threads={args.threads}, default settings)")
        stability(Path(tmp), args.threads, args.repeats)


if __name__ == "__main__":
    main()
