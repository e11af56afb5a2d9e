"""torch and ONNX Runtime on a GPU; skipped with a reason where none is visible.

``benchmarks/gpu_check.sh`` runs this file on a GPU machine together with bench_gpu.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import OnnxRuntimeAdapter, TorchAdapter
from compval.engine import run_validation
from compval.spec import spec_from_mapping

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device visible to torch"
)


def _mlp() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 4)
    ).eval()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)


def test_cuda_module_matches_cpu(x: np.ndarray) -> None:
    with TorchAdapter(_mlp(), name="gpu", device="cuda") as gpu:
        out = gpu.predict({"input": x})["output"]
        info = gpu.info()
        details = gpu.device_details()
    with torch.inference_mode():
        expected = _mlp()(torch.from_numpy(x)).numpy()
    assert isinstance(out, np.ndarray) and out.dtype == np.float32  # back on the host
    # TF32 may be on for matmuls: about 10 bits of mantissa.
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=2e-3)
    assert info.device == "cuda:0"
    assert details is not None
    assert details["name"] == torch.cuda.get_device_name(0)
    assert details["peak_memory_bytes"] > 0


def test_predict_on_device_keeps_the_outputs_on_the_gpu(x: np.ndarray) -> None:
    """The causal LM task's path: outputs stay device tensors, in the model's own dtype."""
    with TorchAdapter(_mlp(), name="gpu", device="cuda", dtype="bfloat16") as gpu:
        kept = gpu.predict_on_device({"input": x})["output"]
        host = gpu.predict({"input": x})["output"]
    assert isinstance(kept, torch.Tensor) and kept.device.type == "cuda"
    assert kept.dtype == torch.bfloat16
    np.testing.assert_array_equal(kept.float().cpu().numpy(), host)


def test_causal_lm_per_token_values_on_the_gpu() -> None:
    """token_values on device tensors equals the numpy path within 1e-5 (float32 on the GPU)."""
    from compval.tasks.causal_lm import token_values

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(4, 12, 300)).astype(np.float32)
    cand = ref + rng.normal(scale=0.05, size=ref.shape).astype(np.float32)
    ids = rng.integers(0, 300, size=(4, 12))
    mask = np.ones((4, 12), dtype=np.int64)
    mask[1, 8:] = 0
    host = token_values(ref, cand, ids, mask)
    # The reference as numpy (another runtime), the candidate on the GPU.
    device = token_values(ref, torch.from_numpy(cand).cuda(), ids, mask)
    for field in ("nll_ref", "nll_cand", "kl", "same_top"):
        np.testing.assert_allclose(getattr(device, field), getattr(host, field), atol=1e-5)


def test_bf16_candidate_on_the_gpu(x: np.ndarray) -> None:
    fp32 = TorchAdapter(_mlp(), name="fp32")
    bf16 = fp32.derived(name="bf16", dtype="bfloat16", device="cuda")
    with fp32, bf16:
        a = fp32.predict({"input": x})["output"]
        b = bf16.predict({"input": x})["output"]
        assert next(bf16.module.parameters()).device.type == "cuda"
        assert next(fp32.module.parameters()).device.type == "cpu"  # the reference stays put
    with torch.inference_mode():
        module = _mlp().cuda().bfloat16()
        expected = module(torch.from_numpy(x).cuda().bfloat16()).float().cpu().numpy()
    np.testing.assert_allclose(b, expected, rtol=0, atol=1e-2)
    assert 0 < np.abs(a - b).max() < 0.1


def test_timed_call_synchronizes(x: np.ndarray) -> None:
    with TorchAdapter(_mlp(), name="gpu", device="cuda") as gpu:
        call = gpu.timed_call({"input": x})
        out = call()
        # After the call returns the work is done: the stream has nothing queued.
        assert torch.cuda.current_stream().query()
        assert tuple(out.shape) == (256, 4)


def test_validation_records_the_device(x: np.ndarray) -> None:
    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"name": "fp32"},
            "candidates": [
                {"name": "bf16", "from": "reference", "dtype": "bfloat16", "device": "cuda"}
            ],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "agree", "metric": "top1_agreement", "min": 0.9}],
        }
    )
    module = _mlp()
    with torch.inference_mode():
        labels = module(torch.from_numpy(x)).argmax(1).numpy()
    report = run_validation(spec, reference=module, data=(x, labels))
    model = report.run.models["bf16"]
    assert model["device"] == "cuda:0"
    assert model["device_details"]["name"] == torch.cuda.get_device_name(0)
    assert report.passed


def test_onnxruntime_cuda_provider_is_active(onnx_path: Path, x: np.ndarray) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDAExecutionProvider (onnxruntime-gpu)")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with OnnxRuntimeAdapter(onnx_path, name="gpu", providers=providers) as adapter:
        out = adapter.predict({"input": x[:, :4]})["logits"]
        assert adapter.execution_providers()[0] == "CUDAExecutionProvider"
        assert adapter.inactive_devices() == ()
        assert adapter.run_notes() == []
        assert adapter.info().device == "CUDAExecutionProvider"
    assert out.shape == (256, 3)
