"""Acceptance spec: models, data, criteria; one loader for YAML and TOML."""

from __future__ import annotations

from compval.spec._criterion import CriterionSpec
from compval.spec._load import LoadedSpec, load_spec, parse_spec, spec_from_mapping
from compval.spec._model import (
    AcceptanceSpec,
    DataRef,
    ModelRef,
    StatisticsSpec,
    TaskSpec,
)
from compval.spec._starter import STARTER_SPEC

__all__ = [
    "STARTER_SPEC",
    "AcceptanceSpec",
    "CriterionSpec",
    "DataRef",
    "LoadedSpec",
    "ModelRef",
    "StatisticsSpec",
    "TaskSpec",
    "load_spec",
    "parse_spec",
    "spec_from_mapping",
]
