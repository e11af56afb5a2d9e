"""load_model and as_adapter: dispatch by extension and by object kind; import hygiene."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import (
    CallableAdapter,
    OnnxRuntimeAdapter,
    SklearnAdapter,
    TorchAdapter,
    as_adapter,
    load_model,
)
from compval.adapters._files import describe_file
from compval.errors import InvalidParameterError, ModelLoadError
from compval.spec._model import ModelRef

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def model_dir(
    tmp_path_factory: pytest.TempPathFactory,
    write_onnx: Any,
    weights: Any,
    torch_linear_factory: Any,
    logistic_regression: Any,
) -> Path:
    """One file per format, shared by the module's tests (which must not modify them)."""
    import joblib
    import torch

    tmp_path = tmp_path_factory.mktemp("models")
    torch_linear = torch_linear_factory(*weights)
    w, b = weights
    write_onnx(tmp_path / "fp32.onnx", w, b)
    torch.jit.script(torch_linear).save(str(tmp_path / "script.pt"))
    program = torch.export.export(
        torch_linear.eval(), (torch.zeros(2, 4),), dynamic_shapes=({0: torch.export.Dim("n")},)
    )
    torch.export.save(program, str(tmp_path / "exported.pt2"))
    joblib.dump(logistic_regression, tmp_path / "lr.joblib")
    return tmp_path


@pytest.mark.parametrize(
    ("file", "cls", "output"),
    [
        ("fp32.onnx", OnnxRuntimeAdapter, "logits"),
        ("script.pt", TorchAdapter, "output"),
        ("exported.pt2", TorchAdapter, "output"),
        ("lr.joblib", SklearnAdapter, "probabilities"),
    ],
)
def test_load_model_dispatches_on_extension(
    model_dir: Path, batch: np.ndarray, weights: Any, file: str, cls: type, output: str
) -> None:
    ref = ModelRef(path=file, allow_pickle=True)
    adapter = load_model(ref, base_dir=model_dir)
    assert type(adapter) is cls
    assert adapter.name == Path(file).stem
    with adapter:
        out = adapter.predict({"input": batch})
        assert adapter.info().path == str(model_dir / file)
    assert next(iter(out)) == output
    if output != "probabilities":
        w, b = weights
        np.testing.assert_allclose(out[output], batch @ w + b, rtol=1e-5, atol=1e-6)


def test_load_model_passes_name_and_threads(model_dir: Path) -> None:
    ref = ModelRef(name="reference", path="fp32.onnx", threads=2)
    with load_model(ref, base_dir=model_dir) as adapter:
        assert adapter.name == "reference"
        assert isinstance(adapter, OnnxRuntimeAdapter)
        assert adapter.session.get_session_options().intra_op_num_threads == 2


def test_load_model_absolute_path_ignores_base_dir(model_dir: Path, tmp_path: Path) -> None:
    ref = ModelRef(path=str(model_dir / "fp32.onnx"))
    adapter = load_model(ref, base_dir=tmp_path / "elsewhere")
    assert isinstance(adapter, OnnxRuntimeAdapter)
    assert adapter.path == model_dir / "fp32.onnx"


def test_explicit_adapter_overrides_extension(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes((model_dir / "fp32.onnx").read_bytes())
    ref = ModelRef(path="model.bin", adapter="onnxruntime")
    with load_model(ref, base_dir=tmp_path) as adapter:
        assert list(adapter.input_spec()) == ["input"]


def test_pickle_refused_without_allow_pickle(model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"lr\.joblib'.*loading refused.*--allow-pickle"):
        load_model(ModelRef(path="lr.joblib"), base_dir=model_dir)


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(
        ModelLoadError,
        match=r"model\.h5'.*got '\.h5', expected one of \.onnx, \.ort, \.pt, \.pth, \.ts, "
        r"\.torchscript, \.pt2, \.tflite, \.joblib, \.pkl, \.pickle.*set 'adapter:'",
    ):
        load_model(ModelRef(path="model.h5"), base_dir=tmp_path)


def test_missing_file_names_the_resolved_path(tmp_path: Path) -> None:
    resolved = tmp_path / "models" / "gone.onnx"
    with pytest.raises(ModelLoadError, match="file not found") as info:
        load_model(ModelRef(path="models/gone.onnx"), base_dir=tmp_path)
    assert repr(str(resolved)) in str(info.value)
    assert f"resolved against {tmp_path}" in str(info.value)


def test_model_ref_without_path() -> None:
    with pytest.raises(InvalidParameterError, match=r"Model 'ref': 'path' is missing"):
        load_model(ModelRef(name="ref"), base_dir=Path.cwd())


def test_as_adapter_dispatch(
    model_dir: Path, torch_linear: Any, logistic_regression: Any, batch: np.ndarray
) -> None:
    existing = CallableAdapter(abs, name="abs")
    assert as_adapter(existing, name="ignored") is existing
    assert isinstance(as_adapter(str(model_dir / "fp32.onnx"), name="a"), OnnxRuntimeAdapter)
    from_path = as_adapter(model_dir / "script.pt", name="p", threads=1)
    assert isinstance(from_path, TorchAdapter) and from_path.name == "p"
    torch_adapter = as_adapter(torch_linear, name="t")
    assert isinstance(torch_adapter, TorchAdapter) and torch_adapter.path is None
    assert isinstance(as_adapter(logistic_regression, name="s"), SklearnAdapter)
    fn = as_adapter(lambda x: x, name="f")
    assert isinstance(fn, CallableAdapter)
    with fn:
        np.testing.assert_array_equal(fn.predict({"input": batch})["output"], batch)


def test_as_adapter_relative_path_uses_cwd(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_dir)
    adapter = as_adapter("fp32.onnx", name="rel")
    assert isinstance(adapter, OnnxRuntimeAdapter)
    assert adapter.path == model_dir / "fp32.onnx"


def test_as_adapter_refuses_pickle_path(model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"allow_pickle=True\) in Python"):
        as_adapter(model_dir / "lr.joblib", name="lr")


@pytest.mark.parametrize(
    ("obj", "threads", "message"),
    [
        (42, None, r"cannot be used as a model; got an object of type int"),
        (SklearnAdapter, None, r"got the class SklearnAdapter, expected an instance"),
        (abs, 0, r"'threads' must be an int >= 1 or None; got 0"),
    ],
)
def test_as_adapter_rejects(obj: Any, threads: Any, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        as_adapter(obj, name="x", threads=threads)


def test_import_does_not_load_runtimes() -> None:
    code = (
        "import sys, compval.adapters\n"
        "heavy = [m for m in ('onnxruntime', 'onnx', 'torch', 'sklearn', 'joblib') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "an empty file (0 bytes)"),
        (pickle.dumps([1], protocol=5), "a Python pickle (protocol 5) of"),
        (b"version: 1\n", "a text file starting with 'version: 1\\n' of 11 bytes"),
        (b"\x00\x01\x02\xff", "unrecognised binary data (starting with 000102ff) of 4 bytes"),
        (b"PK\x03\x04broken", "a damaged zip archive of 10 bytes"),
    ],
)
def test_describe_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    assert describe_file(path).startswith(expected)


def test_describe_file_recognises_torch_archives(tmp_path: Path, torch_linear: Any) -> None:
    import torch

    torch.save(torch_linear.state_dict(), str(tmp_path / "sd.pt"))
    torch.jit.script(torch_linear).save(str(tmp_path / "ts.pt"))
    assert describe_file(tmp_path / "sd.pt").startswith("a torch.save checkpoint")
    assert describe_file(tmp_path / "ts.pt").startswith("a TorchScript archive")
    assert describe_file(tmp_path / "none").startswith("an unreadable file")
