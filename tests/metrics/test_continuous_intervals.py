"""Continuous metrics' intervals: t-expanded block BCa, a function of the rows and the seed only."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows

from compval.metrics import RegressionErrors, Resampling, SegmentTable


def _estimates(batch: int, seed: int) -> dict[str, tuple[float, float] | None]:
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.normal(size=n)
    ref = y + rng.standard_t(5, size=n)
    cand = ref + 0.1 * rng.exponential(size=n)
    table = SegmentTable()
    acc = RegressionErrors(table, width=1)
    for start in range(0, n, batch):
        part = slice(start, start + batch)
        acc.update(
            make_rows(
                table,
                ref=ref[part],
                cand=cand[part],
                labels=y[part],
                row_ids=np.arange(n)[part],
                classification=False,
                seed=seed,
            )
        )
    return {
        f"{e.metric}/{kind}": ci
        for e in acc.estimates(Resampling(replicates=400, confidence=0.95, seed=seed))
        for kind, ci in (("delta", e.ci), ("candidate", e.ci_candidate), ("ratio", e.ci_ratio))
    }


def test_block_intervals_do_not_depend_on_the_batch_size() -> None:
    one, many = _estimates(3000, seed=3), _estimates(64, seed=3)
    assert one.keys() == many.keys()
    for name, ci in one.items():
        other = many[name]
        assert ci is not None and other is not None, name
        # Sums added in another order differ in the last bits only.
        assert ci == pytest.approx(other, rel=1e-9, abs=1e-12), name
    assert _estimates(3000, seed=4) != one


def test_a_small_uniform_degradation_is_shown_and_named() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.normal(size=n)
    ref = y + rng.normal(size=n)
    cand = y + 1.05 * (ref - y)  # every error 5% larger
    table = SegmentTable()
    acc = RegressionErrors(table, width=1)
    acc.update(make_rows(table, ref=ref, cand=cand, labels=y, classification=False))
    mae = next(
        e for e in acc.estimates(Resampling(400, 0.95, seed=0)) if e.metric.startswith("mean_abs")
    )
    assert mae.ci_method == "block_bootstrap_bca"
    assert mae.ci is not None and 0 < mae.ci[0] < mae.delta < mae.ci[1]  # type: ignore[operator]
