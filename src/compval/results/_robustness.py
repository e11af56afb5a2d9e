"""The robustness part of a report: perturbation suites and differential search, typed.

Filled by ``compval.engine`` from ``compval.robustness``; nothing here computes. The metrics
of each perturbed pass are in ``Report.metrics`` under segment ``perturbation=<name>``
(composing with segments: ``perturbation=<name>,label=3``), with ``robustness_gap``; the
search's ``robust_agreement[eps=<e>]`` is there too. This section says what was done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FoundCase",
    "PerturbationInfo",
    "RobustnessSection",
    "SearchResult",
    "SearchSettings",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PerturbationInfo:
    """One perturbation as applied: its name (the scope), kind and resolved parameters."""

    name: str
    kind: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...] | None = None
    layout: str | None = None
    image_shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchSettings:
    """The differential search as configured (``robustness.search``)."""

    method: str
    seeds: int
    epsilon: float
    budget_per_seed: int
    clip: bool
    tolerance: float | None
    input: str
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FoundCase:
    """One input found where the candidate and the reference disagree.

    ``size`` is max |x - x0| / std over the features (0: the seed row itself disagrees);
    ``divergence`` is the largest absolute difference between the two compared outputs.
    Predictions are class indices (classification) or the first output value.
    """

    seed_row_id: int
    size: float
    reference_prediction: float | int
    candidate_prediction: float | int
    divergence: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """The search's outcome for one candidate.

    ``robust_agreement`` is the share of seed rows where no disagreement was found within the
    ball, with a Clopper-Pearson interval (exact binomial, over the seed rows). It is a lower
    bound on nothing: a search that finds no disagreement does not prove there is none.
    ``edge_cases`` (not in report.json) holds the arrays of ``edge_cases.npz``.
    """

    candidate: str
    seeds: int
    seeds_with_disagreement: int
    robust_agreement: float
    ci_low: float | None
    ci_high: float | None
    confidence: float
    evaluations: int
    unconfirmed: int
    cases: tuple[FoundCase, ...]
    edge_cases: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``robustness.search_results[]`` entry (without the arrays)."""
        return {
            "candidate": self.candidate,
            "seeds": self.seeds,
            "seeds_with_disagreement": self.seeds_with_disagreement,
            "robust_agreement": self.robust_agreement,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "ci_method": "clopper_pearson",
            "evaluations": self.evaluations,
            "unconfirmed": self.unconfirmed,
            "cases": list(self.cases),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RobustnessSection:
    """What the robustness runs did: perturbations, feature statistics, search."""

    perturbations: tuple[PerturbationInfo, ...]
    feature_stats: str
    search: SearchSettings | None = None
    search_results: tuple[SearchResult, ...] = ()
    #: With several datasets: the one perturbed and searched (its scopes start with
    #: ``dataset=<name>``); None for a single dataset.
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready section (values still need ``_plain``)."""
        return {
            "dataset": self.dataset,
            "perturbations": list(self.perturbations),
            "feature_stats": self.feature_stats,
            "search": self.search,
            "search_results": [r.to_dict() for r in self.search_results],
        }
