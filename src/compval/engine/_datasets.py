"""The datasets of one run: each a part with its own data, paired-run state and scope.

A spec whose ``data`` is a list of named datasets runs one paired pass per dataset; every
estimate of a named dataset is scoped ``dataset=<name>`` (composing with segments), so the
checks can gate each dataset on its own. The single-dataset form has one unnamed part whose
estimates stay unscoped. What is measured once per run (profile, numerics) uses the first part.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from compval.checks import Criterion
from compval.data import Dataset, as_dataset, load_dataset
from compval.engine._stream import CandidateState, RunState
from compval.errors import DataError
from compval.metrics import MetricEstimate, Resampling
from compval.results import SliceResult, StatisticsSection
from compval.spec import AcceptanceSpec, DataRef, LoadedSpec

__all__ = [
    "DatasetPart",
    "data_hash",
    "dataset_notes",
    "load_parts",
    "merged_statistics",
    "part_notes",
    "robustness_part",
]

Progress = Callable[[str, int, int], None]


class DatasetPart:
    """One dataset of a run: its spec entry, its data, and its own paired-run state.

    A spec with ``data:`` as a list runs one paired pass per dataset; every estimate of a
    named dataset is scoped ``dataset=<name>`` (composing with segments), so the checks can
    gate each dataset separately. The single-dataset form has one unnamed part, unscoped.
    """

    def __init__(self, name: str | None, ref: DataRef, dataset: Dataset, run: RunState) -> None:
        self.name = name
        self.ref = ref
        self.dataset = dataset
        self.run = run
        self.hash = _fingerprint_on_the_side(dataset)
        self.states: list[CandidateState] = []
        self.rows = 0
        self.statistics: StatisticsSection | None = None

    def scope(self, segment: str | None) -> str | None:
        """``segment`` within this dataset (unchanged for the single-dataset form)."""
        if self.name is None:
            return segment
        head = f"dataset={self.name}"
        return head if segment is None else f"{head},{segment}"

    def scoped(self, estimates: Sequence[MetricEstimate]) -> list[MetricEstimate]:
        """The estimates with their segments scoped to this dataset."""
        if self.name is None:
            return list(estimates)
        return [replace(e, segment=self.scope(e.segment)) for e in estimates]

    def progress(self, progress: Progress | None) -> Progress | None:
        """The progress callback, its stage named after the dataset when there are several."""
        if progress is None or self.name is None:
            return progress
        stage = f"dataset={self.name}"
        return lambda _stage, done, total: progress(stage, done, total)

    def describe(self) -> dict[str, object]:
        """This dataset's entry in ``run.datasets``."""
        return {
            "name": self.name,
            "path": self.ref.path,
            "rows": self.rows,
            "data_hash": self.hash(),
            "labels": self.ref.labels if self.dataset.has_labels else None,
            "segment_columns": list(self.dataset.segment_columns),
        }


def load_parts(
    loaded: LoadedSpec, data: object | None, resampling: Resampling | None
) -> list[DatasetPart]:
    """One part per dataset of the spec, each loaded, with its paired-run state."""
    s = loaded.spec
    if not s.multi_dataset:
        dataset = _dataset(loaded, s.primary_data, data)
        return [
            DatasetPart(None, s.primary_data, dataset, _run_state(loaded, s, dataset, resampling))
        ]
    given: Mapping[str, object] = {}
    if data is not None:
        names = [d.name for d in s.datasets]
        if not isinstance(data, Mapping) or not set(data) <= set(names):
            raise DataError(
                f"data: the spec lists several datasets {names}; in-memory data for it is a "
                "mapping of dataset name -> data (DataFrame, (X, y), array or Dataset), got "
                f"{type(data).__name__}"
                + (f" with keys {sorted(map(str, data))}" if isinstance(data, Mapping) else "")
                + ". Key each object by its dataset's name."
            )
        given = data
    parts = []
    for ref in s.datasets:
        name = str(ref.name)
        # The tasks read the dataset's own labels and limits from their spec's ``data``.
        one = s.model_copy(update={"data": ref})
        dataset = _dataset(loaded, ref, given.get(name))
        parts.append(DatasetPart(name, ref, dataset, _run_state(loaded, one, dataset, resampling)))
    return parts


def _run_state(
    loaded: LoadedSpec, spec: AcceptanceSpec, dataset: Dataset, resampling: Resampling | None
) -> RunState:
    run = RunState(spec, dataset, resampling)
    # Files the task reads itself (relevance judgements) are relative to the spec's folder.
    run.state.base_dir = loaded.base_dir
    return run


def robustness_part(spec: AcceptanceSpec, parts: Sequence[DatasetPart]) -> DatasetPart:
    """The dataset the robustness section perturbs: ``robustness.dataset``, else the first."""
    wanted = None if spec.robustness is None else spec.robustness.dataset
    return next((p for p in parts if p.name == wanted), parts[0])


def merged_statistics(parts: Sequence[DatasetPart]) -> StatisticsSection:
    """The statistics section, over every dataset.

    Discovered slices of every dataset (each naming its dataset); the flip matrices and
    reliability diagrams of the first.
    """
    first = parts[0].statistics
    assert first is not None
    if len(parts) == 1:
        return first
    discovered: dict[str, tuple[SliceResult, ...]] = {}
    for part in parts:
        assert part.statistics is not None
        for name, slices in part.statistics.discovered.items():
            named = tuple(replace(sl, dataset=part.name) for sl in slices)
            discovered[name] = (*discovered.get(name, ()), *named)
    return replace(first, discovered=discovered)


def part_notes(parts: Sequence[DatasetPart]) -> list[str]:
    """Each dataset's run notes; another dataset's repeat of the first's is said once."""
    first = parts[0]
    notes = list(first.run.notes)
    for part in parts[1:]:
        notes += [f"dataset={part.name}: {n}" for n in part.run.notes if n not in first.run.notes]
    for part in parts:
        if part.run.nonfinite_features:
            counts = ", ".join(f"{c!r}: {k:,}" for c, k in part.run.nonfinite_features.items())
            where = "" if part.name is None else f"dataset={part.name}: "
            notes.append(
                f"{where}Non-finite feature values kept (data.allow_nonfinite_features): {counts}."
            )
    return notes


def dataset_notes(
    spec: AcceptanceSpec,
    parts: Sequence[DatasetPart],
    criteria: Sequence[Criterion],
    robust_part: DatasetPart | None,
    *,
    profiled: bool,
) -> list[str]:
    """With several datasets: where the once-per-run sections ran, and what was left out.

    A criterion's default dataset selection drops the datasets that cannot decide it; each
    is named, so the gate never has a silent gap.
    """
    if not spec.multi_dataset:
        return []
    notes = [
        f"Criterion {c.id!r} is not gated on dataset {name!r}: it {why}."
        for c in criteria
        for name, why in c.left_out
    ]
    first = parts[0].name
    once = [
        label
        for label, on in (
            ("the performance profile", profiled),
            ("the numerics section", spec.numerics is not None),
        )
        if on
    ]
    if once:
        notes.append(f"{' and '.join(once).capitalize()} ran on the first dataset, {first!r}.")
    if robust_part is not None:
        notes.append(f"The robustness section ran on dataset {robust_part.name!r}.")
    return notes


def data_hash(parts: Sequence[DatasetPart], *, multi: bool) -> str:
    """The data's content hash; with several datasets, a hash of their names and hashes."""
    if not multi:
        return parts[0].hash()
    joined = "\n".join(f"{part.name}:{part.hash()}" for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()


def _fingerprint_on_the_side(dataset: Dataset) -> Callable[[], str]:
    """Hash the data on a daemon thread while models run; the returned call waits for it.

    Hashing a file is a pass over all its bytes (hashlib releases the GIL), as long as
    reading it for the models: done on the side, it overlaps inference. An error there is
    left for the returned call, which then hashes again and raises it itself.
    """
    done: list[str] = []

    def work() -> None:
        with contextlib.suppress(Exception):
            done.append(dataset.fingerprint())

    thread = threading.Thread(target=work, name="compval-hash", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        return done[0] if done else dataset.fingerprint()

    return result


def _dataset(loaded: LoadedSpec, ref: DataRef, data: object | None) -> Dataset:
    if data is None:
        return load_dataset(ref, base_dir=loaded.base_dir)
    if isinstance(data, (tuple, list, np.ndarray, Dataset)):
        # Arrays carry no column names: the spec's data.labels do not apply, and segments the
        # spec names must be there, or the per-segment criteria would silently vanish.
        dataset = as_dataset(data)
        missing = [c for c in ref.segments if c not in dataset.segment_columns]
        if missing:
            raise DataError(
                f"data.segments: segment column(s) {missing} not found in the in-memory data; "
                f"got {type(data).__name__} data with segment columns "
                f"{list(dataset.segment_columns)}, expected {list(ref.segments)} among them. "
                "Pass a pandas DataFrame with those columns, an ArrayDataset(X, labels=y, "
                "segments={...}), or remove data.segments from the spec."
            )
        return dataset
    return as_dataset(data, labels=ref.labels, segments=ref.segments, features=ref.features)
