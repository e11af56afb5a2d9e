"""``compval diagnose`` and the spec's ``numerics:`` section, end to end on real models."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from compval.cli.main import main
from compval.data import ArrayDataset
from compval.engine._diagnose import sample_rows
from compval.errors import ExitCode


def _report(directory: Path) -> dict:
    return json.loads((directory / "report.json").read_text())


def test_diagnose_localizes_the_broken_node(models, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    code = main(
        [
            "diagnose",
            str(models.fp32),
            str(models.broken),
            str(models.dynamic),
            "--data",
            str(models.data),
            "--labels",
            "label",
            "--sample",
            "200",
            "--report-dir",
            str(out),
        ]
    )
    assert code == ExitCode.OK
    console = capsys.readouterr().out
    assert f"first divergent '{models.broken_tensor}'" in console
    report = _report(out)
    schema = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    numerics = report["numerics"]
    assert (numerics["sample"], numerics["sqnr_threshold_db"]) == (200, 20.0)
    broken, dynamic = numerics["candidates"]
    assert broken["first_divergent"] == models.broken_tensor
    assert broken["layers"][0]["name"] == models.broken_tensor
    assert {"name", "op_type", "sqnr_db", "cosine", "max_abs_diff", "growth_db"} <= set(
        broken["layers"][0]
    )
    assert broken["saturation"][0]["tensor"] == models.broken_tensor
    assert broken["layer_min_sqnr_db"] < 20 < dynamic["layer_min_sqnr_db"]
    assert dynamic["saturation_rate"] is None  # no QuantizeLinear with a fixed scale
    assert dynamic["batch_consistency"]["batch_size"] == 256
    assert sum(b["rows"] for b in broken["input_ranges"]) == 200
    assert {u["side"] for u in dynamic["unmatched"]} == {"reference", "candidate"}
    markdown = (out / "report.md").read_text()
    assert f"| {models.broken_tensor.replace('_', chr(92) + '_')} |" in markdown
    assert '<section id="numerics">' in (out / "report.html").read_text()


@pytest.mark.parametrize("flag", [["--sample", "0"], ["--sqnr-threshold-db", "loud"]])
def test_diagnose_bad_flags_exit_4(models, tmp_path: Path, flag: list[str], capsys) -> None:
    code = main(["diagnose", str(models.fp32), str(models.qdq), "--data", str(models.data), *flag])
    assert code == ExitCode.USAGE_ERROR
    assert flag[0] in capsys.readouterr().err


def _spec(tmp_path: Path, models, candidate: Path, extra: dict) -> Path:
    spec = {
        "version": 1,
        "reference": {"name": "fp32", "path": str(models.fp32)},
        "candidates": [{"name": "cand", "path": str(candidate)}],
        "data": {"path": str(models.data), "labels": "label"},
        "statistics": {"replicates": 0},
        **extra,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("name", "expected"), [("qdq", ExitCode.OK), ("broken", ExitCode.CHECKS_FAILED)]
)
def test_validate_gates_on_layer_min_sqnr(models, tmp_path: Path, name: str, expected) -> None:
    spec = _spec(
        tmp_path,
        models,
        getattr(models, name),
        {
            "numerics": {"sample": 128},
            "criteria": [
                {"id": "layers", "metric": "layer_min_sqnr_db", "min": 20},
                {"id": "batch", "metric": "batch_consistency_flip_rate", "max": 0.0},
                {"id": "clipping", "metric": "saturation_rate", "max": 0.05},
            ],
        },
    )
    out = tmp_path / "report"
    assert main(["validate", str(spec), "--report-dir", str(out), "--quiet"]) == expected
    checks = {c["id"]: c for c in _report(out)["checks"]}
    assert checks["batch"]["verdict"] == "pass"
    verdict = "pass" if expected == ExitCode.OK else "fail"
    assert checks["layers"]["verdict"] == checks["clipping"]["verdict"] == verdict


def test_a_numerics_metric_is_not_a_performance_budget(models, tmp_path: Path, capsys) -> None:
    spec = _spec(
        tmp_path,
        models,
        models.qdq,
        {"performance": {"budgets": [{"id": "b", "metric": "saturation_rate", "max": 0.1}]}},
    )
    assert main(["validate", str(spec), "--quiet"]) == ExitCode.USAGE_ERROR
    assert "numerics metric" in capsys.readouterr().err


def test_unknown_numerics_key_is_a_spec_error(models, tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, models, models.qdq, {"numerics": {"rows": 10}})
    assert main(["validate", str(spec), "--quiet"]) == ExitCode.USAGE_ERROR
    assert "numerics.rows" in capsys.readouterr().err


def test_sample_rows_is_seeded_and_independent_of_the_batch_size() -> None:
    x = np.arange(1000, dtype=np.float32).reshape(500, 2)
    data = ArrayDataset({"x": x})
    first = sample_rows(data, 64, seed=3, batch_size=7)["x"]
    assert np.array_equal(first, sample_rows(data, 64, seed=3, batch_size=500)["x"])
    assert not np.array_equal(first, sample_rows(data, 64, seed=4, batch_size=7)["x"])
    rows = first[:, 0] / 2
    assert len(np.unique(rows)) == 64 and np.all(np.diff(rows) > 0)
    assert len(sample_rows(data, 10_000, seed=0, batch_size=64)["x"]) == 500


def test_python_callables_get_batch_consistency_and_a_note() -> None:
    """Localization needs ONNX files; a callable pair still gets the batch check, and says so."""
    from compval.engine import run_validation

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)

    def reference(batch: np.ndarray) -> np.ndarray:
        return batch @ np.arange(12, dtype=np.float32).reshape(4, 3)

    def per_batch_scale(batch: np.ndarray) -> np.ndarray:
        # Rounds on a grid set by the batch's own range, as dynamic quantization does.
        step = np.abs(batch).max() / 4
        return np.round(batch / step) * step @ np.arange(12, dtype=np.float32).reshape(4, 3)

    spec = {
        "version": 1,
        "task": "generic",
        "reference": {"name": "ref"},
        "candidates": [{"name": "cand"}],
        "data": {"path": "unused.npz"},
        "batch_size": 100,
        "statistics": {"replicates": 0},
        "numerics": {"sample": 50},
    }
    report = run_validation(spec, reference=reference, candidates={"cand": per_batch_scale}, data=x)
    assert report.numerics is not None
    (cand,) = report.numerics.candidates
    assert cand.layers == () and "ONNX" in cand.notes[0]
    assert cand.batch is not None and cand.batch.rows == 50
    assert cand.batch.flip_rate is not None and cand.batch.flip_rate > 0
    assert cand.batch.run_max_abs_diff == 0.0
