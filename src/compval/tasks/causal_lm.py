"""``task: causal_lm``: next-token distributions of a causal language model, token by token.

The quantities llama.cpp's ``perplexity --kl-divergence`` reports for quantized LLMs: per
predicted token of the evaluation text, KL(reference || candidate) of the two next-token
distributions (mean, median, p99, max), top-1 agreement (both models' most likely next token
is the same), and both models' perplexity with delta and ratio. Intervals come from the block
bootstrap over *sequences* (every token of a sequence is in its sequence's block).

Memory stays bounded whatever the vocabulary: ``reduce_batch`` runs right after the models
(per batch, on the engine's thread) and turns each (rows, seq, vocab) logits tensor into five
numbers per predicted token; the per-token log-softmax is done a few thousand positions at a
time. Nothing of size rows x seq x vocab outlives one batch.

Rows are predicted tokens: position t of a sequence (t >= 1, attention_mask 1) predicts token
t from tokens < t with the logits at t - 1. Segments: the data's segment columns (per
sequence), ``sequence_length`` (tokens in the sequence after truncation, bucketed) and
``token_position`` (the predicted token's position, bucketed), from ``added_segments``.

Multiple-choice prompt sets (a batch whose labels are records with the fields of
``CHOICE_FIELDS``, as ``compval.data.load_text_dataset`` makes when ``data`` names a ``choices``
column): each row of the batch is a prompt followed by one choice; ``reduce_batch`` sums the
log-likelihood of the choice's tokens under each model (from the logits at the positions
before them), picks each model's choice per question (the largest sum; ties go to the lower
choice index) and turns the batch into one row per question: ``choice_accuracy_score`` of
both models (delta with a bootstrap interval over questions) and ``choice_agreement`` (both
models pick the same choice). A question whose sums are not all finite under a model has no
choice under it: its row is counted in ``nan_count`` and left out of the means. In this mode
``sequence_length`` is the bucket of the question's longest prompt + choice and
``token_position`` the bucket of the position of its choices' first token.

Two implementations of the per-token math give the same numbers (float64 numpy; torch in
float32 on the tensors' device, tested within 1e-5): :func:`token_values` picks torch when it
is given torch tensors. The task declares ``device_outputs``, so the engine asks each model
for ``predict_on_device``: a torch model on a GPU hands over its logits where they are, the
per-token values are computed there and only they come back to the host (a numpy output of
another runtime is moved to that device first). On the CPU every adapter returns numpy
(``tensor.numpy()`` shares memory: no copy) and the numpy path runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compval.data import Batch
from compval.errors import AdapterError, DataError
from compval.metrics import (
    Accumulator,
    NonFiniteCounts,
    PairedRows,
    TokenKLQuantiles,
    TokenStatistics,
)
from compval.metrics.tokens import ChoiceAccuracy
from compval.tasks._base import ChunkContext, RowsBase, TaskState
from compval.tasks._outputs import OutputKind
from compval.tasks._values import ValueTask
from compval.types import Array, Outputs

__all__ = [
    "CHOICE_FIELDS",
    "CausalLMTask",
    "TokenValues",
    "choice_log_likelihoods",
    "position_bucket",
    "token_values",
]

#: Upper ends (exclusive) of the position / length buckets; the last bucket is open.
BUCKET_EDGES = (16, 64, 256, 1024)
#: Positions x vocabulary entries one log-softmax step holds (float64: 32 MiB).
_STEP_ELEMENTS = 1 << 22
LENGTH_SEGMENT = "sequence_length"
POSITION_SEGMENT = "token_position"
#: Fields of a multiple-choice batch's label records (compval.data.ChoiceDataset writes them):
#: the question's answer index, the question's row id, the choice's index, how many choices
#: the question has, and the position of the choice's first token.
CHOICE_FIELDS = ("answer", "question", "choice", "n_choices", "context_length")
#: Widths of the reference's reduced rows: one NLL per token, or (correct, choice) per question.
_TOKEN_WIDTH, _CHOICE_WIDTH = 1, 2


def position_bucket(values: Array) -> Array:
    """Bucket labels of token counts/positions: ``1-15``, ``16-63``, ..., ``1024+``."""
    lows = (1, *BUCKET_EDGES)
    labels = np.array(
        [f"{lo}-{hi - 1}" for lo, hi in zip(lows, BUCKET_EDGES, strict=False)]
        + [f"{BUCKET_EDGES[-1]}+"]
    )
    out: Array = labels[np.searchsorted(np.asarray(BUCKET_EDGES), values, side="right")]
    return out


@dataclass(frozen=True, slots=True)
class TokenValues:
    """Per predicted token: its sequence (row in the batch), position and the four values."""

    row: Array
    position: Array
    nll_ref: Array
    nll_cand: Array
    kl: Array
    same_top: Array


def _predicted(mask: Array) -> tuple[Array, Array]:
    """(row, position - 1) of every predicted token: both it and its context are real."""
    valid = (mask[:, 1:] != 0) & (mask[:, :-1] != 0)
    rows, prev = np.nonzero(valid)
    return rows.astype(np.int64), prev.astype(np.int64)


def _numpy_values(ref: Array, cand: Array, targets: Array, rows: Array, prev: Array) -> Array:
    """(tokens, 4): nll_ref, nll_cand, kl, same_top, in float64, a step of positions at a time."""
    out = np.empty((rows.size, 4))
    step = max(1, _STEP_ELEMENTS // max(ref.shape[-1], 1))
    for start in range(0, rows.size, step):
        r, p = rows[start : start + step], prev[start : start + step]
        lr = _log_softmax(np.asarray(ref[r, p], dtype=np.float64))
        lq = _log_softmax(np.asarray(cand[r, p], dtype=np.float64))
        t = targets[start : start + step]
        k = np.arange(r.size)
        with np.errstate(invalid="ignore"):
            kl = np.einsum("ij,ij->i", np.exp(lr), lr - lq)
        out[start : start + step, 0] = -lr[k, t]
        out[start : start + step, 1] = -lq[k, t]
        out[start : start + step, 2] = np.maximum(kl, 0.0)  # NaN stays NaN
        out[start : start + step, 3] = lr.argmax(axis=1) == lq.argmax(axis=1)
    return out


def _log_softmax(x: Array) -> Array:
    shifted = x - x.max(axis=1, keepdims=True)
    out: Array = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


def _torch_values(ref: Any, cand: Any, targets: Array, rows: Array, prev: Array) -> Array:
    """The same as ``_numpy_values`` on torch tensors, on their device (float32)."""
    import torch  # only reached with torch tensors in hand

    device = ref.device
    r = torch.as_tensor(rows, device=device)
    p = torch.as_tensor(prev, device=device)
    t = torch.as_tensor(targets, device=device)
    parts = []
    step = max(1, _STEP_ELEMENTS // max(int(ref.shape[-1]), 1))
    with torch.no_grad():
        for start in range(0, rows.size, step):
            sl = slice(start, start + step)
            lr = torch.log_softmax(ref[r[sl], p[sl]].float(), dim=-1)
            lq = torch.log_softmax(cand[r[sl], p[sl]].to(device).float(), dim=-1)
            k = torch.arange(lr.shape[0], device=device)
            kl = (lr.exp() * (lr - lq)).sum(dim=-1).clamp_min(0.0)
            same = (lr.argmax(dim=-1) == lq.argmax(dim=-1)).float()
            parts.append(torch.stack([-lr[k, t[sl]], -lq[k, t[sl]], kl, same], dim=1))
    if not parts:
        return np.empty((0, 4))
    return np.asarray(torch.cat(parts).double().cpu().numpy())


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def _on_one_device(ref: Any, cand: Any) -> tuple[Any, Any]:
    """Both logits as torch tensors on one device: a GPU one's if either is on a GPU.

    A numpy output (another runtime) or a CPU tensor moves to the other's GPU, so that the
    per-token math runs there and only per-token values come back.
    """
    import torch  # only reached with torch tensors in hand

    devices = [v.device for v in (ref, cand) if _is_torch(v)]
    device = next((d for d in devices if d.type != "cpu"), devices[0])

    def move(value: Any) -> Any:
        if _is_torch(value):
            return value if value.device == device else value.to(device)
        return torch.as_tensor(np.asarray(value), device=device)

    return move(ref), move(cand)


def token_values(
    reference: Any, candidate: Any, input_ids: Array, attention_mask: Array
) -> TokenValues:
    """Per-token NLL of both models, KL(reference || candidate) and top-1 agreement.

    Args:
        reference: Logits (rows, seq, vocab): numpy, or torch tensors (then computed on their
            device with torch, in float32).
        candidate: The candidate's, same shape.
        input_ids: (rows, seq) token ids.
        attention_mask: (rows, seq), 1 on real tokens (right padding).
    """
    ids = np.asarray(input_ids)
    mask = np.asarray(attention_mask)
    rows, prev = _predicted(mask)
    targets = ids[rows, prev + 1].astype(np.int64)
    if _is_torch(reference) or _is_torch(candidate):
        values = _torch_values(*_on_one_device(reference, candidate), targets, rows, prev)
    else:
        values = _numpy_values(np.asarray(reference), np.asarray(candidate), targets, rows, prev)
    return TokenValues(
        row=rows,
        position=prev + 1,
        nll_ref=values[:, 0],
        nll_cand=values[:, 1],
        kl=values[:, 2],
        same_top=values[:, 3],
    )


def choice_log_likelihoods(
    reference: Any,
    candidates: Sequence[Any],
    input_ids: Array,
    attention_mask: Array,
    context_length: Array,
) -> tuple[Array, list[Array]]:
    """Per row, the summed log-likelihood of its tokens from ``context_length`` on.

    Token t of a row (t >= ``context_length`` of the row, ``attention_mask`` 1) is scored
    with the log-softmax of the logits at t - 1, as in ``token_values`` (numpy float64, or
    torch float32 on the tensors' device).

    Returns:
        The reference's sums (rows,) and each candidate's; NaN where a logit was not finite.
    """
    ids = np.asarray(input_ids)
    mask = np.asarray(attention_mask)
    ctx = np.asarray(context_length, dtype=np.int64)
    rows, prev = _predicted(mask)
    keep = prev + 1 >= ctx[rows]
    rows, prev = rows[keep], prev[keep]
    targets = ids[rows, prev + 1].astype(np.int64)
    n = ids.shape[0]

    def sums(ref: Any, cand: Any) -> Array:
        if _is_torch(ref) or _is_torch(cand):
            values = _torch_values(*_on_one_device(ref, cand), targets, rows, prev)
        else:
            values = _numpy_values(np.asarray(ref), np.asarray(cand), targets, rows, prev)
        return values

    first = sums(reference, candidates[0] if candidates else reference)
    ref_ll = -np.bincount(rows, weights=first[:, 0], minlength=n)
    out = [-np.bincount(rows, weights=first[:, 1], minlength=n)] if candidates else []
    for cand in candidates[1:]:
        out.append(-np.bincount(rows, weights=sums(reference, cand)[:, 1], minlength=n))
    return ref_ll, out


def _is_choice_batch(batch: Batch) -> bool:
    names = getattr(getattr(batch.labels, "dtype", None), "names", None)
    return names is not None and set(CHOICE_FIELDS) <= set(names)


def _chosen(group: Array, choice: Array, ll: Array, groups: int) -> Array:
    """Per group, the choice with the largest sum (ties: the lower index); -1 if any is NaN."""
    order = np.lexsort((choice, -np.nan_to_num(ll, nan=-np.inf), group))
    first = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    out = choice[order][first].astype(np.float64)
    undefined = np.bincount(group, weights=~np.isfinite(ll), minlength=groups) > 0
    out[undefined] = -1
    return out


def _check_logits(value: Any, ids: Array, model: str) -> None:
    shape = tuple(value.shape)
    if len(shape) != 3 or shape[:2] != ids.shape:
        raise AdapterError(
            f"Model {model!r}: its compared output has shape {shape}; expected next-token "
            f"logits (rows, positions, vocabulary) = ({ids.shape[0]}, {ids.shape[1]}, V) for "
            "task 'causal_lm'. Set 'output' to the logits output (not the last position only)."
        )
    kind = str(getattr(value, "dtype", ""))
    if not any(k in kind for k in ("float", "bfloat", "half")):
        raise AdapterError(
            f"Model {model!r}: its compared output holds {kind} values; expected float logits "
            "for task 'causal_lm'. Set 'output' to the logits output."
        )


class CausalLMTask(ValueTask):
    """Per-token KL, top-1 agreement and perplexity of a causal LM against its reference."""

    name = "causal_lm"
    metrics_of = "causal_lm"
    device_outputs = True

    def default_output(self, state: TaskState, outputs: Outputs, *, model: str) -> str | None:
        """``logits`` when the model has an output of that name, else the first output."""
        if "logits" in outputs and next(iter(outputs)) != "logits":
            state.notes.append(f"Model {model!r}: compared its 'logits' output.")
            return "logits"
        return None

    def added_segments(self, state: TaskState, columns: Sequence[str]) -> tuple[str, ...]:
        """``sequence_length`` and ``token_position`` buckets.

        Raises:
            DataError: The data already has a segment column of one of these names.
        """
        taken = [c for c in (LENGTH_SEGMENT, POSITION_SEGMENT) if c in columns]
        if taken:
            raise DataError(
                f"Data: segment column(s) {taken} clash with the segments task 'causal_lm' adds "
                f"({LENGTH_SEGMENT!r}, {POSITION_SEGMENT!r}); rename the data's column(s)."
            )
        return (LENGTH_SEGMENT, POSITION_SEGMENT)

    def reduce_batch(
        self,
        state: TaskState,
        batch: Batch,
        reference: Array,
        candidates: Sequence[Array],
        *,
        models: Sequence[str],
    ) -> tuple[Batch, Array, list[Array]]:
        """Logits -> one row per predicted token (see ``compval.metrics.tokens``).

        A multiple-choice batch becomes one row per question instead (module docstring).

        Raises:
            DataError: The batch has no ``input_ids``, or (multiple choice) a question's
                choices are not all in the batch.
            AdapterError: An output is not (rows, positions, vocabulary) float logits, or the
                candidate's vocabulary differs from the reference's.
        """
        if "input_ids" not in batch.inputs:
            raise DataError(
                f"Data: task 'causal_lm' needs the token ids; got inputs {sorted(batch.inputs)}, "
                "expected 'input_ids'. Give a text column and a tokenizer (data.text, "
                "data.tokenizer) or pre-tokenized 'input_ids' (and 'attention_mask')."
            )
        ids = np.asarray(batch.inputs["input_ids"])
        mask = batch.inputs.get("attention_mask")
        if mask is None:
            mask = np.ones_like(ids)
            note = (
                "Data has no attention_mask: every position of input_ids was taken as a real "
                "token (pre-tokenized data must not be padded without a mask)."
            )
            if note not in state.notes:
                state.notes.append(note)
        mask = np.asarray(mask)
        _check_all_logits(reference, candidates, ids, models)
        if _is_choice_batch(batch):
            return _reduce_choices(batch, reference, candidates, ids, mask)
        per_cand = [token_values(reference, cand, ids, mask) for cand in candidates]
        first = per_cand[0] if per_cand else token_values(reference, reference, ids, mask)
        lengths = position_bucket(mask.sum(axis=1))
        segments = {c: np.asarray(v)[first.row] for c, v in batch.segments.items()}
        segments[LENGTH_SEGMENT] = lengths[first.row]
        segments[POSITION_SEGMENT] = position_bucket(first.position)
        tokens = Batch(
            inputs={},
            labels=None if batch.labels is None else np.asarray(batch.labels)[first.row],
            row_ids=np.asarray(batch.row_ids, dtype=np.int64)[first.row],
            segments=segments,
        )
        ref_rows = first.nll_ref[:, None]
        cand_rows = [np.stack([v.nll_cand, v.kl, v.same_top], axis=1) for v in per_cand]
        return tokens, ref_rows, cand_rows

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
        """Token rows, or question rows (multiple choice).

        Token rows: the reference's NLL; the candidate's NLL, KL and same top. Question rows:
        the reference's (correct, choice); the candidate's (correct, choice, agreement).
        """
        ref, cand = base.reference, base.candidate
        finite = np.asarray(np.isfinite(ref).all(axis=1) & np.isfinite(cand).all(axis=1))
        rows = PairedRows(
            reference=ref,
            candidate=cand,
            row_ids=base.row_ids,
            blocks=base.blocks,
            segment_ids=base.segment_ids,
            finite=finite,
            kl=np.where(finite, cand[:, 1], 0.0) if ref.shape[1] == _TOKEN_WIDTH else None,
        )
        return rows, rows

    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """Non-finite counts, then token statistics and KL quantiles, or choice accuracy."""
        seg = state.segments
        if width == _CHOICE_WIDTH:
            return [NonFiniteCounts(seg), ChoiceAccuracy(seg)]
        return [NonFiniteCounts(seg), TokenStatistics(seg), TokenKLQuantiles(seg)]

    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """Mean KL <= 0.05 nats, same top >= 0.9, perplexity at most 5% higher."""
        return [
            {"id": "kl", "metric": "mean_kl_divergence", "max": 0.05},
            {"id": "same-top", "metric": "top1_agreement", "min": 0.9},
            {"id": "perplexity", "metric": "perplexity", "max_relative_increase": 0.05},
        ]


def _check_all_logits(
    reference: Any, candidates: Sequence[Any], ids: Array, models: Sequence[str]
) -> None:
    """Every output is (rows, positions, V) float logits, with the reference's V."""
    _check_logits(reference, ids, models[0])
    for name, cand in zip(models[1:], candidates, strict=True):
        _check_logits(cand, ids, name)
        if cand.shape[-1] != reference.shape[-1]:
            raise AdapterError(
                f"Candidate {name!r} has a vocabulary of {cand.shape[-1]} logits but the "
                f"reference {models[0]!r} has {reference.shape[-1]}; expected the same "
                "tokenizer and vocabulary."
            )


def _reduce_choices(
    batch: Batch, reference: Any, candidates: Sequence[Any], ids: Array, mask: Array
) -> tuple[Batch, Array, list[Array]]:
    """(question, choice) rows -> one row per question: each model's choice and correctness.

    Raises:
        DataError: A question's choices are not all in this batch.
    """
    labels = np.asarray(batch.labels)
    question = labels["question"].astype(np.int64)
    choice = labels["choice"].astype(np.int64)
    qids, first, group, count = np.unique(
        question, return_index=True, return_inverse=True, return_counts=True
    )
    group = group.reshape(-1)
    expected = labels["n_choices"][first]
    if (count != expected).any():
        q = int(np.flatnonzero(count != expected)[0])
        raise DataError(
            f"Data: question {int(qids[q])} has {int(expected[q])} choices but {int(count[q])} "
            "of them are in this batch; expected every choice of a question in one batch "
            "(compval.data's ChoiceDataset batches whole questions)."
        )
    ref_ll, cand_lls = choice_log_likelihoods(
        reference, candidates, ids, mask, labels["context_length"]
    )
    m = qids.size
    answer = labels["answer"][first].astype(np.float64)
    ref_choice = _chosen(group, choice, ref_ll, m)
    ref_ok = np.where(ref_choice >= 0, (ref_choice == answer).astype(np.float64), np.nan)
    ref_rows = np.stack([ref_ok, ref_choice], axis=1)
    cand_rows = []
    for ll in cand_lls:
        picked = _chosen(group, choice, ll, m)
        ok = np.where(picked >= 0, (picked == answer).astype(np.float64), np.nan)
        agree = ((picked == ref_choice) & (picked >= 0)).astype(np.float64)
        cand_rows.append(np.stack([ok, picked, agree], axis=1))
    longest = np.zeros(m, dtype=np.int64)
    np.maximum.at(longest, group, mask.sum(axis=1).astype(np.int64))
    start = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(start, group, labels["context_length"].astype(np.int64))
    segments = {c: np.asarray(v)[first] for c, v in batch.segments.items()}
    segments[LENGTH_SEGMENT] = position_bucket(longest)
    segments[POSITION_SEGMENT] = position_bucket(start)
    questions = Batch(
        inputs={},
        labels=labels["answer"][first].astype(np.int64),
        row_ids=qids,
        segments=segments,
    )
    return questions, ref_rows, cand_rows
