"""render_junit: parses, counts match, verdicts map to failure/skipped."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from compval.reports import render_junit
from compval.results import Report


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_structure_and_counts(report: Report) -> None:
    root = ET.fromstring(render_junit(report))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["compval.int8", "compval.pruned"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("skipped", "-1")) == len(suite.findall("testcase/skipped"))
        assert suite.get("errors") == "0"
        assert {c.get("classname") for c in cases} == {suite.get("name")}
    # Independent expectation from the fixture: pruned has a blocking fail and a blocking
    # inconclusive; int8 has one non-blocking warning.
    assert [(s.get("tests"), s.get("failures"), s.get("skipped")) for s in suites] == [
        ("4", "0", "1"),
        ("3", "2", "0"),
    ]
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("7", "2", "1")
    assert len(list(root.iter("testcase"))) == len(report.checks)


def test_verdict_mapping_and_escaping(report: Report) -> None:
    cases = _cases(ET.fromstring(render_junit(report)))
    assert set(cases) == {c.junit_name for c in report.checks}

    failed = cases["acc-drop[pruned][overall]"].find("failure")
    assert failed is not None and failed.get("type") == "fail"
    assert failed.get("message") == "accuracy_score delta = -0.0312 < -0.01 | bad `code`"
    assert "observed: -0.03123" in (failed.text or "")

    script = "agreement[pruned][name=<script>alert(1)</script>]"
    inconclusive = cases[script].find("failure")
    assert inconclusive is not None and inconclusive.get("type") == "inconclusive"
    assert inconclusive.get("message", "").endswith("0.99\nsecond line")

    skipped = cases["p95-latency[int8][overall]"].find("skipped")
    assert skipped is not None
    assert "non-blocking" in skipped.get("message", "")
    assert list(cases["acc-drop[int8][overall]"]) == []


def test_control_characters_still_parse(report: Report) -> None:
    bad = dataclasses.replace(report.checks[5], message="colour \x1b[31mred\x1b[0m \x00 end")
    text = render_junit(dataclasses.replace(report, checks=(bad,)))
    failure = ET.fromstring(text).find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "colour \\x1b[31mred\\x1b[0m \\x00 end"


def test_candidate_without_checks_gets_an_empty_suite(passing_report: Report) -> None:
    report = dataclasses.replace(passing_report, candidates=("int8", "distilled"))
    root = ET.fromstring(render_junit(report))
    empty = root.find("testsuite[@name='compval.distilled']")
    assert empty is not None and empty.get("tests") == "0"
    assert empty.findall("testcase") == []
