"""The JSON rendering of a report: ``report.json``, the stable contract (schema_version 1).

The document is ``Report.to_dict()``; its JSON Schema is ``docs/report.schema.json`` and its
fields are described in ``docs/report-format.md``.
"""

from __future__ import annotations

import json

from compval.results import Report

__all__ = ["render_json"]


def render_json(report: Report) -> str:
    """Render ``report`` as indented JSON, ending with a newline.

    NaN and infinite values appear as ``null`` (``to_dict`` converts them), so the output is
    strict JSON that any parser accepts.

    Args:
        report: The report to render.

    Returns:
        The ``report.json`` text.

    Example:
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=0, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> text = render_json(Report(run=run, metrics=(), checks=(), candidates=()))
        >>> json.loads(text)["schema_version"]
        1
    """
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
