"""What the tracker sinks (MLflow, Weights & Biases, ClearML) log, chosen once for all three.

Parameters (spec and data hashes, model ids, batch size, seed), the headline metrics of each
model with their deltas and interval ends, the check table and the per-segment table. Values
are copied from the report as they are: a tracker shows exactly what ``report.json`` holds.
Nothing here imports a tracker.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeGuard

from compval.reports._format import is_overall
from compval.results import MetricValue, Report

__all__ = [
    "CHECK_COLUMNS",
    "SEGMENT_COLUMNS",
    "check_rows",
    "columns",
    "first_line",
    "headline",
    "metric_key",
    "model_metrics",
    "quiet_deprecations",
    "reference_metrics",
    "run_name",
    "run_params",
    "segment_rows",
    "setting",
    "verdict",
]

CHECK_COLUMNS = (
    "id",
    "candidate",
    "metric",
    "segment",
    "verdict",
    "observed",
    "threshold",
    "severity",
    "blocking",
    "message",
)
SEGMENT_COLUMNS = (
    "candidate",
    "metric",
    "segment",
    "n",
    "reference",
    "candidate_value",
    "delta",
    "ci_low",
    "ci_high",
)
# MLflow accepts letters, digits, '_', '-', '.', ' ', ':' and '/' in metric and parameter
# names; '[', ']' and '=' (in 'latency_p95_ms[batch=8]') are not among them.
_KEY_UNSAFE = re.compile(r"[^\w.\- /:]+")


def setting(settings: Mapping[str, str], name: str, default: str) -> str:
    """A sink setting (``--mlflow URI``, the spec's ``tracking:``), else ``default``."""
    value = settings.get(name)
    return value if value else default


def verdict(report: Report, candidate: str | None = None) -> str:
    """``pass`` or ``fail``: the gate of the whole run, or of one candidate."""
    passed = report.passed if candidate is None else report.candidate_passed(candidate)
    return "pass" if passed else "fail"


def run_name(report: Report) -> str:
    """``compval <spec file stem>``, or ``compval <reference> vs <candidates>`` without a spec."""
    spec = report.run.spec_path
    if spec:
        stem = re.split(r"[\\/]", spec)[-1].rsplit(".", 1)[0]
        return f"compval {stem}"
    reference = _reference_name(report)
    return f"compval {reference} vs {', '.join(report.candidates)}"


def run_params(report: Report) -> dict[str, str]:
    """The run's parameters: what must match for two runs to be comparable."""
    run = report.run
    params = {
        "spec_hash": run.spec_hash or "",
        "data_hash": run.data_hash,
        "data_rows": str(run.data_rows),
        "batch_size": str(run.batch_size),
        "seed": str(run.seed),
        "task": run.task,
        "compval_version": run.compval_version,
        "reference": _reference_name(report),
        "candidates": ",".join(report.candidates),
    }
    for name, model in run.models.items():
        params[metric_key(f"model_id.{name}")] = str(model.get("model_id", ""))
        source = model.get("source")
        if isinstance(source, Mapping) and source.get("uri"):
            params[metric_key(f"model_uri.{name}")] = str(source["uri"])
            if source.get("version"):
                params[metric_key(f"model_version.{name}")] = str(source["version"])
    return params


def metric_key(name: str) -> str:
    """``name`` with the characters trackers refuse replaced by ``_``.

    Example:
        >>> metric_key("latency_p95_ms[batch=8]")
        'latency_p95_ms_batch_8'
    """
    return _KEY_UNSAFE.sub("_", name).strip("_") or "_"


def headline(report: Report, candidate: str) -> list[MetricValue]:
    """The overall metrics of ``candidate`` worth a tracker's column.

    Plain metrics (``accuracy_score``), plus the per-class or per-batch-size entries
    (``latency_p95_ms[batch=8]``) that a check gates; the other entries stay in the tables
    and report files.
    """
    gated = {c.metric for c in report.checks if c.candidate == candidate}
    return [
        m
        for m in report.metrics
        if m.candidate == candidate
        and is_overall(m.segment)
        and ("[" not in m.metric or m.metric in gated)
    ]


def _key(m: MetricValue) -> str:
    """A headline metric's tracker key: ``<metric>``, or ``<dataset>/<metric>``.

    The second for one dataset's overall value in a spec with several datasets.
    """
    if m.segment is None:
        return metric_key(m.metric)
    return f"{metric_key(m.segment.partition('=')[2])}/{metric_key(m.metric)}"


def model_metrics(report: Report, candidate: str) -> dict[str, float]:
    """A candidate's headline metrics with their deltas and interval ends.

    ``<metric>`` is the candidate's value; ``<metric>_delta`` (candidate - reference) with
    ``<metric>_delta_ci_low``/``_ci_high`` where the metric has a reference value, else
    ``<metric>_ci_low``/``_ci_high`` bound the paired value itself (agreement, KL divergence).
    Missing and non-finite values are left out.
    """
    out: dict[str, float] = {}
    for m in headline(report, candidate):
        key = _key(m)
        bound = f"{key}_delta" if m.delta is not None else key
        values = {
            key: m.candidate_value,
            f"{key}_delta": m.delta,
            f"{bound}_ci_low": m.ci_low,
            f"{bound}_ci_high": m.ci_high,
        }
        out.update({k: float(v) for k, v in values.items() if _finite(v)})
    return out


def reference_metrics(report: Report) -> dict[str, float]:
    """The reference model's headline metrics (the same for every candidate: the first's)."""
    if not report.candidates:
        return {}
    return {
        _key(m): float(m.reference_value)
        for m in headline(report, report.candidates[0])
        if _finite(m.reference_value)
    }


def check_rows(report: Report) -> list[list[Any]]:
    """One row per check, in ``CHECK_COLUMNS`` order."""
    return [
        [
            c.id,
            c.candidate,
            c.metric,
            c.segment or "overall",
            c.verdict,
            _cell(c.observed),
            _cell(c.threshold),
            c.severity,
            c.blocking,
            c.message,
        ]
        for c in report.checks
    ]


def segment_rows(report: Report) -> list[list[Any]]:
    """One row per metric of each segment (not overall), in ``SEGMENT_COLUMNS`` order."""
    return [
        [
            m.candidate,
            m.metric,
            m.segment,
            m.n,
            _cell(m.reference_value),
            _cell(m.candidate_value),
            _cell(m.delta),
            _cell(m.ci_low),
            _cell(m.ci_high),
        ]
        for m in report.metrics
        if not is_overall(m.segment)
    ]


def columns(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows turned into ``{column: values}`` (what ``mlflow.log_table`` takes)."""
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def _reference_name(report: Report) -> str:
    for name, model in report.run.models.items():
        if model.get("role") == "reference":
            return str(name)
    return "reference"


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell(value: float | None) -> float | None:
    """A table cell: None for a missing or non-finite value (JSON has no NaN)."""
    return float(value) if _finite(value) else None


@contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Silence the trackers' deprecation notices while they log.

    They come from inside the libraries (pandas 3 dtype changes in ``mlflow.log_table``,
    SQLAlchemy loader options, pyparsing names in ClearML): nothing a compval user can act on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (trackers append long server responses)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
