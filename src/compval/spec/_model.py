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
from compval.spec._robustness import RobustnessSpec
from compval.spec._tracking import TrackingSpec
from compval.spec._types import BatchSize, SpecBool, SpecFloat, SpecInt, echo, strict_int

# `version: true` equals 1 in Python; only the integer 1 is a version.
_Version = Annotated[Literal[1], BeforeValidator(strict_int)]

__all__ = [
    "AcceptanceSpec",
    "CriterionSpec",
    "DataRef",
    "EmbeddingSpec",
    "ModelRef",
    "StatisticsSpec",
    "TaskSpec",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """A model to load. From the CLI it is a file; from Python it may be an object instead."""

    # ``from`` is a Python keyword: ``ModelRef(from_="reference")`` from Python.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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
    # -- deployment runtime (docs/targets.md) ---------------------------------------------
    device: str | None = Field(
        default=None,
        pattern=r"^(cpu|cuda(:[0-9]+)?)$",
        description="torch models: 'cpu' (default), 'cuda' or 'cuda:N'; the module and each "
        "batch move there and outputs come back to the host for scoring. ONNX Runtime models "
        "choose a device with 'providers'.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None,
        description="torch models: cast the module's floating parameters (and floating inputs) "
        "to this precision; outputs are compared as float32. With 'from: reference' this makes "
        "a precision candidate from the reference module without a second file.",
    )
    from_: Literal["reference"] | None = Field(
        default=None,
        alias="from",
        description="'reference': this candidate is the reference model itself, run with this "
        "entry's 'dtype' and 'device' (torch references only); 'path' must be unset.",
    )
    providers: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="ONNX Runtime execution providers in priority order (e.g. "
        "[CUDAExecutionProvider, CPUExecutionProvider]); the report records those active, "
        "and a requested provider that is not active is a warning note (an error under "
        "performance budgets).",
    )
    provider_options: dict[str, dict[str, str | int | float | bool]] | None = Field(
        default=None,
        description="ONNX Runtime: options per execution provider, passed to the session as "
        "written, e.g. {TensorrtExecutionProvider: {trt_fp16_enable: true}} or "
        "{CUDAExecutionProvider: {device_id: 1}}; each key must be one of 'providers'.",
    )
    signature: str | None = Field(
        default=None,
        min_length=1,
        description="LiteRT (.tflite) models: the signature to run; default serving_default, "
        "or the only one.",
    )
    # -- a model behind an inference server (docs/serving.md) ------------------------------
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="A served model's URL instead of a file: http(s)://host:port/v2/models/"
        "<name> (Open Inference Protocol, KServe v2) or .../v1/models/<name> (KServe v1). "
        "The same as an http(s) URL in 'path'.",
    )
    timeout_s: SpecFloat = Field(
        default=30.0, gt=0, description="Endpoints: seconds to wait for one request."
    )
    max_in_flight: SpecInt = Field(
        default=4,
        ge=1,
        le=256,
        description="Endpoints: the most inference requests in flight at once: batches the "
        "accuracy run sends ahead (one request each), or the parts of a split batch "
        "(request_rows).",
    )
    request_rows: SpecInt | None = Field(
        default=None,
        ge=1,
        description="Endpoints: rows per request; default: each batch is one request. Smaller "
        "requests are sent max_in_flight at a time and put back in row order.",
    )
    retries: SpecInt = Field(
        default=3,
        ge=0,
        le=20,
        description="Endpoints: retries of a request answered 503/429 (exponential backoff); "
        "the count is reported under the model's source.",
    )
    binary_data: SpecBool = Field(
        default=False,
        description="Endpoints (v2): send and receive tensors as raw bytes (the Open Inference "
        "Protocol's binary tensor extension, served by KServe and Triton) instead of JSON.",
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_is_the_path(cls, data: Any) -> Any:
        # One place holds the model's location: an endpoint is its path, so the engine, the
        # CLI and the naming treat both forms alike.
        if isinstance(data, dict) and data.get("endpoint") is not None:
            if data.get("path") not in (None, data["endpoint"]):
                raise ValueError("'endpoint' and 'path' exclude each other: give one")
            data = {**data, "path": data["endpoint"]}
        return data

    @model_validator(mode="after")
    def _options_name_providers(self) -> ModelRef:
        if self.provider_options:
            listed = self.providers or ["CPUExecutionProvider"]
            unknown = [p for p in self.provider_options if p not in listed]
            if unknown:
                raise ValueError(
                    f"provider_options names provider(s) {unknown} that are not in 'providers' "
                    f"{listed}; add them to 'providers' (in priority order), or remove their "
                    "options"
                )
        return self

    @model_validator(mode="after")
    def _derived_has_no_path(self) -> ModelRef:
        if self.from_ is not None and self.path is not None:
            raise ValueError(
                "'from' and 'path' exclude each other: a candidate derived from the reference "
                "has no file of its own (drop 'path', or drop 'from')"
            )
        if self.from_ is not None and self.dtype is None and self.device is None:
            raise ValueError(
                "'from: reference' needs 'dtype' or 'device' (otherwise the candidate is the "
                "reference itself)"
            )
        return self


#: A dataset name becomes the scope ``dataset=<name>``: no ',' or '=' (scope separators).
_DATASET_NAME = r"^[A-Za-z0-9_.:\-]+$"


class DataRef(_Strict):
    """One dataset both models run on (``data:`` holds one, or a list of named ones)."""

    name: str | None = Field(
        default=None,
        pattern=_DATASET_NAME,
        description="Required when 'data' is a list: the dataset's metrics and checks are "
        "scoped 'dataset=<name>' (composing with segments: 'dataset=ood,label=3').",
    )
    path: str = Field(description="A .npz, .npy, .csv or .parquet file.")
    labels: str | None = Field(default=None, description="Label column (or .npz key).")
    features: list[str] | None = Field(
        default=None,
        description="Feature columns (or .npz keys); default: every column that is not a label "
        "or segment column (for .npz: the key 'x' or 'features').",
    )
    segments: list[str] = Field(default_factory=list, description="Segment columns.")
    format: Literal["auto", "npy", "npz", "csv", "parquet"] = "auto"
    text: str | None = Field(
        default=None,
        description="Text column (parquet/CSV), tokenized per batch with 'tokenizer' into the "
        "model's named inputs (input_ids, attention_mask, token_type_ids, position_ids: each "
        "model gets those it declares). Exclusive with 'features'.",
    )
    tokenizer: str | None = Field(
        default=None,
        description="A LOCAL tokenizer folder (tokenizer.json, or a transformers tokenizer saved "
        "with save_pretrained) or a tokenizer.json file; relative to the spec's folder. Never "
        "downloaded. Required with 'text'.",
    )
    max_length: SpecInt = Field(
        default=512, ge=1, description="Texts are truncated to this many tokens (with 'text')."
    )
    choices: str | None = Field(
        default=None,
        description="Column of each question's choices (a parquet list of strings, or a JSON "
        "array per CSV cell); with 'text' (the prompt), 'tokenizer' and 'labels' (the 0-based "
        "answer) the data is a multiple-choice set for task causal_lm, scored by each choice's "
        "summed log-likelihood under both models (docs/tasks.md).",
    )
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

    @model_validator(mode="after")
    def _text_needs_tokenizer(self) -> DataRef:
        if (self.text is None) != (self.tokenizer is None):
            raise ValueError(
                "'text' and 'tokenizer' go together: a text column is tokenized with a local "
                "tokenizer folder (give both, or neither for numeric/pre-tokenized data)"
            )
        if self.choices is not None and (self.text is None or self.labels is None):
            raise ValueError(
                "'choices' makes a multiple-choice set: it needs 'text' (the prompt column), "
                "'tokenizer' and 'labels' (the column of 0-based answer indices)"
            )
        return self


class EmbeddingSpec(_Strict):
    """Settings of ``task: embedding`` (docs/tasks.md)."""

    neighbours_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [10],
        min_length=1,
        description="k values of neighbour agreement (neighbour_agreement[k=K]).",
    )
    max_rows: SpecInt = Field(
        default=100_000,
        ge=2,
        description="Neighbour agreement is exact up to this many rows; beyond, it is computed "
        "among a deterministic sample of this many rows (hash of seed and row id).",
    )
    pairs: SpecInt = Field(
        default=100_000, ge=1, description="Row pairs for the similarity Spearman correlation."
    )
    qrels: str | None = Field(
        default=None,
        description="Relevance judgements (CSV/TSV with a header): query id, document id and "
        "optional relevance columns; ids refer to data.labels (else to row numbers). Absolute "
        "or relative to the spec's folder.",
    )
    query_column: str = "query_id"
    document_column: str = "doc_id"
    relevance_column: str = "relevance"
    max_retrieval_rows: SpecInt = Field(
        default=1_000_000,
        ge=1,
        description="With qrels: the most rows retrieval keeps (exact, never sampled; about "
        "4 x dimensions bytes per row and candidate); more rows stop the run.",
    )
    retrieval_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [10],
        min_length=1,
        description="Cutoffs of retrieval_recall_score, ndcg_score and mrr_score.",
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
    embedding: EmbeddingSpec = Field(
        default_factory=EmbeddingSpec, description="Settings of task: embedding."
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
    data: DataRef | list[DataRef] = Field(
        description="One dataset, or a list of named datasets (validation, production_sample, "
        "ood ...), each with its own path, labels and segments; every metric and check then "
        "exists per dataset, scoped 'dataset=<name>'."
    )
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
    robustness: RobustnessSpec | None = Field(
        default=None,
        description="Perturbation suites and differential search for disagreement inputs "
        "(docs/robustness.md).",
    )

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

    @field_validator("data")
    @classmethod
    def _named_datasets(cls, data: DataRef | list[DataRef]) -> DataRef | list[DataRef]:
        if isinstance(data, DataRef):
            return data
        if not data:
            raise ValueError("'data' is an empty list; give one dataset or a list of named ones")
        seen: set[str] = set()
        for i, d in enumerate(data):
            if d.name is None:
                raise ValueError(
                    f"data[{i}].name is missing; each dataset of a list needs a name (its "
                    "metrics are scoped 'dataset=<name>'), e.g. name: validation"
                )
            if d.name in seen:
                raise ValueError(f"dataset name {echo(d.name)} is used twice; names must be unique")
            seen.add(d.name)
        return data

    @model_validator(mode="after")
    def _dataset_references(self) -> AcceptanceSpec:
        # A criterion or the robustness section naming an unknown dataset would gate nothing.
        names = [d.name for d in self.datasets] if self.multi_dataset else []
        wanted: list[tuple[str, str | list[str]]] = [
            (f"criterion {echo(c.id)}", c.dataset) for c in self.criteria if c.dataset is not None
        ]
        if self.robustness is not None and self.robustness.dataset is not None:
            wanted.append(("robustness.dataset", self.robustness.dataset))
        for where, value in wanted:
            if not self.multi_dataset:
                raise ValueError(
                    f"{where} names dataset(s) {value!r}, but 'data' is one dataset; make 'data' "
                    "a list of named datasets, or remove 'dataset'"
                )
            listed = [value] if isinstance(value, str) else value
            unknown = [n for n in listed if n != "*" and n not in names]
            if unknown:
                raise ValueError(
                    f"{where} names unknown dataset(s) {unknown}; expected names among {names} "
                    "or '*'"
                )
        return self

    @property
    def datasets(self) -> list[DataRef]:
        """Every dataset, in spec order (one for the single-dataset form)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    @property
    def multi_dataset(self) -> bool:
        """Whether ``data`` is a list of named datasets (metrics then scoped per dataset)."""
        return isinstance(self.data, list)

    @property
    def primary_data(self) -> DataRef:
        """The first dataset: profiling, numerics and (by default) robustness run on it."""
        return self.datasets[0]

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
