"""Turn a spec's model entry or a Python object into a ModelAdapter.

``load_model`` resolves a :class:`~compval.spec._model.ModelRef` (what the spec and the CLI
produce) and picks the adapter by file extension when ``adapter: auto``. ``as_adapter`` accepts
whatever a Python user hands over: an adapter, a file path, a torch module, a scikit-learn style
estimator or a plain callable.

This module also holds the small file helpers the file-based adapters share (content hash,
a description of what a file actually contains for error messages). The adapter classes are
imported inside the functions because their modules import these helpers.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from compval.adapters._base import ModelAdapter
from compval.errors import InvalidParameterError, ModelLoadError

if TYPE_CHECKING:
    from compval.spec._model import ModelRef

__all__ = [
    "SUFFIX_ADAPTERS",
    "as_adapter",
    "describe_file",
    "load_model",
    "require_file",
    "sha256_file",
]

#: File extension (lower case) -> adapter used by ``adapter: auto``.
SUFFIX_ADAPTERS: Mapping[str, str] = {
    ".onnx": "onnxruntime",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".pt2": "torch_export",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
}

_CHUNK_BYTES = 1 << 20


def load_model(ref: ModelRef, *, base_dir: Path) -> ModelAdapter:
    """Create the adapter for a spec's model entry; the model is loaded on ``open()``.

    Args:
        ref: The model entry. ``ref.path`` is resolved against ``base_dir`` when relative.
        base_dir: Directory that relative paths are relative to (the spec file's directory).

    Returns:
        An unopened adapter named ``ref.name`` or, by default, the file's stem.

    Raises:
        InvalidParameterError: ``ref.path`` is missing.
        ModelLoadError: The file does not exist, its extension is unknown (with
            ``adapter: auto``), or it is a pickle and ``allow_pickle`` is false.
    """
    if ref.path is None:
        raise InvalidParameterError(
            f"Model {ref.name or '<unnamed>'!r}: 'path' is missing; got None, expected a model "
            "file path. Set 'path' in the spec's model entry, or pass the model object from "
            "Python with as_adapter()."
        )
    path = Path(ref.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    require_file(path, what="Model file", hint=f"relative paths are resolved against {base_dir}")
    adapter = ref.adapter if ref.adapter != "auto" else _adapter_for_suffix(path)
    name = ref.name if ref.name is not None else path.stem

    # Imported here: these modules import this module's file helpers.
    from compval.adapters.onnxruntime import OnnxRuntimeAdapter
    from compval.adapters.sklearn import SklearnAdapter
    from compval.adapters.torch import TorchAdapter

    if adapter == "onnxruntime":
        return OnnxRuntimeAdapter(path, name=name, threads=ref.threads)
    if adapter == "torchscript":
        return TorchAdapter.from_torchscript(path, name=name, threads=ref.threads)
    if adapter == "torch_export":
        return TorchAdapter.from_export(path, name=name, threads=ref.threads)
    # adapter == "sklearn"; scikit-learn estimators have no intra-op pool, so threads is unused.
    return SklearnAdapter.from_file(path, name=name, allow_pickle=ref.allow_pickle)


def as_adapter(obj: object, *, name: str, threads: int | None = None) -> ModelAdapter:
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
        # Imported here so that importing the adapters does not build the spec models.
        from compval.spec._model import ModelRef

        ref = ModelRef(name=name, path=str(Path(obj)), threads=threads)
        return load_model(ref, base_dir=Path.cwd())
    if isinstance(obj, type):
        raise InvalidParameterError(
            f"Model {name!r}: got the class {obj.__qualname__}, expected an instance. "
            "Pass a fitted or constructed model object, not its class."
        )

    # Imported here: these modules import this module's file helpers.
    from compval.adapters.callable import CallableAdapter
    from compval.adapters.sklearn import SklearnAdapter
    from compval.adapters.torch import TorchAdapter

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


def check_threads(name: str, threads: int | None) -> None:
    """Raise InvalidParameterError unless ``threads`` is None or an int >= 1."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidParameterError(
            f"Model {name!r}: 'threads' must be an int >= 1 or None; got {threads!r}. "
            "Leave it unset to use the runtime's default."
        )


def require_file(path: Path, *, what: str, hint: str | None = None) -> None:
    """Raise ModelLoadError unless ``path`` is an existing regular file."""
    if path.is_file():
        return
    found = "a directory" if path.is_dir() else "a path that does not exist"
    fix = "Check the path" + (f"; {hint}." if hint else ".")
    problem = "is a directory" if path.is_dir() else "file not found"
    raise ModelLoadError(
        f"{what} {str(path)!r}: {problem}; got {found}, expected an existing file. {fix}"
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks so large models stay out of RAM."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path) -> str:
    """Say what a file appears to contain, for error messages (never unpickles anything).

    Example:
        ``"a torch.save checkpoint (a pickle in a zip archive) of 1234 bytes"``
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror or exc})"
    if size == 0:
        return "an empty file (0 bytes)"
    return f"{_kind_of(path, head)} of {size} bytes"


def zip_names(path: Path) -> list[str] | None:
    """The member names of a zip archive, or None when ``path`` is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _kind_of(path: Path, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        names = zip_names(path)
        if names is None:
            return "a damaged zip archive"
        if any(n.endswith("constants.pkl") for n in names):
            return "a TorchScript archive"
        if any(n.endswith("archive_format") for n in names):
            return "a torch.export .pt2 archive"
        if any(n.endswith("data.pkl") for n in names):
            return "a torch.save checkpoint (a pickle in a zip archive)"
        return "a zip archive"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    if head.startswith((b"\x1f\x8b", b"ZF", b"x\x9c", b"x\x01", b"x\xda")):
        return "a compressed file (gzip/zlib; e.g. a compressed joblib pickle)"
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a cut multibyte char
    if text and "\ufffd" not in text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"a text file starting with {text[:32]!r}"
    if head[:1] == b"\x08":
        return "binary data that looks like a protobuf message"
    return f"unrecognised binary data (starting with {head[:8].hex()})"


def _adapter_for_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    try:
        return SUFFIX_ADAPTERS[suffix]
    except KeyError:
        supported = ", ".join(SUFFIX_ADAPTERS)
        raise ModelLoadError(
            f"Model file {str(path)!r}: cannot tell the runtime from the extension; got "
            f"{suffix or 'no extension'!r}, expected one of {supported}. Rename the file, or "
            "set 'adapter:' (onnxruntime, torchscript, torch_export, sklearn) in the spec's "
            "model entry."
        ) from None


def _is_torch_module(obj: object) -> bool:
    # Checks the class hierarchy by name so that torch is never imported just to ask.
    return any(
        cls.__name__ == "Module" and cls.__module__ == "torch.nn.modules.module"
        for cls in type(obj).__mro__
    )
