"""The runtime registry: which adapter loads a model file, and how Python objects are wrapped.

Adding a runtime is one module (a ``ModelAdapter`` subclass) plus one registration line at the
bottom of this file (or, for a third-party package, an entry point in the
``compval.adapters`` group whose object is an :class:`AdapterRegistration`)::

    register_adapter(AdapterRegistration("tflite", (".tflite",), TfliteAdapter.from_ref))

``load_model`` resolves a :class:`~compval.spec.ModelRef` (what the spec and the CLI produce) and
picks the runtime by file extension when ``adapter: auto``. A path may also be a URI whose
scheme is registered with ``register_model_scheme`` (MLflow's ``models:/`` and ``runs:/``):
it is resolved to a local file first, and the adapter's ``source`` records where it came
from. An ``http(s)://`` URL is a served model (``EndpointAdapter``, KServe
v1/v2): nothing is downloaded. ``as_adapter`` accepts whatever a
Python user hands over: an adapter, a file path, a torch module, a scikit-learn style estimator
or a plain callable.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from compval._plugins import load_entry_points
from compval.adapters._base import ModelAdapter
from compval.adapters._files import check_threads, require_file
from compval.adapters._mlflow import (
    MLFLOW_SCHEMES,
    ResolvedModel,
    resolve_mlflow_uri,
    uri_model_name,
)
from compval.adapters.callable import CallableAdapter
from compval.adapters.endpoint import EndpointAdapter, endpoint_model_name, is_endpoint_url
from compval.adapters.litert import LiteRTAdapter
from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.adapters.sklearn import SklearnAdapter
from compval.adapters.torch import TorchAdapter
from compval.errors import InvalidParameterError, ModelLoadError
from compval.spec import ModelRef, TrackingSpec
from compval.types import ModelLike

__all__ = [
    "AdapterRegistration",
    "adapter_names",
    "as_adapter",
    "default_model_name",
    "derive_model",
    "is_model_uri",
    "load_model",
    "register_adapter",
    "register_model_scheme",
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


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_entry_points(
            ENTRY_POINT_GROUP,
            AdapterRegistration,
            lambda r: None if r.name in _REGISTRY else register_adapter(r),
        )


def _registry() -> Mapping[str, AdapterRegistration]:
    """Every runtime, those of other packages' entry points included."""
    _load_plugins()
    return MappingProxyType(_REGISTRY)


def _runtime_for(name: str | None = None, *, suffix: str | None = None) -> str | None:
    """The runtime registered as ``name``, or claiming the file extension ``suffix``.

    Entry points are loaded only when no runtime registered so far answers: reading them
    scans the metadata of every installed package (8-9 ms with 180 installed), which a run
    of built-in runtimes does not need. An entry point cannot take a built-in runtime's name
    or extension (the built-in one wins, or registering it fails), so the answer is the same.
    """

    def registered() -> str | None:
        for registration in _REGISTRY.values():
            if registration.name == name or suffix in registration.suffixes:
                return registration.name
        return None

    found = registered()
    if found is None and not _plugins_loaded:
        _load_plugins()
        found = registered()
    return found


def adapter_names() -> tuple[str, ...]:
    """Registered runtime names (the valid values of ``adapter:`` besides ``auto``)."""
    return tuple(_registry())


def suffix_adapters() -> Mapping[str, str]:
    """File extension (lower case) -> runtime used by ``adapter: auto``."""
    return {s: r.name for r in _registry().values() for s in r.suffixes}


#: Resolves a model path written as a URI: ``(uri, tracking settings) -> local file``.
ModelResolver = Callable[[str, TrackingSpec], ResolvedModel]
_SCHEMES: dict[str, ModelResolver] = {}


def register_model_scheme(scheme: str, resolve: ModelResolver) -> None:
    """Let model paths be URIs of ``scheme`` (``models`` for ``models:/...``).

    Raises:
        InvalidParameterError: The scheme is already registered.
    """
    if scheme in _SCHEMES:
        raise InvalidParameterError(
            f"register_model_scheme: scheme already registered; got {scheme!r}, expected a new "
            f"one (registered: {', '.join(sorted(_SCHEMES))})."
        )
    _SCHEMES[scheme] = resolve


def is_model_uri(path: str) -> bool:
    """Whether ``path`` is a model URI of a registered scheme rather than a file path.

    Example:
        >>> is_model_uri("models:/clf/3"), is_model_uri("models/clf.onnx")
        (True, False)
    """
    # An inference-server URL (http/https) is a model URI too: kept as written, not resolved
    # against the current directory.
    return urllib.parse.urlsplit(path).scheme in _SCHEMES or is_endpoint_url(path)


def default_model_name(path: str) -> str:
    """The name a model gets in reports when its entry names none.

    The file's stem, or for a URI the registered name and version (``clf-3`` for
    ``models:/clf/3``).
    """
    if is_endpoint_url(path):
        return endpoint_model_name(path)
    if is_model_uri(path):
        return uri_model_name(path)
    return Path(path).stem


def load_model(
    ref: ModelRef, *, base_dir: Path, tracking: TrackingSpec | None = None
) -> ModelAdapter:
    """Create the adapter for a spec's model entry; the model is loaded on ``open()``.

    Args:
        ref: The model entry. ``ref.path`` is resolved against ``base_dir`` when relative; a
            URI of a registered scheme (``models:/clf/3``) is downloaded first.
        base_dir: Directory that relative paths are relative to (the spec file's directory).
        tracking: The spec's tracking section (the MLflow server model URIs resolve against).

    Returns:
        An unopened adapter named ``ref.name`` or, by default, the file's stem (for a URI,
        the registered name and version); its ``source`` says where a URI led.

    Raises:
        InvalidParameterError: ``ref.path`` is missing, or ``ref.adapter`` names no runtime.
        ModelLoadError: The file does not exist, its extension is unknown (with
            ``adapter: auto``), a URI cannot be resolved, or it is a pickle and
            ``allow_pickle`` is false.
        MissingDependencyError: A URI's scheme needs a package that is not installed.
    """
    if ref.path is None:
        raise InvalidParameterError(
            f"Model {ref.name or '<unnamed>'!r}: 'path' is missing; got None, expected a model "
            "file path. Set 'path' in the spec's model entry, or pass the model object from "
            "Python with as_adapter()."
        )
    if ref.adapter != "auto" and _runtime_for(ref.adapter) is None:
        raise InvalidParameterError(
            f"Model {ref.name or ref.path!r}: unknown adapter; got {ref.adapter!r}, expected "
            f"'auto' or one of {', '.join(adapter_names())}. Fix 'adapter:' in the model "
            "entry, or install the package that provides the runtime."
        )
    if is_endpoint_url(ref.path):
        if ref.adapter not in ("auto", "endpoint"):
            raise InvalidParameterError(
                f"Model {ref.name or ref.path!r}: a URL is served by an inference server; got "
                f"adapter {ref.adapter!r}, expected 'auto' or 'endpoint' (or give a file path)."
            )
        _check_options(ref, _FILE_OPTIONS, "a model served by an inference server")
        named = (
            ref
            if ref.name is not None
            else ref.model_copy(update={"name": endpoint_model_name(ref.path)})
        )
        return _REGISTRY["endpoint"].load(Path(), named)
    _check_options(ref, _SERVING_OPTIONS, "a model file (they are for an http(s) endpoint)")
    if is_model_uri(ref.path):
        resolved = _SCHEMES[urllib.parse.urlsplit(ref.path).scheme](
            ref.path, tracking or TrackingSpec()
        )
        try:
            adapter = _load_file(ref, resolved.path, name=resolved.name)
        except BaseException:
            shutil.rmtree(resolved.folder, ignore_errors=True)
            raise
        adapter.source = resolved.source
        # The download lives as long as the adapter: the profiler reloads the file from it.
        weakref.finalize(adapter, shutil.rmtree, resolved.folder, True)
        return adapter
    path = Path(ref.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    require_file(path, what="Model file", hint=f"relative paths are resolved against {base_dir}")
    return _load_file(ref, path, name=path.stem)


def _load_file(ref: ModelRef, path: Path, *, name: str) -> ModelAdapter:
    runtime = ref.adapter if ref.adapter != "auto" else _adapter_for_suffix(path)
    _check_runtime_options(ref, runtime)
    named = ref if ref.name is not None else ref.model_copy(update={"name": name})
    return _REGISTRY[runtime].load(path, named)


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


def derive_model(base: ModelAdapter, ref: ModelRef, *, name: str) -> ModelAdapter:
    """The model of entry ``ref`` made from ``base`` by its ``dtype`` and ``device``.

    Used for ``from: reference`` candidates and for model objects whose spec entry sets a
    precision or device. Only torch models can be re-cast this way.

    Raises:
        InvalidParameterError: ``base`` is not a torch model.
    """
    if isinstance(base, TorchAdapter):
        return base.derived(name=name, dtype=ref.dtype, device=ref.device)
    raise InvalidParameterError(
        f"Model {name!r}: 'dtype'/'device' can only re-cast a torch model; got a "
        f"{base.runtime} model ({type(base).__name__}), expected a torch module, TorchScript "
        "or torch.export file. Export the candidate in the wanted precision as its own file "
        "(for ONNX Runtime, choose the device with 'providers')."
    )


#: The model-entry options only some built-in runtimes take (plugins read the entry freely).
_OPTION_RUNTIMES: Mapping[str, tuple[str, ...]] = {
    "device": ("torchscript", "torch_export"),
    "dtype": ("torchscript", "torch_export"),
    "providers": ("onnxruntime",),
    "provider_options": ("onnxruntime",),
    "signature": ("litert",),
}


def _check_runtime_options(ref: ModelRef, runtime: str) -> None:
    """An option the runtime would ignore must not be silently ignored."""
    builtin = {r for runtimes in _OPTION_RUNTIMES.values() for r in runtimes} | {"sklearn"}
    if runtime not in builtin:
        return
    for option, runtimes in _OPTION_RUNTIMES.items():
        if getattr(ref, option) is not None and runtime not in runtimes:
            raise InvalidParameterError(
                f"Model {ref.name or ref.path!r}: {option!r} does not apply to the {runtime} "
                f"runtime; got {option}: {getattr(ref, option)!r}, expected it only for "
                f"{', '.join(runtimes)} models. Remove it from the model entry."
            )


def _resolve_mlflow(uri: str, tracking: TrackingSpec) -> ResolvedModel:
    return resolve_mlflow_uri(
        uri, tracking_uri=tracking.mlflow, suffixes=tuple(sorted(suffix_adapters()))
    )


def _adapter_for_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    runtime = _runtime_for(suffix=suffix)
    if runtime is None:
        known = suffix_adapters()
        raise ModelLoadError(
            f"Model file {str(path)!r}: cannot tell the runtime from the extension; got "
            f"{suffix or 'no extension'!r}, expected one of {', '.join(known)}. Rename the "
            f"file, or set 'adapter:' ({', '.join(adapter_names())}) in the spec's model entry."
        )
    return runtime


def _is_torch_module(obj: object) -> bool:
    # Checks the class hierarchy by name so that torch is never imported just to ask.
    return any(
        cls.__name__ == "Module" and cls.__module__ == "torch.nn.modules.module"
        for cls in type(obj).__mro__
    )


#: Model-entry options of endpoints only, and of local runtimes only: set on the other kind
#: of model they would be silently ignored.
_SERVING_OPTIONS = frozenset(
    {"timeout_s", "max_in_flight", "request_rows", "retries", "binary_data"}
)
_FILE_OPTIONS = frozenset(
    {"threads", "device", "dtype", "providers", "provider_options", "signature"}
)


def _check_options(ref: ModelRef, options: frozenset[str], what: str) -> None:
    # Set and not the default: the CLI fills some keys with their defaults for every model.
    fields = type(ref).model_fields
    given = sorted(k for k in options if getattr(ref, k) != fields[k].default)
    if given:
        raise InvalidParameterError(
            f"Model {ref.name or ref.path!r}: {', '.join(given)} do(es) not apply to {what}; "
            f"got {', '.join(f'{k}: {getattr(ref, k)!r}' for k in given)}. Remove it from the "
            "model entry."
        )


# -- the built-in runtimes: one registration each -------------------------------------------
# ``load_model`` has set ``ref.name`` (the file stem by default) before calling ``load``.
# scikit-learn estimators have no intra-op pool, so ``threads`` is unused for them.
_ONNX = (".onnx",)
_TORCHSCRIPT = (".pt", ".pth", ".ts", ".torchscript")
_PICKLE = (".joblib", ".pkl", ".pickle")
# ONNX Runtime's mobile format (.ort) loads through the same session as .onnx.
register_adapter(
    AdapterRegistration(
        "onnxruntime",
        (*_ONNX, ".ort"),
        lambda p, r: OnnxRuntimeAdapter(
            p,
            name=str(r.name),
            threads=r.threads,
            providers=r.providers,
            provider_options=r.provider_options,
        ),
    )
)
register_adapter(
    AdapterRegistration(
        "torchscript",
        _TORCHSCRIPT,
        lambda p, r: TorchAdapter.from_torchscript(
            p, name=str(r.name), threads=r.threads, device=r.device, dtype=r.dtype
        ),
    )
)
register_adapter(
    AdapterRegistration(
        "torch_export",
        (".pt2",),
        lambda p, r: TorchAdapter.from_export(
            p, name=str(r.name), threads=r.threads, device=r.device, dtype=r.dtype
        ),
    )
)
# LiteRT (TensorFlow Lite) for the mobile and edge targets (extra: litert).
register_adapter(
    AdapterRegistration(
        "litert",
        (".tflite",),
        lambda p, r: LiteRTAdapter(p, name=str(r.name), threads=r.threads, signature=r.signature),
    )
)
register_adapter(
    AdapterRegistration(
        "sklearn",
        _PICKLE,
        lambda p, r: SklearnAdapter.from_file(p, name=str(r.name), allow_pickle=r.allow_pickle),
    )
)
# A served model (extra: serving): its URL is the entry's path; no file, no extension.
register_adapter(AdapterRegistration("endpoint", (), lambda _, r: EndpointAdapter.from_ref(r)))
# MLflow's model URIs as model paths (extra: mlflow): models:/name/version, runs:/id/path.
for _scheme in MLFLOW_SCHEMES:
    register_model_scheme(_scheme, _resolve_mlflow)
