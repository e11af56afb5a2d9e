"""What the installed ONNX Runtime's CPU execution provider can run, from its own registrations.

ONNX Runtime's pre-built Android and iOS packages (``onnxruntime-android``, ``onnxruntime-c``,
``onnxruntime-objc``) are full builds: every operator and type that the same version's CPU
execution provider has a kernel for. So instead of a hand-written list, the check reads the
installed onnxruntime's registry through ``onnxruntime.capi.onnxruntime_pybind11_state``:
``get_all_opkernel_def()`` (each CPU kernel's operator, domain, version range and type
constraints) and ``get_all_operator_schema()`` (which version of an operator a model's opset
selects, and its inputs' type parameters). A node can run when

1. onnxruntime knows its operator (a custom domain needs a custom-op library, which a stock
   mobile package does not have);
2. onnxruntime knows the opset the model imports for the domain, and the operator version that
   opset selects exists and is not deprecated;
3. a CPU kernel covers that version, or the operator is an ONNX function that onnxruntime expands
   into other operators when no kernel claims it (``onnx.defs``), or it is ``Constant``
   (turned into an initializer when the model is loaded);
4. one of those kernels accepts the node's tensor types, where shape inference knows them.
   ``float16`` also counts when a ``float`` kernel exists: onnxruntime inserts Casts around
   such nodes on the CPU (its InsertCastTransformer).

The tests check these verdicts against ``onnxruntime.InferenceSession`` loading the same models.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from compval._lazy import lazy_import
from compval.errors import ProfilingError
from compval.profiling._operators import NodeFallback, NodeUse, OpUse, normalize_domain

__all__ = ["OrtCpuKernels"]

_FLOAT16, _FLOAT = "tensor(float16)", "tensor(float)"
_OPEN_END = 2**31 - 1  # onnxruntime's "no upper version" (INT_MAX)


@dataclass(frozen=True, slots=True)
class _Schema:
    since: int
    deprecated: bool
    # (type string or type parameter, variadic) per formal input / output.
    inputs: tuple[tuple[str, bool], ...]
    outputs: tuple[tuple[str, bool], ...]


@dataclass(frozen=True, slots=True)
class _Kernel:
    start: int
    end: int
    types: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class _Registry:
    version: str
    domains: frozenset[str]
    newest: Mapping[str, int]  # domain -> its newest operator version: the newest opset known
    schemas: Mapping[tuple[str, str], tuple[_Schema, ...]]  # ascending since_version
    kernels: Mapping[tuple[str, str], tuple[_Kernel, ...]]


class OrtCpuKernels:
    """``ort_mobile``: the operators, opsets and types the installed onnxruntime's CPU EP runs.

    The registry is read on first use (it needs onnxruntime), then cached for the process.

    Example:
        >>> from compval.profiling import OpUse
        >>> kernels = OrtCpuKernels()
        >>> kernels.supports(OpUse("ai.onnx", "Add", 17)), kernels.supports(OpUse("x.y", "Op", 1))
        (True, False)
    """

    def __init__(self, source: str = "ort_mobile") -> None:
        self._source = source

    @property
    def source(self) -> str:
        """The name the target used (``ort_mobile``)."""
        return self._source

    @property
    def basis(self) -> str:
        """``onnxruntime <version> CPU kernel registrations``."""
        return f"onnxruntime {_registry().version} CPU kernel registrations"

    def supports(self, op: OpUse) -> bool:
        """Whether a CPU kernel (or a function expansion) exists for ``op`` at its opset."""
        node = NodeUse("", normalize_domain(op.domain), op.op_type, op.opset)
        return _verdict(_registry(), node) is None

    def check(self, nodes: Iterable[NodeUse]) -> list[NodeFallback]:
        """The nodes the CPU EP cannot run, in the order given, each with its reason."""
        registry = _registry()
        out = []
        for node in nodes:
            verdict = _verdict(registry, node)
            if verdict is not None:
                reason, detail = verdict
                op = f"{node.domain}:{node.op_type}"
                out.append(NodeFallback(node.name, op, node.opset, (reason,), detail))
        return out

    def __repr__(self) -> str:
        return f"OrtCpuKernels(source={self._source!r})"


def _verdict(registry: _Registry, node: NodeUse) -> tuple[str, str] | None:
    """None when the CPU EP can run ``node``; else (reason code, reason in words)."""
    version = registry.version
    domain = "" if node.domain == "ai.onnx" else node.domain
    key = (domain, node.op_type)
    schemas = registry.schemas.get(key)
    if not schemas:
        if domain in registry.domains:
            return "op_type", f"operator unknown to onnxruntime {version}"
        return "op_type", (
            f"operator unknown to onnxruntime {version} (domain {node.domain!r} is not built in; "
            "it needs a custom-op library registered with the session)"
        )
    if node.opset is None:
        return "opset", f"the model imports no opset for domain {node.domain!r}"
    newest = registry.newest[domain]
    if node.opset > newest:
        # onnxruntime refuses to load a model that imports an opset it does not know.
        return "opset", (
            f"the model imports opset {node.opset} of {node.domain!r}; onnxruntime {version} "
            f"knows opsets up to {newest}"
        )
    selected = [s for s in schemas if s.since <= node.opset]
    if not selected:
        return "opset", f"not defined before opset {schemas[0].since}"
    schema = selected[-1]
    if schema.deprecated:
        return "opset", f"deprecated since opset {schema.since}"
    if key == ("", "Constant"):
        return None
    every = registry.kernels.get(key, ())
    kernels = [k for k in every if _matches(k, schema.since)]
    bound = _bound_types(schema, node)
    if any(_accepts(k.types, bound) for k in kernels):
        return None
    widened = {p: frozenset(_FLOAT if t == _FLOAT16 else t for t in ts) for p, ts in bound.items()}
    if widened != bound and any(_accepts(k.types, widened) for k in kernels):
        return None  # runs in float32 between the Casts onnxruntime inserts
    if _is_function(domain, node.op_type, node.opset):
        return None  # no kernel claims the node, so onnxruntime expands the function
    if kernels:
        constrained = {p for k in kernels for p in k.types}
        shown = "; ".join(
            f"{p}={', '.join(sorted(ts))}" for p, ts in sorted(bound.items()) if p in constrained
        )
        return "data_type", f"no CPU kernel in onnxruntime {version} for {shown}"
    if every:
        return "opset", (
            f"onnxruntime {version} has no CPU kernel for its opset-{schema.since} version "
            f"(CPU kernels implement versions {_ranges(every)})"
        )
    return "op_type", f"onnxruntime {version} has no CPU kernel for it"


def _matches(kernel: _Kernel, since: int) -> bool:
    """Whether the kernel serves a node whose operator version is ``since``.

    onnxruntime's own rule (``KernelRegistry::VerifyKernelDef``): a kernel with an open end
    only serves the version it starts at; a closed range serves every version in it.
    """
    return kernel.start == since or (kernel.start < since <= kernel.end < _OPEN_END)


def _bound_types(schema: _Schema, node: NodeUse) -> dict[str, frozenset[str]]:
    """Known tensor types of the node, by the schema's type parameter they bind."""
    bound: dict[str, set[str]] = {}
    for formals, actual in ((schema.inputs, node.input_types), (schema.outputs, node.output_types)):
        for index, type_str in enumerate(actual):
            if type_str is None:
                continue
            if index < len(formals):
                param = formals[index][0]
            elif formals and formals[-1][1]:
                param = formals[-1][0]  # the variadic last parameter takes the rest
            else:
                continue
            bound.setdefault(param, set()).add(type_str)
    return {p: frozenset(ts) for p, ts in bound.items()}


def _accepts(kernel: Mapping[str, frozenset[str]], bound: Mapping[str, frozenset[str]]) -> bool:
    return all(types <= kernel[p] for p, types in bound.items() if p in kernel)


def _ranges(kernels: Iterable[_Kernel]) -> str:
    spans = sorted({(k.start, k.end) for k in kernels})
    return ", ".join(str(a) if a == b or b >= _OPEN_END else f"{a}-{b}" for a, b in spans)


@functools.cache
def _is_function(domain: str, op_type: str, opset: int) -> bool:
    """Whether onnxruntime can expand the operator into others at the model's ``opset``.

    onnxruntime's Python API does not expose function bodies, so ``onnx.defs`` (the same
    operator definitions) is asked, with ONNX's own condition for using a body at a later
    opset (``OpSchema::GetFunction`` with validation): no ONNX operator in the body may have
    changed version since the body's opset. Bodies built from the node's context
    (``has_context_dependent_function``) cannot be built here and are taken as usable, and
    the types of a body's nodes are not checked: the verdict errs towards "runs".
    """
    onnx = lazy_import("onnx", extra="onnx")
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # onnx.defs.SchemaError: an operator this onnx does not define
        return False
    if schema.has_context_dependent_function:
        return True
    if not schema.has_function:
        return False
    versions = [v for v in getattr(schema, "function_opset_versions", ()) if v <= opset]
    if not versions:
        return bool(not hasattr(schema, "function_opset_versions"))  # older onnx: trust it
    body_version = max(versions)
    body = onnx.FunctionProto.FromString(schema.get_function_with_opset_version(body_version))
    standard = [n for n in body.node if n.domain in ("", "ai.onnx")]
    registry = _registry()
    return all(
        _since(onnx, n.op_type, opset) == _since(onnx, n.op_type, body_version)
        # The expanded operators must run too (types aside: the body's are not inferred).
        and _verdict(registry, NodeUse(n.name, "ai.onnx", n.op_type, opset)) is None
        for n in standard
    )


def _since(onnx: Any, op_type: str, opset: int) -> int | None:
    try:
        return int(onnx.defs.get_schema(op_type, opset, "").since_version)
    except Exception:  # not defined at that opset
        return None


@functools.cache
def _registry() -> _Registry:
    ort = lazy_import("onnxruntime", extra="onnx")
    state = lazy_import("onnxruntime.capi.onnxruntime_pybind11_state", extra="onnx")
    try:
        raw_schemas = state.get_all_operator_schema()
        raw_kernels = state.get_all_opkernel_def()
    except AttributeError as exc:
        raise ProfilingError(
            f"onnxruntime {ort.__version__}: this build does not expose its operator registry "
            "(get_all_operator_schema / get_all_opkernel_def), so the 'ort_mobile' operator "
            "check cannot run. Install the standard onnxruntime wheel, or give the target an "
            "operator-set file ('operators: path/to/ops.config')."
        ) from exc
    schemas: dict[tuple[str, str], list[_Schema]] = {}
    for s in raw_schemas:
        schemas.setdefault((s.domain, s.name), []).append(
            _Schema(
                since=int(s.since_version),
                deprecated=bool(s.deprecated),
                inputs=tuple(_formal(p) for p in s.inputs),
                outputs=tuple(_formal(p) for p in s.outputs),
            )
        )
    kernels: dict[tuple[str, str], list[_Kernel]] = {}
    for k in raw_kernels:
        if k.provider != "CPUExecutionProvider":
            continue
        start, end = k.version_range
        types = {name: frozenset(ts) for name, ts in k.type_constraints.items()}
        kernels.setdefault((k.domain, k.op_name), []).append(_Kernel(int(start), int(end), types))
    return _Registry(
        version=str(ort.__version__),
        domains=frozenset(d for d, _ in schemas),
        newest={
            d: max(s.since for (domain, _), v in schemas.items() if domain == d for s in v)
            for d in {d for d, _ in schemas}
        },
        schemas={key: tuple(sorted(v, key=lambda s: s.since)) for key, v in schemas.items()},
        kernels={key: tuple(v) for key, v in kernels.items()},
    )


def _formal(param: Any) -> tuple[str, bool]:
    option = getattr(param.option, "name", str(param.option))
    return str(param.typeStr), option == "Variadic"
