from __future__ import annotations

from pathlib import Path

import pytest

from compval.errors import InvalidParameterError
from compval.profiling import (
    NodeFallback,
    NodeUse,
    OperatorSet,
    OpUse,
    OrtCpuKernels,
    load_operator_set,
)
from compval.profiling._operators import describe_unsupported


def test_parses_ort_reduced_build_format() -> None:
    text = """
    # comment line
    !globally_allowed_types;float,int8_t
    ai.onnx;12,13;Add,Cast{"inputs": {"0": ["float", "int32_t"]}, "outputs": {"0": ["float"]}},Conv
    ;13;Relu   # the empty domain is ai.onnx
    com.microsoft;1;QLinearAdd
    custom.domain;*;AnyOp
    """
    ops = OperatorSet.parse(text, source="test")
    assert ops.entries == {
        ("ai.onnx", "Add"): frozenset({12, 13}),
        ("ai.onnx", "Cast"): frozenset({12, 13}),
        ("ai.onnx", "Conv"): frozenset({12, 13}),
        ("ai.onnx", "Relu"): frozenset({13}),
        ("com.microsoft", "QLinearAdd"): frozenset({1}),
        ("custom.domain", "AnyOp"): frozenset({-1}),
    }
    assert ops.supports(OpUse("", "Add", 12))
    assert ops.supports(OpUse("ai.onnx", "Cast", 13))
    assert not ops.supports(OpUse("ai.onnx", "Relu", 12))
    assert ops.supports(OpUse("custom.domain", "AnyOp", 99))
    assert not ops.supports(OpUse("ai.onnx", "Gelu", 13))


def test_unsupported_lists_op_and_opset_problems() -> None:
    ops = OperatorSet.parse("ai.onnx;12,13;Add,MatMul\n", source="t")
    used = [
        OpUse("ai.onnx", "Add", 17),
        OpUse("ai.onnx", "Einsum", 17),
        OpUse("ai.onnx", "MatMul", 13),
        OpUse("com.microsoft", "Gelu", 1),
    ]
    assert ops.unsupported(used) == [
        "ai.onnx:Add (opset 17; supported at opsets 12, 13)",
        "ai.onnx:Einsum (opset 17)",
        "com.microsoft:Gelu (opset 1)",
    ]


def test_builtin_mobile_set_is_onnxruntimes_own_registry() -> None:
    pytest.importorskip("onnxruntime")
    ops = load_operator_set("ort_mobile")
    assert isinstance(ops, OrtCpuKernels) and ops.source == "ort_mobile"
    for op in (
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "QLinearConv",
        "QLinearMatMul",
        "Conv",
        "Gemm",
        "Softmax",
        "Einsum",
    ):
        # No hand-written opset range: every opset onnxruntime implements passes.
        for opset in (12, 13, 15, 17, 19, 21):
            assert ops.supports(OpUse("ai.onnx", op, opset)), (op, opset)
    assert ops.supports(OpUse("com.microsoft", "QLinearAdd", 1))
    assert not ops.supports(OpUse("ai.onnx", "Upsample", 17))  # deprecated since opset 10
    assert not ops.supports(OpUse("ai.onnx", "Add", 6))  # onnxruntime starts at Add-7
    assert not ops.supports(OpUse("custom.domain", "AnyOp", 1))


def test_operator_set_checks_nodes_with_reasons() -> None:
    ops = OperatorSet.parse("ai.onnx;12,13;Add,MatMul\n", source="t.config")
    nodes = [
        NodeUse("add", "ai.onnx", "Add", 17),
        NodeUse("mm", "ai.onnx", "MatMul", 13),
        NodeUse("gelu", "com.microsoft", "Gelu", 1),
    ]
    assert ops.check(nodes) == [
        NodeFallback("add", "ai.onnx:Add", 17, ("opset",), "t.config lists it at opsets 12, 13"),
        NodeFallback("gelu", "com.microsoft:Gelu", 1, ("op_type",), "not in t.config"),
    ]
    assert ops.basis == "operator set t.config"


def test_describe_unsupported_groups_nodes_by_operator() -> None:
    findings = [
        NodeFallback(f"n{i}", "x.y:Op", 1, ("op_type",), "operator unknown") for i in range(7)
    ] + [NodeFallback("up", "ai.onnx:Upsample", 17, ("opset",), "deprecated since opset 10")]
    assert describe_unsupported(findings) == (
        "x.y:Op (opset 1) at 7 nodes 'n0', 'n1', 'n2', 'n3', 'n4' and 2 more: operator unknown",
        "ai.onnx:Upsample (opset 17) at node 'up': deprecated since opset 10",
    )
    assert describe_unsupported([]) == ()


def test_loads_a_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "ops.txt").write_text("ai.onnx;13;Add\n")
    ops = load_operator_set("ops.txt", base_dir=tmp_path)
    assert ops.source == str(tmp_path / "ops.txt")
    assert set(ops.entries) == {("ai.onnx", "Add")}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ai.onnx;13\n", r"line 1: not an operator line; got 'ai.onnx;13', expected 'domain;"),
        ("# c\nai.onnx;x;Add\n", r"line 2: bad opset field; got 'x'"),
        ("ai.onnx;0;Add\n", r"bad opset field; got '0'"),
        ("# nothing\n", r"lists no operators"),
    ],
)
def test_malformed_files_are_rejected(text: str, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        OperatorSet.parse(text, source="t")


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"file not found; got '.*nope.txt'"):
        load_operator_set(tmp_path / "nope.txt")
