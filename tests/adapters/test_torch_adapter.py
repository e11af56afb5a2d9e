"""TorchAdapter: TorchScript and torch.export files, pickle refusal, output structures."""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
import torch

from compval.adapters import TorchAdapter
from compval.errors import (
    InferenceError,
    InputMismatchError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
)

pytestmark = pytest.mark.torch


def _module_output(module: Any, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(batch.copy())).numpy())


def test_torchscript_roundtrip(tmp_path: Path, torch_linear: Any, batch: np.ndarray) -> None:
    path = tmp_path / "linear.pt"
    torch.jit.script(torch_linear).save(str(path))
    with TorchAdapter.from_torchscript(path, name="ts", threads=None) as model:
        out = model.predict({"input": batch})
        info = model.info()
    np.testing.assert_allclose(out["output"], _module_output(torch_linear, batch), rtol=1e-6)
    assert info.model_id == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.path == str(path)
    assert info.size_bytes == path.stat().st_size
    assert model.path == path


def test_export_roundtrip_with_dynamic_batch(
    tmp_path: Path, torch_linear: Any, batch: np.ndarray
) -> None:
    path = tmp_path / "linear.pt2"
    example = (torch.zeros(2, 4),)
    program = torch.export.export(
        torch_linear.eval(), example, dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(path))
    with TorchAdapter.from_export(path, name="ex") as model:
        out = model.predict({"input": batch})
        single = model.predict({"input": batch[:1]})
    expected = _module_output(torch_linear, batch)
    np.testing.assert_allclose(out["output"], expected, rtol=1e-6)
    np.testing.assert_allclose(single["output"], expected[:1], rtol=1e-6)


def test_export_with_fixed_batch_fails_with_a_hint(
    tmp_path: Path, torch_linear: Any, batch: np.ndarray
) -> None:
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(torch_linear.eval(), (torch.zeros(2, 4),)), str(path))
    with TorchAdapter.from_export(path, name="fixed") as model:
        assert model.predict({"input": batch[:2]})["output"].shape == (2, 3)
        with pytest.raises(InferenceError, match=r"torch failed on a batch.*dynamic_shapes"):
            model.predict({"input": batch})


def test_state_dict_checkpoint_is_refused(tmp_path: Path, torch_linear: Any) -> None:
    path = tmp_path / "weights.pt"
    torch.save(torch_linear.state_dict(), str(path))
    model = TorchAdapter.from_torchscript(path, name="sd")
    with pytest.raises(
        ModelLoadError,
        match=r"not a TorchScript archive; got a torch\.save checkpoint.*does not unpickle \.pt "
        r"checkpoints.*torch\.jit\.script\(model\).*torch\.export\.save",
    ):
        model.open()
    assert not model.is_open


def test_legacy_pickle_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
    with pytest.raises(ModelLoadError, match=r"got a Python pickle \(protocol 2\)"):
        TorchAdapter.from_torchscript(path, name="legacy").open()


def test_damaged_torchscript_archive(tmp_path: Path, torch_linear: Any) -> None:
    good = tmp_path / "good.pt"
    torch.jit.script(torch_linear).save(str(good))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:-200])  # truncated: the zip directory is gone
    with pytest.raises(ModelLoadError, match="not a TorchScript archive"):
        TorchAdapter.from_torchscript(bad, name="bad").open()


def test_torchscript_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"missing\.pt'.*file not found"):
        TorchAdapter.from_torchscript(tmp_path / "missing.pt", name="m").open()


@pytest.mark.parametrize(
    ("content", "found"),
    [(b"garbage bytes", "a text file"), (None, "a TorchScript archive")],
)
def test_not_an_export_archive(
    tmp_path: Path, torch_linear: Any, content: bytes | None, found: str
) -> None:
    path = tmp_path / "model.pt2"
    if content is None:
        torch.jit.script(torch_linear).save(str(path))
    else:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=rf"not a loadable torch\.export archive; got {found}"):
        TorchAdapter.from_export(path, name="m").open()


def test_in_memory_module_info_and_eval_mode(torch_linear: Any) -> None:
    torch_linear.train()
    with TorchAdapter(torch_linear, name="lin") as model:
        info = model.info()
        assert model.module is torch_linear
    assert not torch_linear.training
    assert info.model_id == "python:Linear"
    assert info.path is None and info.size_bytes is None
    assert info.runtime_version == torch.__version__


class _Heads(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, a: Any, b: Any) -> Any:
        if self.kind == "tuple":
            return a + b, (a * b).to(torch.bfloat16)
        return {"sum": a + b, "diff": a - b}


def test_two_inputs_and_tuple_outputs(batch: np.ndarray) -> None:
    other = batch[::-1].copy()
    with TorchAdapter(_Heads("tuple"), name="h", input_names=("a", "b")) as model:
        out = model.predict({"a": batch, "b": other})
    assert list(out) == ["output_0", "output_1"]
    np.testing.assert_allclose(out["output_0"], batch + other, rtol=1e-6)
    assert out["output_1"].dtype == np.float32  # bfloat16 widened for numpy
    np.testing.assert_allclose(out["output_1"], batch * other, rtol=1e-2)


def test_dict_outputs_keep_keys(batch: np.ndarray) -> None:
    with TorchAdapter(_Heads("dict"), name="h", input_names=("a", "b")) as model:
        out = model.predict({"a": batch, "b": batch})
    assert list(out) == ["sum", "diff"]
    np.testing.assert_array_equal(out["diff"], np.zeros_like(batch))


def test_read_only_and_strided_inputs_do_not_warn(torch_linear: Any, batch: np.ndarray) -> None:
    frozen = batch.copy()
    frozen.flags.writeable = False
    strided = np.asfortranarray(batch)
    with TorchAdapter(torch_linear, name="lin") as model:
        a = model.predict({"input": frozen})["output"]
        b = model.predict({"input": strided})["output"]
    np.testing.assert_array_equal(a, b)


def test_input_dtype_is_checked(torch_linear: Any, batch: np.ndarray) -> None:
    with (
        TorchAdapter(torch_linear, name="lin") as model,
        pytest.raises(InputMismatchError, match=r"'input' has dtype float64; expected float32"),
    ):
        model.predict({"input": batch.astype(np.float64)})


def test_threads_sets_torch_threads(torch_linear: Any) -> None:
    before = torch.get_num_threads()
    try:
        with TorchAdapter(torch_linear, name="lin", threads=1):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_dtype": "not-a-dtype"}, "'input_dtype' is not a numpy dtype"),
        ({"input_names": ()}, "'input_names' must be non-empty"),
        ({"input_names": ("a", "a")}, "no repeats"),
        ({"input_names": "input"}, "'input_names' must be a sequence of non-empty strings"),
        ({"threads": 0}, "'threads' must be an int >= 1"),
    ],
)
def test_bad_parameters(torch_linear: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        TorchAdapter(torch_linear, name="lin", **kwargs)


def test_missing_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'compval\[torch\]'"):
        TorchAdapter.from_torchscript(tmp_path / "m.pt", name="m").open()
