"""The runtime registry: which adapter loads a model file, and how Python objects are wrapped.

Adding a runtime is one module (a ``ModelAdapter`` subclass) plus one registration line at the
bottom of this file (or, for a third-party package, an entry point in the
``compval.adapters`` group whose object is an :class:`AdapterRegistration`)::

    register_adapter(AdapterRegistration("tflite", (".tflite",), TfliteAdapter.from_ref))

``load_model`` resolves a :class:`~compval.spec.ModelRef` (what the spec and the CLI produce) and
picks the runtime by file extension when ``adapter: auto``. ``as_adapter`` accepts whatever a
Python user hands over: an adapter, a file path, a torch module, a scikit-learn style estimator
or a plain callable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from compval._plugins import load_entry_points
from compval.adapters._base import ModelAdapter
from compval.adapters._files import check_threads, require_file
from compval.adapters.callable import CallableAdapter
from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.adapters.sklearn import SklearnAdapter
from compval.adapters.torch import TorchAdapter
from compval.errors import InvalidParameterError, ModelLoadError
from compval.spec import ModelRef
from compval.types import ModelLike

__all__ = [
    "AdapterRegistration",
    "adapter_names",
    "as_adapter",
    "load_model",
    "register_adapter",
    "suffix_adapters",
]

#: Entry-point group where third-party packages register runtimes.
ENTRY_POINT_GROUP = "compval.adapters"


@dataclass(frozen=True, slots=True)
class AdapterRegistration:
    """How one runtime loads model files.

    Attributes:
        name: The value of ``adapter:`` in a spec's model entry (``"onnxruntime"``).
        suffixes: Lower-case file extensions that ``adapter: auto`` maps to this runtime.
        load: Builds an unopened adapter from a resolved, existing file path and the model
            entry (for ``name``, ``threads``, ``allow_pickle``).
    """

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[Path, ModelRef], ModelAdapter]


_REGISTRY: dict[str, AdapterRegistration] = {}
_plugins_loaded = False


def register_adapter(registration: AdapterRegistration) -> None:
    """Make a runtime loadable by name and by file extension.

    Raises:
        InvalidParameterError: The name or one of the suffixes is already registered.
    """
    if registration.name in _REGISTRY or registration.name == "auto":
        raise InvalidParameterError(
            f"register_adapter: runtime name already used; got {registration.name!r}, expected "
            f"a new name (registered: {', '.join(sorted(_REGISTRY))})."
        )
    taken = {s: r.name for r in _REGISTRY.values() for s in r.suffixes}
    clash = [s for s in registration.suffixes if s in taken]
    if clash:
        raise InvalidParameterError(
            f"register_adapter: extension(s) {clash} already map to {taken[clash[0]]!r}; "
            "expected extensions no runtime claims. Users can still pick the runtime with "
            f"'adapter: {registration.name}'."
        )
    _REGISTRY[registration.name] = registration


def _registry() -> Mapping[str, AdapterRegistration]:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_entry_points(
            ENTRY_POINT_GROUP,
            AdapterRegistration,
            lambda r: None if r.name in _REGISTRY else register_adapter(r),
        )
    return MappingProxyType(_REGISTRY)


def adapter_names() -> tuple[str, ...]:
    """Registered runtime names (the valid values of ``adapter:`` besides ``auto``)."""
    return tuple(_registry())


def suffix_adapters() -> Mapping[str, str]:
    """File extension (lower case) -> runtime used by ``adapter: auto``."""
    return {s: r.name for r in _registry().values() for s in r.suffixes}


def load_model(ref: ModelRef, *, base_dir: Path) -> ModelAdapter:
    """Create the adapter for a spec's model entry; the model is loaded on ``open()``.

    Args:
        ref: The model entry. ``ref.path`` is resolved against ``base_dir`` when relative.
        base_dir: Directory that relative paths are relative to (the spec file's directory).

    Returns:
        An unopened adapter named ``ref.name`` or, by default, the file's stem.

    Raises:
        InvalidParameterError: ``ref.path`` is missing, or ``ref.adapter`` names no runtime.
        ModelLoadError: The file does not exist, its extension is unknown (with
            ``adapter: auto``), or it is a pickle and ``allow_pickle`` is false.
    """
    if ref.path is None:
        raise InvalidParameterError(
            f"Model {ref.name or '<unnamed>'!r}: 'path' is missing; got None, expected a model "
            "file path. Set 'path' in the spec's model entry, or pass the model object from "
            "Python with as_adapter()."
        )
    registry = _registry()
    if ref.adapter != "auto" and ref.adapter not in registry:
        raise InvalidParameterError(
            f"Model {ref.name or ref.path!r}: unknown adapter; got {ref.adapter!r}, expected "
            f"'auto' or one of {', '.join(registry)}. Fix 'adapter:' in the model entry, or "
            "install the package that provides the runtime."
        )
    path = Path(ref.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    require_file(path, what="Model file", hint=f"relative paths are resolved against {base_dir}")
    runtime = ref.adapter if ref.adapter != "auto" else _adapter_for_suffix(path)
    named = ref if ref.name is not None else ref.model_copy(update={"name": path.stem})
    return registry[runtime].load(path, named)


def as_adapter(obj: ModelLike, *, name: str, threads: int | None = None) -> ModelAdapter:
    """Wrap ``obj`` in the adapter that fits it.

    Dispatch, in order: a ModelAdapter is returned as is; a ``str``/``os.PathLike`` is loaded
    as a file (extension picks the runtime; pickles are refused, use
    ``SklearnAdapter.from_file(..., allow_pickle=True)``); a torch ``nn.Module`` becomes a
    TorchAdapter; an object with ``predict_proba`` or ``predict`` a SklearnAdapter; any
    other callable a CallableAdapter.

    Args:
        obj: The model.
        name: Name shown in reports (ignored for an existing adapter).
        threads: Intra-op thread count for ONNX Runtime and torch models; unused otherwise.

    Returns:
        An adapter (unopened unless ``obj`` already was an open adapter).

    Raises:
        InvalidParameterError: ``obj`` cannot be used as a model, or ``threads`` < 1.
        ModelLoadError: ``obj`` is a path that cannot be loaded (see ``load_model``).

    Example:
        >>> import numpy as np
        >>> adapter = as_adapter(lambda x: 2 * x, name="double")
        >>> with adapter:
        ...     adapter.predict({"input": np.ones((2, 1))})["output"].tolist()
        [[2.0], [2.0]]
    """
    if isinstance(obj, ModelAdapter):
        return obj
    check_threads(name, threads)
    if isinstance(obj, (str, os.PathLike)):
        ref = ModelRef(name=name, path=str(Path(obj)), threads=threads)
        return load_model(ref, base_dir=Path.cwd())
    if isinstance(obj, type):
        raise InvalidParameterError(
            f"Model {name!r}: got the class {obj.__qualname__}, expected an instance. "
            "Pass a fitted or constructed model object, not its class."
        )

    if _is_torch_module(obj):
        return TorchAdapter(obj, name=name, threads=threads)  # type: ignore[arg-type]
    if hasattr(obj, "predict_proba") or hasattr(obj, "predict"):
        return SklearnAdapter(obj, name=name)
    if callable(obj):
        return CallableAdapter(obj, name=name)
    raise InvalidParameterError(
        f"Model {name!r}: cannot be used as a model; got an object of type "
        f"{type(obj).__qualname__}, expected a ModelAdapter, a model file path, a torch "
        "nn.Module, an object with predict/predict_proba, or a callable. Wrap the model in a "
        "function that takes the input array and returns the output array."
    )


def _adapter_for_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    known = suffix_adapters()
    try:
        return known[suffix]
    except KeyError:
        raise ModelLoadError(
            f"Model file {str(path)!r}: cannot tell the runtime from the extension; got "
            f"{suffix or 'no extension'!r}, expected one of {', '.join(known)}. Rename the "
            f"file, or set 'adapter:' ({', '.join(adapter_names())}) in the spec's model entry."
        ) from None


def _is_torch_module(obj: object) -> bool:
    # Checks the class hierarchy by name so that torch is never imported just to ask.
    return any(
        cls.__name__ == "Module" and cls.__module__ == "torch.nn.modules.module"
        for cls in type(obj).__mro__
    )


# -- the built-in runtimes: one registration each -------------------------------------------
# ``load_model`` has set ``ref.name`` (the file stem by default) before calling ``load``.
# scikit-learn estimators have no intra-op pool, so ``threads`` is unused for them.
_ONNX = (".onnx",)
_TORCHSCRIPT = (".pt", ".pth", ".ts", ".torchscript")
_PICKLE = (".joblib", ".pkl", ".pickle")
register_adapter(
    AdapterRegistration(
        "onnxruntime",
        _ONNX,
        lambda p, r: OnnxRuntimeAdapter(p, name=str(r.name), threads=r.threads),
    )
)
register_adapter(
    AdapterRegistration(
        "torchscript",
        _TORCHSCRIPT,
        lambda p, r: TorchAdapter.from_torchscript(p, name=str(r.name), threads=r.threads),
    )
)
register_adapter(
    AdapterRegistration(
        "torch_export",
        (".pt2",),
        lambda p, r: TorchAdapter.from_export(p, name=str(r.name), threads=r.threads),
    )
)
register_adapter(
    AdapterRegistration(
        "sklearn",
        _PICKLE,
        lambda p, r: SklearnAdapter.from_file(p, name=str(r.name), allow_pickle=r.allow_pickle),
    )
)
