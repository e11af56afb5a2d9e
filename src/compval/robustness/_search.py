"""Differential search: inputs near real rows where the candidate and the reference disagree.

Black-box, so it works for any runtime: the models are only called on batches of inputs.
Around each seed row x0 the search explores the box ``|x - x0| <= epsilon * std`` per feature
(L-infinity in per-feature standard deviations; optionally intersected with the observed
feature ranges). Every input tried is rounded to the seed rows' dtype and kept inside the box
exactly (a float32 rounding never steps out of it).

``evolution`` (the black-box search) works per seed row, with its own random generator seeded
from (seed, row id), so a seed's search does not depend on the other seeds, their order or
their number (as long as the models' outputs do not depend on the batch):

1. Probe: one random corner of the box per 25 evaluations of the budget (1 to 8; quantization
   errors grow with the input's magnitude, and a nearly linear model's extremes in the box are
   corners), scored by a continuous surrogate; the best corner starts the next phase. For
   classification the surrogate is the candidate's margin of its best other class over the
   reference's top class (on log scores when the outputs are probabilities, so that a
   saturated softmax still has a slope), plus half the reference's own margin (so that a flat,
   quantized candidate output still points towards the reference's decision boundary, near
   which disagreements live); for regression and generic outputs it is the largest absolute
   output difference.
2. Hierarchical sign search (SignHunter, Al-Dujaili and O'Reilly, ICLR 2020): flip the side of
   all free coordinates, then of each half, each quarter, ... each single coordinate (in a
   random order per sweep), keeping a flip that does not lower the surrogate; sweeps repeat
   while budget remains. For a locally linear surrogate this finds the sign of its gradient,
   hence the best corner, with at most 2d evaluations per sweep, coarse blocks first.
3. Boundary bisection (classification): when a probe or flip lands where the models agree on
   another class than at the point it came from, both decision boundaries cross the segment
   between the two points. Two models that are not identical cross it at different points,
   and between those points they disagree; bisection on the agreed class narrows the segment
   (one evaluation per halving, down to the dtype's precision) until a probe falls between
   the two crossings. This finds disagreements in slivers far thinner than random sampling
   or corner moves can hit.

``random`` samples the box uniformly (the baseline of benchmarks/bench_search.py), with the same
per-seed generators. ``pgd`` is the gradient search of :mod:`compval.robustness._pgd`.

Each seed gets at most ``budget`` search evaluations (one evaluation = one input run through both
models, the seed row itself included), and stops at its first confirmed disagreement. A
disagreement seen inside a search batch is confirmed by running it alone (one more evaluation,
counted): a dynamically quantized candidate computes its scales per batch, so a disagreement in
a batch might not replay alone. An unconfirmed one is not counted and the search goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compval.errors import InvalidParameterError
from compval.robustness._pgd import pgd_steps
from compval.robustness._stats import FeatureStats
from compval.stats import stable_hash
from compval.types import Array

__all__ = ["SEARCH_METHODS", "SearchOutcome", "differential_search"]

#: A batch predict function: the seed rows' structure (one array, or a mapping of inputs) with
#: m rows -> the compared outputs.
Predict = Callable[[Any], Array]

#: The methods :func:`differential_search` accepts.
SEARCH_METHODS = ("evolution", "random", "pgd")

#: Uniform samples per seed per round of ``random``.
_RANDOM_ROUND = 8
#: The probe: one random corner per _PROBE_DIVISOR evaluations of the budget, 1 to _MAX_PROBE.
_PROBE_DIVISOR = 25
_MAX_PROBE = 8
#: Weight of the reference's own margin in the classification surrogate.
_REFERENCE_WEIGHT = 0.5
#: Floor of probabilities before their log (the surrogate only; disagreement uses raw scores).
_LOG_FLOOR = 1e-30
#: Bisection steps at most per crossing (float64 halvings; float32 inputs stop earlier).
_MAX_BISECTION = 40
#: Each seed's generator is seeded with (seed, _STREAM, row id).
_STREAM = stable_hash("compval.robustness.differential_search")
_MASK64 = (1 << 64) - 1
_MASK63 = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Per seed row: whether a (confirmed) disagreement was found, and the case.

    Attributes:
        found: bool (K,).
        x: float64 (K, *row shape): the found input where ``found``, else the input with the
            best surrogate tried.
        size: float64 (K,): max |x - x0| / std over the perturbed features (0 for the seed).
        reference: (K, width) reference outputs at ``x``; candidate likewise.
        divergence: float64 (K,): max absolute output difference at ``x``.
        evaluations: int (K,): model evaluations spent per seed (including confirmation).
        unconfirmed: seeds without a found case that saw a disagreement inside a search batch
            that did not replay alone.
        inputs: With seeds given as a mapping of inputs: every input at ``x``, by name, in its
            own dtype and shape (``x`` is then the searched features, flattened and
            concatenated in the mapping's order). Empty for one array.
    """

    found: Array
    x: Array
    size: Array
    reference: Array
    candidate: Array
    divergence: Array
    evaluations: Array
    unconfirmed: int
    inputs: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Eval:
    """The models' verdict on m inputs."""

    score: Array  # (m,) surrogate: larger is closer to a disagreement
    hit: Array  # (m,) bool: the models disagree
    classes: Array  # (m, 2) the reference's and the candidate's class (classification)


class _Budget:
    """A seed's evaluations left; the driver spends them, the seed's search reads them."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


# A per-seed search: yields (m, d) inputs, receives their _Eval, returns when done or spent.
_SeedSearch = Generator[Array, _Eval, None]


class _Scorer:
    """Scores output rows; the surrogate's log transform is fixed once, from the seed rows."""

    def __init__(self, ref: Array, cand: Array, *, classification: bool, tolerance: float) -> None:
        self.classification = classification
        self.tolerance = tolerance
        self.log = (_is_probabilities(ref), _is_probabilities(cand))

    def __call__(self, ref: Array, cand: Array) -> _Eval:
        m = ref.shape[0]
        if not self.classification:
            difference: Array = np.abs(ref - cand).max(axis=1) - self.tolerance
            return _Eval(difference, difference > 0, np.zeros((m, 2)))
        if ref.shape[1] == 1:
            # Label outputs: no margin to follow, only agree (-0.5) or disagree (+0.5).
            differs: Array = ref[:, 0] != cand[:, 0]
            return _Eval(differs - 0.5, differs, np.stack([ref[:, 0], cand[:, 0]], axis=1))
        rows = np.arange(m)
        top = ref.argmax(axis=1)
        cand_top = cand.argmax(axis=1)
        # A tie is not a disagreement: the candidate must score another class strictly higher.
        hit = cand[rows, cand_top] > cand[rows, top]
        ref_margin = _margin(np.log(np.maximum(ref, _LOG_FLOOR)) if self.log[0] else ref, top)
        cand_margin = _margin(np.log(np.maximum(cand, _LOG_FLOOR)) if self.log[1] else cand, top)
        score: Array = cand_margin + _REFERENCE_WEIGHT * ref_margin
        classes = np.stack([top, np.where(hit, cand_top, top)], axis=1).astype(np.float64)
        return _Eval(score, hit, classes)


def _is_probabilities(out: Array) -> bool:
    """Rows of scores in [0, 1] summing to about 1 (quantized softmax outputs included)."""
    if out.shape[1] < 2 or out.size == 0 or not np.isfinite(out).all():
        return False
    sums = out.sum(axis=1)
    return bool(out.min() >= 0 and out.max() <= 1 and np.abs(sums - 1).max() <= 0.05)


def _margin(scores: Array, top: Array) -> Array:
    """Best score of a class other than ``top``, minus the score of ``top``, per row."""
    rows = np.arange(scores.shape[0])
    own = scores[rows, top]
    other = scores.copy()
    other[rows, top] = -np.inf
    margin: Array = other.max(axis=1) - own
    return margin


def _round_into(x: Array, lo: Array, hi: Array, dtype: np.dtype[Any]) -> Array:
    """``x`` (inside [lo, hi]) rounded to ``dtype``, stepped back inside where rounding left."""
    y = x.astype(dtype)
    wide = y.astype(np.float64)
    over = wide > hi
    under = wide < lo
    if over.any() or under.any():
        y[over] = np.nextafter(y[over], dtype.type(-np.inf))
        y[under] = np.nextafter(y[under], dtype.type(np.inf))
    out: Array = y.astype(np.float64)
    return out


class _Box:
    """The search box of one seed row, and rounding into it in the inputs' dtypes."""

    def __init__(
        self, x0: Array, lo: Array, hi: Array, segments: list[tuple[slice, np.dtype[Any]]]
    ) -> None:
        self.x0, self.lo, self.hi = x0, lo, hi
        self.free = np.flatnonzero(hi > lo)
        self.segments = [(part, dtype) for part, dtype in segments if dtype != np.float64]
        # The box's sides rounded inwards to the dtype: every corner is a valid input as is.
        self.lo_in = self.snap(lo)
        self.hi_in = self.snap(hi)

    def snap(self, x: Array) -> Array:
        """``x`` clipped to the box, rounded to the dtypes, and still inside the box."""
        x = np.clip(x, self.lo, self.hi)
        for part, dtype in self.segments:
            x[part] = _round_into(x[part], self.lo[part], self.hi[part], dtype)
        return x

    def corners(self, signs: Array) -> Array:
        """Corners of the box for boolean sign rows (True: the upper side), in the dtypes."""
        out: Array = np.where(signs, self.hi_in, self.lo_in)
        return out


class _Layout:
    """The searched features of the seed rows, flat, and how to rebuild the models' inputs.

    One float array: its flattened rows. A mapping of inputs: the float inputs that have
    statistics, flattened and concatenated in the mapping's order; the others (token ids,
    masks, inputs without statistics) stay at their seed row's values.
    """

    def __init__(
        self, seeds: Array | Mapping[str, Array], stats: FeatureStats | Mapping[str, FeatureStats]
    ) -> None:
        self.single = not isinstance(seeds, Mapping)
        if isinstance(seeds, Mapping):
            if not isinstance(stats, Mapping):
                raise InvalidParameterError(
                    "stats: seeds given as a mapping of inputs need a mapping of statistics "
                    "(input name -> FeatureStats)."
                )
            self.arrays = {str(n): np.asarray(a) for n, a in seeds.items()}
            table = dict(stats)
            searched = [n for n, a in self.arrays.items() if a.dtype.kind == "f" and n in table]
            if not searched:
                raise InvalidParameterError(
                    f"seeds: none of the inputs {sorted(self.arrays)} is a float input with "
                    f"statistics (stats has {sorted(table)}); the search perturbs float features."
                )
        else:
            if not isinstance(stats, FeatureStats):
                raise InvalidParameterError(
                    "stats: seeds given as one array need one FeatureStats."
                )
            self.arrays = {"": np.asarray(seeds)}
            table = {"": stats}
            searched = [""]
            if self.arrays[""].dtype.kind != "f":
                raise InvalidParameterError(
                    f"seeds: expected float inputs, got {self.arrays[''].dtype}."
                )
        lengths = {a.shape[0] if a.ndim else -1 for a in self.arrays.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InvalidParameterError(
                f"seeds: every input needs the same number of rows, got {sorted(lengths)}."
            )
        self.k = lengths.pop()
        self.searched = searched
        self.segments: list[tuple[slice, np.dtype[Any]]] = []
        flats, stds, mins, maxs = [], [], [], []
        start = 0
        for name in searched:
            array = self.arrays[name]
            flat = array.reshape(self.k, -1).astype(np.float64)
            width = flat.shape[1]
            st = table[name]
            if st.std.shape != (width,):
                where = f" of input {name!r}" if name else ""
                raise InvalidParameterError(
                    f"stats{where}: expected {width} features (the flattened row), got "
                    f"{st.std.shape}."
                )
            self.segments.append((slice(start, start + width), array.dtype))
            start += width
            flats.append(flat)
            stds.append(st.std)
            mins.append(st.min)
            maxs.append(st.max)
        self.x0 = np.concatenate(flats, axis=1)
        self.std = np.concatenate(stds)
        self.min = np.concatenate(mins)
        self.max = np.concatenate(maxs)

    def batch(self, x: Array, owners: Array) -> Any:
        """The models' input for (m, d) features, the searched rows of seeds ``owners``."""
        m = x.shape[0]
        out: dict[str, Array] = {}
        for name, (part, dtype) in zip(self.searched, self.segments, strict=True):
            out[name] = x[:, part].astype(dtype).reshape(m, *self.arrays[name].shape[1:])
        if self.single:
            return out[""]
        for name, array in self.arrays.items():
            if name not in out:
                out[name] = array[owners]
        return {name: out[name] for name in self.arrays}

    def inputs(self, x: Array) -> dict[str, Array]:
        """Every input at the K rows ``x`` (mapping seeds only; empty for one array)."""
        if self.single:
            return {}
        batch: dict[str, Array] = self.batch(x, np.arange(self.k))
        return batch


def _random_search(rng: np.random.Generator, box: _Box, budget: _Budget) -> _SeedSearch:
    d = box.x0.shape[0]
    while budget.left > 0:
        m = min(_RANDOM_ROUND, budget.left)
        yield box.snap(box.lo + rng.random((m, d)) * (box.hi - box.lo))


def _bisection(box: _Box, budget: _Budget, a: Array, a_classes: Array, b: Array) -> _SeedSearch:
    """Halve the segment [a, b] where the models' agreed class changes, keeping the change.

    ``a`` has the classes ``a_classes``; ``b`` other ones. A probe where the models disagree
    ends the search (the driver stops it); one with a's classes replaces a, else b.
    """
    for _ in range(_MAX_BISECTION):
        if budget.left <= 0:
            return
        mid = box.snap((a + b) / 2)
        if np.array_equal(mid, a) or np.array_equal(mid, b):
            return  # the dtype's precision: both boundaries cross at the same representable x
        got = yield mid[None]
        if np.array_equal(got.classes[0], a_classes):
            a = mid
        else:
            b = mid


def _evolution(
    rng: np.random.Generator, box: _Box, budget: _Budget, start: _Eval, *, bisect: bool
) -> _SeedSearch:
    """Probe, hierarchical sign search and boundary bisection for one seed row."""
    free = box.free
    if free.size == 0:
        return
    n_probe = min(budget.left, max(1, min(_MAX_PROBE, budget.left // _PROBE_DIVISOR)))
    signs = rng.random((n_probe, box.x0.shape[0])) < 0.5
    probe_x = box.corners(signs)
    probe = yield probe_x
    if bisect:
        crossed = np.flatnonzero((probe.classes != start.classes[0]).any(axis=1))
        if crossed.size:
            i = int(crossed[np.argmax(probe.score[crossed])])
            yield from _bisection(box, budget, box.x0, start.classes[0], probe_x[i])
    i = int(np.argmax(probe.score))
    current_signs, current_x = signs[i], probe_x[i]
    current_score, current_classes = float(probe.score[i]), probe.classes[i]
    while budget.left > 0:
        # One sweep: flip all free coordinates, then each half, each quarter, ... each one,
        # in a random order; keep a flip that does not lower the surrogate.
        order = rng.permutation(free)
        level = 0
        while (1 << level) <= free.size:
            for chunk in np.array_split(order, 1 << level):
                if budget.left <= 0:
                    return
                trial = current_signs.copy()
                trial[chunk] = ~trial[chunk]
                trial_x = box.corners(trial)
                got = yield trial_x[None]
                if bisect and not np.array_equal(got.classes[0], current_classes):
                    yield from _bisection(box, budget, current_x, current_classes, trial_x)
                if got.score[0] >= current_score:
                    current_signs, current_x = trial, trial_x
                    current_score, current_classes = float(got.score[0]), got.classes[0]
            level += 1


def differential_search(
    reference: Predict,
    candidate: Predict,
    seeds: Array | Mapping[str, Array],
    stats: FeatureStats | Mapping[str, FeatureStats],
    *,
    epsilon: float,
    budget: int,
    method: str = "evolution",
    clip: bool = True,
    classification: bool = True,
    tolerance: float = 0.0,
    seed: int = 0,
    row_ids: Array | None = None,
    modules: tuple[tuple[Any, str | None, str], tuple[Any, str | None, str]] | None = None,
) -> SearchOutcome:
    """Search the epsilon-ball around each seed row for a disagreement.

    Args:
        reference: Batch predict function: inputs shaped like ``seeds`` with m rows, in the
            seeds' dtypes -> compared outputs (m, ...).
        candidate: The candidate's, likewise.
        seeds: (K, *row shape) float seed rows; or, for a model with several inputs, a
            mapping input name -> (K, ...) rows. Then the float inputs named in ``stats`` are
            searched (one ball over all their features) and the others stay at the seed
            row's values.
        stats: The input's per-feature statistics (std, min, max), flattened per row; a
            mapping input name -> statistics with mapping seeds.
        epsilon: Ball radius in per-feature standard deviations.
        budget: Model evaluations per seed (the seed row included).
        method: ``evolution``, ``random`` or ``pgd``.
        clip: Keep inputs within the observed per-feature [min, max].
        classification: Top-1 disagreement; else max output difference above ``tolerance``.
        tolerance: The output difference that counts as a disagreement (non-classification).
        seed: Seed of every random choice.
        row_ids: (K,) the seed rows' ids: each seed's random generator is seeded with
            (seed, row id). Default: 0..K-1.
        modules: For ``method="pgd"``: (torch module, dtype name, device) of the reference
            and of the candidate (the gradient search); the predict functions still confirm.

    Raises:
        InvalidParameterError: An unknown method, a budget below 1, a negative or non-finite
            epsilon, no float input to search, statistics or row ids of the wrong size,
            inputs of different lengths, ``pgd`` without modules or with several inputs.
    """
    if method not in SEARCH_METHODS:
        raise InvalidParameterError(f"method: expected one of {SEARCH_METHODS}, got {method!r}.")
    if method == "pgd" and modules is None:
        raise InvalidParameterError("method 'pgd' needs modules (both models' torch modules).")
    if method == "pgd" and isinstance(seeds, Mapping):
        raise InvalidParameterError("method 'pgd' searches one input; seeds is a mapping.")
    if budget < 1:
        raise InvalidParameterError(f"budget: expected at least 1, got {budget}.")
    if not (np.isfinite(epsilon) and epsilon >= 0):
        raise InvalidParameterError(f"epsilon: expected a finite value >= 0, got {epsilon}.")
    layout = _Layout(seeds, stats)
    k = layout.k
    x0 = layout.x0
    d = x0.shape[1]
    ids = np.arange(k) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
    if ids.shape != (k,):
        raise InvalidParameterError(f"row_ids: expected {k} ids, got shape {ids.shape}.")
    radius = epsilon * layout.std
    lo = x0 - radius
    hi = x0 + radius
    if clip:
        lo = np.maximum(lo, np.minimum(layout.min, x0))
        hi = np.minimum(hi, np.maximum(layout.max, x0))

    driver = _Driver(reference, candidate, layout)
    driver.start(classification=classification, tolerance=tolerance)
    boxes = [_Box(x0[i], lo[i], hi[i], layout.segments) for i in range(k)]
    if method == "pgd":
        assert modules is not None
        driver.pgd(modules, boxes, budget=budget, tolerance=tolerance, seed=seed)
    else:
        searches: dict[int, tuple[_SeedSearch, _Budget]] = {}
        for i in np.flatnonzero(~driver.state.found):
            row = int(i)
            rng = np.random.default_rng([seed & _MASK64, _STREAM, int(ids[row]) & _MASK63])
            left = _Budget(budget - int(driver.state.used[row]))
            if method == "random":
                searches[row] = (_random_search(rng, boxes[row], left), left)
            else:
                first = driver.start_eval
                part = slice(row, row + 1)
                one = _Eval(first.score[part], first.hit[part], first.classes[part])
                searches[row] = (
                    _evolution(rng, boxes[row], left, one, bisect=classification),
                    left,
                )
        driver.drive(searches)
    state = driver.state
    scale = np.where(layout.std > 0, layout.std, np.inf)
    size = np.max(np.abs(state.x - x0) / scale, axis=1) if d else np.zeros(k)
    divergence = np.abs(state.ref - state.cand).max(axis=1) if state.ref.size else np.zeros(k)
    single = layout.arrays[""].shape[1:] if layout.single else (d,)
    return SearchOutcome(
        found=state.found,
        x=state.x.reshape(k, *single),
        size=size,
        reference=state.ref,
        candidate=state.cand,
        divergence=divergence,
        evaluations=state.used,
        unconfirmed=int((state.batch_only & ~state.found).sum()),
        inputs=layout.inputs(state.x),
    )


class _Driver:
    """Runs the models for every seed's search at once, confirms and records what they find."""

    def __init__(self, reference: Predict, candidate: Predict, layout: _Layout) -> None:
        self.reference, self.candidate = reference, candidate
        self.layout = layout
        self.x0 = layout.x0

    def run(self, x: Array, owners: Array) -> tuple[Array, Array]:
        """Both models' outputs, (m, width) float64, for (m, d) features of seeds ``owners``."""
        batch = self.layout.batch(x, owners)
        ref = np.asarray(self.reference(batch), dtype=np.float64).reshape(x.shape[0], -1)
        cand = np.asarray(self.candidate(batch), dtype=np.float64).reshape(x.shape[0], -1)
        return ref, cand

    def start(self, *, classification: bool, tolerance: float) -> None:
        """Evaluate the seed rows (one evaluation each) and confirm those that disagree."""
        ref0, cand0 = self.run(self.x0, np.arange(self.layout.k))
        self.scorer = _Scorer(ref0, cand0, classification=classification, tolerance=tolerance)
        self.start_eval = self.scorer(ref0, cand0)
        self.state = _State(self.x0, ref0, cand0, self.start_eval)
        for row in np.flatnonzero(self.start_eval.hit):
            self.confirm(int(row), self.x0[row])

    def confirm(self, row: int, x: Array) -> _Eval:
        """Run ``x`` alone (one evaluation); record it as found if the models still disagree."""
        ref, cand = self.run(x[None], np.asarray([row]))
        alone = self.scorer(ref, cand)
        self.state.used[row] += 1
        if alone.hit[0]:
            self.state.record(row, x, ref[0], cand[0], float(alone.score[0]), found=True)
        else:
            self.state.batch_only[row] = True
        return alone

    def drive(self, searches: dict[int, tuple[_SeedSearch, _Budget]]) -> None:
        """Round after round: every live search's inputs in one batch, results sent back."""
        pending: dict[int, Array] = {}
        for row, (search, _) in searches.items():
            first = next(search, None)
            if first is not None:
                pending[row] = first
        while pending:
            rows = sorted(pending)
            counts = [pending[r].shape[0] for r in rows]
            trials = np.concatenate([pending.pop(r) for r in rows])
            ref, cand = self.run(trials, np.repeat(rows, counts))
            got = self.scorer(ref, cand)
            ends = np.cumsum(counts)
            for row, end, n in zip(rows, ends, counts, strict=True):
                part = slice(int(end) - n, int(end))
                search, left = searches[row]
                self.state.used[row] += n
                left.left -= n
                mine = _Eval(got.score[part].copy(), got.hit[part].copy(), got.classes[part].copy())
                if mine.hit.any() and self._confirm_any(row, trials[part], mine, left):
                    search.close()
                    continue
                j = int(np.argmax(mine.score))
                if mine.score[j] > self.state.best[row]:
                    x_best, score = trials[part][j], float(mine.score[j])
                    self.state.record(row, x_best, ref[part][j], cand[part][j], score)
                if left.left <= 0:
                    search.close()
                    continue
                with contextlib.suppress(StopIteration):
                    pending[row] = search.send(mine)

    def _confirm_any(self, row: int, x: Array, batch: _Eval, left: _Budget) -> bool:
        """Confirm the seed's disagreements alone, best first, until one replays.

        One that does not replay (a batch artefact) is replaced in ``batch`` by what the row
        gives alone, so the search goes on from true values.
        """
        for j in np.argsort(-batch.score, kind="stable"):
            if not batch.hit[j]:
                continue
            alone = self.confirm(row, x[j])
            left.left -= 1
            if alone.hit[0]:
                return True
            batch.hit[j] = False
            batch.score[j] = min(float(alone.score[0]), -1e-12)
            batch.classes[j] = alone.classes[0]
        return False

    def pgd(
        self,
        modules: tuple[tuple[Any, str | None, str], tuple[Any, str | None, str]],
        boxes: list[_Box],
        *,
        budget: int,
        tolerance: float,
        seed: int,
    ) -> None:
        """The gradient search from every seed without a case; its finds confirmed alone."""
        searching = np.flatnonzero(~self.state.found)
        if searching.size == 0:
            return
        lo = np.stack([boxes[r].lo for r in searching])
        hi = np.stack([boxes[r].hi for r in searching])
        pgd_found, pgd_x, pgd_used = pgd_steps(
            modules[0],
            modules[1],
            self.x0[searching],
            lo,
            hi,
            shape=self.layout.arrays[""].shape[1:],
            budget=budget,
            classification=self.scorer.classification,
            tolerance=tolerance,
            seed=seed,
        )
        self.state.used[searching] += pgd_used - 1
        snapped = np.stack([boxes[r].snap(x) for r, x in zip(searching, pgd_x, strict=True)])
        for j in np.flatnonzero(pgd_found):
            self.confirm(int(searching[j]), snapped[j])
        rest = np.flatnonzero(~self.state.found[searching])
        if rest.size:
            # The last iterates of the seeds without a case, for the report (not counted).
            ref, cand = self.run(snapped[rest], searching[rest])
            scores = self.scorer(ref, cand).score
            for n, i in enumerate(rest):
                seed_row = int(searching[i])
                self.state.record(seed_row, snapped[i], ref[n], cand[n], float(scores[n]))


class _State:
    """Per seed: the best (or found) input and both outputs there, evaluations, flags."""

    def __init__(self, x0: Array, ref0: Array, cand0: Array, start: _Eval) -> None:
        k = x0.shape[0]
        self.x = x0.copy()
        self.ref = ref0.copy()
        self.cand = cand0.copy()
        self.best = np.where(start.hit, -np.inf, start.score)
        self.found = np.zeros(k, dtype=bool)
        self.batch_only = np.zeros(k, dtype=bool)
        self.used = np.ones(k, dtype=np.int64)

    def record(
        self, row: int, x: Array, ref: Array, cand: Array, score: float, *, found: bool = False
    ) -> None:
        self.x[row] = x
        self.ref[row] = ref
        self.cand[row] = cand
        self.best[row] = score
        self.found[row] = self.found[row] or found
