"""``build_demo``: train, export and compress the demo models, write the data and the spec.

Everything is produced offline from scikit-learn's bundled digits, and is a function of the
seed: the same seed gives byte-identical model and data files (on the same library versions).
Nothing here is tuned to make a candidate pass or fail; the summary reports what the real
tools produced.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compval.demo._data import INK_LEVELS, DigitsSplit, split_digits, write_validation_parquet
from compval.demo._models import (
    CALIBRATION_ROWS,
    STUDENT_HIDDEN,
    TEACHER_HIDDEN,
    centered_logits,
    mlp_logits,
    preprocess_for_quantization,
    quantize_dynamic_int8,
    quantize_static_qdq,
    softmax,
    train_student,
    train_teacher,
)
from compval.demo._onnx import (
    PIXEL_SCALE,
    check_outputs_match,
    count_parameters,
    describe_ops,
    export_mlp,
    prune_gemm_weights,
    run_model,
    weight_sparsity,
)
from compval.demo._spec import SPEC_FILE_NAME, render_spec, write_spec
from compval.errors import InvalidParameterError
from compval.types import Array

__all__ = ["DemoFiles", "build_demo"]

REFERENCE_NAME = "fp32"
CANDIDATE_NAMES = ("int8_dynamic", "int8_static", "pruned50", "distilled")
DATA_PATH = "data/digits_val.parquet"
BATCH_SIZE = 64
PRUNE_FRACTION = 0.5
_SEED_LIMIT = 2**32


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoFiles:
    """The files ``build_demo`` wrote, and what it measured on them.

    Attributes:
        spec: The acceptance spec, ``<directory>/demo.yaml``.
        reference: The float32 reference model (``models/fp32.onnx``).
        candidates: Candidate name -> model file, in the spec's order: ``int8_dynamic``,
            ``int8_static``, ``pruned50``, ``distilled``.
        data: The validation split, ``data/digits_val.parquet``.
        summary: What was built: seed, data rows per label and segment, how each model was made,
            and per model (``summary["models"][name]``) its onnxruntime accuracy on the
            validation split, per-class recall range, accuracy per ink segment, agreement with
            the reference, parameter count, weight sparsity, file size and op counts.
    """

    spec: Path
    reference: Path
    candidates: dict[str, Path]
    data: Path
    summary: dict[str, Any]


def _check_arguments(directory: Path, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
        raise InvalidParameterError(
            f"build_demo: 'seed' must be an integer in [0, 2**32); got {seed!r}. "
            "Pass a non-negative int such as 0."
        )
    if directory.exists() and not directory.is_dir():
        raise InvalidParameterError(
            f"build_demo: 'directory' must be a directory; got {str(directory)!r}, which is a "
            "file. Pass a new or existing directory."
        )


def _make_directories(directory: Path) -> None:
    try:
        (directory / "models").mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"build_demo: cannot create the demo directories; got {str(directory)!r} "
            f"({exc.strerror}), expected a writable location. Choose another directory."
        ) from exc


def _derive_seeds(seed: int) -> tuple[int, int, int, int]:
    # Independent streams per random choice, so changing one step never shifts another.
    split, teacher, calibration, student = np.random.SeedSequence(seed).generate_state(4)
    return int(split), int(teacher), int(calibration), int(student)


def _measure(probabilities: Array, split: DigitsSplit, reference_pred: Array) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1)
    correct = predicted == split.y_val
    classes = np.unique(split.y_val)
    recall = np.array([correct[split.y_val == c].mean() for c in classes])
    return {
        "accuracy": float(correct.mean()),
        "recall_min": float(recall.min()),
        "recall_min_label": int(classes[recall.argmin()]),
        "recall_max": float(recall.max()),
        "accuracy_by_ink": {
            level: float(correct[split.ink_val == level].mean()) for level in INK_LEVELS
        },
        "top1_agreement": float(np.mean(predicted == reference_pred)),
    }


def _describe_file(path: Path, directory: Path) -> dict[str, Any]:
    return {
        "path": path.relative_to(directory).as_posix(),
        "parameter_count": count_parameters(path),
        "weight_sparsity": weight_sparsity(path),
        "file_size_bytes": path.stat().st_size,
        "ops": describe_ops(path),
    }


def build_demo(directory: Path, *, seed: int = 0) -> DemoFiles:
    """Build the demo: a reference model, four compressed candidates, data and a spec.

    Writes into ``directory`` (created if needed; existing demo files are overwritten):

    * ``data/digits_val.parquet``: the held-out 45% of scikit-learn's digits (809 rows),
      columns ``px_0``..``px_63`` (float32, raw 0..16), ``label`` (int64) and ``ink``
      (``light``/``medium``/``heavy`` by total intensity, tertile edges from the training rows).
    * ``models/fp32.onnx``: an ``MLPClassifier`` (128, 64) exported as
      ``Mul(1/16) -> Gemm/Relu -> Softmax``, checked against ``predict_proba``.
    * ``models/int8_dynamic.onnx`` (``quantize_dynamic``), ``models/int8_static.onnx``
      (``quantize_static``, QDQ, calibrated on 300 training rows), ``models/pruned50.onnx``
      (half of each weight matrix zeroed by magnitude, stored dense) and
      ``models/distilled.onnx`` (a 24-unit student regressing the reference's logits).
    * ``demo.yaml``: the acceptance spec over all of them.

    Args:
        directory: Where to write the files.
        seed: Seed of the split, both trainings and the calibration rows, in ``[0, 2**32)``.

    Returns:
        The paths written and a summary of what was built and measured.

    Raises:
        InvalidParameterError: ``seed`` is not an integer in range, or ``directory`` is a file
            or cannot be created.
        MissingDependencyError: onnx/onnxruntime, scikit-learn or pyarrow is not installed
            (``pip install 'compval[demo]'``).
        InternalError: An exported model does not reproduce its source model's outputs.

    Example:
        >>> import tempfile
        >>> from compval.demo import build_demo
        >>> files = build_demo(Path(tempfile.mkdtemp()), seed=0)  # doctest: +SKIP
        >>> files.summary["models"]["fp32"]["accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    directory = Path(directory)
    _check_arguments(directory, seed)
    _make_directories(directory)
    started = time.perf_counter()
    split_seed, teacher_seed, calibration_seed, student_seed = _derive_seeds(seed)
    reference = directory / "models" / f"{REFERENCE_NAME}.onnx"
    candidates = {name: directory / "models" / f"{name}.onnx" for name in CANDIDATE_NAMES}
    data = directory / DATA_PATH

    split = split_digits(seed=split_seed)
    data_summary = write_validation_parquet(split, data)
    data_summary["ink_edges"] = list(split.ink_edges)
    data_summary["rows_train"] = len(split.y_train)

    teacher = train_teacher(split.x_train, split.y_train, seed=teacher_seed)
    export_mlp(
        teacher.coefs_,
        teacher.intercepts_,
        reference,
        graph_name=REFERENCE_NAME,
        doc=f"compval demo reference: sklearn MLPClassifier{TEACHER_HIDDEN}, seed {seed}.",
    )
    x_val_scaled = np.asarray(split.x_val, np.float64) * PIXEL_SCALE
    reference_diff = check_outputs_match(
        run_model(reference, split.x_val), teacher.predict_proba(x_val_scaled), what=REFERENCE_NAME
    )

    with tempfile.TemporaryDirectory(prefix="compval-demo-") as scratch:
        prepared = Path(scratch) / "fp32_prepared.onnx"
        preprocess_for_quantization(reference, prepared)
        dynamic_options = quantize_dynamic_int8(prepared, candidates["int8_dynamic"])
        rows = np.random.default_rng(calibration_seed).choice(
            len(split.x_train), size=CALIBRATION_ROWS, replace=False
        )
        static_options = quantize_static_qdq(
            prepared, candidates["int8_static"], split.x_train[rows], batch_size=BATCH_SIZE
        )
    prune_gemm_weights(reference, candidates["pruned50"], fraction=PRUNE_FRACTION)

    teacher_logits = mlp_logits(teacher.coefs_, teacher.intercepts_, split.x_train)
    # The targets are only as good as this re-implementation of the teacher's forward pass.
    check_outputs_match(
        softmax(teacher_logits),
        teacher.predict_proba(np.asarray(split.x_train, np.float64) * PIXEL_SCALE),
        what=f"{REFERENCE_NAME} logits",
    )
    student = train_student(split.x_train, centered_logits(teacher_logits), seed=student_seed)
    export_mlp(
        student.coefs_,
        student.intercepts_,
        candidates["distilled"],
        graph_name="distilled",
        doc=f"compval demo student: sklearn MLPRegressor{STUDENT_HIDDEN} on the reference's "
        f"centred logits, seed {seed}.",
    )
    student_diff = check_outputs_match(
        run_model(candidates["distilled"], split.x_val),
        softmax(student.predict(x_val_scaled)),
        what="distilled",
    )

    spec = directory / SPEC_FILE_NAME
    write_spec(
        spec,
        render_spec(
            reference=reference.relative_to(directory).as_posix(),
            candidates={n: p.relative_to(directory).as_posix() for n, p in candidates.items()},
            data=DATA_PATH,
            seed=seed,
        ),
    )

    reference_probabilities = run_model(reference, split.x_val)
    reference_pred = reference_probabilities.argmax(axis=1)
    models: dict[str, Any] = {
        REFERENCE_NAME: {
            **_describe_file(reference, directory),
            **_measure(reference_probabilities, split, reference_pred),
            "method": {
                "tool": "sklearn.neural_network.MLPClassifier",
                "hidden_layer_sizes": list(TEACHER_HIDDEN),
                "n_iter": int(teacher.n_iter_),
                "sklearn_accuracy": float(np.mean(teacher.predict(x_val_scaled) == split.y_val)),
                "export_max_abs_diff": reference_diff,
            },
        }
    }
    methods: dict[str, dict[str, Any]] = {
        "int8_dynamic": dynamic_options,
        "int8_static": static_options,
        "pruned50": {"tool": "magnitude pruning per Gemm weight matrix", "fraction": 0.5},
        "distilled": {
            "tool": "sklearn.neural_network.MLPRegressor",
            "hidden_layer_sizes": list(STUDENT_HIDDEN),
            "target": "reference logits minus their row mean",
            "n_iter": int(student.n_iter_),
            "export_max_abs_diff": student_diff,
        },
    }
    for name, path in candidates.items():
        models[name] = {
            **_describe_file(path, directory),
            **_measure(run_model(path, split.x_val), split, reference_pred),
            "method": methods[name],
        }
    summary: dict[str, Any] = {
        "seed": seed,
        "data": data_summary,
        "models": models,
        "build_time_s": time.perf_counter() - started,
    }
    return DemoFiles(
        spec=spec, reference=reference, candidates=candidates, data=data, summary=summary
    )
