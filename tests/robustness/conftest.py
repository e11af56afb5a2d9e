"""Real models for the robustness tests: the shared digits MLP and its QDQ model (well
calibrated, ``digits_onnx`` in tests/conftest.py), and a copy calibrated on the same rows shrunk
towards zero (narrow), so that its activation ranges are too small and larger inputs clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: The narrow model is calibrated on rows multiplied by this.
NARROW = 0.3


@dataclass(frozen=True)
class Models:
    x: np.ndarray  # held-out rows (float32, 64 pixels in [0, 1])
    y: np.ndarray
    fp32: Path
    qdq: Path
    narrow: Path


@pytest.fixture(scope="session")
def models(digits_onnx: Any, tmp_path_factory: pytest.TempPathFactory) -> Models:
    narrow = tmp_path_factory.mktemp("robustness") / "narrow.onnx"
    digits_onnx.quantize(narrow, digits_onnx.x_train[:300] * NARROW)
    return Models(
        x=digits_onnx.x, y=digits_onnx.y, fp32=digits_onnx.fp32, qdq=digits_onnx.qdq, narrow=narrow
    )
