"""Run sink ``wandb``: one Weights & Biases run per validation.

The run's config holds the parameters (spec and data hashes, model ids, batch size, seed);
its summary the headline metrics, as ``reference/<metric>`` and ``<candidate>/<metric>``
with ``_delta``, ``_ci_low`` and ``_ci_high`` (as in the MLflow sink), and the verdicts
(``verdict``, ``<candidate>/verdict``); ``checks`` and ``segments`` are W&B tables;
the report files are one artifact of type ``compval-report``. The run is tagged ``compval``
and with its verdict.

The project comes from the spec's ``tracking.project`` (default ``compval``); everything else
from W&B's own environment (``WANDB_API_KEY``, ``WANDB_ENTITY``, ``WANDB_BASE_URL``,
``WANDB_MODE=offline`` to log locally and ``wandb sync`` later). wandb is imported only when
a run is logged (extra: ``wandb``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compval._lazy import lazy_import
from compval.errors import OutputError
from compval.reports._tracking import (
    CHECK_COLUMNS,
    SEGMENT_COLUMNS,
    check_rows,
    first_line,
    model_metrics,
    quiet_deprecations,
    reference_metrics,
    run_name,
    run_params,
    segment_rows,
    setting,
    verdict,
)
from compval.results import Report

__all__ = ["ARTIFACT_TYPE", "configure", "send"]

Send = Callable[[Report, Mapping[str, Path]], None]
#: Type of the artifact that holds the report files.
ARTIFACT_TYPE = "compval-report"


def configure(settings: Mapping[str, str]) -> Send:
    """The sink's ``send`` with ``settings`` applied.

    ``project``: the W&B project; ``timeout_s``: how long W&B may take to start the run,
    retries included.
    """
    return functools.partial(_send, settings=dict(settings))


def _send(report: Report, paths: Mapping[str, Path], *, settings: Mapping[str, str]) -> None:
    wandb = lazy_import("wandb", extra="wandb")
    failures = (wandb.errors.Error, OSError)
    try:
        with quiet_deprecations():
            run = wandb.init(
                project=setting(settings, "project", "compval"),
                name=run_name(report),
                job_type="compval",
                config={**run_params(report), "verdict": verdict(report)},
                tags=["compval", verdict(report)],
                reinit="create_new",
                settings=wandb.Settings(
                    # W&B waits 90 s by default for an unreachable server, retrying.
                    init_timeout=float(setting(settings, "timeout_s", "30")),
                    console="off",  # compval's own output is not the run's log
                    x_disable_stats=True,  # no system-metrics sampler for a seconds-long log
                    silent=True,
                ),
            )
            exit_code = 1
            try:
                _log(wandb, run, report, paths)
                exit_code = 0
            finally:
                run.finish(exit_code=exit_code)
    except failures as exc:
        raise OutputError(
            f"Sink 'wandb': cannot log the run to Weights & Biases; got {type(exc).__name__}: "
            f"{first_line(exc)}. Check WANDB_API_KEY (or 'wandb login') and that the server "
            "(WANDB_BASE_URL) is reachable, or set WANDB_MODE=offline to log locally and "
            "'wandb sync' later; the report files are written."
        ) from exc


def _log(wandb: Any, run: Any, report: Report, paths: Mapping[str, Path]) -> None:
    summary: dict[str, Any] = {f"reference/{k}": v for k, v in reference_metrics(report).items()}
    summary["verdict"] = verdict(report)
    for candidate in report.candidates:
        summary[f"{candidate}/verdict"] = verdict(report, candidate)
        summary.update({f"{candidate}/{k}": v for k, v in model_metrics(report, candidate).items()})
    run.summary.update(summary)
    tables = {"checks": wandb.Table(columns=list(CHECK_COLUMNS), data=check_rows(report))}
    segments = segment_rows(report)
    if segments:
        tables["segments"] = wandb.Table(columns=list(SEGMENT_COLUMNS), data=segments)
    run.log(tables)
    artifact = wandb.Artifact(
        name="compval-report", type=ARTIFACT_TYPE, metadata=run_params(report)
    )
    for path in paths.values():
        artifact.add_file(str(path), name=Path(path).name)
    run.log_artifact(artifact)


send: Send = configure({})
