"""The JUnit XML rendering of a report, for CI test dashboards.

One ``<testsuite name="compval.<candidate>">`` per candidate inside ``<testsuites>``, one
``<testcase>`` per check, named ``<id>[<candidate>][<segment>]`` so that CI history lines up
across runs. Mapping of verdicts:

* ``pass``: a plain testcase;
* ``fail`` (blocking): ``<failure type="fail">``;
* ``inconclusive`` (blocking): ``<failure type="inconclusive">``;
* any verdict but pass that does not block (``severity: warn``, or inconclusive allowed by the
  spec): ``<skipped>``, so that it shows without failing the build.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from compval.reports._format import fmt_observed, fmt_threshold
from compval.results import CheckResult, Report

__all__ = ["render_junit"]

# Characters XML 1.0 cannot carry at all, even escaped (ElementTree would write them as-is),
# and the legal ones a CI page or terminal must not receive raw: DEL, the C1 controls and the
# bidirectional overrides (see reports._format.visible).
_ILLEGAL_XML = re.compile(
    "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def render_junit(report: Report) -> str:
    """Render ``report`` as JUnit XML.

    Args:
        report: The report to render.

    Returns:
        The XML document (UTF-8 declaration, indented), ending with a newline.

    Example:
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=0, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> xml = render_junit(Report(run=run, metrics=(), checks=(), candidates=("int8",)))
        >>> ET.fromstring(xml).find("testsuite").get("name")
        'compval.int8'
    """
    names = list(report.candidates)
    names += [n for n in dict.fromkeys(c.candidate for c in report.checks) if n not in names]
    root = ET.Element("testsuites", {"name": "compval"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name in names:
        suite = _suite(report, name, [c for c in report.checks if c.candidate == name])
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _fmt_time(report.run.duration_s))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _suite(report: Report, candidate: str, checks: Sequence[CheckResult]) -> ET.Element:
    run = report.run
    failures = sum(c.verdict != "pass" and c.blocking for c in checks)
    skipped = sum(c.verdict != "pass" and not c.blocking for c in checks)
    suite = ET.Element(
        "testsuite",
        {
            "name": _clean(f"compval.{candidate}"),
            "tests": str(len(checks)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": _fmt_time(run.duration_s),
            "timestamp": _clean(run.started_at),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("compval_version", run.compval_version),
        ("task", run.task),
        ("spec_hash", run.spec_hash),
        ("data_hash", run.data_hash),
        ("data_rows", run.data_rows),
        ("seed", run.seed),
    ):
        if value is not None:
            ET.SubElement(properties, "property", {"name": key, "value": _clean(str(value))})
    for check in checks:
        suite.append(_testcase(candidate, check))
    return suite


def _testcase(candidate: str, check: CheckResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {"classname": _clean(f"compval.{candidate}"), "name": _clean(check.junit_name)},
    )
    case.set("time", "0")
    if check.verdict == "pass":
        return case
    message = _clean(check.message)
    if check.blocking:
        failure = ET.SubElement(case, "failure", {"message": message, "type": check.verdict})
        failure.text = _clean(_failure_text(check))
    else:
        ET.SubElement(case, "skipped", {"message": f"{check.verdict} (non-blocking): {message}"})
    return case


def _failure_text(check: CheckResult) -> str:
    lines = [
        check.message,
        f"verdict: {check.verdict}",
        f"metric: {check.metric}",
        f"segment: {check.segment or 'overall'}",
        f"observed: {fmt_observed(check)}",
        f"threshold: {fmt_threshold(check)}",
        f"severity: {check.severity}",
    ]
    criterion = ", ".join(f"{k}={v}" for k, v in check.criterion.items())
    if criterion:
        lines.append(f"criterion: {criterion}")
    return "\n".join(lines)


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "0"
    return f"{seconds:.3f}"


def _clean(text: str) -> str:
    r"""Spell out (``\x1b``) characters XML cannot carry (e.g. ESC) and C1/bidi controls."""
    return _ILLEGAL_XML.sub(lambda m: ascii(m.group())[1:-1], text)
