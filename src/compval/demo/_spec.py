"""The demo's acceptance spec, written as commented YAML next to the models and data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from compval.errors import InternalError

__all__ = ["SPEC_FILE_NAME", "render_spec", "write_spec"]

SPEC_FILE_NAME = "demo.yaml"

_CANDIDATE_NOTES = {
    "int8_dynamic": "int8 weights, activations quantized at run time (quantize_dynamic)",
    "int8_static": "int8 weights and activations, QDQ, calibrated on 300 rows (quantize_static)",
    "pruned50": "50% smallest-magnitude weights of each layer zeroed, stored dense",
    "distilled": "one hidden layer of 24 units, trained to match the reference's logits",
}

_CRITERIA = """\
criteria:
  # Overall accuracy may fall at most 2 points below the reference's.
  - {id: accuracy-overall, metric: accuracy_score, max_drop: 0.02}
  # No ink segment (light, medium, heavy) may lose more than 5 points: an average can hide a
  # segment that got much worse.
  - {id: accuracy-per-segment, metric: accuracy_score, max_drop: 0.05, segment: "*"}
  # Macro F1 weighs every digit equally, so a candidate cannot trade one class for the others.
  - {id: macro-f1, metric: macro_f1_score, max_drop: 0.02}
  # The candidate must predict the reference's class on at least 95% of rows, right or wrong.
  - {id: agreement, metric: top1_agreement, min: 0.95}
  # Mean KL(reference || candidate) over rows: how far the probabilities moved, not only the top
  # class. A warning, because calibrated confidence matters only to some consumers.
  - {id: kl, metric: mean_kl_divergence, max: 0.05, severity: warn}
  # Share of rows the reference got right and the candidate gets wrong, in every segment: the
  # regressions a user would notice, even when other rows improve enough to hide them.
  - {id: flips, metric: flip_correct_to_wrong_rate, max: 0.03, segment: "*", severity: warn}
# Speed and size as an edge device would see them: one intra-op thread, single requests and
# batches of 64, reference and candidate timed in alternating rounds so the speedup holds on a
# noisy machine. Budgets are criteria like any other.
performance:
  threads: 1
  batch_sizes: [1, 64]
  concurrency: [1, 2]
  min_duration_s: 0.25
  rounds: 8
  concurrency_duration_s: 0.5
  budgets:
    # Compression that does not shrink the file is not worth shipping here (a pruned model
    # stored dense keeps its size).
    - {id: model-size, metric: model_size_mb, max: 0.05}
    # The candidate should not be slower than the reference on batches of 64.
    - {id: not-slower, metric: "speedup[batch=64]", min: 1.0, severity: warn}
"""


def render_spec(
    *,
    reference: str,
    candidates: Mapping[str, str],
    data: str,
    seed: int,
) -> str:
    """The demo spec's YAML text, with a comment above each part explaining it.

    Args:
        reference: Path of the reference model, relative to the spec file.
        candidates: Candidate name -> model path relative to the spec file.
        data: Path of the validation Parquet file, relative to the spec file.
        seed: The seed the demo was built with; also the spec's resampling seed.

    Returns:
        The spec as YAML.
    """
    lines = [
        f"# compval demo acceptance spec, written by compval.demo.build_demo(seed={seed}).",
        "# A float32 MLP (64-128-64-10) trained on scikit-learn's digits, and compressed versions",
        "# of it made with real tools. Paths are relative to this file.",
        "version: 1",
        "# The models output softmax probabilities. Stated rather than detected: the static int8",
        "# model quantizes them to steps of 1/255, so its rows do not sum exactly to 1.",
        "task: {type: classification, outputs: probabilities}",
        f"reference: {{name: fp32, path: {reference}}}",
        "candidates:",
    ]
    for name, path in candidates.items():
        note = _CANDIDATE_NOTES.get(name)
        if note is not None:
            lines.append(f"  # {note}")
        lines.append(f"  - {{name: {name}, path: {path}}}")
    lines += [
        "# The held-out digits: 64 pixel columns px_0..px_63, the label, and the 'ink' segment",
        "# (light/medium/heavy: tertiles of total pixel intensity, edges from the training split).",
        f"data: {{path: {data}, labels: label, segments: [ink]}}",
        "batch_size: 64",
        f"seed: {seed}",
    ]
    return "\n".join(lines) + "\n" + _CRITERIA


def write_spec(path: Path, text: str) -> None:
    """Validate the spec text against ``AcceptanceSpec`` and write it.

    Args:
        path: Destination file.
        text: The YAML from ``render_spec``.

    Raises:
        InternalError: The text is not a valid spec: the template is wrong, a compval bug.
    """
    import pydantic
    import yaml

    from compval.spec import AcceptanceSpec

    try:
        AcceptanceSpec.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, pydantic.ValidationError) as exc:
        raise InternalError(
            "demo spec: the generated YAML is not a valid acceptance spec. This is a bug in "
            "compval.demo's spec template."
        ) from exc
    path.write_text(text, encoding="utf-8")
