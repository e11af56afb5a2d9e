"""Benchmark: validation through a local KServe server against the same validation on the file.

A float MLP and its dynamic INT8 version (benchmarks/_models.py) are served by KServe's
ModelServer (deploy/kserve/serve_onnx.py, ``--server-workers`` uvicorn workers, one ONNX
Runtime thread per request) on 127.0.0.1. The same spec is run with the INT8 candidate as the
local file, and as the endpoint ``/v2/models/int8`` with JSON and with binary tensors, each at
``max_in_flight`` 1, 2 and 4: the paired run keeps that many batches in flight (one request
per batch; cross-batch concurrency). Printed: wall time (median of ``--repeats``), rows/s, the
ratio to the file's time, the speed-up over ``max_in_flight`` 1, and whether the report's
metrics are identical to the file's. With ``--request-rows N`` (> 0), also each batch split
into N-row requests at ``max_in_flight`` 1, 2 and 4 (metrics differ for a batch-dependent
model such as dynamic INT8). ``--server-latency-ms L`` makes the server wait L ms per request
without using a CPU (the ``slow`` fault: ``asyncio.sleep``), as a remote server's network and
queueing add: what batches in flight hide when the client's and the server's CPUs are not the
bottleneck (on two shared cores they usually are).

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


def _start(
    models: dict[str, Path], workers: int, latency_ms: float
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, str(SERVER), "--port", str(port), "--workers", str(workers)]
    cmd += [f"{name}={path}" for name, path in models.items()]
    if latency_ms > 0:
        cmd += [a for name in models for a in ("--fault", f"{name}=slow:{latency_ms / 1e3:g}")]
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
    parser.add_argument("--request-rows", type=int, default=0, help="0: no split requests")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--server-latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    levels = (1, 2, 4)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fp32, int8 = build_mlp(folder)
        np.savez(folder / "data.npz", **make_data(fp32, rows=args.rows))
        proc, base = _start({"int8": int8}, args.server_workers, args.server_latency_ms)
        try:
            url = f"{base}/v2/models/int8"
            # Warm-up: the first run pays imports and the server's first requests.
            _timed(_spec(folder, {"endpoint": url}, args.batch_size), 1)
            local = _spec(folder, {"path": str(int8), "threads": 1}, args.batch_size)
            local_s, local_m = _timed(local, args.repeats)
            print(
                f"rows {args.rows:,}, batch {args.batch_size}, server workers "
                f"{args.server_workers}, added server latency {args.server_latency_ms:g} ms, "
                f"median of {args.repeats}"
            )
            rate = args.rows / local_s
            print(f"local file                 : {local_s:7.3f} s ({rate:9,.0f} rows/s)")
            for binary in (False, True):
                label = "binary" if binary else "JSON  "
                first = None
                for k in levels:
                    knobs: dict[str, Any] = {"endpoint": url, "binary_data": binary}
                    knobs["max_in_flight"] = k
                    s, m = _timed(_spec(folder, knobs, args.batch_size), args.repeats)
                    first = first or s
                    print(
                        f"KServe v2 {label} in flight {k}: {s:7.3f} s ({args.rows / s:9,.0f} "
                        f"rows/s); endpoint/file {s / local_s:5.2f}x; speed-up over 1 in "
                        f"flight {first / s:4.2f}x; metrics identical to the file's: {m == local_m}"
                    )
                if args.request_rows > 0:
                    for k in levels:
                        split = {
                            "endpoint": url,
                            "binary_data": binary,
                            "request_rows": args.request_rows,
                            "max_in_flight": k,
                        }
                        s, m = _timed(_spec(folder, split, args.batch_size), args.repeats)
                        print(
                            f"  {label} {args.request_rows}-row requests, max_in_flight {k}: "
                            f"{s:7.3f} s ({args.rows / s:9,.0f} rows/s); identical: {m == local_m}"
                        )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
