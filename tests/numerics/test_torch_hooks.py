"""Per-module localization of torch pairs through forward hooks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from compval.numerics import analyze_torch_pair

torch = pytest.importorskip("torch")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 4),
    ).eval()


def _feeds(rows: int = 128) -> list[list[np.ndarray]]:
    x = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    return [[x[i : i + 32]] for i in range(0, rows, 32)]


def test_a_perturbed_layer_is_ranked_first_and_its_inputs_are_exact() -> None:
    reference = _mlp()
    candidate = copy.deepcopy(reference)
    with torch.no_grad():
        weight = candidate[2].weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)))
    result = analyze_torch_pair(reference, candidate, _feeds(), sqnr_threshold_db=20)
    assert [layer.name for layer in result.layers][:1] == ["2"]
    assert result.first_divergent == "2"
    culprit = result.layers[0]
    assert culprit.op_type == "Linear" and math.isinf(culprit.growth_db)
    # Upstream modules are untouched; downstream ones inherit the error and add little.
    by_name = {layer.name: layer for layer in result.layers}
    assert math.isinf(by_name["0"].sqnr_db) and math.isinf(by_name["1"].sqnr_db)
    assert abs(by_name["3"].growth_db) < 3 and result.unmatched == []
    # The output error, independently: the full forward passes.
    x = torch.from_numpy(np.concatenate([f[0] for f in _feeds()]))
    with torch.no_grad():
        ref, cand = reference(x).double().numpy(), candidate(x).double().numpy()
    expected = 10 * math.log10(np.sum(ref**2) / np.sum((cand - ref) ** 2))
    assert by_name["4"].sqnr_db == pytest.approx(expected, rel=1e-9)


# torch 2.9 deprecates torch.ao.quantization (moving to torchao); it still quantizes.
@pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated:DeprecationWarning")
def test_torch_ao_dynamic_int8_copy_is_matched_module_by_module() -> None:
    reference = _mlp()
    quantized = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(reference), {torch.nn.Linear}, dtype=torch.qint8
    )
    result = analyze_torch_pair(reference, quantized, _feeds(), sqnr_threshold_db=20)
    assert {layer.name for layer in result.layers} == {"0", "1", "2", "3", "4"}
    assert result.unmatched == [] and result.first_divergent is None
    assert 20 < result.layer_min_sqnr_db < 80


def test_run_validation_localizes_in_memory_modules() -> None:
    from compval.engine import run_validation

    reference = _mlp()
    candidate = copy.deepcopy(reference)
    with torch.no_grad():
        candidate[4].bias.add_(5.0)
    x = np.concatenate([f[0] for f in _feeds()])
    spec = {
        "version": 1,
        "task": "generic",
        "reference": {"name": "ref"},
        "candidates": [{"name": "cand"}],
        "data": {"path": "unused.npz"},
        "batch_size": 32,
        "statistics": {"replicates": 0},
        "allow_nonfinite": True,
        "numerics": {"sample": 64},
    }
    report = run_validation(spec, reference=reference, candidates={"cand": candidate}, data=x)
    assert report.numerics is not None
    (cand,) = report.numerics.candidates
    assert cand.first_divergent == "4" and cand.layers[0].name == "4"
    assert cand.batch is not None and cand.batch.run_max_abs_diff == 0.0
