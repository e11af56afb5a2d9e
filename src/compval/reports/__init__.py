"""The report: one data object, rendered to JSON (the contract), Markdown, JUnit and console.

``reports/`` never computes: renderers only format a ``Report``. ``report.json`` follows
``docs/report.schema.json`` (schema_version 1).
"""

from __future__ import annotations

from compval.reports._model import SCHEMA_VERSION, CheckResult, MetricValue, Report, RunInfo
from compval.reports._write import RENDERERS, write_atomic, write_reports
from compval.reports.console import render_console
from compval.reports.json import render_json
from compval.reports.junit import render_junit
from compval.reports.markdown import render_markdown

__all__ = [
    "RENDERERS",
    "SCHEMA_VERSION",
    "CheckResult",
    "MetricValue",
    "Report",
    "RunInfo",
    "render_console",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_atomic",
    "write_reports",
]

# Only the functions: the dataclasses keep their defining module, because
# typing.get_type_hints (and pydantic) resolve their string annotations in it.
write_atomic.__module__ = __name__
write_reports.__module__ = __name__
