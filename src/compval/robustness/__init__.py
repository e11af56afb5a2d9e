"""Robustness: perturbation suites and differential search for disagreement inputs.

* Perturbations (:class:`PerturbationKind`, :func:`register_perturbation`, the entry point
  group ``compval.perturbations``) change a dataset's float inputs, identically for both models,
  with per-row randomness from (seed, perturbation, row id); :class:`PerturbedDataset` streams
  them, so each perturbation is one more paired run whose metrics carry the scope
  ``perturbation=<name>``.
* :class:`BlockCorrectness` (classification: accuracy), :class:`BlockAbsErrors` (regression:
  mean absolute error) and :func:`gap_estimates` give the robustness gap with an interval
  paired across the clean and perturbed passes.
* :func:`differential_search` looks around seed rows for inputs where the models disagree;
  :func:`write_edge_cases` saves them as a replayable dataset.

The engine runs all of this (``compval.engine``); docs/robustness.md says what each part does
and does not show.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.robustness._edge import EDGE_CASES_FILE, write_edge_cases
from compval.robustness._gap import (
    GAP_CI_METHOD,
    BlockAbsErrors,
    BlockCorrectness,
    gap_estimates,
)
from compval.robustness._perturb import (
    Perturbation,
    PerturbationContext,
    PerturbationKind,
    PerturbedDataset,
    available_perturbations,
    build_perturbation,
    register_perturbation,
)
from compval.robustness._search import SearchOutcome, differential_search
from compval.robustness._stats import FeatureStats, feature_stats

__all__ = [
    "EDGE_CASES_FILE",
    "GAP_CI_METHOD",
    "BlockAbsErrors",
    "BlockCorrectness",
    "FeatureStats",
    "Perturbation",
    "PerturbationContext",
    "PerturbationKind",
    "PerturbedDataset",
    "SearchOutcome",
    "available_perturbations",
    "build_perturbation",
    "differential_search",
    "feature_stats",
    "gap_estimates",
    "register_perturbation",
    "write_edge_cases",
]

name_public_functions(__name__, globals(), __all__)
