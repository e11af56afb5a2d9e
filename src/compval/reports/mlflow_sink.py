"""Run sink ``mlflow``: one MLflow run per validation, with a nested run per candidate.

The parent run holds the parameters (spec and data hashes, model ids, batch size, seed), the
reference model's headline metrics as ``reference.<metric>``, the verdict as the tag
``verdict``, the check and per-segment tables (``mlflow.log_table``: ``compval/checks.json``,
``compval/segments.json``) and the report files as artifacts under ``compval/``. Each nested
run (named after its candidate) holds that candidate's headline metrics, their deltas and
interval ends (``accuracy_score_delta_ci_low``), and its own verdict tag.

The tracking URI comes from the sink's settings (``--mlflow URI``, else
``MLFLOW_TRACKING_URI``, else the spec's ``tracking.mlflow``: the CLI resolves that order),
else MLflow's default. mlflow is imported only when a run is logged (extra: ``mlflow``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from compval._lazy import lazy_import
from compval.errors import OutputError
from compval.reports._tracking import (
    CHECK_COLUMNS,
    SEGMENT_COLUMNS,
    check_rows,
    columns,
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

__all__ = ["configure", "send"]

Send = Callable[[Report, Mapping[str, Path]], None]
#: Artifact folder of the report files and tables inside the run.
ARTIFACT_DIR = "compval"
# MlflowClient.log_batch takes at most 1000 metrics and 100 params or tags per call.
_MAX_METRICS = 1000
_MAX_PARAMS = 100


def configure(settings: Mapping[str, str]) -> Send:
    """The sink's ``send`` with ``settings`` applied.

    ``mlflow``: the tracking URI; ``project``: the experiment; ``timeout_s``: the timeout of
    each HTTP request.
    """
    return functools.partial(_send, settings=dict(settings))


def _send(report: Report, paths: Mapping[str, Path], *, settings: Mapping[str, str]) -> None:
    mlflow = lazy_import("mlflow", extra="mlflow")
    lazy_import("pandas", extra="mlflow")  # mlflow.log_table builds a DataFrame
    from compval.adapters import mlflow_http_limits, public_uri

    uri = setting(settings, "mlflow", "") or None
    experiment = setting(settings, "project", "compval")
    timeout_s = float(setting(settings, "timeout_s", "30"))
    failures = (lazy_import("mlflow.exceptions", extra="mlflow").MlflowException, OSError)
    try:
        with mlflow_http_limits(timeout_s), quiet_deprecations():
            client = mlflow.MlflowClient(tracking_uri=uri)
            _log(client, _experiment_id(client, experiment), report, paths)
    except failures as exc:
        where = public_uri(uri) if uri else "MLflow's default tracking URI"
        raise OutputError(
            f"Sink 'mlflow': cannot log the run to {where!r}; got {type(exc).__name__}: "
            f"{first_line(exc)}. Check that the tracking server is running and reachable, or "
            "pass another URI with --mlflow URI (or MLFLOW_TRACKING_URI); the report files "
            "are written."
        ) from exc


def _log(client: Any, experiment_id: str, report: Report, paths: Mapping[str, Path]) -> None:
    entities = lazy_import("mlflow.entities", extra="mlflow")
    tags_module = lazy_import("mlflow.utils.mlflow_tags", extra="mlflow")
    parent = client.create_run(
        experiment_id,
        run_name=run_name(report),
        tags={"verdict": verdict(report), "compval.role": "validation"},
    )
    parent_id = parent.info.run_id
    status = "FAILED"
    try:
        _log_batch(
            client,
            entities,
            parent_id,
            {f"reference.{k}": v for k, v in reference_metrics(report).items()},
            run_params(report),
        )
        client.log_table(
            parent_id,
            data=columns(CHECK_COLUMNS, check_rows(report)),
            artifact_file=f"{ARTIFACT_DIR}/checks.json",
        )
        segments = segment_rows(report)
        if segments:
            client.log_table(
                parent_id,
                data=columns(SEGMENT_COLUMNS, segments),
                artifact_file=f"{ARTIFACT_DIR}/segments.json",
            )
        for path in paths.values():
            client.log_artifact(parent_id, str(path), artifact_path=ARTIFACT_DIR)
        for candidate in report.candidates:
            child = client.create_run(
                experiment_id,
                run_name=candidate,
                tags={
                    tags_module.MLFLOW_PARENT_RUN_ID: parent_id,
                    "verdict": verdict(report, candidate),
                    "compval.role": "candidate",
                },
            )
            child_status = "FAILED"
            try:
                model = report.run.models.get(candidate, {})
                params = {"candidate": candidate, "model_id": str(model.get("model_id", ""))}
                source = model.get("source")
                if isinstance(source, Mapping):
                    params.update({f"source.{k}": str(v) for k, v in source.items() if v})
                _log_batch(
                    client, entities, child.info.run_id, model_metrics(report, candidate), params
                )
                child_status = "FINISHED"
            finally:
                client.set_terminated(child.info.run_id, status=child_status)
        status = "FINISHED"
    finally:
        client.set_terminated(parent_id, status=status)


def _log_batch(
    client: Any,
    entities: Any,
    run_id: str,
    metrics: Mapping[str, float],
    params: Mapping[str, str],
) -> None:
    now_ms = int(time.time() * 1000)
    metric_list = [entities.Metric(k, v, now_ms, 0) for k, v in metrics.items()]
    param_list = [entities.Param(k, v) for k, v in params.items()]
    for chunk in _chunks(metric_list, _MAX_METRICS):
        client.log_batch(run_id, metrics=chunk)
    for chunk in _chunks(param_list, _MAX_PARAMS):
        client.log_batch(run_id, params=chunk)


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:
        # Another run created it between the two calls; anything else fails again here.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


send: Send = configure({})
