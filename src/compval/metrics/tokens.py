"""Per-token metrics of causal language models (``task: causal_lm``), as block sums.

One row is one predicted token. ``PairedRows.reference`` holds the reference's negative
log-likelihood of the true next token (column 0); ``PairedRows.candidate`` holds the
candidate's (column 0), KL(reference || candidate) of the two next-token distributions in nats
(column 1) and whether both models' most likely next token is the same (column 2, 0/1). The
task computes them per batch (``compval.tasks.causal_lm``), so no (tokens x vocabulary) array
outlives a batch. Every token of a sequence carries the sequence's row id, so its bootstrap
block is the sequence's: intervals resample whole sequences.

``perplexity`` is exp(mean NLL over tokens) per model (delta and ratio candidate / reference
come with it); ``mean_kl_divergence`` and ``top1_agreement`` are means over tokens;
``median_kl_divergence`` and ``p99_kl_divergence`` read a log-spaced histogram (64 bins per
decade: relative error below a factor 10**(1/64), 3.7%); ``max_kl_divergence`` is exact.

Multiple-choice prompt sets (``ChoiceAccuracy``): one row is one question. ``reference`` holds
(correct, choice) of the reference, ``candidate`` (correct, choice, agreement) of the
candidate, where correct is 1 when the model's choice (the largest summed log-likelihood) is
the answer and agreement is 1 when both models chose the same. ``choice_accuracy_score`` of
both models comes with the paired delta and its block-bootstrap (BCa) interval, resampling
questions; ``choice_agreement`` is the share of questions where both chose the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from compval.metrics._base import BlockSumsAccumulator, Derived, PairedRows
from compval.metrics.continuous import KLQuantiles, histogram_quantile
from compval.types import Array

__all__ = ["ChoiceAccuracy", "TokenKLQuantiles", "TokenStatistics"]


class TokenStatistics(BlockSumsAccumulator):
    """Mean per-token KL, top-1 agreement, both models' perplexity, maximum KL."""

    family = "tokens"

    def columns(self) -> Sequence[str]:
        """Tokens, KL sum, same-top count, NLL sums per model."""
        return ("rows", "kl", "same_top", "nll_ref", "nll_cand")

    def max_columns(self) -> Sequence[str]:
        """The largest per-token KL."""
        return ("kl",)

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        ref, cand = rows.reference, rows.candidate
        mask = rows.finite
        values = np.empty((ref.shape[0], 5))
        values[:, 0] = 1.0
        values[:, 1] = cand[:, 1]
        values[:, 2] = cand[:, 2]
        values[:, 3] = ref[:, 0]
        values[:, 4] = cand[:, 0]
        if not mask.all():
            values = np.where(mask[:, None], values, 0.0)
        return values, values[:, 1:2], mask

    def derived(self) -> Sequence[Derived]:
        """mean_kl_divergence, top1_agreement, perplexity."""
        return (
            Derived("mean_kl_divergence", False, True, lambda s: s[..., 1] / s[..., 0]),
            Derived("top1_agreement", True, True, lambda s: s[..., 2] / s[..., 0]),
            Derived(
                "perplexity",
                False,
                False,
                lambda s: (np.exp(s[..., 3] / s[..., 0]), np.exp(s[..., 4] / s[..., 0])),
            ),
        )

    def _maximum_metrics(self) -> Sequence[tuple[str, int]]:
        return (("max_kl_divergence", 0),)


class TokenKLQuantiles(KLQuantiles):
    """Median and 99th percentile of per-token KL, from a 64-bins-per-decade histogram.

    Bins are log-spaced over [1e-12, 1e3]; the quantile interpolates within its bin in log
    space, so its relative error is below one bin width (a factor of 10**(1/64), 3.7%). No
    interval: a block bootstrap of a histogram quantile is unreliable.
    """

    family = "token_kl_quantiles"
    n_blocks: ClassVar[int] = 1
    EDGES: ClassVar[Array] = np.logspace(-12, 3, 15 * 64 + 1)

    def derived(self) -> Sequence[Derived]:
        """median_kl_divergence and p99_kl_divergence."""
        return (
            Derived(
                "median_kl_divergence",
                False,
                True,
                lambda s: histogram_quantile(s, self.EDGES, 0.5),
                bootstrap=False,
            ),
            Derived("p99_kl_divergence", False, True, self._p99, bootstrap=False),
        )


class ChoiceAccuracy(BlockSumsAccumulator):
    """Multiple-choice accuracy of both models and the agreement of their choices."""

    family = "choices"

    def columns(self) -> Sequence[str]:
        """Questions, correct answers per model, same choice."""
        return ("rows", "correct_ref", "correct_cand", "agree")

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        ref, cand = rows.reference, rows.candidate
        mask = rows.finite
        values = np.stack([np.ones(ref.shape[0]), ref[:, 0], cand[:, 0], cand[:, 2]], axis=1)
        if not mask.all():
            values = np.where(mask[:, None], values, 0.0)
        return values, None, mask

    def derived(self) -> Sequence[Derived]:
        """choice_accuracy_score (both models, delta) and choice_agreement."""
        return (
            Derived(
                "choice_accuracy_score",
                True,
                False,
                lambda s: (s[..., 1] / s[..., 0], s[..., 2] / s[..., 0]),
            ),
            Derived("choice_agreement", True, True, lambda s: s[..., 3] / s[..., 0]),
        )
