""" "Rows needed" is honest: within 25% of what a simulation needs for an 80% chance to pass.

The message promises: about N rows give an 80% chance to pass if the candidate were truly no
worse (delta 0) at the observed discordance. Here N is estimated from small observed samples
through the public path (table -> estimates -> evaluate), and the truth is found by simulating
the Tango interval at increasing n.
"""

from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows

from compval.checks import CheckSettings, Criterion, evaluate
from compval.metrics import ContingencyTable, Resampling, SegmentTable
from compval.stats import tango_intervals

Z95 = 1.959963984540054
MARGIN = 0.01


def _criterion() -> Criterion:
    return Criterion(
        id="acc", metric="accuracy_score", compare="delta", op=">=", threshold=-MARGIN,
        statistic="interval", segment=None, severity="error", candidates=None,
        higher_is_better=True, written_as="max_drop: 0.01",
    )  # fmt: skip


def _simulated_rows(discordance: float) -> int:
    """Smallest n (to 1%) at which delta-0 data passes 80% of the time."""
    rng = np.random.default_rng(0)
    low, high = 100, 200_000
    while high - low > high // 100:
        mid = (low + high) // 2
        counts = rng.multinomial(mid, [discordance / 2, discordance / 2, 1 - discordance], 3000)
        lo, _ = tango_intervals(counts[:, 0], counts[:, 1], np.full(3000, mid), z=Z95)
        if np.mean(lo >= -MARGIN) >= 0.8:
            high = mid
        else:
            low = mid
    return high


def _estimated_rows(discordance: float, n: int, delta: float) -> float:
    rng = np.random.default_rng(1)
    needed = []
    for _ in range(100):
        y = rng.integers(0, 3, size=n)
        ref, cand = y.copy(), y.copy()
        u = rng.random(n)
        pc, pb = (discordance + delta) / 2, (discordance - delta) / 2
        ref[u < pc] = (y[u < pc] + 1) % 3
        wrong = (u >= pc) & (u < pc + pb)
        cand[wrong] = (y[wrong] + 1) % 3
        table = SegmentTable()
        acc = ContingencyTable(table)
        acc.update(make_rows(table, ref=np.eye(3)[ref], cand=np.eye(3)[cand], labels=y))
        estimates = [
            e
            for e in acc.estimates(Resampling(replicates=20, confidence=0.95, seed=0))
            if e.metric == "accuracy_score" and e.segment is None
        ]
        (check,) = evaluate([_criterion()], {"cand": estimates}, settings=CheckSettings())
        if check.details.get("rows_needed"):
            needed.append(check.details["rows_needed"])
    assert len(needed) >= 50  # most small samples are inconclusive, as they should be
    return float(np.median(needed))


@pytest.mark.parametrize(
    ("discordance", "n", "observed_delta"),
    [(0.04, 500, 0.0), (0.04, 500, -0.004), (0.02, 300, 0.0), (0.06, 2000, -0.003)],
)
def test_rows_needed_is_within_25_percent_of_simulation(
    discordance: float, n: int, observed_delta: float
) -> None:
    truth = _simulated_rows(discordance)
    estimate = _estimated_rows(discordance, n, observed_delta)
    assert 0.75 <= estimate / truth <= 1.25
