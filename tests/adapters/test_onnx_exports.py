"""ONNX models as exporters write them: class labels without ZipMap, one input per column.

skl2onnx recommends ``zipmap: False``: the model then outputs its predicted ``label`` and a
``probabilities`` matrix whose columns follow the estimator's ``classes_``, and the labels live
only in the graph. Before, compval named those columns 0..K-1, so text labels (or integer
classes such as 1, 2, 5) matched no column and every such run stopped with a data error.
Every expected number here comes from scikit-learn on the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.neural_network import MLPClassifier

from compval.adapters import OnnxRuntimeAdapter
from compval.engine import run_validation
from compval.spec import spec_from_mapping

skl2onnx = pytest.importorskip("skl2onnx")

ESTIMATORS = {
    "logistic": lambda: LogisticRegression(max_iter=500),  # ai.onnx.ml LinearClassifier
    "forest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),  # TreeEnsemble
    "mlp": lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
}
LABELS = {
    "text": np.array(["cat", "dog", "emu"]),
    "sparse-ints": np.array([1, 2, 5]),
}


def _data(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(900, 4)).astype(np.float32)
    y = LABELS[kind][np.argmax(x[:, :3] + rng.normal(scale=0.7, size=(900, 3)), axis=1)]
    return x, y


def _export(estimator: Any, x: np.ndarray, path: Path, *, zipmap: bool = False) -> Path:
    onx = skl2onnx.to_onnx(estimator, x[:1], options={id(estimator): {"zipmap": zipmap}})
    path.write_bytes(onx.SerializeToString())
    return path


def _spec(ref: Path, cand: Path) -> Any:
    return spec_from_mapping(
        {
            "version": 1,
            "task": "classification",
            "reference": {"name": "ref", "path": str(ref), "output": "probabilities"},
            "candidates": [{"name": "cand", "path": str(cand), "output": "probabilities"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "acc", "metric": "accuracy_score", "max_drop": 0.5}],
        }
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_zipmap_off_classifiers_name_their_columns_from_the_graph(
    name: str, tmp_path: Path
) -> None:
    labels = "text"
    x, y = _data(labels)
    ref_est = ESTIMATORS[name]().fit(x[:600], y[:600])
    cand_est = ESTIMATORS[name]().fit(x[:150], y[:150])  # trained on less: a worse candidate
    ref = _export(ref_est, x, tmp_path / "ref.onnx")
    cand = _export(cand_est, x, tmp_path / "cand.onnx")

    with OnnxRuntimeAdapter(ref, name="ref") as adapter:
        assert adapter.classes == tuple(ref_est.classes_.tolist())

    spec = _spec(ref, cand)
    test_x, test_y = x[600:], y[600:]
    report = run_validation(spec, data=(test_x, test_y))
    accuracy = next(m for m in report.metrics if m.metric == "accuracy_score" and m.segment is None)
    assert accuracy.reference_value == pytest.approx(
        accuracy_score(test_y, ref_est.predict(test_x))
    )
    assert accuracy.candidate_value == pytest.approx(
        accuracy_score(test_y, cand_est.predict(test_x))
    )
    per_class = {m.segment for m in report.metrics if m.metric == "accuracy_score"}
    assert {f"label={v}" for v in LABELS[labels]} <= per_class


def test_a_model_without_a_label_output_has_no_class_labels(tmp_path: Path) -> None:
    """Only graphs with a label output are read: a plain score model keeps columns 0..K-1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["scores"])],
        "scores_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.float32), "W")],
    )
    path = tmp_path / "scores.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        adapter.predict({"x": np.ones((2, 4), np.float32)})
        assert adapter.classes is None


def test_a_model_with_one_input_per_column_is_told_how_tabular_data_arrives(
    tmp_path: Path,
) -> None:
    """One ONNX input per feature column: 'name the data's arrays' cannot be done for a file."""
    import onnx
    from onnx import TensorProto, helper

    from compval.errors import InputMismatchError

    names = ["f0", "f1", "f2"]
    graph = helper.make_graph(
        [helper.make_node("Sum", names, ["y"])],
        "per_column",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 1]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
    )
    path = tmp_path / "per_column.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with (
        OnnxRuntimeAdapter(path, name="m") as adapter,
        pytest.raises(InputMismatchError, match="takes 3 inputs \\(f0, f1, f2\\)") as caught,
    ):
        adapter.predict({"features": np.ones((2, 3), np.float32)})
    assert "data.features" in str(caught.value) and "single input" in str(caught.value)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_integer_classes_that_are_not_positions_are_read_from_the_graph(
    name: str, tmp_path: Path
) -> None:
    """Classes 1, 2, 5 with ``zipmap: False``: score column 1 is class 2. Before, data whose
    labels were all below 3 (a sample without class 5) were read by position, silently: the
    logistic model's accuracy came out 0.12 instead of 0.73."""
    x, y = _data("sparse-ints")
    est = ESTIMATORS[name]().fit(x, y)
    path = _export(est, x, tmp_path / "m.onnx")
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        assert adapter.classes is None  # not known before a batch has run
        adapter.predict({"X": x[:64]})
        assert adapter.classes == (1, 2, 5)
    for rows in (y != 5, np.ones(len(y), dtype=bool)):
        report = run_validation(_spec(path, path), data=(x[rows], y[rows]))
        accuracy = next(
            m for m in report.metrics if m.metric == "accuracy_score" and m.segment is None
        )
        assert accuracy.reference_value == pytest.approx(
            accuracy_score(y[rows], est.predict(x[rows]))
        )
        assert not [n for n in report.run.notes if "integer label output" in n]


def test_classes_zero_to_k_are_positions_and_the_graph_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compval.adapters.onnxruntime as ort_adapter

    def unread(path: Path) -> None:
        raise AssertionError("the graph was parsed (the onnx import costs about 50 ms)")

    monkeypatch.setattr(ort_adapter, "_graph_class_labels", unread)
    x, y = _data("text")
    y = np.searchsorted(LABELS["text"], y)  # the same classes as 0, 1, 2
    est = LogisticRegression(max_iter=500).fit(x, y)
    path = _export(est, x, tmp_path / "m.onnx")
    report = run_validation(_spec(path, path), data=(x, y))
    accuracy = next(m for m in report.metrics if m.metric == "accuracy_score" and m.segment is None)
    assert accuracy.reference_value == pytest.approx(accuracy_score(y, est.predict(x)))


def test_without_graph_labels_the_first_batch_maps_the_columns_or_a_note_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compval.adapters.onnxruntime as ort_adapter

    # A graph the onnx package cannot read (an .ort file) names no classes.
    monkeypatch.setattr(ort_adapter, "_graph_class_labels", lambda path: None)
    x, y = _data("sparse-ints")
    est = LogisticRegression(max_iter=500).fit(x, y)
    path = _export(est, x, tmp_path / "m.onnx")
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        adapter.predict({"X": x[:256]})  # every class is predicted somewhere in these rows
        assert adapter.classes == (1, 2, 5)
        assert adapter.run_notes() == []
    one_class = x[est.predict(x) == 2][:20]
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        adapter.predict({"X": one_class})  # column 1 seen only: the rest cannot be told
        assert adapter.classes is None
        (note,) = adapter.run_notes()
        assert note.startswith("WARNING: model 'm': its integer label output is not the index")
        assert "export it with ZipMap" in note


def test_an_integer_output_that_is_no_label_of_the_scores_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose integer output is something else (here the column of the lowest score)
    keeps positional columns, with no warning and no graph parsing."""
    import onnx
    from onnx import TensorProto, helper

    import compval.adapters.onnxruntime as ort_adapter

    def unread(path: Path) -> None:
        raise AssertionError("the graph was parsed")

    monkeypatch.setattr(ort_adapter, "_graph_class_labels", unread)
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["X"], ["scores"]),
            helper.make_node("ArgMin", ["X"], ["lowest"], axis=1, keepdims=0),
        ],
        "not-a-classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("lowest", TensorProto.INT64, [None]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    with OnnxRuntimeAdapter(path, name="m") as adapter:
        adapter.predict({"X": x})
        assert adapter.classes is None
        assert adapter.run_notes() == []


def test_tied_and_nan_top_scores_are_left_out_of_the_check() -> None:
    import compval.adapters.onnxruntime as ort_adapter

    scores = np.array([[0.5, 0.5, 0.0], [0.1, 0.7, 0.2], [np.nan, 0.2, 0.1], [0.2, 0.3, 0.5]])
    assert ort_adapter._decisive(scores).tolist() == [False, True, False, True]
    assert ort_adapter._decisive(np.array([[0.3], [0.9]])).tolist() == [True, True]
    # Each top column gave one label: a relabelled classifier (columns 1 and 2 seen).
    labels = np.array([2, 5])
    assert ort_adapter._column_labels(labels, scores[[1, 3]]) == (3, {1: 2, 2: 5})
    # Column 1 gave two labels: not a label of these scores.
    assert ort_adapter._column_labels(np.array([2, 7]), scores[[1, 1]]) is None
