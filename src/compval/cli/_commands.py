"""Subcommands: flags become the objects a spec file gives; the library does the work."""

from __future__ import annotations

import argparse
import inspect
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compval.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from compval.results import Report
    from compval.spec import AcceptanceSpec, TrackingSpec

__all__ = [
    "EXIT_CODES_HELP",
    "add_compare",
    "add_demo",
    "add_init",
    "add_profile",
    "add_validate",
]

DEFAULT_REPORT_DIR = "compval-report"
#: The exit-code contract, shown under every command's --help.
EXIT_CODES_HELP = (
    "Exit codes: 0 pass, 1 a check failed or was inconclusive, 2 interrupted (Ctrl-C or "
    "SIGTERM), 3 internal error, 4 usage or spec error, 5 model, data or output error."
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _integer(text: str, *, minimum: int | None, maximum: int | None = None) -> int:
    """A whole number written in ASCII digits; ``int()`` alone also takes '1_000' and ' 5'."""
    shown = text if len(text) <= 40 else text[:39] + "…"
    if _INTEGER.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"expected an integer; got {shown!r}")
    value = int(text)
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"expected {minimum} or more; got {value}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"expected at most {maximum:,}; got {value:,}")
    return value


def _positive(text: str) -> int:
    return _integer(text, minimum=1)


def _non_negative(text: str) -> int:
    return _integer(text, minimum=0)


def _any_int(text: str) -> int:
    return _integer(text, minimum=None)


def _batch_size(text: str) -> int:
    from compval.spec import MAX_BATCH_SIZE  # the spec's bound, imported when the flag is used

    return _integer(text, minimum=1, maximum=MAX_BATCH_SIZE)


def _int_list(text: str, *, maximum: int | None = None) -> list[int]:
    parts = _csv_list(text)
    if any(_INTEGER.fullmatch(p) is None for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,8,32; got {text!r}"
        )
    values = [int(p) for p in parts]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    if maximum is not None and any(v > maximum for v in values):
        raise argparse.ArgumentTypeError(
            f"expected integers of at most {maximum:,}; got {max(values):,}"
        )
    return values


def _batch_sizes(text: str) -> list[int]:
    from compval.spec import MAX_BATCH_SIZE

    return _int_list(text, maximum=MAX_BATCH_SIZE)


def _client_counts(text: str) -> list[int]:
    from compval.spec import MAX_CLIENTS

    return _int_list(text, maximum=MAX_CLIENTS)


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
        help="where report.json, report.md, junit.xml and report.html go "
        f"(default: {DEFAULT_REPORT_DIR})",
    )
    p.add_argument(
        "--format",
        type=_formats,
        default=None,
        help="report formats, comma-separated: json,markdown,junit,html (default: all)",
    )
    view = p.add_mutually_exclusive_group()
    view.add_argument("--quiet", action="store_true", help="print only the verdict line")
    view.add_argument(
        "--verbose",
        action="store_true",
        help="print the full tables: every check with its message, every overall metric with "
        "its interval (default: verdicts, checks not passed, headline metrics)",
    )
    p.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="NAME",
        help="also send the finished report to a run sink (repeatable), e.g. github-summary",
    )
    p.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        default=None,
        type=_tracking_uri,
        metavar="URI",
        help="log the run to MLflow: the tracking URI, else MLFLOW_TRACKING_URI, else the "
        "spec's tracking.mlflow (write --mlflow=URI before positional arguments)",
    )
    p.add_argument("--wandb", action="store_true", help="log the run to Weights & Biases")
    p.add_argument("--clearml", action="store_true", help="log the run to a ClearML task")


def _tracking_uri(text: str) -> str:
    # '--mlflow' takes an optional value: in 'compare --mlflow ref.onnx cand.onnx' it would
    # silently swallow the reference.
    if text and Path(text).is_file():
        raise argparse.ArgumentTypeError(
            f"expected a tracking URI (http://host:5000, sqlite:///mlflow.db); got the file "
            f"{text!r}. Write --mlflow=URI, or put --mlflow after the positional arguments"
        )
    return text


def _sink_names(args: argparse.Namespace) -> list[str]:
    """``--sink`` names, then the tracker flags (``--mlflow``, ``--wandb``, ``--clearml``)."""
    flags = [
        n for n in ("mlflow", "wandb", "clearml") if getattr(args, n, None) not in (None, False)
    ]
    return list(dict.fromkeys([*args.sink, *flags]))


def _check_sinks(args: argparse.Namespace) -> None:
    """Refuse an unknown sink name before the run rather than after it."""
    from compval.reports import get_sink

    for name in _sink_names(args):
        get_sink(name)


def _tracking(args: argparse.Namespace, spec: TrackingSpec | None = None) -> TrackingSpec:
    """The run's tracking settings, with the MLflow URI resolved.

    From --mlflow URI, else MLFLOW_TRACKING_URI, else the spec's ``tracking.mlflow``.
    """
    import os

    from compval.spec import TrackingSpec

    base = spec or TrackingSpec()
    uri = getattr(args, "mlflow", None) or os.environ.get("MLFLOW_TRACKING_URI") or base.mlflow
    return base.model_copy(update={"mlflow": uri or None})


def _add_stats_options(p: argparse.ArgumentParser, *, default: str = "2000") -> None:
    p.add_argument(
        "--replicates",
        type=_non_negative,
        default=None,
        help=f"bootstrap replicates for confidence intervals (0 turns them off; default: "
        f"{default})",
    )


# -- progress and output -------------------------------------------------------------------
@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal (hidden in CI logs)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    # Imported only to draw (about 20 ms, paid for nothing in CI logs).
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


def _prepare_reports(args: argparse.Namespace) -> None:
    """Let the chosen renderers set up (a plug-in's slow import) while the models run."""
    from compval.reports import RENDERERS, prepare_renderers

    prepare_renderers(list(RENDERERS) if args.format is None else args.format)


def _finish(
    report: Report,
    args: argparse.Namespace,
    *,
    exit_on_checks: bool = True,
    tracking: TrackingSpec | None = None,
) -> ExitCode:
    from rich.console import Console

    from compval.reports import RENDERERS, get_sink, render_console, verdict_line, write_reports

    tracked = _tracking(args, tracking)
    settings = {"mlflow": tracked.mlflow or "", "project": tracked.project}
    # unknown names fail before any write
    sinks = [get_sink(name).configured(settings) for name in _sink_names(args)]
    formats = list(RENDERERS) if args.format is None else args.format
    paths = write_reports(report, args.report_dir, formats=formats)
    if report.robustness is not None:
        from compval.robustness import write_edge_cases

        # The search's found cases, replayable as a compval dataset (docs/robustness.md).
        for edge in write_edge_cases(report.robustness, args.report_dir):
            paths = {**paths, edge.stem: edge}
    for sink in sinks:
        sink.send(report, paths)
    console = Console()
    if args.quiet:
        console.print(verdict_line(report))
    else:
        # render_console ends with the verdict line: printed once, last, where CI logs end.
        render_console(report, console, verbose=args.verbose, files=paths)
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
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("spec", type=Path, help="acceptance spec file (.yaml, .yml or .toml)")
    _add_output_options(p)
    _add_stats_options(p, default="the spec's statistics.replicates, else 2000")
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
    _check_sinks(args)
    if args.allow_pickle:
        loaded = LoadedSpec(_allow_pickle(loaded.spec), path=loaded.path, text_hash=loaded.hash)
    # models:/ and runs:/ paths resolve against the server the run is logged to.
    tracking = _tracking(args, loaded.spec.tracking)
    if tracking != loaded.spec.tracking:
        spec = loaded.spec.model_copy(update={"tracking": tracking})
        loaded = LoadedSpec(spec, path=loaded.path, text_hash=loaded.hash)
    _prepare_reports(args)
    with _progress(not args.quiet) as progress:
        report = run_validation(
            loaded,
            options=RunOptions(
                replicates=args.replicates, progress=progress, profile=not args.no_profile
            ),
        )
    return _finish(report, args, tracking=tracking)


# -- compare -------------------------------------------------------------------------------
def add_compare(sub: Any) -> None:
    """``compval compare REFERENCE CANDIDATE... --data DATA``."""
    p = sub.add_parser(
        "compare",
        help="compare models on data without writing a spec (default criteria)",
        description="A quick look without a spec: runs the default criteria for the task "
        "(printed before the run) and writes the same reports as 'validate'.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("reference", help="reference model file (or URI, endpoint URL)")
    p.add_argument(
        "candidates",
        nargs="+",
        metavar="candidate",
        help="candidate model file(s), or an inference endpoint URL "
        "(http://host:8080/v2/models/<name>; docs/serving.md)",
    )
    p.add_argument("--data", required=True, help="data file (.parquet, .csv, .npz, .npy)")
    _add_column_options(p, labels_help="label column (or .npz key)")
    p.add_argument(
        "--task",
        default=None,
        help="classification, regression or generic (default: classification with --labels, "
        "generic without)",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="NAME",
        help="the output to compare, for every model (default: the model's first, or its "
        "class scores)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=256,
        help="inference batch size (default 256; a model with a fixed batch dimension needs "
        "its size)",
    )
    p.add_argument(
        "--seed", type=_any_int, default=0, help="seed of the bootstrap resampling (default 0)"
    )
    p.add_argument(
        "--no-discovery",
        action="store_true",
        help="skip the search for weak slices (discovered segments where the candidate loses)",
    )
    p.add_argument(
        "--max-segment-values",
        type=_positive,
        default=None,
        metavar="N",
        help="the most distinct values a segment column may hold (default 1000); each value "
        "is a segment with its own metrics and checks",
    )
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle/joblib model files")
    _add_output_options(p)
    _add_stats_options(p)
    p.set_defaults(handler=_compare)


def _add_column_options(p: argparse.ArgumentParser, *, labels_help: str) -> None:
    p.add_argument("--labels", default=None, help=labels_help)
    p.add_argument(
        "--segments", type=_csv_list, default=[], help="segment columns, comma-separated"
    )
    p.add_argument(
        "--features",
        type=_csv_list,
        default=None,
        help="feature columns, comma-separated (default: every column that is not the label "
        "or a segment)",
    )


def _compare(args: argparse.Namespace) -> ExitCode:
    import yaml
    from rich.console import Console

    from compval.engine import RunOptions, run_validation
    from compval.spec import LoadedSpec, spec_from_mapping
    from compval.tasks import get_task, task_names

    _check_sinks(args)
    task = args.task
    if task is None:
        task = "classification" if args.labels else "generic"
    elif task not in task_names():
        raise UsageError(
            f"compare: argument --task: unknown task; got {task!r}, expected one of "
            f"{', '.join(task_names())}. See 'compval compare --help'."
        )
    criteria = get_task(task).default_criteria(has_labels=args.labels is not None)
    models, data = _models_and_data(args)
    if args.max_segment_values is not None:
        data["max_segment_values"] = args.max_segment_values
    raw = {
        "version": 1,
        "task": task,
        "reference": models[0],
        "candidates": models[1:],
        "data": data,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "criteria": criteria,
    }
    if args.no_discovery:
        raw["statistics"] = {"discovery": False}
    tracking = _tracking(args)
    if tracking.mlflow:
        raw["tracking"] = {"mlflow": tracking.mlflow}
    # The CLI prints "compval: error: " before the message: name only the command.
    spec = spec_from_mapping(raw, source="compare", what="invalid arguments")
    if not args.quiet:
        Console(stderr=True).print(
            "[bold]Default criteria[/bold] (copy into a spec to change them):\n"
            + yaml.safe_dump({"criteria": criteria}, sort_keys=False).rstrip(),
            markup=True,
            highlight=False,
        )
    _prepare_reports(args)
    with _progress(not args.quiet) as progress:
        report = run_validation(
            LoadedSpec(spec, path=None, text_hash=None),
            options=RunOptions(replicates=args.replicates, progress=progress),
        )
    return _finish(report, args)


def _models_and_data(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The spec's model entries (reference first) and data entry from a command's flags.

    What ``compare`` and ``diagnose`` share: positional model paths (files resolved, model
    URIs kept), ``--output``, ``--allow-pickle``, ``--data`` and its column flags.
    """
    from compval.adapters import is_model_uri

    paths = [args.reference, *args.candidates]
    models: list[dict[str, Any]] = []
    for name, path in zip(_unique_names(paths), paths, strict=True):
        entry: dict[str, Any] = {
            "name": name,
            "path": path if is_model_uri(path) else str(Path(path).resolve()),
            "allow_pickle": args.allow_pickle,
        }
        if args.output is not None:
            entry["output"] = args.output
        models.append(entry)
    data: dict[str, Any] = {
        "path": str(Path(args.data).resolve()),
        "labels": args.labels,
        "segments": args.segments,
    }
    if args.features is not None:
        data["features"] = args.features
    return models, data


def _unique_names(paths: list[str]) -> list[str]:
    from compval.adapters import default_model_name

    names: list[str] = []
    for p in paths:
        stem = default_model_name(p)
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
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("reference", help="reference model file (or URI, endpoint URL)")
    p.add_argument(
        "candidates",
        nargs="+",
        metavar="candidate",
        help="candidate model file(s), or an inference endpoint URL "
        "(http://host:8080/v2/models/<name>; docs/serving.md)",
    )
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None, help="e.g. 1,8,32,128")
    p.add_argument(
        "--concurrency", type=_client_counts, default=None, help="client counts, e.g. 1,4"
    )
    p.add_argument(
        "--concurrency-batch-size",
        type=_batch_size,
        default=None,
        metavar="ROWS",
        help="rows per request in the load test (default: the target's, else 1); a model "
        "with a fixed batch dimension needs its size here and in --batch-sizes",
    )
    p.add_argument(
        "--target", default=None, help="deployment target: cloud, edge, mobile (cloud-gpu: spec)"
    )
    p.add_argument("--threads", type=_positive, default=None, help="intra-op threads per model")
    p.add_argument(
        "--data",
        default=None,
        help="input rows to time (default: synthetic from the model's inputs); labelled data "
        "works with --labels/--segments, which name the columns that are not inputs",
    )
    _add_column_options(
        p, labels_help="label column of --data (not timed: only feature columns are inputs)"
    )
    p.add_argument(
        "--seed",
        type=_any_int,
        default=0,
        help="seed of the synthetic inputs and of the timing order (default 0)",
    )
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
        "concurrency_batch_size": args.concurrency_batch_size,
        "threads": args.threads,
    }
    try:
        perf = PerformanceSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise validation_error(
            exc, source="profile", what="invalid flags", flag_names=True
        ) from None
    columns = _profile_columns(args, ProfileRequest)
    settings = resolve_settings(perf, base_dir=Path.cwd())
    paths = [args.reference, *args.candidates]
    request = ProfileRequest(
        list(zip(_unique_names(paths), paths, strict=True)),
        performance=perf,
        data=args.data,
        seed=args.seed,
        allow_pickle=args.allow_pickle,
        tracking=_tracking(args),
        **columns,
    )
    return _finish(profile_files(request, settings), args)


def _profile_columns(args: argparse.Namespace, request_type: type) -> dict[str, Any]:
    """The column flags for ProfileRequest, or a usage error where they cannot take effect.

    A flag that is accepted but ignored would time the label column as a model input (or
    fail on it): refuse instead when the engine has no place for the columns.
    """
    given = {
        name: value
        for name, value in (
            ("labels", args.labels),
            ("segments", args.segments),
            ("features", args.features),
        )
        if value
    }
    if not given:
        return {}
    flags = ", ".join(f"--{name}" for name in given)
    if args.data is None:
        raise UsageError(
            f"profile: {flags} name columns of --data, but no --data was given. Add "
            "--data FILE, or drop the flags to time synthetic inputs."
        )
    accepted = inspect.signature(request_type).parameters
    missing = [name for name in given if name not in accepted]
    if missing:
        raise UsageError(
            f"profile: {flags} cannot be applied by this version of the profiler. Time a file "
            "that holds only the model's input columns, or use a spec with a performance: "
            "section ('compval validate'), where data.labels and data.segments apply."
        )
    return given


# -- init ----------------------------------------------------------------------------------
def add_init(sub: Any) -> None:
    """``compval init [PATH]``."""
    p = sub.add_parser(
        "init",
        help="write a commented starter spec",
        description="Write a commented starter acceptance spec.",
        epilog=EXIT_CODES_HELP,
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
        "ONNX Runtime dynamic INT8, static QDQ INT8, 50% magnitude-pruned and distilled "
        "variants, validates each against the float reference and writes the reports. "
        "Exits 0 when the demo ran, whatever the verdicts.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where models and data go (default: a temporary directory)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative,
        default=0,
        help="seed of the data split, the models' training and calibration, and the "
        "resampling; the same seed builds the same files (default 0)",
    )
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
        _prepare_reports(args)
        with _progress(not args.quiet) as progress:
            report = run_validation(
                files.spec, options=RunOptions(replicates=args.replicates, progress=progress)
            )
        return _finish(report, args, exit_on_checks=False)


def _print_demo_models(console: Any, summary: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title="Demo models (accuracy with onnxruntime on the validation split)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("model", overflow="ellipsis")
    table.add_column("made with", overflow="ellipsis", no_wrap=True, max_width=24)
    for col in ("accuracy", "min recall", "sparsity", "size KiB"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, m in summary.get("models", {}).items():
        method = m.get("method", {})
        table.add_row(
            name,
            str(method.get("tool", "")),
            f"{m.get('accuracy', float('nan')):.4g}",
            f"{m.get('recall_min', float('nan')):.4g}",
            f"{m.get('weight_sparsity', 0.0):.0%}",
            f"{m.get('file_size_bytes', 0) / 1024:.1f}",
        )
    console.print(table)
