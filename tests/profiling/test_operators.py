from __future__ import annotations

from pathlib import Path

import pytest

from compval.errors import InvalidParameterError
from compval.profiling import OperatorSet, OpUse, load_operator_set


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


def test_builtin_mobile_list_has_the_quantization_ops() -> None:
    ops = load_operator_set("ort_mobile")
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
    ):
        for opset in (12, 13, 14, 15):
            assert ops.supports(OpUse("ai.onnx", op, opset)), (op, opset)
    assert ops.supports(OpUse("com.microsoft", "QLinearAdd", 1))
    assert not ops.supports(OpUse("ai.onnx", "Conv", 17))  # outside the package's opsets
    assert not ops.supports(OpUse("ai.onnx", "Einsum", 13))
    # Not in the pre-built package (see the file's header).
    assert not ops.supports(OpUse("ai.onnx", "ConvInteger", 13))


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
