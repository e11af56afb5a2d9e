"""A model's nodes as the operator checks see them, and operator sets read from config files.

What a deployment target's runtime can run is decided per node, by an ``OperatorSupport``:

* ``ort_mobile`` (``compval.profiling.targets``): the installed ONNX Runtime's own CPU kernel
  registrations, which is what ORT's full Android and iOS packages run;
* an ``OperatorSet`` read from a file in ONNX Runtime's reduced-build configuration format (what
  a custom, size-reduced ORT build was made from), one line per
  ``<domain>;<opsets>;<op>[,<op>...]``::

      # comment
      ai.onnx;12,13;Add,Conv,MatMul
      com.microsoft;1;QLinearAdd

  Per-operator type annotations (``Cast{"inputs": ...}``) and the ``!globally_allowed_types``
  line are accepted and ignored: a file check covers operators and opsets, not tensor types.
  An opset field of ``*`` means every opset. As in ORT's reduced build, an operator is supported
  when the model's opset import for the operator's domain is one of the opsets listed for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from compval.errors import InvalidParameterError

__all__ = [
    "REASONS",
    "ExecutionProviderSupport",
    "NodeFallback",
    "NodeUse",
    "OpUse",
    "OperatorSet",
    "OperatorSupport",
    "describe_unsupported",
    "node_label",
    "normalize_domain",
]

_ANY_OPSET = -1

#: Why an execution provider cannot take a node: reason code -> meaning.
REASONS: Mapping[str, str] = MappingProxyType(
    {
        "op_type": "the provider has no implementation of the operator",
        "opset": "the operator is known, but not at the opset the model imports",
        "data_type": "no implementation for the node's tensor types",
        "dynamic_shape": "an input has a dynamic shape (the provider needs fixed shapes)",
        "rank": "an input has more dimensions than the provider supports",
    }
)

#: How many node names one ``unsupported_ops`` line lists before "and N more".
_NAMES_SHOWN = 5


def normalize_domain(domain: str) -> str:
    """ONNX writes the default domain as ``""`` or ``"ai.onnx"``; use ``"ai.onnx"``."""
    return "ai.onnx" if domain in ("", "ai.onnx") else domain


@dataclass(frozen=True, slots=True, order=True)
class OpUse:
    """One operator type used by a model, with the opset the model imports for its domain."""

    domain: str
    op_type: str
    opset: int | None

    def describe(self) -> str:
        """``domain:OpType (opset N)``, the form listed in reports."""
        suffix = "" if self.opset is None else f" (opset {self.opset})"
        return f"{self.domain}:{self.op_type}{suffix}"


@dataclass(frozen=True, slots=True)
class NodeUse:
    """One node of a model's graph (subgraphs and local functions' bodies included).

    Attributes:
        name: The node's name, or ``<OpType #i>`` (i: its position in the model) when unnamed.
        domain: Normalized domain (``ai.onnx`` for the default one).
        op_type: Operator type.
        opset: The model's opset import for ``domain`` (None when the model imports none).
        input_types: ONNX Runtime type string (``tensor(float)``) of each input, None where
            unknown, absent or not a tensor.
        output_types: Same for the outputs.
    """

    name: str
    domain: str
    op_type: str
    opset: int | None
    input_types: tuple[str | None, ...] = ()
    output_types: tuple[str | None, ...] = ()

    @property
    def op(self) -> OpUse:
        """The node's operator type and opset."""
        return OpUse(self.domain, self.op_type, self.opset)


@dataclass(frozen=True, slots=True)
class NodeFallback:
    """One node an execution provider cannot take, and why.

    Attributes:
        node: The node's name (see ``NodeUse.name``).
        op: ``domain:OpType``.
        opset: The model's opset import for the operator's domain.
        reasons: Codes from ``REASONS``, at least one.
        detail: The reasons in words, e.g. ``deprecated at opset 10``.
    """

    node: str
    op: str
    opset: int | None
    reasons: tuple[str, ...]
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionProviderSupport:
    """Which of a model's nodes one execution provider can take.

    Attributes:
        provider: ``CPU``, ``NNAPI``, ``CoreML NeuralNetwork`` or ``CoreML MLProgram``.
        key: Short name: ``cpu``, ``nnapi``, ``coreml_neuralnetwork``, ``coreml_mlprogram``.
        source: What the decision rests on, e.g. ``onnxruntime 1.32.0 CPU kernel
            registrations`` or ``nnapi_supported_ops.md (onnxruntime 1.32.0)``.
        falls_back_to: ``CPU`` for an accelerator EP (ONNX Runtime runs the nodes it cannot
            take on the CPU EP); None for the CPU EP, whose unsupported nodes cannot run.
        nodes: Nodes checked (after ONNX Runtime's basic optimizations for accelerator EPs).
        unsupported: The nodes it cannot take, in graph order.
        partitions: Groups of consecutive supported nodes the EP would get (None: unknown);
            each boundary costs a copy between devices.
        recommendation: The usability checker's verdict on using the EP: ``yes``, ``maybe``
            or ``no`` (None: not available).
        caveats: Conditions from the EP's table for operators in the model that were not
            checked (e.g. ``ai.onnx:Conv: Only 2D Conv is supported.``).
    """

    provider: str
    key: str
    source: str
    falls_back_to: str | None
    nodes: int
    unsupported: tuple[NodeFallback, ...]
    partitions: int | None = None
    recommendation: str | None = None
    caveats: tuple[str, ...] = ()


class OperatorSupport(Protocol):
    """What a target's runtime can run: decides, per node, whether it has an implementation.

    ``source`` names the set in messages (``ort_mobile`` or a file path); ``basis`` says what the
    decision rests on (e.g. ``onnxruntime 1.32.0 CPU kernel registrations``).
    """

    @property
    def source(self) -> str: ...

    @property
    def basis(self) -> str: ...

    def supports(self, op: OpUse) -> bool:
        """Whether ``op`` is implemented at the model's opset, whatever the tensor types."""
        ...

    def check(self, nodes: Iterable[NodeUse]) -> list[NodeFallback]:
        """The nodes the runtime cannot run, in graph order, with the reasons."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorSet:
    """The operators a custom ONNX Runtime build supports, from its configuration file.

    Attributes:
        source: Where the set came from (file path or name), for messages.
        entries: ``(domain, op_type)`` -> opsets it is supported for (``-1`` means any).
    """

    source: str
    entries: Mapping[tuple[str, str], frozenset[int]]

    @property
    def basis(self) -> str:
        """What the decisions rest on: the file."""
        return f"operator set {self.source}"

    @classmethod
    def parse(cls, text: str, *, source: str) -> OperatorSet:
        """Parse the reduced-build configuration format.

        Args:
            text: The file's content.
            source: Name used in error messages.

        Raises:
            InvalidParameterError: A line is not ``domain;opsets;ops``.
        """
        entries: dict[tuple[str, str], set[int]] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("!"):
                continue
            line = _strip_type_annotations(line)
            parts = [p.strip() for p in line.split(";")]
            if len(parts) != 3 or not parts[2]:
                raise InvalidParameterError(
                    f"Operator set {source}, line {number}: not an operator line; got "
                    f"{raw.strip()!r}, expected 'domain;opset[,opset...];Op[,Op...]' "
                    "(e.g. 'ai.onnx;13;Add,Conv'). Fix the line or comment it out with '#'."
                )
            opsets = _parse_opsets(parts[1], source=source, number=number)
            domain = normalize_domain(parts[0])
            for op in (o.strip() for o in parts[2].split(",")):
                if op:
                    entries.setdefault((domain, op), set()).update(opsets)
        if not entries:
            raise InvalidParameterError(
                f"Operator set {source}: lists no operators; got an empty file, expected at "
                "least one 'domain;opset;Op' line."
            )
        return cls(source=source, entries={k: frozenset(v) for k, v in entries.items()})

    def supports(self, op: OpUse) -> bool:
        """Whether ``op`` is supported at the model's opset for its domain."""
        opsets = self.entries.get((normalize_domain(op.domain), op.op_type))
        if opsets is None:
            return False
        return _ANY_OPSET in opsets or op.opset is None or op.opset in opsets

    def check(self, nodes: Iterable[NodeUse]) -> list[NodeFallback]:
        """The nodes whose operator the file does not list at the model's opset."""
        out: list[NodeFallback] = []
        for node in nodes:
            if self.supports(node.op):
                continue
            opsets = self.entries.get((node.domain, node.op_type))
            if opsets:
                listed = ", ".join(str(v) for v in sorted(opsets))
                reason, detail = "opset", f"{self.source} lists it at opsets {listed}"
            else:
                reason, detail = "op_type", f"not in {self.source}"
            out.append(
                NodeFallback(
                    node.name, f"{node.domain}:{node.op_type}", node.opset, (reason,), detail
                )
            )
        return out

    def unsupported(self, ops: Iterable[OpUse]) -> list[str]:
        """Describe each operator in ``ops`` that the target does not support, sorted.

        An operator whose type is supported at other opsets is reported with the opsets that
        would work, e.g. ``ai.onnx:Add (opset 17; supported at opsets 12, 13)``.
        """
        missing: list[str] = []
        for op in sorted(set(ops)):
            if self.supports(op):
                continue
            opsets = self.entries.get((normalize_domain(op.domain), op.op_type))
            if opsets:
                listed = ", ".join(str(v) for v in sorted(opsets))
                missing.append(
                    f"{normalize_domain(op.domain)}:{op.op_type} (opset {op.opset}; "
                    f"supported at opsets {listed})"
                )
            else:
                missing.append(OpUse(normalize_domain(op.domain), op.op_type, op.opset).describe())
        return missing


def describe_unsupported(findings: Sequence[NodeFallback]) -> tuple[str, ...]:
    """One line per operator and reason, naming its nodes: the report's ``unsupported_ops``.

    Grouped, so that a model with hundreds of nodes of one unsupported operator gives one
    readable line, e.g. ``com.example:MyOp (opset 1) at node 'my_op': operator unknown to
    onnxruntime 1.32.0``.
    """
    groups: dict[tuple[str, int | None, str], list[str]] = {}
    for f in findings:
        groups.setdefault((f.op, f.opset, f.detail), []).append(f.node)
    lines = []
    for (op, opset, detail), names in groups.items():
        shown = ", ".join(repr(n) for n in names[:_NAMES_SHOWN])
        more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
        where = f"node {shown}" if len(names) == 1 else f"{len(names)} nodes {shown}{more}"
        version = "" if opset is None else f" (opset {opset})"
        lines.append(f"{op}{version} at {where}: {detail}")
    return tuple(lines)


def node_label(name: str, op_type: str, index: int) -> str:
    """A node's name, or ``<OpType #index>`` for an unnamed node, so every finding names one."""
    return name or f"<{op_type} #{index}>"


def _parse_opsets(field: str, *, source: str, number: int) -> set[int]:
    if field == "*":
        return {_ANY_OPSET}
    try:
        opsets = {int(v) for v in field.split(",") if v.strip()}
    except ValueError:
        opsets = set()
    if not opsets or min(opsets) < 1:
        raise InvalidParameterError(
            f"Operator set {source}, line {number}: bad opset field; got {field!r}, expected "
            "positive integers separated by commas, or '*' for any opset."
        )
    return opsets


def _strip_type_annotations(line: str) -> str:
    """Drop ``{...}`` type annotations (nested JSON) that follow operator names."""
    kept: list[str] = []
    depth = 0
    for char in line:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif depth == 0:
            kept.append(char)
    return "".join(kept)
