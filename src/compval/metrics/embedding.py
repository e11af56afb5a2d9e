"""Metrics of embedding models (``task: embedding``): what users of text encoders check.

* ``EmbeddingFidelity`` (block sums): each model's mean embedding norm (``embedding_norm``,
  neither direction better) and the smallest per-row cosine (``min_cosine_similarity``). The
  mean per-row cosine is ``cosine_similarity`` from ``OutputFidelity``.
* ``CosineQuantiles``: the 1st percentile of the per-row cosine (``p1_cosine_similarity``) from
  a log-spaced histogram of ``1 - cosine``, with a distribution-free order-statistic interval.
* ``NeighbourAgreement``: for each row, its k nearest neighbours (cosine) among the evaluated
  rows under each model; ``neighbour_agreement[k=K]`` is the mean share of the k neighbours
  both models agree on, ``neighbour_set_agreement[k=K]`` the share of rows whose k neighbours
  are exactly the same set; ``similarity_spearman_score`` is the Spearman rank correlation of
  the two models' cosine similarities over a deterministic sample of row pairs.
* ``RetrievalQuality``: with relevance judgements (qrels), each query row ranks the document
  rows by cosine under each model: ``retrieval_recall_score[k=K]``, ``ndcg_score[k=K]`` and
  ``mrr_score[k=K]`` for both models, with paired deltas (bootstrap over queries).

The last two need every embedding of the run: they keep float32 copies in a buffer and
compute at ``estimates`` time, in blocks of rows so that memory is rows x block, never
rows x rows. With relevance judgements one buffer serves both: ``RetrievalQuality`` given
``neighbours`` (NeighbourAgreement's configuration) reports the neighbour metrics too, from
the same rows, so each row's embeddings are kept once. Retrieval is exact, so it keeps every
row: beyond its ``max_rows`` (``RETRIEVAL_MAX_ROWS`` by default) it stops the run with a
``DataError`` as soon as the rows are seen, rather than exhaust memory or rank a part of the
documents. ``NeighbourAgreement`` is exact up to ``max_rows`` rows; beyond, it keeps the
``max_rows`` rows with the smallest hash of (seed, row id) (a bottom-k sample: deterministic,
mergeable, independent of batching). In a sample of m of N rows a row's k nearest neighbours
lie about as far as its k N / m nearest among all rows, so the agreement at k is estimated by
the sample's agreement at k m / N, interpolated between integers (its error is measured in
``tests/metrics/test_embedding_metrics.py`` and documented in docs/tasks.md). Given a
``notes`` list (the run's notes), either accumulator records there when it sampled.

Ties between similarities are broken by row id (lower first), so results never depend on row
order or on how the run was split. Intervals of per-row means use the block bootstrap of
``_base`` (BCa); neighbour agreement treats rows as independent, which they are not quite
(neighbourhoods overlap): its interval is a guide, not a guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from typing_extensions import Self

from compval.errors import DataError, IncompatibleMergeError
from compval.metrics._base import (
    Accumulator,
    BlockSumsAccumulator,
    Derived,
    MetricEstimate,
    PairedRows,
    Resampling,
)
from compval.metrics._segments import SegmentTable
from compval.metrics.continuous import histogram_quantile
from compval.stats import row_hash
from compval.types import Array

__all__ = [
    "RETRIEVAL_MAX_ROWS",
    "CosineQuantiles",
    "EmbeddingFidelity",
    "EmbeddingRows",
    "NeighbourAgreement",
    "RetrievalQuality",
    "nearest_neighbours",
    "spearman_correlation",
]

#: Elements of one block of similarities (rows x block): 16M float32, 64 MiB.
BLOCK_ELEMENTS = 1 << 24
#: Default cap on the rows RetrievalQuality keeps: both models' float32 embeddings of each
#: row, 3 GB at 384 dimensions (6 GB at 768) per candidate.
RETRIEVAL_MAX_ROWS = 1_000_000
_SALT_SAMPLE = 0xE3BE_DD16_0000_0001


@dataclass(frozen=True, slots=True)
class EmbeddingRows(PairedRows):
    """``PairedRows`` plus each row's id as text (what relevance judgements refer to)."""

    ids: Array | None = None


def _row_ids_text(rows: PairedRows) -> Array:
    ids = getattr(rows, "ids", None)
    if ids is None:
        ids = rows.row_ids.astype(str)
    return np.asarray(ids).astype(str).astype(object)


def _cosine_rows(ref: Array, cand: Array) -> Array:
    """Per-row cosine (1 when both rows are zero, 0 when only one is), as OutputFidelity."""
    a = np.einsum("ij,ij->i", ref, ref)
    b = np.einsum("ij,ij->i", cand, cand)
    denom = np.sqrt(a * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Array = np.where(
            denom > 0,
            np.einsum("ij,ij->i", ref, cand) / denom,
            np.where((a == 0) & (b == 0), 1.0, 0.0),
        )
    return np.clip(out, -1.0, 1.0)


class EmbeddingFidelity(BlockSumsAccumulator):
    """Mean embedding norm of each model and the smallest per-row cosine."""

    family = "embedding_fidelity"

    def columns(self) -> Sequence[str]:
        """Row count and the two models' norms."""
        return ("rows", "norm_ref", "norm_cand")

    def max_columns(self) -> Sequence[str]:
        """Minus the cosine (its maximum is minus the smallest cosine)."""
        return ("neg_cosine",)

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        mask = rows.finite
        ref = np.where(mask[:, None], rows.reference, 0.0)
        cand = np.where(mask[:, None], rows.candidate, 0.0)
        values = np.stack(
            [np.ones(ref.shape[0]), np.linalg.norm(ref, axis=1), np.linalg.norm(cand, axis=1)],
            axis=1,
        )
        return values, -_cosine_rows(ref, cand)[:, None], mask

    def derived(self) -> Sequence[Derived]:
        """embedding_norm of each model."""
        return (
            Derived(
                "embedding_norm",
                None,
                False,
                lambda s: (s[..., 1] / s[..., 0], s[..., 2] / s[..., 0]),
            ),
        )

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """The norms, then min_cosine_similarity per segment (no interval: an extreme)."""
        out = super().estimates(resampling)
        for s, name in enumerate(self.segments.names[: self._sums.shape[0]]):
            if self._rows[s] == 0 or not np.isfinite(self._maxima[s, 0]):
                continue
            out.append(
                MetricEstimate(
                    metric="min_cosine_similarity",
                    segment=name,
                    higher_is_better=True,
                    paired=True,
                    n=int(self._rows[s]),
                    reference=None,
                    candidate=float(-self._maxima[s, 0]),
                    delta=None,
                )
            )
        return out


class CosineQuantiles(BlockSumsAccumulator):
    """The 1st percentile of per-row cosine, from a histogram of ``1 - cosine``.

    Bins are log-spaced over [1e-12, 2] with 64 per decade (a quantile is within a factor
    10**(1/64), 3.7%, of ``1 - cosine``: for a p1 cosine of 0.99 that is +-0.0004). The
    interval is the distribution-free one of an order statistic: ranks from the binomial
    (n, 0.99) quantiles, read from the same histogram (``ci_method`` ``order_statistic``).
    """

    family = "cosine_quantiles"
    n_blocks: ClassVar[int] = 1
    EDGES: ClassVar[Array] = np.logspace(-12, np.log10(2.0), int(12.30103 * 64) + 1)
    Q: ClassVar[float] = 0.99

    def columns(self) -> Sequence[str]:
        """Histogram bins: underflow, log-spaced bins, overflow."""
        return tuple(f"bin{i}" for i in range(len(self.EDGES) + 1))

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        mask = rows.finite
        ref = np.where(mask[:, None], rows.reference, 0.0)
        cand = np.where(mask[:, None], rows.candidate, 0.0)
        gap = 1.0 - _cosine_rows(ref, cand)
        bins = np.searchsorted(self.EDGES, gap, side="right")
        return (bins[:, None], np.ones((gap.size, 1))), None, mask

    def derived(self) -> Sequence[Derived]:
        """p1_cosine_similarity (its interval is computed in ``estimates``)."""
        return (
            Derived(
                "p1_cosine_similarity",
                True,
                True,
                lambda s: 1.0 - histogram_quantile(s, self.EDGES, self.Q),
                bootstrap=False,
            ),
        )

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """The percentile per segment, with its order-statistic interval when resampling."""
        out = super().estimates(None)
        if resampling is None or resampling.replicates == 0:
            return out
        from scipy.stats import binom

        totals = self._sums.sum(axis=1)
        index = {name: s for s, name in enumerate(self.segments.names[: totals.shape[0]])}
        tail = (1.0 - resampling.confidence) / 2.0
        done = []
        for est in out:
            counts = totals[index[est.segment]]
            n = int(counts.sum())
            # Ranks (1-based) of the order statistics bounding the 0.99 quantile of 1 - cos.
            lo_rank = max(int(binom.ppf(tail, n, self.Q)), 1)
            hi_rank = min(int(binom.ppf(1.0 - tail, n, self.Q)) + 1, n)
            gap_lo = float(histogram_quantile(counts, self.EDGES, (lo_rank - 0.5) / n))
            gap_hi = float(histogram_quantile(counts, self.EDGES, min((hi_rank - 0.5) / n, 1.0)))
            ci = (1.0 - gap_hi, 1.0 - gap_lo)
            done.append(
                MetricEstimate(
                    **{f.name: getattr(est, f.name) for f in fields(est)}
                    | {
                        "ci": ci,
                        "ci_candidate": ci,
                        "confidence": resampling.confidence,
                        "ci_method": "order_statistic",
                    }
                )
            )
        return done


# -- per-row values -> means with block-bootstrap intervals ------------------------------------
class _RowMeans(BlockSumsAccumulator):
    """Means of per-row values per segment; ``metrics`` = ((name, higher, columns), ...).

    A metric with one column is paired; with two, it is (reference, candidate).
    """

    family = "row_means"

    def columns(self) -> Sequence[str]:
        width = max(max(cols) for _, _, cols in self.config["metrics"]) + 1
        return ("rows", *(f"v{j}" for j in range(width)))

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        n = rows.reference.shape[0]
        return np.concatenate([np.ones((n, 1)), rows.reference], axis=1), None, rows.finite

    def derived(self) -> Sequence[Derived]:
        out = []
        for name, higher, cols in self.config["metrics"]:
            if len(cols) == 1:
                out.append(Derived(name, higher, True, _mean_of(cols[0])))
            else:
                out.append(Derived(name, higher, False, _pair_of(cols[0], cols[1])))
        return out


def _mean_of(col: int) -> Any:
    return lambda s: s[..., 1 + col] / s[..., 0]


def _pair_of(a: int, b: int) -> Any:
    return lambda s: (s[..., 1 + a] / s[..., 0], s[..., 1 + b] / s[..., 0])


def _row_estimates(
    names: Sequence[Any],
    metrics: Sequence[tuple[str, bool, tuple[int, ...]]],
    values: Array,
    blocks: Array,
    segment_ids: Array,
    row_ids: Array,
    resampling: Resampling | None,
) -> list[MetricEstimate]:
    acc = _RowMeans(SegmentTable(names), metrics=tuple(metrics))
    if values.shape[0]:
        acc.update(
            PairedRows(
                reference=values,
                candidate=values,
                row_ids=row_ids,
                blocks=blocks,
                segment_ids=segment_ids,
                finite=np.ones(values.shape[0], dtype=bool),
            )
        )
    return acc.estimates(resampling)


# -- the buffer of embeddings ------------------------------------------------------------------
class _Buffer:
    """Float32 embeddings of both models with row ids, blocks, segment ids and text ids."""

    def __init__(self) -> None:
        self.parts: list[dict[str, Array]] = []

    def add(self, part: dict[str, Array]) -> None:
        if part["row_ids"].size:
            self.parts.append(part)

    def joined(self) -> dict[str, Array] | None:
        if not self.parts:
            return None
        keys = self.parts[0].keys()
        out = {
            k: np.concatenate([p[k] for p in self.parts], axis=1 if k == "segments" else 0)
            for k in keys
        }
        self.parts = [out]
        return out


def _part(rows: PairedRows, keep: Array | None = None) -> dict[str, Array]:
    mask = rows.finite if keep is None else rows.finite & keep
    return {
        "row_ids": rows.row_ids[mask].astype(np.int64),
        "blocks": rows.blocks[mask].astype(np.int64),
        "segments": rows.segment_ids[:, mask].astype(np.int64),
        "ref": rows.reference[mask].astype(np.float32),
        "cand": rows.candidate[mask].astype(np.float32),
        "ids": _row_ids_text(rows)[mask],
    }


def _remap(part: dict[str, Array], lut: Array) -> dict[str, Array]:
    return part | {"segments": lut[part["segments"]]}


def _sorted(part: dict[str, Array]) -> dict[str, Array]:
    order = np.argsort(part["row_ids"], kind="stable")
    return {k: (v[:, order] if k == "segments" else v[order]) for k, v in part.items()}


def _normalized(x: Array) -> Array:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    out: Array = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return out


def nearest_neighbours(queries: Array, corpus: Array, k: int, *, exclude_self: bool) -> Array:
    """Indices (queries, k) of each query's k most cosine-similar corpus rows, best first.

    Ties are broken by corpus index (lower first). With ``exclude_self`` the queries are the
    corpus and a row is never its own neighbour. Computed in blocks of query rows so memory is
    about ``BLOCK_ELEMENTS`` similarities whatever the corpus size.
    """
    q = _normalized(np.asarray(queries, dtype=np.float32))
    c = _normalized(np.asarray(corpus, dtype=np.float32))
    n_q, n_c = q.shape[0], c.shape[0]
    k = min(k, n_c - (1 if exclude_self else 0))
    out = np.empty((n_q, max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    step = max(1, BLOCK_ELEMENTS // max(n_c, 1))
    for start in range(0, n_q, step):
        stop = min(start + step, n_q)
        sims = q[start:stop] @ c.T
        if exclude_self:
            sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, part, axis=1)
        threshold = top.min(axis=1)
        # Ties at the k-th similarity: argpartition picks arbitrarily among them; rows with
        # more candidates than places are re-ranked by (similarity, index).
        tied = (sims >= threshold[:, None]).sum(axis=1) > k
        for r in np.flatnonzero(tied):
            cand = np.flatnonzero(sims[r] >= threshold[r])
            order = np.lexsort((cand, -sims[r, cand]))
            part[r] = cand[order[:k]]
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out[start:stop] = np.take_along_axis(part, order, axis=1)
    return out


def _overlap(a: Array, b: Array) -> Array:
    """Per row, how many indices two (rows, k) neighbour lists share (no repeats in a row)."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    out: Array = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return out


def _agreement(ref_nn: Array, cand_nn: Array, k: float) -> tuple[Array, Array]:
    """Per-row neighbour overlap share and same-set indicator at a possibly fractional k."""
    lo = max(1, math.floor(k))
    hi = max(1, math.ceil(k))
    weight = 0.0 if hi == lo else k - lo
    out = []
    for kk in (lo, hi) if weight else (lo,):
        share = _overlap(ref_nn[:, :kk], cand_nn[:, :kk]) / kk
        out.append((share, (share == 1.0).astype(np.float64)))
    if len(out) == 1:
        return out[0]
    (s0, e0), (s1, e1) = out
    return (1 - weight) * s0 + weight * s1, (1 - weight) * e0 + weight * e1


def _average_ranks(x: Array) -> Array:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    start = np.r_[True, xs[1:] != xs[:-1]]
    first = np.flatnonzero(start)
    counts = np.diff(np.r_[first, xs.size])
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks = np.empty(x.size)
    ranks[order] = avg[np.cumsum(start) - 1]
    return ranks


def spearman_correlation(x: Array, y: Array) -> float:
    """Spearman's rho: the Pearson correlation of average ranks (NaN when one is constant)."""
    rx, ry = _average_ranks(np.asarray(x, float)), _average_ranks(np.asarray(y, float))
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def sample_pairs(n: int, count: int, *, seed: int) -> tuple[Array, Array]:
    """Row pairs (i, j), i != j, of ``n`` rows in row-id order.

    All pairs i < j when there are at most ``count``, else ``count`` pairs drawn with a
    generator seeded by ``seed``.
    """
    if n * (n - 1) // 2 <= count:
        i, j = np.triu_indices(n, k=1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=count)
    j = (i + rng.integers(1, n, size=count)) % n
    return i, j


class _BufferAccumulator(Accumulator):
    """Shared mechanics of the accumulators that keep embeddings (merge, state, empty)."""

    def __init__(
        self, segments: SegmentTable, *, notes: list[str] | None = None, **config: Any
    ) -> None:
        super().__init__(segments)
        self.config = dict(config)
        #: Where to record an approximation (the run's notes); not part of the state.
        self.notes = notes
        self._buffer = _Buffer()
        #: Finite rows seen (the buffer may keep fewer).
        self._seen = 0

    def _keep(self, rows: PairedRows) -> Array | None:
        return None

    def update(self, rows: PairedRows) -> None:
        """Buffer the finite rows (float32)."""
        part = _part(rows, self._keep(rows))
        self._seen += int(part["row_ids"].size)
        self._buffer.add(part)
        self._compact()

    def _compact(self) -> None:
        """Bound the buffer (NeighbourAgreement keeps a bottom-k sample)."""

    def empty(self) -> Self:
        """Same configuration, a fresh segment table, no rows."""
        return type(self)(SegmentTable(), notes=self.notes, **self.config)

    def _note(self, text: str) -> None:
        if self.notes is not None and text not in self.notes:
            self.notes.append(text)

    def state(self) -> dict[str, Any]:
        """The buffered rows, their segment names and the configuration."""
        joined = self._buffer.joined()
        return {
            "segments": list(self.segments.names),
            "rows": {} if joined is None else {k: v.copy() for k, v in joined.items()},
            "seen": self._seen,
            "config": dict(self.config),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()``."""
        acc = cls(SegmentTable(state["segments"]), **state["config"])
        acc._seen = int(state.get("seen", 0))
        if state["rows"]:
            acc._buffer.add({k: np.array(v) for k, v in state["rows"].items()})
        return acc

    def merge(self, other: Self) -> Self:
        """Rows of both, segment ids re-mapped by name; neither input changes."""
        if type(other) is not type(self) or other.config != self.config:
            raise IncompatibleMergeError(
                f"cannot merge {type(self).__name__}({self.config}) with "
                f"{type(other).__name__}({getattr(other, 'config', None)})"
            )
        mine, theirs = self.state(), other.state()
        table = SegmentTable(mine["segments"])
        lut = table.align(theirs["segments"])
        out = type(self)(table, notes=self.notes, **self.config)
        out._seen = int(mine["seen"]) + int(theirs["seen"])
        if mine["rows"]:
            out._buffer.add(mine["rows"])
        if theirs["rows"]:
            out._buffer.add(_remap(theirs["rows"], lut))
        out._compact()
        return out

    def _rows(self) -> dict[str, Array] | None:
        joined = self._buffer.joined()
        return None if joined is None else _sorted(joined)


class NeighbourAgreement(_BufferAccumulator):
    """Neighbour agreement at each k and the Spearman correlation of pairwise similarities.

    Config: ``ks`` (k values), ``max_rows`` (exact up to this many rows; beyond, a bottom-k
    sample by hash of (seed, row id)), ``pairs`` (pairs for the Spearman correlation) and
    ``seed``. ``notes``: where to record that the agreement was estimated on a sample.
    """

    family = "neighbours"

    def __init__(
        self,
        segments: SegmentTable,
        *,
        ks: Sequence[int] = (10,),
        max_rows: int = 100_000,
        pairs: int = 100_000,
        seed: int = 0,
        notes: list[str] | None = None,
    ) -> None:
        super().__init__(
            segments,
            notes=notes,
            ks=tuple(int(k) for k in ks),
            max_rows=max_rows,
            pairs=pairs,
            seed=seed,
        )

    def _compact(self) -> None:
        limit = int(self.config["max_rows"])
        if sum(p["row_ids"].size for p in self._buffer.parts) <= 2 * limit:
            return
        self._shrink(limit)

    def _shrink(self, limit: int) -> None:
        joined = self._buffer.joined()
        if joined is None or joined["row_ids"].size <= limit:
            return
        self._buffer.parts = [_bottom_k(joined, limit, seed=int(self.config["seed"]))]

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """Agreement per k and segment (BCa over row blocks); Spearman overall."""
        self._shrink(int(self.config["max_rows"]))
        data = self._rows()
        if data is None:
            return []
        return _neighbour_estimates(
            self.segments.names, data, self._seen, self.config, resampling, self._note
        )


def _bottom_k(part: dict[str, Array], limit: int, *, seed: int) -> dict[str, Array]:
    """The ``limit`` rows with the smallest hash of (seed, row id).

    A deterministic sample that does not depend on batching, order or merging.
    """
    if part["row_ids"].size <= limit:
        return part
    h = row_hash(part["row_ids"], seed=seed, salt=_SALT_SAMPLE)
    keep = np.lexsort((part["row_ids"], h))[:limit]
    return {k: (v[:, keep] if k == "segments" else v[keep]) for k, v in part.items()}


def _neighbour_estimates(
    names: Sequence[Any],
    data: dict[str, Array],
    seen: int,
    config: Mapping[str, Any],
    resampling: Resampling | None,
    note: Any,
) -> list[MetricEstimate]:
    """NeighbourAgreement's metrics from rows sorted by row id (at most ``max_rows``)."""
    n = data["row_ids"].size
    # In a sample of n of the rows seen, a row's k nearest neighbours lie about as far as
    # its k * seen / n nearest among all rows; conversely agreement at k among all rows is
    # estimated by agreement at k * n / seen in the sample, interpolated linearly between
    # the neighbouring integers (at least 1). Measured error: docs/tasks.md.
    scale = n / max(seen, n)
    if seen > n:
        note(
            f"Neighbour agreement was estimated on a deterministic sample of {n:,} of the "
            f"{seen:,} rows (task.embedding.max_rows), at k x {n:,} / {seen:,}: an "
            "approximation whose measured error is in docs/tasks.md (it leans low by about "
            "0.02); the intervals do not include it."
        )
    ks = [k for k in config["ks"] if k < n]
    out: list[MetricEstimate] = []
    if ks:
        kmax = max(max(1, math.ceil(k * scale)) for k in ks)
        ref_nn = nearest_neighbours(data["ref"], data["ref"], kmax, exclude_self=True)
        cand_nn = nearest_neighbours(data["cand"], data["cand"], kmax, exclude_self=True)
        values = np.empty((n, 2 * len(ks)))
        metrics = []
        for j, k in enumerate(ks):
            share, same = _agreement(ref_nn, cand_nn, k * scale)
            values[:, 2 * j] = share
            values[:, 2 * j + 1] = same
            metrics += [
                (f"neighbour_agreement[k={k}]", True, (2 * j,)),
                (f"neighbour_set_agreement[k={k}]", True, (2 * j + 1,)),
            ]
        out += _row_estimates(
            names,
            metrics,
            values,
            data["blocks"],
            data["segments"],
            data["row_ids"],
            resampling,
        )
    if n >= 3:
        pi, pj = sample_pairs(n, int(config["pairs"]), seed=int(config["seed"]))
        ref, cand = _normalized(data["ref"]), _normalized(data["cand"])
        rho = spearman_correlation(
            np.einsum("ij,ij->i", ref[pi], ref[pj]), np.einsum("ij,ij->i", cand[pi], cand[pj])
        )
        out.append(
            MetricEstimate(
                metric="similarity_spearman_score",
                segment=None,
                higher_is_better=True,
                paired=True,
                n=int(pi.size),
                reference=None,
                candidate=None if np.isnan(rho) else rho,
                delta=None,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Qrels:
    """Relevance judgements: query id -> {document id: relevance > 0}."""

    judgements: Mapping[str, Mapping[str, float]]

    @classmethod
    def from_triples(cls, triples: Sequence[tuple[str, str, float]]) -> Qrels:
        """From (query id, document id, relevance) triples; relevance <= 0 is not relevant."""
        table: dict[str, dict[str, float]] = {}
        for q, d, rel in triples:
            table.setdefault(str(q), {})[str(d)] = float(rel)
        return cls(table)

    def triples(self) -> tuple[tuple[str, str, float], ...]:
        """Sorted (query, document, relevance) triples (the accumulator's configuration)."""
        return tuple(
            sorted((q, d, r) for q, docs in self.judgements.items() for d, r in docs.items())
        )


def retrieval_scores(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> Array:
    """recall@k, nDCG@k (linear gain, log2 discount) and MRR@k of one ranked list.

    Recall's denominator is every document the judgements call relevant (relevance > 0),
    as trec_eval counts it; the ideal DCG orders all judged relevances.
    """
    top = list(ranked[:k])
    gains = np.array([max(relevance.get(d, 0.0), 0.0) for d in top])
    relevant = sum(1 for r in relevance.values() if r > 0)
    discounts = 1.0 / np.log2(np.arange(2, len(top) + 2))
    dcg = float((gains * discounts).sum())
    ideal = np.sort(np.array([r for r in relevance.values() if r > 0]))[::-1][:k]
    idcg = float((ideal / np.log2(np.arange(2, ideal.size + 2))).sum())
    hits = np.flatnonzero(gains > 0)
    return np.array(
        [
            (gains > 0).sum() / relevant,
            dcg / idcg if idcg > 0 else 0.0,
            1.0 / (hits[0] + 1) if hits.size else 0.0,
        ]
    )


class RetrievalQuality(_BufferAccumulator):
    """recall@k, nDCG@k and MRR@k of both models, queries against documents by cosine.

    Config: ``qrels`` (sorted (query id, document id, relevance) triples), ``ks``,
    ``max_rows`` (the most rows it keeps; retrieval is exact, so it never samples) and
    ``neighbours`` (None, or NeighbourAgreement's ``ks``, ``max_rows``, ``pairs`` and ``seed``:
    then it reports the neighbour metrics too, from the same buffer, exactly as a
    NeighbourAgreement of that configuration would). A row whose id is a query id of the
    judgements is a query; every other row is a document. Queries without a relevant judged
    document are left out.

    Raises:
        DataError: (at ``update`` or ``merge``) more than ``max_rows`` finite rows; (at
            ``estimates``) two rows share an id, or no query id of the judgements is among
            the rows.
    """

    family = "retrieval"

    def __init__(
        self,
        segments: SegmentTable,
        *,
        qrels: Sequence[tuple[str, str, float]],
        ks: Sequence[int] = (10,),
        max_rows: int = RETRIEVAL_MAX_ROWS,
        neighbours: Mapping[str, Any] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        nn = None
        if neighbours is not None:
            nn = {
                "ks": tuple(int(k) for k in neighbours.get("ks", (10,))),
                "max_rows": int(neighbours.get("max_rows", 100_000)),
                "pairs": int(neighbours.get("pairs", 100_000)),
                "seed": int(neighbours.get("seed", 0)),
            }
        super().__init__(
            segments,
            notes=notes,
            qrels=tuple(qrels),
            ks=tuple(int(k) for k in ks),
            max_rows=int(max_rows),
            neighbours=nn,
        )
        self._qrels = Qrels.from_triples(self.config["qrels"])

    def _compact(self) -> None:
        """Stop at ``max_rows``: retrieval ranks every document, so it cannot sample."""
        limit = int(self.config["max_rows"])
        if self._seen <= limit:
            return
        dim = self._buffer.parts[0]["ref"].shape[1] if self._buffer.parts else 0
        raise DataError(
            f"Retrieval (task.embedding.qrels) ranks every document exactly, so it keeps both "
            f"models' embeddings of every row: {self._seen:,} rows exceed its limit of "
            f"{limit:,} (task.embedding.max_retrieval_rows; {limit * dim * 8 / 1e9:.1f} GB "
            f"per candidate at {dim} dimensions). Evaluate retrieval on a smaller corpus, "
            "or raise the limit on a machine with the memory."
        )

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """Per-query scores per k, means per segment with paired bootstrap intervals.

        With ``neighbours``, the neighbour metrics too.
        """
        data = self._rows()
        if data is None:
            return []
        out = self._retrieval_estimates(data, resampling)
        nn = self.config["neighbours"]
        if nn is not None:
            sample = _sorted(_bottom_k(data, nn["max_rows"], seed=nn["seed"]))
            out += _neighbour_estimates(
                self.segments.names, sample, self._seen, nn, resampling, self._note
            )
        return out

    def _retrieval_estimates(
        self, data: dict[str, Array], resampling: Resampling | None
    ) -> list[MetricEstimate]:
        ids = data["ids"].astype(str)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = unique[counts > 1][:3].tolist()
            raise DataError(
                f"Retrieval: row ids must be unique, but {dup} occur more than once; the "
                "relevance judgements could not tell the rows apart. Deduplicate the id column."
            )
        judged = self._qrels.judgements
        is_query = np.array([i in judged for i in ids], dtype=bool)
        if not is_query.any():
            raise DataError(
                "Retrieval: none of the judgements' query ids is an id of the evaluated rows; "
                f"e.g. {sorted(judged)[:3]} vs row ids {ids[:3].tolist()}. Check data.labels "
                "(the id column) and the qrels' query column."
            )
        q_rows = np.flatnonzero(
            is_query & np.array([any(r > 0 for r in judged.get(i, {}).values()) for i in ids])
        )
        d_rows = np.flatnonzero(~is_query)
        ks = list(self.config["ks"])
        kmax = max(ks)
        doc_ids = ids[d_rows]
        values = np.zeros((q_rows.size, 6 * len(ks)))
        for side, key in enumerate(("ref", "cand")):
            ranked = nearest_neighbours(
                data[key][q_rows], data[key][d_rows], kmax, exclude_self=False
            )
            for r, q in enumerate(q_rows):
                docs = doc_ids[ranked[r]].tolist()
                for j, k in enumerate(ks):
                    values[r, 6 * j + side :: 2][:3] = retrieval_scores(docs, judged[ids[q]], k)
        metrics = []
        for j, k in enumerate(ks):
            base = 6 * j
            metrics += [
                (f"retrieval_recall_score[k={k}]", True, (base, base + 1)),
                (f"ndcg_score[k={k}]", True, (base + 2, base + 3)),
                (f"mrr_score[k={k}]", True, (base + 4, base + 5)),
            ]
        return _row_estimates(
            self.segments.names,
            metrics,
            values,
            data["blocks"][q_rows],
            data["segments"][:, q_rows],
            data["row_ids"][q_rows],
            resampling,
        )
