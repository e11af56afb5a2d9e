"""The ``numerics:`` section of the acceptance spec: where a candidate's error arises.

Example::

    numerics:
      sample: 256                 # rows, drawn with the spec's seed
      sqnr_threshold_db: 20       # first_divergent: the first tensor below this
    criteria:
      - {id: layers, metric: layer_min_sqnr_db, min: 20}
      - {id: batch, metric: batch_consistency_flip_rate, max: 0.0}

The gateable metrics are named in ``NUMERICS_METRIC_DIRECTIONS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from compval.spec._types import SpecBool, SpecFloat, SpecInt

__all__ = ["MAX_NUMERICS_SAMPLE", "NUMERICS_METRIC_DIRECTIONS", "NumericsSpec"]

#: The sample is held in memory with every intermediate tensor of both models.
MAX_NUMERICS_SAMPLE = 100_000

#: Gateable numerics metrics -> higher_is_better (one value per candidate, no interval).
NUMERICS_METRIC_DIRECTIONS: Mapping[str, bool] = MappingProxyType(
    {
        "layer_min_sqnr_db": True,
        "saturation_rate": False,
        "overflow_rate": False,
        "flush_to_zero_rate": False,
        "batch_consistency_flip_rate": False,
        "batch_consistency_max_abs_diff": False,
        "run_consistency_max_abs_diff": False,
    }
)


class NumericsSpec(BaseModel):
    """Per-layer error localization, QDQ saturation and batch consistency on a sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: SpecInt = Field(
        default=256,
        ge=1,
        le=MAX_NUMERICS_SAMPLE,
        description="Rows analysed, drawn without replacement with the spec's seed (all rows "
        "when the data has fewer). Memory grows with it: every intermediate tensor of both "
        "models is kept for these rows.",
    )
    sqnr_threshold_db: SpecFloat = Field(
        default=20.0,
        description="numerics.first_divergent is the first tensor, in the reference's "
        "topological order, whose SQNR (dB) is below this.",
    )
    layers: SpecBool = Field(
        default=True,
        description="Compare every intermediate tensor (ONNX reference and candidate) and "
        "measure QuantizeLinear saturation.",
    )
    feature_ranges: SpecBool = Field(
        default=True,
        description="Search every input feature's top and bottom 5% of the sample rows for "
        "a significantly larger output error (a permutation test adjusted for all features).",
    )
    batch_consistency: SpecBool = Field(
        default=True,
        description="Run the candidate at batch 1 and at the spec's batch size on the sample, "
        "and twice at the batch size.",
    )
