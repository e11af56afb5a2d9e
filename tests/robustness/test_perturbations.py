"""Built-in perturbations against independent numpy/scipy references; batch-size independence;
spec errors; custom kinds (Python and entry points)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage

import compval._plugins
from compval.data import ArrayDataset
from compval.errors import DataError, InvalidParameterError, SpecValidationError
from compval.robustness import (
    PerturbationContext,
    PerturbationKind,
    PerturbedDataset,
    available_perturbations,
    build_perturbation,
    feature_stats,
    register_perturbation,
)
from compval.spec import PerturbationSpec, RobustnessSpec

RNG = np.random.default_rng(7)
X = RNG.normal(2.0, 3.0, size=(600, 12)).astype(np.float32)
IMAGES = RNG.uniform(0, 1, size=(40, 2, 6, 5)).astype(np.float32)  # NCHW


def _perturbed(x: np.ndarray, spec: dict[str, Any], batch_size: int = 64) -> np.ndarray:
    data = ArrayDataset(x, labels=np.arange(len(x)) % 3)
    stats = feature_stats(data, 50)
    p = build_perturbation(PerturbationSpec.model_validate(spec), index=0)
    batches = list(PerturbedDataset(data, p, stats, seed=11).batches(batch_size))
    assert all((b.labels == np.arange(len(x))[b.row_ids] % 3).all() for b in batches)
    return np.concatenate([b.inputs["features"] for b in batches])


def test_feature_stats_match_numpy() -> None:
    stats = feature_stats(ArrayDataset(X), 37)["features"]
    x = X.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, x.std(0), rtol=1e-9)
    np.testing.assert_array_equal(stats.min, x.min(0))
    np.testing.assert_array_equal(stats.max, x.max(0))


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "noise", "params": {"std": 0.2}},
        {"kind": "dropout", "params": {"rate": 0.3, "fill": "mean"}},
        {"kind": "extremes", "params": {"rate": 0.2}},
    ],
)
def test_random_perturbations_do_not_depend_on_the_batch_size(spec: dict[str, Any]) -> None:
    spec = {"name": "p", **spec}
    a = _perturbed(X, spec, batch_size=7)
    b = _perturbed(X, spec, batch_size=600)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, X)
    # ... and on the seed and the name: another name draws other noise.
    assert not np.array_equal(a, _perturbed(X, {**spec, "name": "q"}))


def test_noise_is_gaussian_scaled_per_feature() -> None:
    out = _perturbed(X, {"name": "n", "kind": "noise", "params": {"std": 0.2}})
    z = (out.astype(np.float64) - X) / (0.2 * X.astype(np.float64).std(0))
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.03)
    from scipy import stats

    assert stats.kstest(z.ravel(), "norm").pvalue > 0.001


def test_deterministic_perturbations_match_numpy() -> None:
    x = X.astype(np.float64)
    out = _perturbed(X, {"name": "s", "kind": "scale", "params": {"factor": 1.5}})
    np.testing.assert_allclose(out, (x * 1.5).astype(np.float32))
    out = _perturbed(X, {"name": "t", "kind": "shift", "params": {"std": -0.5}})
    np.testing.assert_allclose(out, (x - 0.5 * x.std(0)).astype(np.float32), rtol=1e-6)


def test_dropout_and_extremes() -> None:
    x = X.astype(np.float64)
    out = _perturbed(X, {"name": "d", "kind": "dropout", "params": {"rate": 0.25}})
    dropped = out != X
    assert dropped.mean() == pytest.approx(0.25, abs=0.02)
    assert (out[dropped] == 0).all()
    out = _perturbed(X, {"name": "e", "kind": "extremes", "params": {"rate": 0.3}})
    changed = out != X
    assert changed.mean() == pytest.approx(0.3, abs=0.03)
    lo, hi = X.min(0), X.max(0)
    cols = np.nonzero(changed)[1]
    assert np.isin(out[changed], np.concatenate([lo, hi])).all()
    assert ((out[changed] == lo[cols]) | (out[changed] == hi[cols])).all()
    out = _perturbed(X, {"name": "k", "kind": "extremes", "params": {"rate": 1.0, "k": 3}})
    expected = np.stack([x.mean(0) - 3 * x.std(0), x.mean(0) + 3 * x.std(0)])
    assert (np.isclose(out, expected[0], rtol=1e-5) | np.isclose(out, expected[1], rtol=1e-5)).all()


def test_image_perturbations_match_scipy() -> None:
    blurred = _perturbed(IMAGES, {"name": "b", "kind": "blur", "layout": "NCHW"})
    expected = ndimage.uniform_filter(IMAGES.astype(np.float64), size=(1, 1, 3, 3), mode="nearest")
    np.testing.assert_allclose(blurred, expected, rtol=1e-5, atol=1e-6)
    contrast = _perturbed(
        IMAGES, {"name": "c", "kind": "contrast", "layout": "NCHW", "params": {"factor": 0.5}}
    )
    mean = IMAGES.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(contrast, (IMAGES - mean) * 0.5 + mean, rtol=1e-5, atol=1e-6)
    # Flat rows with image_shape, NHWC, brightness clipped to the observed range.
    flat = IMAGES.transpose(0, 2, 3, 1).reshape(40, -1)
    bright = _perturbed(
        flat,
        {
            "name": "br",
            "kind": "brightness",
            "layout": "NHWC",
            "image_shape": [6, 5, 2],
            "params": {"delta": 0.2},
        },
    )
    span = flat.max() - flat.min()
    np.testing.assert_allclose(
        bright, np.clip(flat + 0.2 * span, flat.min(), flat.max()), rtol=1e-6
    )
    flat_blur = _perturbed(
        flat, {"name": "fb", "kind": "blur", "layout": "NHWC", "image_shape": [6, 5, 2]}
    )
    np.testing.assert_allclose(
        flat_blur.reshape(40, 6, 5, 2).transpose(0, 3, 1, 2), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "nois"}, "kind"),
        ({"kind": "noise", "params": {"sigma": 1}}, "params"),
        ({"kind": "dropout", "params": {"rate": 1.5}}, "params.rate"),
        ({"kind": "dropout", "params": {"fill": "median"}}, "params.fill"),
        ({"kind": "noise", "params": {"std": "a lot"}}, "params.std"),
        ({"kind": "blur"}, "layout"),
        ({"kind": "blur", "layout": "NHW", "image_shape": [2, 3, 4]}, "image_shape"),
        ({"kind": "noise", "layout": "NHW"}, "layout"),
    ],
)
def test_bad_perturbations_are_spec_errors(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecValidationError) as err:
        build_perturbation(PerturbationSpec.model_validate({"name": "p", **spec}), index=2)
    assert err.value.path == f"robustness.perturbations[2].{field}"


def test_duplicate_names_and_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="used twice"):
        RobustnessSpec.model_validate(
            {"perturbations": [{"name": "a", "kind": "noise"}, {"name": "a", "kind": "scale"}]}
        )
    with pytest.raises(DataError, match="image_shape"):
        _perturbed(X, {"name": "b", "kind": "blur", "layout": "NHW", "image_shape": [5, 5]})
    with pytest.raises(DataError, match="not float inputs"):
        _perturbed(X, {"name": "n", "kind": "noise", "inputs": ["pixels"]})


def _invert(x: np.ndarray, ctx: PerturbationContext) -> np.ndarray:
    return ctx.stats.max - x.reshape(x.shape[0], -1) + ctx.stats.min * float(ctx.params["w"])


def test_custom_kind_from_python_and_from_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    register_perturbation(PerturbationKind("invert_test", _invert, {"w": 1.0}))
    out = _perturbed(X, {"name": "i", "kind": "invert_test"})
    np.testing.assert_allclose(out, X.max(0) - X + X.min(0), rtol=1e-5, atol=1e-5)

    class _EntryPoint:
        name = "plugin"

        def __init__(self, obj: object) -> None:
            self.obj = obj

        def load(self) -> object:
            return self.obj

    import compval.robustness._perturb as perturb

    kind = PerturbationKind("plugin_test", _invert, {"w": 0.0})
    monkeypatch.setattr(perturb, "_plugins_loaded", False)
    monkeypatch.setattr(compval._plugins, "entry_points", lambda group: [_EntryPoint(kind)])
    assert "plugin_test" in available_perturbations()
    monkeypatch.setattr(perturb, "_plugins_loaded", False)
    monkeypatch.setattr(compval._plugins, "entry_points", lambda group: [_EntryPoint("nope")])
    with pytest.raises(InvalidParameterError, match="expected a PerturbationKind"):
        available_perturbations()


def test_perturbed_data_streams() -> None:
    """The wrapper perturbs batch by batch as they pass: nothing is read ahead."""
    read: list[int] = []
    base = ArrayDataset(X, labels=np.arange(len(X)) % 3)

    class Counting:
        def __len__(self) -> int:
            return len(base)

        segment_columns = ()
        has_labels = True

        def fingerprint(self) -> str:
            return base.fingerprint()

        def batches(self, batch_size: int) -> Any:
            for batch in base.batches(batch_size):
                read.append(len(batch))
                yield batch

    stats = feature_stats(base, 100)
    p = build_perturbation(PerturbationSpec(name="n", kind="noise"), index=0)
    batches = PerturbedDataset(Counting(), p, stats, seed=0).batches(10)
    first = next(batches)
    assert read == [10] and first.inputs["features"].shape == (10, 12)
