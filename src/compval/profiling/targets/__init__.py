"""What a deployment target's runtime can run: operator sets and execution-provider support.

* ``load_operator_set("ort_mobile")`` is ``OrtCpuKernels``: the installed onnxruntime's own CPU
  kernel registrations (what ONNX Runtime's full Android and iOS packages run), so a model at
  any opset that onnxruntime implements passes, and nothing is kept by hand;
* ``load_operator_set(path)`` reads a custom build's reduced-build configuration file
  (``OperatorSet``);
* ``mobile_ep_support(path, name=...)`` says which nodes NNAPI and CoreML would leave to the
  CPU, with the tables and rule of onnxruntime's mobile usability checker.

Verified with onnxruntime 1.17.3, 1.20.1 and 1.32.0 (see docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from compval.errors import InvalidParameterError
from compval.profiling._operators import OperatorSet, OperatorSupport
from compval.profiling.targets._ort_eps import MOBILE_EPS, mobile_ep_support
from compval.profiling.targets._ort_kernels import OrtCpuKernels

__all__ = [
    "BUILTIN_OPERATOR_SETS",
    "MOBILE_EPS",
    "OrtCpuKernels",
    "load_operator_set",
    "mobile_ep_support",
]

#: Built-in operator sets: name -> what it is.
BUILTIN_OPERATOR_SETS: Mapping[str, str] = MappingProxyType(
    {
        "ort_mobile": "the installed onnxruntime's CPU kernel registrations, which ONNX "
        "Runtime's full Android and iOS packages of the same version run",
    }
)


def load_operator_set(
    name_or_path: str | Path, *, base_dir: str | Path | None = None
) -> OperatorSupport:
    """A built-in operator set by name (``ort_mobile``), or one read from a config file.

    Args:
        name_or_path: A key of ``BUILTIN_OPERATOR_SETS`` or a path to an ONNX Runtime
            reduced-build configuration file.
        base_dir: Directory that relative paths are resolved against (default: the working
            directory); the spec loader passes the spec file's directory.

    Raises:
        InvalidParameterError: The file does not exist or is malformed.
    """
    key = str(name_or_path)
    if key == "ort_mobile":
        return OrtCpuKernels(key)
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
