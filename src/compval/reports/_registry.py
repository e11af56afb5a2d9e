"""Report renderers and run sinks: what ``write_reports`` writes and who hears of a finished run.

A renderer turns a :class:`~compval.results.Report` into the text of one file; a run sink
receives the finished report and the paths of the files written (a tracker such as MLflow,
a CI summary). Adding either is one module plus one registration line at the bottom of this
file; third-party packages register sinks through the ``compval.sinks`` entry point group
(the object must be a :class:`RunSink`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from compval._plugins import load_entry_points
from compval.errors import InvalidParameterError, OutputError
from compval.reports import clearml_sink, mlflow_sink, wandb_sink
from compval.reports.html import render_html
from compval.reports.json import render_json
from compval.reports.junit import render_junit
from compval.reports.markdown import render_markdown
from compval.results import Report

__all__ = [
    "FILENAMES",
    "RENDERERS",
    "RunSink",
    "get_sink",
    "prepare_renderers",
    "register_renderer",
    "register_sink",
    "sink_names",
]

_RENDERERS: dict[str, Callable[[Report], str]] = {}
_FILENAMES: dict[str, str] = {}
_PREPARE: dict[str, Callable[[], None]] = {}
#: Format name -> ``render_<format>(report) -> str`` (a read-only view of the registry).
RENDERERS: Mapping[str, Callable[[Report], str]] = MappingProxyType(_RENDERERS)
#: Format name -> the file name ``write_reports`` gives it.
FILENAMES: Mapping[str, str] = MappingProxyType(_FILENAMES)


def register_renderer(
    name: str,
    render: Callable[[Report], str],
    *,
    filename: str,
    prepare: Callable[[], None] | None = None,
) -> None:
    """Make ``name`` a report format: ``render(report)`` is written to ``filename``.

    ``prepare`` (optional) does a renderer's slow one-time set-up, such as importing a
    plotting library; ``prepare_renderers`` runs it on the side while the models run.

    Raises:
        InvalidParameterError: The format name or the file name is taken.
    """
    if name in _RENDERERS or filename in _FILENAMES.values():
        raise InvalidParameterError(
            f"register_renderer: format {name!r} or file {filename!r} is already registered; "
            f"expected new ones (formats: {', '.join(_RENDERERS)})."
        )
    _RENDERERS[name] = render
    _FILENAMES[name] = filename
    if prepare is not None:
        _PREPARE[name] = prepare


def prepare_renderers(formats: Iterable[str]) -> None:
    """Start the set-up of the given formats' renderers on a daemon thread and return.

    A renderer with a slow set-up (a plug-in's heavy import) then overlaps inference instead
    of adding to the end of the run; the built-in renderers have none. A renderer whose
    set-up fails (its library is missing) reports that itself when it renders.
    """
    hooks = [_PREPARE[name] for name in formats if name in _PREPARE]
    if not hooks:
        return

    def run() -> None:
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook()

    threading.Thread(target=run, name="compval-prepare-reports", daemon=True).start()


@dataclass(frozen=True, slots=True)
class RunSink:
    """Receives each finished run.

    Attributes:
        name: Name used to select it (``compval validate --sink NAME``).
        send: Called with the report and the files written (format -> path); it may raise
            ``OutputError`` (exit code 5) when its destination refuses the report.
        description: One line for ``--help``.
        configure: Optional: builds ``send`` from the run's tracker settings (``mlflow``:
            the MLflow tracking URI, ``project``: the spec's ``tracking.project``), which the
            CLI gathers from its flags, the environment and the spec.
    """

    name: str
    send: Callable[[Report, Mapping[str, Path]], None]
    description: str = ""
    configure: (
        Callable[[Mapping[str, str]], Callable[[Report, Mapping[str, Path]], None]] | None
    ) = None

    def configured(self, settings: Mapping[str, str]) -> RunSink:
        """This sink with ``settings`` applied (itself when it takes none)."""
        if self.configure is None:
            return self
        return dataclasses.replace(self, send=self.configure(settings))


_SINKS: dict[str, RunSink] = {}
_plugins_loaded = False


def register_sink(sink: RunSink) -> None:
    """Make ``sink`` selectable by name."""
    if sink.name in _SINKS:
        raise InvalidParameterError(
            f"register_sink: sink name already used; got {sink.name!r}, expected a new name."
        )
    _SINKS[sink.name] = sink


def _sinks() -> Mapping[str, RunSink]:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_entry_points(
            "compval.sinks", RunSink, lambda s: None if s.name in _SINKS else register_sink(s)
        )
    return MappingProxyType(_SINKS)


def sink_names() -> tuple[str, ...]:
    """Registered sink names."""
    return tuple(_sinks())


def get_sink(name: str) -> RunSink:
    """The sink registered as ``name``.

    Raises:
        InvalidParameterError: No sink has that name (the message lists the known ones).
    """
    sinks = _sinks()
    if name not in sinks:
        raise InvalidParameterError(
            f"Unknown run sink; got {name!r}, expected one of {', '.join(sinks) or '(none)'}. "
            "Install the package that provides it, or fix the name."
        )
    return sinks[name]


def _github_summary(report: Report, paths: Mapping[str, Path]) -> None:
    """Append the Markdown report to the GitHub Actions job summary."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        raise OutputError(
            "Sink 'github-summary': GITHUB_STEP_SUMMARY is not set; got no summary file, "
            "expected to run inside a GitHub Actions job. Drop '--sink github-summary' "
            "outside GitHub Actions."
        )
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(render_markdown(report) + "\n")
    except OSError as exc:
        raise OutputError(
            f"Sink 'github-summary': cannot append to {target!r}; got {type(exc).__name__}: "
            f"{exc}, expected a writable file."
        ) from exc


# -- the built-in renderers and sinks: one registration each ---------------------------------
register_renderer("json", render_json, filename="report.json")
register_renderer("markdown", render_markdown, filename="report.md")
register_renderer("junit", render_junit, filename="junit.xml")
register_renderer("html", render_html, filename="report.html")
register_sink(
    RunSink("github-summary", _github_summary, "append report.md to the GitHub job summary")
)
# Trackers (extras mlflow, wandb, clearml; each imported only when a run is logged).
register_sink(RunSink("mlflow", mlflow_sink.send, "log to MLflow", mlflow_sink.configure))
register_sink(RunSink("wandb", wandb_sink.send, "log to W&B", wandb_sink.configure))
register_sink(RunSink("clearml", clearml_sink.send, "log to ClearML", clearml_sink.configure))
