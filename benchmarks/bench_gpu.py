"""Benchmark: bf16 and fp16 candidates of a transformer encoder against fp32, on a GPU.

Scenario (issue 14): a MiniLM-sized encoder (token embedding, 6 layers, 384 wide, 6 heads,
feed-forward 1536, mean pooling) on 128-token rows, batch 1024 (``--cpu``: a 2-layer, 128-wide
model on 32-token rows, batch 32, only to check that the script runs). Random weights with a
fixed seed: the point is the arithmetic, not what the model knows.

* fidelity: cosine similarity of each candidate's embeddings with the fp32 ones, per row
  (mean and minimum), computed with numpy here;
* harness overhead: rows per second of ``TorchAdapter.predict`` (numpy in, host-to-device
  copy, module, device-to-host copy, numpy out; compval's input checks) against a bare loop
  doing the same copies and call, both synchronized by the copy back to the host. Target:
  ratio <= 1.1;
* ``run_validation``: the whole validation (fp32 reference, bf16 and fp16 candidates from
  ``from: reference``, generic task) against the bare forward passes of the three models.

Timings are medians of ``--repeats`` passes over the rows. Prints ratios; asserts nothing.

Run: ``PYTHONPATH=src python benchmarks/bench_gpu.py`` (or ``--cpu``); benchmarks/gpu_check.sh
runs it with the GPU tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

VOCAB = 30522


def build_encoder(torch: Any, *, layers: int, width: int, heads: int, seed: int) -> Any:
    """A BERT-like encoder from torch.nn: ids [batch, tokens] -> mean-pooled [batch, width]."""
    torch.manual_seed(seed)

    class Encoder(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, width)
            layer = torch.nn.TransformerEncoderLayer(
                width, heads, dim_feedforward=4 * width, batch_first=True, activation="gelu"
            )
            self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

        def forward(self, ids: Any) -> Any:
            return self.encoder(self.embed(ids)).mean(dim=1)

    return Encoder().eval()


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: kernels chosen, memory pools filled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (a smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=None, help="batches per pass")
    args = parser.parse_args()

    import torch

    from compval.adapters import TorchAdapter
    from compval.engine import run_validation
    from compval.spec import spec_from_mapping

    if not args.cpu and not torch.cuda.is_available():
        print(
            "bench_gpu: no CUDA device visible to torch; run on a GPU machine, or pass --cpu "
            "for a smoke run of this script.",
            file=sys.stderr,
        )
        return 2
    device = "cpu" if args.cpu else "cuda"
    if args.cpu:
        layers, width, heads, tokens, batch = 2, 128, 4, 32, 32
        batches = args.batches or 4
    else:
        layers, width, heads, tokens, batch = 6, 384, 6, 128, 1024
        batches = args.batches or 16
    rows = batch * batches
    ids = np.random.default_rng(0).integers(0, VOCAB, size=(rows, tokens), dtype=np.int64)
    chunks = [ids[i : i + batch] for i in range(0, rows, batch)]
    module = build_encoder(torch, layers=layers, width=width, heads=heads, seed=0)
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(
        f"device: {where}; torch {torch.__version__}; encoder {layers}x{width}, {tokens} tokens, "
        f"batch {batch}, {rows:,} rows, median of {args.repeats} passes"
    )

    reference = TorchAdapter(module, name="fp32", input_names=("ids",), input_dtype=np.int64)
    models = {
        "fp32": reference.derived(name="fp32", device=device),
        "bf16": reference.derived(name="bf16", dtype="bfloat16", device=device),
        "fp16": reference.derived(name="fp16", dtype="float16", device=device),
    }
    outputs: dict[str, np.ndarray] = {}
    bare_total = 0.0
    print(f"{'model':6} {'compval rows/s':>15} {'bare rows/s':>12} {'ratio':>6}  fidelity vs fp32")
    for name, adapter in models.items():
        with adapter:
            net = adapter.module
            dtype = None if adapter.dtype is None else getattr(torch, adapter.dtype)

            def harness(adapter: TorchAdapter = adapter) -> None:
                for chunk in chunks:
                    adapter.predict({"ids": chunk})

            def bare(net: Any = net, dtype: Any = dtype) -> None:
                with torch.inference_mode():
                    for chunk in chunks:
                        out = net(torch.from_numpy(chunk).to(device))
                        out.float().cpu().numpy() if dtype is not None else out.cpu().numpy()

            t_harness = _median_s(harness, args.repeats)
            t_bare = _median_s(bare, args.repeats)
            bare_total += t_bare
            outputs[name] = np.concatenate(
                [adapter.predict({"ids": c})["output"] for c in chunks]
            ).astype(np.float64)
        fidelity = ""
        if name != "fp32":
            a, b = outputs["fp32"], outputs[name]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            fidelity = f"cosine mean {cos.mean():.6f}, min {cos.min():.6f}"
        print(
            f"{name:6} {rows / t_harness:15,.0f} {rows / t_bare:12,.0f} "
            f"{t_harness / t_bare:6.3f}  {fidelity}"
        )
        if device == "cuda":
            torch.cuda.empty_cache()

    spec = spec_from_mapping(
        {
            "version": 1,
            "task": {"type": "generic"},
            "reference": {"name": "fp32"},
            "candidates": [
                {"name": "bf16", "from": "reference", "dtype": "bfloat16", "device": device},
                {"name": "fp16", "from": "reference", "dtype": "float16", "device": device},
            ],
            "data": {"path": "in-memory"},
            "batch_size": batch,
            "statistics": {"replicates": 0},
        }
    )
    gpu_reference = TorchAdapter(
        module, name="fp32", input_names=("ids",), input_dtype=np.int64, device=device
    )
    start = time.perf_counter()
    report = run_validation(spec, reference=gpu_reference, data=ids)
    t_run = time.perf_counter() - start
    print(
        f"run_validation (fp32 + bf16 + fp16, {rows:,} rows): {t_run:.2f} s; bare forward passes "
        f"of the three models {bare_total:.2f} s; ratio {t_run / bare_total:.2f} "
        f"(includes loading, scoring and the report; passed={report.passed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
