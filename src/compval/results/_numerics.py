"""The numerics part of a report: where the candidate's error comes from, typed.

Filled by ``compval.engine`` from ``compval.numerics``; nothing here computes. SQNR values are
in dB and ``None`` in report.json where the two tensors are identical (infinite SQNR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BatchConsistency",
    "CandidateNumerics",
    "InputRangeBin",
    "FeatureRangeFinding",
    "LayerError",
    "LowPrecisionTensor",
    "NumericsSection",
    "SaturatedNode",
    "UnmatchedTensor",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerError:
    """The candidate's error on one reference tensor (a node output or a graph input).

    ``growth_db`` is the error the producing node adds: the lowest SQNR among its matched
    inputs (looking through fused tensors) minus the SQNR of this tensor (``inf`` where its
    inputs are exact and it is not). ``noise_added`` is the same in linear terms, the noise
    power it adds as a share of the signal power (``10**(-sqnr/10)`` minus its inputs'); the
    layers are ranked by it, so the node that introduces an error ranks first, not every node
    downstream of it, and a node adding 30 dB of error to exact inputs does not outrank one
    that drops an already noisy tensor to 5 dB. ``order`` is the tensor's topological index
    in the reference.
    ``candidate_tensor`` names what it was compared with (the DequantizeLinear output that
    replaces it in a QDQ model, or the tensor of the same name).
    """

    name: str
    op_type: str
    node: str
    candidate_tensor: str
    sqnr_db: float
    cosine: float
    max_abs_diff: float
    mean_abs_diff: float
    growth_db: float
    noise_added: float
    order: int
    elements: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UnmatchedTensor:
    """A tensor with no counterpart in the other model, and why."""

    name: str
    side: Literal["reference", "candidate"]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaturatedNode:
    """The share of one QuantizeLinear's outputs at the grid limits (qmin or qmax)."""

    node: str
    tensor: str
    rate: float
    elements: int
    qmin: int
    qmax: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConsistency:
    """The candidate at batch 1 against the run's batch size, on the same rows.

    ``flip_rate`` is the share of rows whose prediction (the argmax of a score output, or a
    label output) changes; ``max_abs_diff`` the largest output difference; ``run_max_abs_diff``
    the largest difference between two identical runs at the run's batch size.
    """

    batch_size: int
    rows: int
    flip_rate: float | None
    flipped_rows: int | None
    max_abs_diff: float
    run_max_abs_diff: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRangeBin:
    """The output error on the sample rows whose input norm falls in one quantile bin."""

    norm_low: float
    norm_high: float
    rows: int
    mean_abs_diff: float
    max_abs_diff: float
    agreement: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LowPrecisionTensor:
    """Range losses in one float16/bfloat16 tensor of the candidate (docs/numerics.md).

    ``overflowed``: elements not finite in the candidate where the reference's are;
    ``flushed_to_zero``: elements exactly 0 in the candidate where the reference's are non-zero
    and below the type's smallest normal magnitude. ``order`` is the tensor's index in the
    reference's topological (ONNX) or call (torch) order.
    """

    name: str
    dtype: str
    elements: int
    overflowed: int
    flushed_to_zero: int
    order: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRangeFinding:
    """Rows with one input feature in its top (or bottom) tail, where the error concentrates.

    ``ratio`` is the mean per-row output error of the ``rows`` tail rows over that of the other
    rows, with a 95% stratified bootstrap interval (``ratio_low``, ``ratio_high``);
    ``p_value`` is adjusted for every feature and side searched (Westfall-Young max-ratio
    permutation test), so a finding is reported only where it is below 0.05.
    """

    feature: str
    side: Literal["high", "low"]
    threshold: float
    rows: int
    mean_abs_diff: float
    rest_mean_abs_diff: float
    ratio: float
    ratio_low: float
    ratio_high: float
    p_value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateNumerics:
    """Everything the numerics analysis found for one candidate."""

    candidate: str
    sample_rows: int
    layers: tuple[LayerError, ...] = ()
    first_divergent: str | None = None
    layer_min_sqnr_db: float | None = None
    unmatched: tuple[UnmatchedTensor, ...] = ()
    saturation_rate: float | None = None
    saturation: tuple[SaturatedNode, ...] = ()
    batch: BatchConsistency | None = None
    input_ranges: tuple[InputRangeBin, ...] = ()
    feature_ranges: tuple[FeatureRangeFinding, ...] = ()
    overflow_rate: float | None = None
    flush_to_zero_rate: float | None = None
    low_precision: tuple[LowPrecisionTensor, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report's ``numerics.candidates[]`` entry."""
        return {
            "candidate": self.candidate,
            "sample_rows": self.sample_rows,
            "layers": list(self.layers),
            "first_divergent": self.first_divergent,
            "layer_min_sqnr_db": self.layer_min_sqnr_db,
            "unmatched": list(self.unmatched),
            "saturation_rate": self.saturation_rate,
            "saturation": list(self.saturation),
            "batch_consistency": self.batch,
            "input_ranges": list(self.input_ranges),
            "feature_ranges": list(self.feature_ranges),
            "overflow_rate": self.overflow_rate,
            "flush_to_zero_rate": self.flush_to_zero_rate,
            "low_precision": list(self.low_precision),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NumericsSection:
    """The report's ``numerics`` section: one entry per candidate."""

    sample: int
    seed: int
    sqnr_threshold_db: float
    candidates: tuple[CandidateNumerics, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready section (values still need ``_plain``)."""
        return {
            "sample": self.sample,
            "seed": self.seed,
            "sqnr_threshold_db": self.sqnr_threshold_db,
            "candidates": [c.to_dict() for c in self.candidates],
        }
