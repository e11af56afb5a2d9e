"""The adapter conformance suite (test_conformance.py) for EndpointAdapter, on a live server.

The suite's tiny linear model (``x @ W + b``, input ``input``, output ``logits``) is served by
KServe's ModelServer (deploy/kserve/serve_onnx.py) on 127.0.0.1 for this module; every test of
``TestAdapterConformance`` runs against it. Only the info test differs: a served model runs on
the server (``device`` is ``remote``) and its runtime version is the server's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_conformance import TestAdapterConformance as _Conformance

from compval.adapters import AdapterInfo, EndpointAdapter, ModelAdapter

pytest.importorskip("kserve")

SERVER = Path(__file__).resolve().parents[2] / "deploy" / "kserve" / "serve_onnx.py"


def _linear_onnx(path: Path, w: np.ndarray, b: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", w.shape[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", w.shape[1]])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def linear_server(
    tmp_path_factory: pytest.TempPathFactory, weights: tuple[np.ndarray, np.ndarray]
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("conformance")
    model = _linear_onnx(folder / "linear.onnx", *weights)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = folder / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(port), f"linear={model}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"KServe server did not start: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield f"{base}/v2/models/linear"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TestEndpointConformance(_Conformance):
    @pytest.fixture
    def case(
        self, linear_server: str, weights: tuple[np.ndarray, np.ndarray]
    ) -> tuple[ModelAdapter, str, Callable[[np.ndarray], np.ndarray], str, str]:
        w, b = weights

        def linear(x: np.ndarray) -> np.ndarray:
            return x.astype(np.float64) @ w.astype(np.float64) + b.astype(np.float64)

        return EndpointAdapter(linear_server, name="m"), "logits", linear, "endpoint", "kserve"

    def test_info_is_populated(self, case: Any) -> None:
        adapter, *_ = case
        with adapter:
            info = adapter.info()
        assert isinstance(info, AdapterInfo)
        assert info.runtime == adapter.runtime == "endpoint"
        assert info.runtime_version.startswith("kserve ")
        assert info.device == "remote"
        assert info.model_id == adapter.url
