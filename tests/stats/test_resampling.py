from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from compval.errors import InvalidParameterError
from compval.stats import (
    _resampling,
    block_replicate_means,
    block_weights,
    percentile_interval,
    poisson_table_counts,
    row_blocks,
    stable_hash,
)

MASK = (1 << 64) - 1


def splitmix64_reference(x: int) -> int:
    """Textbook splitmix64 step (Vigna), in Python ints: independent of the numpy version."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


# -- stable_hash -----------------------------------------------------------------------------
def test_stable_hash_is_the_same_across_processes_with_different_hash_seeds() -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    code = "from compval.stats import stable_hash; print(stable_hash('lang=de'), hash('lang=de'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    theirs, their_builtin_hash = (int(word) for word in done.stdout.split())
    assert theirs == stable_hash("lang=de")
    # The builtin hash differs between the two processes (unless this one also runs with
    # PYTHONHASHSEED=12345), which is why stable_hash exists.
    if os.environ.get("PYTHONHASHSEED") != "12345":
        assert their_builtin_hash != hash("lang=de")
    assert 0 <= stable_hash("lang=de") < 2**64
    assert stable_hash("lang=de") != stable_hash("lang=fr")


def test_stable_hash_rejects_non_strings() -> None:
    with pytest.raises(InvalidParameterError, match=r"stable_hash: text must be a str; got int"):
        stable_hash(3)  # type: ignore[arg-type]


# -- poisson_table_counts --------------------------------------------------------------------
def test_table_counts_are_deterministic_per_seed_and_stream() -> None:
    counts = np.array([5, 0, 120, 3, 40_000])
    first = poisson_table_counts(counts, replicates=300, seed=11, stream=stable_hash("a"))
    again = poisson_table_counts(counts, replicates=300, seed=11, stream=stable_hash("a"))
    other_stream = poisson_table_counts(counts, replicates=300, seed=11, stream=stable_hash("b"))
    other_seed = poisson_table_counts(counts, replicates=300, seed=12, stream=stable_hash("a"))
    assert first.dtype == np.int64 and first.shape == (300, 5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_stream)
    assert not np.array_equal(first, other_seed)
    assert np.all(first[:, 1] == 0)


def test_table_counts_prefix_does_not_depend_on_replicate_count() -> None:
    counts = np.arange(1, 30)
    short = poisson_table_counts(counts, replicates=100, seed=3, stream=9)
    long = poisson_table_counts(counts, replicates=333, seed=3, stream=9)
    np.testing.assert_array_equal(short, long[:100])


def test_table_counts_do_not_depend_on_threading(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = np.arange(0, 2000)
    monkeypatch.setattr(_resampling, "_PARALLEL_MIN_DRAWS", 0)
    threaded = poisson_table_counts(counts, replicates=500, seed=5, stream=1)
    monkeypatch.setattr(_resampling, "_PARALLEL_MIN_DRAWS", 10**18)
    serial = poisson_table_counts(counts, replicates=500, seed=5, stream=1)
    np.testing.assert_array_equal(threaded, serial)


def test_table_counts_follow_the_poisson_distribution() -> None:
    lam = 3
    draws = poisson_table_counts([lam], replicates=20_000, seed=0, stream=0)[:, 0]
    support = np.arange(0, 9)
    observed = np.array([np.sum(draws == k) for k in support[:-1]] + [np.sum(draws >= 8)])
    expected_p = np.append(stats.poisson.pmf(support[:-1], lam), stats.poisson.sf(7, lam))
    result = stats.chisquare(observed, expected_p * draws.size)
    assert result.pvalue > 1e-3
    big = poisson_table_counts([1000, 50], replicates=4000, seed=1, stream=2)
    np.testing.assert_allclose(big.mean(axis=0), [1000, 50], rtol=0.01)
    np.testing.assert_allclose(big.var(axis=0), [1000, 50], rtol=0.1)


def test_table_counts_sparse_and_empty_tables() -> None:
    assert poisson_table_counts([0, 0], replicates=4, seed=0, stream=0).tolist() == [[0, 0]] * 4
    assert poisson_table_counts([], replicates=3, seed=0, stream=0).shape == (3, 0)
    # Whole-number floats are accepted as counts.
    np.testing.assert_array_equal(
        poisson_table_counts([2.0, 7.0], replicates=5, seed=1, stream=1),
        poisson_table_counts([2, 7], replicates=5, seed=1, stream=1),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"counts": [1, -2]}, r"counts: negative count; got \[ 1, -2\]"),
        ({"counts": [[1, 2]]}, r"counts: wrong number of dimensions; got shape \(1, 2\)"),
        ({"counts": [1.5]}, r"counts: not whole numbers; got \[1.5\]"),
        ({"counts": ["a"]}, r"counts: not numeric; got dtype <U1"),
        ({"replicates": 0}, r"replicates: must be at least 1; got 0"),
        ({"replicates": 2.5}, r"replicates: not an integer; got 2.5"),
        ({"seed": True}, r"seed: got a bool True, expected an integer"),
        ({"stream": "x"}, r"stream: not an integer; got 'x'"),
    ],
)
def test_table_counts_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"counts": [1, 2], "replicates": 3, "seed": 0, "stream": 0}
    arguments.update(kwargs)
    counts = arguments.pop("counts")
    with pytest.raises(InvalidParameterError, match=message):
        poisson_table_counts(counts, **arguments)  # type: ignore[arg-type]


# -- row_blocks ------------------------------------------------------------------------------
def test_row_blocks_match_reference_splitmix64() -> None:
    assert splitmix64_reference(0) == 0xE220A8397B1DCDAF  # published first output, seed 0
    np.testing.assert_array_equal(
        _resampling._splitmix64(np.array([0, 1, 2**63], dtype=np.uint64)),
        np.array([splitmix64_reference(x) for x in (0, 1, 2**63)], dtype=np.uint64),
    )
    seed, salt, n_blocks = 42, _resampling._SALT_BLOCKS, 37
    ids = np.array([0, 1, 2, 99, -1, -(2**63), 2**63 - 1, 123456789012], dtype=np.int64)
    key = splitmix64_reference(seed ^ salt)
    expected = [splitmix64_reference((int(i) & MASK) ^ key) % n_blocks for i in ids]
    assert row_blocks(ids, seed=seed, n_blocks=n_blocks).tolist() == expected


def test_row_blocks_do_not_depend_on_chunking_or_order() -> None:
    ids = np.random.default_rng(0).integers(-(10**12), 10**12, size=10_000)
    whole = row_blocks(ids, seed=7, n_blocks=64)
    chunked = np.concatenate(
        [row_blocks(part, seed=7, n_blocks=64) for part in np.array_split(ids, [3, 500, 7777])]
    )
    np.testing.assert_array_equal(whole, chunked)
    perm = np.random.default_rng(1).permutation(ids.size)
    np.testing.assert_array_equal(row_blocks(ids[perm], seed=7, n_blocks=64), whole[perm])
    assert not np.array_equal(row_blocks(ids, seed=8, n_blocks=64), whole)
    assert whole.dtype == np.int64 and whole.min() >= 0 and whole.max() < 64


def test_row_blocks_are_uniform() -> None:
    blocks = row_blocks(np.arange(64_000), seed=0, n_blocks=16)
    assert stats.chisquare(np.bincount(blocks, minlength=16)).pvalue > 1e-3


@pytest.mark.parametrize(
    ("row_ids", "n_blocks", "message"),
    [
        ([0.5, 1.5], 4, r"row_ids: must be a 1-D integer array; got dtype float64"),
        ([[1, 2]], 4, r"row_ids: must be a 1-D integer array; got dtype int64 and shape \(1, 2\)"),
        (np.array([2**63], dtype=np.uint64), 4, r"row_ids: id too large; got 9223372036854775808"),
        ([1, 2], 0, r"row_blocks: n_blocks: must be at least 1; got 0"),
    ],
)
def test_row_blocks_errors(row_ids: object, n_blocks: int, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        row_blocks(row_ids, seed=0, n_blocks=n_blocks)  # type: ignore[arg-type]


# -- block weights and replicate means --------------------------------------------------------
def test_block_weights_are_deterministic_poisson_one() -> None:
    weights = block_weights(n_blocks=200, replicates=500, seed=3)
    assert weights.shape == (500, 200) and weights.dtype == np.float64
    np.testing.assert_array_equal(weights, block_weights(n_blocks=200, replicates=500, seed=3))
    assert not np.array_equal(weights, block_weights(n_blocks=200, replicates=500, seed=4))
    assert not np.array_equal(
        weights, block_weights(n_blocks=200, replicates=500, seed=3, stream=1)
    )
    assert abs(weights.mean() - 1.0) < 0.02 and abs(weights.var() - 1.0) < 0.05
    assert np.all(weights == np.round(weights))
    # Same seed and stream as a table, but an independent purpose.
    table = poisson_table_counts(np.ones(200, dtype=np.int64), replicates=500, seed=3, stream=0)
    assert not np.array_equal(weights, table)


def test_block_weights_are_drawn_once_and_shared_read_only() -> None:
    """Every accumulator of a run asks for them: one draw, no copy each, and nobody may write."""
    import threading

    from compval.stats import _resampling

    _resampling._cached_block_weights.cache_clear()
    got: list[np.ndarray] = []
    threads = [
        threading.Thread(
            target=lambda: got.append(block_weights(n_blocks=64, replicates=300, seed=11))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(w is got[0] for w in got)  # one draw, whoever came first
    assert _resampling._cached_block_weights.cache_info().misses == 1
    assert not got[0].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        got[0][0, 0] = 5.0
    big = block_weights(n_blocks=4096, replicates=1024, seed=0)  # past the cache: drawn each time
    assert not big.flags.writeable and big is not block_weights(
        n_blocks=4096, replicates=1024, seed=0
    )


def test_block_weights_errors() -> None:
    with pytest.raises(InvalidParameterError, match=r"block_weights: n_blocks: must be at least"):
        block_weights(n_blocks=0, replicates=3, seed=0)


def test_block_replicate_means_equal_row_weighted_means() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3000, 2))
    blocks = row_blocks(np.arange(3000), seed=1, n_blocks=50)
    weights = block_weights(n_blocks=50, replicates=20, seed=2)
    sums = np.zeros((50, 2))
    np.add.at(sums, blocks, values)
    counts = np.bincount(blocks, minlength=50)
    got = block_replicate_means(sums, counts, weights)
    expected = np.array([np.average(values, axis=0, weights=weights[r, blocks]) for r in range(20)])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    one = block_replicate_means(sums[:, 0], counts, weights)
    np.testing.assert_allclose(one, expected[:, 0], rtol=1e-12)


def test_block_replicate_means_nan_when_a_replicate_has_no_weight() -> None:
    got = block_replicate_means([1.0, 2.0], [1, 1], np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert np.isnan(got[0]) and got[1] == 1.5


@pytest.mark.parametrize(
    ("sums", "counts", "weights", "message"),
    [
        (np.ones(3), np.ones(3), np.ones((2, 4)), r"block counts differ; got sums \(3,\)"),
        (np.ones(3), np.ones((3, 1)), np.ones((2, 3)), r"wrong dimensions; got sums \(3,\)"),
    ],
)
def test_block_replicate_means_errors(
    sums: np.ndarray, counts: np.ndarray, weights: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        block_replicate_means(sums, counts, weights)


# -- percentile_interval ---------------------------------------------------------------------
def test_percentile_interval_matches_numpy_and_ignores_nan() -> None:
    values = np.random.default_rng(0).normal(size=999)
    low, high = percentile_interval(values, confidence=0.9)
    # The (R + 1) p rule: numpy's "weibull" method (Hyndman & Fan type 6).
    np.testing.assert_allclose(
        (low, high), np.percentile(values, [5, 95], method="weibull"), rtol=1e-12
    )
    with_nan = np.concatenate([values, [np.nan] * 10])
    assert percentile_interval(with_nan, confidence=0.9) == (low, high)
    nan_pair = percentile_interval([np.nan, np.nan], confidence=0.9)
    assert np.isnan(nan_pair[0]) and np.isnan(nan_pair[1])
    assert isinstance(low, float)


@pytest.mark.parametrize(
    ("values", "confidence", "message"),
    [
        ([1.0, 2.0], 1.0, r"confidence: out of range; got 1.0, expected a float in \(0, 1\)"),
        ([1.0, 2.0], "high", r"confidence: not a number; got 'high'"),
        ([[1.0, 2.0]], 0.9, r"replicate_values must be 1-D; got shape \(1, 2\)"),
    ],
)
def test_percentile_interval_errors(values: object, confidence: object, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        percentile_interval(values, confidence=confidence)  # type: ignore[arg-type]
