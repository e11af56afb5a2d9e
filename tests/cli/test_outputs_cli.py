"""``compval validate`` on skl2onnx exports with default options: which output is compared.

skl2onnx exports a classifier with two outputs: the predicted ``label`` first and the
probabilities second, as a ZipMap (one ``{class: probability}`` map per row) unless
``zipmap=False``. Every expected number comes from scikit-learn on the same estimators.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_builders import read_report, write_yaml
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, recall_score
from sklearn.preprocessing import StandardScaler

from compval.cli.main import ExitCode, main

pytest.importorskip("skl2onnx")
onnx = pytest.importorskip("onnx")

Run = Callable[..., tuple[ExitCode, str, str]]
FEATURES = ["f0", "f1", "f2", "f3"]
IRIS_NAMES = np.array(["setosa", "versicolor", "virginica"])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    return run


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def export(path: Path, estimator: Any, x: np.ndarray, **options: Any) -> Path:
    """skl2onnx's ``to_onnx`` with its default options (plus any given)."""
    from skl2onnx import to_onnx

    model = to_onnx(estimator, x[:1], options=options or None)
    path.write_bytes(model.SerializeToString())
    return path


def write_data(path: Path, x: np.ndarray, labels: np.ndarray) -> Path:
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["y"] = labels
    frame.to_parquet(path)
    return path


def spec(tmp_path: Path, *, output: str | None = None, **overrides: Any) -> Path:
    ref: dict[str, Any] = {"name": "ref", "path": "ref.onnx"}
    cand: dict[str, Any] = {"name": "cand", "path": "cand.onnx"}
    if output is not None:
        ref["output"] = cand["output"] = output
    mapping: dict[str, Any] = {
        "version": 1,
        "reference": ref,
        "candidates": [cand],
        "data": {"path": "data.parquet", "labels": "y"},
        "statistics": {"replicates": 0},
        "criteria": [
            {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05},
            {"id": "kl", "metric": "mean_kl_divergence", "max": 0.5},
        ],
    }
    mapping.update(overrides)
    return write_yaml(tmp_path / "spec.yaml", mapping)


def validate(cli: Run, tmp_path: Path, spec_path: Path) -> tuple[ExitCode, str, dict[str, Any]]:
    report_dir = tmp_path / "report"
    code, _out, err = cli("validate", spec_path, "--report-dir", report_dir, "--format", "json")
    report = read_report(report_dir) if (report_dir / "report.json").exists() else {}
    return code, err, report


def overall(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in report["metrics"] if m["metric"] == name and m["segment"] is None]
    return found


def two_models(
    tmp_path: Path, x: np.ndarray, labels: np.ndarray, **options: Any
) -> tuple[LogisticRegression, LogisticRegression]:
    ref = LogisticRegression(max_iter=1000).fit(x, labels)
    cand = LogisticRegression(C=0.05, max_iter=1000).fit(x, labels)
    export(tmp_path / "ref.onnx", ref, x, **options)
    export(tmp_path / "cand.onnx", cand, x, **options)
    write_data(tmp_path / "data.parquet", x, labels)
    return ref, cand


# -- item 5: label and score outputs ------------------------------------------------------------
def test_default_export_compares_the_zipmap_scores_and_says_so(
    cli: Run, tmp_path: Path, iris: Any
) -> None:
    x, y = iris
    ref, cand = two_models(tmp_path, x, y)

    code, err, report = validate(cli, tmp_path, spec(tmp_path))

    assert code == ExitCode.OK, err
    models = report["run"]["models"]
    assert models["ref"]["output_kind"] == models["cand"]["output_kind"] == "probabilities"
    accuracy = overall(report, "accuracy_score")
    assert accuracy["reference_value"] == pytest.approx(accuracy_score(y, ref.predict(x)))
    assert accuracy["candidate_value"] == pytest.approx(accuracy_score(y, cand.predict(x)))
    # Before: the label output was compared and KL "was not computed" (inconclusive, exit 1).
    p, q = ref.predict_proba(x), cand.predict_proba(x)
    kl = (p * np.log(p / q)).sum(axis=1).mean()
    assert overall(report, "mean_kl_divergence")["candidate_value"] == pytest.approx(kl, rel=1e-3)
    notes = report["run"]["notes"]
    assert any("'output_probability'" in n and "output: output_label" in n for n in notes)


def test_zipmap_keys_are_the_classes_of_a_text_classifier(
    cli: Run, tmp_path: Path, iris: Any
) -> None:
    x, y = iris
    names = IRIS_NAMES[y]
    _, cand = two_models(tmp_path, x, names)

    code, err, report = validate(cli, tmp_path, spec(tmp_path))

    # Before: the text labels reached a float conversion: exit 3 with a traceback.
    assert code == ExitCode.OK, err
    for name in IRIS_NAMES:
        (recall,) = [
            m
            for m in report["metrics"]
            if m["metric"] == f"recall_score[{name}]" and m["segment"] is None
        ]
        expected = recall_score(names, cand.predict(x), labels=[name], average=None)[0]
        assert recall["candidate_value"] == pytest.approx(expected)


def test_text_label_output_is_compared_by_value(cli: Run, tmp_path: Path, iris: Any) -> None:
    x, y = iris
    names = IRIS_NAMES[y]
    ref, cand = two_models(tmp_path, x, names)

    path = spec(
        tmp_path,
        output="output_label",
        criteria=[{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05}],
    )
    code, err, report = validate(cli, tmp_path, path)

    assert code == ExitCode.OK, err
    assert report["run"]["models"]["cand"]["output_kind"] == "labels"
    accuracy = overall(report, "accuracy_score")
    assert accuracy["reference_value"] == pytest.approx(accuracy_score(names, ref.predict(x)))
    assert accuracy["candidate_value"] == pytest.approx(accuracy_score(names, cand.predict(x)))
    assert not any("compared its output" in n for n in report["run"]["notes"])


def test_tensor_probabilities_are_preferred_to_the_label_output(
    cli: Run, tmp_path: Path, iris: Any
) -> None:
    x, y = iris
    ref, _ = two_models(tmp_path, x, y, zipmap=False)

    code, err, report = validate(cli, tmp_path, spec(tmp_path))

    assert code == ExitCode.OK, err
    assert report["run"]["models"]["ref"]["output_kind"] == "probabilities"
    assert overall(report, "accuracy_score")["reference_value"] == pytest.approx(
        accuracy_score(y, ref.predict(x))
    )
    assert any("'probabilities'" in n and "output: label" in n for n in report["run"]["notes"])


# -- item 3: labels that can never match ---------------------------------------------------------
@pytest.mark.parametrize("output", [None, "output_label"])
def test_integer_classes_against_text_labels_is_a_run_error(
    cli: Run, tmp_path: Path, iris: Any, output: str | None
) -> None:
    x, y = iris
    two_models(tmp_path, x, y)
    write_data(tmp_path / "data.parquet", x, IRIS_NAMES[y])

    # Before (label output): PASSED with accuracy 0.0 for both models.
    code, err, report = validate(cli, tmp_path, spec(tmp_path, output=output))

    assert code == ExitCode.RUN_ERROR
    assert "'y'" in err and "data.labels" in err and "'setosa'" in err and "0" in err
    assert report == {}


def test_fractional_labels_against_a_label_output_is_a_run_error(
    cli: Run, tmp_path: Path, iris: Any
) -> None:
    x, y = iris
    two_models(tmp_path, x, y)
    write_data(tmp_path / "data.parquet", x, y + 0.5)

    code, err, _ = validate(cli, tmp_path, spec(tmp_path, output="output_label"))

    assert code == ExitCode.RUN_ERROR
    assert "'y'" in err and "fractional" in err and "0.5" in err


# -- item 1: one column of binary scores ----------------------------------------------------------
def _one_column(path: Path, estimator: Any, x: np.ndarray, *, cast_label: bool = False) -> Path:
    """A skl2onnx export reduced to one float column: P(class 1), or the label cast to float."""
    from onnx import TensorProto, helper

    export(path, estimator, x, zipmap=False)
    model = onnx.load(str(path))
    graph = model.graph
    label, probabilities = (o.name for o in graph.output)
    if cast_label:
        graph.node.append(helper.make_node("Cast", [label], ["flat"], to=TensorProto.FLOAT))
        graph.node.append(helper.make_node("Unsqueeze", ["flat", "axis1"], ["column"]))
    else:
        graph.node.append(
            helper.make_node("Slice", [probabilities, "one", "two", "axis1"], ["column"])
        )
    for name, value in (("one", 1), ("two", 2), ("axis1", 1)):
        graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [1], [value]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("column", TensorProto.FLOAT, [None, 1]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_one_probability_column_is_a_binary_classifier(cli: Run, tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    ref = LogisticRegression(max_iter=2000).fit(x, y)
    cand = LogisticRegression(C=0.01, max_iter=2000).fit(x, y)
    _one_column(tmp_path / "ref.onnx", ref, x)
    _one_column(tmp_path / "cand.onnx", cand, x)
    write_data(tmp_path / "data.parquet", x, y)

    code, err, report = validate(cli, tmp_path, spec(tmp_path))

    assert code == ExitCode.OK, err
    accuracy = overall(report, "accuracy_score")
    # Before: taken as labels, 0.373 for both (scikit-learn: 0.988 and 0.954).
    assert accuracy["reference_value"] == pytest.approx(accuracy_score(y, ref.predict(x)))
    assert accuracy["candidate_value"] == pytest.approx(accuracy_score(y, cand.predict(x)))
    assert report["run"]["models"]["cand"]["output_kind"] == "probabilities"
    notes = report["run"]["notes"]
    assert any("'cand'" in n and "one column" in n and "binary" in n for n in notes)


def test_one_whole_number_column_is_ambiguous(cli: Run, tmp_path: Path, iris: Any) -> None:
    x, y = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    _one_column(tmp_path / "ref.onnx", clf, x, cast_label=True)
    _one_column(tmp_path / "cand.onnx", clf, x, cast_label=True)
    write_data(tmp_path / "data.parquet", x, y)

    code, err, _ = validate(cli, tmp_path, spec(tmp_path))
    assert code == ExitCode.RUN_ERROR
    assert "task.outputs" in err and "labels" in err

    forced = spec(
        tmp_path,
        task={"type": "classification", "outputs": "labels"},
        criteria=[{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05}],
    )
    code, err, report = validate(cli, tmp_path, forced)
    assert code == ExitCode.OK, err
    assert overall(report, "accuracy_score")["candidate_value"] == pytest.approx(
        accuracy_score(y, clf.predict(x))
    )
