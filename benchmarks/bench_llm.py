"""Benchmark: ``task: causal_lm`` throughput (tokens/s) and peak memory.

Scenario: a randomly initialised GPT-2 (transformers; 2 layers, 128 wide, vocabulary 8,192)
exported to ONNX (fp32 reference) and quantized with ONNX Runtime's ``quantize_dynamic``
(INT8 candidate); pre-tokenized sequences of 128 random tokens in a .npz (input_ids,
attention_mask; the last quarter of each row is padding), batch size 8.

* compval: ``run_validation`` with ``task: causal_lm`` (per-token KL, top-1, perplexity,
  segments per length and position bucket, 200 bootstrap replicates, report assembly).
* bare: a loop that runs both ONNX sessions on the same batches and computes the same
  per-token KL in numpy (float64 log-softmax of both logits, KL over real tokens), summing it.

Ratio = compval time / bare time (target <= 1.2). Peak memory: each run in a child process,
``ru_maxrss`` for 64 and 512 sequences; bounded memory means the two are close (nothing of
size rows x seq x vocab is kept past a batch).

Run: ``PYTHONPATH=src python benchmarks/bench_llm.py [--sequences 256]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

VOCAB = 8192
SEQ = 128
BATCH = 8


def build(folder: Path) -> None:
    """fp32 and int8 ONNX models in ``folder`` (once)."""
    if (folder / "int8.onnx").exists():
        return
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=128, n_layer=2, n_head=4)
    ).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            return out.logits

    example = (torch.ones((2, 4), dtype=torch.int64), torch.ones((2, 4), dtype=torch.int64))
    axes = {0: "b", 1: "s"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(),
            example,
            str(folder / "fp32.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
            dynamo=False,
        )
    quantize_dynamic(folder / "fp32.onnx", folder / "int8.onnx", weight_type=QuantType.QInt8)


def data(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(n)
    ids = rng.integers(0, VOCAB, size=(n, SEQ), dtype=np.int64)
    mask = np.ones((n, SEQ), dtype=np.int64)
    mask[:, SEQ - SEQ // 4 :] = 0
    ids[mask == 0] = 0
    path = folder / f"tokens_{n}.npz"
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def spec(folder: Path, n: int) -> Path:
    path = folder / f"spec_{n}.yaml"
    path.write_text(
        "version: 1\ntask: causal_lm\nreference: {name: fp32, path: fp32.onnx}\n"
        "candidates: [{name: int8, path: int8.onnx}]\n"
        f"data: {{path: tokens_{n}.npz, features: [input_ids, attention_mask]}}\n"
        f"batch_size: {BATCH}\nstatistics: {{replicates: 200}}\n"
    )
    return path


def run_compval(folder: Path, n: int) -> float:
    from compval.engine import run_validation

    start = time.perf_counter()
    run_validation(spec(folder, n))
    return time.perf_counter() - start


def run_bare(folder: Path, n: int) -> float:
    import onnxruntime as ort

    ref = ort.InferenceSession(str(folder / "fp32.onnx"))
    cand = ort.InferenceSession(str(folder / "int8.onnx"))
    arrays = np.load(data(folder, n))
    ids, mask = arrays["input_ids"], arrays["attention_mask"]
    start = time.perf_counter()
    total = 0.0
    for b in range(0, n, BATCH):
        feed = {"input_ids": ids[b : b + BATCH], "attention_mask": mask[b : b + BATCH]}
        lr = ref.run(None, feed)[0][:, :-1].astype(np.float64)
        lq = cand.run(None, feed)[0][:, :-1].astype(np.float64)
        lr -= lr.max(-1, keepdims=True)
        lr -= np.log(np.exp(lr).sum(-1, keepdims=True))
        lq -= lq.max(-1, keepdims=True)
        lq -= np.log(np.exp(lq).sum(-1, keepdims=True))
        kl = (np.exp(lr) * (lr - lq)).sum(-1)
        keep = (feed["attention_mask"][:, 1:] & feed["attention_mask"][:, :-1]).astype(bool)
        total += float(kl[keep].sum())
    return time.perf_counter() - start


def child(folder: Path, n: int, kind: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--folder", str(folder), "--sequences", str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["compval", "bare"])
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.child:
        folder = Path(args.folder)
        data(folder, args.sequences)
        seconds = (run_compval if args.child == "compval" else run_bare)(folder, args.sequences)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_mib": peak}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder)
        n = args.sequences
        tokens = n * (SEQ - SEQ // 4 - 1)
        best = {"compval": float("inf"), "bare": float("inf")}
        for _ in range(args.repeats):  # interleaved, best of: the machine is shared
            for kind in best:
                best[kind] = min(best[kind], child(folder, n, kind)["seconds"])
        print(f"{n} sequences x {SEQ} tokens (batch {BATCH}), {tokens:,} predicted tokens")
        for kind, seconds in best.items():
            print(f"  {kind:8s} {seconds:6.2f} s  {tokens / seconds:10,.0f} tokens/s")
        print(f"  ratio compval / bare: {best['compval'] / best['bare']:.2f} (target <= 1.2)")
        for m in (64, 512):
            peak = child(folder, m, "compval")["peak_mib"]
            print(f"  peak RSS, {m:4d} sequences: {peak:7.1f} MiB")


if __name__ == "__main__":
    main()
