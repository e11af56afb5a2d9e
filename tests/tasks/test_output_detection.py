"""Classification outputs through ``run_validation`` on real models: what is compared, or why not.

The models are scikit-learn estimators and torch modules (the sigmoid heads carry the fitted
logistic regression's weights), so every expected number comes from scikit-learn or numpy on
the same predictions, independently of compval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import expit
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, recall_score
from sklearn.preprocessing import StandardScaler

from compval.engine import run_validation
from compval.errors import AdapterError, DataError, ExitCode, exit_code_for
from compval.results import Report
from compval.spec import spec_from_mapping

IRIS_NAMES = np.array(["setosa", "versicolor", "virginica"])


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, LogisticRegression]:
    """Standardized breast-cancer features (float32), labels 0/1, a fitted binary classifier."""
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    return x, y, LogisticRegression(max_iter=2000).fit(x, y)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y, IRIS_NAMES[y]


def _spec(criteria: list[dict[str, Any]] | None = None, **task: Any) -> Any:
    return spec_from_mapping(
        {
            "version": 1,
            "task": {"type": "classification", **task},
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": criteria
            if criteria is not None
            else [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.01}],
        }
    )


def _metric(report: Report, name: str) -> Any:
    (found,) = [m for m in report.metrics if m.metric == name and m.segment is None]
    return found


def _model_notes(report: Report) -> list[str]:
    """The notes about a model's output (the run may add others, e.g. about intervals)."""
    return [n for n in report.run.notes if n.startswith("Model ")]


def _run(ref: object, cand: object, data: object, **task: Any) -> Report:
    return run_validation(_spec(**task), reference=ref, candidates={"cand": cand}, data=data)


# -- item 1: one column of binary scores ------------------------------------------------------
def test_one_probability_column_is_a_binary_classifier(cancer: Any) -> None:
    x, y, clf = cancer
    report = _run(clf, lambda a: clf.predict_proba(a)[:, 1:2], (x, y))

    truth = accuracy_score(y, clf.predict(x))
    assert report.run.models["cand"]["output_kind"] == "probabilities"
    # Before: the column was taken as labels, accuracy 0.373 against the true 0.988.
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(truth)
    assert _metric(report, "accuracy_score").reference_value == pytest.approx(truth)
    assert _metric(report, "mean_kl_divergence").candidate_value == pytest.approx(0, abs=1e-6)
    # Two-class Brier (sum over both columns) is twice scikit-learn's binary Brier.
    brier = 2 * brier_score_loss(y, clf.predict_proba(x)[:, 1])
    assert _metric(report, "brier_loss").candidate_value == pytest.approx(brier)
    (note,) = _model_notes(report)
    assert "'cand'" in note and "one column" in note and "probability" in note
    assert report.passed


def _torch_heads(clf: LogisticRegression) -> tuple[Any, Any, Any]:
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(clf.coef_.shape[1], 1)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        linear.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))
    # The "compressed" head: weights rounded to float16 and back, as a half-precision export.
    rounded = torch.nn.Linear(clf.coef_.shape[1], 1)
    with torch.no_grad():
        rounded.weight.copy_(linear.weight.half().float())
        rounded.bias.copy_(linear.bias.half().float())
    return (
        torch.nn.Sequential(linear, torch.nn.Sigmoid()),
        torch.nn.Sequential(rounded, torch.nn.Flatten(0)),
        rounded,
    )


@pytest.mark.torch
def test_torch_sigmoid_head_against_a_one_dimensional_logit_head(cancer: Any) -> None:
    x, y, clf = cancer
    sigmoid_head, logit_head, rounded = _torch_heads(clf)
    report = _run(sigmoid_head, logit_head, (x, y))

    assert report.run.models["ref"]["output_kind"] == "probabilities"
    assert report.run.models["cand"]["output_kind"] == "logits"
    z_ref = x.astype(np.float64) @ clf.coef_[0] + clf.intercept_[0]
    w = rounded.weight.detach().numpy()[0].astype(np.float64)
    z_cand = x.astype(np.float64) @ w + float(rounded.bias.detach().numpy()[0])
    assert _metric(report, "accuracy_score").reference_value == pytest.approx(
        accuracy_score(y, (z_ref > 0).astype(int))
    )
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(y, (z_cand > 0).astype(int))
    )
    p, q = expit(z_ref), expit(z_cand)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert _metric(report, "mean_kl_divergence").candidate_value == pytest.approx(
        kl.mean(), rel=1e-2, abs=1e-9
    )
    notes = _model_notes(report)
    assert len(notes) == 2 and all("binary" in n for n in notes)


def test_whole_number_float_column_is_refused_naming_task_outputs(cancer: Any) -> None:
    x, y, clf = cancer

    def float_labels(a: np.ndarray) -> np.ndarray:
        return clf.predict(a).astype(np.float64)[:, None]

    with pytest.raises(AdapterError, match=r"task\.outputs") as caught:
        _run(clf, float_labels, (x, y))
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR
    assert "labels" in str(caught.value) and "'cand'" in str(caught.value)

    report = _run(float_labels, float_labels, (x, y), outputs="labels")
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(y, clf.predict(x))
    )
    assert _model_notes(report) == []


def test_forced_probabilities_and_logits_with_one_column_are_binary(cancer: Any) -> None:
    x, y, clf = cancer
    truth = accuracy_score(y, clf.predict(x))

    probs = _run(
        lambda a: clf.predict_proba(a)[:, 1],
        lambda a: clf.predict_proba(a)[:, 1:2],
        (x, y),
        outputs="probabilities",
    )
    logits = _run(clf.decision_function, clf.decision_function, (x, y), outputs="logits")

    for report in (probs, logits):
        assert _metric(report, "accuracy_score").candidate_value == pytest.approx(truth)
        assert _metric(report, "mean_kl_divergence").candidate_value == pytest.approx(0, abs=1e-12)
        assert _model_notes(report) == []  # nothing was inferred
    with pytest.raises(AdapterError, match="outside"):
        _run(clf.decision_function, clf.decision_function, (x, y), outputs="probabilities")


# -- item 8: outputs with more than one value axis --------------------------------------------
@pytest.mark.torch
def test_sequence_outputs_are_refused_for_classification(cancer: Any) -> None:
    torch = pytest.importorskip("torch")
    x, y, _ = cancer
    torch.manual_seed(0)
    # A toy sequence head: 30 features -> 6 positions x 4 "vocabulary" scores.
    sequence = torch.nn.Sequential(torch.nn.Linear(30, 24), torch.nn.Unflatten(1, (6, 4)))
    with pytest.raises(AdapterError, match="shape") as caught:
        _run(sequence, sequence, (x, y))
    assert "(569, 6, 4)" in str(caught.value) and "sequence" in str(caught.value)
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR

    # A singleton extra axis is harmless: (rows, 1, classes) is one row of scores.
    single = torch.nn.Sequential(torch.nn.Linear(30, 2), torch.nn.Unflatten(1, (1, 2)))
    report = _run(single, single, (x, y))
    logits = x @ single[0].weight.detach().numpy().T + single[0].bias.detach().numpy()
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(y, logits.argmax(axis=1))
    )


# -- item 2: labels as text, mapped by value -------------------------------------------------
def test_text_labels_are_matched_by_value_for_both_models(iris: Any) -> None:
    x, _, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, names)
    weak = LogisticRegression(C=0.01, max_iter=1000).fit(x, names)

    # Estimator scores (classes_ are text) against a callable returning text labels.
    mixed = _run(clf, weak.predict, (x, names))
    labels = _run(clf.predict, weak.predict, (x, names.astype("S")))  # bytes labels too

    for report in (mixed, labels):
        assert _metric(report, "accuracy_score").reference_value == pytest.approx(
            accuracy_score(names, clf.predict(x))
        )
        assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
            accuracy_score(names, weak.predict(x))
        )
        recall = recall_score(names, weak.predict(x), labels=["virginica"], average=None)[0]
        assert _metric(report, "recall_score[virginica]").candidate_value == pytest.approx(recall)
    assert mixed.run.models["ref"]["output_kind"] == "probabilities"
    assert labels.run.models["cand"]["output_kind"] == "labels"


def test_boolean_predictions_match_integer_labels(cancer: Any) -> None:
    x, y, clf = cancer
    report = _run(clf, lambda a: clf.predict(a) == 1, (x, y))
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(y, clf.predict(x))
    )


# -- item 3: labels that can never match --------------------------------------------------------
def test_integer_predictions_against_text_labels_are_a_data_error(iris: Any) -> None:
    x, y, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    spec = _spec()
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"labels": "species"})})

    with pytest.raises(DataError) as caught:
        run_validation(
            spec, reference=clf.predict, candidates={"cand": clf.predict}, data=(x, names)
        )
    message = str(caught.value)
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR
    assert "'species'" in message and "'setosa'" in message and "text" in message
    assert "whole numbers" in message and "0, 1, 2" in message


def test_fractional_labels_against_integer_predictions_are_a_data_error(cancer: Any) -> None:
    x, y, clf = cancer
    with pytest.raises(DataError, match="fractional") as caught:
        _run(clf.predict, clf.predict, (x, y + 0.5))
    assert "0.5" in str(caught.value) and "whole numbers" in str(caught.value)


def test_text_against_integer_predictions_without_labels_is_a_data_error(iris: Any) -> None:
    x, y, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    text = LogisticRegression(max_iter=1000).fit(x, names)
    agreement = [{"id": "agreement", "metric": "top1_agreement", "min": 0.9}]
    with pytest.raises(DataError, match="'ref'") as caught:
        run_validation(
            _spec(agreement), reference=clf.predict, candidates={"cand": text.predict}, data=x
        )
    assert "'cand'" in str(caught.value) and "text" in str(caught.value)


def test_label_model_predicting_classes_the_scoring_model_lacks_is_a_data_error(
    iris: Any,
) -> None:
    x, y, _ = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    with pytest.raises(DataError, match="not among the classes"):
        _run(clf, lambda a: clf.predict(a) + 10, (x, y))


# -- class order of scoring models -----------------------------------------------------------
class _Reordered:
    """A fitted estimator whose probability columns (and classes_) come in another order."""

    def __init__(self, inner: LogisticRegression, order: list[int]) -> None:
        self.inner = inner
        self.order = order
        self.classes_ = inner.classes_[order]
        self.n_features_in_ = inner.n_features_in_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(x))[:, self.order]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.predict(x))


def test_scores_in_another_class_order_are_aligned_by_class(iris: Any) -> None:
    x, _, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, names)
    report = _run(clf, _Reordered(clf, [2, 0, 1]), (x, names))
    assert _metric(report, "top1_agreement").candidate_value == 1.0
    assert _metric(report, "max_abs_diff").candidate_value == 0.0
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(names, clf.predict(x))
    )


def test_scores_over_other_classes_are_refused(iris: Any) -> None:
    x, y, names = iris
    by_name = LogisticRegression(max_iter=1000).fit(x, names)
    by_index = LogisticRegression(max_iter=1000).fit(x, y)
    with pytest.raises(DataError, match="same classes"):
        _run(by_name, by_index, (x, names))


def test_score_maps_from_a_callable_are_scores_with_their_keys_as_classes(iris: Any) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    x, _, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, names)
    session = onnxruntime.InferenceSession(
        skl2onnx.to_onnx(clf, x[:1]).SerializeToString(), providers=["CPUExecutionProvider"]
    )

    def zipmap(a: np.ndarray) -> list[dict[str, float]]:
        # The exported model's second output: one {class: probability} map per row.
        return session.run(None, {session.get_inputs()[0].name: a})[1]

    report = _run(clf, zipmap, (x, names))
    assert report.run.models["cand"]["output_kind"] == "probabilities"
    assert _metric(report, "top1_agreement").candidate_value == 1.0
    assert _metric(report, "max_abs_diff").candidate_value < 1e-6  # float32 export
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(names, clf.predict(x))
    )


# -- value tasks -------------------------------------------------------------------------------
def test_text_outputs_are_refused_by_value_tasks(iris: Any) -> None:
    x, _, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, names)
    spec = spec_from_mapping(
        {
            "version": 1,
            "task": "generic",
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
        }
    )
    with pytest.raises(AdapterError, match="expected numbers"):
        run_validation(spec, reference=clf.predict, candidates={"cand": clf.predict}, data=x)


# -- quantized probabilities ------------------------------------------------------------------
def test_probability_gap_tells_quantized_probabilities_from_logits() -> None:
    from compval.tasks._outputs import detect_kind, probability_gap

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 3))
    exact = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probability_gap(exact) == (pytest.approx(0.0, abs=1e-12), None)
    # An 8-bit softmax output: whole multiples of 1/255, rounded (and the top one clipped).
    step = 1 / 255
    quantized = np.minimum(np.round(exact / step), 254) * step
    gap = probability_gap(quantized.astype(np.float32))
    assert gap is not None and gap[1] == pytest.approx(step, rel=1e-5)
    assert gap[0] > 1e-3
    assert detect_kind(quantized.astype(np.float32)) == "probabilities"
    # The same gap off any grid: not probabilities (noise on rows summing to about 1).
    noisy = exact + rng.uniform(0, 4e-3, size=exact.shape)
    assert probability_gap(noisy) is None
    assert detect_kind(noisy) == "logits"
    # Non-negative whole numbers on a grid are not a simplex: logits (e.g. ReLU'd counts).
    counts = rng.integers(0, 3, size=(500, 3)).astype(np.float32)
    assert detect_kind(counts) == "logits"


@pytest.mark.parametrize("classes", [3, 10])
def test_a_static_qdq_softmax_is_read_as_probabilities_with_a_note(
    classes: int, tmp_path: Any
) -> None:
    """onnxruntime's quantize_static (QDQ, uint8 activations) of a model ending in Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from scipy.special import rel_entr, softmax

    rng = np.random.default_rng(classes)
    w = rng.normal(size=(8, classes)).astype(np.float32)
    b = rng.normal(size=classes).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "softmax_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", classes])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ref_path, qdq_path = tmp_path / "ref.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(ref_path))
    x = rng.normal(size=(2000, 8)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": x[i : i + 100]} for i in range(0, 1000, 100)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(
        str(ref_path),
        str(qdq_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    import onnxruntime as ort

    def outputs(path: Any) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = [session.run(None, {"x": x[i : i + 256]})[0] for i in range(0, len(x), 256)]
        return np.concatenate(rows).astype(np.float64)

    p_ref, p_cand = outputs(ref_path), outputs(qdq_path)
    gap = np.abs(p_cand.sum(axis=1) - 1).max()
    assert gap > 1e-3  # what made the candidate "logits" before
    y = p_ref.argmax(axis=1)
    spec = spec_from_mapping(
        {
            "version": 1,
            "task": "classification",
            "reference": {"name": "ref", "path": str(ref_path)},
            "candidates": [{"name": "cand", "path": str(qdq_path)}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.01}],
        }
    )
    report = run_validation(spec, data=(x, y))
    assert report.run.models["cand"]["output_kind"] == "probabilities"
    (note,) = _model_notes(report)
    assert "'cand'" in note and "quantized probabilities" in note and f"{gap:.4f}" in note
    # The probabilities as they are (clipped at 1e-12, as docs/spec.md says: a quantized
    # probability can be exactly 0); before, a softmax of them: KL 0.40 instead of 0.009.
    # A row of quantized probabilities need not sum to 1, so its KL sum can dip below 0:
    # compval's per-row KL is floored at 0.
    per_row = rel_entr(p_ref, np.clip(p_cand, 1e-12, None)).sum(axis=1)
    kl = np.maximum(per_row, 0.0).mean()
    assert _metric(report, "mean_kl_divergence").candidate_value == pytest.approx(kl, rel=1e-4)
    wrong = rel_entr(p_ref, softmax(p_cand, axis=1)).sum(axis=1).mean()
    assert wrong > 5 * kl
    assert _metric(report, "mean_abs_diff").candidate_value == pytest.approx(
        np.abs(p_ref - p_cand).mean(), rel=1e-5
    )


def test_unnamed_score_columns_taken_by_position_are_noted(iris: Any) -> None:
    x, _, names = iris
    clf = LogisticRegression(max_iter=1000).fit(x, names)
    # The candidate returns bare score columns (no class names): positional, and said so.
    report = _run(clf, lambda a: clf.predict_proba(a), (x, names))
    (note,) = _model_notes(report)
    assert note.startswith("Model 'cand' does not name the classes of its 3 score columns")
    assert "model 'ref''s classes ('setosa', 'versicolor', 'virginica')" in note
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(names, clf.predict(x))
    )
    # A candidate that names its classes needs no such note.
    named = _run(clf, LogisticRegression(max_iter=1000).fit(x, names), (x, names))
    assert _model_notes(named) == []


def test_a_regressor_under_classification_is_pointed_to_task_regression(cancer: Any) -> None:
    from sklearn.linear_model import LinearRegression

    x, _, _ = cancer
    rng = np.random.default_rng(0)
    target = x[:, :3].sum(axis=1) * 3 + rng.normal(size=len(x))  # continuous targets
    reg = LinearRegression().fit(x, target)
    with pytest.raises(DataError, match=r"set task: regression \(--task regression\)") as caught:
        _run(reg.predict, reg.predict, (x, target))
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR
    # Whole-number labels that match no class get no such hint: they are class values.
    with pytest.raises(DataError) as whole:
        _run(reg.predict, reg.predict, (x, np.full(len(x), 7.0)))
    assert "task: regression" not in str(whole.value)


def test_the_binary_column_note_names_the_positive_class(cancer: Any) -> None:
    x, y, _ = cancer
    names = np.array(["benign", "malignant"])[y]
    clf = LogisticRegression(max_iter=2000).fit(x, names)
    report = _run(clf, lambda a: clf.predict_proba(a)[:, 1:2], (x, names))
    (note,) = _model_notes(report)
    assert "the positive class, 'malignant', of a binary classifier" in note
    assert _metric(report, "accuracy_score").candidate_value == pytest.approx(
        accuracy_score(names, clf.predict(x))
    )
    # Both models one column, no names: the classes are 0 and 1, and the column scores 1.
    one = _run(lambda a: clf.predict_proba(a)[:, 1], lambda a: clf.predict_proba(a)[:, 1], (x, y))
    assert all("the positive class, 1," in n for n in _model_notes(one))
    assert len(_model_notes(one)) == 2
