"""LiteRTAdapter: runs a ``.tflite`` model with the LiteRT interpreter (extra: ``litert``).

LiteRT (formerly TensorFlow Lite) is what the mobile and edge targets deploy. The interpreter
comes from ``ai-edge-litert`` and is imported when the adapter opens, never when this module
is imported.

Inputs and outputs are named by the model's signature (``serving_default`` unless
``signature`` names another). A quantized input or output (int8, uint8 or int16 with a
scale) is presented as float32: inputs are quantized with the tensor's scale and zero point
(round to nearest, clipped to the integer range), outputs are dequantized. This is what the
application code around a fully integer model does, so the candidate is compared in the same
units as a float reference; ``run_notes()`` says which tensors were converted. The batch
dimension is resized to each batch's row count.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.adapters._base import AdapterInfo, ModelAdapter, RuntimeOperators
from compval.adapters._files import check_threads, describe_file, require_file, sha256_file
from compval.errors import InvalidParameterError, ModelLoadError
from compval.types import Array, Outputs, TensorSpec

__all__ = ["LiteRTAdapter"]

_DEFAULT_SIGNATURE = "serving_default"
_QUANTIZED = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


@dataclass(frozen=True, slots=True)
class _Quant:
    """One tensor's affine quantization: ``real = scale * (q - zero_point)``."""

    dtype: np.dtype[Any]
    scale: Array  # per tensor: shape (1,); per axis: broadcastable to the tensor
    zero_point: Array

    def quantize(self, x: Array) -> Array:
        info = np.iinfo(self.dtype)
        q = np.rint(x.astype(np.float64) / self.scale) + self.zero_point
        clipped: Array = np.clip(q, info.min, info.max).astype(self.dtype)
        return clipped

    def dequantize(self, q: Array) -> Array:
        real = (q.astype(np.float64) - self.zero_point) * self.scale
        return real.astype(np.float32)


class LiteRTAdapter(ModelAdapter):
    """Run a LiteRT (``.tflite``) model through one signature of the LiteRT interpreter.

    Args:
        path: The ``.tflite`` file.
        name: Name shown in reports.
        threads: Interpreter threads; None keeps LiteRT's default.
        signature: The signature to run; default ``serving_default``, or the only one. A
            model with several signatures and none called ``serving_default`` needs it.

    Raises:
        InvalidParameterError: ``threads`` < 1, or ``signature`` is an empty string.

    Example:
        >>> adapter = LiteRTAdapter("model.tflite", name="int8", threads=1)
        >>> adapter.path.name
        'model.tflite'
    """

    runtime = "litert"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        threads: int | None = None,
        signature: str | None = None,
    ) -> None:
        super().__init__(name=name)
        check_threads(name, threads)
        if signature is not None and (not isinstance(signature, str) or not signature):
            raise InvalidParameterError(
                f"Model {name!r}: 'signature' must be a non-empty signature key; got "
                f"{signature!r}. Leave it unset to run '{_DEFAULT_SIGNATURE}'."
            )
        self._path = Path(path)
        self._threads = threads
        self._signature = signature
        self._interpreter: Any = None
        self._runner: Any = None
        self._key: str | None = None
        self._spec: dict[str, TensorSpec] = {}
        self._in_quant: dict[str, _Quant] = {}
        self._out_quant: dict[str, _Quant] = {}
        self._output_names: list[str] = []
        self._load_ms: float | None = None
        self._sha256: str | None = None

    @property
    def path(self) -> Path:
        """The model file."""
        return self._path

    @property
    def signature(self) -> str | None:
        """The signature key that runs (None before ``open()``)."""
        return self._key

    def _open(self) -> None:
        module = lazy_import("ai_edge_litert.interpreter", extra="litert")
        require_file(self._path, what="LiteRT model")
        start = time.perf_counter_ns()
        interpreter = _make_interpreter(module, self._path, self._threads)
        self._load_ms = (time.perf_counter_ns() - start) / 1e6
        signatures = dict(interpreter.get_signature_list())
        key = _choose_signature(self.name, self._signature, signatures)
        runner = interpreter.get_signature_runner(key)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        self._spec, self._in_quant = {}, {}
        for input_name, detail in inputs.items():
            quant = _quant_of(detail)
            dtype = np.dtype(np.float32) if quant is not None else np.dtype(detail["dtype"])
            self._spec[input_name] = TensorSpec(name=input_name, dtype=dtype, shape=_dims(detail))
            if quant is not None:
                self._in_quant[input_name] = quant
        self._out_quant = {n: q for n, d in outputs.items() if (q := _quant_of(d)) is not None}
        # The signature's output order (outputs come back as a dict in that order).
        self._output_names = list(signatures[key]["outputs"])
        self._interpreter, self._runner, self._key = interpreter, runner, key

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _feed(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        feed: dict[str, Array] = {}
        for name, array in inputs.items():
            quant = self._in_quant.get(name)
            feed[name] = quant.quantize(array) if quant is not None else np.ascontiguousarray(array)
        return feed

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        # The signature runner resizes every input to the batch's shape before it runs.
        raw = self._runner(**self._feed(inputs))
        outputs: dict[str, Array] = {}
        for name in self._output_names:
            value = np.asarray(raw[name])
            quant = self._out_quant.get(name)
            # Copied: the runner's output buffers are reused by the next call.
            outputs[name] = quant.dequantize(value) if quant is not None else value.copy()
        return outputs

    def _info(self) -> AdapterInfo:
        if self._sha256 is None:
            self._sha256 = sha256_file(self._path)
        return AdapterInfo(
            runtime="litert",
            runtime_version=_litert_version(),
            device="cpu",
            model_id=self._sha256,
            path=str(self._path),
            size_bytes=self._path.stat().st_size,
        )

    def _close(self) -> None:
        self._interpreter = None
        self._runner = None

    def __repr__(self) -> str:
        return f"LiteRTAdapter({str(self._path)!r}, name={self.name!r})"

    # -- optional hooks ------------------------------------------------------------------
    def run_notes(self) -> list[str]:
        """What the adapter did to the data, for ``run.notes`` (quantized inputs and outputs)."""
        notes: list[str] = []
        for what, quants in (("input", self._in_quant), ("output", self._out_quant)):
            for name, q in quants.items():
                verb = "quantized from float32" if what == "input" else "dequantized to float32"
                notes.append(
                    f"Model {self.name!r} (LiteRT): {what} {name!r} is {q.dtype}; {verb} with "
                    f"the model's scale {_fmt(q.scale)} and zero point {_fmt(q.zero_point)}."
                )
        return notes

    def parameter_stats(self) -> tuple[int, float | None] | None:
        """Elements in the constant tensors (weights, biases) and zeros among float weights.

        Constants are the tensors that feed an operator and that no operator produces and
        the caller does not feed. None if the interpreter does not list its operators.
        """
        interpreter = self._interpreter
        try:
            ops = interpreter._get_ops_details()  # no public listing of operators
            details = {d["index"]: d for d in interpreter.get_tensor_details()}
        except (AttributeError, RuntimeError, ValueError):
            return None
        produced = {int(i) for op in ops for i in op["outputs"]}
        fed = {int(d["index"]) for d in interpreter.get_input_details()}
        constants = {int(i) for op in ops for i in op["inputs"] if i >= 0} - produced - fed
        params = zeros = weights = 0
        for index in sorted(constants):
            detail = details[index]
            count = int(np.prod(detail["shape"]))
            params += count
            if np.dtype(detail["dtype"]).kind == "f" and len(detail["shape"]) >= 2:
                weights += count
                zeros += count - int(np.count_nonzero(interpreter.get_tensor(index)))
        return params, (zeros / weights if weights else None)

    def runtime_operators(self) -> RuntimeOperators | None:
        """The model's operators as the interpreter resolved them when it loaded.

        Loading succeeds only when every operator has a kernel in this LiteRT build. Of
        those, TF Select (``Flex...``) and custom operators run on a phone only if the app
        links the Flex delegate or registers the custom op: they are listed as unsupported by
        the stock runtime. Delegate nodes (XNNPACK) are the interpreter's, not the model's,
        and are left out. None if the interpreter does not list its operators.
        """
        try:
            ops = self._interpreter._get_ops_details()  # no public listing of operators
        except (AttributeError, RuntimeError, ValueError):
            return None
        nodes: list[tuple[str, str]] = []
        unsupported: list[tuple[str, str]] = []
        for op in ops:
            name = str(op.get("op_name", ""))
            if name == "DELEGATE":
                continue
            label = f"<{name} #{int(op['index'])}>"
            nodes.append((label, name))
            if name.startswith("Flex"):
                unsupported.append((label, "a TF Select op: needs the Flex delegate in the app"))
            elif name in ("CUSTOM", "") or not name.isupper():
                unsupported.append((label, "a custom op: the app must register its kernel"))
        return RuntimeOperators(
            runtime=f"ai-edge-litert {_litert_version()}",
            nodes=tuple(nodes),
            unsupported=tuple(unsupported),
            basis=f"the LiteRT interpreter (ai-edge-litert {_litert_version()}) resolved every "
            "operator when the model loaded; TF Select and custom operators need an app built "
            "with them",
        )

    @property
    def model_format(self) -> str:
        """Always ``tflite``."""
        return "tflite"

    @property
    def model_file(self) -> Path:
        """The ``.tflite`` file."""
        return self._path

    @property
    def load_time_s(self) -> float | None:
        """Seconds the interpreter took to load in ``open()``."""
        return None if self._load_ms is None else self._load_ms / 1e3

    def time_reload(self, *, threads: int | None) -> float:
        """Milliseconds to create a fresh interpreter and allocate its tensors."""
        module = lazy_import("ai_edge_litert.interpreter", extra="litert")
        start = time.perf_counter_ns()
        _make_interpreter(module, self._path, threads).allocate_tensors()
        return (time.perf_counter_ns() - start) / 1e6

    def timed_call(self, inputs: Mapping[str, Array]) -> Callable[[], object]:
        """The signature runner on an already quantized feed: no per-call conversion timed."""
        self.predict(inputs)
        return functools.partial(self._runner, **self._feed(inputs))

    def with_threads(self, threads: int | None) -> LiteRTAdapter:
        """A new, unopened adapter for the same file and signature (``self`` if unchanged)."""
        if threads == self._threads:
            return self
        return LiteRTAdapter(self._path, name=self.name, threads=threads, signature=self._signature)


def _make_interpreter(module: Any, path: Path, threads: int | None) -> Any:
    try:
        interpreter = module.Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # the interpreter raises ValueError/RuntimeError with C++ text
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"LiteRT model {str(path)!r}: the LiteRT interpreter cannot load it; got "
            f"{describe_file(path)}, expected a valid .tflite flatbuffer. Convert the model "
            "again (litert-torch, or TensorFlow's TFLiteConverter) or copy the file again if "
            f"it was truncated. (LiteRT: {detail})"
        ) from exc
    return interpreter


def _choose_signature(model: str, wanted: str | None, signatures: Mapping[str, Any]) -> str:
    """The signature key to run: ``wanted``, else ``serving_default``, else the only one."""
    keys = list(signatures)
    if not keys:
        # Inputs named by a signature are what the data's arrays are matched against; a
        # model without one (old TF 1.x converters) would need tensor-index plumbing.
        raise ModelLoadError(
            f"Model {model!r}: the LiteRT model has no signature; got a model without "
            "SignatureDefs, expected at least one (named inputs and outputs). Convert it again "
            "with a current converter (litert-torch, or TFLiteConverter.from_saved_model), "
            "which writes a 'serving_default' signature."
        )
    if wanted is not None:
        if wanted not in signatures:
            raise InvalidParameterError(
                f"Model {model!r}: no signature {wanted!r} in the LiteRT model; got "
                f"signature={wanted!r}, expected one of {keys}. Fix 'signature:' in the model "
                "entry."
            )
        return wanted
    if _DEFAULT_SIGNATURE in signatures:
        return _DEFAULT_SIGNATURE
    if len(keys) == 1:
        return keys[0]
    raise InvalidParameterError(
        f"Model {model!r}: the LiteRT model has several signatures and none is "
        f"{_DEFAULT_SIGNATURE!r}; got {keys}, expected 'signature:' in the model entry naming "
        "the one to validate."
    )


def _quant_of(detail: Mapping[str, Any]) -> _Quant | None:
    dtype = np.dtype(detail["dtype"])
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", ()), np.float64)
    if dtype not in _QUANTIZED or scales.size == 0 or not np.all(scales > 0):
        return None
    zeros = np.asarray(params.get("zero_points", ()), np.float64)
    if scales.size > 1:
        # Per-axis: broadcast along the quantized dimension.
        shape = [1] * len(detail["shape"])
        shape[int(params.get("quantized_dimension", 0))] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return _Quant(dtype=dtype, scale=scales, zero_point=zeros)


def _dims(detail: Mapping[str, Any]) -> tuple[int | None, ...]:
    shape = detail.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = detail["shape"]
    dims: list[int | None] = [int(d) if int(d) >= 0 else None for d in shape]
    if dims:
        # The batch axis is resized to every batch, whatever size the converter fixed.
        dims[0] = None
    return tuple(dims)


def _fmt(values: Array) -> str:
    flat = [float(v) for v in np.ravel(values)]
    text = ", ".join(f"{v:.6g}" for v in flat[:4]) + (", ..." if len(flat) > 4 else "")
    return text if len(flat) == 1 else f"[{text}]"


def _litert_version() -> str:
    return str(getattr(lazy_import("ai_edge_litert", extra="litert"), "__version__", "unknown"))
