"""Benchmark: validation through a local KServe server against the same validation on the file.

A float MLP and its dynamic INT8 version (benchmarks/_models.py) are served by KServe's
ModelServer (deploy/kserve/serve_onnx.py, one worker, one ONNX Runtime thread per request) on
127.0.0.1. The same spec is run twice: the INT8 candidate as the local file, and as the
endpoint ``/v2/models/int8``. Printed: both wall times, their ratio, whether the reports'
metrics are identical, and the endpoint's validation throughput with each batch split into
requests of ``--request-rows`` rows sent 1, 2 and 4 at a time (``max_in_flight``).

Run: ``PYTHONPATH=src python benchmarks/bench_endpoint.py [--rows 20000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _models import build_mlp, make_data

from compval.engine import run_validation
from compval.spec import AcceptanceSpec

SERVER = Path(__file__).resolve().parents[1] / "deploy" / "kserve" / "serve_onnx.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(models: dict[str, Path]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, str(SERVER), "--port", str(port)]
    cmd += [f"{name}={path}" for name, path in models.items()]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the KServe server did not start within 60 s")


def _spec(folder: Path, candidate: dict[str, Any], batch: int) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(folder / "fp32.onnx"), "threads": 1},
            "candidates": [{"name": "int8", **candidate}],
            "data": {"path": str(folder / "data.npz"), "labels": "y"},
            "batch_size": batch,
            "statistics": {"replicates": 0, "discovery": False},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.02}],
        }
    )


def _timed(spec: AcceptanceSpec, repeats: int) -> tuple[float, list[str]]:
    times, metrics = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        report = run_validation(spec)
        times.append(time.perf_counter() - start)
        metrics = sorted(json.dumps(m, sort_keys=True) for m in report.to_dict()["metrics"])
    return statistics.median(times), metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--request-rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fp32, int8 = build_mlp(folder)
        np.savez(folder / "data.npz", **make_data(fp32, rows=args.rows))
        proc, base = _start({"int8": int8})
        try:
            url = f"{base}/v2/models/int8"
            local = _spec(folder, {"path": str(int8), "threads": 1}, args.batch_size)
            local_s, local_m = _timed(local, args.repeats)
            print(f"rows {args.rows:,}, batch {args.batch_size}, median of {args.repeats}")
            print(f"local file        : {local_s:7.3f} s ({args.rows / local_s:9,.0f} rows/s)")
            for binary in (False, True):
                label = "KServe v2 " + ("binary" if binary else "JSON  ")
                knobs: dict[str, Any] = {"endpoint": url, "binary_data": binary}
                served_s, served_m = _timed(_spec(folder, knobs, args.batch_size), args.repeats)
                print(
                    f"{label}  : {served_s:7.3f} s ({args.rows / served_s:9,.0f} rows/s); "
                    f"ratio endpoint/local {served_s / local_s:.2f}x; metrics identical to "
                    f"the file's: {served_m == local_m}"
                )
                for k in (1, 2, 4):
                    split = {**knobs, "request_rows": args.request_rows, "max_in_flight": k}
                    s, m = _timed(_spec(folder, split, args.batch_size), args.repeats)
                    print(
                        f"  max_in_flight {k} ({args.request_rows}-row requests): {s:7.3f} s "
                        f"({args.rows / s:9,.0f} rows/s); identical: {m == local_m}"
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
