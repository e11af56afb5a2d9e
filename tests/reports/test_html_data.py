"""What report.html draws comes from a real run: flips and reliability bins against references.

The flip matrix must equal scikit-learn's confusion matrix of the two models' predictions,
the reliability bins a direct numpy binning of the top-class probabilities, and their ECE the
run's ``expected_calibration_error``. The CLI writes report.html by default and alone with
``--format html``.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from compval.cli.main import main
from compval.engine import run_validation
from compval.reports import render_html
from compval.results import CalibrationBins, Report
from compval.spec import spec_from_mapping

N_CLASSES = 4
N_BINS = 15  # the bins of expected_calibration_error


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


rng = np.random.default_rng(11)
W_REF = rng.normal(size=(5, N_CLASSES))
# The "compressed" model: the reference's weights rounded to a coarse grid, as a crude
# quantizer would, so some rows change class and every probability moves a little.
W_CAND = np.round(W_REF * 2) / 2


def reference(x: np.ndarray) -> np.ndarray:
    return _softmax(np.asarray(x, dtype=np.float64) @ W_REF * 3)


def candidate(x: np.ndarray) -> np.ndarray:
    return _softmax(np.asarray(x, dtype=np.float64) @ W_CAND * 3)


@pytest.fixture(scope="module")
def run() -> tuple[Report, pd.DataFrame]:
    data_rng = np.random.default_rng(12)
    x = data_rng.normal(size=(3000, 5))
    p = reference(x)
    # Labels drawn from the reference's own probabilities: a calibrated reference.
    y = (p.cumsum(axis=1) > data_rng.random((3000, 1))).argmax(axis=1)
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(5)])
    frame["y"] = y
    spec = spec_from_mapping(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory", "labels": "y"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.01}],
        }
    )
    report = run_validation(spec, reference=reference, candidates={"cand": candidate}, data=frame)
    return report, frame


def _bins(prob: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    conf = prob.max(axis=1)
    index = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
    rows = np.bincount(index, minlength=N_BINS)
    conf_sum = np.bincount(index, weights=conf, minlength=N_BINS)
    correct = np.bincount(index, weights=prob.argmax(axis=1) == y, minlength=N_BINS)
    return rows, conf_sum, correct


def _assert_bins(got: CalibrationBins, prob: np.ndarray, y: np.ndarray) -> None:
    rows, conf_sum, correct = _bins(prob, y)
    assert list(got.rows) == rows.tolist()
    for k in range(N_BINS):
        if rows[k] == 0:
            assert got.confidence[k] is None and got.accuracy[k] is None
        else:
            assert got.confidence[k] == pytest.approx(conf_sum[k] / rows[k], rel=1e-12)
            assert got.accuracy[k] == pytest.approx(correct[k] / rows[k], rel=1e-12)


def test_the_flip_matrix_is_the_confusion_matrix_of_the_two_predictions(
    run: tuple[Report, pd.DataFrame],
) -> None:
    report, frame = run
    x = frame[[f"f{j}" for j in range(5)]].to_numpy()
    expected = confusion_matrix(
        reference(x).argmax(axis=1), candidate(x).argmax(axis=1), labels=range(N_CLASSES)
    )
    assert report.statistics is not None
    matrix = report.statistics.flips["cand"]
    assert matrix.classes == tuple(str(k) for k in range(N_CLASSES))
    assert list(matrix.agreed) == np.diag(expected).tolist()
    off = {(i, j): int(expected[i, j]) for i in range(N_CLASSES) for j in range(N_CLASSES)}
    assert {(i, j): n for i, j, n in matrix.moved} == {
        k: n for k, n in off.items() if n and k[0] != k[1]
    }
    assert [n for _, _, n in matrix.moved] == sorted((n for _, _, n in matrix.moved), reverse=True)
    assert len(matrix.moved) > 0  # the rounding moved some rows, or this test shows nothing
    # report.json carries it too.
    assert report.to_dict()["statistics"]["flips"]["cand"]["agreed"] == list(matrix.agreed)
    # The page's table lists the largest move first.
    i, j, n = matrix.moved[0]
    assert f'<td>{i}</td><td>{j}</td><td class="num">{n}</td>' in render_html(report)


def test_the_reliability_bins_are_the_models_own_confidence_bins(
    run: tuple[Report, pd.DataFrame],
) -> None:
    report, frame = run
    x = frame[[f"f{j}" for j in range(5)]].to_numpy()
    y = frame["y"].to_numpy()
    assert report.statistics is not None
    bins = report.statistics.reliability["cand"]
    _assert_bins(bins.reference, reference(x), y)
    _assert_bins(bins.candidate, candidate(x), y)
    # The same bins give the run's expected calibration error.
    (ece,) = [
        m for m in report.metrics if m.metric == "expected_calibration_error" and m.segment is None
    ]
    for side, value in (
        (bins.reference, ece.reference_value),
        (bins.candidate, ece.candidate_value),
    ):
        gap = sum(
            n * abs(a - c)
            for n, a, c in zip(side.rows, side.accuracy, side.confidence, strict=True)
            if n
        )
        assert gap / sum(side.rows) == pytest.approx(value, rel=1e-9)


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A logistic regression and a strongly regularised one, exported with skl2onnx."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("html-cli")
    data_rng = np.random.default_rng(13)
    x = data_rng.normal(size=(600, 4)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64)
    paths = {}
    for name, c in (("ref", 1.0), ("cand", 0.002)):
        model = LogisticRegression(C=c).fit(x, y)
        onnx = skl2onnx.to_onnx(model, x[:1], options={"zipmap": False})
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(onnx.SerializeToString())
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(4)])
    frame["y"] = y
    frame["region"] = np.array(["north", "south"])[np.arange(600) % 2]
    paths["data"] = folder / "val.parquet"
    frame.to_parquet(paths["data"])
    return paths


def _compare(files: dict[str, Path], out: Path, *extra: str) -> int:
    argv = ["compare", str(files["ref"]), str(files["cand"]), "--data", str(files["data"])]
    argv += ["--labels", "y", "--segments", "region", "--report-dir", str(out), "--quiet"]
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return main([*argv, "--replicates", "100", *extra])


def test_the_cli_writes_report_html_by_default_and_alone_on_request(
    onnx_files: dict[str, Path], tmp_path: Path
) -> None:
    _compare(onnx_files, tmp_path / "all")
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == ["junit.xml", "report.html", "report.json", "report.md"]
    _compare(onnx_files, tmp_path / "html", "--format", "html")
    assert sorted(p.name for p in (tmp_path / "html").iterdir()) == ["report.html"]
    page = (tmp_path / "html" / "report.html").read_text("utf-8")
    assert "region=north" in page and '<section id="segments">' in page
