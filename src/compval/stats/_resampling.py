"""Deterministic Poisson bootstrap: resampled contingency tables, row blocks, block weights.

Method. The Poisson bootstrap gives each row an independent Poisson(1) weight instead of
drawing n rows with replacement; for large n the two agree (Hanley & MacGibbon 2006,
Chamandy et al. 2012), and the Poisson form needs no global n, so it streams and merges.

* **Tables.** Classification keeps a sparse table of cells (label, reference prediction,
  candidate prediction) with a row count each. The sum of n independent Poisson(1) weights is
  Poisson(n), so a replicate of the whole table is one Poisson(n) draw per cell:
  O(cells x replicates) work, independent of the number of rows, and every metric computed from
  the replicate table (accuracy of both models, agreement, flips, F1) is *paired* because all
  of them see the same replicate.
* **Blocks.** Continuous per-row quantities (errors, KL, Brier) are summed per
  ``(segment, block)``, where ``block = splitmix64(row_id, seed) mod n_blocks``; a replicate
  weights each block by Poisson(1). With many blocks (hundreds) and rows assigned to blocks
  at random, this is the ordinary Poisson bootstrap applied to block totals, which is valid for
  means and ratios of sums (e.g. mean error = sum of errors / rows).

Determinism. Randomness depends only on ``(seed, stream, replicate)`` and, for tables, on the
cells passed (so callers pass them in a canonical order, e.g. sorted by
(label, reference, candidate)); for blocks, on ``(seed, row_id)``. It never depends on batch
size, processing order, threads or how many replicates run at once: replicate ``r`` is drawn by
a counter-based Philox generator keyed by ``(seed, stream)`` whose counter names the chunk of
64 replicates that holds ``r``, so the first R replicates are the same whatever the total.

Assumptions. Rows are independent (or, for blocks, dependent rows share a row id); the
statistic is smooth in the counts (proportions, means, ratios of sums), which is what makes the
percentile interval accurate here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from compval.errors import InvalidParameterError
from compval.stats._checks import (
    check_confidence,
    check_counts_array,
    check_positive_int,
    check_seed,
)

__all__ = [
    "block_replicate_means",
    "block_weights",
    "gamma_table_weights",
    "percentile_interval",
    "poisson_table_counts",
    "row_blocks",
    "stable_hash",
]

_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_GOLDEN = 0x9E37_79B9_7F4A_7C15
_MIX1 = 0xBF58_476D_1CE4_E5B9
_MIX2 = 0x94D0_49BB_1331_11EB

# Replicates are drawn in fixed chunks so that the draws of replicate r depend on r alone (not on
# how many replicates were asked for, nor on how many threads ran), and chunks can run in
# parallel: numpy's Poisson sampler releases the GIL.
_REPLICATE_CHUNK = 64
_PARALLEL_MIN_DRAWS = 1 << 17
_MAX_WORKERS = 4

# Counter word 3 separates the purposes that share a (seed, stream) key, so that a table and a
# set of block weights drawn with the same seed are independent.
_PURPOSE_TABLE = 1
_PURPOSE_BLOCKS = 2
_PURPOSE_GAMMA = 3
_SALT_BLOCKS = 0x0B10_C4B1_0C45_0001


def stable_hash(text: str) -> int:
    """Hash a string to an unsigned 64-bit int that is the same in every process and run.

    Python's ``hash`` of a ``str`` is salted per process (``PYTHONHASHSEED``); this is
    ``blake2b`` with an 8-byte digest, read little-endian. Use it to derive a resampling
    ``stream`` from a segment name.

    Args:
        text: Any string, e.g. a segment key ``"lang=de"``.

    Returns:
        An int in ``[0, 2**64)``.

    Example:
        >>> stable_hash("lang=de") == stable_hash("lang=de")
        True
    """
    if not isinstance(text, str):
        raise InvalidParameterError(
            f"stable_hash: text must be a str; got {type(text).__name__}, expected str. "
            "Convert the key with str() first."
        )
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def poisson_table_counts(
    counts: npt.ArrayLike, *, replicates: int, seed: int, stream: int
) -> npt.NDArray[np.int64]:
    """Draw Poisson bootstrap replicates of a table of cell counts.

    Replicate ``r`` of a cell with count ``n`` is a Poisson(n) draw: the resampled number of
    rows in that cell when every row gets a Poisson(1) weight. Cells with count 0 stay 0.

    Args:
        counts: 1-D non-negative integer counts, one per cell, in a canonical order.
        replicates: Number of bootstrap replicates (>= 1).
        seed: The run's seed (any int; reduced modulo 2**64).
        stream: Independent stream for this table, e.g. ``stable_hash(segment)``.

    Large tables are drawn on up to 4 threads (numpy's Poisson sampler releases the GIL); the
    result is the same with or without them.

    Returns:
        int64 array of shape ``(replicates, cells)``. The first R rows do not depend on how
        many replicates were requested.

    Raises:
        InvalidParameterError: ``counts`` is not a 1-D array of non-negative integers, or
            ``replicates`` < 1.

    Example:
        >>> table = poisson_table_counts([5, 0, 12], replicates=3, seed=0, stream=7)
        >>> table.shape, int(table[:, 1].max())
        ((3, 3), 0)
    """
    cells = check_counts_array(counts, subject="poisson_table_counts: counts")
    n_rep = check_positive_int(replicates, subject="poisson_table_counts: replicates")
    key = (check_seed(seed), check_seed(stream, subject="poisson_table_counts: stream"))
    nonzero = np.flatnonzero(cells)
    dense = nonzero.size == cells.size
    # Every entry of a dense table is written below; only sparse tables need zeros first.
    out = (
        np.empty((n_rep, cells.size), dtype=np.int64)
        if dense
        else np.zeros((n_rep, cells.size), dtype=np.int64)
    )
    if nonzero.size == 0:
        return out
    lam = cells[nonzero].astype(np.float64)

    def draw(chunk: int) -> None:
        start = chunk * _REPLICATE_CHUNK
        stop = min(start + _REPLICATE_CHUNK, n_rep)
        rng = _generator(key, chunk=chunk, purpose=_PURPOSE_TABLE)
        values = rng.poisson(lam, size=(stop - start, lam.size))
        if dense:
            out[start:stop] = values
        else:
            out[start:stop, nonzero] = values

    _run_chunks(draw, n_rep=n_rep, draws=n_rep * lam.size)
    return out


def gamma_table_weights(
    shapes: npt.ArrayLike, *, replicates: int, seed: int, stream: int
) -> npt.NDArray[np.float64]:
    """Draw Bayesian-bootstrap weights of table cells: Gamma(shape) per (replicate, cell).

    Normalized, independent Gamma(a_i) draws are one Dirichlet(a) draw, so a replicate is a
    posterior draw of the cells' probabilities under a Dirichlet(counts + prior) model: pass
    ``shapes = counts + prior``. Metrics that are ratios of cell sums (precision, F1, their
    averages) need no normalization. Unlike a Poisson replicate, a cell with a small shape still
    varies continuously, so a prior on cells that were never observed gives them some mass.
    Cells with shape 0 get weight 0.

    Args:
        shapes: 1-D non-negative Gamma shapes, one per cell, in a canonical order.
        replicates: Number of replicates (>= 1).
        seed: The run's seed.
        stream: Independent stream for this table, e.g. ``stable_hash(segment)``.

    Returns:
        float64 array of shape ``(replicates, cells)``. The first R rows do not depend on how
        many replicates were requested.

    Raises:
        InvalidParameterError: ``shapes`` is not a 1-D array of finite non-negative numbers,
            or ``replicates`` < 1.

    Example:
        >>> w = gamma_table_weights([5.0, 0.0, 0.5], replicates=3, seed=0, stream=7)
        >>> w.shape, float(w[:, 1].max())
        ((3, 3), 0.0)
    """
    values = np.asarray(shapes, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InvalidParameterError(
            "gamma_table_weights: shapes must be a 1-D array of finite non-negative numbers; "
            f"got shape {values.shape}, expected (cells,) with every value >= 0."
        )
    n_rep = check_positive_int(replicates, subject="gamma_table_weights: replicates")
    key = (check_seed(seed), check_seed(stream, subject="gamma_table_weights: stream"))
    nonzero = np.flatnonzero(values)
    out = np.zeros((n_rep, values.size), dtype=np.float64)
    if nonzero.size == 0:
        return out
    alpha = values[nonzero]

    def draw(chunk: int) -> None:
        start = chunk * _REPLICATE_CHUNK
        stop = min(start + _REPLICATE_CHUNK, n_rep)
        rng = _generator(key, chunk=chunk, purpose=_PURPOSE_GAMMA)
        out[start:stop, nonzero] = rng.standard_gamma(alpha, size=(stop - start, alpha.size))

    _run_chunks(draw, n_rep=n_rep, draws=n_rep * alpha.size)
    return out


def block_weights(
    *, n_blocks: int, replicates: int, seed: int, stream: int = 0
) -> npt.NDArray[np.float64]:
    """Draw Poisson(1) bootstrap weights per (replicate, block).

    Use the same ``seed`` and ``stream`` for every segment so that all segments (and the
    overall total) see the same resample of the data, as a row-level bootstrap would.

    Args:
        n_blocks: Number of blocks rows were hashed into (see :func:`row_blocks`).
        replicates: Number of bootstrap replicates (>= 1).
        seed: The run's seed.
        stream: Optional independent stream (default 0).

    Returns:
        Read-only float64 array of shape ``(replicates, n_blocks)`` of Poisson(1) counts.
        Every block-sum accumulator of a run asks for the same weights (that is the point:
        one resample for all), so up to 16 MB of them are drawn once and shared.

    Raises:
        InvalidParameterError: ``n_blocks`` or ``replicates`` < 1.
    """
    blocks = check_positive_int(n_blocks, subject="block_weights: n_blocks")
    n_rep = check_positive_int(replicates, subject="block_weights: replicates")
    key = (check_seed(seed), check_seed(stream, subject="block_weights: stream"))
    if n_rep * blocks > _CACHED_WEIGHTS_MAX:
        weights = _draw_block_weights(blocks, n_rep, key)
        weights.setflags(write=False)
        return weights
    # One drawer at a time: a caller on another thread that arrives while the weights are
    # being drawn waits for them instead of drawing them again.
    with _CACHE_LOCK:
        return _cached_block_weights(blocks, n_rep, key)


#: Weights up to this many values (16 MB) are kept for the next caller; at most two sets.
_CACHED_WEIGHTS_MAX = 1 << 21
_CACHE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cached_block_weights(blocks: int, n_rep: int, key: tuple[int, int]) -> npt.NDArray[np.float64]:
    out = _draw_block_weights(blocks, n_rep, key)
    out.setflags(write=False)
    return out


def _draw_block_weights(blocks: int, n_rep: int, key: tuple[int, int]) -> npt.NDArray[np.float64]:
    out = np.empty((n_rep, blocks), dtype=np.float64)

    def draw(chunk: int) -> None:
        start = chunk * _REPLICATE_CHUNK
        stop = min(start + _REPLICATE_CHUNK, n_rep)
        rng = _generator(key, chunk=chunk, purpose=_PURPOSE_BLOCKS)
        out[start:stop] = rng.poisson(1.0, size=(stop - start, blocks))

    _run_chunks(draw, n_rep=n_rep, draws=n_rep * blocks)
    return out


def row_blocks(row_ids: npt.ArrayLike, *, seed: int, n_blocks: int) -> npt.NDArray[np.int64]:
    """Assign rows to bootstrap blocks by hashing their ids.

    ``block = splitmix64(row_id XOR splitmix64(seed XOR salt)) mod n_blocks``, computed with
    wrapping uint64 arithmetic. A row's block depends only on ``(seed, row_id)``, so it is the
    same however the rows are batched, sharded or ordered.

    Args:
        row_ids: 1-D integer row ids (stable across runs).
        seed: The run's seed.
        n_blocks: Number of blocks (>= 1).

    Returns:
        int64 array of block indices in ``[0, n_blocks)``, one per row.

    Raises:
        InvalidParameterError: ``row_ids`` is not a 1-D integer array, or ``n_blocks`` < 1.

    Example:
        >>> row_blocks([0, 1, 2], seed=1, n_blocks=10).dtype
        dtype('int64')
    """
    blocks = check_positive_int(n_blocks, subject="row_blocks: n_blocks")
    ids = _check_row_ids(row_ids, subject="row_blocks: row_ids")
    hashed = row_hash(ids, seed=check_seed(seed), salt=_SALT_BLOCKS)
    blocks_of: npt.NDArray[np.int64] = (hashed % np.uint64(blocks)).astype(np.int64)
    return blocks_of


def block_replicate_means(
    block_sums: npt.ArrayLike, block_counts: npt.ArrayLike, weights: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Bootstrap replicates of a mean kept as per-block sums: ``(w @ sums) / (w @ counts)``.

    Args:
        block_sums: Sum of the per-row quantity in each block, shape ``(n_blocks,)``, or
            ``(n_blocks, k)`` for k quantities at once.
        block_counts: Rows in each block, shape ``(n_blocks,)``.
        weights: Block weights from :func:`block_weights`, shape ``(replicates, n_blocks)``.

    Returns:
        float64 array of shape ``(replicates,)`` (or ``(replicates, k)``); NaN where a
        replicate gave zero weight to every row (drop those with :func:`percentile_interval`).

    Raises:
        InvalidParameterError: The shapes do not line up.
    """
    sums = np.asarray(block_sums, dtype=np.float64)
    counts = np.asarray(block_counts, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if counts.ndim != 1 or sums.ndim not in (1, 2) or w.ndim != 2:
        raise InvalidParameterError(
            f"block_replicate_means: wrong dimensions; got sums {sums.shape}, counts "
            f"{counts.shape}, weights {w.shape}, expected (n_blocks[, k]), (n_blocks,), "
            "(replicates, n_blocks)."
        )
    if not sums.shape[0] == counts.shape[0] == w.shape[1]:
        raise InvalidParameterError(
            f"block_replicate_means: block counts differ; got sums {sums.shape}, counts "
            f"{counts.shape}, weights {w.shape}, expected the same n_blocks in all three."
        )
    numerator = w @ sums
    denominator = w @ counts
    if numerator.ndim == 2:
        denominator = denominator[:, None]
    result = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def percentile_interval(
    replicate_values: npt.ArrayLike, *, confidence: float
) -> tuple[float, float]:
    """Percentile bootstrap interval: the (1-c)/2 and (1+c)/2 quantiles of the replicates.

    NaN replicates (e.g. a segment that got no rows in a replicate) are ignored; if every
    replicate is NaN the interval is ``(nan, nan)``. The p-quantile is read at position
    p (R + 1) of the R sorted replicates (numpy's ``"weibull"`` rule), which is unbiased in the
    tails; numpy's default reads them slightly inward, which makes the interval too narrow at a
    few hundred replicates.

    Continuous metrics use the t-expanded BCa interval instead (``compval.stats.bca_intervals``);
    the Bayesian table bootstrap of non-linear classification metrics uses this one (see
    docs/statistics.md for the measured coverage of both).

    Args:
        replicate_values: 1-D statistic values, one per replicate.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)`` as Python floats.

    Raises:
        InvalidParameterError: ``replicate_values`` is not 1-D or ``confidence`` is outside
            (0, 1).

    Example:
        >>> percentile_interval([1.0, 2.0, 3.0, float("nan")], confidence=0.5)
        (1.0, 3.0)
    """
    level = check_confidence(confidence, subject="percentile_interval: confidence")
    values = np.asarray(replicate_values, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidParameterError(
            f"percentile_interval: replicate_values must be 1-D; got shape {values.shape}, "
            "expected (replicates,)."
        )
    low, high = percentile_intervals(values[None, :], confidence=level)
    return (float(low[0]), float(high[0]))


def percentile_intervals(
    replicate_values: npt.NDArray[np.float64], *, confidence: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`percentile_interval` for many statistics at once, one per row.

    Args:
        replicate_values: Shape ``(statistics, replicates)``; NaN replicates are ignored.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)`` arrays of length ``statistics``; NaN for a row with no finite value.
    """
    from compval.stats._intervals import bootstrap_quantiles, percentile_levels

    values = np.asarray(replicate_values, dtype=np.float64)
    levels = percentile_levels(confidence, values.shape[0])
    bounds = bootstrap_quantiles(values, levels)
    return bounds[:, 0], bounds[:, 1]


def row_hash(row_ids: npt.NDArray[np.int64], *, seed: int, salt: int) -> npt.NDArray[np.uint64]:
    """splitmix64 hash of ``(seed, salt, row_id)`` as uint64 (private helper; inputs trusted)."""
    key = np.uint64(_splitmix64_int((seed ^ salt) & _MASK64))
    ids = np.ascontiguousarray(row_ids, dtype=np.int64).view(np.uint64)
    return _splitmix64(ids ^ key)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # uint64 arrays wrap modulo 2**64 by design here; errstate keeps numpy from warning about
    # it should it ever do so for 0-d inputs.
    with np.errstate(over="ignore"):
        z = x + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return mixed


def _splitmix64_int(x: int) -> int:
    z = (x + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _generator(key: tuple[int, int], *, chunk: int, purpose: int) -> np.random.Generator:
    bit_generator = np.random.Philox(
        key=np.array(key, dtype=np.uint64),
        counter=np.array([0, 0, chunk, purpose], dtype=np.uint64),
    )
    return np.random.Generator(bit_generator)


def _run_chunks(draw: Callable[[int], None], *, n_rep: int, draws: int) -> None:
    chunks = range((n_rep + _REPLICATE_CHUNK - 1) // _REPLICATE_CHUNK)
    workers = min(_MAX_WORKERS, os.cpu_count() or 1, len(chunks))
    if workers < 2 or draws < _PARALLEL_MIN_DRAWS:
        for chunk in chunks:
            draw(chunk)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compval-bootstrap") as pool:
        # list() re-raises any exception from a worker here.
        list(pool.map(draw, chunks))


def _check_row_ids(row_ids: npt.ArrayLike, *, subject: str) -> npt.NDArray[np.int64]:
    ids = np.asarray(row_ids)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise InvalidParameterError(
            f"{subject}: must be a 1-D integer array; got dtype {ids.dtype} and shape "
            f"{ids.shape}, expected int64[n]. Use stable integer ids (e.g. the row number)."
        )
    if ids.dtype == np.uint64 and ids.size and int(ids.max()) > np.iinfo(np.int64).max:
        raise InvalidParameterError(
            f"{subject}: id too large; got {int(ids.max())}, expected ids < 2**63."
        )
    return ids.astype(np.int64, copy=False)
