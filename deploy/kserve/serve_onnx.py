"""Serve ONNX model files with KServe's ModelServer (REST: v1 ``:predict`` and v2 / OIP).

A small ``kserve.Model`` wrapper around an ONNX Runtime session, for trying compval's endpoint
adapter locally or in a canary (docs/serving.md)::

    python deploy/kserve/serve_onnx.py --port 8080 int8=models/int8.onnx fp32=models/fp32.onnx
    compval compare models/fp32.onnx http://127.0.0.1:8080/v2/models/int8 --data data.npz

The v2 metadata (``GET /v2/models/<name>``) declares the session's inputs and outputs, so
compval checks the data against them. A ZipMap output (skl2onnx's default for classifier
probabilities: one ``{class: score}`` map per row) is served as a (rows, classes) FP32 tensor
in the first row's key order, which is how compval reads such an output from the file.

``--fault NAME=KIND[:ARG]`` makes a model misbehave on purpose, to test clients (compval's
tests do): ``unavailable:N`` answers 503 to each N-th inference request, ``slow:S`` sleeps S
seconds, ``short`` drops the last row of every answer, ``error`` raises (HTTP 500 with the
error text).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from typing import Any

import numpy as np

ONNX_TO_OIP = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}
NUMPY_TO_OIP = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}


def _dims(shape: Any) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in (shape or [])]


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = list(value[0])  # ZipMap: one {class: score} per row
        return np.asarray([[row[k] for k in keys] for row in value], dtype=np.float32)
    return np.asarray(value)


def build_model(name: str, path: str, fault: str | None = None) -> Any:
    """A ready ``kserve.Model`` named ``name`` serving the ONNX file at ``path``."""
    import kserve
    import onnxruntime as ort
    from kserve import InferOutput, InferRequest, InferResponse

    class OnnxModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name)
            self.calls = itertools.count(1)
            self.load()

        def load(self) -> bool:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(
                path, sess_options=options, providers=["CPUExecutionProvider"]
            )
            self.ready = True
            return True

        def get_input_types(self) -> list[dict[str, Any]]:
            return [
                {"name": i.name, "datatype": ONNX_TO_OIP[i.type], "shape": _dims(i.shape)}
                for i in self.session.get_inputs()
            ]

        def get_output_types(self) -> list[dict[str, Any]]:
            return [
                {
                    "name": o.name,
                    "datatype": ONNX_TO_OIP.get(o.type, "FP32"),
                    "shape": _dims(o.shape),
                }
                for o in self.session.get_outputs()
            ]

        async def predict(
            self, payload: Any, headers: Any = None, response_headers: Any = None
        ) -> Any:
            await self._fault()
            names = [o.name for o in self.session.get_outputs()]
            if isinstance(payload, InferRequest):
                feed = {i.name: i.as_numpy() for i in payload.inputs}
                # On a worker thread: ONNX Runtime releases the GIL, so concurrent requests
                # overlap instead of queueing behind the event loop.
                raw = await asyncio.to_thread(self.session.run, None, feed)
                results = [_as_array(r) for r in raw]
                if fault == "short":
                    results = [r[:-1] for r in results]
                outputs = [
                    InferOutput(n, list(r.shape), NUMPY_TO_OIP[str(r.dtype)], r)
                    for n, r in zip(names, results, strict=True)
                ]
                # Outputs requested with the binary tensor extension come back as raw bytes.
                return InferResponse(
                    response_id=payload.id or "",
                    model_name=self.name,
                    infer_outputs=outputs,
                    requested_outputs=payload.request_outputs,
                    use_binary_outputs=payload.use_binary_outputs,
                )
            # v1: {"instances": rows} -> {"predictions": the first output}
            first = self.session.get_inputs()[0]
            dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(first.type)
            x = np.asarray(payload["instances"], dtype=dtype)
            raw = await asyncio.to_thread(self.session.run, None, {first.name: x})
            result = _as_array(raw[0])
            return {"predictions": result.tolist()}

        async def _fault(self) -> None:
            if fault is None:
                return
            kind, _, arg = fault.partition(":")
            if kind == "unavailable" and next(self.calls) % int(arg or 2) == 0:
                raise kserve.errors.ModelNotReady(self.name, "Injected fault: try again.")
            if kind == "slow":
                await asyncio.sleep(float(arg or 1))
            if kind == "error":
                raise ValueError("injected failure: the model cannot run this batch")

    return OnnxModel()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, build the models and run the server until it is stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=KIND[:ARG]")
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL.onnx")
    args = parser.parse_args(argv)
    faults = dict(f.split("=", 1) for f in args.fault)
    sys.argv = sys.argv[:1]  # kserve parses sys.argv itself when imported
    import kserve

    models = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        models.append(build_model(name, path, faults.get(name)))
    kserve.ModelServer(
        http_port=args.port, enable_grpc=False, workers=args.workers, enable_latency_logging=False
    ).start(models)


if __name__ == "__main__":
    main()
