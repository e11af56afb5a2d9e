"""The engine: the orchestrators that join models, data, tasks, checks and profiling.

* ``run_validation(spec)``: a full acceptance run -> :class:`~compval.results.Report`;
* ``profile_files(ProfileRequest(...), settings)``: ``compval profile``'s run -> Report.

The CLI and the Python API call these; nothing else orchestrates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compval._public import name_public_functions
from compval.engine._validate import RunOptions, run_validation

if TYPE_CHECKING:
    from compval.engine._profile import ProfileRequest, profile_files

__all__ = ["ProfileRequest", "RunOptions", "profile_files", "run_validation"]

name_public_functions(__name__, globals(), __all__)


def __getattr__(name: str) -> Any:
    # ``compval profile``'s engine (and the profiling package under it) loads on first use:
    # a validation without a performance section never imports it.
    if name in ("ProfileRequest", "profile_files"):
        from compval.engine import _profile

        value = getattr(_profile, name)
        globals()[name] = value  # found directly from now on
        name_public_functions(__name__, globals(), [name])
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
