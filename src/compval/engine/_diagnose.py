"""The numerics analysis of a run: sample rows, localize per-layer error, rerun at batch 1.

Called by ``run_validation`` when the spec has a ``numerics:`` section (``compval diagnose``
builds such a spec). Everything runs on one deterministic sample of rows, so memory grows
with ``numerics.sample``, not with the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from compval.adapters import ModelAdapter, bind_inputs
from compval.data import Dataset
from compval.errors import InputMismatchError
from compval.metrics import MetricEstimate
from compval.numerics import (
    analyze_onnx_pair,
    analyze_torch_pair,
    error_by_feature_range,
    error_by_row_norm,
    low_precision_rates,
    measure_batch_consistency,
    row_errors,
)
from compval.results import (
    CandidateNumerics,
    FeatureRangeFinding,
    InputRangeBin,
    NumericsSection,
)
from compval.spec import NUMERICS_METRIC_DIRECTIONS, NumericsSpec
from compval.types import Array

__all__ = ["numerics_estimates", "run_numerics", "sample_rows"]


def sample_rows(dataset: Dataset, rows: int, *, seed: int, batch_size: int) -> dict[str, Array]:
    """``rows`` rows of ``dataset``'s inputs, drawn without replacement with ``seed``.

    The rows keep their order in the data; only the chosen rows of each batch are kept while
    the data streams by, so memory is bounded by ``rows``.
    """
    total = len(dataset)
    if total == 0:
        return {}
    chosen = np.sort(
        np.random.default_rng(seed).choice(total, size=min(rows, total), replace=False)
    )
    parts: dict[str, list[Array]] = {}
    start = 0
    for batch in dataset.batches(batch_size):
        n = int(batch.row_ids.shape[0])
        lo, hi = np.searchsorted(chosen, [start, start + n])
        if hi > lo:
            local = chosen[lo:hi] - start
            for name, array in batch.inputs.items():
                parts.setdefault(name, []).append(array[local])
        start += n
        if start > chosen[-1]:
            break
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def _feeds(
    adapter: ModelAdapter, sample: Mapping[str, Array], batch_size: int, columns: Sequence[str]
) -> list[dict[str, Array]]:
    bound = bind_inputs(adapter.name, sample, adapter.input_spec(), columns=columns)
    rows = int(next(iter(bound.values())).shape[0])
    return [
        {k: v[start : start + batch_size] for k, v in bound.items()}
        for start in range(0, rows, batch_size)
    ]


def _outputs(
    adapter: ModelAdapter,
    output: str | None,
    sample: Mapping[str, Array],
    batch_size: int,
    columns: Sequence[str],
) -> Array:
    """``adapter``'s compared output on the sample rows, in batches of ``batch_size``."""
    bound = bind_inputs(adapter.name, sample, adapter.input_spec(), columns=columns)
    rows = int(next(iter(bound.values())).shape[0])
    parts = []
    for start in range(0, rows, batch_size):
        outputs = adapter.predict({k: v[start : start + batch_size] for k, v in bound.items()})
        parts.append(outputs[output] if output is not None else next(iter(outputs.values())))
    return np.concatenate(parts)


def run_numerics(
    spec: NumericsSpec,
    reference: ModelAdapter,
    candidates: Sequence[tuple[ModelAdapter, str | None]],
    sample: Mapping[str, Array],
    *,
    batch_size: int,
    seed: int,
    reference_output: str | None = None,
    feature_names: Sequence[str] = (),
) -> NumericsSection:
    """Analyse each candidate against ``reference`` on ``sample`` (the rows' raw inputs).

    ``candidates`` pairs each open adapter with the output the run compared (None: its first;
    ``reference_output`` likewise for the reference). ``feature_names`` names the columns of a
    table's single feature input in the feature-tail findings.
    Localization and saturation need both models as ONNX files; other pairs get a note.
    """
    rows = int(next(iter(sample.values())).shape[0])
    results: list[CandidateNumerics] = []
    ref_values = _outputs(reference, reference_output, sample, batch_size, feature_names)
    ref_file = reference.model_file if reference.model_format == "onnx" else None
    for adapter, output in candidates:
        notes: list[str] = []
        onnx_result = None
        if spec.layers:
            cand_file = adapter.model_file if adapter.model_format == "onnx" else None
            if ref_file is not None and cand_file is not None:
                try:
                    onnx_result = analyze_onnx_pair(
                        ref_file,
                        cand_file,
                        _feeds(adapter, sample, batch_size, feature_names),
                        sqnr_threshold_db=spec.sqnr_threshold_db,
                    )
                except Exception as exc:
                    # The augmented graphs go through onnx shape inference and a second
                    # session: a model the run itself handled may still fail there, and the
                    # rest of the report should not be lost for it.
                    notes.append(
                        f"Per-layer localization failed: {type(exc).__name__}: {exc}"[:500]
                    )
                else:
                    notes.extend(onnx_result.notes)
            elif reference.model_format == adapter.model_format == "torch":
                bound = bind_inputs(
                    adapter.name, sample, adapter.input_spec(), columns=feature_names
                )
                names = list(adapter.input_spec())
                rows_in = len(next(iter(bound.values())))
                onnx_result = analyze_torch_pair(
                    getattr(reference, "module"),  # noqa: B009 - the torch adapter's hook
                    getattr(adapter, "module"),  # noqa: B009
                    [
                        [bound[n][start : start + batch_size] for n in names]
                        for start in range(0, rows_in, batch_size)
                    ],
                    sqnr_threshold_db=spec.sqnr_threshold_db,
                )
            else:
                notes.append(
                    "Per-layer localization needs an ONNX or an in-memory torch reference and "
                    f"candidate; got {reference.model_format} and {adapter.model_format}."
                )
        batch = None
        if spec.batch_consistency:
            bound = bind_inputs(adapter.name, sample, adapter.input_spec(), columns=feature_names)

            def predict(
                inputs: Mapping[str, Array], a: ModelAdapter = adapter, name: str | None = output
            ) -> Array:
                outputs = a.predict(inputs)
                return outputs[name] if name is not None else next(iter(outputs.values()))

            try:
                batch = measure_batch_consistency(predict, bound, batch_size=batch_size)
            except InputMismatchError as exc:
                # A model with a fixed batch dimension cannot run one row at a time.
                notes.append(f"Batch consistency not measured: {exc}")
        cand_values = _outputs(adapter, output, sample, batch_size, feature_names)
        ranges: list[InputRangeBin] = []
        findings: list[FeatureRangeFinding] = []
        if cand_values.shape == ref_values.shape:
            ranges = error_by_row_norm(sample, ref_values, cand_values)
            if spec.feature_ranges:
                findings, range_notes = error_by_feature_range(
                    sample,
                    row_errors(ref_values, cand_values),
                    seed=seed,
                    feature_names=feature_names,
                )
                notes.extend(range_notes)
        low_precision = () if onnx_result is None else tuple(onnx_result.low_precision)
        overflow_rate, flush_rate = low_precision_rates(low_precision)
        results.append(
            CandidateNumerics(
                candidate=adapter.name,
                sample_rows=rows,
                layers=() if onnx_result is None else tuple(onnx_result.layers),
                first_divergent=None if onnx_result is None else onnx_result.first_divergent,
                layer_min_sqnr_db=None if onnx_result is None else onnx_result.layer_min_sqnr_db,
                unmatched=() if onnx_result is None else tuple(onnx_result.unmatched),
                saturation_rate=None if onnx_result is None else onnx_result.saturation_rate,
                saturation=() if onnx_result is None else tuple(onnx_result.saturation),
                batch=batch,
                input_ranges=tuple(ranges),
                feature_ranges=tuple(findings),
                overflow_rate=overflow_rate,
                flush_to_zero_rate=flush_rate,
                # Only the tensors that lost values: report.json stays small for big models.
                low_precision=tuple(t for t in low_precision if t.overflowed or t.flushed_to_zero),
                notes=tuple(notes),
            )
        )
    return NumericsSection(
        sample=rows,
        seed=seed,
        sqnr_threshold_db=spec.sqnr_threshold_db,
        candidates=tuple(results),
    )


def numerics_estimates(section: NumericsSection) -> dict[str, list[MetricEstimate]]:
    """The gateable numerics metrics of each candidate (one value each, no interval)."""
    out: dict[str, list[MetricEstimate]] = {}
    for c in section.candidates:
        values: dict[str, float | None] = {
            "layer_min_sqnr_db": c.layer_min_sqnr_db,
            "saturation_rate": c.saturation_rate,
            "overflow_rate": c.overflow_rate,
            "flush_to_zero_rate": c.flush_to_zero_rate,
            "batch_consistency_flip_rate": None if c.batch is None else c.batch.flip_rate,
            "batch_consistency_max_abs_diff": None if c.batch is None else c.batch.max_abs_diff,
            "run_consistency_max_abs_diff": None if c.batch is None else c.batch.run_max_abs_diff,
        }
        out[c.candidate] = [
            MetricEstimate(
                metric=name,
                segment=None,
                higher_is_better=NUMERICS_METRIC_DIRECTIONS[name],
                paired=True,
                n=c.sample_rows,
                reference=None,
                candidate=value,
                delta=None,
            )
            for name, value in values.items()
            if value is not None
        ]
    return out
