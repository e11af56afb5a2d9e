from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.errors import ProfilingError
from compval.profiling import OpUse, load_operator_set, model_stats
from compval.types import Array

Clock = Callable[[], int]
MakeFake = Callable[..., Any]


def test_onnx_size_params_and_sparsity(onnx_pair: tuple[Path, Path]) -> None:
    dense_path, pruned_path = onnx_pair
    with (
        OnnxRuntimeAdapter(dense_path, name="dense") as dense,
        OnnxRuntimeAdapter(pruned_path, name="pruned") as pruned,
    ):
        d = model_stats(dense)
        p = model_stats(pruned, threads=1)
    assert d.kind == p.kind == "onnx"
    assert d.parameter_count == p.parameter_count == 8 * 6 + 6
    assert d.weight_sparsity == 0.0
    assert p.weight_sparsity == 0.5  # the bias (1-D) is not a weight matrix
    # Pruned but stored dense: no smaller on disk.
    assert p.size_bytes == d.size_bytes == pruned_path.stat().st_size
    assert p.size_mb == pytest.approx(pruned_path.stat().st_size / 2**20)
    assert d.load_time_ms is not None and d.load_time_ms > 0
    assert d.operators == (
        OpUse("ai.onnx", "Add", 13),
        OpUse("ai.onnx", "MatMul", 13),
        OpUse("ai.onnx", "Relu", 13),
    )
    assert d.path == str(dense_path)
    assert d.notes == ()


def test_external_data_counts_toward_size(
    tmp_path: Path, linear_onnx: Callable[..., Path], dense_weight: Array
) -> None:
    import onnx

    path = linear_onnx(tmp_path / "inline.onnx", np.tile(dense_weight, (64, 64)))
    model = onnx.load(str(path))
    external = tmp_path / "ext.onnx"
    onnx.save(
        model, str(external), save_as_external_data=True, location="ext.bin", size_threshold=0
    )
    with OnnxRuntimeAdapter(external, name="ext") as adapter:
        stats = model_stats(adapter, measure_load_time=False)
    assert stats.size_bytes == external.stat().st_size + (tmp_path / "ext.bin").stat().st_size
    assert stats.parameter_count == 512 * 384 + 384  # weight + bias
    assert stats.load_time_ms is None


def test_operator_check_lists_ops_the_target_lacks(
    tmp_path: Path, linear_onnx: Callable[..., Path], dense_weight: Array
) -> None:
    path = linear_onnx(tmp_path / "m.onnx", dense_weight, extra_op="Softsign")
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        stats = model_stats(adapter, measure_load_time=False)
    assert stats.operators is not None
    only_matmul = load_operator_set(_write(tmp_path / "ops.txt", "ai.onnx;13;MatMul,Add\n"))
    assert only_matmul.unsupported(stats.operators) == [
        "ai.onnx:Relu (opset 13)",
        "ai.onnx:Softsign (opset 13)",
    ]
    # onnxruntime's CPU EP has a Softsign kernel: nothing is missing on ort_mobile.
    assert stats.nodes is not None
    assert load_operator_set("ort_mobile").check(stats.nodes) == []
    assert [(f.node, f.reasons) for f in only_matmul.check(stats.nodes)] == [
        ("<Relu #2>", ("op_type",)),
        ("<Softsign #3>", ("op_type",)),
    ]


def test_nodes_carry_inferred_types_only_when_asked(
    tmp_path: Path, linear_onnx: Callable[..., Path], dense_weight: Array
) -> None:
    path = linear_onnx(tmp_path / "m.onnx", dense_weight)
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        typed = model_stats(adapter, measure_load_time=False, infer_types=True)
        plain = model_stats(adapter, measure_load_time=False)
    assert typed.nodes is not None and plain.nodes is not None
    matmul = typed.nodes[0]
    assert (matmul.name, matmul.domain, matmul.op_type, matmul.opset) == (
        "<MatMul #0>", "ai.onnx", "MatMul", 13,
    )  # fmt: skip
    assert matmul.input_types == ("tensor(float)", "tensor(float)")
    assert matmul.output_types == ("tensor(float)",)
    assert plain.nodes[0].input_types == (None, None)
    assert [n.op for n in plain.nodes] == [n.op for n in typed.nodes]


def test_operators_inside_subgraphs_are_found(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    def branch(op: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node(op, ["x"], ["out"])],
            op,
            [],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
        )

    graph = helper.make_graph(
        [
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=branch("Relu"), else_branch=branch("Sigmoid")
            )
        ],
        "g",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = tmp_path / "if.onnx"
    onnx.save(model, str(path))
    with OnnxRuntimeAdapter(path, name="if") as adapter:
        stats = model_stats(adapter, measure_load_time=False)
    assert stats.operators is not None
    assert {op.op_type for op in stats.operators} == {"If", "Relu", "Sigmoid"}
    assert stats.parameter_count == 0
    assert stats.weight_sparsity is None  # no weight matrices at all


def test_torch_module_params_and_sparsity() -> None:
    torch = pytest.importorskip("torch")
    from compval.adapters.torch import TorchAdapter

    layer = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        layer[0].weight[:, :5] = 0.0  # 20 of 40 zeros
        layer[2].weight.fill_(1.0)  # 0 of 8
    with TorchAdapter(layer, name="t") as adapter:
        stats = model_stats(adapter)
    assert stats.kind == "torch"
    assert stats.parameter_count == 10 * 4 + 4 + 4 * 2 + 2
    assert stats.weight_sparsity == pytest.approx(20 / 48)
    assert stats.size_bytes is None and stats.load_time_ms is None
    assert any("size unknown" in n for n in stats.notes)
    assert any("load time unknown" in n for n in stats.notes)


def test_adapter_reported_load_time_is_used(make_fake: MakeFake) -> None:
    model = make_fake("m", 1)
    model.fake_load_time_s = 0.25
    stats = model_stats(model)
    assert stats.kind == "other"
    assert stats.load_time_ms == 250.0
    assert stats.parameter_count is None
    assert any("parameter count unknown" in n for n in stats.notes)


def test_unreadable_onnx_file_is_a_profiling_error(tmp_path: Path, make_fake: MakeFake) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf\xff" * 10)
    model = make_fake("m", 1)
    model.path = bad
    with pytest.raises(ProfilingError, match=r"cannot read the ONNX graph; got"):
        model_stats(model)


def test_load_time_failure_is_a_profiling_error(
    onnx_pair: tuple[Path, Path], make_fake: MakeFake
) -> None:
    model = make_fake("m", 1)
    model.path = onnx_pair[0]

    def broken_reload(threads: int | None) -> float:
        raise RuntimeError("NoSuchExecutionProvider is not available")

    model.reload = broken_reload
    with pytest.raises(ProfilingError, match=r"reloading .* to time it failed"):
        model_stats(model)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
