"""Tiny models for the adapter tests, all computing ``x @ W + b`` with the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

N_FEATURES = 4
N_OUTPUTS = 3


@pytest.fixture(scope="session")
def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240501)
    w = rng.normal(size=(N_FEATURES, N_OUTPUTS)).astype(np.float32)
    b = rng.normal(size=N_OUTPUTS).astype(np.float32)
    return w, b


@pytest.fixture(scope="session")
def batch() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(6, N_FEATURES)).astype(np.float32)


def write_linear_onnx(
    path: Path, w: np.ndarray, b: np.ndarray, *, with_softmax_first: bool = False
) -> Path:
    """Write a MatMul+Add ONNX graph with input ``input`` float32[N, 4] and output ``logits``.

    With ``with_softmax_first`` the graph declares two outputs, ``probabilities`` first.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", w.shape[1]])]
    if with_softmax_first:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
        outputs.insert(
            0, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", w.shape[1]])
        )
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", w.shape[0]])],
        outputs,
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the 'onnx' extra allows
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_path(tmp_path: Path, weights: tuple[np.ndarray, np.ndarray]) -> Path:
    w, b = weights
    return write_linear_onnx(tmp_path / "linear.onnx", w, b)


def make_torch_linear(w: np.ndarray, b: np.ndarray):  # type: ignore[no-untyped-def]
    import torch

    module = torch.nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w.T.copy()))
        module.bias.copy_(torch.from_numpy(b.copy()))
    return module


@pytest.fixture
def torch_linear(weights: tuple[np.ndarray, np.ndarray]):  # type: ignore[no-untyped-def]
    return make_torch_linear(*weights)


@pytest.fixture(scope="session")
def logistic_regression():  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    x = rng.normal(size=(120, N_FEATURES))
    y = rng.integers(0, N_OUTPUTS, size=120)
    return LogisticRegression(max_iter=500).fit(x, y)


@pytest.fixture(scope="session")
def write_onnx():  # type: ignore[no-untyped-def]
    """The ONNX writer, for tests that need a variant of the linear graph."""
    return write_linear_onnx


@pytest.fixture(scope="session")
def torch_linear_factory():  # type: ignore[no-untyped-def]
    return make_torch_linear
