"""Memory stays bounded by bytes, not rows, when each row's output is wide (LM logits)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import compval.engine._stream as stream_module
from compval import run_validation
from compval.spec import AcceptanceSpec

ROWS, WIDTH = 512, 20_000  # 40 MB of float32 outputs per model in all


def _peak_mb(monkeypatch: pytest.MonkeyPatch, chunk_bytes: int) -> float:
    monkeypatch.setattr(stream_module, "CHUNK_BYTES", chunk_bytes)
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": "generic",
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "unused.npz"},
            "batch_size": 16,
            "statistics": {"replicates": 0},
            "criteria": [{"id": "cos", "metric": "cosine_similarity", "min": 0.99}],
        }
    )
    x = np.arange(ROWS, dtype=np.float32).reshape(-1, 1)
    basis = np.random.default_rng(0).normal(size=(1, WIDTH)).astype(np.float32)

    def wide(a: np.ndarray) -> np.ndarray:
        return (a + 1.0) * basis  # (batch, WIDTH): generated per batch, never all at once

    tracemalloc.start()
    try:
        report = run_validation(spec, reference=wide, candidates={"cand": wide}, data=x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.passed
    return peak / 2**20


def test_wide_outputs_are_scored_in_chunks_bounded_by_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounded = _peak_mb(monkeypatch, chunk_bytes=4 * 2**20)
    unbounded = _peak_mb(monkeypatch, chunk_bytes=2**40)
    # All 512 rows of both models buffered, then copied to float64: well over 100 MB.
    assert unbounded > 100
    # A 4 MB buffer keeps the peak to a few buffers' worth, whatever the row count.
    assert bounded < 40
