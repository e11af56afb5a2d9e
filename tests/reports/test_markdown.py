"""render_markdown: verdict lines, ordering, escaping, number format, size limit."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from compval.reports import render_markdown
from compval.reports._format import fmt_delta as _fmt_delta
from compval.reports._format import fmt_number as _fmt_number
from compval.results import Report

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
# Segment names used by the fixture report in conftest.py.
NASTY_SEGMENT = "lang=a|b"
SCRIPT_SEGMENT = "name=<script>alert(1)</script>"


def _cells(row: str) -> list[str]:
    # A pipe preceded by an odd number of backslashes is escaped; the data here has none
    # doubled, so "not preceded by a backslash" is exact enough.
    return [c.strip() for c in _CELL_SPLIT.split(row)[1:-1]]


def _section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading)
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("#") or line in ("<details>", "</details>"):
            break
        out.append(line)
    return out


def _table_rows(lines: list[str]) -> list[list[str]]:
    rows = [_cells(line) for line in lines if line.startswith("|")]
    return rows[2:]  # header and separator


def test_title_and_candidate_lines(report: Report, passing_report: Report) -> None:
    text = render_markdown(report)
    lines = text.splitlines()
    assert lines[0] == "## ❌ compval: FAILED"
    assert lines[2].startswith("- ✅ **int8**: PASSED (3 of 4 checks passed")
    assert "1 non-blocking warning" in lines[2]
    assert lines[3].startswith("- ❌ **pruned**: FAILED (1 of 3 checks passed; 1 failed")
    assert "1 inconclusive" in lines[3]
    assert render_markdown(passing_report).startswith("## ✅ compval: PASSED\n")


def test_failing_checks_blocking_first(report: Report) -> None:
    text = render_markdown(report)
    rows = _table_rows(_section(text, "### Checks not passed (3)"))
    assert [(r[0], r[1]) for r in rows] == [
        ("acc-drop", "pruned"),
        ("agreement", "pruned"),
        ("p95-latency", "int8"),
    ]
    assert rows[0][3] == "❌ fail"
    assert rows[0][4] == "-0.03123"
    assert rows[0][5] == "&gt;= -0.01"
    assert rows[1][3] == "❌ inconclusive"
    assert rows[2][3] == "⚠️ fail (non-blocking)"
    # The first failing check id comes before any other check id in the document.
    assert text.index("acc-drop") < text.index("p95-latency") < text.index("top1-min")


def test_data_is_escaped(report: Report) -> None:
    text = render_markdown(report)
    assert "<script>" not in text and "</script>" not in text
    assert "name=&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "lang=a\\|b" in text
    assert "bad \\`code\\`" in text
    assert "straddles 0.99 second line" in text  # newline flattened inside a cell
    assert "tag=\\[bold red\\]boom\\[/\\]" in text
    # Every table row has as many cells as its header, so no pipe in data split a cell.
    header_cells = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header_cells = None
            continue
        if header_cells is None:
            header_cells = len(_cells(line))
        assert len(_cells(line)) == header_cells, line
    # The only raw HTML is our own details block.
    tags = set(re.findall(r"<(/?[a-z]+)", text))
    assert tags <= {"details", "/details", "summary", "/summary"}


def test_overall_metrics_per_candidate(report: Report) -> None:
    text = render_markdown(report)
    int8 = _table_rows(_section(text, "#### int8"))
    assert int8[0] == ["accuracy\\_score", "0.9123", "0.9103", "-0.002", "\\[-0.0061, 0.0021\\]"]
    assert int8[1] == ["top1\\_agreement", "—", "0.995", "—", ""]
    pruned = _table_rows(_section(text, "#### pruned"))
    assert pruned[0][3] == "-0.03123"
    assert pruned[1][2] == "NaN"
    assert "Intervals: 95% poisson bootstrap interval." in text


def test_segments_and_passing_checks_are_collapsed(report: Report) -> None:
    text = render_markdown(report)
    details = text[text.index("<details>") : text.index("</details>")]
    assert "<summary>Per-segment metrics (2), passing checks (4), concurrency (1)</summary>" in (
        details
    )
    assert NASTY_SEGMENT.replace("|", "\\|") in details
    before = text[: text.index("<details>")]
    assert "top1-min" not in before and "nan-check" not in before
    seg_rows = _table_rows(_section(text, "#### Per-segment metrics"))
    script_row = next(r for r in seg_rows if "script" in r[1])
    assert script_row[3:6] == ["inf", "0.5", "NaN"]


def test_profile_table(report: Report) -> None:
    text = render_markdown(report)
    assert "target edge · threads 1 · batch sizes 1, 8 · clients 1, 2" in text
    perf = _section(text, "### Performance")
    tables = [line for line in perf if line.startswith("|")]
    rows = [_cells(line) for line in tables]
    assert ["fp32", "reference", "1", "4.123", "4.877", "242.5", "44.71", "310.2"] in rows
    assert ["int8", "candidate", "1", "2.25", "2.6", "444.4", "11.2", "—"] in rows
    assert ["int8", "1", "1.833x", "\\[1.71, 1.951\\] (95%)"] in rows
    assert "int8: unsupported operators: QLinearSoftmax" in text
    conc = _table_rows(_section(text, "#### Concurrency"))
    assert conc == [["fp32", "2", "1", "450", "4.3", "5.1", "6.2", "0 / 900"]]


def test_profile_without_measurements_renders_dashes(report: Report) -> None:
    assert report.profile is not None
    bare = {
        name: dataclasses.replace(m, latency=(), concurrency=(), size_mb=None)
        for name, m in report.profile.models.items()
    }
    profile = dataclasses.replace(report.profile, models=bare, speedups=())
    text = render_markdown(dataclasses.replace(report, profile=profile))
    assert text.startswith("## ❌ compval: FAILED")
    rows = _table_rows(_section(text, "### Performance"))
    assert ["fp32", "reference", "—", "—", "—", "—", "—", "310.2"] in rows


def test_no_checks_says_nothing_is_gated(run_factory) -> None:
    text = render_markdown(Report(run=run_factory(), metrics=(), checks=(), candidates=()))
    assert "No acceptance criteria were checked: nothing is gated." in text
    assert "<details>" not in text


def test_large_report_is_truncated_under_60_kb(report: Report, metric_factory, check_factory):
    segments = [f"user_bucket=segment-{i:05d}-" + "x" * 40 for i in range(3000)]
    metrics = report.metrics + tuple(
        metric_factory("int8", "accuracy_score", segment=s, delta=-0.001 * (i % 7), n=50)
        for i, s in enumerate(segments)
    )
    failing = tuple(
        check_factory("agreement", "pruned", "fail", segment=s, message="m" * 500)
        for s in segments[:2000]
    )
    big = dataclasses.replace(report, metrics=metrics, checks=report.checks + failing)
    text = render_markdown(big)
    assert len(text.encode("utf-8")) < 60_000
    # The first, most important rows are still there.
    rows = _table_rows(_section(text, "### Checks not passed (2003)"))
    assert rows[0][:2] == ["acc-drop", "pruned"]
    notes = re.findall(r"_([\d,]+) more rows in report\.json\._", text)
    assert len(notes) >= 2
    shown_failing = len(rows)
    assert int(notes[0].replace(",", "")) == 2003 - shown_failing
    seg_rows = _table_rows(_section(text, "#### Per-segment metrics"))
    assert int(notes[1].replace(",", "")) == 3002 - len(seg_rows)
    # Long cells are shortened.
    assert "m" * 400 not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.123456, "0.1235"),
        (0.98765, "0.9877"),
        (123456.7, "123,500"),
        (1.5e-5, "1.5e-05"),
        (12, "12"),
        (12345, "12,345"),
        (None, "—"),
        (math.nan, "NaN"),
        (math.inf, "inf"),
        (np.float32(0.5), "0.5"),
        (np.int64(12345), "12,345"),
        (True, "yes"),
    ],
)
def test_fmt_number(value: object, expected: str) -> None:
    assert _fmt_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.01, "+0.01"),
        (-0.031234, "-0.03123"),
        (-0.0, "+0"),
        (0.0, "+0"),
        (25000.4, "+25,000"),
        (math.inf, "+inf"),
        (-math.inf, "-inf"),
        (None, "—"),
    ],
)
def test_fmt_delta(value: object, expected: str) -> None:
    assert _fmt_delta(value) == expected


def test_fixture_uses_the_nasty_segments(report: Report) -> None:
    # Guards the fixture: the escaping tests above mean something only with these names.
    assert {c.segment for c in report.checks} >= {NASTY_SEGMENT, SCRIPT_SEGMENT}
