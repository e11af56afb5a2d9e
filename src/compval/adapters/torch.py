"""TorchAdapter: runs a PyTorch ``nn.Module`` on CPU or a CUDA device (extra: ``torch``).

Three sources: an in-memory module (Python API), a TorchScript archive
(``torch.jit.save``; ``.pt``, ``.pth``, ``.ts``, ``.torchscript``) and a ``torch.export``
archive (``.pt2``). compval never calls ``torch.load`` on a pickled checkpoint: unpickling
runs code from the file, and a state_dict is not a runnable model anyway.

``device`` (``cuda``, ``cuda:N``) moves the module and each batch to a GPU; outputs come back
to the host for scoring. ``dtype`` (``bfloat16``, ``float16``) casts the module's floating
parameters and floating inputs; its outputs are returned as float32. ``derived`` makes such a
precision or device variant of an adapter without a second file (``from: reference``).

torch is imported when the adapter opens, never when this module is imported.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

from compval._lazy import lazy_import
from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.adapters._files import (
    check_threads,
    describe_file,
    require_file,
    sha256_file,
    zip_names,
)
from compval.adapters.callable import check_names, structure_outputs
from compval.errors import InferenceError, InvalidParameterError, ModelLoadError
from compval.types import Array, Outputs, TensorSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TorchAdapter"]

_Source = Literal["module", "torchscript", "export"]

#: ``dtype:`` values -> the torch dtype attribute they name.
TORCH_DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]+)?)$")

_EXPORT_HOWTO = (
    "Export the model instead: torch.jit.script(model) (or torch.jit.trace(model, example)) "
    "then .save('model.pt'), or torch.export.save(torch.export.export(model, (example,)), "
    "'model.pt2')."
)


class TorchAdapter(ModelAdapter):
    """Run a PyTorch module on CPU under ``torch.inference_mode()``.

    Each input array becomes a tensor with ``torch.from_numpy`` and is passed positionally,
    in ``input_names`` order. The module's return value is converted to numpy: one tensor
    gives ``{"output": ...}``, a tuple or list ``{"output_0": ..., "output_1": ...}``, and a
    dict keeps its keys. ``open()`` puts in-memory and TorchScript modules in eval mode (this
    changes the module object you passed in); exported programs are already frozen.

    ``threads`` calls ``torch.set_num_threads`` when the adapter opens. That setting is
    process-global: it applies to every torch model in the process (reference and candidate
    alike), the last adapter opened with ``threads`` wins, and it is not restored on close.

    With ``device`` or ``dtype``, an in-memory module is deep-copied on ``open()`` before it is
    moved or cast, so the module you passed in (often the reference) is left as it was.

    Args:
        module: The module to run.
        name: Name shown in reports.
        input_names: Names of the module's positional inputs, in order.
        input_dtype: The dtype the module takes for every input (checked before each batch).
        threads: Intra-op thread count for torch (process-global, see above); None leaves it.
        device: ``cpu`` (default), ``cuda`` or ``cuda:N``.
        dtype: ``float32``, ``bfloat16`` or ``float16``: the precision the module runs in;
            None keeps the module's own.

    Raises:
        InvalidParameterError: A bad ``input_names``, ``input_dtype``, ``threads``,
            ``device`` or ``dtype``.

    Example:
        >>> import numpy as np, torch
        >>> with TorchAdapter(torch.nn.Identity(), name="id") as model:
        ...     model.predict({"input": np.ones((2, 3), np.float32)})["output"].shape
        (2, 3)
    """

    runtime = "torch"

    _input_names: tuple[str, ...]
    _spec: dict[str, TensorSpec]
    _threads: int | None
    _source: _Source
    _path: Path | None
    _given: Any
    _module: Any
    _torch: ModuleType | None
    _sha256: str | None
    _device: str
    _dtype: str | None
    _device_details: dict[str, Any] | None

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        input_names: Sequence[str] = ("input",),
        input_dtype: npt.DTypeLike = np.float32,
        threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._setup(
            input_names=input_names,
            input_dtype=input_dtype,
            threads=threads,
            source="module",
            device=device,
            dtype=dtype,
        )
        self._given = module

    @classmethod
    def from_torchscript(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str,
        input_names: Sequence[str] = ("input",),
        input_dtype: npt.DTypeLike = np.float32,
        threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> Self:
        """An adapter for a TorchScript archive written by ``torch.jit.save``.

        The file is loaded (``torch.jit.load``, ``map_location="cpu"``) by ``open()``. A
        ``torch.save`` checkpoint is refused: compval does not unpickle ``.pt`` files.

        Args:
            path: The archive (``.pt``, ``.pth``, ``.ts``, ``.torchscript``).
            name: Name shown in reports.
            input_names: Names of the module's positional inputs, in order.
            input_dtype: The dtype the module takes for every input.
            threads: Intra-op thread count (process-global; see the class docstring).
            device: ``cpu`` (default), ``cuda`` or ``cuda:N``.
            dtype: Precision to cast the module to (see the class docstring).

        Returns:
            An unopened adapter; ``open()`` raises ModelLoadError for a file that is missing
            or is not a TorchScript archive.
        """
        adapter = cls.__new__(cls)
        ModelAdapter.__init__(adapter, name=name)
        adapter._setup(
            input_names=input_names,
            input_dtype=input_dtype,
            threads=threads,
            source="torchscript",
            path=Path(path),
            device=device,
            dtype=dtype,
        )
        return adapter

    @classmethod
    def from_export(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str,
        input_names: Sequence[str] = ("input",),
        input_dtype: npt.DTypeLike = np.float32,
        threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> Self:
        """An adapter for a ``torch.export.save`` archive (``.pt2``).

        ``open()`` runs ``torch.export.load(path).module()``. Export with a dynamic batch
        dimension (``dynamic_shapes``) to run batches of any size.

        Args:
            path: The ``.pt2`` archive.
            name: Name shown in reports.
            input_names: Names of the program's positional inputs, in order.
            input_dtype: The dtype the program takes for every input.
            threads: Intra-op thread count (process-global; see the class docstring).
            device: ``cpu`` (default), ``cuda`` or ``cuda:N``.
            dtype: Precision to cast the module to (see the class docstring).

        Returns:
            An unopened adapter; ``open()`` raises ModelLoadError for a file that is missing
            or is not a torch.export archive.
        """
        adapter = cls.__new__(cls)
        ModelAdapter.__init__(adapter, name=name)
        adapter._setup(
            input_names=input_names,
            input_dtype=input_dtype,
            threads=threads,
            source="export",
            path=Path(path),
            device=device,
            dtype=dtype,
        )
        return adapter

    def _setup(
        self,
        *,
        input_names: Sequence[str],
        input_dtype: npt.DTypeLike,
        threads: int | None,
        source: _Source,
        path: Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        check_threads(self.name, threads)
        if device is not None and (not isinstance(device, str) or not _DEVICE.match(device)):
            raise InvalidParameterError(
                f"Model {self.name!r}: 'device' must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}."
            )
        if dtype is not None and dtype not in TORCH_DTYPES:
            raise InvalidParameterError(
                f"Model {self.name!r}: 'dtype' must be one of {list(TORCH_DTYPES)}; got {dtype!r}."
            )
        names = check_names(self.name, "input_names", input_names)
        try:
            numpy_dtype = np.dtype(input_dtype)
        except TypeError as exc:
            raise InvalidParameterError(
                f"Model {self.name!r}: 'input_dtype' is not a numpy dtype; got "
                f"{input_dtype!r}, expected e.g. np.float32. Pass the dtype the module takes."
            ) from exc
        self._input_names = names
        self._spec = {n: TensorSpec(name=n, dtype=numpy_dtype, shape=None) for n in names}
        self._threads = threads
        self._source = source
        self._path = path
        self._given = None
        self._module = None
        self._torch = None
        self._sha256 = None
        self._device = device or "cpu"
        self._dtype = dtype
        self._device_details = None

    @property
    def path(self) -> Path | None:
        """The model file, or None for an in-memory module."""
        return self._path

    @property
    def module(self) -> Any:
        """The ``nn.Module`` that runs (opens the adapter if needed)."""
        self.open()
        return self._module

    def _open(self) -> None:
        torch = lazy_import("torch", extra="torch")
        if self._source == "torchscript":
            module = _load_torchscript(torch, self._require_path())
        elif self._source == "export":
            module = _load_export(torch, self._require_path())
        elif self._device != "cpu" or self._dtype is not None:
            # Moving or casting works in place: a copy keeps the caller's module (often the
            # reference of this very run) on its device and in its precision.
            module = copy.deepcopy(self._given)
        else:
            module = self._given
        if self._source != "export":
            # Exported programs refuse eval(); they were captured in the mode they were in.
            module.eval()
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        if self._device != "cpu":
            self._device = _check_cuda(torch, self.name, self._device)
            module = module.to(self._device)
        if self._dtype is not None:
            module = module.to(getattr(torch, self._dtype))
        self._torch = torch
        self._module = module

    def _require_path(self) -> Path:
        path = self._path
        if path is None:  # pragma: no cover - file sources always set a path
            raise InvalidParameterError(f"Model {self.name!r}: no model file was given.")
        return path

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _tensors(self, inputs: Mapping[str, Array]) -> list[Any]:
        """The batch as tensors on the module's device, floating ones in its dtype."""
        torch: Any = self._torch
        tensors = [torch.from_numpy(_as_tensor_ready(inputs[n])) for n in self._input_names]
        if self._device == "cpu" and self._dtype is None:
            return tensors
        dtype = None if self._dtype is None else getattr(torch, self._dtype)
        if self._device != "cpu":
            # Page-locked host memory lets the copy run as DMA, asynchronously to this thread
            # (torch caches pinned blocks); the forward pass is queued behind it on the stream.
            tensors = [t.pin_memory() for t in tensors]
        return [
            t.to(self._device, dtype=dtype if t.is_floating_point() else None, non_blocking=True)
            for t in tensors
        ]

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        # Scored in float32 whatever precision ran: the difference is what is validated.
        to_array = _to_numpy if self._dtype is None else _to_float32
        return structure_outputs(
            self.name, self._forward(inputs), output_names=None, to_array=to_array
        )

    def _predict_on_device(self, inputs: Mapping[str, Array]) -> Mapping[str, Any]:
        """On a GPU: the output tensors where they are (no copy to the host); else ``_predict``."""
        if self._device == "cpu":
            return self._predict(inputs)
        return structure_outputs(
            self.name, self._forward(inputs), output_names=None, to_array=_detached
        )

    def _forward(self, inputs: Mapping[str, Array]) -> Any:
        torch: Any = self._torch
        tensors = self._tensors(inputs)
        try:
            with torch.inference_mode():
                result = self._module(*tensors)
        except Exception as exc:
            hint = ""
            if self._source == "export":
                hint = (
                    " If the program was exported with a fixed batch size, export it again "
                    "with dynamic_shapes={'x': {0: torch.export.Dim('batch')}} (your input's "
                    "name for 'x')."
                )
            raise InferenceError(
                f"Model {self.name!r}: torch failed on a batch: {type(exc).__name__}: {exc}.{hint}"
            ) from exc
        return result

    def _info(self) -> AdapterInfo:
        torch: Any = self._torch
        if self._path is None:
            model_id = f"python:{type(self._module).__qualname__}"
            size = None
        else:
            if self._sha256 is None:
                # Hashed on first request, not in open(), so that load time excludes hashing.
                self._sha256 = sha256_file(self._path)
            model_id = self._sha256
            size = self._path.stat().st_size
        if not self._runs_as_saved():
            # What runs is the cast module, not the file: its weights in their precision.
            size = _tensor_bytes(self._module)
        return AdapterInfo(
            runtime="torch",
            runtime_version=str(torch.__version__),
            device=self._device,
            model_id=model_id,
            path=None if self._path is None else str(self._path),
            size_bytes=size,
        )

    def _close(self) -> None:
        self._module = None
        if self._device != "cpu" and self._torch is not None:
            # Frees this model's device memory before the next model (or run) needs it.
            self._torch.cuda.empty_cache()

    def __repr__(self) -> str:
        where = "in memory" if self._path is None else repr(str(self._path))
        return f"TorchAdapter({where}, source={self._source!r}, name={self.name!r})"

    @property
    def device(self) -> str:
        """Where the module runs: ``cpu`` or ``cuda:N`` (``cuda`` resolved on ``open()``)."""
        return self._device

    @property
    def dtype(self) -> str | None:
        """The precision the module is cast to, or None (its own)."""
        return self._dtype

    def derived(
        self, *, name: str, dtype: str | None = None, device: str | None = None
    ) -> TorchAdapter:
        """An unopened adapter for the same module run in another precision or on another device.

        The module is loaded again from its file, or deep-copied if in memory, so this adapter
        is untouched. ``dtype`` and ``device`` default to this adapter's.

        Example:
            >>> import torch
            >>> fp32 = TorchAdapter(torch.nn.Linear(4, 3), name="fp32")
            >>> fp32.derived(name="bf16", dtype="bfloat16").dtype
            'bfloat16'
        """
        kwargs: dict[str, Any] = {
            "name": name,
            "input_names": self._input_names,
            "input_dtype": next(iter(self._spec.values())).dtype or np.float32,
            "threads": self._threads,
            "device": device or self._device,
            "dtype": dtype or self._dtype,
        }
        if self._path is None:
            return TorchAdapter(self._given, **kwargs)
        make = (
            TorchAdapter.from_export if self._source == "export" else TorchAdapter.from_torchscript
        )
        return make(self._path, **kwargs)

    def device_details(self) -> dict[str, Any] | None:
        """Name, capability, memory, CUDA and driver versions of the GPU; None on CPU.

        ``peak_memory_bytes`` is ``torch.cuda.max_memory_allocated`` on the device when asked:
        the peak of every model on that device in this process, not of this model alone.
        """
        if self._device == "cpu" or self._torch is None:
            return None
        torch: Any = self._torch
        index = torch.device(self._device).index or 0
        if self._device_details is None:
            props = torch.cuda.get_device_properties(index)
            self._device_details = {
                "name": str(props.name),
                "capability": f"{props.major}.{props.minor}",
                "memory_bytes": int(props.total_memory),
                "cuda": torch.version.cuda,
                "driver": _nvidia_driver(),
            }
        return {
            **self._device_details,
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated(index)),
        }

    # -- optional hooks ------------------------------------------------------------------
    @property
    def model_format(self) -> str:
        """``torchscript``, ``torch_export`` (files) or ``torch`` (an in-memory module)."""
        return {"torchscript": "torchscript", "export": "torch_export"}.get(self._source, "torch")

    @property
    def model_file(self) -> Path | None:
        """The archive; None for an in-memory module or one cast or moved on ``open()``.

        A cast or moved module is not what the file holds: the profiler must not load the
        file in a child process and call that this model's memory, size or load time.
        """
        return self._path if self._runs_as_saved() else None

    def _runs_as_saved(self) -> bool:
        return self._dtype is None and self._device == "cpu"

    def parameter_stats(self) -> tuple[int, float | None] | None:
        """Parameter count and the share of exact zeros in floating weight matrices."""
        try:
            parameters = list(self.module.parameters())
        except (AttributeError, RuntimeError, TypeError):
            return None
        params = sum(int(p.numel()) for p in parameters)
        weights = [p for p in parameters if p.is_floating_point() and p.dim() >= 2]
        total = sum(int(p.numel()) for p in weights)
        zeros = sum(int((p.detach() == 0).sum()) for p in weights)
        return params, (zeros / total if total else None)

    def timed_call(self, inputs: Mapping[str, Array]) -> Callable[[], object]:
        """On a GPU: the module on a batch already on the device, then a synchronize.

        CUDA kernels run asynchronously: without the synchronize a timer would measure the
        launch, not the work. On CPU the default (``predict``) is timed.
        """
        if self._device == "cpu":
            return super().timed_call(inputs)
        self.predict(inputs)
        torch: Any = self._torch
        tensors = self._tensors(inputs)
        module = self._module

        def call() -> object:
            with torch.inference_mode():
                out = module(*tensors)
            torch.cuda.synchronize(self._device)
            return out

        return call

    def time_reload(self, *, threads: int | None) -> float | None:
        """Milliseconds to load the archive again (None for an in-memory module)."""
        if self._path is None:
            return None
        torch = lazy_import("torch", extra="torch")
        start = time.perf_counter_ns()
        if self._source == "export":
            torch.export.load(str(self._path))
        else:
            torch.jit.load(str(self._path), map_location="cpu")
        return (time.perf_counter_ns() - start) / 1e6

    def with_threads(self, threads: int | None) -> TorchAdapter:
        """A new, unopened adapter for the same archive.

        ``self`` for an in-memory module, or when the thread count is unchanged.
        """
        if self._path is None or threads == self._threads:
            return self
        make = (
            TorchAdapter.from_export if self._source == "export" else TorchAdapter.from_torchscript
        )
        return make(
            self._path,
            name=self.name,
            input_names=self._input_names,
            input_dtype=next(iter(self._spec.values())).dtype or np.float32,
            threads=threads,
            device=self._device,
            dtype=self._dtype,
        )


def _tensor_bytes(module: Any) -> int | None:
    """Bytes of a module's parameters and buffers, in their dtypes (None if not listable)."""
    try:
        tensors = [*module.parameters(), *module.buffers()]
    except (AttributeError, RuntimeError, TypeError):
        return None
    return sum(int(t.numel()) * int(t.element_size()) for t in tensors)


def _check_cuda(torch: Any, model: str, device: str) -> str:
    """``device`` resolved to ``cuda:N``; ModelLoadError when torch sees no such GPU."""
    count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        seen = "no CUDA device" if count == 0 else f"{count} CUDA device(s)"
        raise ModelLoadError(
            f"Model {model!r}: device {device!r} is not available; torch {torch.__version__} "
            f"sees {seen}, expected a GPU at index {index}. Run on a machine with an NVIDIA GPU "
            "and a CUDA build of torch, or set device: cpu."
        )
    return f"cuda:{index}"


@functools.cache
def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version (Linux: /proc/driver/nvidia/version), else None."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    found = re.search(r"Kernel Module\s+([0-9][0-9.]*)", text)
    return found.group(1) if found else None


def _load_torchscript(torch: Any, path: Path) -> Any:
    require_file(path, what="TorchScript model")
    names = zip_names(path)
    is_script = names is not None and any(n.endswith("constants.pkl") for n in names)
    if not is_script:
        # Checked before torch sees the file: torch.jit.load must never be the first thing
        # to look at a pickle (a torch.save checkpoint is a pickle, zipped or not).
        raise ModelLoadError(_not_torchscript(path))
    with _torch_logs_held() as records:
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            reason = _torch_reason(exc, records)
    # The file looks like a TorchScript archive (describe_file says so), so the message must
    # not say it is not one: it is one that torch cannot read (damaged, or a newer format).
    raise ModelLoadError(
        f"TorchScript model {str(path)!r}: cannot be loaded; got {describe_file(path)} that "
        f"torch.jit.load cannot read (torch: {reason}), expected a complete archive written "
        "by torch.jit.save with this torch version or an older compatible one. Save the model "
        "again: torch.jit.script(model).save('model.pt'), or export it to a .pt2 file with "
        "torch.export.save(torch.export.export(model, (example,)), 'model.pt2')."
    )


def _not_torchscript(path: Path) -> str:
    return (
        f"TorchScript model {str(path)!r}: not a TorchScript archive; got "
        f"{describe_file(path)}, expected a file written by torch.jit.save. compval does not "
        f"unpickle .pt checkpoints (torch.save / state_dict files), because unpickling runs "
        f"code from the file. {_EXPORT_HOWTO}"
    )


def _load_export(torch: Any, path: Path) -> Any:
    require_file(path, what="torch.export model")
    names = zip_names(path)
    if names is None or not any(n.endswith("archive_format") for n in names):
        # torch.export.load would log a traceback before failing; answer plainly instead.
        raise ModelLoadError(_not_export(path))
    with _torch_logs_held() as records:
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:
            reason = _torch_reason(exc, records)
    raise ModelLoadError(
        f"torch.export model {str(path)!r}: cannot be loaded; got {describe_file(path)} that "
        f"torch.export.load cannot read (torch: {reason}), expected a .pt2 file written by "
        "torch.export.save with this torch version or an older compatible one. Save it again "
        "with torch.export.save(torch.export.export(model, (example,)), 'model.pt2')."
    )


def _not_export(path: Path) -> str:
    return (
        f"torch.export model {str(path)!r}: not a loadable torch.export archive; got "
        f"{describe_file(path)}, expected a .pt2 file written by torch.export.save with this "
        "torch version or an older compatible one. Save it with "
        "torch.export.save(torch.export.export(model, (example,)), 'model.pt2')."
    )


class _Hold(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _torch_logs_held() -> Iterator[list[logging.LogRecord]]:
    """Keep torch's log records off stderr while a file loads; yield them.

    torch.export.load logs a whole traceback ("Ran into the following error when
    deserializing") on its own stderr handlers before it raises; printed ahead of compval's
    one message it reads like a crash. Every torch logger that has handlers gets a holding
    handler instead for the duration, so the error can quote the cause from the records.
    """
    records: list[logging.LogRecord] = []
    hold = _Hold(records)
    saved: list[tuple[logging.Logger, list[logging.Handler]]] = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        is_torch = name == "torch" or name.startswith("torch.")
        if is_torch and isinstance(logger, logging.Logger) and logger.handlers:
            saved.append((logger, list(logger.handlers)))
            logger.handlers = [hold]
    try:
        yield records
    finally:
        for logger, handlers in saved:
            logger.handlers = handlers


def _torch_reason(exc: BaseException, records: Sequence[logging.LogRecord]) -> str:
    """The most specific one-line cause: a logged exception's message, else the raised one's."""
    for record in reversed(records):
        if record.exc_info and record.exc_info[1] is not None:
            return _first_line(record.exc_info[1])
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # torch's C++ checks append a plea for better messages; it is not the cause.
    text = text.split("(Could this error message be improved?")[0].strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:299] + "…"


def _as_tensor_ready(array: Array) -> Array:
    # torch.from_numpy shares memory and warns on read-only arrays (e.g. memory-mapped
    # data); a copy is cheaper than a warning per batch and keeps the caller's data safe.
    if not array.flags.writeable or not array.flags.c_contiguous:
        return np.array(array, order="C", copy=True)
    return array


def _detached(value: Any) -> Any:
    """A tensor as it is (on its device, in its dtype), detached; anything else as an array."""
    return value.detach() if hasattr(value, "detach") else np.asarray(value)


def _to_float32(value: Any) -> Array:
    """A tensor on the host as float32 (bfloat16 and float16 outputs), others as they are."""
    array = _to_numpy(value)
    return array.astype(np.float32) if array.dtype == np.float16 else array


def _to_numpy(value: Any) -> Array:
    to_numpy: Callable[[], Array] | None = getattr(value, "numpy", None)
    if to_numpy is not None and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    return np.asarray(value)
