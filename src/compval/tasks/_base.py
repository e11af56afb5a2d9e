"""The Task protocol: what the engine asks of a task, and the registry of tasks.

The engine streams paired batches and never branches on the task. For each chunk of rows it
asks the task to

0. pick the compared output of a model whose spec entry names none (``default_output``, once
   per model, on its first batch; default: the model's first output);
1. name each model's output kind (``output_kind``, once per model, on its first chunk; a task
   may also learn from it, e.g. the class index space, in ``observe``);
2. turn the raw labels and the reference's raw output into a :class:`ChunkContext`
   (``prepare_chunk``);
3. pair each candidate's raw output with the reference's into the :class:`PairedRows` the
   accumulators consume (``pair``);
4. on the first chunk, build each candidate's accumulators (``accumulators``).

Optional, before 1-4: ``reduce_batch`` turns one batch's raw outputs into small per-row values
right after the models ran (a causal LM's (rows, seq, vocab) logits into per-token values), so
that nothing of the output's full size is buffered; the batch it returns (its rows, row ids
and segments, including the task's ``added_segments``) is what the chunk steps above see.

``default_criteria`` are what ``compval compare`` applies without a spec. Adding a task is
one module with a ``Task`` subclass plus one ``register_task`` line in
``compval/tasks/__init__.py`` (see docs/architecture.md).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compval.data import Batch
from compval.errors import SpecValidationError
from compval.metrics import Accumulator, ClassTable, PairedRows, SegmentTable
from compval.spec import AcceptanceSpec
from compval.tasks._outputs import OutputKind
from compval.types import Array, Outputs

__all__ = [
    "ChunkContext",
    "RowsBase",
    "Task",
    "TaskState",
    "get_task",
    "register_task",
    "task_names",
]


@dataclass
class TaskState:
    """What a task learns during one run, shared by every accumulator of the run.

    Attributes:
        spec: The run's spec.
        has_labels: Whether the data has labels.
        segments: Segment names -> ids, shared by every accumulator.
        classes: Class values -> indices (classification).
        dynamic_classes: True while the class index space grows with the labels seen (no
            model outputs class scores).
        n_scores: Width of the class-score outputs, once known.
        classes_from: The model whose class labels ``classes`` holds; None while it holds
            labels seen or the column indices 0..K-1.
        slice_features: Names of the columns the weak-slice search reads, and whether each
            is categorical; None when no search runs.
        notes: Decisions the task made on the user's behalf (an output kind inferred from one
            column, the output it compared); the engine reports them in ``report.run.notes``.
        column_orders: Model name -> the permutation that puts its score columns in the order
            of ``classes`` (only for models whose columns come in another order).
        label_kinds: What kind of values the labels (key None) and each label-output model
            (its name) hold, with a few examples, once seen: ``(kind, examples)``.
        vocabulary: The class indices (into ``classes``) seen so far in the labels (key None)
            and predicted by each label-output model (its name), while classes grow with the
            values seen.
        vocabulary_notes: Model name -> its note in ``notes`` about predicted labels that
            match no label value (kept up to date, chunk by chunk).
        base_dir: The folder relative paths of the spec resolve against (the spec file's;
            None: the working directory), for files a task reads itself (relevance judgements).
        nonfinite_rows: Candidate name -> rows left out of its value comparisons because
            either model's output held NaN or Inf there (value tasks).
        keyed_notes: Key -> the current text of a note that ``put_note`` keeps up to date.
    """

    spec: AcceptanceSpec
    has_labels: bool
    segments: SegmentTable = field(default_factory=SegmentTable)
    classes: ClassTable = field(default_factory=ClassTable)
    dynamic_classes: bool = True
    n_scores: int | None = None
    classes_from: str | None = None
    slice_features: tuple[list[str], list[bool]] | None = None
    notes: list[str] = field(default_factory=list)
    column_orders: dict[str, Array] = field(default_factory=dict)
    label_kinds: dict[str | None, tuple[str, list[object]]] = field(default_factory=dict)
    vocabulary: dict[str | None, set[int]] = field(default_factory=dict)
    vocabulary_notes: dict[str, str] = field(default_factory=dict)
    base_dir: Path | None = None
    nonfinite_rows: dict[str, int] = field(default_factory=dict)
    keyed_notes: dict[str, str] = field(default_factory=dict)

    def put_note(self, key: str, note: str) -> None:
        """Add ``note`` to ``notes``, replacing the one added before under ``key``.

        For a note whose numbers grow chunk by chunk: the report holds the last version once.
        """
        old = self.keyed_notes.get(key)
        if old is not None and old in self.notes:
            self.notes[self.notes.index(old)] = note
        else:
            self.notes.append(note)
        self.keyed_notes[key] = note

    def __post_init__(self) -> None:
        # Enforced by segment_ids on every chunk, whatever the data source.
        self.segments.max_values = self.spec.primary_data.max_segment_values


@dataclass(frozen=True, slots=True)
class ChunkContext:
    """A task's reading of one chunk's labels and reference output.

    Attributes:
        labels: Labels as the accumulators take them (class indices, or float targets).
        label_classes: Class index per row for the ``label=<class>`` segments; None when the
            task has no such segments.
        reference: Task-specific prepared reference output (e.g. predicted classes).
        raw_labels: The labels as the data holds them (for checks on their values).
        reference_model: The reference's name (for messages about what it is compared with).
    """

    labels: Array | None
    label_classes: Array | None
    reference: Any = None
    raw_labels: Array | None = None
    reference_model: str = ""


@dataclass(frozen=True, slots=True)
class RowsBase:
    """What every task's paired rows share: raw rows, ids, blocks, segments, slice columns."""

    reference: Array
    candidate: Array
    row_ids: Array
    blocks: Array
    segment_ids: Array
    slice_columns: Sequence[Array] | None = None
    slice_keep: Array | None = None


class Task(abc.ABC):
    """One kind of prediction problem; stateless (run state lives in ``TaskState``)."""

    #: Registry key, the spec's ``task.type``.
    name: ClassVar[str]
    #: The task name under which this task's metrics are listed in ``compval.metrics.METRICS``
    #: (``MetricInfo.tasks``): a task that reuses built-in metrics inherits its parent's.
    metrics_of: ClassVar[str]
    #: Whether the weak-slice search applies (labelled tabular data).
    searches_slices: ClassVar[bool] = False
    #: Whether rows are also segmented by their label (``label=<class>`` scopes).
    label_segments: ClassVar[bool] = False
    #: Whether ``reduce_batch`` takes outputs where the model computed them (torch tensors on
    #: a GPU, from ``ModelAdapter.predict_on_device``) and brings back only its reduced rows:
    #: the engine then skips the copy of every full output to the host.
    device_outputs: ClassVar[bool] = False

    def default_output(self, state: TaskState, outputs: Outputs, *, model: str) -> str | None:
        """The output compared when the model's spec entry names none; None: the first.

        Called once per model, on its first batch. A task that chooses another output than the
        first says so in ``state.notes``.
        """
        return None

    def added_segments(self, state: TaskState, columns: Sequence[str]) -> tuple[str, ...]:
        """Segment columns this task's ``reduce_batch`` adds to the data's ``columns``."""
        return ()

    def reduce_batch(
        self,
        state: TaskState,
        batch: Batch,
        reference: Array,
        candidates: Sequence[Array],
        *,
        models: Sequence[str],
    ) -> tuple[Batch, Array, list[Array]] | None:
        """Reduce one batch's compared outputs as soon as the models ran; None: keep them.

        With ``device_outputs`` the outputs may be torch tensors on a device; the returned
        rows must be numpy. ``models`` names the reference then each candidate. The returned
        batch replaces ``batch`` for scoring (its labels, row ids and segments must match the
        returned rows, and its segments must hold every column of ``added_segments``); the
        engine counts the original batch's rows as done.
        """
        return None

    @abc.abstractmethod
    def output_kind(self, state: TaskState, raw: Array, *, model: str) -> OutputKind:
        """The kind of a model's output, from its first chunk."""

    def observe(  # noqa: B027 - optional hook, default no-op
        self,
        state: TaskState,
        classes: Sequence[object] | None,
        raw: Array,
        kind: OutputKind,
        *,
        model: str,
    ) -> None:
        """Learn from a model's first chunk (``classes``: the adapter's class labels)."""

    @abc.abstractmethod
    def prepare_chunk(
        self,
        state: TaskState,
        *,
        reference: Array,
        kind: OutputKind,
        labels: Array | None,
        model: str,
    ) -> ChunkContext:
        """Labels and the prepared reference output of one chunk."""

    @abc.abstractmethod
    def pair(
        self,
        state: TaskState,
        chunk: ChunkContext,
        base: RowsBase,
        *,
        raw: Array,
        kind: OutputKind,
        model: str,
    ) -> tuple[PairedRows, PairedRows]:
        """Pair one candidate's chunk with the reference's.

        Returns ``(rows, nonfinite_rows)``: the rows for the accumulators, and the raw rows
        that ``NonFiniteCounts`` counts.
        """

    @abc.abstractmethod
    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """A new candidate's accumulators, in the order their metrics are reported."""

    @abc.abstractmethod
    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """The criteria ``compval compare`` applies without a spec (concise spec form)."""


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    """Make ``task`` selectable as ``task: <task.name>`` in a spec."""
    _TASKS[task.name] = task


def task_names() -> tuple[str, ...]:
    """Registered task names."""
    return tuple(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``.

    Raises:
        SpecValidationError: No task has that name (the message lists the known ones).
    """
    try:
        return _TASKS[name]
    except KeyError:
        raise SpecValidationError(
            f"task.type: unknown task; got {name!r}, expected one of "
            f"{', '.join(_TASKS)}. Fix 'task:' in the spec.",
            path="task.type",
        ) from None
