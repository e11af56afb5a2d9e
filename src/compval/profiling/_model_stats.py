"""Static facts about a model: size on disk, parameters, weight sparsity, load time, operators.

Everything runtime-specific comes from the adapter's optional hooks (``model_format``,
``model_file``, ``parameter_stats()``, ``load_time_s``, ``time_reload()``), so any adapter can
be profiled; an ONNX file's graph is read here with the ``onnx`` package (the file format, not
the runtime). For adapters without hooks only the file size is known.

An ONNX model's nodes are listed (main graph, If/Loop/Scan bodies, and the bodies of local
functions, which the runtime expands), each with the opset its domain imports and, when asked,
the tensor types that ONNX shape inference finds for its inputs and outputs.

Parameter count: ONNX counts every element of every initializer (including quantization
scales and zero points); torch sums ``numel()`` of the parameters. Weight sparsity is the
fraction of exact zeros over floating-point weights with two or more dimensions (matrices and
kernels; biases and norms excluded): the honest number for pruned models, which are usually
stored dense and so are no smaller on disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.adapters import ModelAdapter
from compval.errors import AdapterError, ProfilingError
from compval.profiling._operators import NodeUse, OpUse, node_label, normalize_domain

__all__ = ["ModelStats", "model_stats"]

_MIB = 1024 * 1024
# onnx.TensorProto data types: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
_ONNX_FLOAT_TYPES = frozenset({1, 10, 11, 16})


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStats:
    """Static facts about one model; None where the model kind does not tell.

    Attributes:
        kind: ``"onnx"``, ``"torchscript"``, ``"torch_export"``, ``"torch"`` (in-memory
            module) or ``"other"``.
        path: Model file, if any.
        size_bytes: Bytes on disk, including ONNX external-data files.
        parameter_count: See the module docstring.
        weight_sparsity: Fraction of exact zeros in float weights with >= 2 dims.
        load_time_ms: Time to load the file into a fresh runtime session, in milliseconds.
        operators: Operator types used (ONNX only), with the opset of their domain.
        nodes: Every node (ONNX only), in graph order, with its tensor types when
            ``model_stats(..., infer_types=True)``.
        notes: Why a value is missing.
    """

    kind: str
    path: str | None
    size_bytes: int | None
    parameter_count: int | None
    weight_sparsity: float | None
    load_time_ms: float | None
    operators: tuple[OpUse, ...] | None
    nodes: tuple[NodeUse, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def size_mb(self) -> float | None:
        """Size on disk in mebibytes (2**20 bytes), or None."""
        return None if self.size_bytes is None else self.size_bytes / _MIB


def model_stats(
    adapter: ModelAdapter,
    *,
    threads: int | None = None,
    measure_load_time: bool = True,
    infer_types: bool = False,
) -> ModelStats:
    """Size, parameter count, weight sparsity, load time and operators of an open adapter.

    Args:
        adapter: An open adapter.
        threads: Intra-op threads for the fresh session used to time loading (ONNX).
        measure_load_time: Load the file once more to time it. An adapter attribute
            ``load_time_s`` (set by adapters that time their own ``open()``) is used instead
            when present.
        infer_types: Run ONNX shape inference to give each node its tensor types (for
            operator checks that look at types); off by default, as it copies the graph.

    Returns:
        The stats; values the model kind cannot provide are None and ``notes`` says why.

    Raises:
        ProfilingError: The model file cannot be read.
    """
    kind = adapter.model_format
    file = adapter.model_file
    path = file if file is not None and Path(file).is_file() else None
    notes: list[str] = []
    size = _file_size(adapter, path)
    if size is None:
        notes.append(f"model {adapter.name!r}: size unknown (no model file)")
    params: int | None = None
    sparsity: float | None = None
    operators: tuple[OpUse, ...] | None = None
    nodes: tuple[NodeUse, ...] | None = None
    if kind == "onnx" and path is not None:
        params, sparsity, nodes, external = _onnx_stats(path, infer_types=infer_types)
        operators = tuple(sorted({n.op for n in nodes}))
        size = (size or 0) + external
    elif kind == "onnx":
        notes.append(f"model {adapter.name!r}: ONNX session without a file; graph not readable")
    elif (own_stats := adapter.parameter_stats()) is not None:
        params, sparsity = own_stats
    else:
        notes.append(f"model {adapter.name!r}: parameter count unknown for this adapter")

    load_ms: float | None = None
    own = adapter.load_time_s
    if own is not None and math.isfinite(own):
        load_ms = float(own) * 1000.0
    elif measure_load_time and path is not None:
        load_ms = _time_reload(adapter, path, threads)
    if load_ms is None and measure_load_time:
        notes.append(f"model {adapter.name!r}: load time unknown (no loadable model file)")
    return ModelStats(
        kind=kind,
        path=None if path is None else str(path),
        size_bytes=size,
        parameter_count=params,
        weight_sparsity=sparsity,
        load_time_ms=load_ms,
        operators=operators,
        nodes=nodes,
        notes=tuple(notes),
    )


def _file_size(adapter: ModelAdapter, path: Path | None) -> int | None:
    if path is not None:
        return path.stat().st_size
    try:
        size = adapter.info().size_bytes
    except AdapterError:
        return None
    return size


def _onnx_stats(
    path: Path, *, infer_types: bool
) -> tuple[int, float | None, tuple[NodeUse, ...], int]:
    onnx = lazy_import("onnx", extra="onnx")
    try:
        # Loading external data inlines it and forgets where it came from, so the files are
        # listed (for the size on disk) before the data is loaded.
        model = onnx.load(str(path), load_external_data=False)
        # Types are inferred before the weights are loaded: the graph alone stays far below
        # protobuf's 2 GiB limit, which shape inference cannot cross.
        types = _inferred_types(onnx, model) if infer_types else {}
        external = {
            entry.value
            for graph in _graphs(model.graph)
            for init in graph.initializer
            for entry in init.external_data
            if entry.key == "location"
        }
        if external:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises DecodeError/OSError/ValueError alike
        raise ProfilingError(
            f"Model file {str(path)!r}: cannot read the ONNX graph; got "
            f"{type(exc).__name__}: {exc}. Check that the file is a complete ONNX model."
        ) from exc
    numpy_helper = onnx.numpy_helper
    params = 0
    zeros = 0
    weights = 0
    for graph in _graphs(model.graph):
        for init in graph.initializer:
            count = math.prod(init.dims)
            params += count
            if init.data_type in _ONNX_FLOAT_TYPES and len(init.dims) >= 2:
                weights += count
                zeros += count - int(np.count_nonzero(numpy_helper.to_array(init)))
        for sparse in graph.sparse_initializer:
            count = math.prod(sparse.dims)
            params += count
            if sparse.values.data_type in _ONNX_FLOAT_TYPES and len(sparse.dims) >= 2:
                weights += count
                zeros += count - int(np.count_nonzero(numpy_helper.to_array(sparse.values)))
    external_bytes = sum(
        (path.parent / location).stat().st_size
        for location in external
        if (path.parent / location).is_file()
    )
    sparsity = zeros / weights if weights else None
    return params, sparsity, _onnx_nodes(model, types), external_bytes


def _onnx_nodes(model: Any, types: dict[str, str]) -> tuple[NodeUse, ...]:
    """Every node that runs, with its domain's opset and the tensor types in ``types``."""
    opsets = {normalize_domain(o.domain): int(o.version) for o in model.opset_import}
    local = {(f.domain, f.name) for f in model.functions}
    found: list[NodeUse] = []

    def visit(nodes: Any, imports: dict[str, int], known: dict[str, str]) -> None:
        for node in nodes:
            if (node.domain, node.op_type) not in local:
                domain = normalize_domain(node.domain)
                found.append(
                    NodeUse(
                        node_label(node.name, node.op_type, len(found)),
                        domain,
                        node.op_type,
                        imports.get(domain),
                        tuple(known.get(i) if i else None for i in node.input),
                        tuple(known.get(o) if o else None for o in node.output),
                    )
                )
            for attribute in node.attribute:
                for subgraph in _attribute_graphs(attribute):
                    visit(subgraph.node, imports, known)

    visit(model.graph.node, opsets, types)
    for function in model.functions:
        # A local function is expanded by the runtime; its body's operators are what runs.
        imports = {
            **opsets,
            **{normalize_domain(o.domain): o.version for o in function.opset_import},
        }
        visit(function.node, imports, {})
    return tuple(found)


def _inferred_types(onnx: Any, model: Any) -> dict[str, str]:
    """Value name -> ONNX Runtime type string (``tensor(float)``), from shape inference.

    Names are unique across a model's graphs in practice (the ONNX checker requires SSA), so
    one map serves the subgraphs too. Values whose type stays unknown are left out.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # a model shape inference cannot handle: types stay unknown
        inferred = model
    names = onnx.TensorProto.DataType
    types: dict[str, str] = {}

    def add(name: str, elem_type: int) -> None:
        if elem_type and elem_type in names.values():
            types[name] = f"tensor({names.Name(elem_type).lower()})"

    for graph in _graphs(inferred.graph):
        for value in (*graph.input, *graph.output, *graph.value_info):
            if value.type.HasField("tensor_type"):
                add(value.name, value.type.tensor_type.elem_type)
        for init in graph.initializer:
            add(init.name, init.data_type)
    return types


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and, recursively, every subgraph (If/Loop/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in _attribute_graphs(attribute):
                yield from _graphs(subgraph)


def _attribute_graphs(attribute: Any) -> list[Any]:
    graphs = list(attribute.graphs)
    if attribute.HasField("g"):
        graphs.append(attribute.g)
    return graphs


def _time_reload(adapter: ModelAdapter, path: Path, threads: int | None) -> float | None:
    try:
        return adapter.time_reload(threads=threads)
    except Exception as exc:  # runtime loaders raise their own exception types
        raise ProfilingError(
            f"Model {adapter.name!r}: reloading {str(path)!r} to time it failed; got "
            f"{type(exc).__name__}: {exc}. Pass measure_load_time=False to skip it."
        ) from exc
