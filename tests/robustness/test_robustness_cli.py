"""The CLI: a robustness spec writes edge_cases.npz beside the reports; bad input exits 4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

from compval.cli.main import main


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=(d.data[:600] / 16.0).astype(np.float32), y=d.target[:600])
    return path


def _spec(tmp_path: Path, models: Any, data: Path, robustness: dict, criteria: list) -> Path:
    spec = {
        "version": 1,
        "reference": {"name": "fp32", "path": str(models.fp32)},
        "candidate": {"name": "narrow", "path": str(models.narrow)},
        "data": {"path": str(data)},
        "statistics": {"replicates": 200, "discovery": False},
        "robustness": robustness,
        "criteria": criteria,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_validate_writes_edge_cases_and_the_section(
    models: Any, data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(
        tmp_path,
        models,
        data_file,
        {
            "perturbations": [
                {
                    "name": "bright",
                    "kind": "brightness",
                    "layout": "NHW",
                    "image_shape": [8, 8],
                    "params": {"delta": 0.1},
                }
            ],
            "search": {"seeds": 20, "epsilon": 0.5, "budget": 40},
        },
        [{"id": "gap", "metric": "robustness_gap", "max": 0.5, "segment": "perturbation=bright"}],
    )
    out = tmp_path / "out"
    code = main(["validate", str(spec), "--report-dir", str(out)])
    console = capsys.readouterr().out
    assert code == 0
    assert "Robustness" in console and "search narrow" in console
    report = json.loads((out / "report.json").read_text())
    schema = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    (result,) = report["robustness"]["search_results"]
    assert result["seeds"] == 20 and result["seeds_with_disagreement"] > 0
    assert report["robustness"]["search"]["budget_per_seed"] == 40
    segments = {m["segment"] for m in report["metrics"] if m["metric"] == "robustness_gap"}
    assert "perturbation=bright" in segments and "perturbation=bright,label=3" in segments
    edge = np.load(out / "edge_cases.npz")
    assert edge["input"].shape == (result["seeds_with_disagreement"], 64)


@pytest.mark.parametrize(
    ("robustness", "criteria", "needle"),
    [
        ({"perturbations": [{"name": "a", "kind": "wobble"}]}, [], "unknown perturbation kind"),
        (
            {"perturbations": [{"name": "a", "kind": "noise"}]},
            [{"id": "g", "metric": "robustness_gap", "max": 0.1, "segment": "perturbation=b"}],
            "unknown perturbation 'b'",
        ),
        ({"search": {"epsilon": -1}}, [], "epsilon"),
        (
            {"perturbations": [{"name": "a", "kind": "noise"}]},
            [
                {
                    "id": "g",
                    "metric": "robustness_gap",
                    "max": 0.1,
                    "segment": "perturbation=*,label=3",
                }
            ],
            "takes no segment",
        ),
        (
            {"search": {"epsilon": 0.3}},
            [{"id": "r", "metric": "robust_agreement[eps=0.5]", "min": 0.9}],
            "robust_agreement[eps=0.3]",
        ),
        (
            {"search": {"epsilon": 0.3}},
            [{"id": "g", "metric": "robustness_gap", "max": 0.1}],
            "needs robustness.perturbations",
        ),
    ],
)
def test_bad_robustness_input_exits_4(
    models: Any,
    data_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    robustness: dict,
    criteria: list,
    needle: str,
) -> None:
    spec = _spec(tmp_path, models, data_file, robustness, criteria)
    code = main(["validate", str(spec), "--report-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 4
    assert needle in captured.err + captured.out
    assert "Traceback" not in captured.err
