"""render_console: every non-passing check shown, first, with data printed literally."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from compval.reports import render_console
from compval.results import Report


def _render(report: Report) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    render_console(report, console)
    return console.export_text()


def test_non_passing_checks_shown_first(report: Report) -> None:
    text = _render(report)
    for check in report.checks:
        if check.verdict != "pass":
            assert check.id in text
    first_pass = text.index("top1-min")
    for check_id in ("acc-drop", "agreement", "p95-latency"):
        assert text.index(check_id) < first_pass
    assert "fail (warn)" in text
    assert "inconclusive" in text


def test_verdict_lines_and_metrics(report: Report) -> None:
    text = _render(report)
    assert "int8: PASSED (3/4 checks passed; 1 non-blocking)" in text
    assert "pruned: FAILED" in text
    assert "acc-drop[pruned][overall]" in text
    assert text.rstrip().endswith("compval: FAILED")
    assert "Overall metrics" in text
    assert "mean_kl_divergence" in text
    assert "[-0.0412, -0.0203]" in text


def test_markup_in_data_is_printed_literally(report: Report) -> None:
    text = _render(report)
    assert "tag=[bold red]boom[/]" in text
    assert "name=<script>" in text


def test_profile_summary(report: Report) -> None:
    text = _render(report)
    assert "Performance" in text
    assert "speedup int8 at batch 1: 1.833x [1.71, 1.951] (95%)" in text
    assert "int8: unsupported operators: QLinearSoftmax" in text
    no_profile = _render(dataclasses.replace(report, profile=None))
    assert "Performance" not in no_profile


def test_many_passing_checks_are_cut(passing_report: Report, check_factory) -> None:
    checks = tuple(check_factory(f"ok-{i:03d}", "int8", "pass") for i in range(100))
    failing = check_factory("the-bad-one", "int8", "fail")
    text = _render(dataclasses.replace(passing_report, checks=(*checks, failing)))
    assert "the-bad-one" in text
    assert "ok-009" in text and "ok-010" not in text
    assert "90 more passing checks in report.json" in text


def test_messages_of_non_passing_checks_follow_the_table(report: Report) -> None:
    text = _render(report)
    table_end = text.index("Overall metrics")
    for check in report.checks:
        if check.verdict != "pass":
            assert check.message.split()[0] in text[:table_end]
            assert f"{check.junit_name}: " in text


def test_no_checks(run_factory) -> None:
    text = _render(Report(run=run_factory(), metrics=(), checks=(), candidates=()))
    assert "nothing is gated" in text
    assert "compval: PASSED" in text
