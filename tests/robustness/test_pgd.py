"""Gradient-based search (PGD) on real torch modules: a digits MLP and a copy with its weights
rounded to a 4-bit grid per tensor (weight-only INT4 fake quantization)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from compval.data import ArrayDataset
from compval.engine import run_validation
from compval.errors import SpecValidationError
from compval.spec import AcceptanceSpec

torch = pytest.importorskip("torch")

EPS = 0.3


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray, Any, Any]:
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0).fit(
        x[:1000], y[:1000]
    )
    layers: list[Any] = []
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
            linear.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        layers.append(linear)
        if i < len(clf.coefs_) - 1:
            layers.append(torch.nn.ReLU())
    reference = torch.nn.Sequential(*layers).eval()
    candidate = copy.deepcopy(reference)
    with torch.no_grad():
        for module in candidate:
            if isinstance(module, torch.nn.Linear):
                scale = module.weight.abs().max() / 7
                module.weight.copy_(torch.round(module.weight / scale) * scale)
    return x, y, reference, candidate


def _run(pair: Any, method: str) -> Any:
    x, y, reference, candidate = pair
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "int4"}],
            "data": {"path": "unused.npz"},
            "statistics": {"replicates": 0, "discovery": False},
            "robustness": {"search": {"seeds": 40, "epsilon": EPS, "budget": 30, "method": method}},
        }
    )
    report = run_validation(
        spec, reference=reference, candidates={"int4": candidate}, data=ArrayDataset(x, labels=y)
    )
    (result,) = report.robustness.search_results
    return result


def test_pgd_finds_confirmed_disagreements_and_beats_random(pair: Any) -> None:
    x, _, reference, candidate = pair
    pgd = _run(pair, "pgd")
    baseline = _run(pair, "random")
    assert pgd.seeds_with_disagreement >= 3
    assert pgd.seeds_with_disagreement > baseline.seeds_with_disagreement
    assert pgd.evaluations <= 40 * 30 + pgd.seeds_with_disagreement
    (name,) = [
        k
        for k in pgd.edge_cases
        if k not in ("labels", "seed_row_ids", "size", "candidate_predictions")
    ]
    found = torch.as_tensor(pgd.edge_cases[name])
    with torch.no_grad():
        ref = reference(found).argmax(1).numpy()
        cand = candidate(found).argmax(1).numpy()
    assert (ref == pgd.edge_cases["labels"]).all() and (cand != ref).all()
    seeds = x[pgd.edge_cases["seed_row_ids"]].astype(np.float64)
    std = x.astype(np.float64).std(axis=0)
    assert (np.abs(pgd.edge_cases[name] - seeds) <= EPS * std + 1e-6).all()


def test_pgd_needs_torch_modules(pair: Any) -> None:
    x, y, reference, _ = pair
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "fn"}],
            "data": {"path": "unused.npz"},
            "statistics": {"replicates": 0},
            "robustness": {"search": {"seeds": 5, "method": "pgd"}},
        }
    )

    def fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return reference(torch.as_tensor(batch)).numpy()

    with pytest.raises(SpecValidationError, match="'pgd' needs both models as torch modules"):
        run_validation(
            spec, reference=reference, candidates={"fn": fn}, data=ArrayDataset(x, labels=y)
        )
