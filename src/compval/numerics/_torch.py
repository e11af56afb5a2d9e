"""Per-module error localization for a pair of torch modules, with forward hooks.

The reference's leaf modules (those without children) are matched by their qualified name
(``model.named_modules()``), which torch.ao's quantized copies and dtype casts keep. Each
hook records the module's first input and its output, so the error a module adds is measured
against the error of what it actually received, not against its neighbour's output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.numerics._lowprec import LOW_PRECISION_TINY, range_losses
from compval.numerics._onnx import LayerNumerics, errors, growth, relative_noise
from compval.results import LayerError, LowPrecisionTensor, UnmatchedTensor
from compval.types import Array

__all__ = ["analyze_torch_pair"]


def _dtype_name(value: Any) -> str:
    """The torch dtype's short name of a module output (its first tensor), e.g. ``float16``."""
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return str(getattr(value, "dtype", "")).removeprefix("torch.")


def _float_dtype(module: Any) -> Any:
    """The dtype of the module's first floating-point parameter (None: no float parameter)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def _as_array(value: Any) -> Array | None:
    torch = lazy_import("torch", extra="torch")
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        return None
    if value.is_quantized:
        value = value.dequantize()
    return np.asarray(value.detach().to(torch.float64).cpu().numpy()).ravel()


def _leaves(module: Any) -> set[str]:
    return {n for n, sub in module.named_modules() if n and not any(True for _ in sub.children())}


def _record(
    module: Any, feeds: Sequence[Sequence[Array]], names: set[str]
) -> tuple[dict[str, Array], dict[str, Array], dict[str, Array], dict[str, str]]:
    """Per module named in ``names``: its inputs and outputs over all feeds, in call order."""
    torch = lazy_import("torch", extra="torch")
    inputs: dict[str, list[Array]] = {}
    outputs: dict[str, list[Array]] = {}
    types: dict[str, list[Array]] = {}
    dtypes: dict[str, str] = {}
    handles = []

    def hook(name: str) -> Any:
        def record(mod: Any, args: Any, out: Any) -> None:
            x, y = _as_array(args), _as_array(out)
            if x is not None and y is not None:
                inputs.setdefault(name, []).append(x)
                outputs.setdefault(name, []).append(y)
                types.setdefault(name, [np.array(type(mod).__name__)])
                dtypes.setdefault(name, _dtype_name(out))

        return record

    for name, sub in module.named_modules():
        if name in names:
            handles.append(sub.register_forward_hook(hook(name)))
    # A float16/bfloat16 copy takes inputs of its own type (the torch adapter casts them the
    # same way); integer inputs (token ids) are left as they are.
    cast = _float_dtype(module)

    def tensor(a: Array) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.to(cast) if cast is not None and t.is_floating_point() else t

    try:
        with torch.inference_mode():
            for feed in feeds:
                module(*(tensor(a) for a in feed))
    finally:
        for handle in handles:
            handle.remove()
    return (
        {k: np.concatenate(v) for k, v in inputs.items()},
        {k: np.concatenate(v) for k, v in outputs.items()},
        {k: v[0] for k, v in types.items()},
        dtypes,
    )


def analyze_torch_pair(
    reference: Any,
    candidate: Any,
    feeds: Sequence[Sequence[Array]],
    *,
    sqnr_threshold_db: float,
) -> LayerNumerics:
    """Compare every leaf module's output of ``candidate`` with ``reference`` on ``feeds``.

    Args:
        reference: The reference ``nn.Module`` (in eval mode).
        candidate: The candidate module: the same architecture, e.g. a torch.ao quantized
            copy or a copy in another dtype.
        feeds: Input batches, each the module's positional inputs as arrays.
        sqnr_threshold_db: ``first_divergent`` is the first module, in the reference's call
            order, whose output SQNR is below this.

    Returns:
        The matched modules ranked by the error they add (``growth_db`` against their own
        input's error); modules present in one model only are listed as unmatched.
    """
    # A quantized copy's module may hold a child where the float one was a leaf
    # (torch.ao's DynamicQuantizedLinear keeps its packed weights in one): the candidate is
    # hooked at the reference's leaf names as well as at its own leaves.
    names = _leaves(reference)
    ref_in, ref_out, ref_types, _ = _record(reference, feeds, names)
    cand_in, cand_out, _, cand_dtypes = _record(candidate, feeds, names | _leaves(candidate))
    layers: list[LayerError] = []
    low_precision: list[LowPrecisionTensor] = []
    unmatched: list[UnmatchedTensor] = []
    for index, name in enumerate(ref_out):
        if name not in cand_out:
            unmatched.append(
                UnmatchedTensor(
                    name=name,
                    side="reference",
                    reason="no module of this name ran in the candidate",
                )
            )
            continue
        if ref_out[name].shape != cand_out[name].shape:
            unmatched.append(
                UnmatchedTensor(name=name, side="reference", reason="output shapes differ")
            )
            continue
        sqnr, cosine, max_abs, mean_abs = errors(ref_out[name], cand_out[name])
        dtype = cand_dtypes.get(name, "")
        if dtype in LOW_PRECISION_TINY:
            overflowed, flushed = range_losses(ref_out[name], cand_out[name], dtype)
            low_precision.append(
                LowPrecisionTensor(
                    name=name,
                    dtype=dtype,
                    elements=int(ref_out[name].size),
                    overflowed=overflowed,
                    flushed_to_zero=flushed,
                    order=index,
                )
            )
        inherited = (
            errors(ref_in[name], cand_in[name])[0]
            if ref_in[name].shape == cand_in[name].shape
            else math.inf
        )
        layers.append(
            LayerError(
                name=name,
                op_type=str(ref_types[name]),
                node=name,
                candidate_tensor=name,
                sqnr_db=sqnr,
                cosine=cosine,
                max_abs_diff=max_abs,
                mean_abs_diff=mean_abs,
                growth_db=growth(inherited, sqnr),
                noise_added=relative_noise(sqnr) - relative_noise(inherited),
                order=index,
                elements=int(ref_out[name].size),
            )
        )
    unmatched.extend(
        UnmatchedTensor(
            name=n, side="candidate", reason="no module of this name ran in the reference"
        )
        for n in cand_out
        if n not in ref_out
    )
    first = next((layer.name for layer in layers if layer.sqnr_db < sqnr_threshold_db), None)
    layers.sort(key=lambda layer: (-layer.noise_added, layer.order))
    return LayerNumerics(
        layers=layers,
        first_divergent=first,
        unmatched=unmatched,
        saturation=[],
        saturation_rate=None,
        notes=[],
        low_precision=low_precision,
    )
