"""Differential search: inputs near real rows where the candidate and the reference disagree.

Black-box, so it works for any runtime: the models are only called on batches of inputs.
Around each seed row x0 the search explores the box ``|x - x0| <= epsilon * std`` per feature
(L-infinity in per-feature standard deviations; optionally intersected with the observed
feature ranges). The objective is the candidate's margin for a class other than the
reference's top-1 (positive: the two top-1 classes differ); for regression and generic
outputs it is the largest absolute output difference minus the tolerance.

``evolution`` is a (1 + lambda) search in the spirit of DiffChaser/DFlare and of square-attack
style black-box attacks: it starts at a random corner of the box (quantization errors grow with
the input's magnitude, so corners are where they are largest), mutates a random subset of the
coordinates to the other side of the box, keeps the best mutant, and restarts from a new
corner when it stalls. ``random`` samples the box uniformly (the baseline of
benchmarks/bench_search.py). Each seed gets exactly ``budget`` model evaluations at most (one
evaluation = one input run through both models), and stops at its first disagreement.

The found cases are re-checked one row at a time: a dynamically quantized candidate computes
its scales per batch, so a disagreement seen inside a search batch might not replay alone.
Only confirmed cases count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compval.robustness._pgd import pgd_steps
from compval.robustness._stats import FeatureStats
from compval.types import Array

__all__ = ["SearchOutcome", "differential_search"]

Predict = Callable[[Array], Array]

_LAMBDA = 8
_STALL = 4


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Per seed row: whether a (confirmed) disagreement was found, and the case.

    Attributes:
        found: bool (K,).
        x: float64 (K, d): the found input where ``found``, else the best input tried.
        size: float64 (K,): max |x - x0| / std over the perturbed features (0 for the seed).
        reference: (K, width) reference outputs at ``x``; candidate likewise.
        divergence: float64 (K,): max absolute output difference at ``x``.
        evaluations: int (K,): model evaluations spent per seed (including confirmation).
        unconfirmed: seeds whose disagreement in a search batch did not replay alone.
    """

    found: Array
    x: Array
    size: Array
    reference: Array
    candidate: Array
    divergence: Array
    evaluations: Array
    unconfirmed: int


def _objective(ref: Array, cand: Array, *, classification: bool, tolerance: float) -> Array:
    ref = ref.reshape(ref.shape[0], -1)
    cand = cand.reshape(cand.shape[0], -1)
    if not classification:
        difference: Array = np.abs(ref - cand).max(axis=1) - tolerance
        return difference
    if ref.shape[1] == 1:
        # Label outputs: no margin to follow, only agree (-0.5) or disagree (+0.5).
        differs: Array = (ref[:, 0] != cand[:, 0]).astype(np.float64) - 0.5
        return differs
    top = ref.argmax(axis=1)
    rows = np.arange(ref.shape[0])
    own = cand[rows, top]
    other = cand.copy()
    other[rows, top] = -np.inf
    margin = other.max(axis=1) - own
    # A tie (margin 0) is not a disagreement: argmax would pick the reference's class first.
    out: Array = np.where(margin > 0, margin, np.minimum(margin, -1e-12))
    return out


def differential_search(
    reference: Predict,
    candidate: Predict,
    seeds: Array,
    stats: FeatureStats,
    *,
    epsilon: float,
    budget: int,
    method: str = "evolution",
    clip: bool = True,
    classification: bool = True,
    tolerance: float = 0.0,
    seed: int = 0,
    modules: tuple[tuple[Any, str | None, str], tuple[Any, str | None, str]] | None = None,
) -> SearchOutcome:
    """Search the epsilon-ball around each seed row for a disagreement.

    Args:
        reference: Batch predict function, float64 (m, *row shape) -> compared outputs.
        candidate: The candidate's, likewise.
        seeds: (K, *row shape) seed rows.
        stats: The input's per-feature statistics (std, min, max), flattened per row.
        epsilon: Ball radius in per-feature standard deviations.
        budget: Model evaluations per seed.
        method: ``evolution`` or ``random``.
        clip: Keep inputs within the observed per-feature [min, max].
        classification: Top-1 disagreement; else max output difference above ``tolerance``.
        tolerance: The output difference that counts as a disagreement (non-classification).
        seed: Seed of every random choice.
        modules: For ``method="pgd"``: (torch module, dtype name, device) of the reference
            and of the candidate (the gradient search); the predict functions still confirm.
    """
    rng = np.random.default_rng(seed)
    shape = seeds.shape[1:]
    x0 = seeds.reshape(seeds.shape[0], -1).astype(np.float64)
    k, d = x0.shape
    radius = epsilon * stats.std
    lo = x0 - radius
    hi = x0 + radius
    if clip:
        lo = np.maximum(lo, np.minimum(stats.min, x0))
        hi = np.minimum(hi, np.maximum(stats.max, x0))
    scale = np.where(stats.std > 0, stats.std, np.inf)

    def run(x: Array) -> tuple[Array, Array, Array]:
        batch = x.reshape(x.shape[0], *shape)
        ref = np.asarray(reference(batch), dtype=np.float64).reshape(x.shape[0], -1)
        cand = np.asarray(candidate(batch), dtype=np.float64).reshape(x.shape[0], -1)
        return ref, cand, _objective(ref, cand, classification=classification, tolerance=tolerance)

    used = np.zeros(k, dtype=np.int64)
    best_x = x0.copy()
    _, _, best = run(x0)
    used += 1
    found = best > 0
    stall = np.zeros(k, dtype=np.int64)
    current_x = x0.copy()
    current = best.copy()
    first = True
    if method == "pgd":
        assert modules is not None
        pgd_found, pgd_x, pgd_used = pgd_steps(
            modules[0],
            modules[1],
            x0[~found],
            lo[~found],
            hi[~found],
            shape=shape,
            budget=budget,
            classification=classification,
            tolerance=tolerance,
            seed=seed,
        )
        searching = np.flatnonzero(~found)
        best_x[searching] = pgd_x
        used[searching] = pgd_used
        found[searching] = pgd_found
    while method != "pgd":
        active = np.flatnonzero(~found & (used < budget))
        if active.size == 0:
            break
        take = np.minimum(_LAMBDA, budget - used[active])
        owners = np.repeat(active, take)
        if method == "random":
            u = rng.random((owners.size, d))
            trial = lo[owners] + u * (hi[owners] - lo[owners])
        elif first:
            trial = np.where(rng.random((owners.size, d)) < 0.5, lo[owners], hi[owners])
        else:
            base = current_x[owners]
            progress = used[owners] / budget
            share = np.maximum(0.3 * (1.0 - progress), 2.0 / max(d, 1))[:, None]
            flip = rng.random((owners.size, d)) < share
            other_side = np.where(
                np.abs(base - lo[owners]) < np.abs(base - hi[owners]), hi[owners], lo[owners]
            )
            trial = np.where(flip, other_side, base)
            restart = stall[owners] >= _STALL
            if restart.any():
                corners = np.where(
                    rng.random((int(restart.sum()), d)) < 0.5,
                    lo[owners][restart],
                    hi[owners][restart],
                )
                trial[restart] = corners
        first = False
        _, _, score = run(trial)
        np.add.at(used, owners, 1)
        # The best trial of each seed (the trials of a seed are contiguous).
        starts = np.concatenate([[0], np.cumsum(take)[:-1]])
        top = np.maximum.reduceat(score, starts)
        for j, s in enumerate(active):
            seg = slice(starts[j], starts[j] + take[j])
            i = starts[j] + int(np.argmax(score[seg]))
            if method == "random" or top[j] > current[s] or stall[s] >= _STALL:
                if top[j] > current[s] or stall[s] >= _STALL:
                    stall[s] = 0
                current[s] = top[j]
                current_x[s] = trial[i]
            else:
                stall[s] += 1
            if top[j] > best[s]:
                best[s] = top[j]
                best_x[s] = trial[i]
            if top[j] > 0:
                found[s] = True

    # Confirm each found case alone: batch composition must not be what made it disagree.
    ref_out = np.empty((k, 0))
    cand_out = np.empty((k, 0))
    refs, cands = [], []
    unconfirmed = 0
    for row in range(k):
        r, c, score = run(best_x[row : row + 1])
        if found[row]:
            used[row] += 1
            if score[0] <= 0:
                found[row] = False
                unconfirmed += 1
        refs.append(r[0])
        cands.append(c[0])
    if refs:
        ref_out = np.stack(refs)
        cand_out = np.stack(cands)
    size = np.max(np.abs(best_x - x0) / scale, axis=1) if d else np.zeros(k)
    divergence = np.abs(ref_out - cand_out).max(axis=1) if ref_out.size else np.zeros(k)
    return SearchOutcome(
        found=found,
        x=best_x.reshape(k, *shape),
        size=size,
        reference=ref_out,
        candidate=cand_out,
        divergence=divergence,
        evaluations=used,
        unconfirmed=unconfirmed,
    )
