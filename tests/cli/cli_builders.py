"""Tiny real models, data and specs for the end-to-end CLI tests.

The classifiers are ONNX ``Gemm + Softmax`` graphs on 4 features and 3 classes. The data is
built so that every model's prediction on every row is known in advance:

* features ``f0..f2`` are a one-hot of the class the *reference* predicts (``ref_pred``);
* feature ``f3`` is a "push" marker: the reference ignores it, while the candidate built by
  ``candidate_weights(push=...)`` adds a large logit to class 1 where it is 1.

So a test decides which rows the candidate gets wrong (push a correctly predicted row of
class 0 or 2) or right (push a wrongly predicted row of class 1), and can check the
reported metrics against scikit-learn on the predictions it planned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

N_FEATURES = 4
N_CLASSES = 3
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


def reference_weights() -> np.ndarray:
    """(4, 3): logit 5 for the one-hot class, nothing from the push marker."""
    w = np.zeros((N_FEATURES, N_CLASSES), dtype=np.float32)
    w[:3, :3] = 5.0 * np.eye(3, dtype=np.float32)
    return w


def candidate_weights(*, push: float = 20.0) -> np.ndarray:
    """The reference weights plus ``push`` on class 1's logit from the marker feature."""
    w = reference_weights()
    w[3, 1] = push
    return w


def write_classifier(
    path: Path, w: np.ndarray, b: np.ndarray | None = None, *, nan_marker: bool = False
) -> Path:
    """Write ``softmax(x @ w + b)`` as ONNX: input ``x`` float32[N, F], output ``probs``.

    With ``nan_marker`` the output is NaN on rows whose last feature is negative (the graph
    adds ``0 * sqrt(x[:, -1])``, and sqrt of a negative number is NaN).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = w.shape
    bias = np.zeros(n_out, dtype=np.float32) if b is None else b.astype(np.float32)
    inits = [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(bias, "B")]
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["logits"])]
    logits = "logits"
    if nan_marker:
        selector = np.zeros((n_in, 1), dtype=np.float32)
        selector[-1, 0] = 1.0
        inits += [
            numpy_helper.from_array(selector, "S"),
            numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "ZERO"),
        ]
        nodes += [
            helper.make_node("MatMul", ["x", "S"], ["marker"]),
            helper.make_node("Sqrt", ["marker"], ["root"]),
            helper.make_node("Mul", ["root", "ZERO"], ["nan_or_zero"]),
            helper.make_node("Add", ["logits", "nan_or_zero"], ["logits_nan"]),
        ]
        logits = "logits_nan"
    nodes.append(helper.make_node("Softmax", [logits], ["probs"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_regressor(path: Path, w: np.ndarray, b: float) -> Path:
    """Write ``x @ w + b`` as ONNX: input ``x`` float32[N, F], output ``y`` float32[N, 1]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.asarray(w, dtype=np.float32).reshape(-1, 1)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"])],
        "regressor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array([b], dtype=np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class Plan:
    """Labels, the reference's predictions and segments; tests then choose rows to push."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        ref_error_rate: float = 0.1,
        label_weights: Sequence[float] = (1 / 3, 1 / 3, 1 / 3),
        regions: Mapping[str, float] | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.y = self.rng.choice(N_CLASSES, size=n, p=np.asarray(label_weights))
        wrong = self.rng.random(n) < ref_error_rate
        shift = self.rng.integers(1, N_CLASSES, size=n)
        self.ref_pred = np.where(wrong, (self.y + shift) % N_CLASSES, self.y)
        self.push = np.zeros(n, dtype=np.float32)
        regions = regions or {"north": 0.5, "south": 0.5}
        names = list(regions)
        self.region = np.asarray(names, dtype=object)[
            self.rng.choice(len(names), size=n, p=np.asarray(list(regions.values())))
        ]

    def pick(self, mask: np.ndarray, k: int) -> np.ndarray:
        """Push ``k`` rows chosen at random among ``mask & not yet pushed``; return them."""
        free = np.flatnonzero(mask & (self.push == 0))
        if len(free) < k:
            raise ValueError(f"only {len(free)} rows to push, {k} wanted")
        rows = self.rng.choice(free, size=k, replace=False)
        self.push[rows] = 1.0
        return rows

    def correct_to_wrong(self, k: int, *, label: int | None = None) -> np.ndarray:
        """Rows the reference gets right and the candidate will get wrong (not class 1)."""
        mask = (self.ref_pred == self.y) & (self.y != 1)
        if label is not None:
            mask &= self.y == label
        return self.pick(mask, k)

    def wrong_to_correct(self, k: int) -> np.ndarray:
        """Rows of class 1 the reference gets wrong and the candidate will get right."""
        return self.pick((self.ref_pred != self.y) & (self.y == 1), k)

    @property
    def cand_pred(self) -> np.ndarray:
        """The class the push candidate predicts on each row."""
        return np.where(self.push > 0, 1, self.ref_pred)

    def features(self) -> np.ndarray:
        x = np.zeros((self.n, N_FEATURES), dtype=np.float32)
        x[np.arange(self.n), self.ref_pred] = 1.0
        x[:, 3] = self.push
        return x

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.features(), columns=FEATURES)
        frame["y"] = self.y
        frame["region"] = self.region.astype(str)
        return frame


def write_models(directory: Path) -> dict[str, Path]:
    """ref.onnx, same.onnx (identical weights) and push.onnx in ``directory``."""
    return {
        "ref": write_classifier(directory / "ref.onnx", reference_weights()),
        "same": write_classifier(directory / "same.onnx", reference_weights()),
        "push": write_classifier(directory / "push.onnx", candidate_weights()),
    }


def base_spec(**overrides: Any) -> dict[str, Any]:
    """A spec mapping over ref.onnx / push.onnx / data.parquet (relative paths)."""
    spec: dict[str, Any] = {
        "version": 1,
        "reference": {"name": "ref", "path": "ref.onnx"},
        "candidates": [{"name": "cand", "path": "push.onnx"}],
        "data": {"path": "data.parquet", "labels": "y", "segments": ["region"]},
        "statistics": {"replicates": 0},
        "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.02}],
    }
    spec.update(overrides)
    return spec


def write_yaml(path: Path, spec: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
    return path


def read_report(report_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    return data


def checks_by(report: Mapping[str, Any], check_id: str) -> dict[str | None, dict[str, Any]]:
    """Segment -> check, for one criterion id (one candidate)."""
    return {c["segment"]: c for c in report["checks"] if c["id"] == check_id}


def metric(
    report: Mapping[str, Any], name: str, segment: str | None = None, candidate: str = "cand"
) -> dict[str, Any]:
    (found,) = [
        m
        for m in report["metrics"]
        if m["metric"] == name and m["segment"] == segment and m["candidate"] == candidate
    ]
    return found
