"""The ``ort_mobile`` operator check and the NNAPI/CoreML fallback report, on real models.

Two independent references: ``onnxruntime.InferenceSession`` on the CPU EP (a model loads
exactly when compval finds no node its CPU EP cannot run) and onnxruntime's own mobile
usability checker (``check_nnapi_partitions`` / ``check_coreml_partitions`` on the model it
analyzes), whose counts the per-node fallback lists must reproduce. Models are exported in the
tests: scikit-learn pipelines with skl2onnx's defaults and at opsets 17 and 21, a torch module
at opsets 17 and 18, their dynamic-INT8 and static QDQ/QOperator quantizations, and
hand-built graphs for what exports do not produce (custom domains, bfloat16, subgraphs, rank 6).
"""

from __future__ import annotations

import inspect
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.profiling import (
    REASONS,
    NodeUse,
    OpUse,
    OrtCpuKernels,
    ProfileSettings,
    load_operator_set,
    mobile_ep_support,
    profile_models,
)
from compval.profiling._model_stats import _onnx_stats

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROWS = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
LABELS = (ROWS[:, 0] + ROWS[:, 1] > 0).astype(np.int64) + (ROWS[:, 2] > 1)
MB = 1_000_000


# -- builders ------------------------------------------------------------------------------
def _sklearn_models(folder: Path) -> dict[str, Path]:
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(ROWS, LABELS)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    forest.fit(ROWS, LABELS)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skl2onnx's own deprecation chatter
        for name, model, opset in (
            ("skl_lr_default", pipeline, None),
            ("skl_lr_17", pipeline, 17),
            ("skl_lr_21", pipeline, 21),
            ("skl_rf_default", forest, None),
        ):
            onx = skl2onnx.to_onnx(model, ROWS[:1], target_opset=opset)
            out[name] = folder / f"{name}.onnx"
            onnx.save(onx, str(out[name]))
    return out


def _torch_models(folder: Path) -> dict[str, Path]:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 6 * 6, 10)
            self.ln = torch.nn.LayerNorm(10)

        def forward(self, x: Any) -> Any:
            x = torch.flatten(torch.relu(self.norm(self.conv(x))), 1)
            return torch.softmax(torch.nn.functional.gelu(self.ln(self.fc(x))), -1)

    torch.manual_seed(0)
    net = Net().eval()
    example = (torch.randn(1, 1, 8, 8),)
    out = {}
    with warnings.catch_warnings():
        # The TorchScript exporter (onnxscript, which the default one needs, is optional).
        warnings.simplefilter("ignore")
        for name, opset, dynamic in (
            ("torch_17", 17, True),
            ("torch_18", 18, True),
            ("torch_17_fixed", 17, False),
        ):
            out[name] = folder / f"{name}.onnx"
            torch.onnx.export(
                net,
                example,
                str(out[name]),
                opset_version=opset,
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "N"}, "y": {0: "N"}} if dynamic else None,
            )
    return out


def _quantized(folder: Path, torch_fixed: Path, torch_dynamic: Path, skl: Path) -> dict[str, Path]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.rows = iter(
                [{"x": rng.normal(size=(1, 1, 8, 8)).astype(np.float32)} for _ in range(8)]
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.rows, None)

    out = {name: folder / f"{name}.onnx" for name in ("dyn", "skl_dyn", "qdq", "qop")}
    quantize_dynamic(str(torch_dynamic), str(out["dyn"]), weight_type=QuantType.QInt8)
    quantize_dynamic(str(skl), str(out["skl_dyn"]), weight_type=QuantType.QInt8)
    quantize_static(str(torch_fixed), str(out["qdq"]), Reader(), quant_format=QuantFormat.QDQ)
    quantize_static(str(torch_fixed), str(out["qop"]), Reader(), quant_format=QuantFormat.QOperator)
    return out


def _graph_model(
    path: Path,
    nodes: list[Any],
    *,
    opset: int = 17,
    dtype: int = TensorProto.FLOAT,
    shape: list[Any] | None = None,
    inputs: tuple[str, ...] = ("x",),
    output: str = "y",
    extra_imports: tuple[tuple[str, int], ...] = (),
    initializers: tuple[Any, ...] = (),
) -> Path:
    """A hand-built graph, saved without the checker (some are invalid on purpose)."""
    shape = [1, 4] if shape is None else shape
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, dtype, shape) for i in inputs],
        [helper.make_tensor_value_info(output, dtype, None)],
        initializer=list(initializers),
    )
    imports = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in extra_imports
    ]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8 if opset <= 18 else 10
    onnx.save(model, str(path))
    return path


def _loads(path: Path) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises Fail/InvalidGraph/NotImplemented alike
        return False
    return True


def _nodes(path: Path) -> tuple[NodeUse, ...]:
    return _onnx_stats(path, infer_types=True)[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real exports and their quantizations (what users bring)."""
    folder = tmp_path_factory.mktemp("exported")
    models = {**_sklearn_models(folder), **_torch_models(folder)}
    models.update(
        _quantized(folder, models["torch_17_fixed"], models["torch_17"], models["skl_lr_17"])
    )
    return models


# -- the CPU EP: what onnxruntime's registrations say vs what InferenceSession does ---------
EXPORTS = [
    "skl_lr_default",
    "skl_lr_17",
    "skl_lr_21",
    "skl_rf_default",
    "torch_17",
    "torch_18",
    "torch_17_fixed",
    "dyn",
    "skl_dyn",
    "qdq",
    "qop",
]


@pytest.mark.parametrize("name", EXPORTS)
def test_exported_models_have_no_false_unsupported_nodes(
    exported: dict[str, Path], name: str
) -> None:
    path = exported[name]
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 9
    assert _loads(path)  # the reference: onnxruntime runs it on the CPU
    assert OrtCpuKernels().check(_nodes(path)) == []


def test_the_issue_model_opset_17_gemm_softmax_is_supported(tmp_path: Path) -> None:
    # Before: 'ai.onnx:Gemm (opset 17; supported at opsets 12, 13, 14, 15)' and Softmax alike.
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    path = _graph_model(
        tmp_path / "m.onnx",
        [
            helper.make_node("Gemm", ["x", "W"], ["logits"], name="gemm"),
            helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
        ],
        initializers=(w,),
    )
    kernels = load_operator_set("ort_mobile")
    assert kernels.check(_nodes(path)) == []
    for opset in (13, 17, 19, 21):
        for op in ("Gemm", "Softmax", "Add", "QuantizeLinear", "DequantizeLinear", "MatMulInteger"):
            assert kernels.supports(OpUse("ai.onnx", op, opset)), (op, opset)
    assert kernels.supports(OpUse("com.microsoft", "QLinearAdd", 1))
    assert kernels.supports(OpUse("ai.onnx.ml", "ZipMap", 1))
    assert kernels.basis == f"onnxruntime {ort.__version__} CPU kernel registrations"


def _single(
    tmp_path: Path, op: str, *, opset: int, dtype: int = TensorProto.FLOAT, n_in: int = 1,
    domain: str = "", name: str = "the_node", shape: list[Any] | None = None,
) -> Path:  # fmt: skip
    inputs = tuple(f"x{i}" for i in range(n_in))
    node = helper.make_node(op, list(inputs), ["y"], name=name, domain=domain)
    imports = ((domain, 1),) if domain else ()
    return _graph_model(
        tmp_path / f"{op}_{opset}_{dtype}.onnx",
        [node],
        opset=opset,
        dtype=dtype,
        inputs=inputs,
        extra_imports=imports,
        shape=shape,
    )


# (operator, opset, dtype, inputs, reason when the CPU EP cannot run it)
BF16, F16, F64 = TensorProto.BFLOAT16, TensorProto.FLOAT16, TensorProto.DOUBLE
SINGLE_NODES: list[tuple[str, int, int, int, str | None]] = [
    ("Add", 17, TensorProto.FLOAT, 2, None),
    ("Add", 21, F16, 2, None),  # no float16 kernel: onnxruntime inserts Casts to float
    ("Add", 21, BF16, 2, "data_type"),
    ("Relu", 21, BF16, 1, "data_type"),
    ("Softmax", 13, F64, 1, None),
    ("PRelu", 17, F64, 2, None),  # no double kernel, but PRelu-16 is a function: expanded
    ("LeakyRelu", 17, F64, 1, None),
    ("Clip", 17, BF16, 1, None),  # a context-dependent function: expanded
    ("HardSwish", 17, TensorProto.FLOAT, 1, None),  # a function without any kernel
    ("Gelu", 20, TensorProto.FLOAT, 1, None),
    # The kernel registered as (2, open end) serves GlobalLpPool-2 only, not GlobalLpPool-22.
    ("GlobalLpPool", 22, TensorProto.FLOAT, 1, "opset"),
    ("Upsample", 17, TensorProto.FLOAT, 2, "opset"),  # deprecated since opset 10
    ("Relu", 99, TensorProto.FLOAT, 1, "opset"),  # an opset onnxruntime does not know
]


@pytest.mark.parametrize(("op", "opset", "dtype", "n_in", "reason"), SINGLE_NODES)
def test_cpu_verdicts_agree_with_inference_session(
    tmp_path: Path, op: str, opset: int, dtype: int, n_in: int, reason: str | None
) -> None:
    shape = [1, 2, 4, 4] if op == "GlobalLpPool" else None
    path = _single(tmp_path, op, opset=opset, dtype=dtype, n_in=n_in, shape=shape)
    findings = OrtCpuKernels().check(_nodes(path))
    assert (findings == []) == _loads(path)
    if reason is None:
        assert findings == []
    else:
        (finding,) = findings
        assert (finding.node, finding.op, finding.opset) == ("the_node", f"ai.onnx:{op}", opset)
        assert finding.reasons == (reason,)


def test_a_custom_domain_operator_is_named_with_its_node(tmp_path: Path) -> None:
    path = _single(tmp_path, "MyOp", opset=17, domain="com.example", name="my_custom_node")
    assert not _loads(path)
    (finding,) = OrtCpuKernels().check(_nodes(path))
    assert finding.node == "my_custom_node"
    assert (finding.op, finding.opset, finding.reasons) == ("com.example:MyOp", 1, ("op_type",))
    assert "custom-op library" in finding.detail
    assert not OrtCpuKernels().supports(OpUse("com.example", "MyOp", 1))


def test_an_unknown_operator_of_a_builtin_domain(tmp_path: Path) -> None:
    path = _single(tmp_path, "NoSuchOp", opset=17, name="nope")
    (finding,) = OrtCpuKernels().check(_nodes(path))
    assert (finding.node, finding.reasons) == ("nope", ("op_type",))
    assert finding.detail == f"operator unknown to onnxruntime {ort.__version__}"


def test_data_type_finding_names_the_types(tmp_path: Path) -> None:
    path = _single(tmp_path, "Add", opset=21, dtype=BF16, n_in=2)
    (finding,) = OrtCpuKernels().check(_nodes(path))
    assert (
        finding.detail == f"no CPU kernel in onnxruntime {ort.__version__} for T=tensor(bfloat16)"
    )


def test_nodes_inside_subgraphs_and_local_functions_are_checked(tmp_path: Path) -> None:
    def branch(op: str, domain: str = "") -> Any:
        return helper.make_graph(
            [helper.make_node(op, ["x"], ["out"], name=f"in_{op}", domain=domain)],
            op,
            [],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        )

    cond = numpy_helper.from_array(np.array(True), "cond")
    path = _graph_model(
        tmp_path / "if.onnx",
        [
            helper.make_node(
                "If",
                ["cond"],
                ["y"],
                name="if",
                then_branch=branch("Relu"),
                else_branch=branch("Custom", "com.example"),
            )
        ],
        extra_imports=(("com.example", 1),),
        initializers=(cond,),
    )
    findings = OrtCpuKernels().check(_nodes(path))
    assert [(f.node, f.op) for f in findings] == [("in_Custom", "com.example:Custom")]


# -- user-supplied operator sets (reduced-build config files) still work -------------------
def test_operator_set_file_checks_nodes(tmp_path: Path) -> None:
    (tmp_path / "ops.config").write_text("ai.onnx;13,17;Add\nai.onnx;13;Relu\n")
    ops = load_operator_set("ops.config", base_dir=tmp_path)
    path = _graph_model(
        tmp_path / "m.onnx",
        [
            helper.make_node("Add", ["x", "x"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["r"], name="relu"),
            helper.make_node("Sigmoid", ["r"], ["y"], name="sig"),
        ],
    )
    findings = ops.check(_nodes(path))
    assert [(f.node, f.reasons, f.detail) for f in findings] == [
        ("relu", ("opset",), f"{tmp_path / 'ops.config'} lists it at opsets 13"),
        ("sig", ("op_type",), f"not in {tmp_path / 'ops.config'}"),
    ]


# -- NNAPI / CoreML: the usability checker as the reference -------------------------------
def _checker_reference(path: Path) -> dict[str, Any]:
    """The checker's own analysis: analyze_model's preprocessing, then its partition checks."""
    from onnxruntime.tools.mobile_helpers import usability_checker as checker
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    if (
        "require_fixed_input_sizes"
        not in inspect.signature(checker.check_nnapi_partitions).parameters
    ):
        pytest.skip("this onnxruntime's checker predates the per-table signature")
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / path.name
        optimize_model(path, optimized, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        return {
            "nnapi": checker.check_nnapi_partitions(model, True),
            "coreml_neuralnetwork": checker.check_coreml_partitions(
                model, True, "coreml_supported_neuralnetwork_ops.md"
            ),
            "coreml_mlprogram": checker.check_coreml_partitions(
                model, True, "coreml_supported_mlprogram_ops.md"
            ),
        }


def _summary(ep: Any) -> dict[str, Any]:
    def count(reason: str) -> int:
        return sum(reason in n.reasons for n in ep.unsupported)

    return {
        "nodes": ep.nodes,
        "supported": ep.nodes - len(ep.unsupported),
        "op": count("op_type"),
        "dynamic": count("dynamic_shape"),
        "rank": count("rank"),
        "ops": sorted({n.op for n in ep.unsupported if "op_type" in n.reasons}),
        "partitions": ep.partitions,
        "recommendation": ep.recommendation,
    }


def _reference_summary(info: Any) -> dict[str, Any]:
    return {
        "nodes": info.num_nodes,
        "supported": info.num_supported_nodes,
        "op": info.nodes_unsupported_due_to_op,
        "dynamic": info.nodes_unsupported_due_to_dynamic_input,
        "rank": info.num_unsupported_nodes_due_to_rank,
        "ops": sorted(info.unsupported_ops),
        "partitions": info.num_partitions,
        "recommendation": info.suitability().name.lower(),
    }


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Graphs that exercise the rank limit and subgraphs, with fixed shapes."""
    folder = tmp_path_factory.mktemp("hand")
    shape6 = numpy_helper.from_array(np.array([1, 1, 1, 1, 2, 2], np.int64), "shape6")
    rank6 = _graph_model(
        folder / "rank6.onnx",
        [
            helper.make_node("Reshape", ["x", "shape6"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu6"),
        ],
        initializers=(shape6,),
    )
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"], name="then_relu")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
    )
    other = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["e"], name="else_sigmoid")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
    )
    branches = _graph_model(
        folder / "if.onnx",
        [
            helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["cond"], name="greater"),
            helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other),
        ],
        initializers=(numpy_helper.from_array(np.array(0.0, np.float32), "zero"),),
    )
    return {"rank6": rank6, "if": branches}


@pytest.mark.parametrize(
    "name",
    ["skl_lr_default", "skl_rf_default", "torch_17", "torch_17_fixed", "dyn", "qdq", "qop"],
)
def test_ep_fallbacks_match_the_usability_checker(exported: dict[str, Path], name: str) -> None:
    reference = _checker_reference(exported[name])
    support, notes = mobile_ep_support(exported[name], name=name)
    assert notes == ()
    assert [ep.key for ep in support] == ["nnapi", "coreml_neuralnetwork", "coreml_mlprogram"]
    for ep in support:
        assert _summary(ep) == _reference_summary(reference[ep.key]), ep.key
        assert ep.falls_back_to == "CPU"
        assert {r for n in ep.unsupported for r in n.reasons} <= set(REASONS)
        assert ep.source.startswith(
            ("nnapi_supported_ops.md", "coreml_supported_")
        ) and ep.source.endswith(f"(onnxruntime {ort.__version__} usability checker)")


@pytest.mark.parametrize("name", ["rank6", "if"])
def test_rank_limit_and_subgraphs_match_the_usability_checker(
    hand_built: dict[str, Path], name: str
) -> None:
    reference = _checker_reference(hand_built[name])
    support, _ = mobile_ep_support(hand_built[name], name=name)
    for ep in support:
        assert _summary(ep) == _reference_summary(reference[ep.key]), ep.key


def test_rank_and_subgraph_reasons_name_the_nodes(hand_built: dict[str, Path]) -> None:
    support = {ep.key: ep for ep in mobile_ep_support(hand_built["rank6"], name="r")[0]}
    coreml = [(n.node, n.reasons) for n in support["coreml_mlprogram"].unsupported]
    assert ("relu6", ("rank",)) in coreml
    assert not any("rank" in n.reasons for n in support["nnapi"].unsupported)
    branches = {ep.key: ep for ep in mobile_ep_support(hand_built["if"], name="i")[0]}
    nnapi = {n.node: n.reasons for n in branches["nnapi"].unsupported}
    assert nnapi["if"] == ("op_type",)  # NNAPI has no If; its branches' nodes are counted too
    assert branches["nnapi"].nodes == 5


def test_quantized_model_caveats_come_from_the_tables(exported: dict[str, Path]) -> None:
    support = {ep.key: ep for ep in mobile_ep_support(exported["qdq"], name="qdq")[0]}
    nnapi = support["nnapi"]
    assert "ai.onnx:Conv: Only 2D Conv is supported. Weights and bias should be constant." in (
        nnapi.caveats
    )
    assert {n.op for n in nnapi.unsupported} == {"ai.onnx:LayerNormalization", "ai.onnx:Erf"}
    assert all(n.opset == 17 for n in nnapi.unsupported)


def test_an_absent_optional_input_is_not_a_dynamic_shape(tmp_path: Path) -> None:
    # The one documented difference from the checker, which counts '' as a dynamic value.
    path = _graph_model(
        tmp_path / "clip.onnx",
        [helper.make_node("Clip", ["x", "", "hi"], ["y"], name="clip")],
        initializers=(numpy_helper.from_array(np.array(1.0, np.float32), "hi"),),
    )
    reference = _checker_reference(path)["nnapi"]
    (nnapi, *_) = mobile_ep_support(path, name="clip")[0]
    assert nnapi.unsupported == ()
    assert reference.nodes_unsupported_due_to_dynamic_input == 1


def test_dynamic_batch_makes_nnapi_fall_back_with_the_reason(exported: dict[str, Path]) -> None:
    (nnapi, *_) = mobile_ep_support(exported["torch_17"], name="t")[0]
    conv = next(n for n in nnapi.unsupported if n.node == "/conv/Conv")
    assert conv.reasons == ("dynamic_shape",)
    assert conv.detail == "input 'x' has a dynamic or unknown shape"


def test_a_model_onnxruntime_cannot_load_is_checked_as_written(tmp_path: Path) -> None:
    path = _single(tmp_path, "MyOp", opset=17, domain="com.example", name="custom", shape=[1, 4])
    support, notes = mobile_ep_support(path, name="m")
    assert [n.reasons for n in support[0].unsupported] == [("op_type",)]
    assert len(notes) == 1 and "checked on the graph as written" in notes[0]


def test_the_checkers_hash_patch_does_not_leak(exported: dict[str, Path]) -> None:
    before = onnx.NodeProto.__dict__.get("__hash__")
    mobile_ep_support(exported["torch_17_fixed"], name="t")
    assert onnx.NodeProto.__dict__.get("__hash__") is before


def test_changed_checker_internals_leave_partitions_unknown(
    exported: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.tools.mobile_helpers import usability_checker as checker

    def renamed(model: Any, *, other: int) -> None:  # a future signature
        raise AssertionError("not called")

    monkeypatch.setattr(checker, "check_nnapi_partitions", renamed)
    monkeypatch.setattr(checker, "check_coreml_partitions", _raises)
    support, _ = mobile_ep_support(exported["torch_17_fixed"], name="t")
    assert [(ep.partitions, ep.recommendation) for ep in support] == [(None, None)] * 3
    assert [n.node for n in support[0].unsupported] == ["/ln/LayerNormalization", "/Erf"]


def _raises(*args: Any, **kwargs: Any) -> Any:
    raise KeyError("internals changed")


def test_the_pre_1_20_checker_signature_is_used(
    exported: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.tools.mobile_helpers import usability_checker as checker

    seen: list[int] = []

    class Info:
        num_partitions = 7

        def suitability(self) -> Any:
            return checker.PartitioningInfo.TryWithEP.MAYBE

    def old(model: Any, value_info: dict[str, Any] | None = None) -> Info:
        assert value_info is not None and "x" in value_info
        seen.append(1)
        return Info()

    monkeypatch.setattr(checker, "check_nnapi_partitions", old)
    support, _ = mobile_ep_support(exported["torch_17_fixed"], name="t")
    assert (support[0].partitions, support[0].recommendation) == (7, "maybe")
    assert seen == [1]


def test_missing_tables_become_notes(
    exported: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from compval.profiling.targets import _ort_eps

    gone = _ort_eps._EpTable("future", "FutureEP", ("future_supported_ops.md",), None)
    monkeypatch.setattr(_ort_eps, "MOBILE_EPS", (*_ort_eps.MOBILE_EPS[:1], gone))
    support, notes = mobile_ep_support(exported["torch_17_fixed"], name="t")
    assert [ep.key for ep in support] == ["nnapi"]
    assert notes == (
        f"model 't': FutureEP not checked: onnxruntime {ort.__version__} ships no "
        "future_supported_ops.md",
    )


# -- through the profiler: counts, metrics and the report section -------------------------
def _mobile_settings(**kwargs: Any) -> ProfileSettings:
    base: dict[str, Any] = {
        "target": "mobile",
        "batch_sizes": (1,),
        "concurrency": (),
        "warmup": 0,
        "min_iterations": 2,
        "min_duration_s": 0.0,
        "rounds": 2,
        "measure_memory": False,
        "operators": load_operator_set("ort_mobile"),
    }
    return ProfileSettings(**{**base, **kwargs})


def test_profile_counts_nodes_the_runtime_cannot_run(
    tmp_path: Path, make_fake: Callable[..., Any], exported: dict[str, Path]
) -> None:
    custom = tmp_path / "custom.onnx"
    _graph_model(
        custom,
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("MyOp", ["r"], ["m"], name="custom_a", domain="com.example"),
            helper.make_node("MyOp", ["m"], ["y"], name="custom_b", domain="com.example"),
        ],
        extra_imports=(("com.example", 1),),
    )
    reference = make_fake("ref", MB, width=4)
    reference.path = exported["torch_17_fixed"]
    candidate = make_fake("cand", MB, width=4)
    candidate.path = custom
    result = profile_models(
        reference, {"cand": candidate}, {"x": np.ones((2, 4), np.float32)},
        settings=_mobile_settings(),
    )  # fmt: skip
    cand = result.models["cand"]
    assert cand.unsupported_ops == (
        "com.example:MyOp (opset 1) at 2 nodes 'custom_a', 'custom_b': operator unknown to "
        f"onnxruntime {ort.__version__} (domain 'com.example' is not built in; it needs a "
        "custom-op library registered with the session)",
    )
    assert result.models["ref"].unsupported_ops == ()
    values = {v.metric: v for v in result.metric_estimates("cand")}
    assert values["unsupported_op_count"].candidate == 2.0  # nodes, not operator types
    providers = cand.execution_providers
    assert providers is not None
    assert [(ep.key, ep.falls_back_to) for ep in providers] == [
        ("cpu", None),
        ("nnapi", "CPU"),
        ("coreml_neuralnetwork", "CPU"),
        ("coreml_mlprogram", "CPU"),
    ]
    assert providers[0].nodes == 3
    assert any("checked on the graph as written" in n for n in result.notes)


def test_fallback_counts_are_gateable_metrics(
    make_fake: Callable[..., Any], exported: dict[str, Path]
) -> None:
    models = []
    for name in ("ref", "cand"):
        model = make_fake(name, MB, width=4)
        model.path = exported["torch_17_fixed"]
        models.append(model)
    result = profile_models(
        models[0], {"cand": models[1]}, {"x": np.ones((2, 4), np.float32)},
        settings=_mobile_settings(),
    )  # fmt: skip
    values = {v.metric: v for v in result.metric_estimates("cand")}
    assert values["nnapi_fallback_node_count"].candidate == 2.0  # LayerNormalization, Erf
    assert values["nnapi_fallback_node_count"].higher_is_better is False
    assert values["nnapi_fallback_node_count"].paired
    assert {
        "coreml_neuralnetwork_fallback_node_count",
        "coreml_mlprogram_fallback_node_count",
    } <= set(values)


def test_report_section_follows_the_schema(
    make_fake: Callable[..., Any], exported: dict[str, Path]
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    models = []
    for name, path in (("ref", "torch_17_fixed"), ("cand", "qdq")):
        model = make_fake(name, MB, width=4)
        model.path = exported[path]
        models.append(model)
    result = profile_models(
        models[0], {"cand": models[1]}, {"x": np.ones((2, 4), np.float32)},
        settings=_mobile_settings(),
    )  # fmt: skip
    data = json.loads(json.dumps(result.to_dict()))
    cand = data["models"]["cand"]
    schema = json.loads(
        (Path(__file__).parents[2] / "docs" / "report.schema.json").read_text("utf-8")
    )
    jsonschema.validate(cand, {"$ref": "#/$defs/profiled_model", "$defs": schema["$defs"]})
    cpu, nnapi = cand["execution_providers"][:2]
    assert cpu["provider"] == "CPU" and cpu["unsupported"] == []
    assert cpu["supported_nodes"] == cpu["nodes"] == 43
    assert nnapi == {
        "provider": "NNAPI",
        "key": "nnapi",
        "source": f"nnapi_supported_ops.md (onnxruntime {ort.__version__} usability checker)",
        "falls_back_to": "CPU",
        "nodes": 39,
        "supported_nodes": 37,
        "partitions": 3,
        "recommendation": "no",
        "unsupported": [
            {
                "node": "/ln/LayerNormalization",
                "op": "ai.onnx:LayerNormalization",
                "opset": 17,
                "reasons": ["op_type"],
                "detail": "not in the EP's operator table",
            },
            {
                "node": "/Erf",
                "op": "ai.onnx:Erf",
                "opset": 17,
                "reasons": ["op_type"],
                "detail": "not in the EP's operator table",
            },
        ],
        "caveats": nnapi["caveats"],
    }
    assert len(nnapi["caveats"]) == 4
