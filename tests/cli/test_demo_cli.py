"""End-to-end test of ``compval demo``: real compressed models, real verdicts.

The facts asserted are properties of the demo's models (see ``compval.demo._build``): the
pruned model is half zeros and stored dense, so it is as large as the reference and loses
accuracy; dynamic int8 quantization keeps every prediction. Timings are never asserted.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pytest

from compval.cli.main import ExitCode, main

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
CANDIDATES = ["int8_dynamic", "int8_static", "pruned50", "distilled"]
_MIB = 1024 * 1024


def _onnx_weight_sparsity(path: Path) -> float:
    """Fraction of exact zeros over float initializers with two or more dimensions."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = [
        numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2
    ]
    total = sum(w.size for w in weights)
    return sum(int(np.sum(w == 0)) for w in weights) / total


def _overall_check(report: dict[str, Any], check_id: str, candidate: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        c
        for c in report["checks"]
        if c["id"] == check_id and c["candidate"] == candidate and c["segment"] is None
    ]
    return found


@pytest.mark.slow
def test_demo_builds_validates_and_reports_the_real_verdicts(tmp_path: Path) -> None:
    workdir, report_dir = tmp_path / "work", tmp_path / "report"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(
            [
                "demo",
                "--workdir",
                str(workdir),
                "--report-dir",
                str(report_dir),
                "--replicates",
                "200",
            ]
        )
    assert "Traceback" not in err.getvalue(), err.getvalue()
    # The demo exits 0 whenever it ran, whatever the verdicts.
    assert code == ExitCode.OK, err.getvalue()

    report = json.loads((report_dir / "report.json").read_text("utf-8"))
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text("utf-8")))
    assert [c["name"] for c in report["candidates"]] == CANDIDATES
    assert report["passed"] is False
    last_line = out.getvalue().strip().splitlines()[-1]
    assert last_line == f"compval: FAILED (4 candidate(s), {len(report['checks'])} checks)"
    assert report["run"]["spec_path"] == str(workdir / "demo.yaml")
    assert report["statistics"]["resampling"]["replicates"] == 200
    for name in ["fp32", *CANDIDATES]:
        assert (workdir / "models" / f"{name}.onnx").is_file()

    pruned = workdir / "models" / "pruned50.onnx"
    accuracy = _overall_check(report, "accuracy-overall", "pruned50")
    assert accuracy["verdict"] == "fail" and accuracy["blocking"] is True
    size = _overall_check(report, "model-size", "pruned50")
    assert size["verdict"] == "fail"
    # Stored dense: the measured size is the file's, above the 0.05 MB budget.
    assert size["observed"] == pruned.stat().st_size / _MIB
    assert size["threshold"] == 0.05
    models = report["profile"]["models"]
    assert models["pruned50"]["weight_sparsity"] == 0.5
    assert models["pruned50"]["weight_sparsity"] == _onnx_weight_sparsity(pruned)
    assert models["fp32"]["weight_sparsity"] == 0.0
    assert abs(models["pruned50"]["size_mb"] - models["fp32"]["size_mb"]) * _MIB < 1024
    assert models["pruned50"]["parameter_count"] == models["fp32"]["parameter_count"]

    assert _overall_check(report, "accuracy-overall", "int8_dynamic")["verdict"] == "pass"
    assert _overall_check(report, "model-size", "int8_dynamic")["verdict"] == "pass"

    profile_target = report["profile"]["target"]
    assert (profile_target["threads"], profile_target["batch_sizes"]) == (1, [1, 64])
    assert profile_target["concurrency"] == [1, 2]

    markdown = (report_dir / "report.md").read_text("utf-8")
    assert markdown.splitlines()[0] == "## ❌ compval: FAILED"
    assert (report_dir / "junit.xml").is_file()
