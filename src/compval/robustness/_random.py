"""Per-row randomness that does not depend on the batch: a function of (seed, key, row id).

Rows are grouped into fixed blocks of consecutive row ids (``block = row_id // rows_per_block``,
the block's size fixed by the row width); each block's values come from numpy's PCG64 generator
seeded with (seed, key, block). A row's values therefore depend only on (seed, key, row id,
element), whatever the batch size, shard or order (tested in
tests/robustness/test_perturbations.py), and drawing them costs what numpy's generator costs
(a few ns per value: the perturbation must stay cheap next to a model's inference). Batches
stream in row order, so a small cache of recent blocks makes each block drawn about once.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from compval.stats import stable_hash
from compval.types import Array

__all__ = ["RowRandom"]

#: Values per block at most (8 MB of float64), so wide rows (images) keep blocks small.
_BLOCK_VALUES = 1 << 20
_MAX_BLOCK_ROWS = 4096
_CACHED_BLOCKS = 4


class RowRandom:
    """Uniforms and standard normals per (row id, element), for one (seed, key)."""

    def __init__(self, seed: int, key: str) -> None:
        self._seed = seed & ((1 << 64) - 1)
        self._key = key
        self._cache: OrderedDict[tuple[str, str, int, int], Array] = OrderedDict()

    def _block(self, kind: str, stream: str, block: int, rows: int, width: int) -> Array:
        cache_key = (kind, stream, block, width)
        found = self._cache.get(cache_key)
        if found is not None:
            self._cache.move_to_end(cache_key)
            return found
        rng = np.random.default_rng(
            [self._seed, stable_hash(f"{self._key}/{stream}/{kind}/{width}"), block]
        )
        values: Array = (
            rng.random((rows, width))
            if kind == "uniform"
            else rng.standard_normal((rows, width), dtype=np.float32)
        )
        # Read-only: batches get views of it, and a perturbation writing into one would change
        # the values later batches (and other rows) see.
        values.flags.writeable = False
        self._cache[cache_key] = values
        if len(self._cache) > _CACHED_BLOCKS:
            self._cache.popitem(last=False)
        return values

    def _draw(self, kind: str, stream: str, row_ids: Array, width: int) -> Array:
        ids = np.asarray(row_ids, dtype=np.int64)
        rows = max(1, min(_MAX_BLOCK_ROWS, _BLOCK_VALUES // max(width, 1)))
        blocks = ids // rows
        first, last = int(blocks[0]), int(blocks[-1])
        n = ids.shape[0]
        if first == last and int(ids[-1]) - int(ids[0]) == n - 1:
            # Consecutive ids in one block (the usual batch): a slice, no gather.
            start = int(ids[0]) - first * rows
            return self._block(kind, stream, first, rows, width)[start : start + n]
        if first == last and (blocks == first).all():
            return self._block(kind, stream, first, rows, width)[ids - first * rows]
        out = np.empty((ids.shape[0], width), dtype=np.float64 if kind == "uniform" else np.float32)
        for block in np.unique(blocks):
            mask = blocks == block
            b = int(block)
            out[mask] = self._block(kind, stream, b, rows, width)[ids[mask] - b * rows]
        return out

    def uniforms(self, row_ids: Array, width: int, stream: str = "") -> Array:
        """float64 (rows, width) uniforms in [0, 1) (read-only: copy before writing)."""
        return self._draw("uniform", stream, row_ids, width)

    def normals(self, row_ids: Array, width: int, stream: str = "") -> Array:
        """float32 (rows, width) standard normals (read-only: copy before writing)."""
        return self._draw("normal", stream, row_ids, width)
