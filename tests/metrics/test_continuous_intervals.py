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


def test_intervals_in_blocks_of_rows_equal_each_row_alone() -> None:
    """Many replicate vectors are computed in blocks of rows (memory); a row's interval must
    not depend on the rows around it: percentile, BCa and split rows, with NaN replicates."""
    from compval.metrics._base import _INTERVAL_ROWS, _intervals

    rng = np.random.default_rng(7)
    n = 2 * _INTERVAL_ROWS + 37
    rows = [rng.normal(loc=i % 5, size=400) for i in range(n)]
    for i in range(0, n, 97):
        rows[i][rng.integers(0, 400, 30)] = np.nan  # a segment missing from some replicates
    points = [float(np.nanmean(r)) for r in rows]
    jackknife = [rng.normal(size=64) if i % 3 == 0 else None for i in range(n)]
    upper = [r + 0.1 if i % 7 == 1 and jackknife[i] is None else None for i, r in enumerate(rows)]
    bounds, spreads = _intervals(rows, 0.95, points=points, jackknife=jackknife, upper=upper)
    for i in range(0, n, 13):
        alone = _intervals(
            [rows[i]], 0.95, points=[points[i]], jackknife=[jackknife[i]], upper=[upper[i]]
        )
        assert (bounds[i], spreads[i]) == (alone[0][0], alone[1][0]), i
