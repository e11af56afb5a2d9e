"""torch precision candidates (``dtype``, ``from: reference``) and devices, on CPU.

bfloat16 and float16 run on CPU too, so everything here but the GPU itself is tested on any
machine; tests/adapters/test_gpu.py repeats the device part on a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import OnnxRuntimeAdapter, TorchAdapter, derive_model, load_model
from compval.engine import run_validation
from compval.errors import InvalidParameterError, ModelLoadError, ProfilingError, SpecError
from compval.spec import ModelRef, spec_from_mapping

torch = pytest.importorskip("torch")


def _mlp(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 3)
    ).eval()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(64, 8)).astype(np.float32)


@pytest.mark.parametrize(
    ("dtype", "eps"), [("bfloat16", 2.0**-8), ("float16", 2.0**-11)], ids=["bf16", "fp16"]
)
def test_precision_matches_torch_in_that_precision(dtype: str, eps: float, x: np.ndarray) -> None:
    module = _mlp()
    with TorchAdapter(module, name=dtype, dtype=dtype) as adapter:
        out = adapter.predict({"input": x})["output"]
    assert out.dtype == np.float32  # scored as float32 whatever ran
    low = getattr(torch, dtype)
    with torch.inference_mode():
        expected = _mlp().to(low)(torch.from_numpy(x).to(low)).float().numpy()
        fp32 = _mlp()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(out, expected)
    # Really reduced precision: off the float32 result, but within a few units of rounding.
    scale = np.abs(fp32).max()
    assert 0 < np.abs(out - fp32).max() <= 64 * eps * scale
    # The caller's module was copied, not cast in place.
    assert next(module.parameters()).dtype == torch.float32


def test_derived_from_a_torchscript_file_reloads_it(tmp_path: Path, x: np.ndarray) -> None:
    path = tmp_path / "mlp.pt"
    torch.jit.script(_mlp()).save(str(path))
    fp32 = load_model(ModelRef(path=str(path), name="fp32"), base_dir=tmp_path)
    bf16 = derive_model(
        fp32, ModelRef(name="bf16", dtype="bfloat16", **{"from": "reference"}), name="bf16"
    )
    assert isinstance(bf16, TorchAdapter)
    assert (bf16.name, bf16.dtype, bf16.path, fp32.dtype) == ("bf16", "bfloat16", path, None)
    with fp32, bf16:
        a = fp32.predict({"input": x})["output"]
        b = bf16.predict({"input": x})["output"]
        assert bf16.info().device == "cpu"
        # The file holds the fp32 module: neither its size nor a reload of it is the bf16 one.
        assert (fp32.model_file, bf16.model_file) == (path, None)
        n_params = sum(p.numel() for p in _mlp().parameters())
        assert bf16.info().size_bytes == 2 * n_params
        assert fp32.info().size_bytes == path.stat().st_size
    with torch.inference_mode():
        expected = _mlp().to(torch.bfloat16)(torch.from_numpy(x).bfloat16()).float().numpy()
    np.testing.assert_allclose(b, expected, rtol=0, atol=0.05)
    assert not np.array_equal(a, b)


def test_only_torch_models_can_be_recast(onnx_path: Path) -> None:
    ref = ModelRef(name="bf16", dtype="bfloat16", **{"from": "reference"})
    with pytest.raises(InvalidParameterError, match=r"can only re-cast a torch model.*onnxruntime"):
        derive_model(OnnxRuntimeAdapter(onnx_path, name="ref"), ref, name="bf16")


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: tests/adapters/test_gpu.py covers it")
    with pytest.raises(ModelLoadError, match=r"device 'cuda:0' is not available.*set device: cpu"):
        TorchAdapter(_mlp(), name="gpu", device="cuda:0").open()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"from": "reference", "path": "m.pt", "dtype": "float16"}, "'from' and 'path' exclude"),
        ({"from": "reference"}, "needs 'dtype' or 'device'"),
        ({"path": "m.pt", "device": "gpu"}, "device"),
        ({"path": "m.pt", "dtype": "int8"}, "dtype"),
    ],
)
def test_spec_refuses_bad_entries(entry: dict[str, Any], message: str) -> None:
    spec = {
        "version": 1,
        "reference": {"path": "r.pt"},
        "candidates": [entry],
        "data": {"path": "d.npz"},
    }
    with pytest.raises(SpecError, match=message):
        spec_from_mapping(spec)


SPEC: dict[str, Any] = {
    "version": 1,
    "reference": {"name": "fp32"},
    "candidates": [
        {"name": "bf16", "from": "reference", "dtype": "bfloat16"},
        {"name": "fp16", "from": "reference", "dtype": "float16"},
    ],
    "data": {"path": "in-memory"},
    "statistics": {"replicates": 0},
    "criteria": [{"id": "agree", "metric": "top1_agreement", "min": 0.9}],
}


def test_validation_with_precision_candidates(x: np.ndarray) -> None:
    module = _mlp()
    with torch.inference_mode():
        labels = module(torch.from_numpy(x)).argmax(1).numpy()
    report = run_validation(spec_from_mapping(SPEC), reference=module, data=(x, labels))
    models = report.run.models
    assert (models["bf16"]["dtype"], models["fp16"]["dtype"]) == ("bfloat16", "float16")
    assert "dtype" not in models["fp32"]
    assert report.candidates == ("bf16", "fp16")
    assert report.passed
    agreement = {
        m.candidate: m.candidate_value
        for m in report.metrics
        if m.metric == "top1_agreement" and m.segment in (None, "overall")
    }
    assert set(agreement) == {"bf16", "fp16"} and min(agreement.values()) >= 0.9


class TestProviderFallback:
    """A requested ONNX Runtime provider that is not active (simulated: this build is CPU-only)."""

    def _spec(self, onnx_path: Path, performance: dict[str, Any] | None) -> Any:
        spec: dict[str, Any] = {
            "version": 1,
            "reference": {"path": str(onnx_path), "name": "ref"},
            "candidates": [{"path": str(onnx_path), "name": "gpu"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
        }
        if performance is not None:
            spec["performance"] = performance
        return spec_from_mapping(spec)

    @pytest.fixture
    def fallen_back(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def missing(self: OnnxRuntimeAdapter) -> tuple[str, ...]:
            return ("CUDAExecutionProvider",) if self.name == "gpu" else ()

        monkeypatch.setattr(OnnxRuntimeAdapter, "inactive_devices", missing)
        monkeypatch.setattr(
            OnnxRuntimeAdapter,
            "run_notes",
            lambda self: ["WARNING: fell back"] if self.name == "gpu" else [],
        )

    def test_a_warning_note_without_budgets(
        self, onnx_path: Path, batch: np.ndarray, fallen_back: None
    ) -> None:
        data = (batch, np.arange(len(batch)) % 3)
        report = run_validation(self._spec(onnx_path, None), data=data)
        assert "WARNING: fell back" in report.run.notes
        assert report.run.models["gpu"]["execution_providers"] == ["CPUExecutionProvider"]

    def test_an_error_under_performance_budgets(
        self, onnx_path: Path, batch: np.ndarray, fallen_back: None
    ) -> None:
        performance = {
            "rounds": 2,
            "batch_sizes": [2],
            "budgets": [{"id": "p95", "metric": "latency_p95_ms[batch=2]", "max": 1000}],
        }
        data = (batch, np.arange(len(batch)) % 3)
        with pytest.raises(ProfilingError, match=r"'gpu': \['CUDAExecutionProvider'\]"):
            run_validation(self._spec(onnx_path, performance), data=data)


def test_cloud_gpu_target_refuses_models_on_the_cpu(x: np.ndarray) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the bf16 candidate could be put on it")
    spec = spec_from_mapping({**SPEC, "performance": {"target": "cloud-gpu"}})
    labels = np.arange(len(x)) % 3
    with pytest.raises(
        ProfilingError, match=r"'cloud-gpu' times models on a GPU; got \{'fp32': 'cpu'"
    ):
        run_validation(spec, reference=_mlp(), data=(x, labels))
