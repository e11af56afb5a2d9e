"""The report: one data object, rendered to JSON (the contract), Markdown, JUnit and console.

Nothing here computes: everything is filled in by ``compval.engine`` from the
statistics and profiling code; renderers only format it.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from compval.results._numerics import NumericsSection
from compval.results._profile import ProfileSection
from compval.results._robustness import RobustnessSection
from compval.results._statistics import StatisticsSection

__all__ = ["SCHEMA_VERSION", "CheckResult", "MetricValue", "Report", "RunInfo", "Verdict"]

SCHEMA_VERSION = 1
Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricValue:
    """One metric for one candidate in one segment.

    ``delta`` is candidate - reference, None for paired metrics (agreement, output fidelity)
    that have a single value; those put it in ``candidate_value``. ``ci_low``/``ci_high``
    bound the delta (or the paired value) when statistics are on.
    """

    candidate: str
    metric: str
    segment: str | None
    reference_value: float | None
    candidate_value: float | None
    delta: float | None
    n: int
    higher_is_better: bool | None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    ci_method: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The verdict of one criterion for one candidate in one segment.

    ``blocking`` says whether a verdict other than pass closes the gate (criteria with
    ``severity: warn``, and inconclusive verdicts where the spec allows them, do not).
    ``criterion`` is the explicit form of the criterion (metric, compare, statistic, op,
    threshold, scope) whatever concise form the spec used.
    """

    id: str
    candidate: str
    metric: str
    segment: str | None
    verdict: Verdict
    observed: float | None
    threshold: float
    message: str
    severity: Literal["error", "warn"]
    blocking: bool
    criterion: Mapping[str, Any]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def junit_name(self) -> str:
        """Stable test name: ``<id>[<candidate>][<segment>]``."""
        return f"{self.id}[{self.candidate}][{self.segment or 'overall'}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """Provenance: enough to reproduce the run and to tell two runs apart."""

    compval_version: str
    python_version: str
    platform: str
    runtimes: Mapping[str, str]
    task: str
    spec_hash: str | None
    spec_path: str | None
    data_hash: str
    data_rows: int
    seed: int
    batch_size: int
    started_at: str
    finished_at: str
    duration_s: float
    models: Mapping[str, Mapping[str, Any]]
    segment_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: With several datasets (``data:`` as a list): one entry per dataset, in spec order
    #: (name, path, rows, content hash, labels column, segment columns). ``data_hash`` then
    #: hashes their names and hashes, ``data_rows`` sums their rows. Empty for one dataset.
    datasets: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything a run found. ``to_dict()`` is the report.json contract (schema_version 1)."""

    run: RunInfo
    metrics: tuple[MetricValue, ...]
    checks: tuple[CheckResult, ...]
    candidates: tuple[str, ...]
    statistics: StatisticsSection | None = None
    profile: ProfileSection | None = None
    numerics: NumericsSection | None = None
    robustness: RobustnessSection | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def passed(self) -> bool:
        """True when every blocking check passed."""
        return all(c.verdict == "pass" or not c.blocking for c in self.checks)

    def candidate_passed(self, candidate: str) -> bool:
        """True when every blocking check of ``candidate`` passed."""
        return all(
            c.verdict == "pass" or not c.blocking for c in self.checks if c.candidate == candidate
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report (see docs/report.schema.json)."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "passed": self.passed,
            "candidates": [
                {"name": name, "passed": self.candidate_passed(name)} for name in self.candidates
            ],
            "run": _plain(_fields(self.run)),
            "metrics": [_plain(_fields(m)) for m in self.metrics],
            "checks": [{**_plain(_fields(c)), "name": c.junit_name} for c in self.checks],
        }
        if self.statistics is not None:
            out["statistics"] = _plain(self.statistics.to_dict())
        if self.profile is not None:
            out["profile"] = _plain(self.profile.to_dict())
        if self.numerics is not None:
            out["numerics"] = _plain(self.numerics.to_dict())
        if self.robustness is not None:
            out["robustness"] = _plain(self.robustness.to_dict())
        return out


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, one level deep.

    ``dataclasses.asdict`` deep-copies every value, which fails on mappings such as
    ``MappingProxyType`` and copies arrays for nothing; ``_plain`` does the recursion instead.
    """
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _plain(value: Any) -> Any:
    """Convert to JSON types: mappings, sequences, dataclasses, enums, numpy; NaN/Inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(_fields(value))
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        # numpy scalars and arrays: tolist() gives Python scalars / nested lists.
        return _plain(tolist())
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)
