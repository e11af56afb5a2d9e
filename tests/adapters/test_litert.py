"""LiteRTAdapter on the committed .tflite models (tests/adapters/data/make_tflite.py).

References are numpy computations with the script's weights: exact-ish for the float model;
for the int8 model an emulation of integer inference from the quantization parameters that
the interpreter itself reports (not the adapter), then a bound derived from it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from compval.adapters import LiteRTAdapter, load_model
from compval.errors import InvalidParameterError, ModelLoadError
from compval.spec import ModelRef

pytest.importorskip("ai_edge_litert", reason="needs the litert extra (ai-edge-litert)")

DATA = Path(__file__).parent / "data"
FLOAT = DATA / "mlp_float.tflite"
INT8 = DATA / "mlp_int8.tflite"


@pytest.fixture(scope="module")
def make_tflite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tflite", DATA / "make_tflite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_tflite", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def layers(make_tflite: ModuleType) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(make_tflite.mlp_weights())


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    # Wider than the calibration data at the tails, so clipping is exercised too.
    return np.random.default_rng(3).normal(scale=1.3, size=(50, 4)).astype(np.float32)


def _float_mlp(layers: Any, x: np.ndarray) -> np.ndarray:
    (w1, b1), (w2, b2) = layers
    h = np.maximum(x.astype(np.float64) @ w1 + b1, 0.0)
    return np.asarray(h @ w2 + b2)


def _quant(details: dict[str, Any]) -> tuple[float, int]:
    scale, zero = details["quantization"]
    return float(scale), int(zero)


def _int8_emulation(path: Path, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Integer inference written out in float64 from the interpreter's own tensor parameters."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    tensors = {d["name"]: d for d in interpreter.get_tensor_details()}

    info = np.iinfo(tensors["input"]["dtype"])  # int8, or uint8 for the legacy scheme

    def q(v: np.ndarray, s: float, z: int, lo: int = int(info.min)) -> np.ndarray:
        return np.clip(np.rint(v / s) + z, lo, int(info.max))

    s, z = _quant(tensors["input"])
    a = q(x.astype(np.float64), s, z)
    for i, out in enumerate(("h0", "logits")):
        w = interpreter.get_tensor(tensors[f"w{i}"]["index"]).astype(np.float64)  # [out, in]
        b = interpreter.get_tensor(tensors[f"b{i}"]["index"]).astype(np.float64)
        ws, wz = _quant(tensors[f"w{i}"])
        acc = (a - z) @ (w - wz).T + b  # int32 accumulator
        real = acc * s * ws
        s, z = _quant(tensors[out])
        a = q(real, s, z, lo=z if out == "h0" else int(info.min))  # fused ReLU: clamp at z
    return (a - z) * s, s


class TestFloatModel:
    def test_matches_numpy_reference(self, layers: Any, x: np.ndarray) -> None:
        with LiteRTAdapter(FLOAT, name="float", threads=1) as model:
            out = model.predict({"input": x})
        assert list(out) == ["logits"]
        assert out["logits"].dtype == np.float32
        np.testing.assert_allclose(out["logits"], _float_mlp(layers, x), rtol=1e-5, atol=1e-5)

    def test_input_spec_from_signature_and_batch_resized(self, x: np.ndarray) -> None:
        with LiteRTAdapter(FLOAT, name="float") as model:
            spec = model.input_spec()["input"]
            assert (spec.dtype, spec.shape) == (np.dtype(np.float32), (None, 4))
            assert model.signature == "serving_default"
            whole = model.predict({"input": x})["logits"]
            # Batches of 1, 7 and 42 rows: the batch axis follows each batch.
            parts = [
                model.predict({"input": x[a:b]})["logits"] for a, b in ((0, 1), (1, 8), (8, 50))
            ]
        np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6, atol=1e-6)

    def test_stats_hooks(self, layers: Any) -> None:
        with LiteRTAdapter(FLOAT, name="float") as model:
            params, sparsity = model.parameter_stats() or (None, None)
            assert params == sum(w.size + b.size for w, b in layers)
            assert sparsity == 0.0  # normal draws: no exact zeros in the weight matrices
            assert model.model_format == "tflite"
            assert model.model_file == FLOAT
            assert model.load_time_s is not None and model.load_time_s > 0
            assert model.time_reload(threads=1) > 0
            assert model.run_notes() == []  # nothing converted for a float model

    def test_with_threads_and_timed_call(self, x: np.ndarray) -> None:
        model = LiteRTAdapter(FLOAT, name="float", threads=1)
        two = model.with_threads(2)
        assert model.with_threads(1) is model and two is not model
        with model, two:
            call = two.timed_call({"input": x})
            raw = call()
            np.testing.assert_allclose(
                raw["logits"], model.predict({"input": x})["logits"], rtol=1e-6, atol=1e-6
            )


class TestInt8Model:
    def test_quantized_io_handled_with_model_parameters(self, x: np.ndarray) -> None:
        emulated, out_scale = _int8_emulation(INT8, x)
        with LiteRTAdapter(INT8, name="int8", threads=1) as model:
            spec = model.input_spec()["input"]
            out = model.predict({"input": x})["logits"]
        assert spec.dtype == np.dtype(np.float32)  # the float data feeds the int8 model
        assert out.dtype == np.float32
        # LiteRT requantizes with a fixed-point multiplier: at most one output step apart.
        assert np.abs(out - emulated).max() <= out_scale * 1.001

    def test_within_quantization_error_of_the_float_model(self, layers: Any, x: np.ndarray) -> None:
        emulated, out_scale = _int8_emulation(INT8, x)
        reference = _float_mlp(layers, x)
        bound = np.abs(emulated - reference).max() + out_scale
        with LiteRTAdapter(INT8, name="int8", threads=1) as model:
            out = model.predict({"input": x})["logits"]
        error = np.abs(out - reference).max()
        assert error <= bound
        assert error > 0  # it is a quantized model: not the float one in disguise

    def test_uint8_model(
        self, make_tflite: ModuleType, layers: Any, x: np.ndarray, tmp_path: Path
    ) -> None:
        pytest.importorskip("tflite", reason="the writer needs the tflite schema package")
        path = tmp_path / "mlp_uint8.tflite"
        calib = make_tflite.calibration_inputs()
        path.write_bytes(make_tflite.build_int8(layers, calib, unsigned=True))
        emulated, out_scale = _int8_emulation(path, x)
        with LiteRTAdapter(path, name="uint8", threads=1) as model:
            out = model.predict({"input": x})["logits"]
            assert "input 'input' is uint8" in model.run_notes()[0]
        assert np.abs(out - emulated).max() <= out_scale * 1.001
        bound = np.abs(emulated - _float_mlp(layers, x)).max() + out_scale
        assert np.abs(out - _float_mlp(layers, x)).max() <= bound

    def test_notes_record_the_conversions(self, x: np.ndarray) -> None:
        with LiteRTAdapter(INT8, name="int8") as model:
            model.predict({"input": x})
        notes = model.run_notes()  # after close(): the engine asks after the paired run
        assert len(notes) == 2
        assert "input 'input' is int8; quantized from float32" in notes[0]
        assert "output 'logits' is int8; dequantized to float32" in notes[1]


class TestLoading:
    def test_registered_for_tflite_files(self) -> None:
        adapter = load_model(ModelRef(path=str(INT8)), base_dir=Path.cwd())
        assert isinstance(adapter, LiteRTAdapter)
        assert adapter.name == "mlp_int8"

    def test_unknown_signature_is_refused(self) -> None:
        with pytest.raises(InvalidParameterError, match=r"no signature 'encode'.*serving_default"):
            LiteRTAdapter(FLOAT, name="m", signature="encode").open()

    def test_option_of_another_runtime_is_refused(self) -> None:
        ref = ModelRef(path=str(FLOAT), device="cuda")
        with pytest.raises(InvalidParameterError, match="'device' does not apply to the litert"):
            load_model(ref, base_dir=Path.cwd())

    def test_not_a_flatbuffer(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.tflite"
        bad.write_bytes(b"not a model" * 10)
        with pytest.raises(ModelLoadError, match="LiteRT interpreter cannot load it"):
            LiteRTAdapter(bad, name="bad").open()

    def test_committed_files_are_what_the_script_writes(self, make_tflite: ModuleType) -> None:
        pytest.importorskip("tflite", reason="the writer needs the tflite schema package")
        layers = make_tflite.mlp_weights()
        assert FLOAT.read_bytes() == make_tflite.build_float(layers)
        assert INT8.read_bytes() == make_tflite.build_int8(layers, make_tflite.calibration_inputs())


def test_validation_of_the_int8_model_against_the_float_one(x: np.ndarray, layers: Any) -> None:
    from compval.engine import run_validation
    from compval.spec import spec_from_mapping

    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"path": str(FLOAT), "name": "float"},
            "candidates": [{"path": str(INT8), "name": "int8", "threads": 1}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "agree", "metric": "top1_agreement", "min": 0.8}],
        }
    )
    labels = _float_mlp(layers, x).argmax(axis=1)
    report = run_validation(spec, data=(x, labels))
    assert report.run.models["int8"]["runtime"] == "litert"
    assert any("'int8' (LiteRT): input 'input' is int8" in n for n in report.run.notes)
    agreement = next(m.candidate_value for m in report.metrics if m.metric == "top1_agreement")
    assert agreement is not None and agreement >= 0.8


def test_runtime_operators_are_the_models_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's listing, without its XNNPACK delegate node; TF Select and custom
    operators are what a stock mobile runtime cannot run."""
    with LiteRTAdapter(INT8, name="int8") as model:
        own = model.runtime_operators()
        assert own is not None
        assert [op for _, op in own.nodes] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
        assert own.unsupported == ()
        assert own.runtime.startswith("ai-edge-litert ")
        listed = [
            {"index": 0, "op_name": "CONV_2D"},
            {"index": 1, "op_name": "FlexErf"},
            {"index": 2, "op_name": "TFLite_Detection_PostProcess"},
            {"index": 3, "op_name": "DELEGATE"},
        ]
        monkeypatch.setattr(model._interpreter, "_get_ops_details", lambda: listed)
        own = model.runtime_operators()
    assert own is not None
    assert [label for label, _ in own.nodes] == [
        "<CONV_2D #0>",
        "<FlexErf #1>",
        "<TFLite_Detection_PostProcess #2>",
    ]
    assert [label for label, _ in own.unsupported] == [
        "<FlexErf #1>",
        "<TFLite_Detection_PostProcess #2>",
    ]
    assert "Flex delegate" in own.unsupported[0][1] and "custom op" in own.unsupported[1][1]


def test_the_mobile_target_checks_a_litert_models_operators(
    x: np.ndarray, layers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mobile target's unsupported-ops budget is decided by LiteRT's own resolution for a
    .tflite model (not inconclusive), and fails when an operator needs the Flex delegate."""
    from compval.adapters import RuntimeOperators
    from compval.engine import run_validation
    from compval.spec import spec_from_mapping

    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"path": str(FLOAT), "name": "float"},
            "candidates": [{"path": str(INT8), "name": "int8"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "performance": {
                "target": "mobile",
                "rounds": 2,
                "min_duration_s": 0.02,
                "concurrency_duration_s": 0.05,
            },
        }
    )
    labels = _float_mlp(layers, x).argmax(axis=1)
    report = run_validation(spec, data=(x, labels))
    (check,) = [c for c in report.checks if c.id == "target-mobile-unsupported-ops"]
    assert (check.verdict, check.observed) == ("pass", 0.0)
    cpu = report.to_dict()["profile"]["models"]["int8"]["execution_providers"][0]
    assert cpu["nodes"] == 2 and "LiteRT interpreter" in cpu["source"]

    def with_flex(self: LiteRTAdapter) -> RuntimeOperators:
        nodes = (("<FULLY_CONNECTED #0>", "FULLY_CONNECTED"), ("<FlexErf #1>", "FlexErf"))
        return RuntimeOperators(
            runtime="ai-edge-litert test",
            nodes=nodes,
            unsupported=(("<FlexErf #1>", "a TF Select op: needs the Flex delegate in the app"),),
            basis="test",
        )

    monkeypatch.setattr(LiteRTAdapter, "runtime_operators", with_flex)
    report = run_validation(spec, data=(x, labels))
    (check,) = [c for c in report.checks if c.id == "target-mobile-unsupported-ops"]
    assert (check.verdict, check.observed) == ("fail", 1.0)


class TestSignatures:
    @pytest.fixture
    def write(self, make_tflite: ModuleType, layers: Any, tmp_path: Path) -> Any:
        pytest.importorskip("tflite", reason="the writer needs the tflite schema package")

        def write(*keys: str) -> Path:
            path = tmp_path / f"{'_'.join(keys)}.tflite"
            path.write_bytes(make_tflite.build_float(layers, signature_keys=keys))
            return path

        return write

    def test_the_only_signature_runs_whatever_its_name(self, write: Any, x: np.ndarray) -> None:
        with LiteRTAdapter(write("encode"), name="m") as model:
            assert model.signature == "encode"
            assert model.predict({"input": x})["logits"].shape == (50, 3)

    def test_several_signatures_without_a_default_need_a_choice(
        self, write: Any, layers: Any, x: np.ndarray
    ) -> None:
        path = write("encode", "decode")
        with pytest.raises(InvalidParameterError, match=r"several signatures.*'encode', 'decode'"):
            LiteRTAdapter(path, name="m").open()
        ref = ModelRef(path=str(path), signature="decode")
        with load_model(ref, base_dir=Path.cwd()) as model:
            assert isinstance(model, LiteRTAdapter) and model.signature == "decode"
            out = model.predict({"input": x})["logits"]
        np.testing.assert_allclose(out, _float_mlp(layers, x), rtol=1e-5, atol=1e-5)
