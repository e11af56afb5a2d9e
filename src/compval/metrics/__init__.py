"""Mergeable metric accumulators and the registry of metric names.

Names follow scikit-learn's contract, checked by a test: ``*_score``, ``*_agreement``,
``*_similarity``, ``*_db`` and ``*_pvalue`` are higher-is-better (a larger p-value is less
evidence of a difference); ``*_error``, ``*_loss``, ``*_diff``, ``*_rate``, ``*_divergence``,
``*_distance``, ``*_count`` and ``perplexity`` are lower-is-better; ``*_norm`` has no better
direction. Per-class metrics carry the
class in brackets (``recall_score[3]``); performance metrics carry the batch size or client
count (``latency_p95_ms[batch=1]``); their names are the spec's vocabulary
(``compval.spec.PERF_METRIC_DIRECTIONS``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from compval._public import name_public_functions
from compval.metrics._base import (
    Accumulator,
    BlockSumsAccumulator,
    ColumnEntries,
    Derived,
    MetricEstimate,
    PairedRows,
    Resampling,
)
from compval.metrics._segments import ClassTable, SegmentTable, format_value
from compval.metrics.classification import INVALID, NO_LABEL, ContingencyTable
from compval.metrics.continuous import (
    Calibration,
    KLQuantiles,
    NonFiniteCounts,
    OutputFidelity,
    ProbabilityDivergence,
    RegressionErrors,
    kl_divergence_rows,
)
from compval.metrics.embedding import (
    CosineQuantiles,
    EmbeddingFidelity,
    EmbeddingRows,
    NeighbourAgreement,
    Qrels,
    RetrievalQuality,
    nearest_neighbours,
    retrieval_scores,
    spearman_correlation,
)
from compval.metrics.evidence import (
    SLICE_SAMPLE_ROWS,
    ConfidenceShift,
    WeakSlices,
    slice_sample,
)
from compval.metrics.tokens import ChoiceAccuracy, TokenKLQuantiles, TokenStatistics
from compval.spec import NUMERICS_METRIC_DIRECTIONS, PERF_METRIC_DIRECTIONS

__all__ = [
    "INVALID",
    "METRICS",
    "NO_LABEL",
    "SLICE_SAMPLE_ROWS",
    "Accumulator",
    "BlockSumsAccumulator",
    "ColumnEntries",
    "Calibration",
    "ChoiceAccuracy",
    "ClassTable",
    "ConfidenceShift",
    "ContingencyTable",
    "CosineQuantiles",
    "Derived",
    "EmbeddingFidelity",
    "EmbeddingRows",
    "KLQuantiles",
    "MetricEstimate",
    "MetricInfo",
    "NeighbourAgreement",
    "NonFiniteCounts",
    "OutputFidelity",
    "PairedRows",
    "ProbabilityDivergence",
    "Qrels",
    "RegressionErrors",
    "Resampling",
    "RetrievalQuality",
    "SegmentTable",
    "TokenKLQuantiles",
    "TokenStatistics",
    "WeakSlices",
    "format_value",
    "kl_divergence_rows",
    "metric_info",
    "nearest_neighbours",
    "retrieval_scores",
    "slice_sample",
    "spearman_correlation",
    "suggest_metric",
]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What the checks need to know about a metric name.

    Attributes:
        name: Registry key (without any ``[...]`` qualifier).
        higher_is_better: Direction; None when neither direction is better.
        paired: True when the metric has one value for the pair (agreement, fidelity), not
            one per model.
        fraction: True when values lie in [0, 1], so thresholds on it are fractions.
        at_most_one: True when values are at most 1 without being fractions (R², a cosine
            similarity, a rank correlation): a threshold above 1 can never be met, and a margin
            above 1 would let the candidate fall below what predicting the mean scores (R²) or
            cover the whole range; both are percents written by mistake.
        tasks: Tasks that produce it.
        qualified: True when the name takes a ``[...]`` qualifier (class, batch, clients).
        interval: True when the metric comes with a bootstrap interval when resampling is on.
        needs_labels: True when the metric compares predictions with labels.
        per_dataset: True when the metric is computed on each dataset's rows (a spec with
            several datasets has it per ``dataset=<name>`` scope); False for what is measured
            once per run (performance, numerics on a sample).
    """

    name: str
    higher_is_better: bool | None
    paired: bool
    fraction: bool
    tasks: tuple[str, ...]
    qualified: bool = False
    interval: bool = True
    needs_labels: bool = False
    per_dataset: bool = True
    at_most_one: bool = False


_C = ("classification",)
_ALL = ("classification", "regression", "generic", "embedding")
_E = ("embedding",)
_LM = ("causal_lm",)
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("accuracy_score", True, False, True, _C, needs_labels=True),
        MetricInfo("macro_f1_score", True, False, True, _C, needs_labels=True),
        MetricInfo("weighted_f1_score", True, False, True, _C, needs_labels=True),
        MetricInfo("precision_score", True, False, True, _C, qualified=True, needs_labels=True),
        MetricInfo("recall_score", True, False, True, _C, qualified=True, needs_labels=True),
        MetricInfo("f1_score", True, False, True, _C, qualified=True, needs_labels=True),
        MetricInfo("top1_agreement", True, True, True, (*_C, *_LM)),
        MetricInfo("flip_correct_to_wrong_rate", False, True, True, _C, needs_labels=True),
        MetricInfo("flip_wrong_to_correct_rate", None, True, True, _C, needs_labels=True),
        MetricInfo("mean_kl_divergence", False, True, False, (*_C, *_LM)),
        MetricInfo("p99_kl_divergence", False, True, False, (*_C, *_LM), interval=False),
        MetricInfo("brier_loss", False, False, False, _C, needs_labels=True),
        # Descriptive only: binned ECE has no valid interval (docs/statistics.md).
        MetricInfo(
            "expected_calibration_error", False, False, True, _C, interval=False, needs_labels=True
        ),
        MetricInfo("mean_absolute_error", False, False, False, ("regression",), needs_labels=True),
        MetricInfo(
            "root_mean_squared_error", False, False, False, ("regression",), needs_labels=True
        ),
        MetricInfo(
            "r2_score", True, False, False, ("regression",), needs_labels=True, at_most_one=True
        ),
        MetricInfo("max_abs_diff", False, True, False, _ALL, interval=False),
        MetricInfo("mean_abs_diff", False, True, False, _ALL),
        MetricInfo("sqnr_db", True, True, False, _ALL),
        MetricInfo("cosine_similarity", True, True, False, _ALL, at_most_one=True),
        MetricInfo("nan_count", False, False, False, (*_ALL, *_LM), interval=False),
        MetricInfo("inf_count", False, False, False, (*_ALL, *_LM), interval=False),
        MetricInfo("nonfinite_count", False, False, False, (*_ALL, *_LM), interval=False),
        # Paired and distribution tests (ContingencyTable.paired_tests, ConfidenceShift): no
        # bootstrap interval.
        MetricInfo("mcnemar_pvalue", True, True, True, _C, interval=False, needs_labels=True),
        MetricInfo("stuart_maxwell_pvalue", True, True, True, _C, interval=False),
        MetricInfo("prediction_js_distance", False, True, True, _C, interval=False),
        MetricInfo("prediction_psi_distance", False, True, False, _C, interval=False),
        MetricInfo("confidence_ks_distance", False, True, True, _C, interval=False),
        MetricInfo("confidence_wasserstein_distance", False, True, True, _C, interval=False),
        # task: causal_lm (compval.metrics.tokens): per predicted token, intervals over sequences.
        MetricInfo("median_kl_divergence", False, True, False, _LM, interval=False),
        MetricInfo("max_kl_divergence", False, True, False, _LM, interval=False),
        MetricInfo("perplexity", False, False, False, _LM),
        # task: causal_lm on a multiple-choice set (data.choices): per question.
        MetricInfo("choice_accuracy_score", True, False, True, _LM, needs_labels=True),
        MetricInfo("choice_agreement", True, True, True, _LM),
        # task: embedding (compval.metrics.embedding); [k=K] is the neighbour / cutoff count.
        MetricInfo("embedding_norm", None, False, False, _E),
        MetricInfo(
            "min_cosine_similarity", True, True, False, _E, interval=False, at_most_one=True
        ),
        MetricInfo("p1_cosine_similarity", True, True, False, _E, at_most_one=True),
        MetricInfo("neighbour_agreement", True, True, True, _E, qualified=True),
        MetricInfo("neighbour_set_agreement", True, True, True, _E, qualified=True),
        MetricInfo(
            "similarity_spearman_score", True, True, False, _E, interval=False, at_most_one=True
        ),
        MetricInfo("retrieval_recall_score", True, False, True, _E, qualified=True),
        MetricInfo("ndcg_score", True, False, True, _E, qualified=True),
        MetricInfo("mrr_score", True, False, True, _E, qualified=True),
    )
}


def _all_metrics() -> dict[str, MetricInfo]:
    out = dict(METRICS)
    # The numerics section's metrics (docs/numerics.md): one value per candidate, measured on
    # a sample, without an interval; rates are shares of values.
    for name, higher in NUMERICS_METRIC_DIRECTIONS.items():
        out.setdefault(
            name,
            MetricInfo(
                name,
                higher,
                paired=True,
                fraction=name.endswith("_rate"),
                tasks=_ALL,
                interval=False,
                per_dataset=False,
            ),
        )
    for name, higher in PERF_METRIC_DIRECTIONS.items():
        out.setdefault(
            name,
            MetricInfo(
                name,
                higher,
                paired=name.startswith(("speedup", "unsupported_op"))
                or name.endswith("_fallback_node_count"),
                fraction=name == "weight_sparsity",
                tasks=_ALL,
                qualified=name.startswith(("latency_", "throughput", "speedup", "concurrent_")),
                interval=name.startswith("speedup"),
                per_dataset=False,
            ),
        )
    # The robustness runs' metrics (docs/robustness.md): the gap per perturbation scope, with
    # an interval paired across passes; the search's share of seeds without disagreement.
    # The gap is an accuracy difference for classification but a mean-absolute-error
    # difference, in target units, for regression: not a fraction.
    out.setdefault(
        "robustness_gap",
        MetricInfo(
            "robustness_gap",
            False,
            paired=True,
            fraction=False,
            tasks=(*_C, "regression"),
            needs_labels=True,
        ),
    )
    out.setdefault(
        "robust_agreement",
        MetricInfo(
            "robust_agreement", True, paired=True, fraction=True, tasks=_ALL, qualified=True
        ),
    )
    return out


def metric_info(name: str) -> MetricInfo | None:
    """The registry entry of ``name`` (qualifiers like ``[3]`` or ``[batch=1]`` stripped)."""
    base = name.split("[", 1)[0]
    return _all_metrics().get(base)


def suggest_metric(name: str) -> str:
    """A 'did you mean' hint for an unknown metric name (empty when nothing is close)."""
    close = difflib.get_close_matches(name.split("[", 1)[0], list(_all_metrics()), n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


name_public_functions(__name__, globals(), __all__)
