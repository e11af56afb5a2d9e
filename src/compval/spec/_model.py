"""The acceptance spec (version 1) as pydantic models: unknown keys are errors.

The same objects come from a YAML/TOML file (``load_spec``), from CLI flags, or from Python.
Concise criterion forms (``max_drop``, ``max_relative_drop``, ``min``, ``max`` ...) are kept as
written here and turned into exactly one explicit criterion by ``compval.checks.resolve``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from compval.spec._criterion import CriterionSpec
from compval.spec._numerics import NUMERICS_METRIC_DIRECTIONS, NumericsSpec
from compval.spec._performance import PerformanceSpec
from compval.spec._tracking import TrackingSpec
from compval.spec._types import BatchSize, SpecBool, SpecFloat, SpecInt, echo, strict_int

# `version: true` equals 1 in Python; only the integer 1 is a version.
_Version = Annotated[Literal[1], BeforeValidator(strict_int)]

__all__ = [
    "AcceptanceSpec",
    "CriterionSpec",
    "DataRef",
    "ModelRef",
    "StatisticsSpec",
    "TaskSpec",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """A model to load. From the CLI it is a file; from Python it may be an object instead."""

    name: str | None = Field(default=None, description="Name shown in reports; default: file stem.")
    path: str | None = Field(default=None, description="Model file (.onnx, .pt, .pt2, .joblib).")
    adapter: str = Field(
        default="auto",
        min_length=1,
        description="Runtime: 'auto' picks by file extension; else a registered runtime name "
        "(onnxruntime, torchscript, torch_export, sklearn, or one a plugin registers).",
    )
    output: str | None = Field(
        default=None, min_length=1, description="Output to compare; default: the first."
    )
    threads: SpecInt | None = Field(default=None, ge=1, description="Intra-op thread count.")
    allow_pickle: SpecBool = Field(
        default=False, description="Allow loading pickle/joblib files (runs code from the file)."
    )


class DataRef(_Strict):
    """The labelled dataset both models run on."""

    path: str = Field(description="A .npz, .npy, .csv or .parquet file.")
    labels: str | None = Field(default=None, description="Label column (or .npz key).")
    features: list[str] | None = Field(
        default=None,
        description="Feature columns (or .npz keys); default: every column that is not a label "
        "or segment column (for .npz: the key 'x' or 'features').",
    )
    segments: list[str] = Field(default_factory=list, description="Segment columns.")
    format: Literal["auto", "npy", "npz", "csv", "parquet"] = "auto"
    allow_nonfinite_features: SpecBool = Field(
        default=False,
        description="By default a NaN or Inf in a feature stops the run (one Inf spoils a whole "
        "batch of a dynamically quantized model, and the candidate would be blamed); true "
        "keeps such rows and reports their count per column in run.notes.",
    )
    max_segment_values: SpecInt | None = Field(
        default=1000,
        ge=1,
        description="The most distinct values a segment column may hold. Each value is a "
        "segment with its own metrics and checks (about 10 KB of report.json per candidate "
        "and ten-odd ms of statistics each), so an id-like column would bloat the report and "
        "exhaust memory: more values stop the run (exit 5) as soon as they are seen. null: "
        "no limit.",
    )


class TaskSpec(_Strict):
    """What the models predict."""

    type: str = Field(
        default="classification",
        min_length=1,
        description="A registered task: classification, regression, generic (or a plugin's).",
    )
    outputs: Literal["auto", "logits", "probabilities", "labels"] = Field(
        default="auto",
        description="Classification output kind; 'auto' detects it from the first batch.",
    )


class StatisticsSpec(_Strict):
    """How much evidence a verdict needs."""

    replicates: SpecInt = Field(
        default=2000, ge=0, le=1_000_000, description="0 turns resampling off."
    )
    confidence: SpecFloat = Field(default=0.95, gt=0.5, lt=1.0)
    seed: SpecInt | None = Field(default=None, description="Default: the spec's seed.")
    min_rows: SpecInt = Field(
        default=30, ge=1, description="Smaller segments are too small to decide."
    )
    correction: Literal["holm", "bh", "none"] = "holm"
    inconclusive: Literal["block", "warn"] = "block"
    discovery: SpecBool = Field(
        default=True,
        description="Search single features and pairs for the slices where the candidate "
        "loses most (tabular data with labels).",
    )
    top_slices: SpecInt = Field(default=5, ge=1, le=100, description="Discovered slices reported.")


class AcceptanceSpec(_Strict):
    """A full acceptance suite: models, data, task, criteria, statistics and performance."""

    version: _Version = Field(description="Spec format version; must be 1.")
    task: TaskSpec = Field(default_factory=TaskSpec)
    reference: ModelRef
    candidates: list[ModelRef] = Field(min_length=1)
    data: DataRef
    batch_size: BatchSize = 256
    seed: SpecInt = 0
    allow_nonfinite: SpecBool = Field(
        default=False,
        description="By default any NaN/Inf in a candidate's outputs fails the built-in "
        "'nonfinite-outputs' check; true removes that check.",
    )
    criteria: list[CriterionSpec] = Field(default_factory=list)
    statistics: StatisticsSpec = Field(default_factory=StatisticsSpec)
    performance: PerformanceSpec | None = None
    numerics: NumericsSpec | None = Field(
        default=None,
        description="Where the candidate's error arises: per-layer localization, saturation, "
        "batch consistency (docs/numerics.md).",
    )
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "candidate" in data:
            if "candidates" in data:
                raise ValueError("give 'candidate' or 'candidates', not both")
            data["candidates"] = [data.pop("candidate")]
        if isinstance(data.get("task"), str):
            data["task"] = {"type": data["task"]}
        return data

    @field_validator("criteria")
    @classmethod
    def _unique_ids(cls, criteria: list[CriterionSpec]) -> list[CriterionSpec]:
        seen: set[str] = set()
        for c in criteria:
            if c.id in seen:
                raise ValueError(f"criterion id {echo(c.id)} is used twice; ids must be unique")
            seen.add(c.id)
        return criteria

    @model_validator(mode="after")
    def _numerics_criteria_need_the_section(self) -> AcceptanceSpec:
        # Without the section nothing computes these metrics: the criterion could only ever
        # be inconclusive, which a gate would report long after the spec was written.
        if self.numerics is None:
            for c in self.criteria:
                if c.metric in NUMERICS_METRIC_DIRECTIONS:
                    raise ValueError(
                        f"criterion {echo(c.id)} gates the numerics metric {echo(c.metric)}, "
                        "which only a 'numerics:' section computes; add 'numerics: {}' to the "
                        "spec (or run 'compval diagnose')"
                    )
        return self

    @property
    def statistics_seed(self) -> int:
        """The seed used for resampling."""
        return self.seed if self.statistics.seed is None else self.statistics.seed
