"""The commented starter spec written by ``compval init``."""

from __future__ import annotations

__all__ = ["STARTER_SPEC"]

STARTER_SPEC = """\
# compval acceptance spec (version 1). Paths are relative to this file.
# Write the criteria BEFORE you compress: they are your pre-registered definition of "no worse".
version: 1

# classification | regression | generic (no labels: output fidelity only)
task: classification

reference:
  name: fp32
  # .onnx, TorchScript .pt, torch.export .pt2, or .joblib (with allow_pickle: true)
  path: models/model_fp32.onnx
  # threads: 4                        # intra-op threads

candidates:
  - name: int8
    path: models/model_int8.onnx

data:
  path: data/validation.parquet       # .parquet, .csv, .npz or .npy
  labels: label                       # label column
  segments: []                        # columns to report and gate per value, e.g. [region, device]
  # features: [f0, f1]                # default: every other column
  # max_segment_values: 1000          # a segment column with more values stops the run
# Several datasets: make 'data' a list of named ones; every metric and check is then scoped
# "dataset=<name>" (criteria pick datasets with 'dataset: <name>' or "*"; labels are optional).
# data:
#   - {name: validation, path: data/validation.parquet, labels: label}
#   - {name: production, path: data/production_sample.parquet}

batch_size: 256                       # part of the evaluation: dynamic INT8 models depend on it
                                      # (a model exported with a fixed batch needs its size)
seed: 0

statistics:
  replicates: 2000                    # bootstrap replicates; 0 turns intervals off
  confidence: 0.95
  min_rows: 30                        # smaller segments are reported as too small to decide
  correction: holm                    # holm | bh | none, across segments of one criterion
  inconclusive: block                 # block | warn

# Thresholds are fractions (0.01 = one point), never percents.
criteria:
  # Overall accuracy may drop by at most one point (non-inferiority on the interval).
  - {id: accuracy, metric: accuracy_score, max_drop: 0.01}
  # ...and by at most three points in any class or segment.
  - {id: accuracy-per-segment, metric: accuracy_score, max_drop: 0.03, segment: "*"}
  # The two models agree on the top class for at least 98% of rows.
  - {id: agreement, metric: top1_agreement, min: 0.98}
  # Explicit form of a criterion: metric, compare (candidate|reference|delta|ratio), op, threshold.
  - {id: macro-f1, metric: macro_f1_score, compare: delta, op: ">=", threshold: -0.01}
  # Warnings are reported but do not fail the run.
  - {id: kl, metric: mean_kl_divergence, max: 0.05, severity: warn}
"""
