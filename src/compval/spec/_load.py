"""``load_spec``: the one loader for YAML and TOML acceptance specs.

YAML anchors and aliases (``&base``, ``*base``, ``<<: *base``) are allowed, but the document
they expand to is capped at ``MAX_SPEC_NODES`` nodes: a 1 KB file of nested aliases (a "billion
laughs" bomb) would otherwise expand to gigabytes in validation and in the error message that
quotes it. Every value an error message quotes is cut to about 200 characters (``echo``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from compval.errors import InvalidParameterError, SpecParseError, SpecValidationError
from compval.spec._model import AcceptanceSpec
from compval.spec._types import echo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "MAX_SPEC_NODES",
    "LoadedSpec",
    "load_spec",
    "parse_spec",
    "spec_from_mapping",
    "validation_error",
]

#: The most nodes (scalars, lists, mappings) a YAML spec may expand to, aliases expanded.
#: A large hand-written spec has a few thousand.
MAX_SPEC_NODES = 100_000
#: The longest pydantic message kept per error line (they do not quote values, but a
#: pattern or a list of choices could be long).
_MAX_MESSAGE_CHARS = 400


class _RefusedYaml(yaml.MarkedYAMLError):
    """Valid YAML that a spec may not use (an alias bomb, a duplicate key)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys.

    Plain YAML keeps the last of two equal keys silently, so a second ``criteria:`` block would
    replace the first and its gates would vanish. It also refuses alias bombs (see
    ``_check_expansion``) before anything walks the document.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base`: flatten_mapping merges it; explicit keys then override
        key = loader.construct_object(key_node)
        if key in seen:
            raise _RefusedYaml(
                None,
                None,
                f"duplicate key {echo(key)} (the first is at line "
                f"{seen[key].start_mark.line + 1}); merge the two blocks",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_SPEC_NODES nodes.

    PyYAML shares one object per anchor, so the parsed data is small; it is everything that
    walks it (validation, ``repr`` in an error message) that would expand every alias. The
    expanded size is counted on the node graph, each node once (memoised), so a bomb is
    refused after a few hundred steps instead of 10^9. A recursive alias expands forever and
    is refused too.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_SPEC_NODES:
                raise _RefusedYaml(
                    None,
                    None,
                    f"the aliases (*name) in this spec expand it to more than "
                    f"{MAX_SPEC_NODES:,} values; write the repeated parts out, or use fewer "
                    "nested aliases",
                    node.start_mark,
                )
            continue
        if key in on_path:
            raise _RefusedYaml(
                None,
                None,
                "a recursive alias (an anchor used inside itself) cannot be a spec value",
                node.start_mark,
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class LoadedSpec:
    """A validated spec with where it came from (paths in it are relative to ``base_dir``)."""

    def __init__(self, spec: AcceptanceSpec, *, path: Path | None, text_hash: str | None) -> None:
        self.spec = spec
        self.path = path
        self.base_dir = path.parent if path is not None else Path.cwd()
        self.hash = text_hash


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A key comes from the file: an unknown key may be arbitrarily long.
            text = str(part)
            text = _cut(text, 80)
            out += f".{text}" if out else text
    return out or "(top level)"


def spec_from_mapping(
    data: Any, *, source: str = "spec", what: str = "invalid spec"
) -> AcceptanceSpec:
    """Validate a parsed mapping into an AcceptanceSpec.

    Args:
        data: The parsed spec.
        source: What the message names first: the file, or the command that built the spec.
        what: The message's heading, e.g. "invalid arguments" for a spec built from flags.

    Raises:
        SpecValidationError: With the field path of the first problems, e.g.
            ``criteria[2].threshold``; unknown keys are errors.
    """
    if not isinstance(data, Mapping):
        raise SpecValidationError(
            f"{source}: the spec must be a mapping of keys (version, reference, candidates, "
            f"data, criteria ...); got {type(data).__name__}. Start from `compval init`."
        )
    try:
        return AcceptanceSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc, source=source, what=what) from None


def validation_error(
    exc: ValidationError, *, source: str, what: str, flag_names: bool = False
) -> SpecValidationError:
    """One SpecValidationError listing pydantic's errors by field path, in compval's words.

    With ``flag_names`` the paths are written as command-line flags (``--batch-sizes``).
    """
    lines = []
    first_path = None
    for err in exc.errors()[:6]:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc(loc)
        if flag_names:
            path = "--" + path.split(".")[0].split("[")[0].replace("_", "-") if loc else "flags"
        first_path = first_path or path
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = (
                "unknown key (check its spelling: unknown keys are errors, so a typo "
                "cannot pass silently)"
            )
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if len(msg) > _MAX_MESSAGE_CHARS:
            msg = msg[: _MAX_MESSAGE_CHARS - 1] + "…"
        got = err.get("input")
        got_text = (
            ""
            if err["type"] in ("missing", "extra_forbidden")
            or isinstance(got, dict)
            or "; got " in msg
            else f"; got {echo(got)}"
        )
        lines.append(f"{path}: {msg}{got_text}" if loc or not flag_names else f"{msg}{got_text}")
    more = len(exc.errors()) - len(lines)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return SpecValidationError(
        f"{source}: {what}:\n  " + "\n  ".join(lines) + tail, path=first_path
    )


def parse_spec(text: str, *, fmt: str, source: str = "spec") -> AcceptanceSpec:
    """Parse YAML or TOML text into an AcceptanceSpec."""
    try:
        if fmt == "toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        # PyYAML composes nested blocks recursively: thousands of levels exhaust the stack.
        raise SpecParseError(
            f"{source}: the spec is nested too deeply to read; a spec needs a few levels "
            "(criteria: [{...}]). Check for unclosed brackets.",
            file=source,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f" line {line}" if line else ""
        problem = _cut(str(getattr(exc, "problem", None) or exc), 300)
        refused = isinstance(exc, _RefusedYaml)
        syntax = isinstance(exc, (yaml.scanner.ScannerError, yaml.parser.ParserError))
        raise SpecParseError(
            f"{source}:{where}: "
            + (f"{problem}." if refused else f"not valid YAML: {problem}.")
            + (" Check indentation and quoting." if syntax else ""),
            file=source,
            line=line,
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecParseError(f"{source}: not valid TOML: {exc}.", file=source) from None
    return spec_from_mapping(data, source=source)


def load_spec(path: str | os.PathLike[str] | Mapping[str, Any]) -> LoadedSpec:
    """Load and validate a ``.yaml``/``.yml``/``.toml`` spec file, or a spec mapping.

    Args:
        path: The spec file, or a mapping with the same keys as the file (paths in it are
            then relative to the current directory), e.g. ``{"version": 1, ...}``.

    Raises:
        SpecError: The file is missing, unreadable, not YAML/TOML, or not a valid spec.
        InvalidParameterError: ``path`` is neither a path nor a mapping.
    """
    if isinstance(path, Mapping):
        return LoadedSpec(spec_from_mapping(path, source="spec"), path=None, text_hash=None)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"load_spec: expected a spec file path, a mapping or an AcceptanceSpec; got "
            f"{type(path).__name__}. Pass 'compval.yaml', a dict such as "
            "{'version': 1, ...}, or AcceptanceSpec(...)."
        )
    p = Path(path)
    if not p.is_file():
        raise SpecValidationError(
            f"{p}: spec file not found. Create one with `compval init {p}`.", path=str(p)
        )
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecParseError(f"{p}: cannot read the spec: {exc}.", file=str(p)) from None
    fmt = "toml" if p.suffix.lower() == ".toml" else "yaml"
    spec = parse_spec(text, fmt=fmt, source=str(p))
    return LoadedSpec(spec, path=p.resolve(), text_hash=hashlib.sha256(raw).hexdigest())
