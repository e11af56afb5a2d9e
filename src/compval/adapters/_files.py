"""Small file helpers shared by the file-based adapters.

A content hash, an existence check, and a description of what a file actually contains (for
error messages that say "got a TorchScript archive, expected an ONNX model"). Nothing here
loads a model or unpickles anything.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from compval.errors import InvalidParameterError, ModelLoadError

__all__ = ["check_threads", "describe_file", "require_file", "sha256_file", "zip_names"]

_CHUNK_BYTES = 1 << 20


def check_threads(name: str, threads: int | None) -> None:
    """Raise InvalidParameterError unless ``threads`` is None or an int >= 1."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidParameterError(
            f"Model {name!r}: 'threads' must be an int >= 1 or None; got {threads!r}. "
            "Leave it unset to use the runtime's default."
        )


def require_file(path: Path, *, what: str, hint: str | None = None) -> None:
    """Raise ModelLoadError unless ``path`` is an existing regular file."""
    if path.is_file():
        return
    found = "a directory" if path.is_dir() else "a path that does not exist"
    fix = "Check the path" + (f"; {hint}." if hint else ".")
    problem = "is a directory" if path.is_dir() else "file not found"
    raise ModelLoadError(
        f"{what} {str(path)!r}: {problem}; got {found}, expected an existing file. {fix}"
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks so large models stay out of RAM."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path) -> str:
    """Say what a file appears to contain, for error messages (never unpickles anything).

    Example:
        ``"a torch.save checkpoint (a pickle in a zip archive) of 1234 bytes"``
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror or exc})"
    if size == 0:
        return "an empty file (0 bytes)"
    return f"{_kind_of(path, head)} of {size} bytes"


def zip_names(path: Path) -> list[str] | None:
    """The member names of a zip archive, or None when ``path`` is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _kind_of(path: Path, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        names = zip_names(path)
        if names is None:
            return "a damaged zip archive"
        if any(n.endswith("constants.pkl") for n in names):
            return "a TorchScript archive"
        if any(n.endswith("archive_format") for n in names):
            return "a torch.export .pt2 archive"
        if any(n.endswith("data.pkl") for n in names):
            return "a torch.save checkpoint (a pickle in a zip archive)"
        return "a zip archive"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    if head.startswith((b"\x1f\x8b", b"ZF", b"x\x9c", b"x\x01", b"x\xda")):
        return "a compressed file (gzip/zlib; e.g. a compressed joblib pickle)"
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a cut multibyte char
    if text and "\ufffd" not in text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"a text file starting with {text[:32]!r}"
    if head[:1] == b"\x08":
        return "binary data that looks like a protobuf message"
    return f"unrecognised binary data (starting with {head[:8].hex()})"
