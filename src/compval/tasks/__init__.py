"""Tasks: what the models predict, and how their outputs become paired rows and accumulators.

The engine calls a :class:`Task` without knowing which one it has. Adding a task is one module
plus one ``register_task`` line below (see docs/architecture.md).
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.tasks._base import (
    ChunkContext,
    RowsBase,
    Task,
    TaskState,
    get_task,
    register_task,
    task_names,
)
from compval.tasks._outputs import OutputKind, as_rows, segment_ids, select_output
from compval.tasks.causal_lm import CausalLMTask
from compval.tasks.classification import ClassificationTask
from compval.tasks.embedding import EmbeddingTask
from compval.tasks.generic import GenericTask
from compval.tasks.regression import RegressionTask

__all__ = [
    "CausalLMTask",
    "ChunkContext",
    "ClassificationTask",
    "EmbeddingTask",
    "GenericTask",
    "OutputKind",
    "RegressionTask",
    "RowsBase",
    "Task",
    "TaskState",
    "as_rows",
    "get_task",
    "register_task",
    "segment_ids",
    "select_output",
    "task_names",
]

# -- the built-in tasks: one registration each ----------------------------------------------
register_task(ClassificationTask())
register_task(RegressionTask())
register_task(GenericTask())
register_task(CausalLMTask())
register_task(EmbeddingTask())

name_public_functions(__name__, globals(), __all__)
