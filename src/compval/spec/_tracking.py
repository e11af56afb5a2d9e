"""The spec's ``tracking:`` section: where run sinks log and where model URIs resolve.

Only names and addresses live here; the trackers themselves (MLflow, Weights & Biases,
ClearML) are optional packages that ``compval.reports`` and ``compval.adapters`` import when
a run uses them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrackingSpec"]


class TrackingSpec(BaseModel):
    """Experiment trackers: the MLflow tracking URI and the project runs are logged under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: str | None = Field(
        default=None,
        min_length=1,
        description="MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, databricks). "
        "Used by --mlflow when neither the flag nor MLFLOW_TRACKING_URI names one, and to "
        "resolve models:/ and runs:/ model paths.",
    )
    project: str = Field(
        default="compval",
        min_length=1,
        description="MLflow experiment, Weights & Biases project and ClearML project name.",
    )
