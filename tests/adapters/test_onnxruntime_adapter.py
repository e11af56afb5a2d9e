"""OnnxRuntimeAdapter: input checks, output order, load errors and file identity."""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import OnnxRuntimeAdapter
from compval.errors import (
    InferenceError,
    InputMismatchError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
)


@pytest.fixture
def adapter(onnx_path: Path) -> Any:
    with OnnxRuntimeAdapter(onnx_path, name="fp32", threads=1) as opened:
        yield opened


@pytest.fixture
def two_outputs(tmp_path: Path, write_onnx: Any, weights: tuple[np.ndarray, np.ndarray]) -> Any:
    """The linear model with its softmax output first: outputs (probabilities, logits)."""
    w, b = weights
    path = write_onnx(tmp_path / "two.onnx", w, b, with_softmax_first=True)
    with OnnxRuntimeAdapter(path, name="two") as opened:
        yield opened


def test_input_spec_maps_type_and_symbolic_batch(adapter: OnnxRuntimeAdapter) -> None:
    (spec,) = adapter.input_spec().values()
    assert spec.name == "input"
    assert spec.dtype == np.dtype(np.float32)
    assert spec.shape == (None, 4)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 4), np.float64), r"'input' has dtype float64; expected float32\[\?, 4\]"),
        (np.zeros((2, 5), np.float32), r"'input' has shape \(2, 5\); expected float32\[\?, 4\]"),
        (np.zeros((2, 4, 1), np.float32), r"has shape \(2, 4, 1\)"),
    ],
)
def test_input_mismatch(adapter: OnnxRuntimeAdapter, array: np.ndarray, message: str) -> None:
    with pytest.raises(InputMismatchError, match=message):
        adapter.predict({"input": array})


def test_wrong_input_name(adapter: OnnxRuntimeAdapter) -> None:
    with pytest.raises(InputMismatchError, match=r"got \['features'\], expected \['input'\]"):
        adapter.predict({"features": np.zeros((2, 4), np.float32)})


def test_outputs_follow_the_model_order(
    two_outputs: OnnxRuntimeAdapter, weights: tuple[np.ndarray, np.ndarray], batch: np.ndarray
) -> None:
    w, b = weights
    out = two_outputs.predict({"input": batch})
    assert list(out) == ["probabilities", "logits"]  # the model's order, not sorted
    logits = batch.astype(np.float64) @ w + b
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5)


def test_info_hashes_the_file(onnx_path: Path, adapter: OnnxRuntimeAdapter) -> None:
    import onnxruntime

    info = adapter.info()
    assert info.model_id == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert info.path == str(onnx_path)
    assert info.size_bytes == onnx_path.stat().st_size
    assert info.runtime_version == onnxruntime.__version__


def test_session_options_follow_threads(onnx_path: Path, adapter: OnnxRuntimeAdapter) -> None:
    assert adapter.path == onnx_path
    options = adapter.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert adapter.session.get_providers() == ["CPUExecutionProvider"]


def _spins(adapter: OnnxRuntimeAdapter) -> bool:
    """Whether the session's intra-op threads spin while waiting (ONNX Runtime's default)."""
    options = adapter.session.get_session_options()
    try:
        return bool(options.get_session_config_entry("session.intra_op.allow_spinning") != "0")
    except Exception:  # onnxruntime raises when the entry was never set: the default, "1"
        return True


def test_scoring_sessions_sleep_and_timed_sessions_spin_as_deployed(onnx_path: Path) -> None:
    scoring = OnnxRuntimeAdapter(onnx_path, name="m", threads=1)
    timed = scoring.with_threads(1)
    assert timed is not scoring  # the scoring session is never timed
    assert timed.with_threads(1) is timed
    with scoring, timed:
        assert not _spins(scoring)
        assert _spins(timed)
        x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
        (name,) = scoring.input_spec()
        # Spinning changes how a thread waits, not what it computes.
        for a, b in zip(
            scoring.predict({name: x}).values(), timed.predict({name: x}).values(), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_session_property_opens_the_adapter(onnx_path: Path) -> None:
    model = OnnxRuntimeAdapter(onnx_path, name="m")
    assert model.session is not None
    assert model.is_open
    model.close()


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    model = OnnxRuntimeAdapter(missing, name="m")
    with pytest.raises(ModelLoadError, match=r"nope\.onnx'.*file not found.*Check the path"):
        model.open()
    assert not model.is_open


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"\x08\x07\x12\x03abc\xff\xfe\x00garbage", "binary data that looks like a protobuf"),
        (b"", "an empty file"),
        (pickle.dumps({"weights": [1, 2]}, protocol=4), r"a Python pickle \(protocol 4\)"),
        (b"this is a text file, not a model\n", "a text file starting with 'this is a text"),
    ],
)
def test_unloadable_file(tmp_path: Path, content: bytes, found: str) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=rf"broken\.onnx'.*cannot load it; got {found}") as e:
        OnnxRuntimeAdapter(path, name="m").open()
    assert "Re-export the model" in str(e.value)
    assert "(onnxruntime:" in str(e.value)


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory"):
        OnnxRuntimeAdapter(tmp_path, name="m").open()


def test_unknown_provider(onnx_path: Path) -> None:
    model = OnnxRuntimeAdapter(onnx_path, name="m", providers=["NoSuchExecutionProvider"])
    with pytest.raises(InvalidParameterError, match=r"\['NoSuchExecutionProvider'\] are not"):
        model.open()


@pytest.mark.parametrize("threads", [0, -2, 1.5, True])
def test_bad_threads(onnx_path: Path, threads: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"'threads' must be an int >= 1"):
        OnnxRuntimeAdapter(onnx_path, name="m", threads=threads)


@pytest.mark.parametrize("providers", [[], "CPUExecutionProvider"])
def test_bad_providers(onnx_path: Path, providers: Any) -> None:
    with pytest.raises(InvalidParameterError, match="'providers' must be a non-empty sequence"):
        OnnxRuntimeAdapter(onnx_path, name="m", providers=providers)


def test_missing_onnxruntime(onnx_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'compval\[onnx\]'"):
        OnnxRuntimeAdapter(onnx_path, name="m").open()


def test_runtime_failure_becomes_inference_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # Reshape to (-1, 3) is valid for the declared shape [N, 4] only when 4N divides by 3.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["out"])],
        "reshape",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "reshape.onnx"
    onnx.save(model, str(path))
    with OnnxRuntimeAdapter(path, name="r") as adapter:
        assert adapter.predict({"input": np.zeros((3, 4), np.float32)})["out"].shape == (4, 3)
        with pytest.raises(InferenceError, match=r"Model 'r': the runtime failed on a batch"):
            adapter.predict({"input": np.zeros((2, 4), np.float32)})


def test_a_provider_that_does_not_start_is_inactive_and_noted(
    onnx_path: Path, batch: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime-gpu lists CUDA as available on a machine without a GPU, then runs on CPU.

    The CPU build is told that CUDA is available (as onnxruntime-gpu says on a machine without
    a GPU); the real session then falls back to the CPU with only a Python warning.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build can run CUDA: nothing falls back")
    listed = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    model = OnnxRuntimeAdapter(onnx_path, name="gpu", providers=providers)
    assert model.run_notes() == []  # nothing known before the session exists
    with pytest.warns(UserWarning, match="not in available provider names"), model:
        out = model.predict({"input": batch})["logits"]
        assert model.inactive_devices() == ("CUDAExecutionProvider",)
        assert model.execution_providers() == ("CPUExecutionProvider",)
    assert out.shape == (len(batch), 3)
    (note,) = model.run_notes()  # still answers after close(): the engine asks after the run
    assert "'gpu'" in note and "['CUDAExecutionProvider']" in note
    assert "it runs on ['CPUExecutionProvider']" in note


def test_active_providers_leave_no_note(adapter: OnnxRuntimeAdapter) -> None:
    assert adapter.inactive_devices() == ()
    assert adapter.run_notes() == []
    assert adapter.max_concurrent_batches == 1


def test_provider_options_reach_the_session_in_provider_order(
    onnx_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the spec's provider_options say is what InferenceSession gets, per provider in
    priority order ({} for a provider without options), for the run and the timed reload."""
    import onnxruntime as ort

    from compval.adapters import load_model
    from compval.spec import ModelRef

    seen: list[Any] = []
    real = ort.InferenceSession

    def spy(path: str, **kwargs: Any) -> Any:
        seen.append((kwargs["providers"], kwargs.get("provider_options")))
        return real(path, sess_options=kwargs["sess_options"], providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"],
    )
    ref = ModelRef.model_validate(
        {
            "name": "trt",
            "path": str(onnx_path),
            "providers": ["TensorrtExecutionProvider", "CPUExecutionProvider"],
            "provider_options": {"TensorrtExecutionProvider": {"trt_fp16_enable": True}},
        }
    )
    adapter = load_model(ref, base_dir=onnx_path.parent)
    with adapter:
        adapter.time_reload(threads=None)
    expected = [{"trt_fp16_enable": True}, {}]
    assert seen[0] == (["TensorrtExecutionProvider", "CPUExecutionProvider"], expected)
    # The reload uses the active providers (here the spy's CPU) with their own options.
    assert seen[1] == (["CPUExecutionProvider"], [{}])
    assert adapter.with_threads(2)._provider_options == {
        "TensorrtExecutionProvider": {"trt_fp16_enable": True}
    }


def test_provider_options_must_name_a_requested_provider(onnx_path: Path) -> None:
    from compval.spec import ModelRef

    with pytest.raises(ValueError, match=r"provider\(s\) \['CUDAExecutionProvider'\] that are"):
        ModelRef.model_validate(
            {"path": "m.onnx", "provider_options": {"CUDAExecutionProvider": {"device_id": 1}}}
        )
    with pytest.raises(InvalidParameterError, match="not in providers"):
        OnnxRuntimeAdapter(
            onnx_path, name="m", provider_options={"CUDAExecutionProvider": {"device_id": 1}}
        )


def test_asked_outputs_only_are_computed_with_the_same_values(
    two_outputs: OnnxRuntimeAdapter, batch: np.ndarray
) -> None:
    every = two_outputs.predict({"input": batch})
    some = two_outputs.predict({"input": batch}, outputs=("logits",))
    unknown = two_outputs.predict({"input": batch}, outputs=("nothing",))
    assert list(some) == ["logits"]
    assert np.array_equal(some["logits"], every["logits"])
    assert list(unknown) == ["probabilities", "logits"]  # no known name: every output


def test_skl2onnx_probabilities_alone_equal_those_of_the_full_run(tmp_path: Path) -> None:
    """A real export with zipmap (the exporter's default): label and probability maps; the
    probabilities asked alone are the same scores, and the classes are still read."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)]
    onx = skl2onnx.to_onnx(LogisticRegression(max_iter=200).fit(x, y), x[:1])
    names = [o.name for o in onx.graph.output]
    path = tmp_path / "lr.onnx"
    path.write_bytes(onx.SerializeToString())
    with OnnxRuntimeAdapter(path, name="lr") as model:
        alone = model.predict({"X": x}, outputs=(names[1],))
        assert model.classes == ("cat", "dog", "eel")
        every = model.predict({"X": x})
    assert list(alone) == [names[1]]
    assert np.array_equal(alone[names[1]], every[names[1]])
