from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats

from compval.errors import ApproximationWarning, IncompatibleMergeError, InvalidParameterError
from compval.stats import FixedHistogram, ks_from_histograms, wasserstein_from_histograms

SAMPLES = [
    ("beta-shift", lambda rng: (rng.beta(2, 5, 6000), rng.beta(2.4, 5, 5000))),
    ("same", lambda rng: (rng.beta(3, 3, 4000), rng.beta(3, 3, 4000))),
    ("discrete-ish", lambda rng: (rng.integers(0, 7, 3000) / 6, rng.integers(0, 8, 3000) / 7)),
    ("spiky", lambda rng: (rng.uniform(0, 1, 2000) ** 4, rng.uniform(0, 1, 2500) ** 3)),
]


def filled(values: np.ndarray, edges: np.ndarray) -> FixedHistogram:
    histogram = FixedHistogram(edges)
    histogram.update(values)
    return histogram


def test_counts_match_numpy_histogram_and_track_outside_values() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.5, 0.4, 5000), [1.0, 0.0, np.nan, np.inf, -np.inf]])
    edges = np.linspace(0.0, 1.0, 21)
    histogram = filled(values, edges)
    finite = values[np.isfinite(values)]
    np.testing.assert_array_equal(histogram.counts, np.histogram(finite, bins=edges)[0])
    assert histogram.underflow == int(np.sum(values < 0)) and histogram.overflow == int(
        np.sum(values > 1)
    )
    assert histogram.nan_count == 1
    assert histogram.total == values.size - 1
    with pytest.raises(ValueError, match="read-only"):
        histogram.edges[0] = -1.0


def test_merge_equals_one_pass_and_is_pure() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=3000)
    edges = np.linspace(-2, 2, 41)
    left, right = filled(values[:1234], edges), filled(values[1234:], edges)
    before = left.state()
    merged = left.merge(right)
    assert merged == filled(values, edges)
    np.testing.assert_array_equal(left.counts, before["counts"])
    assert merged == right.merge(left)
    assert merged.merge(FixedHistogram(edges)) == merged


def test_state_round_trip_and_pickle() -> None:
    histogram = filled(np.random.default_rng(2).uniform(-0.5, 1.5, 500), np.linspace(0, 1, 11))
    assert FixedHistogram.from_state(histogram.state()) == histogram
    assert pickle.loads(pickle.dumps(histogram)) == histogram
    assert histogram != "not a histogram"
    assert "bins=10" in repr(histogram)


@pytest.mark.parametrize(("name", "make"), SAMPLES)
def test_ks_within_documented_bound_of_scipy(name: str, make: object) -> None:
    ref, cand = make(np.random.default_rng(len(name)))  # type: ignore[operator]
    edges = np.linspace(0.0, 1.0, 1001)
    h_ref, h_cand = filled(ref, edges), filled(cand, edges)
    result = ks_from_histograms(h_ref, h_cand)
    exact = stats.ks_2samp(ref, cand, method="asymp")
    max_mass = max((h_ref.counts / h_ref.total).max(), (h_cand.counts / h_cand.total).max())
    assert result.estimate <= exact.statistic + 1e-12
    assert exact.statistic <= result.estimate + max_mass + 1e-12
    assert result.p_value >= exact.pvalue - 1e-12
    assert (result.kind, result.higher_is_worse, result.n) == (
        "distance",
        True,
        ref.size + cand.size,
    )


def test_ks_identical_histograms() -> None:
    h = filled(np.random.default_rng(3).uniform(size=100), np.linspace(0, 1, 11))
    result = ks_from_histograms(h, h)
    assert (result.estimate, result.p_value) == (0.0, 1.0)


@pytest.mark.parametrize(("name", "make"), SAMPLES)
def test_wasserstein_within_bin_width_of_scipy(name: str, make: object) -> None:
    ref, cand = make(np.random.default_rng(len(name) + 10))  # type: ignore[operator]
    edges = np.linspace(0.0, 1.0, 201)
    h_ref, h_cand = filled(ref, edges), filled(cand, edges)
    result = wasserstein_from_histograms(h_ref, h_cand)
    exact = stats.wasserstein_distance(ref, cand)
    assert abs(result.estimate - exact) <= np.diff(edges).max() + 1e-12
    centres = 0.5 * (edges[:-1] + edges[1:])
    binned = stats.wasserstein_distance(centres, centres, h_ref.counts, h_cand.counts)
    assert result.estimate == pytest.approx(binned, rel=1e-9, abs=1e-12)
    assert (result.kind, result.higher_is_worse) == ("distance", True)


def test_wasserstein_warns_about_values_outside_edges() -> None:
    edges = np.linspace(0, 1, 11)
    inside, outside = filled(np.array([0.2, 0.4]), edges), filled(np.array([0.5, 3.0]), edges)
    with pytest.warns(ApproximationWarning, match=r"2 values fell outside|1 values fell outside"):
        wasserstein_from_histograms(inside, outside)


def test_histogram_errors() -> None:
    with pytest.raises(InvalidParameterError, match=r"edges must be 1-D with at least 2 values"):
        FixedHistogram([0.0])
    with pytest.raises(
        InvalidParameterError, match=r"finite and strictly increasing; got \[0.0, 0.0, 1.0\]"
    ):
        FixedHistogram([0.0, 0.0, 1.0])
    with pytest.raises(InvalidParameterError, match=r"n_bins must be an int >= 1; got 0"):
        FixedHistogram.linspace(0, 1, 0)
    histogram = FixedHistogram.linspace(0, 1, 4)
    with pytest.raises(InvalidParameterError, match=r"values must be numeric; got dtype <U1"):
        histogram.update(np.array(["a"]))
    with pytest.raises(
        IncompatibleMergeError, match=r"edges differ; got histograms with 4 and 5 bins"
    ):
        histogram.merge(FixedHistogram.linspace(0, 1, 5))
    with pytest.raises(InvalidParameterError, match=r"from_state: missing keys"):
        FixedHistogram.from_state({"edges": [0, 1]})
    state = histogram.state()
    state["counts"] = np.zeros(3)
    with pytest.raises(
        InvalidParameterError, match=r"counts do not fit the edges; got shape \(3,\)"
    ):
        FixedHistogram.from_state(state)


def test_distance_errors() -> None:
    a = filled(np.array([0.5]), np.linspace(0, 1, 5))
    with pytest.raises(
        InvalidParameterError, match=r"ks_from_histograms: histograms have different edges"
    ):
        ks_from_histograms(a, filled(np.array([0.5]), np.linspace(0, 1, 6)))
    with pytest.raises(
        InvalidParameterError, match=r"wasserstein_from_histograms: h_cand is empty"
    ):
        wasserstein_from_histograms(a, FixedHistogram(np.linspace(0, 1, 5)))
    with pytest.raises(
        InvalidParameterError, match=r"expected two FixedHistogram objects; got list"
    ):
        ks_from_histograms([0.5], a)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "edges",
    [
        np.linspace(0.0, 1.0, 51),
        np.linspace(-3.0, 7.0, 101),
        np.linspace(0.0, 1.0, 2),
        np.linspace(1e-3, 1e-3 + 1e-9, 11),
        np.sort(np.random.default_rng(3).random(20)),  # uneven: the binary search
    ],
)
def test_bin_lookup_equals_searchsorted_on_and_around_every_edge(edges: np.ndarray) -> None:
    """Evenly spaced edges take an arithmetic lookup: the same bins as the binary search."""
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(edges[0] - 1, edges[-1] + 1, 5000),
            rng.uniform(edges[0], edges[-1], 5000),
            edges,
            np.nextafter(edges, -np.inf),
            np.nextafter(edges, np.inf),
            [np.inf, -np.inf, 1e308, -1e308],
        ]
    )
    histogram = FixedHistogram(edges)
    expected = np.searchsorted(edges, values, side="right") - 1
    assert np.array_equal(histogram._bins(values), expected)
    histogram.update(values)
    reference = np.histogram(values[np.isfinite(values)], bins=edges)[0]
    assert histogram.counts.tolist() == reference.tolist()
