"""One acceptance criterion as written in a spec (explicit or concise form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compval.spec._types import SpecFloat

__all__ = ["CONCISE_FORMS", "CriterionSpec", "OpName"]

OpName = Literal[">=", ">", "<=", "<", "=="]
CONCISE_FORMS = (
    "max_drop",
    "max_increase",
    "max_relative_drop",
    "max_relative_increase",
    "min",
    "max",
)


class CriterionSpec(BaseModel):
    """One acceptance criterion, in explicit or concise form.

    Explicit: ``metric``, ``compare``, ``op``, ``threshold``. Concise (exactly one of):
    ``max_drop`` (delta >= -d on a higher-is-better metric), ``max_increase`` (delta <= d on a
    lower-is-better one), ``max_relative_drop`` (ratio >= 1 - r), ``max_relative_increase``
    (ratio <= 1 + r), ``min`` (candidate >= v), ``max`` (candidate <= v).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    metric: str = Field(min_length=1)
    compare: Literal["candidate", "reference", "delta", "ratio"] | None = None
    op: OpName | None = None
    threshold: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    statistic: Literal["auto", "point", "interval"] = Field(
        default="auto",
        description="point: decide on the estimate; interval: non-inferiority on the confidence "
        "interval (pass needs the worst end within the threshold); auto: interval when "
        "statistics are on and the metric has an interval, else point.",
    )
    max_drop: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    max_increase: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    max_relative_drop: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    max_relative_increase: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    min: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    max: SpecFloat | None = Field(default=None, allow_inf_nan=False)
    segment: str | None = Field(
        default=None,
        description="None/'overall': the whole data; '*': every segment; 'col=*': every value "
        "of one column; 'col=value': one segment; 'discovered': discovered weak slices.",
    )
    severity: Literal["error", "warn"] = "error"
    candidates: list[str] | None = Field(default=None, description="Default: every candidate.")
    dataset: str | list[str] | None = Field(
        default=None,
        description="With several datasets: the dataset(s) gated, by name, or '*' (every "
        "dataset; each must have what the criterion needs). Default: every dataset that can "
        "decide it (labels for label-based metrics, the segment column for a segment scope); "
        "the ones left out are named in run.notes.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> CriterionSpec:
        concise = [name for name in CONCISE_FORMS if getattr(self, name) is not None]
        explicit = [n for n in ("compare", "op", "threshold") if getattr(self, n) is not None]
        if len(concise) > 1:
            raise ValueError(
                f"give one concise form, not {len(concise)} ({', '.join(concise)}); "
                "write two criteria to check both"
            )
        if concise and explicit:
            raise ValueError(
                f"'{concise[0]}' cannot be combined with {', '.join(explicit)}; use either the "
                "concise form or the explicit form (compare, op, threshold)"
            )
        if not concise and (self.op is None or self.threshold is None):
            raise ValueError(
                "needs a threshold: either a concise form (max_drop, max_increase, "
                "max_relative_drop, max_relative_increase, min, max) or 'op' and 'threshold'"
            )
        return self
