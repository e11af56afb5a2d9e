"""Tests of the acceptance spec: load_spec for YAML and TOML, the models, and their errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from compval.checks import resolve_criteria
from compval.errors import SpecError, SpecParseError, SpecValidationError
from compval.spec import (
    STARTER_SPEC,
    AcceptanceSpec,
    CriterionSpec,
    LoadedSpec,
    load_spec,
    parse_spec,
    spec_from_mapping,
)

YAML_SPEC = """\
version: 1
task: classification
reference: {name: fp32, path: models/fp32.onnx}
candidates:
  - {name: int8, path: models/int8.onnx, threads: 2}
data: {path: data/val.parquet, labels: label, segments: [region, device]}
batch_size: 64
seed: 7
statistics: {replicates: 500, confidence: 0.9, min_rows: 50, correction: bh, inconclusive: warn}
criteria:
  - {id: accuracy, metric: accuracy_score, max_drop: 0.01}
  - {id: per-segment, metric: accuracy_score, max_drop: 0.03, segment: "*"}
  - {id: agreement, metric: top1_agreement, compare: candidate, op: ">=", threshold: 0.98}
"""

TOML_SPEC = """\
version = 1
task = "classification"
batch_size = 64
seed = 7

[reference]
name = "fp32"
path = "models/fp32.onnx"

[[candidates]]
name = "int8"
path = "models/int8.onnx"
threads = 2

[data]
path = "data/val.parquet"
labels = "label"
segments = ["region", "device"]

[statistics]
replicates = 500
confidence = 0.9
min_rows = 50
correction = "bh"
inconclusive = "warn"

[[criteria]]
id = "accuracy"
metric = "accuracy_score"
max_drop = 0.01

[[criteria]]
id = "per-segment"
metric = "accuracy_score"
max_drop = 0.03
segment = "*"

[[criteria]]
id = "agreement"
metric = "top1_agreement"
compare = "candidate"
op = ">="
threshold = 0.98
"""


def _minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "reference": {"path": "ref.onnx"},
        "candidates": [{"path": "cand.onnx"}],
        "data": {"path": "data.parquet", "labels": "y"},
    }
    data.update(overrides)
    return data


def test_yaml_and_toml_load_to_the_same_spec(tmp_path: Path) -> None:
    yaml_path = tmp_path / "spec.yaml"
    toml_path = tmp_path / "spec.toml"
    yaml_path.write_text(YAML_SPEC)
    toml_path.write_text(TOML_SPEC)

    from_yaml, from_toml = load_spec(yaml_path), load_spec(toml_path)

    assert from_yaml.spec == from_toml.spec
    spec = from_yaml.spec
    assert spec.reference.name == "fp32"
    assert spec.candidates[0].threads == 2
    assert spec.data.segments == ["region", "device"]
    assert (spec.batch_size, spec.seed) == (64, 7)
    assert spec.statistics.replicates == 500
    assert spec.statistics.correction == "bh"
    assert spec.criteria[2].op == ">="
    assert spec.criteria[1].segment == "*"


def test_loaded_spec_records_path_base_dir_and_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "spec.yml"
    path.parent.mkdir()
    path.write_text(YAML_SPEC)

    loaded = load_spec(str(path))

    assert isinstance(loaded, LoadedSpec)
    assert loaded.path == path.resolve()
    assert loaded.base_dir == path.resolve().parent
    assert loaded.hash == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(YAML_SPEC.replace("seed: 7", "seed: 8"))
    assert load_spec(path).hash != loaded.hash


def test_defaults_are_the_documented_ones() -> None:
    spec = spec_from_mapping(_minimal())
    assert spec.task.type == "classification"
    assert spec.task.outputs == "auto"
    assert spec.batch_size == 256
    assert spec.seed == 0
    assert spec.allow_nonfinite is False
    assert spec.criteria == []
    assert spec.performance is None
    assert spec.reference.adapter == "auto"
    assert spec.reference.allow_pickle is False
    stats = spec.statistics
    assert (stats.replicates, stats.confidence, stats.min_rows) == (2000, 0.95, 30)
    assert (stats.correction, stats.inconclusive, stats.discovery) == ("holm", "block", True)
    criterion = CriterionSpec(id="a", metric="accuracy_score", max_drop=0.01)
    assert (criterion.statistic, criterion.segment, criterion.severity) == ("auto", None, "error")


def test_statistics_seed_defaults_to_the_spec_seed() -> None:
    assert spec_from_mapping(_minimal(seed=5)).statistics_seed == 5
    assert spec_from_mapping(_minimal(seed=5, statistics={"seed": 9})).statistics_seed == 9


def test_shorthands_candidate_and_task_string() -> None:
    data = _minimal(task="regression")
    data["candidate"] = data.pop("candidates")[0]
    spec = spec_from_mapping(data)
    assert spec.task.type == "regression"
    assert [c.path for c in spec.candidates] == ["cand.onnx"]


def test_spec_models_are_frozen() -> None:
    spec = spec_from_mapping(_minimal())
    with pytest.raises(ValueError, match="frozen"):
        spec.seed = 3


def test_starter_spec_is_valid_and_its_criteria_resolve() -> None:
    spec = parse_spec(STARTER_SPEC, fmt="yaml", source="starter")
    assert spec == spec_from_mapping(yaml.safe_load(STARTER_SPEC))
    assert spec.statistics.replicates == 2000
    criteria = resolve_criteria(spec.criteria, task=spec.task.type, resampling=True)
    by_id = {c.id: c for c in criteria}
    assert by_id["accuracy"].threshold == -0.01
    assert by_id["kl"].severity == "warn"
    assert "nonfinite-outputs" in by_id


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "path", "expected"),
    [
        (lambda d: d.update(criterai=[]), "criterai", "unknown key"),
        (lambda d: d["reference"].update(pth="x.onnx"), "reference.pth", "unknown key"),
        (lambda d: d["data"].update(lables="y"), "data.lables", "unknown key"),
        (lambda d: d.update(statistics={"replicats": 5}), "statistics.replicats", "unknown key"),
        (
            lambda d: d.update(criteria=[{"id": "a", "metric": "accuracy_score", "max_dorp": 1}]),
            "criteria[0].max_dorp",
            "unknown key",
        ),
        (lambda d: d.pop("reference"), "reference", "required key is missing"),
        (lambda d: d.pop("version"), "version", "required key is missing"),
        (lambda d: d.update(candidates=[]), "candidates", "at least 1"),
        (lambda d: d.update(batch_size=0), "batch_size", "greater than or equal to 1"),
        (
            lambda d: d.update(statistics={"confidence": 1.5}),
            "statistics.confidence",
            "less than 1",
        ),
        (
            lambda d: d.update(statistics={"replicates": -1}),
            "statistics.replicates",
            "greater than",
        ),
        (
            lambda d: d.update(candidate={"path": "b.onnx"}),
            "(top level)",
            "give 'candidate' or 'candidates', not both",
        ),
        (
            lambda d: d.update(
                criteria=[{"id": "has space", "metric": "accuracy_score", "min": 0.9}]
            ),
            "criteria[0].id",
            "should match pattern",
        ),
        (
            lambda d: d.update(
                criteria=[
                    {"id": "a", "metric": "accuracy_score", "min": 0.9},
                    {"id": "a", "metric": "accuracy_score", "min": 0.8},
                ]
            ),
            "criteria",
            "'a' is used twice",
        ),
    ],
)
def test_validation_errors_name_the_field_path(mutate: Any, path: str, expected: str) -> None:
    data = _minimal()
    mutate(data)
    with pytest.raises(SpecValidationError, match=r"my\.yaml: invalid spec") as info:
        spec_from_mapping(data, source="my.yaml")
    assert info.value.path == path
    assert f"{path}: " in str(info.value)
    assert expected in str(info.value)


def test_many_errors_are_summarised() -> None:
    data = {"version": 1, **{f"extra{i}": i for i in range(9)}}
    with pytest.raises(SpecValidationError, match=r"\.\.\. and \d+ more") as info:
        spec_from_mapping(data)
    assert str(info.value).count("unknown key") == 6


@pytest.mark.parametrize("data", [None, [1, 2], "version: 1"])
def test_a_spec_must_be_a_mapping(data: Any) -> None:
    with pytest.raises(
        SpecValidationError, match=r"src: the spec must be a mapping .*compval init"
    ):
        spec_from_mapping(data, source="src")


def test_yaml_syntax_error_carries_file_and_line() -> None:
    text = "version: 1\nreference:\n  path: [a, b\ncandidates: []\n"
    with pytest.raises(SpecParseError, match=r"f\.yaml: line \d+: not valid YAML") as info:
        parse_spec(text, fmt="yaml", source="f.yaml")
    assert info.value.file == "f.yaml"
    assert info.value.line is not None and 3 <= info.value.line <= 4


def test_toml_syntax_error_names_the_file() -> None:
    with pytest.raises(SpecParseError, match=r"f\.toml: not valid TOML: .*line 2") as info:
        parse_spec("version = 1\nreference = {path = \n", fmt="toml", source="f.toml")
    assert info.value.file == "f.toml"


def test_missing_file_suggests_init(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    with pytest.raises(
        SpecValidationError, match=r"spec file not found\. Create one with `compval init"
    ):
        load_spec(missing)
    with pytest.raises(SpecValidationError, match="spec file not found"):
        load_spec(tmp_path)  # a directory is not a spec file


def test_non_utf8_file_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecParseError, match="cannot read the spec"):
        load_spec(path)


def test_spec_errors_are_value_errors_for_python_callers() -> None:
    with pytest.raises(ValueError):
        spec_from_mapping({"version": 1})
    assert issubclass(SpecParseError, SpecError)


def test_duplicate_yaml_keys_are_errors() -> None:
    text = (
        "version: 1\nreference: {path: a.onnx}\ncandidates: [{path: b.onnx}]\n"
        "data: {path: d.parquet, labels: y}\n"
        "criteria:\n  - {id: strict, metric: accuracy_score, max_drop: 0.01}\n"
        "criteria: []\n"
    )
    with pytest.raises(
        SpecParseError, match=r"dup\.yaml: line 7: .*duplicate key 'criteria'"
    ) as info:
        parse_spec(text, fmt="yaml", source="dup.yaml")
    assert info.value.line == 7
    assert "line 5" in str(info.value)  # where the first one is


def test_acceptance_spec_can_be_built_in_python() -> None:
    spec = AcceptanceSpec(
        version=1,
        reference={"name": "ref"},  # type: ignore[arg-type]
        candidates=[{"name": "cand"}],  # type: ignore[list-item]
        data={"path": "in-memory"},  # type: ignore[arg-type]
        criteria=[CriterionSpec(id="a", metric="accuracy_score", max_drop=0.01)],
    )
    assert spec.reference.path is None
    assert spec.criteria[0].max_drop == 0.01
