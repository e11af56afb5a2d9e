"""Renderers of a :class:`compval.results.Report`: JSON (contract), Markdown, JUnit, HTML, console.

``reports/`` never computes and imports only ``compval.results`` and ``compval.errors``:
renderers only format a ``Report``. ``report.json`` follows ``docs/report.schema.json``
(schema_version 1). Formats and run sinks are registries (``register_renderer``,
``register_sink``).
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.reports._format import visible
from compval.reports._registry import (
    FILENAMES,
    RENDERERS,
    RunSink,
    get_sink,
    prepare_renderers,
    register_renderer,
    register_sink,
    sink_names,
)
from compval.reports._write import write_atomic, write_reports
from compval.reports.console import render_console, verdict_line
from compval.reports.html import render_html
from compval.reports.json import render_json
from compval.reports.junit import render_junit
from compval.reports.markdown import render_markdown

__all__ = [
    "FILENAMES",
    "RENDERERS",
    "RunSink",
    "get_sink",
    "prepare_renderers",
    "register_renderer",
    "register_sink",
    "render_console",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_atomic",
    "sink_names",
    "verdict_line",
    "visible",
    "write_reports",
]

name_public_functions(__name__, globals(), __all__)
