"""SklearnAdapter: method choice, classes, feature-count checks and pickle consent."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
import joblib
import sklearn
from sklearn.linear_model import LinearRegression, LogisticRegression

from compval.adapters import SklearnAdapter
from compval.errors import (
    InputMismatchError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
)


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4))
    return x, np.where(x[:, 0] + rng.normal(scale=0.5, size=80) > 0, "yes", "no")


def test_auto_uses_predict_proba_and_exposes_classes(labelled: Any) -> None:
    x, y = labelled
    lr = LogisticRegression().fit(x, y)
    with SklearnAdapter(lr, name="lr") as model:
        out = model.predict({"input": x})
        assert model.classes == ("no", "yes")
    np.testing.assert_array_equal(out["probabilities"], lr.predict_proba(x))
    # The probability columns follow classes: the argmax column's class is predict()'s label.
    labels = np.asarray(model.classes)[out["probabilities"].argmax(axis=1)]
    np.testing.assert_array_equal(labels, lr.predict(x))


def test_explicit_predict(labelled: Any) -> None:
    x, y = labelled
    lr = LogisticRegression().fit(x, y)
    with SklearnAdapter(lr, name="lr", method="predict") as model:
        out = model.predict({"input": x})
    assert list(out) == ["prediction"]
    np.testing.assert_array_equal(out["prediction"], lr.predict(x))


def test_regressor_without_predict_proba(labelled: Any) -> None:
    x, _ = labelled
    target = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 3.0
    reg = LinearRegression().fit(x, target)
    with SklearnAdapter(reg, name="reg") as model:
        out = model.predict({"input": x})
        assert model.classes is None
        assert model.input_spec()["input"].shape == (None, 4)
    np.testing.assert_allclose(out["prediction"], target, rtol=1e-9, atol=1e-9)


def test_feature_count_is_checked(logistic_regression: Any) -> None:
    with (
        SklearnAdapter(logistic_regression, name="lr") as model,
        pytest.raises(InputMismatchError, match=r"has shape \(3, 5\); expected any\[\?, 4\]"),
    ):
        model.predict({"input": np.zeros((3, 5))})


def test_unfitted_shape_is_unknown() -> None:
    class Rule:
        def predict(self, x: np.ndarray) -> np.ndarray:
            return (x[:, 0] > 0).astype(int)

    with SklearnAdapter(Rule(), name="rule") as model:
        assert model.input_spec()["input"].shape is None
        out = model.predict({"input": np.array([[1.0], [-1.0]])})
        info = model.info()
    np.testing.assert_array_equal(out["prediction"], [1, 0])
    assert info.model_id == "python:test_unfitted_shape_is_unknown.<locals>.Rule"


def test_info_for_in_memory_estimator(logistic_regression: Any) -> None:
    with SklearnAdapter(logistic_regression, name="lr") as model:
        info = model.info()
    assert info.runtime == "sklearn"
    assert info.runtime_version == sklearn.__version__
    assert info.model_id == "python:LogisticRegression"
    assert info.path is None


def test_pickle_refused_without_consent(tmp_path: Path, logistic_regression: Any) -> None:
    path = tmp_path / "lr.joblib"
    joblib.dump(logistic_regression, path)
    with pytest.raises(
        ModelLoadError,
        match=r"lr\.joblib'.*loading refused.*runs arbitrary code.*--allow-pickle.*"
        r"'allow_pickle: true'",
    ):
        SklearnAdapter.from_file(path, name="lr", allow_pickle=False)


def test_pickle_loaded_with_consent(
    tmp_path: Path, logistic_regression: Any, batch: np.ndarray
) -> None:
    path = tmp_path / "lr.joblib"
    joblib.dump(logistic_regression, path)
    model = SklearnAdapter.from_file(path, name="lr", allow_pickle=True)
    assert not model.is_open  # loading waits for open()
    with model:
        out = model.predict({"input": batch})
        info = model.info()
    np.testing.assert_allclose(out["probabilities"], logistic_regression.predict_proba(batch))
    assert info.model_id == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.size_bytes == path.stat().st_size
    assert model.path == path


def test_plain_pickle_loads_too(tmp_path: Path, logistic_regression: Any) -> None:
    import pickle

    path = tmp_path / "lr.pkl"
    path.write_bytes(pickle.dumps(logistic_regression))
    with SklearnAdapter.from_file(path, name="lr", allow_pickle=True) as model:
        assert model.classes == (0, 1, 2)


def test_pickle_without_predict(tmp_path: Path) -> None:
    path = tmp_path / "params.joblib"
    joblib.dump({"C": 1.0}, path)
    with pytest.raises(ModelLoadError, match=r"cannot predict; got an object of type dict"):
        SklearnAdapter.from_file(path, name="p", allow_pickle=True).open()


def test_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelLoadError, match=r"cannot be loaded; got a Python pickle"):
        SklearnAdapter.from_file(path, name="b", allow_pickle=True).open()


def test_missing_pickle_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="file not found"):
        SklearnAdapter.from_file(tmp_path / "none.joblib", name="n", allow_pickle=True)


def test_missing_joblib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "joblib", None)
    with pytest.raises(MissingDependencyError, match=r"compval\[sklearn\]"):
        SklearnAdapter.from_file(path, name="m", allow_pickle=True).open()


@pytest.mark.parametrize(
    ("estimator", "method", "message"),
    [
        (LinearRegression(), "predict_proba", r"has no predict_proba\(\) method"),
        (LinearRegression(), "decision", r"'method' must be one of"),
        (None, "auto", "'estimator' is None"),
    ],
)
def test_bad_parameters(estimator: Any, method: Any, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        SklearnAdapter(estimator, name="m", method=method)


def test_estimator_fitted_on_a_dataframe_gets_its_column_names() -> None:
    # pytest turns warnings into errors: sklearn's "X does not have valid feature names"
    # would fail this test if the adapter passed a bare array.
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from compval.adapters import SklearnAdapter

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(pd.DataFrame(x, columns=["a", "b", "c"]), y)
    with SklearnAdapter(model, name="m") as adapter:
        out = adapter.predict({"input": x})
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba(pd.DataFrame(x, columns=["a", "b", "c"]))
    )
