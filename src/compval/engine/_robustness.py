"""The robustness runs: one paired pass per perturbation, then the differential search.

Each perturbation wraps the dataset (:class:`compval.robustness.PerturbedDataset`) and runs the
same paired stream as the clean pass, so it streams (memory flat in rows) and costs one more
inference pass per perturbation. Its estimates get the scope ``perturbation=<name>``
(composing with segments), and the robustness gap pairs it with the clean pass through the
per-block sums both passes keep (``RunState.extra_accumulators``): correct rows for
classification, absolute errors for regression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from compval.adapters import ModelAdapter, bind_inputs
from compval.data import Dataset
from compval.engine._stream import N_BLOCKS, CandidateState, RunState, stream
from compval.errors import DataError, SpecValidationError
from compval.metrics import Accumulator, ContingencyTable, MetricEstimate
from compval.results import (
    FoundCase,
    PerturbationInfo,
    RobustnessSection,
    SearchResult,
    SearchSettings,
)
from compval.robustness import (
    BlockAbsErrors,
    BlockCorrectness,
    FeatureStats,
    Perturbation,
    PerturbedDataset,
    build_perturbation,
    differential_search,
    feature_stats,
    gap_estimates,
)
from compval.spec import AcceptanceSpec
from compval.stats import clopper_pearson_intervals
from compval.tasks import TaskState
from compval.types import Array

__all__ = ["Robustness", "prepare_robustness"]

FEATURE_STATS = (
    "one pass over every row of the data's inputs before the models run (exact float64 sums: "
    "mean, population std, min, max per flattened feature)"
)


class Robustness:
    """The robustness section of one run: the perturbations resolved, then run."""

    def __init__(self, spec: AcceptanceSpec, perturbations: Sequence[Perturbation]) -> None:
        self.spec = spec
        self.perturbations = list(perturbations)
        self.stats: dict[str, FeatureStats] = {}
        self.notes: list[str] = []
        self.progress: Callable[[str, int, int], None] | None = None

    def attach(self, run: RunState) -> None:
        """Give the clean pass the per-block sums the gap pairs with (or say why there are none).

        Classification keeps correct rows (an accuracy gap), regression absolute errors (an
        MAE gap); both need labels.
        """
        if not self.perturbations:
            return
        factory = _GAP_SUMS.get(run.task.name)
        if factory is not None and run.dataset.has_labels:
            run.extra_accumulators = factory
        elif factory is not None:
            self.notes.append(
                f"Robustness: robustness_gap compares each model with the labels, and this "
                f"{run.task.name} data has none; the perturbed passes report their usual "
                "metrics only."
            )
        else:
            self.notes.append(
                "Robustness: robustness_gap needs a classification or regression task with "
                f"labels (task {run.task.name!r} has no error against labels to lose); the "
                "perturbed passes report their usual metrics only."
            )

    def run(
        self,
        run: RunState,
        ref: ModelAdapter,
        ref_output: str | None,
        states: Sequence[CandidateState],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[dict[str, list[MetricEstimate]], RobustnessSection]:
        """Every perturbed pass and the search; estimates per candidate and the section."""
        self.progress = progress
        s = self.spec
        assert s.robustness is not None
        self.stats = feature_stats(run.dataset, s.batch_size)
        rounded = [
            f"{a.name}: {', '.join(names)}"
            for a in (ref, *(st.adapter for st in states))
            if (names := _rounded_inputs(a, run.feature_columns, set(self.stats)))
        ]
        if rounded:
            self.notes.append(
                "Perturbed values fed to integer model inputs are rounded to the nearest whole "
                f"number ({'; '.join(rounded)})."
            )
        estimates: dict[str, list[MetricEstimate]] = {st.name: [] for st in states}
        for p in self.perturbations:
            for name, ests in self._perturbed(p, run, ref, ref_output, states).items():
                estimates[name].extend(ests)
        settings: SearchSettings | None = None
        results: list[SearchResult] = []
        if s.robustness.search is not None:
            settings, results = self._search(run, ref, ref_output, states)
            for r in results:
                estimates[r.candidate].append(_agreement_estimate(r, settings.epsilon))
        section = RobustnessSection(
            perturbations=tuple(_info(p) for p in self.perturbations),
            feature_stats=FEATURE_STATS,
            search=settings,
            search_results=tuple(results),
        )
        return estimates, section

    def _perturbed(
        self,
        p: Perturbation,
        clean: RunState,
        ref: ModelAdapter,
        ref_output: str | None,
        states: Sequence[CandidateState],
    ) -> dict[str, list[MetricEstimate]]:
        s = self.spec
        # The weak-slice search is for the clean data; a perturbed pass reports its metrics.
        spec = s.model_copy(
            update={"statistics": s.statistics.model_copy(update={"discovery": False})}
        )
        dataset: Dataset = PerturbedDataset(clean.dataset, p, self.stats, seed=s.seed)
        run = RunState(spec, dataset, clean.resampling)
        run.round_integer_inputs = True
        run.extra_accumulators = clean.extra_accumulators
        pstates = [CandidateState(st.name, st.adapter, st.output) for st in states]
        report = self.progress
        stream(
            run,
            ref,
            ref_output,
            pstates,
            None
            if report is None
            else lambda _stage, done, total: report(f"perturbation={p.name}", done, total),
        )
        for note in run.notes:
            if note not in clean.notes:
                self.notes.append(f"perturbation={p.name}: {note}")
        out: dict[str, list[MetricEstimate]] = {}
        for st, clean_st in zip(pstates, states, strict=True):
            ests: list[MetricEstimate] = []
            for acc in st.accumulators:
                if isinstance(acc, ContingencyTable):
                    acc.class_names = [
                        run.state.classes.display(i) for i in range(len(run.state.classes))
                    ]
                ests.extend(
                    replace(e, segment=_scope(p.name, e.segment))
                    for e in acc.estimates(clean.resampling)
                    if not (e.segment or "").startswith("slice:")
                )
            clean_sums = _find(clean_st.accumulators)
            pert_sums = _find(st.accumulators)
            if clean_sums is not None and pert_sums is not None:
                ests.extend(
                    gap_estimates(
                        clean_sums, pert_sums, perturbation=p.name, resampling=clean.resampling
                    )
                )
                self._note_left_out(p.name, st.name, clean_sums, pert_sums)
            out[st.name] = ests
        return out

    def _note_left_out(
        self,
        perturbation: str,
        candidate: str,
        clean: BlockCorrectness | BlockAbsErrors,
        perturbed: BlockCorrectness | BlockAbsErrors,
    ) -> None:
        """Say when the MAE gap's passes left out rows (non-finite outputs or targets)."""
        if not isinstance(clean, BlockAbsErrors) or not isinstance(perturbed, BlockAbsErrors):
            return
        left = (clean.left_out(), perturbed.left_out())
        if any(left):
            self.notes.append(
                f"perturbation={perturbation} ({candidate}): robustness_gap's mean absolute "
                f"errors leave out the rows with a non-finite output or target: {left[0]} in "
                f"the clean pass, {left[1]} in the perturbed one (see nonfinite_count)."
            )

    def _search(
        self,
        run: RunState,
        ref: ModelAdapter,
        ref_output: str | None,
        states: Sequence[CandidateState],
    ) -> tuple[SearchSettings, list[SearchResult]]:
        s = self.spec
        assert s.robustness is not None and s.robustness.search is not None
        search = s.robustness.search
        classification = run.task.name == "classification"
        if not classification and search.tolerance is None:
            raise SpecValidationError(
                f"robustness.search.tolerance: required for task {s.task.type!r}; a disagreement "
                "is then a max absolute output difference above it. Set e.g. tolerance: 0.1.",
                path="robustness.search.tolerance",
            )
        rows, row_ids = _seed_rows(run.dataset, search.seeds, seed=s.seed, batch_size=s.batch_size)
        # Float inputs with statistics are searched (one ball over all their features); the
        # others (token ids, masks, categories) stay at each seed row's values.
        searched = [n for n, a in rows.items() if a.dtype.kind == "f" and n in self.stats]
        if not searched:
            raise DataError(
                f"robustness.search: the data's inputs {sorted(rows)} hold no float features "
                f"({', '.join(f'{n}: {a.dtype}' for n, a in rows.items())}); the search "
                "perturbs float features only. Remove robustness.search for this data."
            )
        several = len(rows) > 1
        data_input = searched[0]
        seeds: Array | dict[str, Array] = rows if several else rows[data_input]
        stats: FeatureStats | dict[str, FeatureStats] = (
            {n: self.stats[n] for n in searched} if several else self.stats[data_input]
        )
        model_input = ",".join(searched) if several else next(iter(ref.input_spec()), data_input)
        k = int(row_ids.shape[0])
        settings = SearchSettings(
            method=search.method,
            seeds=k,
            epsilon=search.epsilon,
            budget_per_seed=search.budget,
            clip=search.clip,
            tolerance=search.tolerance,
            input=model_input,
            seed=s.seed,
        )
        confidence = s.statistics.confidence
        dtypes = {n: a.dtype for n, a in rows.items()}
        ref_predict = _predictor(run, ref, ref_output, data_input, dtypes, s.batch_size)
        results: list[SearchResult] = []
        for st in states:
            modules = _torch_modules(ref, st.adapter) if search.method == "pgd" else None
            outcome = differential_search(
                ref_predict,
                _predictor(run, st.adapter, st.output, data_input, dtypes, s.batch_size),
                seeds,
                stats,
                epsilon=search.epsilon,
                budget=search.budget,
                method=search.method,
                clip=search.clip,
                classification=classification,
                tolerance=search.tolerance or 0.0,
                seed=s.seed,
                row_ids=row_ids,
                modules=modules,
            )
            ref_pred = _predictions(outcome.reference, classification)
            cand_pred = _predictions(outcome.candidate, classification)
            found = np.flatnonzero(outcome.found)
            order = found[np.argsort(-outcome.divergence[found], kind="stable")]
            cases = tuple(
                FoundCase(
                    seed_row_id=int(row_ids[i]),
                    size=float(outcome.size[i]),
                    reference_prediction=ref_pred[i].item(),
                    candidate_prediction=cand_pred[i].item(),
                    divergence=float(outcome.divergence[i]),
                )
                for i in order[: search.top]
            )
            agree = k - int(found.size)
            low, high = clopper_pearson_intervals([agree], [k], confidence=confidence)
            labels: Array = ref_pred[found]
            classes = ref.classes
            if classification and classes is not None and outcome.reference.shape[1] > 1:
                labels = np.asarray([classes[int(j)] for j in ref_pred[found]])
            found_inputs = (
                {n: np.asarray(a)[found] for n, a in outcome.inputs.items()}
                if outcome.inputs
                else {model_input: outcome.x[found].astype(dtypes[data_input])}
            )
            edge = (
                {
                    **found_inputs,
                    "labels": labels,
                    "seed_row_ids": row_ids[found],
                    "size": outcome.size[found],
                    "candidate_predictions": cand_pred[found],
                }
                if found.size
                else {}
            )
            if outcome.unconfirmed:
                self.notes.append(
                    f"Search ({st.name}): {outcome.unconfirmed} disagreement(s) seen inside a "
                    "search batch did not replay one row at a time (batch-dependent "
                    "quantization); they are not counted."
                )
            results.append(
                SearchResult(
                    candidate=st.name,
                    seeds=k,
                    seeds_with_disagreement=int(found.size),
                    robust_agreement=agree / k,
                    ci_low=float(low[0]),
                    ci_high=float(high[0]),
                    confidence=confidence,
                    evaluations=int(outcome.evaluations.sum()),
                    unconfirmed=outcome.unconfirmed,
                    cases=cases,
                    edge_cases=edge,
                )
            )
        return settings, results


def _check_criteria(spec: AcceptanceSpec) -> None:
    """A robustness criterion that nothing computes could only ever be inconclusive: refuse it."""
    search = None if spec.robustness is None else spec.robustness.search
    for i, c in enumerate(spec.criteria):
        base = c.metric.split("[", 1)[0]
        if base not in ("robustness_gap", "robust_agreement"):
            continue
        if spec.robustness is None:
            raise SpecValidationError(
                f"criteria[{i}].metric: {c.metric!r} needs a robustness: section "
                "(docs/robustness.md); add one, or remove the criterion.",
                path=f"criteria[{i}].metric",
            )
        if base == "robustness_gap" and not spec.robustness.perturbations:
            raise SpecValidationError(
                f"criteria[{i}].metric: 'robustness_gap' needs robustness.perturbations; none "
                "are declared.",
                path=f"criteria[{i}].metric",
            )
        if base == "robust_agreement":
            expected = None if search is None else f"robust_agreement[eps={search.epsilon:g}]"
            if c.metric != expected:
                raise SpecValidationError(
                    f"criteria[{i}].metric: got {c.metric!r}, expected "
                    + (
                        f"{expected!r} (the search's epsilon)."
                        if expected
                        else "a robustness.search section to compute it."
                    ),
                    path=f"criteria[{i}].metric",
                )


def prepare_robustness(spec: AcceptanceSpec) -> Robustness | None:
    """Resolve the spec's perturbations before any model runs (spec errors come first)."""
    _check_criteria(spec)
    if spec.robustness is None:
        return None
    perturbations = [
        build_perturbation(p, index=i) for i, p in enumerate(spec.robustness.perturbations)
    ]
    return Robustness(spec, perturbations)


def _torch_modules(
    ref: ModelAdapter, cand: ModelAdapter
) -> tuple[tuple[Any, str | None, str], tuple[Any, str | None, str]]:
    """Both models' torch modules for the gradient search, or a spec error naming why not."""
    found: list[tuple[Any, str | None, str]] = []
    for adapter in (ref, cand):
        module = getattr(adapter, "module", None) if adapter.model_format != "other" else None
        if module is None or len(adapter.input_spec()) != 1:
            raise SpecValidationError(
                f"robustness.search.method: 'pgd' needs both models as torch modules with one "
                f"input; model {adapter.name!r} is {adapter.model_format!r} with "
                f"{len(adapter.input_spec())} input(s). Use method: evolution (any runtime).",
                path="robustness.search.method",
            )
        found.append((module, getattr(adapter, "dtype", None), getattr(adapter, "device", "cpu")))
    return found[0], found[1]


def _block_correctness(state: TaskState) -> list[Accumulator]:
    return [BlockCorrectness(state.segments, n_blocks=N_BLOCKS)]


def _block_abs_errors(state: TaskState) -> list[Accumulator]:
    return [BlockAbsErrors(state.segments, n_blocks=N_BLOCKS)]


#: Task name -> the per-block sums its robustness gap pairs across passes.
_GAP_SUMS: dict[str, Callable[[TaskState], list[Accumulator]]] = {
    "classification": _block_correctness,
    "regression": _block_abs_errors,
}


def _find(accumulators: Sequence[Accumulator]) -> BlockCorrectness | BlockAbsErrors | None:
    return next(
        (a for a in accumulators if isinstance(a, (BlockCorrectness, BlockAbsErrors))), None
    )


def _scope(name: str, segment: str | None) -> str:
    return f"perturbation={name}" if segment is None else f"perturbation={name},{segment}"


def _info(p: Perturbation) -> PerturbationInfo:
    return PerturbationInfo(
        name=p.name,
        kind=p.kind.name,
        params=dict(p.params),
        inputs=p.inputs,
        layout=None if p.image is None else p.image[0],
        image_shape=None if p.image is None or not p.image[1] else p.image[1],
    )


def _seed_rows(
    dataset: Dataset, k: int, *, seed: int, batch_size: int
) -> tuple[dict[str, Array], Array]:
    """K rows drawn without replacement with ``seed`` (in data order), and their row ids."""
    total = len(dataset)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(k, total), replace=False))
    parts: dict[str, list[Array]] = {}
    ids: list[Array] = []
    start = 0
    for batch in dataset.batches(batch_size):
        n = len(batch)
        lo, hi = np.searchsorted(chosen, [start, start + n])
        if hi > lo:
            local = chosen[lo:hi] - start
            for name, array in batch.inputs.items():
                parts.setdefault(name, []).append(np.asarray(array)[local])
            ids.append(np.asarray(batch.row_ids)[local])
        start += n
        if start > chosen[-1]:
            break
    return {n: np.concatenate(a) for n, a in parts.items()}, np.concatenate(ids)


def _rounded_inputs(
    adapter: ModelAdapter, columns: Sequence[str], perturbed: set[str]
) -> list[str]:
    """The model's integer inputs that perturbed float data reaches (``bind_inputs`` rounds).

    ``perturbed`` names the data's float inputs (the ones perturbations change); a model with
    one input per column is fed from the ``features`` array's columns by name.
    """
    spec = adapter.input_spec()
    out = []
    for name, tensor in spec.items():
        if tensor.dtype is None or not np.issubdtype(tensor.dtype, np.integer):
            continue
        single = len(spec) == 1 and len(perturbed) == 1
        if single or name in perturbed or (name in columns and "features" in perturbed):
            out.append(name)
    return out


def _predictor(
    run: RunState,
    adapter: ModelAdapter,
    output: str | None,
    data_input: str,
    dtypes: Mapping[str, np.dtype],
    batch_size: int,
) -> Callable[[Array | Mapping[str, Array]], Array]:
    """The search's predict function, run at the spec's batch size.

    It takes rows (one input's array, or every input by name) and returns the compared output.
    """

    def predict(x: Array | Mapping[str, Array]) -> Array:
        inputs = dict(x) if isinstance(x, Mapping) else {data_input: x}
        n = next(iter(inputs.values())).shape[0]
        parts = []
        for start in range(0, n, batch_size):
            feed = bind_inputs(
                adapter.name,
                {
                    name: np.asarray(a[start : start + batch_size]).astype(dtypes[name])
                    for name, a in inputs.items()
                },
                adapter.input_spec(),
                columns=run.feature_columns,
                round_integers=True,
            )
            out = run.compared(adapter, adapter.predict(feed), output)
            parts.append(np.asarray(out, dtype=np.float64).reshape(len(out), -1))
        return np.concatenate(parts)

    return predict


def _predictions(outputs: Array, classification: bool) -> Array:
    if classification and outputs.shape[1] > 1:
        top: Array = outputs.argmax(axis=1).astype(np.int64)
        return top
    first: Array = outputs[:, 0]
    return first


def _agreement_estimate(r: SearchResult, epsilon: float) -> MetricEstimate:
    return MetricEstimate(
        metric=f"robust_agreement[eps={epsilon:g}]",
        segment=None,
        higher_is_better=True,
        paired=True,
        n=r.seeds,
        reference=None,
        candidate=r.robust_agreement,
        delta=None,
        ci=None if r.ci_low is None or r.ci_high is None else (r.ci_low, r.ci_high),
        confidence=r.confidence,
        ci_method="clopper_pearson",
    )
