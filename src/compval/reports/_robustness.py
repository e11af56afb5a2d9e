"""Rows and lines of the robustness section, shared by the Markdown and console renderers."""

from __future__ import annotations

from compval.reports._format import fmt_interval, fmt_number
from compval.results import MetricValue, Report, RobustnessSection

__all__ = ["ROBUSTNESS_HEADERS", "robustness_rows", "search_lines"]

ROBUSTNESS_HEADERS = (
    "candidate",
    "perturbation",
    "perturbed metric",
    "ref",
    "cand",
    "gap",
    "gap CI",
)
#: The perturbed metric each task's gap is built on (classification, then regression), and
#: its short name in the table.
_GAP_METRICS = {"accuracy_score": "accuracy", "mean_absolute_error": "MAE"}


def robustness_rows(report: Report) -> list[list[str]]:
    """Per candidate and perturbation (overall): the perturbed metric and the robustness gap.

    The perturbed metric is the one the gap is built on (accuracy, or MAE for regression),
    for both models.
    """
    if report.robustness is None:
        return []
    by_key: dict[tuple[str, str, str | None], MetricValue] = {
        (m.candidate, m.metric, m.segment): m for m in report.metrics
    }
    rows = []
    # With several datasets the perturbed dataset's scope comes first.
    head = "" if report.robustness.dataset is None else f"dataset={report.robustness.dataset},"
    for name in report.candidates:
        for p in report.robustness.perturbations:
            scope = f"{head}perturbation={p.name}"
            found = [(m, by_key.get((name, m, scope))) for m in _GAP_METRICS]
            metric, acc = next(((m, v) for m, v in found if v is not None), (None, None))
            gap = by_key.get((name, "robustness_gap", scope))
            if acc is None and gap is None:
                continue
            rows.append(
                [
                    name,
                    f"{p.name} ({p.kind})",
                    "" if metric is None else _GAP_METRICS[metric],
                    fmt_number(None if acc is None else acc.reference_value),
                    fmt_number(None if acc is None else acc.candidate_value),
                    fmt_number(None if gap is None else gap.candidate_value),
                    "" if gap is None else fmt_interval(gap.ci_low, gap.ci_high),
                ]
            )
    return rows


def search_lines(section: RobustnessSection) -> list[str]:
    """One line per candidate for the differential search, then its top found case."""
    s = section.search
    if s is None:
        return []
    lines = []
    for r in section.search_results:
        line = (
            f"search {r.candidate}: {r.seeds_with_disagreement} of {r.seeds} seed rows with a "
            f"disagreement within eps={s.epsilon:g} std ({s.method}, {s.budget_per_seed} "
            f"evaluations per seed, {r.evaluations} used); robust_agreement "
            f"{fmt_number(r.robust_agreement)} {fmt_interval(r.ci_low, r.ci_high)}"
        )
        if r.cases:
            c = r.cases[0]
            line += (
                f"; top case: row {c.seed_row_id}, size {fmt_number(c.size)} std, reference "
                f"{c.reference_prediction} vs candidate {c.candidate_prediction}"
            )
        lines.append(line)
    return lines
