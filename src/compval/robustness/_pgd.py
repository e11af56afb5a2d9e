"""Gradient-based differential search (PGD on the disagreement margin) for two torch modules.

Projected gradient ascent, from a random start in the ball, on the same objective as the
black-box search: the candidate's margin for a class other than the reference's top-1
(classification), or the largest absolute output difference (regression/generic). Each step is
one evaluation (a forward pass of both modules and a backward pass) per seed still searching;
a seed stops at its first disagreement. The found inputs are confirmed by the caller through
the models' ordinary predict path, so a gradient artefact never counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.types import Array

__all__ = ["pgd_steps"]


def _first_tensor(out: Any) -> Any:
    if isinstance(out, dict):
        return next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def pgd_steps(
    reference: tuple[Any, str | None, str],
    candidate: tuple[Any, str | None, str],
    x0: Array,
    lo: Array,
    hi: Array,
    *,
    shape: tuple[int, ...],
    budget: int,
    classification: bool,
    tolerance: float,
    seed: int,
) -> tuple[Array, Array, Array]:
    """Run PGD from each seed row; return (found, x, evaluations used) per seed.

    ``reference``, ``candidate``: (module, dtype name or None, device) of each model.
    ``x0``, ``lo``, ``hi``: (K, d) float64 seed rows and the ball's bounds per feature.
    ``budget`` evaluations per seed, one of which the caller already spent on ``x0``.
    """
    torch = lazy_import("torch", extra="torch")

    def forward(model: tuple[Any, str | None, str], x: Any, n: int) -> Any:
        module, dtype, device = model
        batch = x.to(dtype=getattr(torch, dtype or "float32"), device=device)
        out = _first_tensor(module(batch.reshape(n, *shape)))
        return out.reshape(n, -1).to(device="cpu", dtype=torch.float64)

    generator = torch.Generator().manual_seed(seed)
    k, d = x0.shape
    lo_t = torch.as_tensor(lo, dtype=torch.float64)
    hi_t = torch.as_tensor(hi, dtype=torch.float64)
    x = lo_t + (hi_t - lo_t) * torch.rand((k, d), generator=generator, dtype=torch.float64)
    steps = max(budget - 1, 0)
    # Step size: cover the ball's width in a few steps, as in Madry et al.'s 2.5 eps / steps.
    alpha = (hi_t - lo_t) * max(2.5 / max(steps, 1), 0.05)
    found = np.zeros(k, dtype=bool)
    best = x0.copy()
    used = np.ones(k, dtype=np.int64)
    for _ in range(steps):
        active = np.flatnonzero(~found)
        if active.size == 0:
            break
        index = torch.as_tensor(active)
        xa = x[index].clone().requires_grad_(True)
        with torch.enable_grad():
            ref = forward(reference, xa, len(active))
            cand = forward(candidate, xa, len(active))
            if classification and ref.shape[1] > 1:
                top = ref.detach().argmax(dim=1)
                rows = torch.arange(len(active))
                own = cand[rows, top]
                others = cand.clone()
                others[rows, top] = -torch.inf
                objective = others.max(dim=1).values - own
            else:
                objective = (ref - cand).abs().max(dim=1).values - tolerance
            objective.sum().backward()
        used[active] += 1
        hit = (objective.detach() > 0).numpy()
        if hit.any():
            found[active[hit]] = True
            best[active[hit]] = xa.detach().numpy()[hit]
        grad = xa.grad if xa.grad is not None else torch.zeros_like(xa)
        stepped = xa.detach() + alpha[index] * torch.sign(grad)
        x[index] = torch.minimum(torch.maximum(stepped, lo_t[index]), hi_t[index])
    # Seeds without a disagreement keep their last iterate (the best the ascent reached).
    rest = ~found
    best[rest] = x.numpy()[rest]
    return found, best, used
