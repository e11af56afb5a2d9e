"""Subcommands: flags become the objects a spec file gives; the library does the work."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compval.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from compval.results import Report
    from compval.spec import AcceptanceSpec

__all__ = ["add_compare", "add_demo", "add_init", "add_profile", "add_validate"]

DEFAULT_REPORT_DIR = "compval-report"


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(p) for p in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,8,32; got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more; got {value}")
    return value


def _formats(text: str) -> list[str]:
    from compval.reports import RENDERERS

    names = [{"md": "markdown"}.get(f, f) for f in _csv_list(text)]
    unknown = [f for f in names if f not in RENDERERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown report format(s) {unknown or text!r}; expected a comma-separated list of "
            f"{', '.join(RENDERERS)}"
        )
    return names


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report-dir",
        type=Path,
        default=Path(DEFAULT_REPORT_DIR),
        help=f"where report.json, report.md and junit.xml go (default: {DEFAULT_REPORT_DIR})",
    )
    p.add_argument(
        "--format",
        type=_formats,
        default=None,
        help="report formats, comma-separated: json,markdown,junit (default: all)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    p.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="NAME",
        help="also send the finished report to a run sink (repeatable), e.g. github-summary",
    )


def _add_stats_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replicates",
        type=_non_negative,
        default=None,
        help="bootstrap replicates for confidence intervals (0 turns them off; default: the "
        "spec's, else 2000)",
    )


# -- progress and output -------------------------------------------------------------------
@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal (hidden in CI logs)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{stage} (rows)", total=total)
            progress.update(tasks[stage], completed=done)

        yield update


def _finish(report: Report, args: argparse.Namespace, *, exit_on_checks: bool = True) -> ExitCode:
    from rich.console import Console

    from compval.reports import get_sink, render_console, write_reports

    sinks = [get_sink(name) for name in args.sink]  # unknown names fail before any write
    from compval.reports import RENDERERS

    formats = list(RENDERERS) if args.format is None else args.format
    paths = write_reports(report, args.report_dir, formats=formats)
    for sink in sinks:
        sink.send(report, paths)
    console = Console()
    if not args.quiet:
        render_console(report, console)
        for fmt, path in paths.items():
            console.print(f"[dim]{fmt}: {path}[/dim]")
    verdict = "PASSED" if report.passed else "FAILED"
    console.print(
        f"compval: {verdict} ({len(report.candidates)} candidate(s), {len(report.checks)} checks)"
    )
    if not exit_on_checks:
        return ExitCode.OK
    return ExitCode.OK if report.passed else ExitCode.CHECKS_FAILED


# -- validate ------------------------------------------------------------------------------
def add_validate(sub: Any) -> None:
    """``compval validate SPEC``."""
    p = sub.add_parser(
        "validate",
        help="run an acceptance spec (YAML/TOML) and gate on it",
        description="Run every criterion of an acceptance spec for every candidate and exit "
        "0 when all blocking checks pass, 1 otherwise.",
    )
    p.add_argument("spec", type=Path, help="acceptance spec file (.yaml, .yml or .toml)")
    _add_output_options(p)
    _add_stats_options(p)
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading pickle/joblib model files (they can run arbitrary code)",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the spec's performance section")
    p.set_defaults(handler=_validate)


def _allow_pickle(spec: AcceptanceSpec) -> AcceptanceSpec:
    return spec.model_copy(
        update={
            "reference": spec.reference.model_copy(update={"allow_pickle": True}),
            "candidates": [c.model_copy(update={"allow_pickle": True}) for c in spec.candidates],
        }
    )


def _validate(args: argparse.Namespace) -> ExitCode:
    from compval.engine import RunOptions, run_validation
    from compval.spec import LoadedSpec, load_spec

    loaded = load_spec(args.spec)
    if args.allow_pickle:
        loaded = LoadedSpec(_allow_pickle(loaded.spec), path=loaded.path, text_hash=loaded.hash)
    with _progress(not args.quiet) as progress:
        report = run_validation(
            loaded,
            options=RunOptions(
                replicates=args.replicates, progress=progress, profile=not args.no_profile
            ),
        )
    return _finish(report, args)


# -- compare -------------------------------------------------------------------------------
def add_compare(sub: Any) -> None:
    """``compval compare REFERENCE CANDIDATE... --data DATA``."""
    p = sub.add_parser(
        "compare",
        help="compare models on data without writing a spec (default criteria)",
        description="A quick look without a spec: runs the default criteria for the task "
        "(printed before the run) and writes the same reports as 'validate'.",
    )
    p.add_argument("reference", help="reference model file")
    p.add_argument("candidates", nargs="+", metavar="candidate", help="candidate model file(s)")
    p.add_argument("--data", required=True, help="data file (.parquet, .csv, .npz, .npy)")
    p.add_argument("--labels", default=None, help="label column (or .npz key)")
    p.add_argument(
        "--segments", type=_csv_list, default=[], help="segment columns, comma-separated"
    )
    p.add_argument(
        "--task",
        default=None,
        help="classification, regression or generic (default: classification with --labels, "
        "generic without)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="inference batch size (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for resampling (default 0)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle/joblib model files")
    _add_output_options(p)
    _add_stats_options(p)
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> ExitCode:
    import yaml
    from rich.console import Console

    from compval.engine import RunOptions, run_validation
    from compval.spec import LoadedSpec, spec_from_mapping
    from compval.tasks import get_task

    task = args.task or ("classification" if args.labels else "generic")
    criteria = get_task(task).default_criteria(has_labels=args.labels is not None)
    names = _unique_names([args.reference, *args.candidates])
    raw = {
        "version": 1,
        "task": task,
        "reference": {
            "name": names[0],
            "path": str(Path(args.reference).resolve()),
            "allow_pickle": args.allow_pickle,
        },
        "candidates": [
            {"name": n, "path": str(Path(c).resolve()), "allow_pickle": args.allow_pickle}
            for n, c in zip(names[1:], args.candidates, strict=True)
        ],
        "data": {
            "path": str(Path(args.data).resolve()),
            "labels": args.labels,
            "segments": args.segments,
        },
        "batch_size": args.batch_size,
        "seed": args.seed,
        "criteria": criteria,
    }
    spec = spec_from_mapping(raw, source="compare")
    if not args.quiet:
        Console(stderr=True).print(
            "[bold]Default criteria[/bold] (copy into a spec to change them):\n"
            + yaml.safe_dump({"criteria": criteria}, sort_keys=False).rstrip()
        )
    with _progress(not args.quiet) as progress:
        report = run_validation(
            LoadedSpec(spec, path=None, text_hash=None),
            options=RunOptions(replicates=args.replicates, progress=progress),
        )
    return _finish(report, args)


def _unique_names(paths: list[str]) -> list[str]:
    names: list[str] = []
    for p in paths:
        stem = Path(p).stem
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}_{k}", k + 1
        names.append(name)
    return names


# -- profile -------------------------------------------------------------------------------
def add_profile(sub: Any) -> None:
    """``compval profile REFERENCE CANDIDATE...``."""
    p = sub.add_parser(
        "profile",
        help="measure latency, throughput, load and memory against a deployment target",
        description="Paired, interleaved latency per batch size, concurrent load, size and "
        "peak memory of each model; budgets of the target become checks.",
    )
    p.add_argument("reference", help="reference model file")
    p.add_argument("candidates", nargs="+", metavar="candidate", help="candidate model file(s)")
    p.add_argument("--batch-sizes", type=_int_list, default=None, help="e.g. 1,8,32,128")
    p.add_argument("--concurrency", type=_int_list, default=None, help="client counts, e.g. 1,4")
    p.add_argument("--target", default=None, help="deployment target: cloud, edge, mobile")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads per model")
    p.add_argument(
        "--data",
        default=None,
        help="input rows to time (default: synthetic from the model's inputs)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle/joblib model files")
    _add_output_options(p)
    p.set_defaults(handler=_profile)


def _profile(args: argparse.Namespace) -> ExitCode:
    from pydantic import ValidationError

    from compval.engine import ProfileRequest, profile_files
    from compval.profiling import resolve_settings
    from compval.spec import PerformanceSpec, validation_error

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
    request = ProfileRequest(
        list(zip(_unique_names(paths), paths, strict=True)),
        performance=perf,
        data=args.data,
        seed=args.seed,
        allow_pickle=args.allow_pickle,
    )
    return _finish(profile_files(request, settings), args)


# -- init ----------------------------------------------------------------------------------
def add_init(sub: Any) -> None:
    """``compval init [PATH]``."""
    p = sub.add_parser(
        "init",
        help="write a commented starter spec",
        description="Write a commented starter acceptance spec.",
    )
    p.add_argument(
        "path", nargs="?", type=Path, default=Path("compval.yaml"), help="default: compval.yaml"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> ExitCode:
    from compval.reports import write_atomic
    from compval.spec import STARTER_SPEC

    path: Path = args.path
    if path.exists() and not args.force:
        raise UsageError(f"{path}: already exists; pass --force to overwrite it.")
    if path.is_dir():
        raise UsageError(
            f"{path}: is a directory; give a file name such as {path / 'compval.yaml'}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, STARTER_SPEC)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the spec: {exc.strerror or exc}.") from None
    print(
        f"compval: wrote {path}; edit the model and data paths, then run: compval validate {path}"
    )
    return ExitCode.OK


# -- demo ----------------------------------------------------------------------------------
def add_demo(sub: Any) -> None:
    """``compval demo``."""
    p = sub.add_parser(
        "demo",
        help="build real compressed variants of a digits classifier and validate them",
        description="Trains a small classifier on scikit-learn's bundled digits data, builds "
        "ONNX Runtime dynamic INT8, static QDQ INT8, 50%% magnitude-pruned and distilled "
        "variants, validates each against the float reference and writes the reports. "
        "Exits 0 when the demo ran, whatever the verdicts.",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where models and data go (default: a temporary directory)",
    )
    p.add_argument("--seed", type=int, default=0)
    _add_output_options(p)
    _add_stats_options(p)
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> ExitCode:
    from rich.console import Console

    from compval.demo import build_demo
    from compval.engine import RunOptions, run_validation
    from compval.errors import MissingDependencyError

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="compval-demo-") as tmp:
        workdir = args.workdir or Path(tmp)
        console.print(f"Building the demo models in {workdir} ...")
        try:
            files = build_demo(workdir, seed=args.seed)
        except ImportError as exc:
            if isinstance(exc, MissingDependencyError):
                raise
            raise MissingDependencyError(
                f"compval demo: a package the demo needs is missing ({exc}). Install the demo "
                "extra: pip install 'compval[demo]'"
            ) from exc
        if not args.quiet:
            _print_demo_models(console, files.summary)
        with _progress(not args.quiet) as progress:
            report = run_validation(
                files.spec, options=RunOptions(replicates=args.replicates, progress=progress)
            )
        return _finish(report, args, exit_on_checks=False)


def _print_demo_models(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Demo models (accuracy measured with onnxruntime on the validation split)")
    for col in ("model", "how it was made", "accuracy", "min class recall", "sparsity", "size"):
        table.add_column(col)
    for name, m in summary.get("models", {}).items():
        method = m.get("method", {})
        table.add_row(
            name,
            str(method.get("tool", "")),
            f"{m.get('accuracy', float('nan')):.4f}",
            f"{m.get('recall_min', float('nan')):.3f}",
            f"{m.get('weight_sparsity', 0.0):.0%}",
            f"{m.get('file_size_bytes', 0) / 1024:.1f} KiB",
        )
    console.print(table)
