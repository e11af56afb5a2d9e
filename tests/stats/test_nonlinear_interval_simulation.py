"""Seeded simulations behind docs/statistics.md's claims about the non-linear metrics' intervals.

Precision, F1, macro F1 and weighted F1 get a Bayesian bootstrap of the paired table
(``TableMetrics.posterior_sums``): Gamma(count) per observed cell plus a prior on discordant
cells. Each simulated dataset is a multinomial draw of n rows from a population table of
(label, reference prediction, candidate prediction) probabilities; the truth is the metric of
that population table. The reference is right on 90% of rows; of all rows, ``pb`` are rows the
reference gets right and the candidate wrong, ``pc`` the reverse (discordance d = pb + pc, true
accuracy delta pc - pb); where both are wrong the candidate repeats the reference's class 70%
of the time. For every cell of the grid, every interval must cover the truth at least 93% of
the time, and a criterion placed exactly at the truth must pass (the interval's lower end at
or above it) at most 2.5% of the time, up to two Monte Carlo standard errors.
"""

from __future__ import annotations

import math
import os

import numpy as np
import numpy.typing as npt
import pytest

from compval.metrics import Resampling
from compval.metrics._base import EstimateItem, build_estimates
from compval.metrics.classification import TableMetrics

#: Simulated datasets per cell; docs/statistics.md's table comes from the same code with
#: COMPVAL_SIMULATION_REPS=4000.
REPS = int(os.environ.get("COMPVAL_SIMULATION_REPS", "1000"))
REPLICATES = 300
CHUNK = 250
#: Two Monte Carlo standard errors of a rate of 0.025 and of a coverage of 0.93.
PASS_MCSE = 2 * math.sqrt(0.025 * 0.975 / REPS)
COVERAGE_MCSE = 2 * math.sqrt(0.93 * 0.07 / REPS)
BALANCED = (0.5, 0.3, 0.2)
#: (n, discordance, true accuracy delta): n in {40, 200, 1,000, 20,000}, d 0-6%, delta 0 to
#: -3 points. Interval cost does not depend on n, so the largest n is as cheap as the smallest.
GRID = [
    (n, d, delta)
    for n in (40, 200, 1_000, 20_000)
    for d, delta in ((0.0, 0.0), (0.005, -0.005), (0.03, -0.01), (0.06, -0.03))
    if n >= 1_000 or d != 0.03  # small n: the prior dominates, and every cell is conservative
]
#: Rare classes: classes 1 and 2 have 3% of the rows (30 positives at n = 1,000, 60 at 2,000);
#: the candidate flips 5% of class 1's rows, all for the worse (recall delta -5 points).
RARE = [(1_000, 0.05, -0.05), (2_000, 0.05, -0.05)]
AGGREGATE = ("macro_f1_score", "weighted_f1_score")
Array = npt.NDArray[np.float64]


def _population(
    prevalence: tuple[float, ...], pb: Array, pc: Array, *, same_wrong: float = 0.7
) -> Array:
    """P(label, reference, candidate); pb[l] / pc[l]: share of class l's rows that flip."""
    k = len(prevalence)
    p = np.zeros((k, k, k))
    for label in range(k):
        right, wrong = prevalence[label] * 0.9, prevalence[label] * 0.1 / (k - 1)
        qb, qc = pb[label] / 0.9, pc[label] / 0.1  # within the reference's right / wrong rows
        p[label, label, label] += right * (1 - qb)
        for other in range(k):
            if other == label:
                continue
            p[label, label, other] += right * qb / (k - 1)
            p[label, other, label] += wrong * qc
            rest = wrong * (1 - qc)
            p[label, other, other] += rest * same_wrong
            for third in range(k):
                if third not in (label, other):
                    p[label, other, third] += rest * (1 - same_wrong) / (k - 2)
    assert abs(p.sum() - 1) < 1e-12
    return p


def _metrics_of(values: list[tuple[str, bool | None, bool, object]]) -> dict[str, object]:
    wanted = ("macro_f1_score", "weighted_f1_score", "precision_score[", "f1_score[")
    return {name: v for name, _, _, v in values if name.startswith(wanted)}


def _simulate(population: Array, n: int, seed: int) -> dict[str, dict[str, float]]:
    """Coverage and wrong-pass rates of the delta, candidate and ratio intervals, per metric.

    The intervals are the product's: ``TableMetrics.posterior_sums`` draws, the metric
    math of ``TableMetrics.from_sums`` and the interval assembly of ``build_estimates``.
    """
    label, ref, cand = (a.reshape(-1) for a in np.indices(population.shape))
    metrics = TableMetrics(label, ref, cand)
    truth = {
        name: (float(r[0]), float(c[0]))
        for name, (r, c) in _metrics_of(metrics.compute(population.reshape(1, -1))).items()  # type: ignore[misc]
    }
    tables = np.random.default_rng(seed).multinomial(n, population.reshape(-1), size=REPS)
    hits = {m: np.zeros(6) for m in truth}
    defined = {m: np.zeros(3) for m in truth}
    for start in range(0, REPS, CHUNK):
        stack, rows = [], None
        for i in range(start, start + CHUNK):
            sums, rows = metrics.posterior_sums(
                tables[i], per_class=True, replicates=REPLICATES, seed=seed, stream=i
            )
            stack.append(sums)
        assert rows is not None
        m = stack[0].shape[0]
        values = _metrics_of(metrics.from_sums(np.concatenate(stack)))
        for name, (ref_v, cand_v) in values.items():  # type: ignore[misc]
            r, c = ref_v.reshape(CHUNK, m), cand_v.reshape(CHUNK, m)
            low, high = rows["aggregate" if name in AGGREGATE else "per_class"]
            items = [
                EstimateItem(
                    metric=name,
                    segment=None,
                    higher_is_better=True,
                    paired=False,
                    n=n,
                    point=(r[i, 0], c[i, 0]),
                    replicates=(r[i, low], c[i, low]),
                    upper_replicates=(r[i, high], c[i, high]),
                )
                for i in range(CHUNK)
            ]
            true_ref, true_cand = truth[name]
            targets = (true_cand - true_ref, true_cand, true_cand / true_ref)
            for e in build_estimates(items, Resampling(REPLICATES, 0.95, seed), method="sim"):
                for j, (ci, target) in enumerate(
                    zip((e.ci, e.ci_candidate, e.ci_ratio), targets, strict=True)
                ):
                    if ci is None:
                        # Only a ratio over a reference value of 0 is undefined (a class the
                        # reference never got right in a 40-row sample).
                        assert j == 2 and e.reference == 0.0, (name, j, e)
                        continue
                    defined[name][j] += 1
                    hits[name][2 * j] += ci[0] <= target + 1e-12 and target - 1e-12 <= ci[1]
                    hits[name][2 * j + 1] += ci[0] >= target + 1e-12
    names = (
        "coverage",
        "wrong_pass",
        "candidate_coverage",
        "candidate_wrong_pass",
        "ratio_coverage",
        "ratio_wrong_pass",
    )
    return {
        m: dict(zip(names, (v / np.repeat(defined[m], 2)).tolist(), strict=True))
        for m, v in hits.items()
    }


def _check(results: dict[str, dict[str, float]]) -> None:
    """Coverage per metric; wrong passes per interval method, pooled over its metrics.

    A method exactly at the nominal 2.5% exceeds 2.5% + 2 Monte Carlo standard errors in 2.3%
    of checks by chance alone, so checking each of the grid's hundreds of (metric, method)
    rates at that bound would fail nominal methods somewhere. The bound of 2 standard errors
    applies to the method's rate in the cell, pooled over its metrics (its Monte Carlo standard
    error is at most one metric's); each metric's own rate gets the grid-wide Bonferroni bound
    of 4 standard errors, which still catches a metric that is off on its own.
    """
    for metric, r in results.items():
        for kind in ("", "candidate_", "ratio_"):
            assert r[f"{kind}coverage"] >= 0.93 - COVERAGE_MCSE, (metric, kind, r)
            assert r[f"{kind}wrong_pass"] <= 0.025 + 2 * PASS_MCSE, (metric, kind, r)
    for kind in ("", "candidate_", "ratio_"):
        pooled = float(np.mean([r[f"{kind}wrong_pass"] for r in results.values()]))
        assert pooled <= 0.025 + PASS_MCSE, (kind, pooled, results)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "d", "delta"), GRID)
def test_bayesian_table_bootstrap_on_the_grid(n: int, d: float, delta: float) -> None:
    k = len(BALANCED)
    pb, pc = np.full(k, (d - delta) / 2), np.full(k, (d + delta) / 2)
    results = _simulate(_population(BALANCED, pb, pc), n, seed=GRID.index((n, d, delta)))
    print(f"\nn={n} d={d} delta={delta}: {results}")
    _check(results)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "d", "delta"), RARE)
def test_bayesian_table_bootstrap_on_a_rare_class(n: int, d: float, delta: float) -> None:
    prevalence = (0.94, 0.03, 0.03)
    pb, pc = np.zeros(3), np.zeros(3)
    pb[1], pc[1] = (d - delta) / 2, (d + delta) / 2
    results = _simulate(_population(prevalence, pb, pc), n, seed=100 + RARE.index((n, d, delta)))
    print(f"\nrare n={n} d={d} delta={delta}: {results}")
    _check(results)
