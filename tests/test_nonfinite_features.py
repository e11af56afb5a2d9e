"""Non-finite input features stop the run by default, naming the column (exit 5)."""

from __future__ import annotations

import numpy as np
import pytest

from compval import run_validation
from compval.errors import DataError, ExitCode, exit_code_for
from compval.spec import AcceptanceSpec

pd = pytest.importorskip("pandas")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(600, 3)), columns=["age", "income", "height"])
    frame["label"] = (frame["age"] > 0).astype(int)
    frame.loc[300, "income"] = np.inf
    frame.loc[301, "income"] = np.nan
    return frame


def _spec(allow: bool, path: str = "unused", batch_size: int = 256) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": path, "labels": "label", "allow_nonfinite_features": allow},
            "batch_size": batch_size,
            "statistics": {"replicates": 50},
            "criteria": [{"id": "acc", "metric": "accuracy_score", "max_drop": 0.05}],
        }
    )


def _model(a: np.ndarray) -> np.ndarray:
    first = np.nan_to_num(a[:, 0])
    return np.stack([first <= 0, first > 0], axis=1).astype(float)


def test_an_inf_in_a_feature_is_a_data_error_naming_the_column() -> None:
    with pytest.raises(DataError, match=r"non-finite feature values .* 'income': 2") as caught:
        run_validation(_spec(False), reference=_model, candidates={"cand": _model}, data=_frame())
    assert "allow_nonfinite_features" in str(caught.value)
    assert "first at row 300" in str(caught.value)
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR


def test_the_opt_in_keeps_the_rows_and_reports_the_counts() -> None:
    report = run_validation(
        _spec(True), reference=_model, candidates={"cand": _model}, data=_frame()
    )
    assert report.run.data_rows == 600
    assert any("'income': 2" in note for note in report.run.notes)


def test_huge_finite_features_whose_sum_overflows_are_not_non_finite() -> None:
    """The per-batch check sums the features first: an overflowing sum of finite values
    (float32 near its maximum) must fall back to the exact check, not stop the run."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        rng.normal(size=(600, 3)).astype(np.float32), columns=["age", "income", "height"]
    )
    frame["income"] = np.float32(3e38)
    frame["label"] = (frame["age"] > 0).astype(int)
    report = run_validation(_spec(False), reference=_model, candidates={"cand": _model}, data=frame)
    assert report.run.data_rows == 600
    assert not any("non-finite" in note for note in report.run.notes)


def test_a_nan_deep_in_a_parquet_file_stops_the_run_at_its_batch(tmp_path, monkeypatch) -> None:
    """The reader checks each read once and the run each batch of a read holding a NaN: the
    error names the batch and row that a check of every batch names."""
    import compval.data._arrow as arrow_reader

    monkeypatch.setattr(arrow_reader, "_READ_ROWS", 256)
    frame = _frame().drop(index=[300, 301]).reset_index(drop=True)
    frame = pd.concat([frame] * 3, ignore_index=True)  # 1,794 rows, reads of 256
    frame.loc[1500, "height"] = np.nan
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    counted = r"'height': 1 \(counted up to row 1,536; first at row 1,500\)"
    with pytest.raises(DataError, match=counted):
        run_validation(_spec(False, str(path), 64), reference=_model, candidates={"cand": _model})
    report = run_validation(
        _spec(True, str(path), 64), reference=_model, candidates={"cand": _model}
    )
    assert report.run.data_rows == 1_794
    assert any("'height': 1" in note for note in report.run.notes)
