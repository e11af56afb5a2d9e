"""render_console: a short default view, the full tables with verbose, data printed literally."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from compval.reports import render_console
from compval.results import Report


def _render(report: Report, *, verbose: bool = False, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    render_console(report, console, verbose=verbose)
    return console.export_text()


def test_default_view_lists_non_passing_checks_blocking_first(report: Report) -> None:
    text = _render(report)
    for check in report.checks:
        if check.verdict != "pass":
            assert check.junit_name in text
    assert text.index("Blocking checks not passed (2)") < text.index("acc-drop[pruned]")
    assert text.index("agreement[pruned]") < text.index("Non-blocking checks not passed (1)")
    assert text.index("Non-blocking checks not passed") < text.index("p95-latency[int8]")
    # One line per check: observed value, interval when there is one, and the threshold.
    assert "acc-drop[pruned][overall]: accuracy_score Δ -0.03123, needs >= -0.01" in text
    # Passing checks are not listed by default.
    assert "top1-min" not in text


def test_verdict_lines_and_the_overall_verdict_once_and_last(report: Report) -> None:
    text = _render(report)
    assert "int8: PASSED (3/4 passed; not passed: 1 non-blocking)" in text
    assert "pruned: FAILED (1/3 passed; not passed: 2 blocking)" in text
    assert text.rstrip().splitlines()[-1] == "compval: FAILED (2 candidate(s), 7 checks)"
    assert text.count("compval: FAILED") == 1


def test_headline_metrics_are_the_overall_metrics_blocking_checks_gate(report: Report) -> None:
    text = _render(report)
    assert "Headline metrics (overall)" in text
    assert "accuracy_score" in text and "top1_agreement" in text
    assert "mean_kl_divergence" not in text  # not gated: only in the verbose view
    assert "[-0.0412, -0.0203]" not in text.split("Headline metrics")[1]


def test_verbose_view_has_the_full_tables(report: Report) -> None:
    text = _render(report, verbose=True)
    assert "Checks" in text and "top1-min" in text  # passing checks too
    assert "Overall metrics: int8" in text and "Overall metrics: pruned" in text
    assert "mean_kl_divergence" in text
    assert "[-0.0412, -0.0203]" in text
    assert "fail*" in text and "non-blocking" in text
    assert text.rstrip().endswith("compval: FAILED (2 candidate(s), 7 checks)")


def test_markup_in_data_is_printed_literally(report: Report) -> None:
    text = _render(report, verbose=True)
    assert "tag=[bold red]boom[/]" in text
    assert "name=<script>" in text
    assert "name=<script>alert(1)</script>" in _render(report)


def test_profile_speedups_by_default_latency_table_when_verbose(report: Report) -> None:
    text = _render(report)
    assert "speedup int8 at batch 1: 1.833x [1.71, 1.951] (95%)" in text
    assert "int8: unsupported operators: QLinearSoftmax" in text
    assert "Performance" not in text
    verbose = _render(report, verbose=True)
    assert "Performance" in verbose and "p95 ms" in verbose
    profile_run = dataclasses.replace(report.run, task="profile")
    assert "Performance" in _render(dataclasses.replace(report, run=profile_run))
    no_profile = _render(dataclasses.replace(report, profile=None), verbose=True)
    assert "Performance" not in no_profile and "speedup" not in no_profile


def test_many_passing_checks_are_cut(passing_report: Report, check_factory) -> None:
    checks = tuple(check_factory(f"ok-{i:03d}", "int8", "pass") for i in range(100))
    failing = check_factory("the-bad-one", "int8", "fail")
    text = _render(dataclasses.replace(passing_report, checks=(*checks, failing)), verbose=True)
    assert "the-bad-one" in text
    assert "ok-009" in text and "ok-010" not in text
    assert "90 more passing checks in report.json" in text


def test_many_non_passing_checks_are_counted(passing_report: Report, check_factory) -> None:
    checks = tuple(check_factory(f"bad-{i:03d}", "int8", "fail") for i in range(30))
    text = _render(dataclasses.replace(passing_report, checks=checks))
    assert "Blocking checks not passed (30)" in text
    assert "bad-011" in text and "bad-012" not in text
    assert "18 more in report.md and report.json" in text


def test_messages_of_non_passing_checks_follow_the_table_when_verbose(report: Report) -> None:
    text = _render(report, verbose=True)
    table_end = text.index("Overall metrics")
    for check in report.checks:
        if check.verdict != "pass":
            assert check.message.split()[0] in text[:table_end]
            assert f"{check.junit_name}: " in text


def test_no_checks(run_factory) -> None:
    text = _render(Report(run=run_factory(), metrics=(), checks=(), candidates=()))
    assert "nothing is gated" in text
    assert "compval: PASSED" in text
