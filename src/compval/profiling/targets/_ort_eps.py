"""Which nodes NNAPI and CoreML would leave to the CPU, by ONNX Runtime's mobile usability checker.

onnxruntime ships a mobile usability checker (``python -m
onnxruntime.tools.check_onnx_model_mobile_usability``, implemented in
``onnxruntime/tools/mobile_helpers/usability_checker.py``) with one support table per
accelerator execution provider, in the same folder: ``nnapi_supported_ops.md``,
``coreml_supported_neuralnetwork_ops.md`` and ``coreml_supported_mlprogram_ops.md``. compval
reads the tables the installed onnxruntime ships and applies the checker's rule to each node of
the model the checker analyzes (optimized to ONNX Runtime's BASIC level with
``onnxruntime.tools.onnx_model_utils.optimize_model``, then ONNX shape inference). A node falls
back to the CPU EP when

* its operator (``domain:OpType``) is not in the EP's table (``op_type``);
* an input does not have a fixed shape (``dynamic_shape``); the checker's first verdict also
  requires them, and ``python -m onnxruntime.tools.make_dynamic_shape_fixed`` fixes them;
* for CoreML, an input has more than 5 dimensions (``rank``).

The only difference from the checker: an absent optional input (an empty name) does not make a
node dynamic here, as it does not in the EPs themselves; the checker counts it as dynamic.
The number of partitions and the checker's recommendation come from the checker's own
``check_nnapi_partitions`` / ``check_coreml_partitions`` when the installed version has them.
Like the checker, this ignores opsets and data types, and lists each table's notes for the
operators used (``Only 2D Conv is supported``) as caveats: on a device more nodes may fall back.
onnxruntime ships no XNNPACK table, so XNNPACK is not covered.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from compval._lazy import lazy_import
from compval.profiling._operators import (
    ExecutionProviderSupport,
    NodeFallback,
    node_label,
    normalize_domain,
)

__all__ = ["MOBILE_EPS", "mobile_ep_support"]

_HELPERS = "onnxruntime.tools.mobile_helpers"


@dataclass(frozen=True, slots=True)
class _EpTable:
    key: str
    provider: str
    # File names in onnxruntime/tools/mobile_helpers, newest first: onnxruntime <= 1.18
    # shipped the CoreML NeuralNetwork table as coreml_supported_ops.md.
    tables: tuple[str, ...]
    # usability_checker.check_coreml_partitions passes max_rank=5; NNAPI has no limit there.
    max_rank: int | None


#: The accelerator EPs checked, with the support tables onnxruntime ships for each.
MOBILE_EPS: tuple[_EpTable, ...] = (
    _EpTable("nnapi", "NNAPI", ("nnapi_supported_ops.md",), None),
    _EpTable(
        "coreml_neuralnetwork",
        "CoreML NeuralNetwork",
        ("coreml_supported_neuralnetwork_ops.md", "coreml_supported_ops.md"),
        5,
    ),
    _EpTable("coreml_mlprogram", "CoreML MLProgram", ("coreml_supported_mlprogram_ops.md",), 5),
)


def mobile_ep_support(
    path: Path, *, name: str
) -> tuple[tuple[ExecutionProviderSupport, ...], tuple[str, ...]]:
    """Per accelerator EP (NNAPI, CoreML), the nodes of the ONNX file at ``path`` it cannot take.

    Args:
        path: An ONNX model file.
        name: The model's name, for notes.

    Returns:
        One entry per EP whose table the installed onnxruntime ships, and notes on what could
        not be checked. Never raises for a model the checker cannot handle: the entries it
        could not produce are left out and a note says why.
    """
    ort = lazy_import("onnxruntime", extra="onnx")
    version = str(ort.__version__)
    notes: list[str] = []
    try:
        folder = resources.files(_HELPERS)
    except ImportError:
        return (), (f"model {name!r}: NNAPI/CoreML not checked: onnxruntime {version} "
                    f"has no {_HELPERS}",)  # fmt: skip
    tables: dict[_EpTable, tuple[str, dict[str, str]]] = {}
    for ep in MOBILE_EPS:
        found = next((t for t in ep.tables if (folder / t).is_file()), None)
        if found is None:
            notes.append(
                f"model {name!r}: {ep.provider} not checked: onnxruntime {version} ships no "
                f"{ep.tables[0]}"
            )
        else:
            tables[ep] = found, _parse_table((folder / found).read_text(encoding="utf-8"))
    if not tables:
        return (), tuple(notes)
    with tempfile.TemporaryDirectory(prefix="compval-ep-") as tmp:
        model, note = _analyzed_model(path, Path(tmp))
        if note:
            notes.append(f"model {name!r}: {note}")
        if model is None:
            return (), tuple(notes)
        out = []
        for ep, (table, ops) in tables.items():
            unsupported, count, caveats = _fallbacks(model, ops, ep.max_rank)
            partitions, recommendation = _checker_partitions(model, ep, table)
            out.append(
                ExecutionProviderSupport(
                    provider=ep.provider,
                    key=ep.key,
                    source=f"{table} (onnxruntime {version} usability checker)",
                    falls_back_to="CPU",
                    nodes=count,
                    unsupported=tuple(unsupported),
                    partitions=partitions,
                    recommendation=recommendation,
                    caveats=caveats,
                )
            )
    return tuple(out), tuple(notes)


def _parse_table(text: str) -> dict[str, str]:
    """``domain:Op`` -> caveat, from the markdown table's ``|domain:Op|caveat|`` rows.

    The same reading as the checker's ``_SupportedOpsChecker``: rows without ``:`` in the
    first cell (the header) are skipped.
    """
    ops = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        pieces = line.strip().split("|")
        if len(pieces) == 4 and ":" in pieces[1]:
            ops[pieces[1].strip()] = pieces[2].replace("<br/>", " ").strip()
    return ops


def _analyzed_model(path: Path, tmp: Path) -> tuple[Any | None, str | None]:
    """The model the checker looks at: BASIC-optimized by onnxruntime, with inferred shapes."""
    onnx = lazy_import("onnx", extra="onnx")
    note = None
    source = path
    try:
        utils = importlib.import_module("onnxruntime.tools.onnx_model_utils")
        optimized = tmp / "optimized.onnx"
        utils.optimize_model(path, optimized, use_external_initializers=True)
        source = optimized
    except Exception as exc:  # onnxruntime cannot load the model (e.g. a custom operator)
        note = (
            "NNAPI/CoreML checked on the graph as written: onnxruntime could not optimize it "
            f"({type(exc).__name__}: {_first_line(exc)})"
        )
    try:
        # Only the graph and the shapes are needed; large weights stay on disk.
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # DecodeError/OSError alike
        return None, f"NNAPI/CoreML not checked: cannot read the model ({_first_line(exc)})"
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True), note
    except Exception:  # onnx raises InferenceError/ValidationError alike; retry leniently
        pass
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False), note
    except Exception as exc:
        return None, f"NNAPI/CoreML not checked: shape inference failed ({_first_line(exc)})"


def _fallbacks(
    model: Any, ops: dict[str, str], max_rank: int | None
) -> tuple[list[NodeFallback], int, tuple[str, ...]]:
    """Apply the checker's per-node rule to the model's graph and (recursively) its subgraphs.

    Returns the nodes that fall back, the number of nodes checked and the caveats of the
    supported operators used.
    """
    onnx_utils = importlib.import_module("onnxruntime.tools.onnx_model_utils")
    is_fixed = onnx_utils.is_fixed_size_tensor
    opsets = {normalize_domain(o.domain): int(o.version) for o in model.opset_import}
    out: list[NodeFallback] = []
    seen: set[str] = set()
    count = 0

    def visit(g: Any, outer_info: dict[str, Any], outer_inits: frozenset[str]) -> None:
        nonlocal count
        # Shadowing follows ONNX scoping: names defined in this graph replace outer ones.
        info = {**outer_info, **{v.name: v for v in (*g.input, *g.output, *g.value_info)}}
        inits = outer_inits | {i.name for i in g.initializer}
        for node in g.node:
            count += 1
            domain = normalize_domain(node.domain)
            op = f"{domain}:{node.op_type}"
            reasons, details = [], []
            if op not in ops:
                reasons.append("op_type")
                details.append("not in the EP's operator table")
            else:
                seen.add(op)
            dynamic = [
                i for i in node.input if i and not (is_fixed(info[i]) if i in info else i in inits)
            ]
            if dynamic:
                reasons.append("dynamic_shape")
                details.append(f"input {dynamic[0]!r} has a dynamic or unknown shape")
            rank = _max_rank(node, info)
            if max_rank is not None and rank > max_rank:
                reasons.append("rank")
                details.append(f"an input has rank {rank} (the EP supports up to {max_rank})")
            if reasons:
                label = node_label(node.name, node.op_type, count - 1)
                fallback = NodeFallback(
                    label, op, opsets.get(domain), tuple(reasons), "; ".join(details)
                )
                out.append(fallback)
        for node in g.node:
            for attribute in node.attribute:
                # As the checker: bodies of If/Loop/Scan attributes ('g'), with outer scope.
                if attribute.HasField("g"):
                    visit(attribute.g, info, inits)

    visit(model.graph, {}, frozenset())
    caveats = tuple(f"{op}: {ops[op]}" for op in sorted(seen) if ops[op])
    return out, count, caveats


def _max_rank(node: Any, info: dict[str, Any]) -> int:
    ranks = [
        len(info[i].type.tensor_type.shape.dim)
        for i in node.input
        if i in info and info[i].type.HasField("tensor_type")
    ]
    if node.op_type == "Transpose":
        # The checker's special case: the permutation's length is the rank, shapes or not.
        ranks += [len(a.ints) for a in node.attribute if a.name == "perm"]
    return max(ranks, default=0)


def _checker_partitions(model: Any, ep: _EpTable, table: str) -> tuple[int | None, str | None]:
    """Partition count and verdict from the checker's own functions, if this version has them.

    Their signatures changed: ``(model, require_fixed_input_sizes[, table])`` since
    onnxruntime 1.20, ``(model, value_info)`` before (NNAPI and the legacy CoreML table only).
    """
    try:
        checker = importlib.import_module(f"{_HELPERS}.usability_checker")
        nnapi = ep.key == "nnapi"
        function = checker.check_nnapi_partitions if nnapi else checker.check_coreml_partitions
        parameters = inspect.signature(function).parameters
        if "require_fixed_input_sizes" in parameters:
            args: tuple[Any, ...] = (model, True) if nnapi else (model, True, table)
        elif "value_info" in parameters and (nnapi or table == "coreml_supported_ops.md"):
            graph = model.graph
            args = (model, {v.name: v for v in (*graph.input, *graph.output, *graph.value_info)})
        else:
            return None, None
        with _node_hash_restored():
            info = function(*args)
        return int(info.num_partitions), str(info.suitability().name).lower()
    except Exception:  # internals differ across onnxruntime versions; the count is optional
        return None, None


@contextlib.contextmanager
def _node_hash_restored() -> Iterator[None]:
    """Undo the checker's process-wide ``onnx.NodeProto.__hash__ = id`` patch afterwards."""
    onnx = lazy_import("onnx", extra="onnx")
    before = onnx.NodeProto.__dict__.get("__hash__", _MISSING)
    try:
        yield
    finally:
        if before is _MISSING:
            with contextlib.suppress(AttributeError, TypeError):
                del onnx.NodeProto.__hash__
        else:
            onnx.NodeProto.__hash__ = before


_MISSING = object()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
