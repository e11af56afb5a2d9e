"""Provenance: who ran what, with which runtimes, on which data (the report's ``run``)."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from compval._version import __version__
from compval.adapters import ModelAdapter
from compval.results import RunInfo

__all__ = ["Clock", "model_info", "run_info", "runtime_versions"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Clock:
    """When a run started, for ``started_at``, ``finished_at`` and ``duration_s``."""

    started_at: str = field(default_factory=_now)
    _start: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        """Seconds since the start, rounded to the millisecond."""
        return round(time.perf_counter() - self._start, 3)


def model_info(adapter: ModelAdapter, role: str, kind: str | None) -> dict[str, Any]:
    """What the report records about one model."""
    info = adapter.info()
    out: dict[str, Any] = {
        "role": role,
        "runtime": info.runtime,
        "runtime_version": info.runtime_version,
        "device": info.device,
        "model_id": info.model_id,
        "path": info.path,
        "size_bytes": info.size_bytes,
        "output_kind": kind,
    }
    providers = adapter.execution_providers()
    if providers is not None:
        # The providers actually active, which may differ from those requested.
        out["execution_providers"] = list(providers)
    # Optional adapter attributes (the torch adapter's precision and its GPU's description).
    dtype = getattr(adapter, "dtype", None)
    if isinstance(dtype, str):
        out["dtype"] = dtype
    device_details = getattr(adapter, "device_details", None)
    details = device_details() if callable(device_details) else None
    if details:
        out["device_details"] = dict(details)
    if adapter.source is not None:
        # The path is a temporary download; the URI, version and run say what was validated.
        out["source"] = dict(adapter.source)
    return out


def runtime_versions(adapters: Iterable[ModelAdapter]) -> dict[str, str]:
    """numpy, scipy when it was used, and each model's runtime as its adapter reports it."""
    out = {"numpy": np.__version__}
    scipy = sys.modules.get("scipy")
    if scipy is not None:
        out["scipy"] = str(getattr(scipy, "__version__", "unknown"))
    for adapter in adapters:
        info = adapter.info()
        out.setdefault(info.runtime, info.runtime_version)
    return dict(sorted(out.items()))


def run_info(
    clock: Clock,
    *,
    adapters: Iterable[ModelAdapter],
    models: Mapping[str, Mapping[str, Any]],
    task: str,
    spec_hash: str | None,
    spec_path: str | None,
    data_hash: str,
    data_rows: int,
    seed: int,
    batch_size: int,
    segment_columns: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    datasets: tuple[Mapping[str, Any], ...] = (),
) -> RunInfo:
    """The report's ``run`` section, finished now."""
    return RunInfo(
        compval_version=__version__,
        python_version=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        runtimes=runtime_versions(adapters),
        task=task,
        spec_hash=spec_hash,
        spec_path=spec_path,
        data_hash=data_hash,
        data_rows=data_rows,
        seed=seed,
        batch_size=batch_size,
        started_at=clock.started_at,
        finished_at=_now(),
        duration_s=clock.elapsed_s(),
        models=models,
        segment_columns=segment_columns,
        notes=notes,
        datasets=datasets,
    )
