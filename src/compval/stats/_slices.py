"""Weak-slice discovery: where does the candidate lose accuracy against the reference?

Method. Every feature is discretized: numeric features into ``n_bins`` quantile bins (plus a
"missing" bin for NaN), categorical features by value. A *slice* is one bin or category of one
feature, or the intersection of two such conditions on two different features. For each slice
the search counts, over its rows, the four paired outcomes (both right, reference only,
candidate only, both wrong) and derives the reference and candidate accuracy, the accuracy
delta ``candidate - reference``, Tango's score interval for the delta, and the exact McNemar
p-value (see :mod:`compval.stats._paired`).

Search. All single-feature slices with at least ``min_rows`` rows are scored; then the
``pair_features`` features whose worst single slice is worst are crossed pairwise. Slices that
cover every row, and pairs that contain exactly the rows of one of their two single slices,
are not tested (they repeat another hypothesis). The p-values of *all* tested slices (singles
and pairs) are adjusted together with Holm's method: the adjusted p-value is the correction
for having searched. Caveats: which pairs are searched depends on the single-slice results,
which Holm over the tested family does not account for; intervals are per slice, not
simultaneous; and the top slices, chosen for their low delta, overstate their drop (the
winner's curse). Judge a slice by its adjusted p-value and interval, not its rank.

Streaming and determinism. ``update`` stores, per row, one small integer code per feature
(uint8, or uint16 when a categorical feature has more than 255 values) and a 2-bit outcome,
(one byte) plus a 64-bit hash for subsampling: about ``rows x (features + 9)`` bytes, e.g.
59 MB for a million rows and 50 features, and up to twice ``max_rows`` rows between two
subsampling passes. Quantile edges of numeric features are fixed from the first
``edge_rows`` rows in row order (rows are buffered until then), so results never depend on the
batch size. Beyond ``max_rows`` rows the search keeps the rows with the ``max_rows`` smallest
``hash(seed, row_id)``: a deterministic subsample, independent of order and sharding, reported
by an ApproximationWarning. ``merge`` concatenates two searches with identical edges;
shard workers should start from ``empty()`` of a search whose edges are fixed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from compval._lazy import DeferredModule
from compval.errors import (
    ApproximationWarning,
    EmptyAccumulatorError,
    IncompatibleMergeError,
    InvalidParameterError,
)
from compval.results import SliceResult
from compval.stats._arrays import unique_inverse
from compval.stats._checks import check_confidence, check_count, check_positive_int, check_seed
from compval.stats._decisions import adjust_pvalues
from compval.stats._paired import mcnemar_pvalues, tango_bound, tango_intervals
from compval.stats._resampling import _check_row_ids, row_hash

# scipy.special takes a quarter of a second to import (scipy.stats nearly a second, so it is
# not used on the path of a run): loaded on first use, not with compval.
special: Any = DeferredModule("scipy.special")

__all__ = ["SliceResult", "SliceSearch"]

SliceMetric = Literal["accuracy_drop", "flip_rate"]

_SALT_SUBSAMPLE = 0x511C_E5EA_2C40_0002
_MAX_CATEGORIES = 1 << 16
_MAX_BINS = 255
_ROW_CHUNK = 1 << 16
_DENSE_PAIR_LIMIT = 1 << 22
# Outcome code per row: 2 * reference_correct + candidate_correct.
_BOTH_WRONG, _CAND_ONLY, _REF_ONLY, _BOTH_RIGHT = 0, 1, 2, 3

Codes = npt.NDArray[np.unsignedinteger[Any]]


class SliceSearch:
    """Mergeable accumulator that finds slices of the data where the candidate is weakest.

    Args:
        feature_names: One name per feature column, unique.
        categorical: One flag per feature: True for categorical (any values, compared as
            strings), False for numeric (binned by quantiles; NaN is "missing").
        n_bins: Quantile bins per numeric feature, 1 to 255 (default 4: quartiles). Tied
            quantiles merge bins.
        edge_rows: Rows (in row order) from which the numeric bin edges are fixed.
        max_rows: Rows kept; beyond it a deterministic hash subsample is kept.
        seed: Seed of the subsample hash.

    Raises:
        InvalidParameterError: Invalid names, flags or sizes.

    Example:
        >>> import numpy as np
        >>> search = SliceSearch(["x", "kind"], categorical=[False, True], n_bins=2)
        >>> x = np.arange(200.0)
        >>> kind = np.where(x % 2 == 0, "even", "odd")
        >>> ref = np.ones(200, dtype=bool)
        >>> cand = ~((x >= 100) & (kind == "odd"))
        >>> search.update([x, kind], np.arange(200), ref, cand)
        >>> search.result(min_rows=20)[0].description
        'x >= 99.5 & kind = odd'
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        categorical: Sequence[bool],
        n_bins: int = 4,
        edge_rows: int = 4096,
        max_rows: int = 1_000_000,
        seed: int = 0,
    ) -> None:
        names = tuple(feature_names)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise InvalidParameterError(
                f"SliceSearch: feature_names must be non-empty strings; got {names!r}, "
                "expected e.g. ['age', 'country']."
            )
        if len(set(names)) != len(names):
            duplicated = sorted({name for name in names if names.count(name) > 1})
            raise InvalidParameterError(
                f"SliceSearch: feature_names must be unique; got duplicates {duplicated}, "
                "expected one name per column."
            )
        flags = tuple(categorical)
        if len(flags) != len(names) or not all(isinstance(f, bool | np.bool_) for f in flags):
            raise InvalidParameterError(
                f"SliceSearch: categorical must hold one bool per feature; got {flags!r} for "
                f"{len(names)} features, expected {len(names)} True/False flags."
            )
        bins = check_positive_int(n_bins, subject="SliceSearch: n_bins")
        if bins > _MAX_BINS:
            raise InvalidParameterError(
                f"SliceSearch: n_bins too large; got {n_bins!r}, expected at most {_MAX_BINS}. "
                "Slices of a few rows each are not useful; 4 to 10 bins is typical."
            )
        self._names = names
        self._categorical = tuple(bool(f) for f in flags)
        self._n_bins = bins
        self._edge_rows = check_positive_int(edge_rows, subject="SliceSearch: edge_rows")
        self._max_rows = check_positive_int(max_rows, subject="SliceSearch: max_rows")
        self._seed = check_seed(seed, subject="SliceSearch: seed")
        self._numeric = [j for j, cat in enumerate(self._categorical) if not cat]
        self._edges: list[npt.NDArray[np.float64]] | None = None
        self._categories: list[dict[str, int]] = [{} for _ in names]
        # Rows waiting for the numeric edges: raw numeric values, then the other per-row data.
        self._pending_values: list[npt.NDArray[np.float64]] = []
        self._pending: list[tuple[Codes, npt.NDArray[np.uint8], npt.NDArray[np.uint64]]] = []
        self._stored: list[tuple[Codes, npt.NDArray[np.uint8], npt.NDArray[np.uint64]]] = []
        self._rows_seen = 0

    # -- introspection ---------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature names, in column order."""
        return self._names

    @property
    def rows_seen(self) -> int:
        """Rows passed to ``update`` (over all merged searches)."""
        return self._rows_seen

    @property
    def edges(self) -> dict[str, tuple[float, ...]] | None:
        """Interior quantile edges per numeric feature, or None until they are fixed."""
        if self._edges is None:
            return None
        return {
            self._names[j]: tuple(float(e) for e in edges)
            for j, edges in zip(self._numeric, self._edges, strict=True)
        }

    def empty(self) -> SliceSearch:
        """A search with the same configuration, edges and categories, and no rows."""
        clone = SliceSearch(
            self._names,
            categorical=self._categorical,
            n_bins=self._n_bins,
            edge_rows=self._edge_rows,
            max_rows=self._max_rows,
            seed=self._seed,
        )
        clone._edges = None if self._edges is None else list(self._edges)
        clone._categories = [dict(mapping) for mapping in self._categories]
        return clone

    def state(self) -> dict[str, Any]:
        """Everything the search holds, as plain values and arrays (for ``from_state``).

        The configuration, the numeric edges once fixed, the category codes, and the binned
        (or still pending) rows: a search rebuilt from it merges and answers exactly as this
        one does.
        """
        return {
            "config": {
                "feature_names": list(self._names),
                "categorical": list(self._categorical),
                "n_bins": self._n_bins,
                "edge_rows": self._edge_rows,
                "max_rows": self._max_rows,
                "seed": self._seed,
            },
            "rows_seen": self._rows_seen,
            "edges": None if self._edges is None else [e.copy() for e in self._edges],
            "categories": [dict(mapping) for mapping in self._categories],
            "pending": [
                {"values": v.copy(), "codes": c.copy(), "outcome": o.copy(), "hashes": h.copy()}
                for v, (c, o, h) in zip(self._pending_values, self._pending, strict=True)
            ],
            "stored": [
                {"codes": c.copy(), "outcome": o.copy(), "hashes": h.copy()}
                for c, o, h in self._stored
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SliceSearch:
        """Rebuild a search from ``state()``."""
        config = state["config"]
        search = cls(
            config["feature_names"],
            categorical=config["categorical"],
            n_bins=config["n_bins"],
            edge_rows=config["edge_rows"],
            max_rows=config["max_rows"],
            seed=config["seed"],
        )
        search._rows_seen = int(state["rows_seen"])
        edges = state["edges"]
        search._edges = None if edges is None else [np.asarray(e, np.float64) for e in edges]
        search._categories = [
            {str(k): int(v) for k, v in mapping.items()} for mapping in state["categories"]
        ]
        search._pending_values = [np.asarray(p["values"], np.float64) for p in state["pending"]]
        search._pending = [
            (
                np.asarray(p["codes"]),
                np.asarray(p["outcome"], np.uint8),
                np.asarray(p["hashes"], np.uint64),
            )
            for p in state["pending"]
        ]
        search._stored = [
            (
                np.asarray(p["codes"]),
                np.asarray(p["outcome"], np.uint8),
                np.asarray(p["hashes"], np.uint64),
            )
            for p in state["stored"]
        ]
        return search

    # -- accumulation ----------------------------------------------------------------------
    def update(
        self,
        features: npt.ArrayLike | Sequence[npt.ArrayLike],
        row_ids: npt.ArrayLike,
        ref_correct: npt.ArrayLike,
        cand_correct: npt.ArrayLike,
    ) -> None:
        """Add one batch of rows.

        Args:
            features: A 2-D array ``(rows, features)`` or a sequence of 1-D columns, in the
                order of ``feature_names``. Numeric columns must convert to float.
            row_ids: Stable integer id per row (drives the deterministic subsample).
            ref_correct: Whether the reference was right, per row (bool or 0/1).
            cand_correct: Whether the candidate was right, per row (bool or 0/1).

        Raises:
            InvalidParameterError: Wrong number of columns, mismatched lengths, a numeric
                column that is not numeric, correctness flags that are not 0/1, or a
                categorical feature with more than 65536 distinct values.
        """
        columns = self._split_columns(features)
        ids = _check_row_ids(row_ids, subject="SliceSearch.update: row_ids")
        n = ids.size
        ref = _check_flags(ref_correct, n, subject="SliceSearch.update: ref_correct")
        cand = _check_flags(cand_correct, n, subject="SliceSearch.update: cand_correct")
        for j, column in enumerate(columns):
            if column.shape != (n,):
                raise InvalidParameterError(
                    f"SliceSearch.update: feature {self._names[j]!r} has shape {column.shape}; "
                    f"got {n} row ids, expected a 1-D column of {n} values."
                )
        numeric = [_as_numeric(columns[j], self._names[j]) for j in self._numeric]
        # (rows, numeric features) in column-major order, so that each column is written
        # contiguously; every later use is elementwise or per column. float32 features stay
        # float32 (binned against float32 thresholds with the same outcome, ``_bin``): half
        # the memory passes of float64.
        single = bool(numeric) and all(column.dtype == np.float32 for column in numeric)
        values = np.empty((len(numeric), n), dtype=np.float32 if single else np.float64).T
        for k, column in enumerate(numeric):
            values[:, k] = column
        uniques = {
            j: _unique_text(column) for j, column in enumerate(columns) if self._categorical[j]
        }
        for j, (unique, _) in uniques.items():
            new = sum(1 for value in unique if value not in self._categories[j])
            if len(self._categories[j]) + new > _MAX_CATEGORIES:
                raise InvalidParameterError(
                    f"SliceSearch.update: feature {self._names[j]!r} has too many categories; "
                    f"got {len(self._categories[j]) + new}, expected at most "
                    f"{_MAX_CATEGORIES}. Drop id-like columns or bin them first."
                )
        if n == 0:
            return
        # Feature-major (rows, features), like ``values``: each column is written and read
        # contiguously, here, in ``_bin`` and in the search.
        codes = np.zeros((len(self._names), n), dtype=np.uint16).T
        for j, (unique, inverse) in uniques.items():
            mapping = self._categories[j]
            lut = np.array([mapping.setdefault(str(v), len(mapping)) for v in unique], np.uint16)
            codes[:, j] = lut[inverse.ravel()]
        outcome = (2 * ref.astype(np.uint8) + cand.astype(np.uint8)).astype(np.uint8)
        hashes = row_hash(ids, seed=self._seed, salt=_SALT_SUBSAMPLE)
        self._rows_seen += n
        if self._edges is None:
            self._pending_values.append(values)
            self._pending.append((codes, outcome, hashes))
            if sum(len(v) for v in self._pending_values) >= self._edge_rows:
                self._edges = self._edges_from_pending(self._pending_values)
                self._flush_pending()
        else:
            self._store(self._bin(values, codes, self._edges), outcome, hashes)

    def merge(self, other: SliceSearch) -> SliceSearch:
        """Return a search over the rows of both; neither operand changes.

        Rows of ``self`` come first. If only one side has fixed its edges, the other side's
        buffered rows are binned with them; a merge then equals a single pass when ``self``
        holds the earliest rows.

        Raises:
            IncompatibleMergeError: Different configuration, or different numeric edges.
        """
        if not isinstance(other, SliceSearch) or self._config() != other._config():
            raise IncompatibleMergeError(
                "SliceSearch.merge: configurations differ; got "
                f"{getattr(other, '_config', lambda: type(other).__name__)()!r}, expected "
                f"{self._config()!r}. Merge searches built with the same arguments."
            )
        if (
            self._edges is not None
            and other._edges is not None
            and not all(
                np.array_equal(a, b) for a, b in zip(self._edges, other._edges, strict=True)
            )
        ):
            raise IncompatibleMergeError(
                f"SliceSearch.merge: numeric bin edges differ; got {other.edges!r}, expected "
                f"{self.edges!r}. Create shard searches with empty() from one whose edges "
                "are fixed."
            )
        merged = self.empty()
        merged._rows_seen = self._rows_seen + other._rows_seen
        if merged._edges is None:
            merged._edges = None if other._edges is None else list(other._edges)
        luts = [
            _merge_categories(merged._categories[j], other._categories[j])
            for j in range(len(self._names))
        ]
        own_pending = list(zip(self._pending_values, self._pending, strict=True))
        other_pending = [
            (values, (_remap(codes, luts), outcome, hashes))
            for values, (codes, outcome, hashes) in zip(
                other._pending_values, other._pending, strict=True
            )
        ]
        other_stored = [
            (_remap(codes, luts), outcome, hashes) for codes, outcome, hashes in other._stored
        ]
        if merged._edges is None:
            # Neither side has fixed its edges, so neither has stored rows yet.
            pending = own_pending + other_pending
            merged._pending_values = [values for values, _ in pending]
            merged._pending = [rest for _, rest in pending]
            if sum(len(values) for values in merged._pending_values) >= self._edge_rows:
                merged._edges = merged._edges_from_pending(merged._pending_values)
                merged._flush_pending()
        else:
            edges = merged._edges
            merged._stored = (
                list(self._stored)
                + [(merged._bin(v, codes, edges), o, h) for v, (codes, o, h) in own_pending]
                + other_stored
                + [(merged._bin(v, codes, edges), o, h) for v, (codes, o, h) in other_pending]
            )
        merged._prune(final=False)
        return merged

    # -- result ----------------------------------------------------------------------------
    def result(
        self,
        *,
        min_rows: int = 30,
        confidence: float = 0.95,
        top_k: int = 10,
        pair_features: int = 16,
        metric: SliceMetric = "accuracy_drop",
        margin: float | None = None,
    ) -> list[SliceResult]:
        """Search the slices and return the weakest ones.

        With ``margin`` (the gate's allowed accuracy drop, e.g. 0.05 for ``max_drop: 0.05``)
        the answer is selection-valid: the rows are split by a hash of (seed, row id); the
        search runs on a third of them and ranks slices by the evidence that their drop
        exceeds the margin (the upper end of their Tango interval, lowest first); a sub-slice
        whose drop is not significantly worse than the rest of its parent slice is replaced by
        the parent (the parent explains it); and every reported number (n, accuracies, delta,
        interval, McNemar p-value, Holm-adjusted across the ``top_k`` confirmed slices) comes
        from the other two thirds, which the search never saw. Without ``margin``: the
        whole-data search below.

        Args:
            min_rows: Slices with fewer rows are not tested.
            confidence: Confidence level of each slice's interval.
            top_k: Number of slices returned.
            pair_features: Number of features (worst first) whose slices are crossed in pairs.
            metric: ``"accuracy_drop"`` ranks by ``delta`` (most negative first);
                ``"flip_rate"`` ranks by the correct-to-wrong flip rate (highest first).
                Ties are broken by p-value, then by feature and value order.
            margin: The gate's allowed drop: search on a third, confirm on the rest (above).

        Returns:
            Up to ``top_k`` slices, weakest first (empty if no slice has ``min_rows`` rows).

        Raises:
            EmptyAccumulatorError: No rows were added.
            InvalidParameterError: Invalid arguments.

        Warns:
            ApproximationWarning: More than ``max_rows`` rows were seen; a subsample was used.
        """
        minimum = check_positive_int(min_rows, subject="SliceSearch.result: min_rows")
        level = check_confidence(confidence, subject="SliceSearch.result: confidence")
        keep = check_positive_int(top_k, subject="SliceSearch.result: top_k")
        crossed = check_count(pair_features, subject="SliceSearch.result: pair_features")
        if metric not in ("accuracy_drop", "flip_rate"):
            raise InvalidParameterError(
                f"SliceSearch.result: unknown metric; got {metric!r}, expected "
                "'accuracy_drop' or 'flip_rate'."
            )
        codes, outcome, hashes, edges = self._materialize()
        total = len(outcome)
        if total == 0:
            raise EmptyAccumulatorError(
                "SliceSearch.result: no rows; got 0 rows, expected at least one update() with "
                "rows. Call update() before result()."
            )
        if self._rows_seen > total:
            warnings.warn(
                f"SliceSearch: searched a deterministic subsample of {total} of "
                f"{self._rows_seen} rows (max_rows={self._max_rows}).",
                ApproximationWarning,
                stacklevel=2,
            )
        sizes = self._code_sizes(edges)
        if margin is not None:
            return self._search_and_confirm(
                codes, outcome, hashes, edges, sizes,
                margin=float(margin), min_rows=minimum, confidence=level, top_k=keep,
                pair_features=crossed, metric=metric,
            )  # fmt: skip
        slice_ids, table = self._tested(codes, outcome, sizes, minimum, crossed, metric)
        if len(table) == 0:
            return []
        return self._rank(slice_ids, table, edges, metric, level, keep)

    def _tested(
        self,
        codes: Codes,
        outcome: npt.NDArray[np.uint8],
        sizes: npt.NDArray[np.int64],
        minimum: int,
        crossed: int,
        metric: SliceMetric,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Every tested slice (ids: feature f, code f, feature g, code g) and its counts."""
        total = len(outcome)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        # Feature-major: the counts read one feature at a time, strided in (rows, features).
        by_feature = np.ascontiguousarray(codes.T)
        single = _single_counts(by_feature, outcome, sizes)
        single_n = single.sum(axis=1)
        feature_of = np.repeat(np.arange(len(sizes)), sizes)
        code_of = np.arange(int(sum(sizes))) - offsets[feature_of]
        tested = (single_n >= minimum) & (single_n < total)
        score = _score(single, metric)
        # Slice identity columns: (feature f, code f, feature g, code g); -1 for singles.
        unused = np.full(int(tested.sum()), -1)
        ids = [np.stack([feature_of[tested], code_of[tested], unused, unused], axis=1)]
        tables = [single[tested]]
        worst = np.full(len(sizes), np.inf)
        np.minimum.at(worst, feature_of[tested], score[tested])
        ranked = [j for j in np.argsort(worst, kind="stable") if np.isfinite(worst[j])]
        chosen = sorted(int(j) for j in ranked[:crossed])
        # Each crossed feature's codes with the outcome folded in (code * 4 + outcome), once
        # per feature rather than once per pair.
        with_outcome = {g: _with_outcome(by_feature[g], int(sizes[g]), outcome) for g in chosen[1:]}
        # Each first feature's codes scaled by a second feature's key width, once per width
        # (numeric features mostly share one): a pair's keys are then one addition away.
        scaled: dict[tuple[int, int], npt.NDArray[np.integer[Any]]] = {}
        for f, g in itertools.combinations(chosen, 2):
            width = int(sizes[g]) * 4
            if (f, width) not in scaled:
                scaled[f, width] = np.multiply(
                    by_feature[f], width, dtype=_key_dtype(int(sizes[f]) * width)
                )
            pair_ids, pair_table = _pair_counts(
                scaled[f, width], with_outcome[g], int(sizes[f]), int(sizes[g])
            )
            code_f, code_g = pair_ids // sizes[g], pair_ids % sizes[g]
            pair_n = pair_table.sum(axis=1)
            useful = (
                (pair_n >= minimum)
                & (pair_n < single_n[offsets[f] + code_f])
                & (pair_n < single_n[offsets[g] + code_g])
            )
            count = int(useful.sum())
            ids.append(
                np.stack([np.full(count, f), code_f[useful], np.full(count, g), code_g[useful]], 1)
            )
            tables.append(pair_table[useful])
        return np.concatenate(ids).astype(np.int64), np.concatenate(tables).astype(np.int64)

    def _search_and_confirm(
        self,
        codes: Codes,
        outcome: npt.NDArray[np.uint8],
        hashes: npt.NDArray[np.uint64],
        edges: list[npt.NDArray[np.float64]],
        sizes: npt.NDArray[np.int64],
        *,
        margin: float,
        min_rows: int,
        confidence: float,
        top_k: int,
        pair_features: int,
        metric: SliceMetric,
    ) -> list[SliceResult]:
        """Search on a third of the rows, confirm on the rest (see ``result``)."""
        # A third of the rows searches, two thirds confirm: confirming needs more power than
        # finding a slice whose drop is large enough to matter. Bits 32-63 of the row hash,
        # independent of the subsampling (which keeps the smallest hashes).
        confirm = (hashes >> np.uint64(32)) % np.uint64(3) != 0
        search_codes, search_outcome = _select_rows(codes, ~confirm), outcome[~confirm]
        if len(search_outcome) == 0 or confirm.sum() == 0:
            return []
        # A third of the rows: a slice must reach a third of min_rows to be searched.
        search_minimum = max(1, min_rows // 3)
        slice_ids, table = self._tested(
            search_codes, search_outcome, sizes, search_minimum, pair_features, metric
        )
        if len(table) == 0:
            return []
        n = table.sum(axis=1)
        b, c = table[:, _REF_ONLY], table[:, _CAND_ONLY]
        z = float(special.ndtri(0.5 + confidence / 2.0))
        high = tango_bound(b, c, n, z=z, upper=True)
        f, cf, g, cg = slice_ids.T
        order = np.lexsort(
            (
                self._canonical_rank(g, cg),
                g,
                self._canonical_rank(f, cf),
                f,
                _score(table, metric),
                high + margin,
            )
        )
        single_at = {(int(f[i]), int(cf[i])): int(i) for i in np.flatnonzero(g < 0)}
        chosen: list[int] = []
        for i in order:
            if len(chosen) == top_k:
                break
            pick = int(i)
            if g[i] >= 0:
                # A sub-slice whose drop is not significantly worse than the rest of its parent
                # is explained by the parent: report the broader slice instead (once). Small
                # sub-slices of a damaged slice otherwise win on chance-inflated drops.
                for parent in ((int(f[i]), int(cf[i])), (int(g[i]), int(cg[i]))):
                    j = single_at.get(parent)
                    if j is not None and not _worse_than_rest(table[i], table[j], z):
                        pick = j
                        break
            if pick not in chosen:
                chosen.append(pick)
        picked = slice_ids[chosen]
        confirmed = _tables_for(picked, codes, outcome, sizes, rows=confirm)
        keep = confirmed.sum(axis=1) > 0
        results = self._rank(
            picked[keep], confirmed[keep], edges, metric, confidence, top_k, order_given=True
        )
        # The family searched is every slice tested on the search half.
        return [dataclasses.replace(r, slices_searched=len(table)) for r in results]

    # -- internals -------------------------------------------------------------------------
    def _config(self) -> tuple[object, ...]:
        return (
            self._names,
            self._categorical,
            self._n_bins,
            self._edge_rows,
            self._max_rows,
            self._seed,
        )

    def _split_columns(
        self, features: npt.ArrayLike | Sequence[npt.ArrayLike]
    ) -> list[npt.NDArray[Any]]:
        if isinstance(features, np.ndarray):
            if features.ndim != 2:
                raise InvalidParameterError(
                    f"SliceSearch.update: features must be 2-D (rows, features) or a list of "
                    f"columns; got shape {features.shape}, expected (n, {len(self._names)})."
                )
            columns = [features[:, j] for j in range(features.shape[1])]
        elif isinstance(features, Sequence) and not isinstance(features, str | bytes):
            columns = [np.asarray(column) for column in features]
        else:
            raise InvalidParameterError(
                f"SliceSearch.update: features must be a 2-D array or a list of columns; got "
                f"{type(features).__name__}, expected one of those."
            )
        if len(columns) != len(self._names):
            raise InvalidParameterError(
                f"SliceSearch.update: wrong number of feature columns; got {len(columns)}, "
                f"expected {len(self._names)} ({', '.join(self._names)})."
            )
        return columns

    def _edges_from_pending(
        self, pending: list[npt.NDArray[np.float64]]
    ) -> list[npt.NDArray[np.float64]]:
        # float64 whatever the features' type: the quantiles are interpolated in float64.
        # Feature-major (features, rows), as update() stores them, and only the first
        # edge_rows rows: a row-major concatenation read every pending row across the columns
        # (39 of the 45 ms this took on 200,000 rows of 50 features). The quantiles are the
        # same numbers: each column holds the same values either way.
        parts: list[npt.NDArray[Any]] = []
        left = self._edge_rows
        for part in pending:
            if left <= 0:
                break
            parts.append(part[:left].T)
            left -= parts[-1].shape[1]
        values = (
            np.concatenate(parts, axis=1, dtype=np.float64)
            if parts
            else np.empty((len(self._numeric), 0))
        )
        probs = np.linspace(0.0, 1.0, self._n_bins + 1)[1:-1]
        edges: list[npt.NDArray[np.float64]] = []
        if values.size and probs.size and np.isfinite(values).all():
            # Every column finite: one quantile call over all columns computes each column's
            # quantiles exactly as a call per column does (partition, then interpolate).
            table = np.quantile(values, probs, axis=1)
            return [np.unique(table[:, k]).astype(np.float64) for k in range(values.shape[0])]
        for k in range(values.shape[0]):
            column = values[k]
            finite = column[np.isfinite(column)]
            if finite.size and probs.size:
                edges.append(np.unique(np.quantile(finite, probs)).astype(np.float64))
            else:
                edges.append(np.empty(0, dtype=np.float64))
        return edges

    def _flush_pending(self) -> None:
        assert self._edges is not None  # internal invariant: called right after fixing edges
        for values, (codes, outcome, hashes) in zip(
            self._pending_values, self._pending, strict=True
        ):
            self._store(self._bin(values, codes, self._edges), outcome, hashes)
        self._pending_values, self._pending = [], []

    def _bin(
        self, values: npt.NDArray[np.float64], codes: Codes, edges: list[npt.NDArray[np.float64]]
    ) -> Codes:
        if not self._numeric:
            return _narrow(codes.astype(np.uint16, copy=True))
        # Numeric codes fit a byte, so the categorical columns alone decide what ``_narrow``
        # would choose; deciding first saves a pass over every column.
        widest = max(
            (int(codes[:, j].max(initial=0)) for j, cat in enumerate(self._categorical) if cat),
            default=0,
        )
        binned = codes.astype(np.uint8 if widest <= np.iinfo(np.uint8).max else np.uint16)
        # All numeric columns at once: a value's bin is the number of edges <= it (what
        # searchsorted(side="right") gives); shorter edge lists are padded with NaN, which no
        # value reaches (+inf padding was reached by +inf values, whose code then fell past
        # the feature's codes). One vectorized comparison instead of a searchsorted per column.
        width = max((e.size for e in edges), default=0)
        padded = np.full((len(edges), width), np.nan)
        for k, e in enumerate(edges):
            padded[k, : e.size] = e
        if values.dtype == np.float32:
            padded = _float32_thresholds(padded)
        # uint8 holds every code (at most _MAX_BINS - 1 edges, so even the missing code is
        # below 256) and makes these passes several times cheaper than int64.
        code = np.zeros_like(values, dtype=np.uint8)  # values' memory order: no strided pass
        above = np.empty_like(values, dtype=np.bool_)
        with np.errstate(invalid="ignore"):
            for k in range(width):
                np.greater_equal(values, padded[None, :, k], out=above)
                code += above.view(np.uint8)
        missing = np.isnan(values)
        if missing.any():
            sizes = np.array([e.size for e in edges], dtype=np.uint8)
            code = np.where(missing, sizes[None, :] + 1, code)
        numeric = self._numeric
        if numeric[-1] - numeric[0] + 1 == len(numeric):
            # Contiguous numeric columns (the usual layout: features, then segment columns).
            binned[:, numeric[0] : numeric[-1] + 1] = code
        else:
            for k, j in enumerate(numeric):
                binned[:, j] = code[:, k]
        return binned

    def _store(
        self, codes: Codes, outcome: npt.NDArray[np.uint8], hashes: npt.NDArray[np.uint64]
    ) -> None:
        self._stored.append((_narrow(codes), outcome, hashes))
        self._prune(final=False)

    def _prune(self, *, final: bool) -> None:
        stored = sum(len(outcome) for _, outcome, _ in self._stored)
        # Pruning lazily at 2x amortizes the partition; the final cut happens in result().
        if stored <= (self._max_rows if final else 2 * self._max_rows):
            return
        codes, outcome, hashes = _concat(self._stored)
        kept = np.sort(np.argpartition(hashes, self._max_rows - 1)[: self._max_rows])
        self._stored = [(codes[kept], outcome[kept], hashes[kept])]

    def _materialize(
        self,
    ) -> tuple[Codes, npt.NDArray[np.uint8], npt.NDArray[np.uint64], list[npt.NDArray[np.float64]]]:
        # Does not change self: buffered rows are binned with provisional edges.
        edges = self._edges
        parts = list(self._stored)
        if self._pending:
            if edges is None:
                edges = self._edges_from_pending(self._pending_values)
            parts += [
                (self._bin(values, codes, edges), outcome, hashes)
                for values, (codes, outcome, hashes) in zip(
                    self._pending_values, self._pending, strict=True
                )
            ]
        if edges is None:
            edges = [np.empty(0) for _ in self._numeric]
        if not parts:
            empty = np.zeros(0, np.uint8)
            return np.zeros((0, len(self._names)), np.uint8), empty, np.zeros(0, np.uint64), edges
        codes, outcome, hashes = _concat(parts)
        if len(outcome) > self._max_rows:
            kept = np.sort(np.argpartition(hashes, self._max_rows - 1)[: self._max_rows])
            codes, outcome, hashes = codes[kept], outcome[kept], hashes[kept]
        return codes, outcome, hashes, edges

    def _code_sizes(self, edges: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.int64]:
        sizes = np.empty(len(self._names), dtype=np.int64)
        for j in range(len(self._names)):
            if self._categorical[j]:
                sizes[j] = max(len(self._categories[j]), 1)
            else:
                sizes[j] = edges[self._numeric.index(j)].size + 2
        return sizes

    def _describe(
        self,
        feature: int,
        code: int,
        edges: list[npt.NDArray[np.float64]],
        category_names: dict[int, list[str]],
    ) -> str:
        name = self._names[feature]
        if self._categorical[feature]:
            # Names listed once per feature and result(): listing them for every description
            # made top_k descriptions cost top_k times the number of categories.
            if feature not in category_names:
                category_names[feature] = self._category_names(feature)
            return f"{name} = {category_names[feature][code]}"
        cuts = edges[self._numeric.index(feature)]
        if code == cuts.size + 1:
            return f"{name} is missing"
        if cuts.size == 0:
            return f"{name} is not missing"
        if code == 0:
            return f"{name} < {_number(cuts[0])}"
        if code == cuts.size:
            return f"{name} >= {_number(cuts[-1])}"
        return f"{name} in [{_number(cuts[code - 1])}, {_number(cuts[code])})"

    def _category_names(self, feature: int) -> list[str]:
        mapping = self._categories[feature]
        names = [""] * len(mapping)
        for value, code in mapping.items():
            names[code] = value
        return names

    def _canonical_rank(
        self, feature: npt.NDArray[np.int64], code: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        # Category codes follow first appearance, which depends on batching; ranks by the
        # sorted value do not, so ties are broken the same way for any batch size.
        rank: npt.NDArray[np.int64] = code.copy()
        for j in np.unique(feature[feature >= 0]):
            if self._categorical[j]:
                names = self._category_names(int(j))
                order = np.empty(len(names), dtype=np.int64)
                order[np.argsort(np.array(names), kind="stable")] = np.arange(len(names))
                mask = feature == j
                rank[mask] = order[code[mask]]
        return rank

    def _rank(
        self,
        slice_ids: npt.NDArray[np.int64],
        table: npt.NDArray[np.int64],
        edges: list[npt.NDArray[np.float64]],
        metric: SliceMetric,
        confidence: float,
        top_k: int,
        *,
        order_given: bool = False,
    ) -> list[SliceResult]:
        n = table.sum(axis=1)
        b, c = table[:, _REF_ONLY], table[:, _CAND_ONLY]
        p_values = mcnemar_pvalues(b, c)
        adjusted = adjust_pvalues(p_values, method="holm")
        score = _score(table, metric)
        f, cf, g, cg = slice_ids.T
        order = (
            np.arange(len(table))[:top_k]
            if order_given
            else np.lexsort(
                (
                    self._canonical_rank(g, cg),
                    g,
                    self._canonical_rank(f, cf),
                    f,
                    p_values,
                    score,
                )
            )[:top_k]
        )
        z = float(special.ndtri(0.5 + confidence / 2.0))
        low, high = tango_intervals(b[order], c[order], n[order], z=z)
        results = []
        category_names: dict[int, list[str]] = {}
        for rank, i in enumerate(order):
            parts = [self._describe(int(f[i]), int(cf[i]), edges, category_names)]
            names = [self._names[int(f[i])]]
            if g[i] >= 0:
                parts.append(self._describe(int(g[i]), int(cg[i]), edges, category_names))
                names.append(self._names[int(g[i])])
            rows = int(n[i])
            ref_acc = (table[i, _REF_ONLY] + table[i, _BOTH_RIGHT]) / rows
            cand_acc = (table[i, _CAND_ONLY] + table[i, _BOTH_RIGHT]) / rows
            results.append(
                SliceResult(
                    description=" & ".join(parts),
                    features=tuple(names),
                    n=rows,
                    reference_accuracy=float(ref_acc),
                    candidate_accuracy=float(cand_acc),
                    delta=float((c[i] - b[i]) / rows),
                    ci=(float(low[rank]), float(high[rank])),
                    confidence=confidence,
                    p_value=float(p_values[i]),
                    p_value_adjusted=float(adjusted[i]),
                    flip_correct_to_wrong_rate=float(b[i] / rows),
                    flip_wrong_to_correct_rate=float(c[i] / rows),
                    slices_searched=len(table),
                )
            )
        return results


def _key_dtype(upper: int) -> type[np.integer[Any]]:
    # Keys below 2**16 are built in uint16: numpy's passes over small integers are several
    # times faster than over int64, and bincount takes them (not uint64: it needs a safe cast).
    return np.uint16 if upper <= 1 << 16 else np.intp


def _single_counts(
    by_feature: Codes, outcome: npt.NDArray[np.uint8], sizes: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Outcome counts of every single slice, (sum(sizes), 4), feature after feature.

    One feature at a time keeps the temporaries to a few arrays of one row each.
    """
    parts = []
    for codes, size in zip(by_feature, sizes, strict=True):
        keys = np.multiply(codes, 4, dtype=_key_dtype(int(size) * 4))
        keys += outcome
        parts.append(np.bincount(keys, minlength=int(size) * 4).reshape(-1, 4))
    return np.concatenate(parts).astype(np.int64, copy=False)


def _with_outcome(
    codes: Codes, size: int, outcome: npt.NDArray[np.uint8]
) -> npt.NDArray[np.integer[Any]]:
    """``codes * 4 + outcome``, in the smallest key type that holds it."""
    keyed = np.multiply(codes, 4, dtype=_key_dtype(size * 4))
    keyed += outcome
    return keyed


def _pair_counts(
    scaled_first: npt.NDArray[np.integer[Any]],
    second: npt.NDArray[np.integer[Any]],
    first_size: int,
    second_size: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Slice ids ``code_first * second_size + code_second`` that occur, and their counts.

    ``scaled_first`` is the first feature's codes times ``second_size * 4`` (in a key type
    that holds ``first_size * second_size * 4``) and ``second`` the second feature's
    ``_with_outcome`` (code * 4 + outcome), so the key
    ``(code_first * second_size + code_second) * 4 + outcome`` is one addition.
    """
    keys = scaled_first + second.astype(scaled_first.dtype, copy=False)
    bound = first_size * second_size * 4
    # Every key is below ``bound``: a small table needs no pass to find the largest key.
    upper = bound if bound <= _DENSE_PAIR_LIMIT else (int(keys.max()) + 1 if keys.size else 0)
    if upper <= max(_DENSE_PAIR_LIMIT, 8 * len(keys)):
        upper += -upper % 4
        dense = np.bincount(keys, minlength=upper).reshape(-1, 4)
        present = np.flatnonzero(dense.sum(axis=1))
        return present.astype(np.int64), dense[present]
    # Sparse path for high-cardinality pairs: only the combinations that occur.
    unique, counts = np.unique(keys, return_counts=True)
    slices, inverse = np.unique(unique // 4, return_inverse=True)
    table = np.zeros((slices.size, 4), dtype=np.int64)
    np.add.at(table, (inverse.ravel(), unique % 4), counts)
    return slices.astype(np.int64), table


def _worse_than_rest(sub: npt.NDArray[np.int64], parent: npt.NDArray[np.int64], z: float) -> bool:
    """Is the sub-slice's accuracy delta significantly below that of the rest of its parent?

    Two independent paired deltas (the sub-slice and the parent's other rows), compared with a
    normal approximation; the variance of a paired delta is ((b + c) / n - delta^2) / n.
    """
    rest = parent - sub
    deltas, variances = [], []
    for t in (sub, rest):
        n = int(t.sum())
        if n == 0:
            return True
        d = (int(t[_CAND_ONLY]) - int(t[_REF_ONLY])) / n
        deltas.append(d)
        variances.append(max((int(t[_CAND_ONLY]) + int(t[_REF_ONLY])) / n - d * d, 1.0 / n) / n)
    return deltas[0] - deltas[1] < -z * math.sqrt(variances[0] + variances[1])


def _tables_for(
    slice_ids: npt.NDArray[np.int64],
    codes: Codes,
    outcome: npt.NDArray[np.uint8],
    sizes: npt.NDArray[np.int64],
    *,
    rows: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """Outcome counts (k, 4) of the given slices on the rows in ``rows`` (a mask).

    The mask is applied per slice rather than by copying the selected rows' codes first: a
    few slices are counted, and the copy of every feature cost more than counting them.
    """
    out = np.zeros((len(slice_ids), 4), dtype=np.int64)
    for k, (f, cf, g, cg) in enumerate(slice_ids):
        member = codes[:, f] == cf
        if g >= 0:
            member &= codes[:, g] == cg
        member &= rows
        out[k] = np.bincount(outcome[member], minlength=4)[:4]
    return out


def _score(table: npt.NDArray[np.int64], metric: SliceMetric) -> npt.NDArray[np.float64]:
    # Lower score = weaker slice, for both metrics.
    n = np.maximum(table.sum(axis=1), 1)
    if metric == "accuracy_drop":
        return np.asarray((table[:, _CAND_ONLY] - table[:, _REF_ONLY]) / n, dtype=np.float64)
    return np.asarray(-table[:, _REF_ONLY] / n, dtype=np.float64)


def _merge_categories(target: dict[str, int], source: dict[str, int]) -> npt.NDArray[np.uint16]:
    lut = np.zeros(max(len(source), 1), dtype=np.uint16)
    for value, code in source.items():
        lut[code] = target.setdefault(value, len(target))
    return lut


def _remap(codes: Codes, luts: list[npt.NDArray[np.uint16]]) -> Codes:
    out = codes.astype(np.uint16, copy=True)
    for j, lut in enumerate(luts):
        if lut.size > 1 or lut[0] != 0:
            out[:, j] = lut[codes[:, j]]
    return _narrow(out)


def _select_rows(codes: Codes, mask: npt.NDArray[np.bool_]) -> Codes:
    """``codes[mask]``, feature-major like ``codes`` (each feature's column contiguous)."""
    picked: Codes = np.take(codes.T, np.flatnonzero(mask), axis=1).T
    return picked


def _narrow(codes: npt.NDArray[Any]) -> Codes:
    if codes.size == 0 or int(codes.max()) <= np.iinfo(np.uint8).max:
        return codes.astype(np.uint8, copy=False)
    return codes.astype(np.uint16, copy=False)


def _concat(
    parts: list[tuple[Codes, npt.NDArray[np.uint8], npt.NDArray[np.uint64]]],
) -> tuple[Codes, npt.NDArray[np.uint8], npt.NDArray[np.uint64]]:
    # Codes stay feature-major (the search reads one feature at a time).
    return (
        np.concatenate([p[0].T for p in parts], axis=1).T,
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _check_flags(values: npt.ArrayLike, n: int, *, subject: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(values)
    if array.shape != (n,):
        raise InvalidParameterError(
            f"{subject}: wrong shape; got {array.shape}, expected ({n},), one flag per row id."
        )
    if array.dtype == np.bool_:
        return array
    if n and (not np.issubdtype(array.dtype, np.number) or not np.all((array == 0) | (array == 1))):
        raise InvalidParameterError(
            f"{subject}: not a correctness flag; got dtype {array.dtype} with values other "
            "than 0/1, expected bool per row."
        )
    return array.astype(bool)


def _float32_thresholds(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """For each float64 edge e, the smallest float32 t >= e (NaN stays NaN).

    For every float32 x (inf and NaN included), ``x >= t`` exactly when ``x >= e``: float32
    values can be binned without converting them to float64.
    """
    with np.errstate(over="ignore"):
        thresholds = edges.astype(np.float32)
    low = thresholds.astype(np.float64) < edges  # rounded down (NaN compares False)
    thresholds[low] = np.nextafter(thresholds[low], np.float32(np.inf))
    return thresholds


def _unique_text(column: npt.NDArray[Any]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """``np.unique(column.astype(str), return_inverse=True)``, without a str per row for text.

    A column of Python str objects (how text segment columns arrive) is grouped as objects
    (``unique_inverse``); numpy would convert every row to fixed-width text and sort it.
    Other columns (numbers, mixed objects whose text may coincide) take numpy's path.
    """
    if column.dtype == object:
        unique, inverse = unique_inverse(column)
        # numpy's fixed-width text drops trailing NULs: such values keep numpy's path.
        if all(type(v) is str and not v.endswith("\x00") for v in unique):
            return unique.astype(np.str_), inverse
    unique, inverse = np.unique(column.astype(str), return_inverse=True)
    return unique, inverse.reshape(-1)


def _as_numeric(column: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    if column.dtype.kind in "biuf":
        # Cast to float64 where it is stored: the same conversion, without a copy.
        return column
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"SliceSearch.update: numeric feature {name!r} holds non-numeric values; got dtype "
            f"{column.dtype}, expected numbers (NaN for missing). Mark it categorical=True."
        ) from exc


def _number(value: float) -> str:
    text = f"{value:.4g}"
    if math.isfinite(value) and not any(ch in text for ch in ".en"):
        text += ".0"
    return text
