"""The ``performance:`` section of the acceptance spec (placeholder for the profiler work)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["PerformanceSpec"]


class PerformanceSpec(BaseModel):
    """Performance settings and budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
