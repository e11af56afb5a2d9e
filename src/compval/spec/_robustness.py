"""The ``robustness:`` section of the acceptance spec: perturbation suites and differential search.

Example::

    robustness:
      perturbations:
        - {name: noise_0.1, kind: noise, params: {std: 0.1}}
        - {name: dark, kind: brightness, params: {delta: -0.2}, layout: NHW, image_shape: [8, 8]}
      search: {seeds: 50, epsilon: 0.5, budget: 200}
    criteria:
      - {id: robust, metric: robustness_gap, max: 0.02}              # every perturbation
      - {id: noise, metric: robustness_gap, max: 0.02, segment: "perturbation=noise_0.1"}

Perturbation kinds are validated (and their parameters checked) by ``compval.robustness``,
which knows the built-in kinds and those that plugins register; this module only holds what
the user wrote. docs/robustness.md describes each kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from compval.spec._types import SpecBool, SpecFloat, SpecInt, echo

__all__ = [
    "ROBUSTNESS_METRIC_DIRECTIONS",
    "PerturbationSpec",
    "RobustnessSpec",
    "SearchSpec",
]

#: Gateable robustness metrics -> higher_is_better. ``robustness_gap`` exists per perturbation
#: scope (``perturbation=<name>``, composing with segments); ``robust_agreement`` is qualified by
#: the search's radius (``robust_agreement[eps=0.5]``).
ROBUSTNESS_METRIC_DIRECTIONS: Mapping[str, bool] = MappingProxyType(
    {"robustness_gap": False, "robust_agreement": True}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerturbationSpec(_Strict):
    """One named perturbation, applied identically to both models' inputs."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Scope name: metrics appear under segment 'perturbation=<name>'.",
    )
    kind: str = Field(
        min_length=1,
        description="noise, scale, shift, dropout, extremes, brightness, contrast, blur, or a "
        "kind a plugin registers (entry point group compval.perturbations).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The kind's parameters (docs/robustness.md)."
    )
    inputs: list[str] | None = Field(
        default=None, description="Model inputs to perturb; default: every float input."
    )
    layout: Literal["NCHW", "NHWC", "NHW"] | None = Field(
        default=None, description="Image layout; required by brightness, contrast and blur."
    )
    image_shape: list[SpecInt] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="For images stored as flat rows: the shape of one image in 'layout' order "
        "(NHW: [H, W]; NCHW: [C, H, W]; NHWC: [H, W, C]).",
    )


class SearchSpec(_Strict):
    """Differential search for inputs where a candidate and the reference disagree."""

    seeds: SpecInt = Field(default=50, ge=1, le=100_000, description="Seed rows (K).")
    epsilon: SpecFloat = Field(
        default=0.5,
        gt=0,
        allow_inf_nan=False,
        description="Radius of the ball around each seed row, in per-feature standard deviations "
        "(L-infinity).",
    )
    budget: SpecInt = Field(
        default=200, ge=2, le=1_000_000, description="Model evaluations per seed row."
    )
    method: Literal["evolution", "random", "pgd"] = Field(
        default="evolution",
        description="evolution: black-box search (a random corner probe, hierarchical sign "
        "search on the disagreement margin, bisection of decision-boundary crossings), for any "
        "runtime; random: uniform sampling in the ball (the baseline); pgd: "
        "projected gradient ascent on the disagreement margin, when both models are torch "
        "modules.",
    )
    clip: SpecBool = Field(
        default=True, description="Keep searched inputs within the observed feature ranges."
    )
    tolerance: SpecFloat | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Regression/generic tasks: a disagreement is a max absolute output "
        "difference above this (required for those tasks).",
    )
    top: SpecInt = Field(default=10, ge=0, le=1000, description="Found cases in the report.")


class RobustnessSpec(_Strict):
    """Perturbation suites and differential search (docs/robustness.md)."""

    perturbations: list[PerturbationSpec] = Field(default_factory=list)
    search: SearchSpec | None = None
    dataset: str | None = Field(
        default=None,
        description="With several datasets: the one perturbed and searched (default: the "
        "first); its scopes read 'dataset=<name>,perturbation=<p>'.",
    )

    @field_validator("perturbations")
    @classmethod
    def _unique_names(cls, perturbations: list[PerturbationSpec]) -> list[PerturbationSpec]:
        seen: set[str] = set()
        for p in perturbations:
            if p.name in seen:
                raise ValueError(
                    f"perturbation name {echo(p.name)} is used twice; names must be unique"
                )
            seen.add(p.name)
        return perturbations
