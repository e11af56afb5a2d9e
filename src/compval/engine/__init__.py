"""The engine: the orchestrators that join models, data, tasks, checks and profiling.

* ``run_validation(spec)``: a full acceptance run -> :class:`~compval.results.Report`;
* ``profile_files(ProfileRequest(...), settings)``: ``compval profile``'s run -> Report.

The CLI and the Python API call these; nothing else orchestrates.
"""

from __future__ import annotations

from compval.engine._profile import ProfileRequest, profile_files
from compval.engine._validate import RunOptions, run_validation

__all__ = ["ProfileRequest", "RunOptions", "profile_files", "run_validation"]
