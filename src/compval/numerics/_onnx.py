"""Per-tensor error localization and QDQ saturation for a pair of ONNX models.

Both graphs are run with every intermediate tensor exposed as an output, with onnxruntime's
own debugging helpers (``onnxruntime.quantization.qdq_loss_debug``: it adds the outputs,
runs the augmented model with graph optimizations off so no node is fused away, and maps a
QDQ model's DequantizeLinear outputs back to the float tensors they replace). What is added
here is the comparison: SQNR, cosine and absolute errors per matched tensor, the error each
node adds to its inputs' error, and the share of each QuantizeLinear's outputs at the grid
limits.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.numerics._lowprec import range_losses
from compval.results import LayerError, LowPrecisionTensor, SaturatedNode, UnmatchedTensor
from compval.types import Array

__all__ = ["LayerNumerics", "analyze_onnx_pair", "errors", "growth", "relative_noise"]

_DQ_SUFFIX = "_DequantizeLinear_Output"
_INT_RANGES = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.uint16): (0, 65535),
}


class LayerNumerics:
    """What ``analyze_onnx_pair`` or ``analyze_torch_pair`` found, per layer."""

    def __init__(
        self,
        *,
        layers: list[LayerError],
        first_divergent: str | None,
        unmatched: list[UnmatchedTensor],
        saturation: list[SaturatedNode],
        saturation_rate: float | None,
        notes: list[str],
        low_precision: list[LowPrecisionTensor] | None = None,
    ) -> None:
        self.layers = layers
        self.first_divergent = first_divergent
        self.unmatched = unmatched
        self.saturation = saturation
        self.saturation_rate = saturation_rate
        self.notes = notes
        self.low_precision = low_precision or []

    @property
    def layer_min_sqnr_db(self) -> float | None:
        """The lowest SQNR over the matched tensors (None when nothing matched)."""
        return min((layer.sqnr_db for layer in self.layers), default=None)


def _collect(path: Path, feeds: Sequence[Mapping[str, Array]], stem: Path) -> dict[str, Array]:
    """Every float tensor of the model at ``path`` on ``feeds``, each flattened to 1-D.

    The augmented copy is written to ``stem`` + ``.augmented.onnx`` (the helper saves a file).
    """
    debug = lazy_import("onnxruntime.quantization.qdq_loss_debug", extra="onnx")
    augmented = stem.with_suffix(".augmented.onnx")
    debug.modify_model_output_intermediate_tensors(str(path), str(augmented))
    # collect_activations iterates its reader: a list of feed dicts is one.
    per_batch: dict[str, list[Array]] = debug.collect_activations(
        str(augmented), [dict(f) for f in feeds]
    )
    return {name: np.concatenate(parts) for name, parts in per_batch.items()}


def errors(reference: Array, candidate: Array) -> tuple[float, float, float, float]:
    """SQNR (dB), cosine, max and mean absolute error of ``candidate`` against ``reference``.

    SQNR is ``inf`` for identical tensors and ``-inf`` for a non-finite error or a zero
    reference with a nonzero error.
    """
    r = reference.astype(np.float64, copy=False)
    c = candidate.astype(np.float64, copy=False)
    noise = c - r
    signal_power = float(np.dot(r, r))
    noise_power = float(np.dot(noise, noise))
    if not math.isfinite(noise_power):
        sqnr = -math.inf
    elif noise_power == 0.0:
        sqnr = math.inf
    elif signal_power == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal_power / noise_power)
    norms = math.sqrt(signal_power) * float(np.linalg.norm(c))
    cosine = float(np.dot(r, c)) / norms if norms > 0 else (1.0 if noise_power == 0 else 0.0)
    abs_err = np.abs(noise)
    return sqnr, cosine, float(abs_err.max(initial=0.0)), float(abs_err.mean()) if r.size else 0.0


def analyze_onnx_pair(
    reference: Path,
    candidate: Path,
    feeds: Sequence[Mapping[str, Array]],
    *,
    sqnr_threshold_db: float,
) -> LayerNumerics:
    """Compare every intermediate tensor of ``candidate`` with ``reference`` on ``feeds``.

    Tensors are matched by name; in a QDQ candidate, a float tensor ``t`` of the reference
    is compared with ``t``'s DequantizeLinear output (what the candidate's next node reads).
    Reference tensors with no counterpart (fused or renamed by the compressor) and candidate
    tensors with none are listed in ``unmatched`` with the reason.

    Args:
        reference: The reference ONNX file.
        candidate: The candidate ONNX file.
        feeds: Input batches, each bound to the models' input names.
        sqnr_threshold_db: ``first_divergent`` is the first tensor, in the reference's
            topological order, whose SQNR is below this.

    Returns:
        The matched tensors sorted by the error their node adds (most first), and the
        QuantizeLinear saturation of a QDQ candidate.
    """
    onnx = lazy_import("onnx", extra="onnx")
    debug = lazy_import("onnxruntime.quantization.qdq_loss_debug", extra="onnx")
    with tempfile.TemporaryDirectory(prefix="compval-numerics-") as tmp:
        ref_acts = _collect(reference, feeds, Path(tmp) / "r")
        cand_acts = _collect(candidate, feeds, Path(tmp) / "c")
    ref_graph = onnx.load(str(reference), load_external_data=False).graph
    cand_graph = onnx.load(str(candidate), load_external_data=False).graph
    qdq = debug.create_activation_matching(cand_acts, ref_acts)

    producers: dict[str, Any] = {}
    order: list[str] = [i.name for i in ref_graph.input]
    for node in ref_graph.node:
        for out in node.output:
            producers[out] = node
            order.append(out)
    sqnr_of: dict[str, float] = {}
    layers: list[LayerError] = []
    low_precision: list[LowPrecisionTensor] = []
    unmatched: list[UnmatchedTensor] = []
    used: set[str] = set()
    for index, name in enumerate(order):
        if name not in ref_acts:
            continue  # not a float tensor (labels, indices): nothing to compare
        if name in qdq and "post_qdq" in qdq[name]:
            cand_name = name + _DQ_SUFFIX if name + _DQ_SUFFIX in cand_acts else name
            used.update({name, cand_name})
        elif name in cand_acts:
            cand_name = name
            used.add(name)
        else:
            unmatched.append(
                UnmatchedTensor(
                    name=name,
                    side="reference",
                    reason="no tensor of this name in the candidate (fused or renamed by the "
                    "compressor); its error shows in the next matched tensor",
                )
            )
            continue
        r, c = ref_acts[name], cand_acts[cand_name]
        if r.shape != c.shape:
            unmatched.append(
                UnmatchedTensor(
                    name=name,
                    side="reference",
                    reason=f"shapes differ: {r.size} values in the reference, {c.size} in "
                    f"the candidate's {cand_name!r}",
                )
            )
            continue
        sqnr, cosine, max_abs, mean_abs = errors(r, c)
        sqnr_of[name] = sqnr
        if c.dtype == np.float16:  # numpy has no bfloat16: onnxruntime cannot return one
            overflowed, flushed = range_losses(r, c, "float16")
            low_precision.append(
                LowPrecisionTensor(
                    name=name,
                    dtype="float16",
                    elements=int(r.size),
                    overflowed=overflowed,
                    flushed_to_zero=flushed,
                    order=index,
                )
            )
        node = producers.get(name)
        # A graph input or a node reading only weights and exact tensors: its inputs carry
        # no error, so everything it shows is its own.
        inherited = _inherited(node, producers, sqnr_of)
        grown = growth(inherited, sqnr)
        layers.append(
            LayerError(
                name=name,
                op_type="(graph input)" if node is None else str(node.op_type),
                node="" if node is None else str(node.name),
                candidate_tensor=cand_name,
                sqnr_db=sqnr,
                cosine=cosine,
                max_abs_diff=max_abs,
                mean_abs_diff=mean_abs,
                growth_db=grown,
                noise_added=relative_noise(sqnr) - relative_noise(inherited),
                order=index,
                elements=int(r.size),
            )
        )
    unmatched.extend(_candidate_only(cand_graph, cand_acts, used))
    first = next((layer.name for layer in layers if layer.sqnr_db < sqnr_threshold_db), None)
    layers.sort(key=lambda layer: (-layer.noise_added, layer.order))
    saturation, overall, notes = _saturation(cand_graph, cand_acts)
    return LayerNumerics(
        layers=layers,
        first_divergent=first,
        unmatched=unmatched,
        saturation=saturation,
        saturation_rate=overall,
        notes=notes,
        low_precision=low_precision,
    )


def _inherited(node: Any, producers: Mapping[str, Any], sqnr_of: Mapping[str, float]) -> float:
    """The lowest SQNR among ``node``'s inputs, looking through unmatched (fused) tensors.

    An input with no counterpart in the candidate (a Gemm output whose ReLU the quantizer
    fused) stands for its own inputs; weights and other constants carry no run-time error.
    """
    seen: set[str] = set()
    stack = [] if node is None else list(node.input)
    best = math.inf
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor in sqnr_of:
            best = min(best, sqnr_of[tensor])
        elif tensor in producers:
            stack.extend(producers[tensor].input)
    return best


def relative_noise(sqnr_db: float) -> float:
    """Noise power as a share of the signal power (0 for an exact tensor)."""
    return 0.0 if sqnr_db == math.inf else 10.0 ** (-sqnr_db / 10.0)


def growth(inherited: float, sqnr: float) -> float:
    """The SQNR a node loses: its inputs' SQNR minus its output's (0 when both are infinite)."""
    if math.isinf(inherited) and math.isinf(sqnr) and inherited == sqnr:
        return 0.0  # exact in, exact out (or broken in, broken out)
    return inherited - sqnr


def _candidate_only(graph: Any, acts: Mapping[str, Array], used: set[str]) -> list[UnmatchedTensor]:
    """Candidate tensors compared with nothing, with what they are."""
    quantize_inputs = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    weight_dq = {
        n.output[0]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in {i.name for i in graph.initializer}
    }
    out: list[UnmatchedTensor] = []
    for name in acts:
        if name in used:
            continue
        if name in weight_dq:
            reason = "a dequantized weight (the reference's weights are constants, not run)"
        elif name in quantize_inputs:
            reason = (
                "the value before its QuantizeLinear; the reference is compared with the "
                "DequantizeLinear output after it"
            )
        else:
            reason = "no tensor of this name in the reference (added by the compressor)"
        out.append(UnmatchedTensor(name=name, side="candidate", reason=reason))
    return out


def _saturation(
    graph: Any, acts: Mapping[str, Array]
) -> tuple[list[SaturatedNode], float | None, list[str]]:
    """Share of each QuantizeLinear's outputs clipped to qmin or qmax, from its input.

    The integer outputs are not float tensors, so onnxruntime's helper does not expose them;
    ``rint(x / scale) + zero_point`` before the clip is QuantizeLinear's definition (round half
    to even, as numpy's ``rint``). A value counts when it lies beyond the grid and was clipped
    to a limit; one that rounds exactly onto a limit (a ReLU's zeros on an asymmetric grid sit
    at qmin) is represented exactly and does not count.
    """
    numpy_helper = lazy_import("onnx.numpy_helper", extra="onnx")
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes: list[SaturatedNode] = []
    notes: list[str] = []
    total = saturated = 0
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in acts:
            continue
        scale = constants.get(node.input[1])
        zero = constants.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None or scale.size != 1 or (zero is not None and zero.size != 1):
            notes.append(
                f"QuantizeLinear {node.name!r}: per-channel or computed scales are not "
                "measured for saturation."
            )
            continue
        dtype = np.dtype(np.uint8) if zero is None else zero.dtype
        if dtype not in _INT_RANGES:
            notes.append(f"QuantizeLinear {node.name!r}: {dtype} outputs are not measured.")
            continue
        qmin, qmax = _INT_RANGES[dtype]
        x = acts[node.input[0]].astype(np.float64)
        zp = 0.0 if zero is None else float(zero.reshape(()))
        q = np.rint(x / float(scale.reshape(()))) + zp
        # A limit whose real value is 0 (zero_point == qmin after a fused ReLU) clips the
        # negatives on purpose: that is the ReLU, not saturation.
        low = (q < qmin) if zp != qmin else np.zeros(q.shape, dtype=bool)
        high = (q > qmax) if zp != qmax else np.zeros(q.shape, dtype=bool)
        hits = int(np.count_nonzero(low | high))
        total += q.size
        saturated += hits
        nodes.append(
            SaturatedNode(
                node=str(node.name),
                tensor=str(node.input[0]),
                rate=hits / q.size if q.size else 0.0,
                elements=int(q.size),
                qmin=qmin,
                qmax=qmax,
            )
        )
    nodes.sort(key=lambda n: -n.rate)
    return nodes, (saturated / total if total else None), notes
