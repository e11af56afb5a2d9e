"""fp16 / bf16 range losses: overflow to Inf and flush to zero, found per module."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from compval.numerics import analyze_torch_pair, low_precision_rates
from compval.numerics._lowprec import range_losses

torch = pytest.importorskip("torch")


def test_range_losses_count_hand_made_cases() -> None:
    reference = np.array([1e5, -7e4, 1.0, 1e-9, -2e-9, 3e-5, 0.0, np.inf])
    with np.errstate(over="ignore"):
        candidate = reference.astype(np.float16)  # what a float16 copy stores
    overflowed, flushed = range_losses(reference, candidate, "float16")
    # 1e5 and -7e4 exceed 65504; the reference's own Inf is not the candidate's fault.
    assert overflowed == 2
    # 1e-9 and -2e-9 round to 0; 3e-5 is subnormal but kept; 0 was 0.
    assert flushed == 2
    assert range_losses(reference[:6], reference[:6].astype(np.float32), "bfloat16") == (0, 0)


class _Wrap(torch.nn.Module):
    """Runs ``inner`` in ``dtype`` and returns float32, as a mixed-precision deployment does."""

    def __init__(self, inner: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).float()


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)
    )
    with torch.no_grad():
        model[0].weight.mul_(3000.0)  # large activations: some exceed float16's 65504
        model[2].weight.mul_(1e-11)  # tiny ones: some fall below float16's subnormals
        model[2].bias.zero_()
    return model.eval()


def _feeds() -> list[list[np.ndarray]]:
    x = np.random.default_rng(0).normal(scale=30.0, size=(96, 8)).astype(np.float32)
    return [[x[i : i + 32]] for i in range(0, 96, 32)]


def _expected(model: torch.nn.Module, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Independently: each module's float32 and float16 outputs, counted by hand."""
    out: dict[str, tuple[int, int, int]] = {}
    a32 = torch.from_numpy(x)
    a16 = a32.half()
    half = copy.deepcopy(model).half()
    with torch.no_grad():
        for name, (m32, m16) in enumerate(zip(model, half, strict=True)):
            a32, a16 = m32(a32), m16(a16)
            r, c = a32.double().numpy().ravel(), a16.double().numpy().ravel()
            over = int(np.sum(np.isfinite(r) & ~np.isfinite(c)))
            tiny = (r != 0) & (np.abs(r) < torch.finfo(torch.float16).tiny)
            out[f"inner.{name}"] = (r.size, over, int(np.sum(tiny & (c == 0))))
    return out


def test_float16_copy_overflow_and_flush_are_found_in_the_module_that_causes_them() -> None:
    reference = _Wrap(_model(), torch.float32).eval()
    candidate = _Wrap(copy.deepcopy(_model()), torch.float16).eval()
    result = analyze_torch_pair(reference, candidate, _feeds(), sqnr_threshold_db=20)
    by_name = {t.name: t for t in result.low_precision}
    expected = _expected(_model(), np.concatenate([f[0] for f in _feeds()]))
    assert set(by_name) == set(expected)
    for name, (elements, over, flushed) in expected.items():
        t = by_name[name]
        assert (t.dtype, t.elements, t.overflowed, t.flushed_to_zero) == (
            "float16",
            elements,
            over,
            flushed,
        ), name
    assert by_name["inner.0"].overflowed > 0 and by_name["inner.2"].flushed_to_zero > 0
    overflow, flush = low_precision_rates(result.low_precision)
    total = sum(e for e, _, _ in expected.values())
    assert overflow == pytest.approx(sum(o for _, o, _ in expected.values()) / total)
    assert flush == pytest.approx(sum(f for _, _, f in expected.values()) / total)


def test_bfloat16_keeps_the_range_and_float32_has_no_low_precision_tensors() -> None:
    reference = _Wrap(_model(), torch.float32).eval()
    bf16 = _Wrap(copy.deepcopy(_model()), torch.bfloat16).eval()
    result = analyze_torch_pair(reference, bf16, _feeds(), sqnr_threshold_db=20)
    assert {t.dtype for t in result.low_precision} == {"bfloat16"}
    # bfloat16 has float32's exponent range: nothing overflows, nothing flushes.
    assert low_precision_rates(result.low_precision) == (0.0, 0.0)
    same = analyze_torch_pair(reference, copy.deepcopy(reference), _feeds(), sqnr_threshold_db=20)
    assert same.low_precision == [] and low_precision_rates(same.low_precision) == (None, None)


def test_run_validation_gates_overflow_rate(tmp_path) -> None:
    from compval.engine import run_validation

    reference = _Wrap(_model(), torch.float32).eval()
    candidate = _Wrap(copy.deepcopy(_model()), torch.float16).eval()
    x = np.concatenate([f[0] for f in _feeds()])
    spec = {
        "version": 1,
        "task": "generic",
        "reference": {"name": "ref"},
        "candidates": [{"name": "fp16"}],
        "data": {"path": "unused.npz"},
        "batch_size": 32,
        "statistics": {"replicates": 0},
        "allow_nonfinite": True,
        "numerics": {"sample": 96},
        "criteria": [
            {"id": "overflow", "metric": "overflow_rate", "max": 0.0, "statistic": "point"},
            {"id": "flush", "metric": "flush_to_zero_rate", "max": 1.0, "statistic": "point"},
        ],
    }
    report = run_validation(spec, reference=reference, candidates={"fp16": candidate}, data=x)
    assert report.numerics is not None
    (cand,) = report.numerics.candidates
    assert cand.overflow_rate is not None and cand.overflow_rate > 0
    assert cand.low_precision and cand.low_precision[0].name == "inner.0"
    verdicts = {c.id: str(c.verdict) for c in report.checks}
    assert verdicts == {"overflow": "fail", "flush": "pass"}
    assert not report.passed
    from compval.reports._numerics import numerics_summary

    line = numerics_summary(cand, 20.0)
    assert "overflow" in line and "(first in 'inner.0')" in line


def test_a_numerics_criterion_without_the_section_is_a_spec_error() -> None:
    from compval.errors import SpecValidationError
    from compval.spec import load_spec

    spec = {
        "version": 1,
        "reference": {"path": "a.onnx"},
        "candidates": [{"path": "b.onnx"}],
        "data": {"path": "d.npz"},
        "criteria": [{"id": "ovf", "metric": "overflow_rate", "max": 0.0}],
    }
    with pytest.raises(SpecValidationError, match=r"add 'numerics: \{\}'"):
        load_spec(spec)
    load_spec({**spec, "numerics": {}})
