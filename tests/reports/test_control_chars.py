"""Control characters from data never reach a report file or the terminal raw.

Segment values, class and column names come from the user's data: an ESC sequence in one
would recolour (or worse) the terminal of whoever reads the report, and a NUL or a C1 control
confuses the tools that read the files. Every renderer spells them out (``\\x1b``).
"""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from compval.reports import render_console, render_junit, render_markdown
from compval.results import Report

ESC_SEGMENT = "region=\x1b[31mred\x1b[0m"
C1_SEGMENT = "city=a\x9bb\x85c\x00d\x07e"
BIDI_CANDIDATE = "int8\u202eevil"
# Any C0 control but tab and newline (which layouts use), DEL, any C1 control, bidi overrides.
_RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def nasty(report: Report, check_factory, metric_factory) -> Report:
    checks = (
        check_factory(
            "acc-drop",
            BIDI_CANDIDATE,
            "fail",
            segment=ESC_SEGMENT,
            message=f"accuracy_score delta[{ESC_SEGMENT}] = -0.03 < -0.01",
        ),
        check_factory("acc-drop", BIDI_CANDIDATE, "inconclusive", segment=C1_SEGMENT),
        check_factory("acc-drop", BIDI_CANDIDATE, "pass", segment="ok"),
    )
    metrics = (
        metric_factory(BIDI_CANDIDATE, "accuracy_score"),
        metric_factory(BIDI_CANDIDATE, "accuracy[class=\x1b]0;title\x07]"),
        metric_factory(BIDI_CANDIDATE, "accuracy_score", segment=C1_SEGMENT),
    )
    return dataclasses.replace(
        report, checks=checks, metrics=metrics, candidates=(BIDI_CANDIDATE,), profile=None
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_console_spells_out_control_characters(nasty: Report, verbose: bool) -> None:
    stream = io.StringIO()
    # No colour: any ESC in the output would have come from the data.
    console = Console(file=stream, width=100, color_system=None, force_terminal=False)
    render_console(nasty, console, verbose=verbose)
    out = stream.getvalue()
    assert _RAW.search(out) is None, repr(_RAW.search(out))
    assert "region=\\x1b[31mred\\x1b[0m" in out
    assert "int8\\u202eevil" in out
    if verbose:
        assert "\\x9b" in out and "\\x85" in out and "\\x00" in out


def test_markdown_spells_out_control_characters(nasty: Report) -> None:
    text = render_markdown(nasty)
    assert _RAW.search(text) is None, repr(_RAW.search(text))
    # Markdown shows "\x1b" for the escaped backslash "\\x1b".
    assert "\\\\x1b\\[31mred" in text
    assert "\\\\x9b" in text and "\\\\u202e" in text


def test_junit_spells_out_esc_and_c1_controls(nasty: Report) -> None:
    xml = render_junit(nasty)
    assert _RAW.search(xml) is None, repr(_RAW.search(xml))
    root = ET.fromstring(xml)
    names = [case.get("name") or "" for case in root.iter("testcase")]
    assert any("\\x1b[31mred" in name for name in names)
    assert any("\\x9b" in name and "\\x85" in name for name in names)
    assert root.find("testsuite").get("name") == "compval.int8\\u202eevil"  # type: ignore[union-attr]
