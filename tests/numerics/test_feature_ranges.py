"""Error by feature range: the tail search's family-wise error, power and arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compval.numerics import error_by_feature_range, row_errors


@pytest.mark.parametrize("rows", [200, 256, 1000])
@pytest.mark.parametrize("features", [1, 8, 64])
def test_no_finding_when_the_error_ignores_the_inputs(rows: int, features: int) -> None:
    # Null: errors independent of the inputs (skewed, as absolute errors are). The max-ratio
    # permutation test keeps P(any finding) <= alpha however many features are searched.
    runs, hits = 60, 0
    for seed in range(runs):
        rng = np.random.default_rng(1000 * rows + 10 * features + seed)
        x = rng.normal(size=(rows, features))
        errors = rng.exponential(size=rows)
        found, _ = error_by_feature_range({"x": x}, errors, seed=seed, permutations=199)
        hits += bool(found)
    # 60 runs at alpha 0.05: 3 expected; more than 9 has probability < 0.2% when alpha holds.
    assert hits <= 9, hits


def test_pooled_family_wise_error_rate_is_within_alpha() -> None:
    runs, hits = 300, 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        x = rng.uniform(size=(256, 16))
        errors = rng.lognormal(sigma=1.0, size=256)
        hits += bool(error_by_feature_range({"x": x}, errors, seed=seed, permutations=199)[0])
    # alpha 0.05 plus three binomial standard errors of 300 runs.
    assert hits / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)


def test_a_planted_tail_is_found_with_its_ratio() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(512, 10))
    errors = rng.exponential(scale=0.01, size=512)
    hot = x[:, 3] > np.quantile(x[:, 3], 0.95)
    errors[hot] *= 10.0
    found, notes = error_by_feature_range({"x": x}, errors, seed=0)
    assert notes == []
    first = found[0]
    assert (first.feature, first.side, int(first.rows)) == ("x[3]", "high", int(hot.sum()))
    # Independently: the ratio of the two groups' means, and the threshold as numpy puts it.
    assert first.ratio == pytest.approx(errors[hot].mean() / errors[~hot].mean())
    assert first.threshold == pytest.approx(np.quantile(x[:, 3], 0.95))
    assert first.ratio_low < first.ratio < first.ratio_high
    assert first.ratio_low > 3 and first.p_value < 0.01
    assert all(f.p_value < 0.05 for f in found)
    # A table's column names replace the indices (only when they match the width).
    names = [f"col_{j}" for j in range(10)]
    named, _ = error_by_feature_range({"x": x}, errors, seed=0, feature_names=names)
    assert named[0].feature == "col_3" and named[0].ratio == first.ratio
    unnamed, _ = error_by_feature_range({"x": x}, errors, seed=0, feature_names=names[:9])
    assert unnamed[0].feature == "x[3]"
    # Next to a table's text columns (inputs of their own), its numbers keep their names.
    city = np.array(["lima"] * len(x), dtype=object).reshape(-1, 1)
    table = {"features": x, "city": city}
    with_text, _ = error_by_feature_range(table, errors, seed=0, feature_names=names)
    assert with_text[0].feature == "col_3" and with_text[0].ratio == first.ratio


def test_low_tails_binary_features_and_corners() -> None:
    rng = np.random.default_rng(3)
    rows = 400
    x = rng.normal(size=(rows, 4))
    flag = (rng.uniform(size=rows) < 0.05).astype(np.float32)  # a binary feature
    errors = rng.exponential(scale=1.0, size=rows)
    cold = x[:, 0] < np.quantile(x[:, 0], 0.05)
    errors[cold] += 20.0
    errors[flag == 1] += 20.0
    found, _ = error_by_feature_range({"x": x, "flag": flag[:, None]}, errors, seed=1)
    keys = {(f.feature, f.side) for f in found}
    assert ("x[0]", "low") in keys and ("flag", "high") in keys
    # No error at all: nothing to find. Too few rows: a note, not a guess.
    assert error_by_feature_range({"x": x}, np.zeros(rows), seed=0) == ([], [])
    few, notes = error_by_feature_range({"x": x[:50]}, errors[:50], seed=0)
    assert few == [] and "50 sample rows" in notes[0]
    # Error only in the tail: an infinite ratio, still reported.
    only = np.where(cold, 1.0, 0.0)
    (top, *_), _ = error_by_feature_range({"x": x}, only, seed=0)
    assert math.isinf(top.ratio) and top.feature == "x[0]"


def test_row_errors_and_wide_inputs_are_skipped_with_a_note() -> None:
    ref = np.arange(12, dtype=np.float32).reshape(3, 4)
    cand = ref + np.array([[0, 0, 0, 4], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(row_errors(ref, cand), [1.0, 1.0, 0.0])
    images = np.zeros((300, 3, 32, 32), dtype=np.float32)
    found, notes = error_by_feature_range({"image": images}, np.ones(300), seed=0)
    assert found == [] and "3072 values per row" in notes[0]
