"""Acceptance checks: criteria in explicit form and their evaluation."""

from __future__ import annotations

from compval._public import name_public_functions
from compval.checks._criteria import (
    OPS,
    Criterion,
    DatasetFacts,
    resolve_criteria,
    resolve_criterion,
)
from compval.checks._evaluate import CheckSettings, evaluate

__all__ = [
    "OPS",
    "CheckSettings",
    "Criterion",
    "DatasetFacts",
    "evaluate",
    "resolve_criteria",
    "resolve_criterion",
]

name_public_functions(__name__, globals(), __all__)
