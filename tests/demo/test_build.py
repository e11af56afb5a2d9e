"""Tests of build_demo: the files it writes are real, honest and reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from onnx import numpy_helper
from sklearn.metrics import accuracy_score, recall_score

from compval.demo import DemoFiles, build_demo
from compval.errors import InvalidParameterError
from compval.spec._model import AcceptanceSpec

SEED = 0
PIXELS = [f"px_{i}" for i in range(64)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return build_demo(tmp_path_factory.mktemp("demo"), seed=SEED)


@pytest.fixture(scope="module")
def frame(demo: DemoFiles) -> pd.DataFrame:
    return pd.read_parquet(demo.data)


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(None, {name: x.astype(np.float32)})[0])


def _gemm_weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {n.input[1]: inits[n.input[1]] for n in model.graph.node if n.op_type == "Gemm"}


def _gemm_biases(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {n.input[2]: inits[n.input[2]] for n in model.graph.node if n.op_type == "Gemm"}


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _all_models(demo: DemoFiles) -> dict[str, Path]:
    return {"fp32": demo.reference, **demo.candidates}


def test_files_exist_with_expected_names(demo: DemoFiles) -> None:
    assert list(demo.candidates) == ["int8_dynamic", "int8_static", "pruned50", "distilled"]
    for path in [demo.spec, demo.data, *_all_models(demo).values()]:
        assert path.is_file(), path
    assert demo.spec.name == "demo.yaml"


def test_reference_graph_interface(demo: DemoFiles) -> None:
    model = onnx.load(str(demo.reference))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [n.op_type for n in model.graph.node] == [
        "Mul",
        "Gemm",
        "Relu",
        "Gemm",
        "Relu",
        "Gemm",
        "Softmax",
    ]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input"
    assert out.name == "probabilities"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = inp.type.tensor_type.shape.dim
    out_dims = out.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].HasField("dim_value")
    assert [d.dim_value for d in in_dims[1:]] == [64]
    assert [d.dim_value for d in out_dims[1:]] == [10]


def test_every_model_runs_on_raw_pixels(demo: DemoFiles, frame: pd.DataFrame) -> None:
    x = frame[PIXELS].to_numpy()
    for name, path in _all_models(demo).items():
        probabilities = _predict(path, x)
        assert probabilities.shape == (len(frame), 10), name
        assert np.all(np.isfinite(probabilities)), name
        assert np.all(probabilities >= 0), name
        # Static int8 quantizes the softmax output to 1/255 steps, so rows may miss 1 slightly.
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.02, err_msg=name)


def test_reference_accuracy_matches_summary_and_sklearn(
    demo: DemoFiles, frame: pd.DataFrame
) -> None:
    predicted = _predict(demo.reference, frame[PIXELS].to_numpy()).argmax(axis=1)
    accuracy = accuracy_score(frame["label"], predicted)
    assert accuracy > 0.9
    fp32 = demo.summary["models"]["fp32"]
    assert fp32["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert fp32["method"]["sklearn_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert fp32["method"]["export_max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_reference_file_is_the_sklearn_model_trained_on_the_train_split(
    demo: DemoFiles, frame: pd.DataFrame
) -> None:
    from compval.demo._build import _derive_seeds
    from compval.demo._data import split_digits
    from compval.demo._models import train_teacher

    split_seed, teacher_seed, _, _ = _derive_seeds(SEED)
    split = split_digits(seed=split_seed)
    x = frame[PIXELS].to_numpy()
    np.testing.assert_array_equal(x, split.x_val)
    np.testing.assert_array_equal(frame["label"].to_numpy(), split.y_val)
    teacher = train_teacher(split.x_train, split.y_train, seed=teacher_seed)
    expected = teacher.predict_proba(x / 16.0)
    np.testing.assert_allclose(_predict(demo.reference, x), expected, atol=1e-4, rtol=0)
    sklearn_accuracy = accuracy_score(split.y_val, teacher.predict(x / 16.0))
    onnx_accuracy = accuracy_score(split.y_val, _predict(demo.reference, x).argmax(axis=1))
    assert onnx_accuracy == sklearn_accuracy > 0.9


def test_dynamic_model_is_dynamically_quantized(demo: DemoFiles) -> None:
    path = demo.candidates["int8_dynamic"]
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & _op_types(path)
    model = onnx.load(str(path))
    dtypes = {numpy_helper.to_array(t).dtype for t in model.graph.initializer if t.dims}
    assert np.dtype(np.int8) in dtypes


def test_static_model_is_qdq(demo: DemoFiles) -> None:
    path = demo.candidates["int8_static"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(path)
    model = onnx.load(str(path))
    matrices = [numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) == 2]
    assert matrices
    assert all(m.dtype == np.int8 for m in matrices)


def test_pruned_model_zeroes_half_of_each_gemm_weight(demo: DemoFiles) -> None:
    pruned = _gemm_weights(demo.candidates["pruned50"])
    reference = _gemm_weights(demo.reference)
    assert pruned.keys() == reference.keys()
    assert len(pruned) == 3
    for name, weight in pruned.items():
        ref = reference[name]
        zero = weight == 0
        assert zero.mean() == pytest.approx(0.5, abs=0.01), name
        np.testing.assert_array_equal(weight[~zero], ref[~zero])
        # Magnitude pruning: nothing kept is smaller than anything removed.
        assert np.abs(ref[zero]).max() <= np.abs(ref[~zero]).min(), name
    for name, bias in _gemm_biases(demo.candidates["pruned50"]).items():
        np.testing.assert_array_equal(bias, _gemm_biases(demo.reference)[name])


def test_pruned_model_is_stored_dense(demo: DemoFiles) -> None:
    size = demo.candidates["pruned50"].stat().st_size
    reference_size = demo.reference.stat().st_size
    assert abs(size - reference_size) <= 0.05 * reference_size


def test_student_is_smaller_and_accurate(demo: DemoFiles, frame: pd.DataFrame) -> None:
    def count(path: Path) -> int:
        weights = _gemm_weights(path).values()
        biases = _gemm_biases(path).values()
        return sum(a.size for a in [*weights, *biases])

    student, reference = count(demo.candidates["distilled"]), count(demo.reference)
    assert student < reference
    assert reference == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert demo.summary["models"]["distilled"]["parameter_count"] == student
    assert demo.summary["models"]["fp32"]["parameter_count"] == reference
    predicted = _predict(demo.candidates["distilled"], frame[PIXELS].to_numpy()).argmax(axis=1)
    assert accuracy_score(frame["label"], predicted) > 0.8


def test_summary_measurements_match_independent_computation(
    demo: DemoFiles, frame: pd.DataFrame
) -> None:
    x, y = frame[PIXELS].to_numpy(), frame["label"].to_numpy()
    reference_pred = _predict(demo.reference, x).argmax(axis=1)
    for name, path in _all_models(demo).items():
        entry: dict[str, Any] = demo.summary["models"][name]
        predicted = _predict(path, x).argmax(axis=1)
        recall = recall_score(y, predicted, average=None)
        assert entry["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
        assert entry["recall_min"] == pytest.approx(recall.min(), abs=1e-12)
        assert entry["recall_max"] == pytest.approx(recall.max(), abs=1e-12)
        assert entry["top1_agreement"] == pytest.approx(np.mean(predicted == reference_pred))
        for level, accuracy in entry["accuracy_by_ink"].items():
            rows = (frame["ink"] == level).to_numpy()
            assert accuracy == pytest.approx(accuracy_score(y[rows], predicted[rows]), abs=1e-12)
        assert entry["file_size_bytes"] == path.stat().st_size
        assert (demo.spec.parent / entry["path"]).resolve() == path.resolve()
    assert demo.summary["models"]["pruned50"]["weight_sparsity"] == pytest.approx(0.5)
    assert demo.summary["models"]["fp32"]["weight_sparsity"] < 0.01


def test_parquet_reads_back_with_expected_schema(demo: DemoFiles, frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [*PIXELS, "label", "ink"]
    assert all(frame[c].dtype == np.float32 for c in PIXELS)
    assert frame["label"].dtype == np.int64
    assert set(frame["ink"]) == {"light", "medium", "heavy"}
    assert len(frame) == demo.summary["data"]["rows"]
    # 45% of the 1797 digits, stratified: every class keeps 70+ validation rows.
    assert 780 <= len(frame) <= 840
    counts = frame["label"].value_counts()
    assert sorted(counts.index) == list(range(10))
    assert counts.min() >= 70
    pixels = frame[PIXELS].to_numpy()
    assert pixels.min() >= 0
    assert pixels.max() <= 16


def test_ink_segments_are_intensity_tertiles(frame: pd.DataFrame) -> None:
    total = frame[PIXELS].to_numpy().sum(axis=1)
    by_level = {level: total[(frame["ink"] == level).to_numpy()] for level in frame["ink"].unique()}
    assert by_level["light"].max() < by_level["medium"].min()
    assert by_level["medium"].max() < by_level["heavy"].min()
    # Edges come from the training split, so validation shares are near, not exactly, a third.
    for level, values in by_level.items():
        assert 0.25 <= len(values) / len(frame) <= 0.42, level


def test_spec_validates_and_points_at_the_files(demo: DemoFiles) -> None:
    text = demo.spec.read_text(encoding="utf-8")
    spec = AcceptanceSpec.model_validate(yaml.safe_load(text))
    assert spec.task.type == "classification"
    assert spec.reference.name == "fp32"
    assert spec.batch_size == 64
    assert spec.seed == SEED
    assert spec.data.labels == "label"
    assert spec.data.segments == ["ink"]
    root = demo.spec.parent
    assert spec.reference.path is not None
    assert (root / spec.reference.path).resolve() == demo.reference.resolve()
    assert spec.data.path is not None
    assert (root / spec.data.path).resolve() == demo.data.resolve()
    paths = {c.name: c.path for c in spec.candidates}
    assert list(paths) == list(demo.candidates)
    for name, path in paths.items():
        assert name is not None
        assert path is not None
        assert (root / path).resolve() == demo.candidates[name].resolve()
    criteria = {c.id: c for c in spec.criteria}
    assert list(criteria) == [
        "accuracy-overall",
        "accuracy-per-segment",
        "macro-f1",
        "agreement",
        "kl",
        "flips",
    ]
    assert criteria["accuracy-overall"].max_drop == 0.02
    assert criteria["accuracy-per-segment"].segment == "*"
    assert criteria["agreement"].min == 0.95
    assert criteria["kl"].severity == "warn"
    assert criteria["flips"].max == 0.03
    assert criteria["flips"].segment == "*"


def test_spec_comments_explain_each_criterion(demo: DemoFiles) -> None:
    lines = demo.spec.read_text(encoding="utf-8").splitlines()
    criterion_lines = [i for i, line in enumerate(lines) if line.lstrip().startswith("- {id:")]
    assert len(criterion_lines) == 8  # six criteria and two performance budgets
    for i in criterion_lines:
        assert lines[i - 1].lstrip().startswith("#"), lines[i]


@pytest.mark.slow
def test_same_seed_gives_identical_files(demo: DemoFiles, tmp_path: Path) -> None:
    again = build_demo(tmp_path, seed=SEED)
    for name, path in _all_models(demo).items():
        other = {"fp32": again.reference, **again.candidates}[name]
        assert path.read_bytes() == other.read_bytes(), name
    assert demo.data.read_bytes() == again.data.read_bytes()
    assert demo.spec.read_text() == again.spec.read_text()
    first = {k: v for k, v in demo.summary.items() if k != "build_time_s"}
    second = {k: v for k, v in again.summary.items() if k != "build_time_s"}
    assert first == second


def test_different_seeds_change_every_random_choice() -> None:
    from compval.demo._build import _derive_seeds
    from compval.demo._data import split_digits

    assert len(set(_derive_seeds(0))) == 4
    assert set(_derive_seeds(0)).isdisjoint(_derive_seeds(1))
    first, second = split_digits(seed=_derive_seeds(0)[0]), split_digits(seed=_derive_seeds(1)[0])
    assert first.x_val.shape == second.x_val.shape
    assert not np.array_equal(first.x_val, second.x_val)


def test_import_is_cheap() -> None:
    code = (
        "import sys, compval.demo; "
        "heavy = {'onnx', 'onnxruntime', 'sklearn', 'pyarrow', 'pandas'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_bad_seed_is_refused(tmp_path: Path, seed: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"'seed' must be an integer in \[0, 2\*\*32\)"):
        build_demo(tmp_path, seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    target.write_text("not a directory")
    with pytest.raises(InvalidParameterError, match=r"'directory' must be a directory.*is a file"):
        build_demo(target)


def test_directory_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a parent directory should be")
    with pytest.raises(InvalidParameterError, match="cannot create the demo directories"):
        build_demo(tmp_path / "blocker" / "demo")
