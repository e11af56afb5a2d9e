"""``compval profile``: flags -> PerformanceSpec -> profile_models -> Report."""

from __future__ import annotations

import argparse
import platform
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from compval import __version__
from compval.spec._load import validation_error

if TYPE_CHECKING:
    from compval.reports._model import Report

__all__ = ["run_profile_command"]


def run_profile_command(args: argparse.Namespace) -> Report:
    """Profile the reference and candidates as the flags say; budgets become checks."""
    from compval.adapters import bind_inputs, load_model
    from compval.checks import CheckSettings, evaluate, resolve_criteria
    from compval.cli._commands import _unique_names
    from compval.data import load_dataset
    from compval.profiling import (
        PerformanceSpec,
        profile_models,
        resolve_settings,
        synthetic_inputs,
    )
    from compval.reports._model import Report, RunInfo
    from compval.runner import (
        _estimate_from_value,
        _info_dict,
        _runtime_versions,
        name_unsupported_ops,
    )
    from compval.spec import DataRef, ModelRef

    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fields = {
        "target": args.target,
        "batch_sizes": args.batch_sizes,
        "concurrency": args.concurrency,
        "threads": args.threads,
    }
    try:
        perf = PerformanceSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise validation_error(
            exc, source="compval profile", what="invalid flags", flag_names=True
        ) from None
    settings = resolve_settings(perf, base_dir=Path.cwd())
    paths = [args.reference, *args.candidates]
    names = _unique_names(paths)
    with ExitStack() as stack:
        adapters = []
        for name, path in zip(names, paths, strict=True):
            ref = ModelRef(
                name=name,
                path=str(Path(path).resolve()),
                threads=settings.threads,
                allow_pickle=args.allow_pickle,
            )
            adapters.append(stack.enter_context(load_model(ref, base_dir=Path.cwd())))
        reference, candidates = adapters[0], {a.name: a for a in adapters[1:]}
        rows = max(settings.batch_sizes)
        data_hash = "synthetic"
        if args.data:
            dataset = load_dataset(
                DataRef(path=str(Path(args.data).resolve())), base_dir=Path.cwd()
            )
            first = next(iter(dataset.batches(rows)))
            data_hash = dataset.fingerprint()
            sample = bind_inputs(reference.name, first.inputs, reference.input_spec())
        else:
            sample = synthetic_inputs(reference, rows=rows, seed=args.seed)
        result = profile_models(reference, candidates, sample, settings=settings, seed=args.seed)
        infos = {
            a.name: _info_dict(a, "reference" if a is reference else "candidate", None)
            for a in adapters
        }
    criteria = resolve_criteria(
        list(settings.budgets), task="generic", resampling=True, allow_nonfinite=True
    )
    estimates = {c: [_estimate_from_value(v) for v in result.metric_values(c)] for c in candidates}
    checks = name_unsupported_ops(
        evaluate(criteria, estimates, settings=CheckSettings(min_rows=1)), result.to_dict()
    )
    metrics = tuple(v for c in candidates for v in result.metric_values(c))
    notes = list(result.notes)
    if not criteria:
        notes.append("No budgets: nothing is gated (pick a --target with budgets, or a spec).")
    run = RunInfo(
        compval_version=__version__,
        python_version=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        runtimes=_runtime_versions(),
        task="profile",
        spec_hash=None,
        spec_path=None,
        data_hash=data_hash,
        data_rows=int(next(iter(sample.values())).shape[0]),
        seed=args.seed,
        batch_size=rows,
        started_at=started_at,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        models=infos,
        notes=tuple(notes),
    )
    return Report(
        run=run,
        metrics=metrics,
        checks=tuple(checks),
        candidates=tuple(candidates),
        profile=result.to_dict(),
    )
