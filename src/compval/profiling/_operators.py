"""Operator sets of deployment targets, and the check of a model's operators against them.

An operator set is written in ONNX Runtime's reduced-build configuration format, one line per
``<domain>;<opsets>;<op>[,<op>...]``, so that the file a custom ORT build was made from can be
used as a target directly::

    # comment
    ai.onnx;12,13;Add,Conv,MatMul
    com.microsoft;1;QLinearAdd

Per-operator type annotations (``Cast{"inputs": ...}``) and the ``!globally_allowed_types``
line are accepted and ignored: compval checks operators and opsets, not tensor types. An opset
field of ``*`` means every opset. As in ORT's own mobile-package check, an operator is
supported when the model's opset import for the operator's domain is one of the opsets listed
for it: a model importing ``ai.onnx`` opset 17 is not covered by a list made for opsets 12-15.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from compval.errors import InvalidParameterError

__all__ = ["BUILTIN_OPERATOR_SETS", "OpUse", "OperatorSet", "load_operator_set"]

#: Operator sets shipped with compval: name -> file under ``compval/profiling/targets``.
BUILTIN_OPERATOR_SETS: Mapping[str, str] = {"ort_mobile": "ort_mobile_ops.txt"}

_ANY_OPSET = -1


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
class OperatorSet:
    """The operators a deployment target supports.

    Attributes:
        source: Where the set came from (built-in name or file path), for messages.
        entries: ``(domain, op_type)`` -> opsets it is supported for (``-1`` means any).
    """

    source: str
    entries: Mapping[tuple[str, str], frozenset[int]]

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


def load_operator_set(
    name_or_path: str | Path, *, base_dir: str | Path | None = None
) -> OperatorSet:
    """Load a built-in operator set by name (``ort_mobile``) or one from a file.

    Args:
        name_or_path: A key of ``BUILTIN_OPERATOR_SETS`` or a path to a configuration file.
        base_dir: Directory that relative paths are resolved against (default: the working
            directory); the spec loader passes the spec file's directory.

    Raises:
        InvalidParameterError: The file does not exist or is malformed.
    """
    key = str(name_or_path)
    if key in BUILTIN_OPERATOR_SETS:
        resource = resources.files("compval.profiling") / "targets" / BUILTIN_OPERATOR_SETS[key]
        return OperatorSet.parse(resource.read_text(encoding="utf-8"), source=key)
    path = Path(key)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise InvalidParameterError(
            f"Operator set: file not found; got {str(path)!r}, expected a built-in name "
            f"({', '.join(BUILTIN_OPERATOR_SETS)}) or an existing file. Check the path (relative "
            "paths are resolved against the spec's directory)."
        )
    return OperatorSet.parse(path.read_text(encoding="utf-8"), source=str(path))


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
