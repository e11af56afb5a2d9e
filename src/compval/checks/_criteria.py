"""Criteria in explicit form: every concise spec form becomes exactly one of these.

====================================  ==================================================
spec form                             explicit criterion
====================================  ==================================================
``max_drop: d`` (higher is better)    compare: delta, op: ">=", threshold: -d
``max_increase: d`` (lower is better) compare: delta, op: "<=", threshold: d
``max_relative_drop: r``              compare: ratio, op: ">=", threshold: 1 - r
``max_relative_increase: r``          compare: ratio, op: "<=", threshold: 1 + r
``min: v``                            compare: candidate, op: ">=", threshold: v
``max: v``                            compare: candidate, op: "<=", threshold: v
====================================  ==================================================

``statistic: auto`` becomes ``interval`` (decided on the confidence interval) when resampling
is on and the metric has an interval, for every compared quantity but the reference's own
value (``compare: candidate`` included: "the candidate's accuracy is at least 0.9" must be
shown, not just observed), and ``point`` otherwise. ``statistic: interval`` on a metric that
has no interval (counts, extremes, p-values, ECE) is a spec error.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compval.errors import SpecValidationError
from compval.metrics import METRICS, MetricInfo, metric_info, suggest_metric
from compval.spec import ROBUSTNESS_METRIC_DIRECTIONS, CriterionSpec, echo

__all__ = ["OPS", "Criterion", "DatasetFacts", "resolve_criteria", "resolve_criterion"]

OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
Compare = Literal["candidate", "reference", "delta", "ratio"]
#: Metrics that are exact counts or extremes: no sampling error, so no minimum segment size.
EXACT_METRICS = frozenset({"nan_count", "inf_count", "nonfinite_count", "max_abs_diff"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """One criterion in explicit form, ready to evaluate."""

    id: str
    metric: str
    compare: Compare
    op: str
    threshold: float
    statistic: Literal["point", "interval"]
    segment: str | None
    severity: Literal["error", "warn"]
    candidates: tuple[str, ...] | None
    higher_is_better: bool | None
    written_as: str | None = None
    #: With several datasets: the datasets gated (each check's segment then starts with
    #: ``dataset=<name>``); None for a single dataset, or a metric measured once per run.
    datasets: tuple[str, ...] | None = None
    #: Datasets a default selection left out, with the reason (they go to ``run.notes``).
    left_out: tuple[tuple[str, str], ...] = ()

    def explicit(self) -> dict[str, Any]:
        """The explicit form recorded in the report."""
        out: dict[str, Any] = {
            "metric": self.metric,
            "compare": self.compare,
            "statistic": self.statistic,
            "op": self.op,
            "threshold": self.threshold,
            "segment": self.segment,
            "severity": self.severity,
            "written_as": self.written_as,
        }
        if self.datasets is not None:
            out["datasets"] = list(self.datasets)
        return out

    @property
    def is_exact(self) -> bool:
        """True for metrics that need no minimum segment size.

        Counts and extremes are facts, not estimates; performance metrics are not measured on
        data rows (their ``n`` is iterations or rounds; the speedup's interval already says how
        sure it is).
        """
        base = self.metric.split("[", 1)[0]
        return base in EXACT_METRICS or base not in METRICS


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetFacts:
    """What resolving criteria needs to know of one named dataset (``data:`` as a list)."""

    name: str
    has_labels: bool
    segment_columns: tuple[str, ...] = ()
    #: True for the dataset the robustness section perturbs and searches.
    robustness: bool = False


#: Names longer than this get no "did you mean" hint: difflib's cost grows with the length.
_SUGGEST_CHARS = 200


def _suggestion(metric: str) -> str:
    return suggest_metric(metric) if len(metric) <= _SUGGEST_CHARS else ""


def _fail(index: int, field: str, message: str) -> SpecValidationError:
    path = f"criteria[{index}].{field}"
    return SpecValidationError(f"{path}: {message}", path=path)


def resolve_criterion(
    spec: CriterionSpec,
    *,
    index: int,
    task: str,
    resampling: bool,
    segment_columns: Sequence[str] = (),
    perturbations: Sequence[str] | None = None,
    datasets: Sequence[DatasetFacts] | None = None,
    label_segments: bool = True,
) -> Criterion:
    """Turn one spec criterion into its explicit form, validating it against the registry.

    With ``datasets`` (a spec whose ``data`` is a list), the criterion is also given the
    datasets it gates (:func:`_select_datasets`); ``segment_columns`` is then ignored.
    ``label_segments``: whether the task segments rows by label (``label=<class>``); a
    ``label=`` scope is a spec error for a task that does not.

    Raises:
        SpecValidationError: Unknown metric, a concise form that does not fit the metric's
            direction, a threshold that is not a fraction where one is expected, or a segment
            scope naming an unknown column. The message names the field path.
    """
    info = metric_info(spec.metric)
    if info is None:
        raise _fail(
            index,
            "metric",
            f"unknown metric {echo(spec.metric)}.{_suggestion(spec.metric)} "
            "See docs/spec.md for the list of metrics.",
        )
    if task not in info.tasks:
        raise _fail(
            index,
            "metric",
            f"{echo(spec.metric)} is not computed for task {task!r}; it needs task "
            f"{' or '.join(info.tasks)}.",
        )
    if (
        info.qualified
        and "[" not in spec.metric
        and info.name in ("precision_score", "recall_score", "f1_score")
    ):
        raise _fail(
            index,
            "metric",
            f"{echo(spec.metric)} is per class; name the class, e.g. "
            f"{echo(spec.metric + '[3]')}, or use "
            "the segment scope 'label=*' with accuracy_score for per-class recall.",
        )
    # The robustness gap is a difference of accuracies (a fraction) for classification, of
    # mean absolute errors (target units) for regression.
    fraction = info.fraction or (info.name == "robustness_gap" and task == "classification")
    compare: Compare
    written_as: str | None = None
    hib = info.higher_is_better
    if spec.max_drop is not None or spec.max_increase is not None:
        form = "max_drop" if spec.max_drop is not None else "max_increase"
        value = float(spec.max_drop if spec.max_drop is not None else spec.max_increase)  # type: ignore[arg-type]
        wanted = form == "max_drop"
        if info.paired:
            raise _fail(
                index,
                form,
                f"{echo(spec.metric)} has one value for the pair of models, so it has no drop; "
                "use 'min' or 'max' on it instead.",
            )
        _check_direction(index, form, spec.metric, hib, higher=wanted)
        _check_margin(index, form, value, fraction=fraction)
        if info.at_most_one and value > 1:
            raise _fail(index, form, _above_one(spec.metric, value, margin=True))
        compare, op, threshold = "delta", (">=" if wanted else "<="), (-value if wanted else value)
        written_as = f"{form}: {value:g}"
    elif spec.max_relative_drop is not None or spec.max_relative_increase is not None:
        form = (
            "max_relative_drop" if spec.max_relative_drop is not None else "max_relative_increase"
        )
        value = float(
            spec.max_relative_drop
            if spec.max_relative_drop is not None
            else spec.max_relative_increase  # type: ignore[arg-type]
        )
        if info.paired:
            raise _fail(
                index, form, f"{echo(spec.metric)} has one value for the pair; use 'min' or 'max'."
            )
        _check_direction(index, form, spec.metric, hib, higher=form == "max_relative_drop")
        if value < 0 or value > 1:
            raise _fail(
                index,
                form,
                f"must be a fraction in [0, 1]; got {value:g}."
                + (_percent_hint(value) if value > 0 else ""),
            )
        drop = form == "max_relative_drop"
        compare, op, threshold = (
            "ratio",
            (">=" if drop else "<="),
            (1 - value if drop else 1 + value),
        )
        written_as = f"{form}: {value:g}"
    elif spec.min is not None or spec.max is not None:
        form = "min" if spec.min is not None else "max"
        value = float(spec.min if spec.min is not None else spec.max)  # type: ignore[arg-type]
        if fraction and not 0 <= value <= 1:
            raise _fail(
                index,
                form,
                f"{echo(spec.metric)} is a fraction in [0, 1]; got {value:g}."
                + (_percent_hint(value) if value > 0 else "")
                + " Thresholds are fractions, never percents.",
            )
        if info.at_most_one and value > 1:
            raise _fail(index, form, _above_one(spec.metric, value))
        compare, op, threshold = "candidate", (">=" if form == "min" else "<="), value
        written_as = f"{form}: {value:g}"
    else:
        compare = spec.compare or "candidate"
        op = str(spec.op)
        threshold = float(spec.threshold)  # type: ignore[arg-type]
        if info.paired and compare in ("delta", "ratio", "reference"):
            raise _fail(
                index,
                "compare",
                f"{echo(spec.metric)} has one value for the pair of models; use compare: "
                "candidate.",
            )
        if fraction and compare in ("candidate", "reference", "delta") and abs(threshold) > 1:
            raise _fail(
                index,
                "threshold",
                f"{echo(spec.metric)} is a fraction; got {threshold:g}, expected a value in "
                f"[-1, 1].{_percent_hint(threshold)}"
                " Thresholds are fractions, never percents.",
            )
        if info.at_most_one and compare in ("candidate", "reference") and threshold > 1:
            raise _fail(index, "threshold", _above_one(spec.metric, threshold))
        if info.at_most_one and compare == "delta" and abs(threshold) > 1:
            raise _fail(index, "threshold", _above_one(spec.metric, threshold, margin=True))
    statistic: Literal["point", "interval"]
    if spec.statistic == "auto":
        has_interval = resampling and info.interval and compare != "reference"
        statistic = "interval" if has_interval else "point"
    else:
        statistic = spec.statistic
        if statistic == "interval" and not info.interval:
            raise _fail(
                index,
                "statistic",
                f"{echo(spec.metric)} has no confidence interval (it is a count, an extreme, a "
                "p-value or a descriptive score such as binned ECE); use statistic: point, "
                "which compares the observed value without a statistical guarantee.",
            )
    scope = spec.segment
    if scope is None and spec.metric == "robustness_gap":
        # The gap exists only per perturbation: unscoped, it gates every perturbation.
        scope = "perturbation=*"
    chosen: tuple[str, ...] | None = None
    left_out: tuple[tuple[str, str], ...] = ()
    if datasets is None:
        if scope is not None and scope.startswith("dataset="):
            raise _fail(
                index,
                "segment",
                f"{echo(scope)} names a dataset, but 'data' is one dataset; make 'data' a list "
                "of named datasets, or remove the 'dataset=' part.",
            )
    else:
        scope, chosen, left_out = _select_datasets(index, spec, info, scope, datasets)
        segment_columns = sorted({c for d in datasets for c in d.segment_columns})
    segment = _resolve_scope(index, scope, segment_columns, perturbations, label_segments)
    return Criterion(
        datasets=chosen,
        left_out=left_out,
        id=spec.id,
        metric=spec.metric,
        compare=compare,
        op=op,
        threshold=threshold,
        statistic=statistic,
        segment=segment,
        severity=spec.severity,
        candidates=tuple(spec.candidates) if spec.candidates else None,
        higher_is_better=hib,
        written_as=written_as,
    )


_OTHER_FORM = {
    "max_drop": "max_increase",
    "max_increase": "max_drop",
    "max_relative_drop": "max_relative_increase",
    "max_relative_increase": "max_relative_drop",
}


def _check_direction(index: int, form: str, metric: str, hib: bool | None, *, higher: bool) -> None:
    """Refuse a drop form on a lower-is-better metric and an increase form on the opposite.

    The other way round the criterion would pass regressions and fail improvements.
    """
    if hib is higher:
        return
    direction = {True: "higher", False: "lower", None: "neither"}[hib]
    raise _fail(
        index,
        form,
        f"{form!r} needs a metric where {'higher' if higher else 'lower'} is better; "
        f"{echo(metric)} is {direction}-is-better. Use {_OTHER_FORM[form]!r}"
        + (" instead." if hib is not None else " with an explicit op."),
    )


def _percent_hint(value: float) -> str:
    """The fraction a value above 1 (up to 100) probably meant, as a hint; else nothing."""
    return f" Did you mean {value / 100:g}?" if 1 < abs(value) <= 100 else ""


def _above_one(metric: str, value: float, *, margin: bool = False) -> str:
    """Why a threshold (or, with ``margin``, a margin) above 1 is refused for ``metric``."""
    effect = (
        "a margin above 1 lets the candidate fall below what predicting the mean scores (R²) "
        "or cover the whole range"
        if margin
        else "a threshold above 1 can never be met (or never fail)"
    )
    return (
        f"{echo(metric)} is at most 1, so {effect}; got {value:g}."
        + _percent_hint(value)
        + f" {'Margins' if margin else 'Thresholds'} are in the metric's units, never percents."
    )


def _check_margin(index: int, form: str, value: float, *, fraction: bool) -> None:
    if value < 0:
        raise _fail(
            index, form, f"must be >= 0; got {value:g}. A drop is written as a positive margin."
        )
    if fraction and value > 1:
        hint = _percent_hint(value)
        raise _fail(
            index,
            form,
            f"must be a fraction in [0, 1]; got {value:g}.{hint} Thresholds are fractions, "
            "never percents.",
        )


def _select_datasets(
    index: int,
    spec: CriterionSpec,
    info: MetricInfo,
    scope: str | None,
    datasets: Sequence[DatasetFacts],
) -> tuple[str | None, tuple[str, ...] | None, tuple[tuple[str, str], ...]]:
    """The datasets one criterion gates: (scope without its dataset part, names, left out).

    Named (``dataset: ood``, a list, or a ``dataset=ood`` scope) or ``'*'``: exactly those,
    and each must be able to decide the criterion (a spec error otherwise). Unnamed: every
    dataset that can, and the others are returned as left out, with the reason, so that the
    run notes them; none able is a spec error. A metric measured once per run (performance,
    numerics) takes no dataset.
    """
    wanted: list[str] | None = None
    if spec.dataset is not None:
        wanted = [spec.dataset] if isinstance(spec.dataset, str) else list(spec.dataset)
    if scope is not None and scope.startswith("dataset="):
        head, _, rest = scope.partition(",")
        if wanted is not None:
            raise _fail(
                index,
                "segment",
                f"{echo(scope)} names a dataset and so does 'dataset'; give it once.",
            )
        wanted, scope = [head.partition("=")[2]], rest or None
    names = [d.name for d in datasets]
    if not info.per_dataset:
        if wanted is not None:
            raise _fail(
                index,
                "dataset",
                f"{echo(spec.metric)} is measured once per run (on the first dataset's rows, "
                "not per dataset); remove 'dataset'.",
            )
        return scope, None, ()
    if wanted is not None and "*" not in wanted:
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise _fail(
                index, "dataset", f"unknown dataset(s) {unknown}; expected names among {names}."
            )
    explicit = wanted is not None
    pool = [
        d for d in datasets if not explicit or "*" in (wanted or []) or d.name in (wanted or [])
    ]
    if not explicit and _robustness_only(info, scope):
        # Robustness runs exist on one dataset by construction (run.notes names it): the
        # others are not "left out".
        pool = [d for d in pool if d.robustness]
    chosen: list[str] = []
    left_out: list[tuple[str, str]] = []
    for d in pool:
        why = _cannot_decide(info, scope, d)
        if why is None:
            chosen.append(d.name)
        elif explicit:
            raise _fail(index, "dataset", f"dataset {echo(d.name)} {why}.")
        else:
            left_out.append((d.name, why))
    if not chosen:
        reasons = "; ".join(f"{echo(n)} {why}" for n, why in left_out)
        raise _fail(index, "dataset", f"no dataset can decide {echo(spec.metric)}: {reasons}.")
    return scope, tuple(chosen), tuple(left_out)


def _robustness_only(info: MetricInfo, scope: str | None) -> bool:
    """Whether a criterion reads the robustness runs, which exist on one dataset only.

    ``info.name`` is the registry name: a qualified metric (``robust_agreement[eps=0.5]``)
    counts too.
    """
    return info.name in ROBUSTNESS_METRIC_DIRECTIONS or (scope or "").startswith("perturbation=")


def _cannot_decide(info: MetricInfo, scope: str | None, d: DatasetFacts) -> str | None:
    """Why dataset ``d`` cannot decide a criterion (None when it can)."""
    if _robustness_only(info, scope):
        if not d.robustness:
            return "is not the robustness section's dataset (robustness.dataset)"
        if scope is not None and scope.startswith("perturbation="):
            scope = scope.partition(",")[2] or None  # the segment within the perturbed pass
    needs_labels = info.needs_labels or (scope or "").startswith("label=") or scope == "discovered"
    if needs_labels and not d.has_labels:
        return "has no labels (data.labels)"
    column = (scope or "").split("=", 1)[0] if "=" in (scope or "") else None
    if column is not None and column != "label" and column not in d.segment_columns:
        return f"has no segment column {echo(column)}"
    return None


def _resolve_scope(
    index: int,
    scope: str | None,
    columns: Sequence[str],
    perturbations: Sequence[str] | None = None,
    label_segments: bool = True,
) -> str | None:
    if scope is not None and scope.startswith("perturbation="):
        # 'perturbation=<name>' or 'perturbation=<name>,<segment scope>' (robustness runs).
        head, _, rest = scope.partition(",")
        name = head.partition("=")[2]
        known_p = list(perturbations or [])
        if name != "*" and name not in known_p:
            raise _fail(
                index,
                "segment",
                f"unknown perturbation {echo(name)} in {echo(scope)}; expected one of "
                f"{known_p or 'the names in robustness.perturbations (none are declared)'}, "
                "or 'perturbation=*'.",
            )
        if rest and name == "*":
            raise _fail(
                index,
                "segment",
                f"{echo(scope)}: 'perturbation=*' selects each perturbation overall and takes "
                "no segment; name the perturbation ('perturbation=<name>,label=*').",
            )
        if rest:
            _resolve_scope(index, rest, columns, label_segments=label_segments)
        return scope
    if scope is None or scope == "overall":
        return None
    if scope in ("*", "discovered"):
        return scope
    if "=" not in scope:
        raise _fail(
            index,
            "segment",
            f"unknown segment scope {echo(scope)}; expected 'overall', '*', 'discovered', "
            "'<column>=*' or '<column>=<value>'.",
        )
    column = scope.split("=", 1)[0]
    known = ["label", *columns] if label_segments else list(columns)
    if column == "label" and not label_segments:
        raise _fail(
            index,
            "segment",
            f"{echo(scope)}: this task has no label segments (rows are segmented by class for "
            "task: classification only); use a data column from data.segments, or drop the "
            "segment.",
        )
    if column not in known:
        raise _fail(
            index,
            "segment",
            f"segment column {echo(column)} is not in the data's segments; got {echo(scope)}, "
            f"expected one of {', '.join(repr(k) for k in known)}. Add it to data.segments.",
        )
    return scope


def resolve_criteria(
    specs: Sequence[CriterionSpec],
    *,
    task: str,
    resampling: bool,
    segment_columns: Sequence[str] = (),
    allow_nonfinite: bool = False,
    perturbations: Sequence[str] | None = None,
    datasets: Sequence[DatasetFacts] | None = None,
    label_segments: bool = True,
) -> tuple[Criterion, ...]:
    """Resolve every criterion, plus the built-in ``nonfinite-outputs`` check.

    The built-in check (candidate ``nonfinite_count`` == 0 overall) is added unless the spec
    sets ``allow_nonfinite: true``: any NaN/Inf in a candidate's outputs fails by default.
    """
    out = [
        resolve_criterion(
            s,
            index=i,
            task=task,
            resampling=resampling,
            segment_columns=segment_columns,
            perturbations=perturbations,
            datasets=datasets,
            label_segments=label_segments,
        )
        for i, s in enumerate(specs)
    ]
    if not allow_nonfinite and not any(c.id == "nonfinite-outputs" for c in out):
        out.append(
            Criterion(
                id="nonfinite-outputs",
                metric="nonfinite_count",
                compare="candidate",
                op="==",
                threshold=0.0,
                statistic="point",
                segment=None,
                severity="error",
                candidates=None,
                higher_is_better=False,
                written_as="built-in (allow_nonfinite: false)",
                datasets=None if datasets is None else tuple(d.name for d in datasets),
            )
        )
    return tuple(out)
