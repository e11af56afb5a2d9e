"""OnnxRuntimeAdapter: runs an ``.onnx`` file with ONNX Runtime (extra: ``onnx``).

onnxruntime is imported when the adapter opens, never when this module is imported.

A ZipMap output (one ``{class: score}`` map per row, what skl2onnx exports for a classifier's
probabilities by default) becomes a (rows, classes) float array, and its keys become the
adapter's ``classes``, like scikit-learn's ``classes_``.

An ``.ort`` file (ONNX Runtime's mobile format, written by
``python -m onnxruntime.tools.convert_onnx_models_to_ort``) runs through the same session;
its ``model_format`` is ``ort``, so the profiler does not read it as an ONNX graph.

Requested execution providers that ONNX Runtime lists as available but does not activate (a
CUDA provider without a visible GPU or a matching CUDA library) are a silent fallback to CPU in
ONNX Runtime; here they are named by ``inactive_devices()`` and in ``run_notes()``.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.adapters._files import check_threads, describe_file, require_file, sha256_file
from compval.adapters.callable import is_score_maps, scores_from_maps
from compval.errors import InvalidParameterError, ModelLoadError
from compval.types import Array, Outputs, TensorSpec

__all__ = ["ONNX_DTYPES", "OnnxRuntimeAdapter"]

#: ONNX Runtime's type strings for tensor inputs -> numpy dtype.
ONNX_DTYPES: Mapping[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(np.object_),
}

_DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
#: ONNX types of a predicted-label output checked against the score columns.
_INTEGER_LABELS = frozenset({"tensor(int64)", "tensor(int32)"})


class OnnxRuntimeAdapter(ModelAdapter):
    """Run an ONNX model file with an ONNX Runtime ``InferenceSession``.

    The session is created by ``open()``. Outputs come back as a dict in the model's output
    order, so the first entry is the model's first output (the one compared by default).

    Args:
        path: The ``.onnx`` file.
        name: Name shown in reports.
        threads: Intra-op thread count; None keeps ONNX Runtime's default (one per physical
            core).
        providers: Execution providers in priority order; default ``CPUExecutionProvider``.
        provider_options: Provider name -> its options, passed to the session as given (e.g.
            ``{"TensorrtExecutionProvider": {"trt_fp16_enable": True}}``); each name must be
            one of ``providers``.
        timed: True for a session as deployed, with ONNX Runtime's default of intra-op
            threads that spin while they wait for work: what latency is timed on. False (the
            default) for the session that scores rows: its threads sleep when idle, so that
            compval's reading and scoring threads, which run beside inference, get the cores
            (on 2 cores, spinning threads made the paired pass about 20% slower). Spinning
            changes when a thread waits, never what it computes: outputs are identical.
            Such a session, on CPU with ``threads`` unset, also settles its thread count on
            its first batch (see ``settled_threads``).

    Raises:
        InvalidParameterError: ``threads`` < 1 or ``providers`` is empty.

    Example:
        >>> adapter = OnnxRuntimeAdapter("model.onnx", name="fp32", threads=1)
        >>> adapter.path.name
        'model.onnx'
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        provider_options: Mapping[str, Mapping[str, object]] | None = None,
        timed: bool = False,
    ) -> None:
        super().__init__(name=name)
        check_threads(name, threads)
        if providers is not None and (isinstance(providers, str) or len(providers) == 0):
            raise InvalidParameterError(
                f"Model {name!r}: 'providers' must be a non-empty sequence of provider names; "
                f"got {providers!r}. Example: ['CPUExecutionProvider']."
            )
        self._path = Path(path)
        self._threads = threads
        self._providers = tuple(providers) if providers is not None else _DEFAULT_PROVIDERS
        unknown = [p for p in provider_options or {} if p not in self._providers]
        if unknown:
            raise InvalidParameterError(
                f"Model {name!r}: provider_options names provider(s) {unknown} that are not in "
                f"providers {list(self._providers)}; add them to providers, or remove their "
                "options."
            )
        self._provider_options = {k: dict(v) for k, v in (provider_options or {}).items()}
        self._timed = timed
        self._session: Any = None
        self._spec: dict[str, TensorSpec] = {}
        self._output_names: list[str] = []
        self._sha256: str | None = None
        self._classes: tuple[object, ...] | None = None
        # Class labels written in the graph (None: none found, or not looked for yet).
        self._graph_classes: tuple[object, ...] | None = None
        self._graph_looked = False
        self._label_output = False
        self._missing: tuple[str, ...] = ()
        self._active: tuple[str, ...] = ()
        # Whether the first batch still has to settle the thread count (``_settle_threads``).
        self._settle = False
        self._settled: int | None = None
        # Whether the first batch still has to check an integer label output against the
        # scores' columns, and the warning when it could not tell (``_check_positions``).
        self._check_labels = False
        self._position_note: str | None = None

    @property
    def path(self) -> Path:
        """The model file."""
        return self._path

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (opens the adapter if needed)."""
        self.open()
        return self._session

    def _open(self) -> None:
        ort = lazy_import("onnxruntime", extra="onnx")
        require_file(self._path, what="ONNX model")
        available = list(ort.get_available_providers())
        unknown = [p for p in self._providers if p not in available]
        if unknown:
            # ONNX Runtime would only warn and fall back to CPU; a silent fallback would make
            # a GPU latency budget pass or fail on the wrong device.
            raise InvalidParameterError(
                f"Model {self.name!r}: execution provider(s) {unknown} are not available in "
                f"this onnxruntime build; got {list(self._providers)}, expected names from "
                f"{available}. Install the matching onnxruntime package or choose another."
            )
        options = _session_options(ort, self._threads, spin=self._timed)
        try:
            session = ort.InferenceSession(
                str(self._path),
                sess_options=options,
                providers=list(self._providers),
                provider_options=self._options_for(self._providers),
            )
        except Exception as exc:  # onnxruntime raises its own pybind11 exception types
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self.model_format == "ort":
                # ORT format files are tied to the onnxruntime that wrote them (format
                # version, kernels): the usual cause is a version mismatch.
                raise ModelLoadError(
                    f"ORT format model {str(self._path)!r}: onnxruntime {ort.__version__} "
                    f"cannot load it; got {describe_file(self._path)}, expected an .ort file "
                    "written by python -m onnxruntime.tools.convert_onnx_models_to_ort with "
                    "this onnxruntime version. Convert the .onnx model again with it. "
                    f"(onnxruntime: {detail})"
                ) from exc
            raise ModelLoadError(
                f"ONNX model {str(self._path)!r}: onnxruntime cannot load it; got "
                f"{describe_file(self._path)}, expected a valid ONNX model. Re-export the "
                "model (e.g. torch.onnx.export) or copy the file again if it was truncated; "
                "for a PyTorch or pickle file choose the matching adapter. "
                f"(onnxruntime: {detail})"
            ) from exc
        self._session = session
        self._active = tuple(session.get_providers())
        self._settle = (
            not self._timed and self._threads is None and self._active == _DEFAULT_PROVIDERS
        )
        self._settled = None
        self._missing = tuple(p for p in self._providers if p not in self._active)
        self._spec = {
            node.name: TensorSpec(
                name=node.name, dtype=ONNX_DTYPES.get(node.type), shape=_dims(node.shape)
            )
            for node in session.get_inputs()
        }
        self._output_names = [node.name for node in session.get_outputs()]
        # A classifier exported with its predicted text label as an output (skl2onnx: 'label'
        # next to 'probabilities') has its class labels in the graph; such graphs are parsed.
        # An integer label output is checked on the first batch instead (``_check_positions``):
        # parsing needs the onnx package, whose import (about 50 ms) cost bench_validate.py
        # 0.03-0.05 s, and classes 0..K-1, the usual case, need no parsing.
        outputs = session.get_outputs()
        self._label_output = len(outputs) > 1 and any(
            node.type == "tensor(string)" for node in outputs
        )
        self._check_labels = (
            not self._label_output
            and len(outputs) > 1
            and any(node.type in _INTEGER_LABELS for node in outputs)
        )
        self._position_note = None

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        return self._run(inputs, self._output_names)

    def _predict_outputs(self, inputs: Mapping[str, Array], names: Sequence[str]) -> Outputs:
        # ONNX Runtime runs only the nodes the fetched outputs need: skl2onnx's label output
        # (ArgMax, a label lookup) cost a sixth of a small MLP's batch when only the
        # probabilities were compared.
        wanted = [name for name in self._output_names if name in names]
        return self._run(inputs, wanted if wanted else self._output_names)

    def _run(self, inputs: Mapping[str, Array], names: Sequence[str]) -> Outputs:
        if self._settle:
            self._settle = False
            results = self._settle_threads(list(names), dict(inputs))
        else:
            results = self._session.run(list(names), dict(inputs))
        outputs: dict[str, Array] = {}
        for name, value in zip(names, results, strict=True):
            if is_score_maps(value):
                outputs[name], classes = scores_from_maps(self.name, name, value)
                if self._classes is None:
                    self._classes = classes
            else:
                outputs[name] = np.asarray(value)
        if self._check_labels:
            self._check_positions(outputs)
        return outputs

    def _check_positions(self, outputs: Mapping[str, Array]) -> None:
        """On the first batch, check that an integer label output indexes the score columns.

        skl2onnx's ``zipmap: False`` keeps a classifier's classes only in the graph: with
        classes such as 1, 2, 5, score column 1 is class 2, and data whose labels are all
        below 3 were silently read by position (accuracy 0.12 for a model at 0.73). When the
        model's label is the index of its highest score on every row, columns are classes
        0..K-1 (the usual case: nothing is parsed). When each top-scoring column always gave
        one label (a relabelled classifier), the graph's class labels are read and used if
        they agree; else the mapping seen on this batch is used when it covers every column,
        and else ``run_notes`` warns that the columns are read by position. An integer output
        that is no label of the scores (the relation is not a function) changes nothing.
        """
        arrays = outputs.values()  # numpy arrays already (``_run``)
        ints = [
            a.reshape(-1) for a in arrays if a.dtype.kind in "iu" and a.ndim and a.size == len(a)
        ]
        scores = [a for a in arrays if a.dtype.kind == "f" and a.ndim == 2]
        # Rows whose highest score is tied (or NaN) say nothing: a tie is broken either way.
        pairs = [
            (lab[keep], sc[keep])
            for lab in ints
            for sc in scores
            if len(lab) == len(sc) > 0
            for keep in [_decisive(sc)]
        ]
        if not pairs:
            return  # not both outputs in this call: checked on a later one
        self._check_labels = False
        if any(np.array_equal(lab, sc.argmax(axis=1)) for lab, sc in pairs):
            return
        # Column -> label, where each column seen as a row's highest score always gave one
        # label: a relabelled classifier. Otherwise the integer output is something else.
        mappings = [m for m in (_column_labels(lab, sc) for lab, sc in pairs) if m is not None]
        if not mappings:
            return
        found = _graph_class_labels(self._path)
        if found is not None and any(
            len(found) == width and all(found[j] == v for j, v in mapping.items())
            for width, mapping in mappings
        ):
            self._graph_classes, self._graph_looked = found, True
            return
        for width, mapping in mappings:
            if len(mapping) == width:
                self._graph_classes = tuple(mapping[j] for j in range(width))
                self._graph_looked = True
                return
        self._position_note = (
            f"WARNING: model {self.name!r}: its integer label output is not the index of its "
            "highest score, and neither the graph nor the first batch says which class each "
            "score column is; compval read the columns as classes 0..K-1. If the model's "
            "classes are other numbers (1, 2, 5), export it with ZipMap (skl2onnx's default) "
            "so that every score names its class."
        )

    def _settle_threads(self, names: list[str], feed: dict[str, Array]) -> list[Any]:
        """The first batch's results; afterwards the session runs on one thread if that is faster.

        ONNX Runtime splits each operator over one thread per core. A light model (a tabular
        MLP takes about 0.1 ms per batch) spends more on handing work to the pool and waking
        it than the split saves, and the pool competes for the cores with compval's reading
        and scoring threads: on 2 cores, one thread made ``bench_validate.py`` 0.05 s faster.
        A heavy model (a CNN) is twice as fast on 2 cores with the pool, so the count is
        measured, not assumed: a first run over ``_HEAVY_FIRST_RUN_S`` ends it, else the pool's
        best of three runs is timed, and a batch under ``_LIGHT_BATCH_S`` is run again by a
        one-thread session, which is kept only when its results are bitwise those of the
        pool and it ran no slower. Some kernels (tree ensembles) add per-thread partial
        sums, so their last bits depend on the thread count: they keep the pool, so the
        outputs compared are the same whichever session is kept.
        """
        start = time.perf_counter()
        results: list[Any] = self._session.run(names, feed)
        if time.perf_counter() - start > _HEAVY_FIRST_RUN_S:
            return results  # heavy: not even timed again (a large model's batch takes seconds)
        pooled = _best_time(self._session, names, feed)
        if pooled > _LIGHT_BATCH_S:
            return results
        ort = lazy_import("onnxruntime", extra="onnx")
        single = ort.InferenceSession(
            str(self._path),
            sess_options=_session_options(ort, 1, spin=False),
            providers=list(self._providers),
            provider_options=self._options_for(self._providers),
        )
        same = _same_results(results, single.run(names, feed))
        if same and _best_time(single, names, feed) <= pooled:
            self._session = single
            self._settled = 1
        return results

    @property
    def settled_threads(self) -> int | None:
        """1 when the first batch moved this session to one thread, else None (the default).

        Only a scoring session (not ``timed``) on CPU with ``threads`` unset is settled; see
        ``_settle_threads``.
        """
        return self._settled

    def _info(self) -> AdapterInfo:
        ort = lazy_import("onnxruntime", extra="onnx")
        if self._sha256 is None:
            # Hashed on first request, not in open(), so that load time excludes hashing.
            self._sha256 = sha256_file(self._path)
        active = self._session.get_providers()
        device = "cpu" if not active or active[0] == "CPUExecutionProvider" else active[0]
        return AdapterInfo(
            runtime="onnxruntime",
            runtime_version=str(ort.__version__),
            device=device,
            model_id=self._sha256,
            path=str(self._path),
            size_bytes=self._path.stat().st_size,
        )

    def _close(self) -> None:
        self._session = None
        self._spec = {}
        self._output_names = []

    def __repr__(self) -> str:
        return f"OnnxRuntimeAdapter({str(self._path)!r}, name={self.name!r})"

    # -- optional hooks ------------------------------------------------------------------
    @property
    def classes(self) -> tuple[object, ...] | None:
        """The class label of each score column, when the model says.

        The keys of a ZipMap output (once a batch has run); else, for a graph that outputs a
        predicted text label next to its scores, the labels written in the graph: the
        ``classlabels_*`` of an ``ai.onnx.ml`` classifier node (LinearClassifier,
        TreeEnsembleClassifier, SVMClassifier), or the constant that ``ArrayFeatureExtractor``
        indexes with an ``ArgMax`` of the scores (skl2onnx's MLP and other classifiers). An
        exporter's ``zipmap: False`` (skl2onnx's recommended option) keeps its labels that way:
        without them, text labels matched no column (0, 1, ...) and the run stopped. An
        integer label output is checked against the scores on the first batch
        (``_check_positions``) and the graph is read only when it is not their column index.
        """
        if self._classes is not None:
            return self._classes
        if self._graph_looked:
            return self._graph_classes
        if self._label_output and self._session is not None:
            self._graph_looked = True
            self._graph_classes = _graph_class_labels(self._path)
        return self._graph_classes

    @property
    def model_format(self) -> str:
        """``ort`` for ONNX Runtime's mobile format (``.ort``), else ``onnx``."""
        return "ort" if self._path.suffix.lower() == ".ort" else "onnx"

    @property
    def model_file(self) -> Path:
        """The ``.onnx`` (or ``.ort``) file."""
        return self._path

    def inactive_devices(self) -> tuple[str, ...]:
        """Requested execution providers the session did not activate (opens if needed)."""
        self.open()
        return self._missing

    def run_notes(self) -> list[str]:
        """Warnings for the report's run notes.

        A requested execution provider that is not active (ONNX Runtime's fallback), and an
        integer label output whose classes could not be told (``_check_positions``).
        """
        notes = [] if self._position_note is None else [self._position_note]
        if self._missing:
            notes.append(
                f"WARNING: model {self.name!r}: execution provider(s) {list(self._missing)} were "
                "requested but ONNX Runtime did not activate them; it runs on "
                f"{list(self._active)}. Latency and memory were measured there, not on the "
                "requested device."
            )
        return notes

    def time_reload(self, *, threads: int | None) -> float:
        """Milliseconds to create a fresh session from the file, with this adapter's providers."""
        ort = lazy_import("onnxruntime", extra="onnx")
        options = _session_options(ort, threads, spin=True)
        providers = list(self.execution_providers() or self._providers)
        start = time.perf_counter_ns()
        ort.InferenceSession(
            str(self._path),
            sess_options=options,
            providers=providers,
            provider_options=self._options_for(providers),
        )
        return (time.perf_counter_ns() - start) / 1e6

    def _options_for(self, providers: Sequence[str]) -> list[dict[str, object]]:
        """One options dict per provider, in order (what InferenceSession takes)."""
        return [self._provider_options.get(p, {}) for p in providers]

    def execution_providers(self) -> tuple[str, ...]:
        """The session's active providers (opens the adapter if needed)."""
        return tuple(self.session.get_providers())

    def timed_call(self, inputs: Mapping[str, Array]) -> Callable[[], object]:
        """``session.run`` on a checked feed: no per-call checks in the timed loop."""
        self.predict(inputs)
        return functools.partial(self._session.run, None, dict(inputs))

    def with_threads(self, threads: int | None) -> OnnxRuntimeAdapter:
        """A new, unopened adapter for the same file and providers, timed as deployed.

        ``self`` when it already is one with ``threads`` threads; a scoring session (not
        ``timed``) is never timed: its threads do not spin, as deployed ones do.
        """
        if threads == self._threads and self._timed:
            return self
        return OnnxRuntimeAdapter(
            self._path,
            name=self.name,
            threads=threads,
            providers=self._providers,
            provider_options=self._provider_options,
            timed=True,
        )


#: A scoring session's first batch faster than this (seconds, the best of three runs) is tried
#: on one thread (``OnnxRuntimeAdapter._settle_threads``); slower ones keep ONNX Runtime's
#: pool without the cost of a second session.
_LIGHT_BATCH_S = 0.002
#: A first run (warm-up included) slower than this is a heavy model's: no timed runs at all.
_HEAVY_FIRST_RUN_S = 0.02


def _best_time(session: Any, names: list[str], feed: dict[str, Array], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(names, feed)
        best = min(best, time.perf_counter() - start)
    return best


def _same_results(first: Sequence[Any], second: Sequence[Any]) -> bool:
    """Whether two ``session.run`` results are the same, arrays bit for bit.

    Sequence and ZipMap outputs (lists of arrays, lists of maps) compare element by element.
    """
    return len(first) == len(second) and all(map(_same_value, first, second))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind == "O":
            return all(map(_same_value, a.ravel(), b.ravel()))
        return a.tobytes() == b.tobytes()
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_value, a, b))
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(a) == list(b)
            and all(map(_same_value, a.values(), b.values()))
        )
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _session_options(ort: Any, threads: int | None, *, spin: bool) -> Any:
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Inter-op threads only run independent graph branches in parallel execution mode; the
    # session runs sequentially, so a second pool would just add idle threads that compete
    # with the intra-op pool (and with the other model) for cores and make latency
    # measurements noisier.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _dims(shape: Sequence[object] | None) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    # Symbolic dims come back as strings ("N", "batch"), unknown ones as None.
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


_ML_CLASSIFIERS = ("LinearClassifier", "TreeEnsembleClassifier", "SVMClassifier")


def _decisive(scores: Array) -> Array:
    """Rows whose highest score is above every other (no tie, no NaN)."""
    if scores.shape[1] < 2:
        return np.ones(len(scores), dtype=bool)
    top = np.partition(scores, -2, axis=1)[:, -2:]
    decisive: Array = top[:, 1] > top[:, 0]
    return decisive


def _column_labels(labels: Array, scores: Array) -> tuple[int, dict[int, object]] | None:
    """``(columns, {column: label})`` when each top-scoring column always gave one label."""
    seen: dict[int, set[object]] = {}
    for column, label in zip(scores.argmax(axis=1).tolist(), labels.tolist(), strict=True):
        seen.setdefault(column, set()).add(label)
    if any(len(values) != 1 for values in seen.values()):
        return None
    return scores.shape[1], {column: next(iter(values)) for column, values in seen.items()}


def _graph_class_labels(path: Path) -> tuple[object, ...] | None:
    """The class labels an ONNX classifier's graph gives its score columns.

    Only when exactly one set is found (see ``OnnxRuntimeAdapter.classes``); None otherwise,
    and for a file the onnx package cannot read (an ``.ort`` file).
    """
    onnx = lazy_import("onnx", extra="onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises DecodeError and others for files it cannot read
        return None
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    argmax_outputs = {out for node in graph.node if node.op_type == "ArgMax" for out in node.output}
    found: set[tuple[object, ...]] = set()
    for node in graph.node:
        if node.domain != "ai.onnx.ml":
            continue
        if node.op_type in _ML_CLASSIFIERS:
            for attr in node.attribute:
                if attr.name == "classlabels_strings" and attr.strings:
                    found.add(tuple(v.decode("utf-8") for v in attr.strings))
                elif attr.name in ("classlabels_ints", "classlabels_int64s") and attr.ints:
                    found.add(tuple(int(v) for v in attr.ints))
        elif (
            node.op_type == "ArrayFeatureExtractor"
            and len(node.input) == 2
            and node.input[0] in constants
            and node.input[1] in argmax_outputs
        ):
            values = onnx.numpy_helper.to_array(constants[node.input[0]]).reshape(-1)
            found.add(tuple(_plain(v) for v in values.tolist()))
    return found.pop() if len(found) == 1 else None


def _plain(value: object) -> object:
    """A graph constant's value as a Python label: text for bytes, as it is otherwise."""
    return value.decode("utf-8") if isinstance(value, bytes) else value
