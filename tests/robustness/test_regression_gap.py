"""The robustness gap for regression (mean absolute error), on real ONNX models.

The data has four latent features, each observed twice with a tiny independent error (nearly
collinear pairs, as correlated sensors give). The reference is a scikit-learn MLP regressor
exported by skl2onnx with its default options; the candidates are

* ``qdq``: its static INT8 QDQ copy, calibrated on training rows (well calibrated);
* ``distilled``: a linear student fitted by least squares to the reference's predictions. The
  collinear pairs let it take large opposite coefficients within each pair: on clean rows
  (both copies equal) it predicts like the reference, but independent noise on the features
  (the ``noise`` perturbation) is amplified by those coefficients.

Every value is checked against numpy from onnxruntime's own predictions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.data import ArrayDataset
from compval.engine import run_validation
from compval.metrics import PairedRows, SegmentTable, metric_info
from compval.robustness import (
    BlockAbsErrors,
    BlockCorrectness,
    PerturbedDataset,
    build_perturbation,
    feature_stats,
    gap_estimates,
)
from compval.spec import AcceptanceSpec
from compval.stats import row_blocks

ort = pytest.importorskip("onnxruntime")

SHIFT = 0.5  # the shift perturbation, in per-feature std
NOISE = 0.1  # the noise perturbation, in per-feature std
GAP_MAX = 0.1  # in target units (the targets' std is about 2.7)
N_BLOCKS = 256


@dataclass(frozen=True)
class Regression:
    x: np.ndarray  # held-out rows, float32 (rows, 8)
    y: np.ndarray  # float64 targets
    sign: np.ndarray  # a segment column: the sign of the first feature
    fp32: Path
    qdq: Path
    distilled: Path


class _Reader:
    def __init__(self, x: np.ndarray) -> None:
        self._batches = iter([{"input": x[i : i + 50]} for i in range(0, len(x), 50)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Regression:
    skl2onnx = pytest.importorskip("skl2onnx")
    quantization = pytest.importorskip("onnxruntime.quantization")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    n = 3000
    latent = rng.normal(size=(n, 4))
    x = np.concatenate(
        [latent + 0.0005 * rng.normal(size=latent.shape) for _ in range(2)], axis=1
    ).astype(np.float32)
    y = (
        latent @ np.array([1.0, -2.0, 0.5, 1.5])
        + 0.2 * np.sin(2 * latent[:, 0])
        + 0.3 * rng.normal(size=n)
    )
    train, test = slice(0, 1500), slice(1500, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning would not change the test
        mlp = MLPRegressor(
            hidden_layer_sizes=(32, 16), alpha=1.0, max_iter=1000, random_state=0
        ).fit(x[train], y[train])
    student = LinearRegression().fit(x[train], mlp.predict(x[train]))
    root = tmp_path_factory.mktemp("regression_gap")
    paths = {}
    for name, model in (("fp32", mlp), ("distilled", student)):
        onx = skl2onnx.convert_sklearn(
            model, initial_types=[("input", FloatTensorType([None, 8]))], target_opset=17
        )
        paths[name] = root / f"{name}.onnx"
        paths[name].write_bytes(onx.SerializeToString())
    prepared = root / "prepared.onnx"
    quantization.quant_pre_process(str(paths["fp32"]), str(prepared))
    paths["qdq"] = root / "qdq.onnx"
    quantization.quantize_static(
        str(prepared),
        str(paths["qdq"]),
        _Reader(x[:300]),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=False,
        weight_type=quantization.QuantType.QInt8,
        activation_type=quantization.QuantType.QInt8,
    )
    x_test = x[test]
    return Regression(
        x=x_test,
        y=y[test],
        sign=np.where(x_test[:, 0] > 0, "pos", "neg"),
        fp32=paths["fp32"],
        qdq=paths["qdq"],
        distilled=paths["distilled"],
    )


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": np.asarray(x, dtype=np.float32)})
    return np.asarray(out, dtype=np.float64).reshape(len(x))


def _spec(
    r: Regression,
    perturbations: list[dict[str, Any]],
    criteria: list[dict[str, Any]],
    *,
    batch_size: int = 100,
    task: str = "regression",
) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": task,
            "reference": {"name": "fp32", "path": str(r.fp32)},
            "candidates": [
                {"name": "qdq", "path": str(r.qdq)},
                {"name": "distilled", "path": str(r.distilled)},
            ],
            "data": {"path": "unused.npz"},
            "batch_size": batch_size,
            "statistics": {"replicates": 400, "discovery": False},
            "robustness": {"perturbations": perturbations},
            "criteria": criteria,
        }
    )


def _metric(report: Any, candidate: str, metric: str, segment: str | None) -> Any:
    (m,) = [
        m
        for m in report.metrics
        if m.candidate == candidate and m.metric == metric and m.segment == segment
    ]
    return m


PERTURBATIONS = [
    {"name": "shift", "kind": "shift", "params": {"std": SHIFT}},
    {"name": "noise", "kind": "noise", "params": {"std": NOISE}},
]


@pytest.fixture(scope="module")
def suite(regression: Regression) -> Any:
    r = regression
    spec = _spec(
        r,
        PERTURBATIONS,
        [
            {"id": "gap", "metric": "robustness_gap", "max": GAP_MAX},
            {"id": "mae", "metric": "mean_absolute_error", "max_increase": 0.05},
        ],
    )
    return run_validation(spec, data=ArrayDataset(r.x, labels=r.y, segments={"sign": r.sign}))


def _noisy_inputs(r: Regression) -> np.ndarray:
    """The noise pass's inputs, as compval's perturbation draws them (tested elsewhere)."""
    data = ArrayDataset(r.x, labels=r.y)
    spec = _spec(r, PERTURBATIONS, []).robustness
    assert spec is not None
    noise = build_perturbation(spec.perturbations[1], index=1)
    perturbed = PerturbedDataset(data, noise, feature_stats(data, 500), seed=0)
    return np.concatenate(
        [np.asarray(next(iter(b.inputs.values()))) for b in perturbed.batches(500)]
    )


def _expected_gap(r: Regression, path: Path, perturbed: np.ndarray, rows: Any = ()) -> float:
    """(candidate perturbed MAE - clean MAE) - (reference perturbed MAE - clean MAE)."""
    sel = slice(None) if isinstance(rows, tuple) else rows

    def mae(model: Path, x: np.ndarray) -> float:
        return float(np.abs(_predict(model, x)[sel] - r.y[sel]).mean())

    return (mae(path, perturbed) - mae(path, r.x)) - (mae(r.fp32, perturbed) - mae(r.fp32, r.x))


def test_the_registry_lists_the_gap_for_regression() -> None:
    info = metric_info("robustness_gap")
    assert info is not None
    assert {"classification", "regression"} <= set(info.tasks)
    assert not {"generic", "embedding"} & set(info.tasks)
    assert info.needs_labels and info.higher_is_better is False
    assert not info.fraction  # in target units for regression


def test_gap_matches_numpy_on_onnxruntime_predictions(suite: Any, regression: Regression) -> None:
    r = regression
    shifted = r.x.astype(np.float64) + SHIFT * r.x.astype(np.float64).std(axis=0)
    noisy = _noisy_inputs(r)
    for name, path in (("qdq", r.qdq), ("distilled", r.distilled)):
        for perturbation, inputs in (("shift", shifted), ("noise", noisy)):
            scope = f"perturbation={perturbation}"
            gap = _metric(suite, name, "robustness_gap", scope)
            expected = _expected_gap(r, path, inputs)
            assert gap.candidate_value == pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert gap.n == len(r.y)
            assert gap.ci_method == "paired_block_bootstrap_percentile"
            assert gap.ci_low <= gap.candidate_value <= gap.ci_high
            # It is the difference of the reported MAE deltas (perturbed minus clean).
            clean = _metric(suite, name, "mean_absolute_error", None)
            pert = _metric(suite, name, "mean_absolute_error", scope)
            assert gap.candidate_value == pytest.approx(pert.delta - clean.delta, abs=1e-12)
            # Composing with segments: the rows of one segment only.
            for value in ("neg", "pos"):
                seg = _metric(suite, name, "robustness_gap", f"{scope},sign={value}")
                rows = r.sign == value
                assert seg.n == int(rows.sum())
                assert seg.candidate_value == pytest.approx(
                    _expected_gap(r, path, inputs, rows), rel=1e-9, abs=1e-12
                )


def test_gap_interval_is_paired(suite: Any) -> None:
    """For the quantized copy, much narrower than the unpaired interval (the two passes'
    MAE-delta intervals combined): which rows are hard is common to both passes and cancels.

    (The student's noise gap comes from a new error source, its amplified noise, that the clean
    pass does not share; there pairing gains little and its interval is about as wide as the
    unpaired one; the other tests only check that it holds the value.)
    """
    for perturbation in ("shift", "noise"):
        scope = f"perturbation={perturbation}"
        gap = _metric(suite, "qdq", "robustness_gap", scope)
        clean = _metric(suite, "qdq", "mean_absolute_error", None)
        pert = _metric(suite, "qdq", "mean_absolute_error", scope)
        unpaired = np.hypot(clean.ci_high - clean.ci_low, pert.ci_high - pert.ci_low)
        assert 0 < gap.ci_high - gap.ci_low < 0.5 * unpaired


def test_the_fragile_student_fails_the_gap_and_the_quantized_copy_passes(suite: Any) -> None:
    verdicts = {(c.candidate, c.segment): c.verdict for c in suite.checks if c.id == "gap"}
    assert verdicts[("distilled", "perturbation=noise")] == "fail"
    assert verdicts[("qdq", "perturbation=noise")] == "pass"
    assert verdicts[("qdq", "perturbation=shift")] == "pass"
    assert _metric(suite, "distilled", "robustness_gap", "perturbation=noise").ci_low > GAP_MAX
    assert _metric(suite, "qdq", "robustness_gap", "perturbation=noise").ci_high < GAP_MAX
    # On clean rows the student is as good as the quantized copy: only the gap tells them apart.
    clean = {c.candidate: c.verdict for c in suite.checks if c.id == "mae" and c.segment is None}
    assert clean == {"qdq": "pass", "distilled": "pass"}
    assert not any("robustness_gap" in n for n in suite.run.notes)


def test_results_do_not_depend_on_the_batch_size(regression: Regression) -> None:
    r = regression
    data = ArrayDataset(r.x, labels=r.y, segments={"sign": r.sign})
    reports = [
        run_validation(_spec(r, PERTURBATIONS[1:], [], batch_size=b), data=data) for b in (64, 500)
    ]
    values = [
        sorted(
            (m.candidate, m.segment or "", m.candidate_value, m.ci_low, m.ci_high)
            for m in report.metrics
            if m.metric == "robustness_gap"
        )
        for report in reports
    ]
    assert values[0] == values[1]
    assert len(values[0]) == 2 * 3  # two candidates, overall and two signs


def test_without_labels_or_for_a_generic_task_there_is_no_gap(regression: Regression) -> None:
    r = regression
    x = r.x[:200]
    unlabelled = run_validation(_spec(r, PERTURBATIONS[:1], []), data=ArrayDataset(x))
    generic = run_validation(
        _spec(r, PERTURBATIONS[:1], [], task="generic"), data=ArrayDataset(x, labels=r.y[:200])
    )
    for report, note in (
        (unlabelled, "this regression data has none"),
        (generic, "needs a classification or regression task"),
    ):
        assert not any(m.metric == "robustness_gap" for m in report.metrics)
        assert any(note in n for n in report.run.notes)
        # The perturbed pass still reports its usual metrics.
        assert any(m.segment == "perturbation=shift" for m in report.metrics)


# -- the accumulator against a hand computation ------------------------------------------------


def _rows(
    table: SegmentTable, ref: np.ndarray, cand: np.ndarray, y: np.ndarray, group: np.ndarray
) -> PairedRows:
    n = len(y)
    row_ids = np.arange(n, dtype=np.int64)
    return PairedRows(
        reference=ref,
        candidate=cand,
        row_ids=row_ids,
        blocks=row_blocks(row_ids, seed=0, n_blocks=N_BLOCKS),
        segment_ids=np.stack([np.zeros(n, dtype=np.int64), table.ids_for("g", group)]),
        finite=np.isfinite(ref).all(axis=1) & np.isfinite(cand).all(axis=1),
        labels=y,
    )


def test_block_abs_errors_multi_output_and_non_finite_rows() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = rng.normal(size=(n, 2))
    ref_c, cand_c = y + 0.1 * rng.normal(size=(n, 2)), y + 0.2 * rng.normal(size=(n, 2))
    ref_p, cand_p = y + 0.3 * rng.normal(size=(n, 2)), y + 0.7 * rng.normal(size=(n, 2))
    cand_p[5, 1] = np.nan  # left out of the perturbed pass only
    group = np.where(np.arange(n) % 3 == 0, "a", "b")
    table = SegmentTable()
    clean, pert = BlockAbsErrors(table, n_blocks=N_BLOCKS), BlockAbsErrors(table, n_blocks=N_BLOCKS)
    # Two batches for the clean pass: the sums merge exactly.
    half = BlockAbsErrors(table, n_blocks=N_BLOCKS)
    clean.update(_rows(table, ref_c[:150], cand_c[:150], y[:150], group[:150]))
    half.update(_rows(table, ref_c[150:], cand_c[150:], y[150:], group[150:]))
    clean = BlockAbsErrors.from_state(clean.merge(half).state())
    pert.update(_rows(table, ref_p, cand_p, y, group))
    assert (clean.left_out(), pert.left_out()) == (0, 1)

    def mae(pred: np.ndarray, keep: np.ndarray) -> float:
        # scikit-learn's multioutput="uniform_average": the mean over outputs of each MAE.
        return float(np.abs(pred[keep] - y[keep]).mean(axis=0).mean())

    estimates = {
        e.segment: e for e in gap_estimates(clean, pert, perturbation="p", resampling=None)
    }
    assert set(estimates) == {"perturbation=p", "perturbation=p,g=a", "perturbation=p,g=b"}
    for segment, rows in (
        ("perturbation=p", np.ones(n, bool)),
        ("perturbation=p,g=a", group == "a"),
    ):
        kept = rows & (np.arange(n) != 5)
        expected = (mae(cand_p, kept) - mae(cand_c, rows)) - (mae(ref_p, kept) - mae(ref_c, rows))
        assert estimates[segment].candidate == pytest.approx(expected, rel=1e-12)
        assert estimates[segment].n == int(kept.sum())
        assert estimates[segment].ci is None


def test_gap_estimates_refuses_mixed_kinds() -> None:
    table = SegmentTable()
    with pytest.raises(TypeError, match="same kind"):
        gap_estimates(
            BlockAbsErrors(table, n_blocks=N_BLOCKS),
            BlockCorrectness(table, n_blocks=N_BLOCKS),
            perturbation="p",
            resampling=None,
        )
