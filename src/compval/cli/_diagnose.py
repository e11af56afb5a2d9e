"""``compval diagnose REFERENCE CANDIDATE... --data DATA``: where the candidate's error arises.

The flags become a spec with a ``numerics:`` section and no criteria; ``run_validation``
does the work, so the report has the usual fidelity metrics plus ``numerics``.
"""

from __future__ import annotations

import argparse
from typing import Any

from compval.cli._commands import (
    EXIT_CODES_HELP,
    _add_column_options,
    _add_output_options,
    _any_int,
    _batch_size,
    _check_sinks,
    _finish,
    _integer,
    _models_and_data,
    _prepare_reports,
    _progress,
)
from compval.errors import ExitCode

__all__ = ["add_diagnose"]


def _sample(text: str) -> int:
    from compval.spec import MAX_NUMERICS_SAMPLE

    return _integer(text, minimum=1, maximum=MAX_NUMERICS_SAMPLE)


def _decibels(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of decibels such as 20; got {text!r}"
        ) from None


def add_diagnose(sub: Any) -> None:
    """``compval diagnose REFERENCE CANDIDATE... --data DATA``."""
    p = sub.add_parser(
        "diagnose",
        help="find the layer and the batch where a candidate's error arises",
        description="Per-layer error localization (ONNX pairs), QuantizeLinear saturation and "
        "batch-size consistency on a deterministic sample of rows, written to report.json's "
        "'numerics' section (docs/numerics.md). Gates nothing: exits 0 unless the candidate "
        "has NaN/Inf outputs.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("reference", help="reference model file")
    p.add_argument("candidates", nargs="+", metavar="candidate", help="candidate model file(s)")
    p.add_argument("--data", required=True, help="data file (.parquet, .csv, .npz, .npy)")
    _add_column_options(p, labels_help="label column (or .npz key); not a model input")
    p.add_argument(
        "--sample", type=_sample, default=256, help="rows analysed, seeded (default 256)"
    )
    p.add_argument(
        "--sqnr-threshold-db",
        type=_decibels,
        default=20.0,
        metavar="DB",
        help="first_divergent: the first tensor whose SQNR is below this (default 20)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=256,
        help="batch size compared with batch 1 (default 256)",
    )
    p.add_argument("--output", default=None, metavar="NAME", help="the output to compare")
    p.add_argument("--seed", type=_any_int, default=0, help="seed of the row sample (default 0)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle/joblib model files")
    _add_output_options(p)
    p.set_defaults(handler=_diagnose)


def _diagnose(args: argparse.Namespace) -> ExitCode:
    from compval.engine import RunOptions, run_validation
    from compval.spec import LoadedSpec, spec_from_mapping

    _check_sinks(args)
    models, data = _models_and_data(args)
    raw = {
        "version": 1,
        "task": "classification" if args.labels else "generic",
        "reference": models[0],
        "candidates": models[1:],
        "data": data,
        "batch_size": args.batch_size,
        "seed": args.seed,
        # The analysis is descriptive: no intervals or slice search to wait for.
        "statistics": {"replicates": 0, "discovery": False},
        "numerics": {"sample": args.sample, "sqnr_threshold_db": args.sqnr_threshold_db},
    }
    spec = spec_from_mapping(raw, source="diagnose", what="invalid arguments")
    _prepare_reports(args)
    with _progress(not args.quiet) as progress:
        report = run_validation(
            LoadedSpec(spec, path=None, text_hash=None), options=RunOptions(progress=progress)
        )
    return _finish(report, args)
