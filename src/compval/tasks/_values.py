"""Shared base of the tasks whose outputs are compared value by value (regression, generic)."""

from __future__ import annotations

from compval.errors import AdapterError, DataError
from compval.metrics import PairedRows
from compval.stats import row_all_finite
from compval.tasks._base import ChunkContext, RowsBase, Task, TaskState
from compval.tasks._outputs import OutputKind
from compval.types import Array

__all__ = ["COSINE_CRITERION", "SQNR_CRITERION", "ValueTask"]

#: What ``compval compare`` checks when only the two models' outputs can be compared: the
#: magnitude of the difference. SQNR is 10 log10 of the reference's output power over the
#: error's; 20 dB is an error with 1% of the output's power (about 10% relative RMS error).
#: A dynamic INT8 MLP measured 31-38 dB, an output scaled by 3 (a dequantization bug) -6 dB.
#: The power includes the outputs' mean: for outputs far from zero (prices, say) a spec should
#: also bound ``mean_abs_diff`` in the outputs' own units.
SQNR_CRITERION: dict[str, object] = {"id": "sqnr", "metric": "sqnr_db", "min": 20.0}
#: The direction of multi-value output rows. The per-row cosine ignores scale (an output scaled
#: by 3 keeps a cosine of 1) and, for a one-value output, is only the sign (+1 or -1), which a
#: good model fails on predictions near 0: regression, whose outputs are usually one value,
#: does not use it by default.
COSINE_CRITERION: dict[str, object] = {"id": "cosine", "metric": "cosine_similarity", "min": 0.99}


class ValueTask(Task):
    """Outputs are rows of numbers, compared as they are (no classes, no ``label=`` segments)."""

    def output_kind(self, state: TaskState, raw: Array, *, model: str) -> OutputKind:
        """Always ``values``.

        Raises:
            AdapterError: The output is not numeric (e.g. text labels).
        """
        if raw.dtype.kind not in "fiub":
            raise AdapterError(
                f"Model {model!r}: its compared output holds {raw.dtype} values, e.g. "
                f"{raw.reshape(-1)[:1].tolist()!r}; expected numbers for task "
                f"{state.spec.task.type!r}. Set 'output' to a numeric output, or use task: "
                "classification for class labels."
            )
        if raw.dtype.kind in "iub":
            # Integer outputs are what a classifier's predicted-label output holds (skl2onnx's
            # first output): compared as numbers here, which is rarely what was meant.
            state.put_note(
                f"integer-output:{model}",
                f"Model {model!r}: its compared output holds {raw.dtype} values (e.g. "
                f"{raw.reshape(-1)[:3].tolist()!r}), compared as numbers. If they are class "
                "labels, use task: classification; if the model has another output, set "
                "'output' in its spec entry.",
            )
        return "values"

    def prepare_chunk(
        self,
        state: TaskState,
        *,
        reference: Array,
        kind: OutputKind,
        labels: Array | None,
        model: str,
    ) -> ChunkContext:
        """No labels (subclasses that use targets override this)."""
        return ChunkContext(labels=None, label_classes=None)

    def pair(
        self,
        state: TaskState,
        chunk: ChunkContext,
        base: RowsBase,
        *,
        raw: Array,
        kind: OutputKind,
        model: str,
    ) -> tuple[PairedRows, PairedRows]:
        """The raw rows of both models, which must have the same shape."""
        ref_rows, cand_rows = base.reference, base.candidate
        if cand_rows.shape != ref_rows.shape:
            raise DataError(
                f"Candidate {model!r} returns outputs of shape {cand_rows.shape[1:]} per row but "
                f"the reference returns {ref_rows.shape[1:]}; the models must produce comparable "
                "outputs (set 'output' to pick one)."
            )
        labels = chunk.labels
        if labels is not None and labels.shape[1] != ref_rows.shape[1]:
            raise DataError(
                f"Labels have {labels.shape[1]} values per row but the models output "
                f"{ref_rows.shape[1]}; regression targets must match the outputs."
            )
        finite = row_all_finite(ref_rows) & row_all_finite(cand_rows)
        if not finite.all():
            _note_nonfinite(state, model, int((~finite).sum()), has_targets=labels is not None)
        rows = PairedRows(
            reference=ref_rows,
            candidate=cand_rows,
            row_ids=base.row_ids,
            blocks=base.blocks,
            segment_ids=base.segment_ids,
            finite=finite,
            labels=labels,
        )
        return rows, rows


def _note_nonfinite(state: TaskState, model: str, rows: int, *, has_targets: bool) -> None:
    """Say how many rows the value comparisons of ``model`` leave out (NaN/Inf outputs).

    A NaN prediction has no error to average: those rows are left out of the fidelity metrics
    and, with targets, of both models' MAE, RMSE and R^2 (so the two models are scored on the
    same rows). Without this note a candidate that output NaN on its hardest rows showed a
    better MAE, silently (with ``allow_nonfinite: true``, the only gate on NaN is off).
    """
    total = state.nonfinite_rows.get(model, 0) + rows
    state.nonfinite_rows[model] = total
    which = "the output-fidelity metrics" + (
        " and both models' MAE, RMSE and R²" if has_targets else ""
    )
    state.put_note(
        f"nonfinite:{model}",
        f"Candidate {model!r}: {total:,} row(s) where it or the reference output NaN or Inf "
        f"are left out of {which} (nan_count and inf_count count them).",
    )
