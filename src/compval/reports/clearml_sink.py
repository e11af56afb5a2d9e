"""Run sink ``clearml``: one ClearML task (type ``qc``) per validation.

Scalars at iteration 0: one plot per metric (``accuracy_score``, ``accuracy_score_delta``,
``accuracy_score_delta_ci_low`` ... as in the MLflow sink), one series per model
(``reference`` and each candidate). The parameters are the task's ``compval`` hyperparameter
section; the check and per-segment tables are table plots (``checks``, ``segments``); each
report file is an artifact; the task is tagged ``compval`` and with its verdict.

The project comes from the spec's ``tracking.project`` (default ``compval``); the server and
credentials from ClearML's own configuration (``clearml.conf``, ``CLEARML_API_HOST``,
``CLEARML_API_ACCESS_KEY`` ...). Offline mode (``CLEARML_OFFLINE_MODE=1`` or
``Task.set_offline(True)``) writes the task to ClearML's offline folder for a later
``clearml-task --import-offline-session``. When the process already runs inside a ClearML
task, the report is logged to that task, which is left open. clearml is imported only when a
run is logged (extra: ``clearml``).
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

__all__ = ["configure", "send"]

Send = Callable[[Report, Mapping[str, Path]], None]
#: ClearML's default is 240 retries per request: an unreachable server looks like a hang.
_HTTP_RETRIES = {"total": 2, "connect": 2, "read": 2, "status": 2, "backoff_factor": 1.0}


def configure(settings: Mapping[str, str]) -> Send:
    """The sink's ``send`` with ``settings`` (``project``)."""
    return functools.partial(_send, settings=dict(settings))


def _send(report: Report, paths: Mapping[str, Path], *, settings: Mapping[str, str]) -> None:
    with quiet_deprecations():  # clearml's bundled config parser warns on import
        clearml = lazy_import("clearml", extra="clearml")
        session_module = lazy_import("clearml.backend_api.session.session", extra="clearml")
    failures = (session_module.LoginError, ValueError, OSError)
    task_class = clearml.Task
    try:
        with quiet_deprecations():
            task = task_class.current_task()
            if task is not None:
                _log(task, report, paths)
                return
            shadowed = "_report_subprocess_enabled" in vars(task_class)
            try:
                task = _new_task(task_class, setting(settings, "project", "compval"), report)
                try:
                    _log(task, report, paths)
                finally:
                    task.close()
            finally:
                # Leave the class as ClearML configured it for later tasks of this process.
                if not shadowed and "_report_subprocess_enabled" in vars(task_class):
                    delattr(task_class, "_report_subprocess_enabled")
    except failures as exc:
        raise OutputError(
            f"Sink 'clearml': cannot log the run to ClearML; got {type(exc).__name__}: "
            f"{first_line(exc)}. Check the server and credentials (clearml.conf, "
            "CLEARML_API_HOST, CLEARML_API_ACCESS_KEY/SECRET_KEY), or set "
            "CLEARML_OFFLINE_MODE=1 to log locally; the report files are written."
        ) from exc


def _new_task(task_class: Any, project: str, report: Report) -> Any:
    if not task_class.is_offline():
        # Logs in now, with bounded retries, and becomes the session Task.init uses; an
        # unreachable server then fails here in seconds instead of retrying for minutes.
        session_class = lazy_import("clearml.backend_api", extra="clearml").Session
        config = lazy_import("clearml.config", extra="clearml").config_obj
        task_class._set_default_session(
            session_class(
                initialize_logging=False, config=config, http_retries_config=_HTTP_RETRIES
            )
        )
    # A reporting subprocess (ClearML's default on Linux) adds about 10 s to close() for a
    # handful of events; a thread does the same work at once.
    task_class._report_subprocess_enabled = False
    return task_class.init(
        project_name=project,
        task_name=run_name(report),
        task_type=task_class.TaskTypes.qc,
        reuse_last_task_id=False,
        # compval's process is not a training script: nothing to capture besides the report.
        auto_connect_frameworks=False,
        auto_connect_arg_parser=False,
        auto_connect_streams=False,
        auto_resource_monitoring=False,
    )


def _log(task: Any, report: Report, paths: Mapping[str, Path]) -> None:
    task.connect(run_params(report), name="compval")
    task.add_tags(["compval", verdict(report)])
    logger = task.get_logger()
    for key, value in reference_metrics(report).items():
        logger.report_scalar(title=key, series="reference", value=value, iteration=0)
    for candidate in report.candidates:
        for key, value in model_metrics(report, candidate).items():
            logger.report_scalar(title=key, series=candidate, value=value, iteration=0)
    logger.report_table(
        "checks", "all", iteration=0, table_plot=[list(CHECK_COLUMNS), *check_rows(report)]
    )
    segments = segment_rows(report)
    if segments:
        logger.report_table(
            "segments", "all", iteration=0, table_plot=[list(SEGMENT_COLUMNS), *segments]
        )
    for path in paths.values():
        task.upload_artifact(name=Path(path).name, artifact_object=Path(path), wait_on_upload=True)
    task.flush(wait_for_uploads=True)


send: Send = configure({})
