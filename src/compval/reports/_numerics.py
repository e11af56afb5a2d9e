"""Shared text of the numerics section, for the console, Markdown and HTML renderers."""

from __future__ import annotations

import math

from compval.results import CandidateNumerics, LayerError

__all__ = ["LAYER_HEADERS", "TOP_LAYERS", "layer_cells", "numerics_summary"]

#: Layers shown per candidate; report.json has them all.
TOP_LAYERS = 5
LAYER_HEADERS = ("tensor", "op", "SQNR dB", "growth dB", "cosine", "max abs diff")


def _db(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "exact" if value > 0 else "-inf"
    return f"{value:.1f}"


def layer_cells(layer: LayerError) -> tuple[str, ...]:
    """One row of the localization table."""
    growth = "inf" if math.isinf(layer.growth_db) and layer.growth_db > 0 else _db(layer.growth_db)
    return (
        layer.name,
        layer.op_type,
        _db(layer.sqnr_db),
        growth,
        f"{layer.cosine:.4f}",
        f"{layer.max_abs_diff:.3g}",
    )


def numerics_summary(c: CandidateNumerics, threshold_db: float) -> str:
    """One line: where the error arises, how much clips, what the batch and input size do."""
    parts: list[str] = []
    if c.layers:
        first = (
            f"first divergent {c.first_divergent!r} (< {threshold_db:g} dB)"
            if c.first_divergent is not None
            else f"no tensor below {threshold_db:g} dB"
        )
        parts.append(f"{first}; lowest layer SQNR {_db(c.layer_min_sqnr_db)} dB")
    if c.saturation_rate is not None:
        parts.append(f"saturation {c.saturation_rate:.2%}")
    if c.overflow_rate is not None and c.flush_to_zero_rate is not None:
        worst = next((t.name for t in c.low_precision if t.overflowed), None)
        where = f" (first in {worst!r})" if worst is not None else ""
        parts.append(
            f"low precision: overflow {c.overflow_rate:.2%}{where}, "
            f"flushed to zero {c.flush_to_zero_rate:.2%}"
        )
    if c.batch is not None:
        flips = (
            ""
            if c.batch.flip_rate is None
            else f"{c.batch.flipped_rows} of {c.batch.rows} rows flip, "
        )
        parts.append(
            f"batch 1 vs {c.batch.batch_size}: {flips}max |Δ| {c.batch.max_abs_diff:.3g}; "
            f"two runs max |Δ| {c.batch.run_max_abs_diff:.3g}"
        )
    if len(c.input_ranges) > 1:
        low, high = c.input_ranges[0], c.input_ranges[-1]
        parts.append(
            f"mean |Δ| {low.mean_abs_diff:.3g} on the smallest inputs, "
            f"{high.mean_abs_diff:.3g} on the largest (by row norm)"
        )
    for f in c.feature_ranges[:1]:
        where = "above" if f.side == "high" else "below"
        parts.append(
            f"rows with {f.feature} {where} {f.threshold:.3g} have {f.ratio:.1f}x the error "
            f"(95% CI {f.ratio_low:.1f}-{f.ratio_high:.1f}x, adjusted p {f.p_value:.3f})"
        )
    return f"{c.candidate}: " + ("; ".join(parts) if parts else "nothing measured")
