"""The black-box differential search on hand-built model pairs whose disagreement region is known.

The models are numpy functions, so where they disagree is known exactly: a small corner region
of each seed's ball (the candidate's score for another class rises towards it, as a quantization
error grows with magnitude), a thin sliver between two nearly equal decision boundaries, a region
just outside the observed feature range (which ``clip`` must keep out of reach), and a candidate
whose disagreement exists only inside batches. The search must find the first two within budget
where uniform random sampling in the same ball rarely does, keep every input inside the ball and
the clip range exactly (in the inputs' dtype), and be deterministic per seed row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from compval.errors import InvalidParameterError
from compval.robustness import FeatureStats, SearchOutcome, differential_search

D = 10
K = 20
EPS = 0.3
BUDGET = 100
#: The planted region: every feature in S at least this share of the radius above the seed.
CORNER = 0.9
S = np.arange(4)

Model = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, FeatureStats]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, D)).astype(np.float32)
    wide = x.astype(np.float64)
    stats = FeatureStats(wide.mean(0), wide.std(0), wide.min(0), wide.max(0), len(x))
    seeds = wide[:K]
    # The seeds' balls must not overlap, so that "the seed nearest x" names the ball x is in.
    gaps = np.abs(seeds[:, None] - seeds[None]) / stats.std
    assert (gaps.max(axis=2) + np.eye(K) * 9 > 2 * EPS).all()
    return x, stats


def _offsets(x: np.ndarray, seeds: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """(x - its seed) / (EPS * std): in [-1, 1] per feature inside the seed's ball."""
    flat = x.astype(np.float64)
    nearest = (np.abs(flat[:, None] - seeds[None]) / stats.std).max(axis=2).argmin(axis=1)
    out: np.ndarray = (flat - seeds[nearest]) / (EPS * stats.std)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _corner_pair(x_all: np.ndarray, stats: FeatureStats) -> tuple[Model, Model]:
    """Reference: class 0 everywhere. Candidate: class 1 where min over S of the offset > 0.9.

    The candidate's class-1 logit is 2 u - 0.8 with u = min_S offset, so its margin rises
    towards the region (a continuous signal), and the models disagree only where u > 0.9: a
    share 0.05 ** 4 = 6e-6 of the ball (uniform sampling) but a sixteenth of its corners.
    """
    seeds = x_all[:K].astype(np.float64)

    def reference(x: np.ndarray) -> np.ndarray:
        return _softmax(np.tile([1.0, 0.0], (x.shape[0], 1)))

    def candidate(x: np.ndarray) -> np.ndarray:
        u = _offsets(x, seeds, stats)[:, S].min(axis=1)
        return _softmax(np.stack([np.ones(x.shape[0]), 2 * u - 0.8], axis=1))

    return reference, candidate


def _search(
    pair: tuple[Model, Model], x: np.ndarray, stats: FeatureStats, method: str, **kw: object
) -> SearchOutcome:
    options: dict[str, object] = {"epsilon": EPS, "budget": BUDGET, "method": method, "seed": 3}
    options.update(kw)
    return differential_search(pair[0], pair[1], x[:K], stats, **options)  # type: ignore[arg-type]


def _box(seeds: np.ndarray, stats: FeatureStats, *, clip: bool) -> tuple[np.ndarray, np.ndarray]:
    x0 = seeds.astype(np.float64)
    lo, hi = x0 - EPS * stats.std, x0 + EPS * stats.std
    if clip:
        lo = np.maximum(lo, np.minimum(stats.min, x0))
        hi = np.minimum(hi, np.maximum(stats.max, x0))
    return lo, hi


def test_search_finds_a_planted_corner_region_that_random_sampling_misses(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    x, stats = data
    pair = _corner_pair(x, stats)
    search = _search(pair, x, stats, "evolution", clip=False)
    baseline = _search(pair, x, stats, "random", clip=False)
    assert search.found.sum() >= K - 1
    assert baseline.found.sum() <= 1
    # Every case is in the planted region, disagrees there, and was confirmed within budget.
    u = _offsets(search.x[search.found], x[:K].astype(np.float64), stats)[:, S].min(axis=1)
    assert (u > CORNER).all()
    assert (search.candidate[search.found].argmax(1) == 1).all()
    assert (search.reference[search.found].argmax(1) == 0).all()
    assert (search.evaluations <= BUDGET + 1).all()
    assert search.unconfirmed == 0


def test_search_bisects_a_thin_sliver_between_two_decision_boundaries(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    """Two linear classifiers whose boundaries differ by 5e-6 of the ball's width."""
    x, stats = data
    seeds = x[:K].astype(np.float64)
    # Each seed's boundary sits inside its ball: the reference's class changes in it.
    shift = np.linspace(-0.5, 0.5, K) * D

    def logits(xx: np.ndarray, delta: float) -> np.ndarray:
        flat = xx.astype(np.float64)
        nearest = (np.abs(flat[:, None] - seeds[None]) / stats.std).max(axis=2).argmin(axis=1)
        z = ((flat - seeds[nearest]) / (EPS * stats.std)).sum(axis=1) - shift[nearest] + delta
        return np.stack([np.zeros(len(xx)), z], axis=1)

    # The offsets' sum spans [-D, D] over the ball; the models disagree where it is within
    # 1e-4 of the reference's boundary: about 2e-5 of a uniform sample's mass.
    sliver = 1e-4

    def reference(xx: np.ndarray) -> np.ndarray:
        return logits(xx.astype(np.float64), 0.0)

    def candidate(xx: np.ndarray) -> np.ndarray:
        return logits(xx.astype(np.float64), sliver)

    search = _search((reference, candidate), x.astype(np.float64), stats, "evolution", clip=False)
    baseline = _search((reference, candidate), x.astype(np.float64), stats, "random", clip=False)
    assert search.found.sum() >= K - 1
    assert baseline.found.sum() <= 2
    z = reference(search.x[search.found])[:, 1]
    assert ((z <= 0) & (z + sliver > 0)).all()


def test_clip_keeps_the_search_out_of_a_region_beyond_the_observed_range(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    """The models disagree only beyond the data's max of feature 0: clip must never get there."""
    x, stats = data
    top = stats.max[0]
    # Seeds close to the max of feature 0, and a ball wide enough to reach past it.
    near = np.argsort(-x[:, 0])[:K]
    seeds = x[near]

    def reference(xx: np.ndarray) -> np.ndarray:
        return np.tile([1.0, 0.0], (len(xx), 1))

    def candidate(xx: np.ndarray) -> np.ndarray:
        beyond = xx[:, 0].astype(np.float64) > top
        return np.stack([np.ones(len(xx)), np.where(beyond, 2.0, 0.0)], axis=1)

    kw = {"epsilon": 2.0, "budget": 50, "seed": 1}
    free = differential_search(reference, candidate, seeds, stats, clip=False, **kw)  # type: ignore[arg-type]
    assert free.found.sum() >= K // 2
    for method in ("evolution", "random"):
        clipped = differential_search(
            reference,
            candidate,
            seeds,
            stats,
            clip=True,
            method=method,
            **kw,  # type: ignore[arg-type]
        )
        assert not clipped.found.any()
        flat = clipped.x.reshape(K, -1)
        assert (flat <= stats.max).all() and (flat >= stats.min).all()


@pytest.mark.parametrize("method", ["evolution", "random"])
@pytest.mark.parametrize("clip", [True, False])
def test_every_input_tried_is_inside_the_ball_in_the_inputs_dtype(
    data: tuple[np.ndarray, FeatureStats], method: str, clip: bool
) -> None:
    """Record every batch the models see: each row within the ball (and range), exactly."""
    x, stats = data
    seeds = x[:K]
    lo, hi = _box(seeds, stats, clip=clip)
    seen: list[np.ndarray] = []
    reference, candidate = _corner_pair(x, stats)

    def recording(xx: np.ndarray) -> np.ndarray:
        assert xx.dtype == np.float32
        seen.append(xx.copy())
        return reference(xx)

    out = differential_search(
        recording, candidate, seeds, stats, epsilon=EPS, budget=60, method=method, clip=clip
    )
    tried = np.concatenate(seen).astype(np.float64)
    nearest = (np.abs(tried[:, None] - seeds[None]) / stats.std).max(axis=2).argmin(axis=1)
    assert (tried >= lo[nearest]).all() and (tried <= hi[nearest]).all()
    # One row per evaluation: the model calls add up to the evaluations reported.
    assert len(tried) == out.evaluations.sum()
    assert (out.size <= EPS).all()
    assert (out.x.astype(np.float32).astype(np.float64) == out.x).all()


def test_search_is_deterministic_and_each_seed_row_independent(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    x, stats = data
    pair = _corner_pair(x, stats)
    ids = np.arange(100, 100 + K)
    a = _search(pair, x, stats, "evolution", row_ids=ids, budget=30)
    b = _search(pair, x, stats, "evolution", row_ids=ids, budget=30)
    for field in ("found", "x", "evaluations", "reference", "candidate"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    # Reversed seed order, and only half the seeds: each row's result is its own.
    order = np.arange(K)[::-1][: K // 2]
    c = differential_search(
        pair[0],
        pair[1],
        x[:K][order],
        stats,
        epsilon=EPS,
        budget=30,
        seed=3,
        row_ids=ids[order],
    )
    np.testing.assert_array_equal(c.found, a.found[order])
    np.testing.assert_array_equal(c.x, a.x[order])
    np.testing.assert_array_equal(c.evaluations, a.evaluations[order])
    # Another seed explores differently.
    d = _search(pair, x, stats, "evolution", row_ids=ids, budget=30, seed=4)
    assert not np.array_equal(d.x, a.x)


def test_a_disagreement_only_inside_batches_is_not_counted(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    """A candidate that flips class only in batches of several rows never replays alone."""
    x, stats = data

    def reference(xx: np.ndarray) -> np.ndarray:
        return np.tile([1.0, 0.0], (len(xx), 1))

    def candidate(xx: np.ndarray) -> np.ndarray:
        return np.tile([1.0, 0.0] if len(xx) == 1 else [0.0, 1.0], (len(xx), 1))

    out = differential_search(reference, candidate, x[:K], stats, epsilon=EPS, budget=20)
    assert not out.found.any()
    assert out.unconfirmed == K
    assert (out.evaluations <= 20 + 1).all()


def test_regression_search_maximises_the_output_difference(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    """Outputs differ by 0.25 (u + 1) (u as in the corner pair); tolerance 0.475 needs u > 0.9."""
    x, stats = data
    seeds = x[:K].astype(np.float64)

    def reference(xx: np.ndarray) -> np.ndarray:
        return xx[:, :2].astype(np.float64)

    def candidate(xx: np.ndarray) -> np.ndarray:
        u = _offsets(xx, seeds, stats)[:, S].min(axis=1)
        out: np.ndarray = reference(xx) + 0.25 * (u + 1)[:, None]
        return out

    kw = {"epsilon": EPS, "budget": BUDGET, "clip": False, "classification": False}
    search = differential_search(reference, candidate, x[:K], stats, tolerance=0.475, **kw)  # type: ignore[arg-type]
    baseline = differential_search(
        reference,
        candidate,
        x[:K],
        stats,
        tolerance=0.475,
        method="random",
        **kw,  # type: ignore[arg-type]
    )
    assert search.found.sum() >= K - 1
    assert baseline.found.sum() <= 1
    assert (search.divergence[search.found] > 0.475).all()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "annealing"}, "method: expected one of"),
        ({"budget": 0}, "budget: expected at least 1"),
        ({"epsilon": float("nan")}, "epsilon: expected a finite value"),
        ({"row_ids": np.arange(3)}, "row_ids: expected 20 ids"),
        ({"method": "pgd"}, "needs modules"),
    ],
)
def test_invalid_arguments_are_refused(
    data: tuple[np.ndarray, FeatureStats], kw: dict[str, object], match: str
) -> None:
    x, stats = data
    pair = _corner_pair(x, stats)
    options: dict[str, object] = {"epsilon": EPS, "budget": 10}
    options.update(kw)
    with pytest.raises(InvalidParameterError, match=match):
        differential_search(pair[0], pair[1], x[:K], stats, **options)  # type: ignore[arg-type]


def test_multi_input_models_search_the_float_inputs_and_keep_the_others(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    """Inputs {image: float32 (2, 5), category: int64}: only the image moves; the planted
    corner region disagrees only for category 1."""
    x, stats = data
    seeds = x[:K].astype(np.float64)
    category = np.arange(K) % 2
    inputs = {"image": x[:K].reshape(K, 2, 5), "category": category}
    seen: list[np.ndarray] = []

    def reference(batch: dict[str, np.ndarray]) -> np.ndarray:
        assert batch["image"].dtype == np.float32 and batch["image"].shape[1:] == (2, 5)
        return _softmax(np.tile([1.0, 0.0], (len(batch["category"]), 1)))

    def candidate(batch: dict[str, np.ndarray]) -> np.ndarray:
        flat = batch["image"].reshape(len(batch["image"]), -1)
        seen.append(np.concatenate([flat, batch["category"][:, None]], axis=1))
        u = _offsets(flat, seeds, stats)[:, S].min(axis=1)
        u = np.where(batch["category"] == 1, u, -1.0)
        return _softmax(np.stack([np.ones(len(u)), 2 * u - 0.8], axis=1))

    out = differential_search(
        reference, candidate, inputs, {"image": stats}, epsilon=EPS, budget=BUDGET, clip=False
    )
    assert out.found[category == 1].sum() >= K // 2 - 1
    assert not out.found[category == 0].any()
    assert out.x.shape == (K, D)
    np.testing.assert_array_equal(out.inputs["category"], category)
    assert out.inputs["image"].dtype == np.float32
    np.testing.assert_array_equal(out.inputs["image"].reshape(K, D), out.x.astype(np.float32))
    # Every row the models saw kept its seed's category.
    rows = np.concatenate(seen)
    nearest = (np.abs(rows[:, None, :D] - seeds[None]) / stats.std).max(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(rows[:, D], category[nearest])


def test_mapping_seeds_need_a_float_input_with_statistics(
    data: tuple[np.ndarray, FeatureStats],
) -> None:
    x, stats = data
    pair = _corner_pair(x, stats)
    with pytest.raises(InvalidParameterError, match="none of the inputs"):
        differential_search(
            pair[0], pair[1], {"ids": np.arange(K)}, {"ids": stats}, epsilon=EPS, budget=5
        )
    with pytest.raises(InvalidParameterError, match="a mapping of statistics"):
        differential_search(pair[0], pair[1], {"a": x[:K]}, stats, epsilon=EPS, budget=5)
