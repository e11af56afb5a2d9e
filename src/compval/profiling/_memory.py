"""Peak resident memory of a model, measured in an isolated child process.

Measuring in the profiling process itself would count everything compval, the data and the
other models hold. The child (``_memory_child.py``, run with the same interpreter) imports
only numpy and the runtime, loads the model file, runs one batch of the largest batch size
and reports its peak resident set: the memory a process that serves this model needs,
interpreter and runtime included. Only file-based ONNX, TorchScript and ``torch.export``
models can be measured this way.

The peak is ``VmHWM`` from ``/proc/self/status`` on Linux, not
``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries ``ru_maxrss`` across ``execve`` and a
child spawned by a large process reports the parent's peak (a 2 GB profiler would make every
model look like 2 GB). Elsewhere ``ru_maxrss`` is used, and is an upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compval.errors import InvalidParameterError, ProfilingError
from compval.types import Array

__all__ = ["MemoryResult", "measure_peak_memory"]

_MIB = 1024 * 1024
_CHILD = Path(__file__).with_name("_memory_child.py")
_KINDS = ("onnx", "torchscript", "torch_export")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryResult:
    """Peak resident memory of a child process serving one model.

    Attributes:
        peak_mb: Peak resident set size in MiB, interpreter and runtime included.
        baseline_mb: Resident set after importing the runtime, before loading the model.
        load_time_ms: Time the child took to load the model.
        ru_maxrss_mb: The child's ``ru_maxrss``, for comparison (see the module docstring).
    """

    peak_mb: float
    baseline_mb: float
    load_time_ms: float
    ru_maxrss_mb: float


def measure_peak_memory(
    path: str | os.PathLike[str],
    *,
    kind: str,
    inputs: Mapping[str, Array],
    input_order: Sequence[str] | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    timeout_s: float = 300.0,
) -> MemoryResult:
    """Load ``path`` in a fresh Python process, run ``inputs`` once, and return its peak RSS.

    Args:
        path: Model file.
        kind: ``"onnx"``, ``"torchscript"`` or ``"torch_export"``.
        inputs: One batch, by input name.
        input_order: Positional order of the inputs for torch models (default: mapping order).
        threads: Intra-op threads in the child.
        providers: ONNX Runtime execution providers (default: the runtime's).
        timeout_s: Seconds before the child is killed.

    Returns:
        Peak and baseline memory in MiB and the child's load time.

    Raises:
        InvalidParameterError: ``kind`` is not one of the supported kinds.
        ProfilingError: The child failed, timed out, or printed no result.
    """
    if kind not in _KINDS:
        raise InvalidParameterError(
            f"measure_peak_memory: unsupported model kind; got {kind!r}, expected one of "
            f"{', '.join(_KINDS)}."
        )
    with tempfile.TemporaryDirectory(prefix="compval-memory-") as tmp:
        batch_file = Path(tmp) / "batch.npz"
        # numpy's stub types **kwds as if an input could be named "allow_pickle".
        save: Any = np.savez
        save(batch_file, **{name: np.asarray(a) for name, a in inputs.items()})
        request = {
            "kind": kind,
            "model": str(Path(path).resolve()),
            "inputs": str(batch_file),
            "input_order": list(input_order if input_order is not None else inputs),
            "threads": threads,
            "providers": None if providers is None else list(providers),
        }
        try:
            done = subprocess.run(
                [sys.executable, "-B", str(_CHILD), json.dumps(request)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProfilingError(
                f"Memory measurement of {str(path)!r}: the child process ran past "
                f"{timeout_s} s; got no result, expected one. Raise memory_timeout_s or set "
                "measure_memory: false."
            ) from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ProfilingError(
            f"Memory measurement of {str(path)!r}: the child process failed; got exit status "
            f"{done.returncode}: {tail or 'no message'}. A negative status is a signal "
            "(-9: killed, often for lack of memory)."
        )
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
        return MemoryResult(
            peak_mb=float(result["peak_rss_bytes"]) / _MIB,
            baseline_mb=float(result["baseline_rss_bytes"]) / _MIB,
            load_time_ms=float(result["load_time_ms"]),
            ru_maxrss_mb=float(result["ru_maxrss_bytes"]) / _MIB,
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ProfilingError(
            f"Memory measurement of {str(path)!r}: the child process printed no result; got "
            f"{done.stdout[-200:]!r}, expected a JSON line with 'peak_rss_bytes'."
        ) from exc
