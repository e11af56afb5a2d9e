"""``load_spec``: the one loader for YAML and TOML acceptance specs."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from compval.errors import SpecParseError, SpecValidationError
from compval.spec._model import AcceptanceSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["LoadedSpec", "load_spec", "parse_spec", "spec_from_mapping", "validation_error"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys.

    Plain YAML keeps the last of two equal keys silently, so a second ``criteria:`` block would
    replace the first and its gates would vanish.
    """


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (the first is at line {seen[key].start_mark.line + 1}); "
                "merge the two blocks",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


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
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def spec_from_mapping(data: Any, *, source: str = "spec") -> AcceptanceSpec:
    """Validate a parsed mapping into an AcceptanceSpec.

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
        raise validation_error(exc, source=source, what="invalid spec") from None


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
        got = err.get("input")
        got_text = (
            ""
            if err["type"] in ("missing", "extra_forbidden")
            or isinstance(got, dict)
            or "; got " in msg
            else f"; got {got!r}"
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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f" line {line}" if line else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecParseError(
            f"{source}:{where}: not valid YAML: {problem}."
            + ("" if "duplicate key" in str(problem) else " Check indentation and quoting."),
            file=source,
            line=line,
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecParseError(f"{source}: not valid TOML: {exc}.", file=source) from None
    return spec_from_mapping(data, source=source)


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate a ``.yaml``/``.yml``/``.toml`` spec file.

    Raises:
        SpecError: The file is missing, unreadable, not YAML/TOML, or not a valid spec.
    """
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
