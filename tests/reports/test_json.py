"""render_json and the report JSON Schema."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from compval.reports import render_json
from compval.results import SCHEMA_VERSION, Report

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_rendered_json_validates(report: Report, validator) -> None:
    text = render_json(report)
    assert text.endswith("}\n")
    data = json.loads(text)
    validator.validate(data)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data == json.loads(json.dumps(report.to_dict()))
    assert "NaN" not in text and "Infinity" not in text


def test_minimal_report_validates(run_factory, validator) -> None:
    report = Report(
        run=run_factory(spec_hash=None, spec_path=None), metrics=(), checks=(), candidates=()
    )
    validator.validate(json.loads(render_json(report)))


def test_profile_with_extra_keys_validates(report: Report, validator) -> None:
    data = report.to_dict()
    data["profile"]["extra_section"] = {"anything": [1, 2]}
    data["profile"]["models"]["fp32"]["gpu"] = "none"
    validator.validate(data)


def _drop(path: tuple[Any, ...]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_drop(("passed",)), "'passed' is a required property"),
        (_drop(("candidates",)), "'candidates' is a required property"),
        (_drop(("run", "seed")), "'seed' is a required property"),
        (_drop(("metrics", 0, "n")), "'n' is a required property"),
        (_drop(("metrics", 0, "segment")), "'segment' is a required property"),
        (_drop(("checks", 0, "blocking")), "'blocking' is a required property"),
        (_drop(("checks", 0, "criterion")), "'criterion' is a required property"),
        (_set(("schema_version",), 2), "1 was expected"),
        (_set(("checks", 0, "verdict"), "maybe"), "'maybe' is not one of"),
        (_set(("checks", 0, "severity"), "fatal"), "'fatal' is not one of"),
        (_set(("metrics", 0, "n"), -1), "-1 is less than the minimum of 0"),
        (_set(("metrics", 0, "delta"), "0.1"), "'0.1' is not of type 'number', 'null'"),
        (_set(("profile", "models", "fp32", "latency"), {}), "{} is not of type 'array'"),
        (_set(("profile", "speedup", 0, "ratio"), "fast"), "'fast' is not of type"),
    ],
)
def test_broken_reports_do_not_validate(report: Report, validator, edit, expected: str) -> None:
    data = copy.deepcopy(report.to_dict())
    edit(data)
    with pytest.raises(jsonschema.ValidationError, match=expected.replace("(", r"\(")):
        validator.validate(data)


def test_every_field_of_the_dataclasses_is_in_the_schema(validator) -> None:
    from compval.results import CheckResult, MetricValue, RunInfo

    defs = validator.schema["$defs"]
    for cls, name in ((MetricValue, "metric"), (CheckResult, "check"), (RunInfo, "run")):
        declared = set(defs[name]["properties"])
        missing = {f.name for f in dataclasses.fields(cls)} - declared
        assert not missing, f"{name}: fields not described in the schema: {missing}"
    run_required = set(defs["run"]["required"])
    assert run_required == {f.name for f in dataclasses.fields(RunInfo)}
