"""SklearnAdapter: runs a scikit-learn style estimator (extra: ``sklearn`` for files).

Any object with ``predict`` (and optionally ``predict_proba``) works in memory, including
estimators from libraries that follow scikit-learn's API. Loading one from a joblib/pickle
file needs the user's explicit consent, because unpickling runs code from the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from typing_extensions import Self

from compval._lazy import lazy_import
from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.adapters._files import describe_file, require_file, sha256_file
from compval.errors import InvalidParameterError, ModelLoadError, PickleRefusedError
from compval.types import Array, Outputs, TensorSpec

__all__ = ["SklearnAdapter"]

Method = Literal["auto", "predict_proba", "predict"]
_METHODS = ("auto", "predict_proba", "predict")
_OUTPUT_NAMES = {"predict_proba": "probabilities", "predict": "prediction"}


class SklearnAdapter(ModelAdapter):
    """Run an estimator's ``predict_proba`` or ``predict`` on the input array.

    The model has one input, ``"input"``, of shape ``(rows, n_features_in_)`` when the
    estimator knows its feature count. With ``method="auto"`` the output is
    ``{"probabilities": predict_proba(x)}`` when the estimator has ``predict_proba``, else
    ``{"prediction": predict(x)}``. Probability columns follow ``classes``.

    Args:
        estimator: A fitted estimator.
        name: Name shown in reports.
        method: Which method to call.

    Raises:
        InvalidParameterError: ``method`` is unknown, or the estimator lacks it.

    Example:
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
        >>> with SklearnAdapter(LogisticRegression().fit(x, y), name="lr") as model:
        ...     list(model.predict({"input": x})), model.classes
        (['probabilities'], (0, 1))
    """

    runtime = "sklearn"

    _method: Method
    _estimator: Any
    _path: Path | None
    _resolved: str | None
    _sha256: str | None

    def __init__(self, estimator: object, *, name: str, method: Method = "auto") -> None:
        super().__init__(name=name)
        self._setup(method)
        if estimator is None:
            raise InvalidParameterError(
                f"Model {name!r}: 'estimator' is None; expected a fitted estimator. Pass the "
                "estimator, or use SklearnAdapter.from_file() for a saved one."
            )
        self._estimator = estimator
        self._resolve_method()

    def _setup(self, method: Method) -> None:
        if method not in _METHODS:
            raise InvalidParameterError(
                f"Model {self.name!r}: 'method' must be one of {list(_METHODS)}; got "
                f"{method!r}. Use 'auto' to prefer predict_proba when the estimator has it."
            )
        self._method = method
        self._estimator = None
        self._path = None
        self._resolved = None
        self._sha256 = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str,
        allow_pickle: bool,
        method: Method = "auto",
    ) -> Self:
        """An adapter for an estimator saved with joblib or pickle; loaded by ``open()``.

        Args:
            path: The ``.joblib``, ``.pkl`` or ``.pickle`` file.
            name: Name shown in reports.
            allow_pickle: Must be true: loading the file runs arbitrary code stored in it.
            method: Which method to call (see the class docstring).

        Returns:
            An unopened adapter.

        Raises:
            ModelLoadError: The file does not exist.
            PickleRefusedError: ``allow_pickle`` is false (a ModelLoadError that exits 4:
                allowing pickles is the caller's decision, not a fault of the file).
        """
        file = Path(path)
        require_file(file, what="Pickled model")
        if not allow_pickle:
            raise PickleRefusedError(
                f"Pickled model {str(file)!r}: loading refused; got a joblib/pickle file, "
                "expected explicit permission, because loading a pickle/joblib file runs "
                "arbitrary code stored in it. Load only files you trust, and allow it with "
                "--allow-pickle on the CLI, 'allow_pickle: true' in the spec's model entry, "
                "or SklearnAdapter.from_file(..., allow_pickle=True) in Python."
            )
        adapter = cls.__new__(cls)
        ModelAdapter.__init__(adapter, name=name)
        adapter._setup(method)
        adapter._path = file
        return adapter

    @property
    def path(self) -> Path | None:
        """The model file, or None for an in-memory estimator."""
        return self._path

    @property
    def estimator(self) -> Any:
        """The estimator (opens the adapter if needed, which loads a file)."""
        self.open()
        return self._estimator

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """The estimator's ``classes_`` (label of each probability column), if it has them.

        Opens the adapter if needed.
        """
        self.open()
        classes = getattr(self._estimator, "classes_", None)
        if classes is None:
            return None
        return tuple(np.asarray(classes).tolist())

    def _open(self) -> None:
        if self._path is not None and self._estimator is None:
            self._estimator = _load_pickle(self._path)
            self._resolve_method()

    def _resolve_method(self) -> None:
        estimator = self._estimator
        if self._method == "auto":
            self._resolved = "predict_proba" if hasattr(estimator, "predict_proba") else "predict"
        else:
            self._resolved = self._method
        if not callable(getattr(estimator, self._resolved, None)):
            raise InvalidParameterError(
                f"Model {self.name!r}: the estimator has no {self._resolved}() method; got an "
                f"object of type {type(estimator).__qualname__}, expected a scikit-learn style "
                "estimator. Use method='auto' or 'predict', or pass a fitted estimator."
            )

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        n_features = getattr(self._estimator, "n_features_in_", None)
        shape = (None, int(n_features)) if isinstance(n_features, (int, np.integer)) else None
        return {"input": TensorSpec(name="input", dtype=None, shape=shape)}

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        method = self._resolved or "predict"
        features: Any = inputs["input"]
        names = getattr(self._estimator, "feature_names_in_", None)
        if names is not None and features.ndim == 2 and features.shape[1] == len(names):
            # An estimator fitted on a DataFrame warns on every call given a bare array; give
            # it the column names it was fitted with (the data's columns are in that order).
            pandas = lazy_import("pandas", extra="data")
            features = pandas.DataFrame(features, columns=list(names), copy=False)
        result = getattr(self._estimator, method)(features)
        return {_OUTPUT_NAMES[method]: np.asarray(result)}

    def _info(self) -> AdapterInfo:
        # The "runtime" is whichever package defines the estimator's class (scikit-learn,
        # or a library following its API), so its version is the one that matters.
        package = type(self._estimator).__module__.split(".")[0]
        version = getattr(sys.modules.get(package), "__version__", "unknown")
        if self._path is None:
            model_id = f"python:{type(self._estimator).__qualname__}"
            size = None
        else:
            if self._sha256 is None:
                self._sha256 = sha256_file(self._path)
            model_id = self._sha256
            size = self._path.stat().st_size
        return AdapterInfo(
            runtime="sklearn",
            runtime_version=str(version),
            device="cpu",
            model_id=model_id,
            path=None if self._path is None else str(self._path),
            size_bytes=size,
        )

    def _close(self) -> None:
        if self._path is not None:
            # A file-backed estimator is reloaded on the next open(); an in-memory one is
            # the caller's object and stays.
            self._estimator = None
            self._resolved = None

    def __repr__(self) -> str:
        where = "in memory" if self._path is None else repr(str(self._path))
        return f"SklearnAdapter({where}, name={self.name!r}, method={self._method!r})"


def _load_pickle(path: Path) -> Any:
    joblib = lazy_import("joblib", extra="sklearn")
    require_file(path, what="Pickled model")
    found = describe_file(path)
    try:
        # joblib.load reads plain pickles too, and joblib's own (compressed) format.
        obj = joblib.load(path)
    except Exception as exc:
        raise ModelLoadError(
            f"Pickled model {str(path)!r}: cannot be loaded; got {found}, expected a "
            "joblib/pickle file of a fitted estimator. Save it again with joblib.dump(model, "
            f"path), with the same library versions. ({type(exc).__name__}: {exc})"
        ) from exc
    if not callable(getattr(obj, "predict", None)):
        raise ModelLoadError(
            f"Pickled model {str(path)!r}: the loaded object cannot predict; got an object of "
            f"type {type(obj).__qualname__}, expected an estimator with a predict() method. "
            "Save the fitted estimator itself, not its parameters or a dict of results."
        )
    return obj
