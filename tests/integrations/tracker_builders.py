"""A small real validation for the tracker tests: two scikit-learn classifiers in ONNX.

The reference is a LogisticRegression and the candidate the same model trained with strong
L2 regularisation (a smaller-weight variant), both exported with skl2onnx's defaults (a
label output and a ZipMap of class probabilities). The data has a segment column, so the
per-segment tables have rows. Everything is seeded.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

FEATURES = ["f0", "f1", "f2", "f3"]


@dataclass(frozen=True)
class Validation:
    """A folder with two ONNX models (skl2onnx defaults), data and a spec over them."""

    folder: Path
    reference: Path
    candidate: Path
    spec: Path


def onnx_models(seed: int = 0) -> tuple[bytes, bytes, pd.DataFrame]:
    """(reference ONNX bytes, candidate ONNX bytes, validation data)."""
    from skl2onnx import to_onnx  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    n = 900
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    logits = x @ np.array([[2.0, -1.0, 0.0], [0.0, 1.5, -1.5], [1.0, 0.0, 1.0], [0.0, 0.5, 0.5]])
    y = (logits + rng.gumbel(size=logits.shape)).argmax(axis=1)
    train, valid = slice(0, 500), slice(500, n)
    reference = LogisticRegression(max_iter=1000).fit(x[train], y[train])
    candidate = LogisticRegression(C=0.02, max_iter=1000).fit(x[train], y[train])
    data = pd.DataFrame(x[valid], columns=FEATURES)
    data["label"] = y[valid]
    data["region"] = np.where(x[valid, 3] > 0, "north", "south")
    return (
        to_onnx(reference, x[:1]).SerializeToString(),
        to_onnx(candidate, x[:1]).SerializeToString(),
        data,
    )


def write_spec(
    folder: Path,
    reference: str,
    candidate: str,
    *,
    tracking: dict[str, Any] | None = None,
) -> Path:
    """A spec over ``folder/data.parquet`` (written by ``write_data``) with two criteria."""
    spec: dict[str, Any] = {
        "version": 1,
        "task": "classification",
        "reference": {"path": reference},
        "candidates": [{"path": candidate}],
        "data": {"path": "data.parquet", "labels": "label", "segments": ["region"]},
        "batch_size": 128,
        "seed": 0,
        "statistics": {"replicates": 200, "discovery": False},
        "criteria": [
            {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05},
            {
                "id": "accuracy-per-region",
                "metric": "accuracy_score",
                "max_drop": 0.05,
                "segment": "*",
            },
            {"id": "agreement", "metric": "top1_agreement", "min": 0.9},
        ],
    }
    if tracking is not None:
        spec["tracking"] = tracking
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def read_report(report_dir: Path) -> dict[str, Any]:
    text = (report_dir / "report.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def overall(report: dict[str, Any], candidate: str, metric: str) -> dict[str, Any]:
    """The report.json entry of ``metric`` over all rows for ``candidate``."""
    (entry,) = [
        m
        for m in report["metrics"]
        if m["candidate"] == candidate and m["metric"] == metric and m["segment"] is None
    ]
    return dict(entry)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
