"""Perturbations: named transformations of a dataset's inputs, applied identically to both models.

A perturbation kind is a function ``fn(x, ctx) -> x'`` on one input's batch, as float64 with the
batch on axis 0, plus its parameters and their defaults. Its randomness comes from
``ctx.uniforms(width)`` / ``ctx.normals(width)``, a function of (seed, perturbation name, row
id, element), so a row is perturbed the same way whatever the batch size. Built-in kinds are
registered here; :func:`register_perturbation` adds one from Python, and an entry point in the
group ``compval.perturbations`` whose object is a :class:`PerturbationKind` adds one from
another package.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compval._plugins import load_entry_points
from compval.data import Batch, Dataset
from compval.errors import DataError, SpecValidationError
from compval.robustness._random import RowRandom
from compval.robustness._stats import FeatureStats
from compval.spec import PerturbationSpec, echo
from compval.types import Array

__all__ = [
    "Perturbation",
    "PerturbationContext",
    "PerturbationKind",
    "PerturbedDataset",
    "available_perturbations",
    "build_perturbation",
    "register_perturbation",
]


@dataclass(frozen=True, slots=True)
class PerturbationContext:
    """What a perturbation function may use for one input's batch.

    Attributes:
        name: The perturbation's name (part of its random key).
        input: The model input being perturbed.
        row_ids: The rows' stable ids.
        stats: Per-feature statistics of this input over the whole data (flattened per row).
        params: The perturbation's parameters, defaults filled in.
        seed: The run's seed.
        image: (layout, shape of one image in that layout) for image kinds, else None.
    """

    name: str
    input: str
    row_ids: Array
    stats: FeatureStats
    params: Mapping[str, Any]
    seed: int
    image: tuple[str, tuple[int, ...]] | None = None
    random: RowRandom | None = None

    def _random(self) -> RowRandom:
        return self.random or RowRandom(self.seed, f"{self.name}/{self.input}")

    def uniforms(self, width: int, *, stream: str = "") -> Array:
        """(rows, width) uniforms in [0, 1) for these rows (batch-size independent)."""
        return self._random().uniforms(self.row_ids, width, stream)

    def normals(self, width: int, *, stream: str = "") -> Array:
        """(rows, width) standard normals for these rows (batch-size independent)."""
        return self._random().normals(self.row_ids, width, stream)


PerturbFn = Callable[[Array, PerturbationContext], Array]


@dataclass(frozen=True, slots=True)
class PerturbationKind:
    """A kind of perturbation: name, function, parameters (name -> default), image or not.

    The function receives one input's batch as float64 (rows, ...) and
    returns an array of the same shape; it must draw randomness only through the context.
    """

    name: str
    fn: PerturbFn
    params: Mapping[str, Any] = field(default_factory=dict)
    image: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Perturbation:
    """A perturbation ready to apply: the user's spec resolved against its kind."""

    name: str
    kind: PerturbationKind
    params: Mapping[str, Any]
    inputs: tuple[str, ...] | None
    image: tuple[str, tuple[int, ...]] | None

    def apply(
        self,
        inputs: Mapping[str, Array],
        row_ids: Array,
        stats: Mapping[str, FeatureStats],
        seed: int,
        random: Mapping[str, RowRandom] | None = None,
    ) -> dict[str, Array]:
        """The batch's inputs with the perturbation applied to the selected float inputs.

        ``random`` (input name -> RowRandom) keeps each input's generator, and its cache of
        recent row blocks, across the batches of one pass.
        """
        out = dict(inputs)
        for name, array in inputs.items():
            values = np.asarray(array)
            if self.inputs is not None and name not in self.inputs:
                continue
            if values.dtype.kind != "f" or name not in stats:
                continue
            ctx = PerturbationContext(
                self.name,
                name,
                row_ids,
                stats[name],
                self.params,
                seed,
                self.image,
                None if random is None else random.get(name),
            )
            changed = np.asarray(self.kind.fn(values.astype(np.float64), ctx))
            if changed.shape != values.shape:
                raise DataError(
                    f"Perturbation {self.name!r} ({self.kind.name}): returned shape "
                    f"{changed.shape} for input {name!r}; expected {values.shape}, the input's "
                    "shape. A perturbation must keep the shape of its input."
                )
            out[name] = changed.astype(values.dtype, copy=False)
        return out


# -- built-in kinds --------------------------------------------------------------------------


def _flat(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


def _noise(x: Array, ctx: PerturbationContext) -> Array:
    flat = _flat(x)
    noise = ctx.normals(flat.shape[1]) * (float(ctx.params["std"]) * ctx.stats.std)
    return (flat + noise).reshape(x.shape)


def _scale(x: Array, ctx: PerturbationContext) -> Array:
    return x * float(ctx.params["factor"])


def _shift(x: Array, ctx: PerturbationContext) -> Array:
    return (_flat(x) + float(ctx.params["std"]) * ctx.stats.std).reshape(x.shape)


def _dropout(x: Array, ctx: PerturbationContext) -> Array:
    flat = _flat(x).copy()
    hit = ctx.uniforms(flat.shape[1]) < float(ctx.params["rate"])
    fill = ctx.params["fill"]
    if fill == "zero":
        flat[hit] = 0.0
    else:
        flat = np.where(hit, ctx.stats.mean, flat)
    out: Array = flat.reshape(x.shape)
    return out


def _extremes(x: Array, ctx: PerturbationContext) -> Array:
    flat = _flat(x)
    width = flat.shape[1]
    hit = ctx.uniforms(width) < float(ctx.params["rate"])
    high = ctx.uniforms(width, stream="side") < 0.5
    k = ctx.params["k"]
    if k is None:
        low_value, high_value = ctx.stats.min, ctx.stats.max
    else:
        low_value = ctx.stats.mean - float(k) * ctx.stats.std
        high_value = ctx.stats.mean + float(k) * ctx.stats.std
    extreme = np.where(high, high_value, low_value)
    return np.where(hit, extreme, flat).reshape(x.shape)


def _as_nhwc(x: Array, ctx: PerturbationContext) -> Array:
    """The batch as (rows, H, W, C), whatever its layout."""
    assert ctx.image is not None
    layout, shape = ctx.image
    rows = x.shape[0]
    image = x.reshape(rows, *shape) if shape else x
    if layout == "NHW":
        return image[..., None]
    if layout == "NCHW":
        return np.moveaxis(image, 1, -1)
    return image


def _from_nhwc(image: Array, x: Array, ctx: PerturbationContext) -> Array:
    assert ctx.image is not None
    layout, _ = ctx.image
    if layout == "NHW":
        out = image[..., 0]
    elif layout == "NCHW":
        out = np.moveaxis(image, -1, 1)
    else:
        out = image
    return np.ascontiguousarray(out).reshape(x.shape)


def _clip(values: Array, ctx: PerturbationContext) -> Array:
    if not ctx.params.get("clip", True):
        return values
    return np.clip(values, float(ctx.stats.min.min()), float(ctx.stats.max.max()))


def _brightness(x: Array, ctx: PerturbationContext) -> Array:
    span = float(ctx.stats.max.max() - ctx.stats.min.min())
    return _clip(x + float(ctx.params["delta"]) * span, ctx)


def _contrast(x: Array, ctx: PerturbationContext) -> Array:
    image = _as_nhwc(x, ctx)
    mean = image.mean(axis=(1, 2), keepdims=True)
    changed = (image - mean) * float(ctx.params["factor"]) + mean
    return _clip(_from_nhwc(changed, x, ctx), ctx)


def _blur(x: Array, ctx: PerturbationContext) -> Array:
    """A box blur of ``size`` x ``size`` pixels per channel, edges replicated."""
    image = _as_nhwc(x, ctx)
    size = int(ctx.params["size"])
    half = size // 2
    padded = np.pad(
        image, ((0, 0), (half, size - 1 - half), (half, size - 1 - half), (0, 0)), mode="edge"
    )
    height, width = image.shape[1], image.shape[2]
    total = np.zeros_like(image)
    for dy in range(size):
        for dx in range(size):
            total += padded[:, dy : dy + height, dx : dx + width, :]
    return _from_nhwc(total / (size * size), x, ctx)


_KINDS: dict[str, PerturbationKind] = {}
_LOCK = threading.Lock()
_plugins_loaded = False


def register_perturbation(kind: PerturbationKind) -> None:
    """Register a perturbation kind (a later registration of the same name replaces it)."""
    with _LOCK:
        _KINDS[kind.name] = kind


for _kind in (
    PerturbationKind("noise", _noise, {"std": 0.1}, description="x + std * feature_std * N(0, 1)"),
    PerturbationKind("scale", _scale, {"factor": 1.1}, description="x * factor"),
    PerturbationKind("shift", _shift, {"std": 0.5}, description="x + std * feature_std"),
    PerturbationKind(
        "dropout",
        _dropout,
        {"rate": 0.1, "fill": "zero"},
        description="a share of features to 0 or the mean",
    ),
    PerturbationKind(
        "extremes",
        _extremes,
        {"rate": 0.1, "k": None},
        description="a share of features to the observed min/max, or mean +- k std",
    ),
    PerturbationKind(
        "brightness",
        _brightness,
        {"delta": 0.1, "clip": True},
        image=True,
        description="x + delta * value range",
    ),
    PerturbationKind(
        "contrast",
        _contrast,
        {"factor": 1.5, "clip": True},
        image=True,
        description="(x - image mean) * factor + image mean, per channel",
    ),
    PerturbationKind("blur", _blur, {"size": 3}, image=True, description="box blur, size x size"),
):
    register_perturbation(_kind)
del _kind


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_entry_points("compval.perturbations", PerturbationKind, register_perturbation)


def available_perturbations() -> tuple[str, ...]:
    """Names of the registered perturbation kinds (built-in and plugins)."""
    _load_plugins()
    return tuple(sorted(_KINDS))


def _check_param(where: str, kind: str, name: str, value: Any) -> None:
    numeric = {"std", "factor", "rate", "delta", "k", "size"}
    if (
        name in numeric
        and value is not None
        and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value)
        )
    ):
        raise SpecValidationError(
            f"{where}.{name}: must be a finite number for kind {kind!r}; got {echo(value)}.",
            path=f"{where}.{name}",
        )
    if name == "rate" and not 0 <= float(value) <= 1:
        raise SpecValidationError(
            f"{where}.rate: must be a fraction in [0, 1]; got {value!r}.", path=f"{where}.rate"
        )
    if name == "size" and (int(value) != value or int(value) < 1):
        raise SpecValidationError(
            f"{where}.size: must be a positive integer; got {value!r}.", path=f"{where}.size"
        )
    if name == "fill" and value not in ("zero", "mean"):
        raise SpecValidationError(
            f"{where}.fill: must be 'zero' or 'mean'; got {echo(value)}.", path=f"{where}.fill"
        )


def build_perturbation(spec: PerturbationSpec, *, index: int) -> Perturbation:
    """Resolve a spec entry against its kind; raise a SpecValidationError naming the field."""
    where = f"robustness.perturbations[{index}]"
    _load_plugins()
    kind = _KINDS.get(spec.kind)
    if kind is None:
        raise SpecValidationError(
            f"{where}.kind: unknown perturbation kind {echo(spec.kind)}; expected one of "
            f"{', '.join(sorted(_KINDS))} (or a kind registered with register_perturbation or "
            "the entry point group compval.perturbations).",
            path=f"{where}.kind",
        )
    unknown = sorted(set(spec.params) - set(kind.params))
    if unknown:
        raise SpecValidationError(
            f"{where}.params: unknown parameter(s) {unknown} for kind {kind.name!r}; expected "
            f"among {sorted(kind.params)}.",
            path=f"{where}.params",
        )
    params = {**kind.params, **spec.params}
    for name, value in params.items():
        _check_param(f"{where}.params", kind.name, name, value)
    image = None
    if kind.image:
        if spec.layout is None:
            raise SpecValidationError(
                f"{where}.layout: kind {kind.name!r} works on images and needs the layout; set "
                "layout: NCHW, NHWC or NHW (and image_shape for flat rows).",
                path=f"{where}.layout",
            )
        expected = 2 if spec.layout == "NHW" else 3
        if spec.image_shape is not None and len(spec.image_shape) != expected:
            raise SpecValidationError(
                f"{where}.image_shape: layout {spec.layout} needs {expected} dimensions per "
                f"image; got {spec.image_shape}.",
                path=f"{where}.image_shape",
            )
        image = (spec.layout, tuple(spec.image_shape or ()))
    elif spec.layout is not None or spec.image_shape is not None:
        raise SpecValidationError(
            f"{where}.layout: kind {kind.name!r} works per feature and takes no layout; remove "
            "layout and image_shape.",
            path=f"{where}.layout",
        )
    inputs = None if spec.inputs is None else tuple(spec.inputs)
    return Perturbation(spec.name, kind, params, inputs, image)


class PerturbedDataset:
    """A dataset whose batches carry perturbed inputs; labels, row ids and segments are kept.

    It streams: each batch of the wrapped dataset is perturbed as it passes, so memory stays
    flat in rows. Everything else (length, segment columns, feature names) is the wrapped
    dataset's.
    """

    def __init__(
        self,
        dataset: Dataset,
        perturbation: Perturbation,
        stats: Mapping[str, FeatureStats],
        *,
        seed: int,
    ) -> None:
        self._dataset = dataset
        self.perturbation = perturbation
        self._stats = stats
        self._seed = seed

    def __len__(self) -> int:
        return len(self._dataset)

    def __getattr__(self, name: str) -> Any:
        # Optional dataset attributes (feature_columns, segment_value_counts) pass through.
        return getattr(self._dataset, name)

    @property
    def segment_columns(self) -> Sequence[str]:
        return self._dataset.segment_columns

    @property
    def has_labels(self) -> bool:
        return self._dataset.has_labels

    def fingerprint(self) -> str:
        return f"{self._dataset.fingerprint()}+perturbation={self.perturbation.name}"

    def batches(self, batch_size: int) -> Iterator[Batch]:
        checked = False
        random = {
            name: RowRandom(self._seed, f"{self.perturbation.name}/{name}") for name in self._stats
        }
        for batch in self._dataset.batches(batch_size):
            if not checked:
                self._check_inputs(batch)
                checked = True
            yield Batch(
                inputs=self.perturbation.apply(
                    batch.inputs, batch.row_ids, self._stats, self._seed, random
                ),
                labels=batch.labels,
                row_ids=batch.row_ids,
                segments=batch.segments,
            )

    def _check_inputs(self, batch: Batch) -> None:
        p = self.perturbation
        wanted = p.inputs if p.inputs is not None else tuple(self._stats)
        missing = [n for n in wanted if n not in self._stats]
        if missing or not wanted:
            raise DataError(
                f"Perturbation {p.name!r}: input(s) {missing or '(none)'} are not float inputs of "
                f"the data; got float inputs {sorted(self._stats)} among "
                f"{sorted(batch.inputs)}. Perturbations change float features only; fix "
                "'inputs' in robustness.perturbations."
            )
        if p.image is not None:
            layout, shape = p.image
            for name in wanted:
                row_shape = tuple(np.asarray(batch.inputs[name]).shape[1:])
                want = 2 if layout == "NHW" else 3
                size = int(np.prod(shape)) if shape else 0
                if (shape and int(np.prod(row_shape)) != size) or (
                    not shape and len(row_shape) != want
                ):
                    raise DataError(
                        f"Perturbation {p.name!r}: input {name!r} has rows of shape {row_shape}; "
                        f"expected images in layout {layout}"
                        + (f" of shape {list(shape)}" if shape else f" ({want} dimensions per row)")
                        + ". Set image_shape for flat rows, or fix layout."
                    )
