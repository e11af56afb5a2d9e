"""The Kubeflow Pipelines gate (deploy/kubeflow/), without a cluster.

The pipeline is compiled with kfp's compiler, and the component runs locally with
``kfp.local.SubprocessRunner(use_venv=False)`` (this environment's Python: compval is
installed, so the image is not needed). Its outputs must match a direct ``compval validate``.
"""

# No "from __future__ import annotations": kfp reads the components' annotations as objects.

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tracker_builders import Validation

kfp = pytest.importorskip("kfp")

# kfp.local warns that the component names an image while it runs in this Python: intended
# here (compval is installed in this environment, which the image would provide).
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run:RuntimeWarning")

KUBEFLOW = Path(__file__).resolve().parents[2] / "deploy" / "kubeflow"


@pytest.fixture(scope="module")
def kubeflow() -> Iterator[tuple[Any, Any]]:
    """The component and pipeline modules (deploy/kubeflow is not a package)."""
    sys.path.insert(0, str(KUBEFLOW))
    try:
        import component
        import pipeline

        yield component, pipeline
    finally:
        sys.path.remove(str(KUBEFLOW))
        for name in ("component", "pipeline"):
            sys.modules.pop(name, None)


def _direct(spec: Path, out: Path) -> tuple[int, dict[str, Any]]:
    cmd = [sys.executable, "-m", "compval", "validate", str(spec), "--report-dir", str(out)]
    code = subprocess.run(cmd, check=False, capture_output=True).returncode
    return code, json.loads((out / "report.json").read_text())


def _run_gate(
    kubeflow: tuple[Any, Any], validation: Validation, root: Path, *, by_uri: bool = False
) -> dict[str, Any]:
    """Run a pipeline (importers -> compval_validate -> dsl.If deploy) with kfp.local.

    ``by_uri``: the candidate is given as ``candidate_uri`` (a string, as an endpoint URL
    would be) instead of a Model artifact.
    """
    from kfp import dsl, local
    from kfp.dsl import Artifact, Dataset, Model

    component, _ = kubeflow
    marker = root / "deployed.txt"

    @dsl.component(base_image=component.COMPVAL_IMAGE)
    def deploy(marker: str) -> None:
        from pathlib import Path

        Path(marker).write_text("deployed")

    folder = validation.folder

    @dsl.pipeline
    def gate() -> bool:
        spec = dsl.importer(artifact_uri=str(validation.spec), artifact_class=Artifact)
        data = dsl.importer(artifact_uri=str(folder / "data.parquet"), artifact_class=Dataset)
        ref = dsl.importer(artifact_uri=str(validation.reference), artifact_class=Model)
        if by_uri:
            task = component.compval_validate(
                spec=spec.output,
                data=data.output,
                reference=ref.output,
                candidate_uri=str(validation.candidate),
            )
        else:
            cand = dsl.importer(artifact_uri=str(validation.candidate), artifact_class=Model)
            task = component.compval_validate(
                spec=spec.output, data=data.output, reference=ref.output, candidate=cand.output
            )
        with dsl.If(task.outputs["passed"] == True):  # noqa: E712 - a KFP condition
            deploy(marker=str(marker))
        return task.outputs["passed"]  # type: ignore[no-any-return]

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    gate()
    (task_dir,) = (root / "kfp").glob("gate-*/compval-validate")
    executor = json.loads((task_dir / "executor_output.json").read_text())
    return {
        "parameters": executor["parameterValues"],
        "metrics": executor["artifacts"]["metrics"]["artifacts"][0]["metadata"],
        "report": json.loads((task_dir / "report" / "report.json").read_text()),
        "html": (task_dir / "html_report").read_text(),
        "deployed": marker.exists(),
    }


def _same_metrics(a: dict[str, Any], b: dict[str, Any]) -> None:
    def key(m: dict[str, Any]) -> str:
        return json.dumps(m, sort_keys=True)

    assert sorted(map(key, a["metrics"])) == sorted(map(key, b["metrics"]))
    assert [(c["id"], c["verdict"]) for c in a["checks"]] == [
        (c["id"], c["verdict"]) for c in b["checks"]
    ]


def test_pipeline_compiles_with_the_gate_condition(
    kubeflow: tuple[Any, Any], tmp_path: Path
) -> None:
    from kfp import compiler

    component, pipeline = kubeflow
    out = tmp_path / "gated.yaml"
    compiler.Compiler().compile(pipeline.gated_deploy, str(out))
    compiled = yaml.safe_load(out.read_text())
    gate = compiled["components"]["comp-compval-validate"]
    assert set(gate["inputDefinitions"]["artifacts"]) == {"spec", "data", "reference", "candidate"}
    assert gate["inputDefinitions"]["artifacts"]["candidate"].get("isOptional") is True
    assert gate["outputDefinitions"]["parameters"]["passed"]["parameterType"] == "BOOLEAN"
    assert {
        name: a["artifactType"]["schemaTitle"]
        for name, a in gate["outputDefinitions"]["artifacts"].items()
    } == {"report": "system.Artifact", "metrics": "system.Metrics", "html_report": "system.HTML"}
    tasks = compiled["root"]["dag"]["tasks"]
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert "compval-validate-passed" in condition and "== true" in condition
    image = compiled["deploymentSpec"]["executors"]["exec-compval-validate"]["container"]["image"]
    assert image == component.COMPVAL_IMAGE


def test_local_run_matches_a_direct_validate(
    kubeflow: tuple[Any, Any], validation: Validation, tmp_path: Path
) -> None:
    code, direct = _direct(validation.spec, tmp_path / "direct")
    ran = _run_gate(kubeflow, validation, tmp_path)
    assert ran["parameters"]["passed"] is direct["passed"]
    assert ran["parameters"]["exit_code"] == code
    _same_metrics(ran["report"], direct)
    # The Metrics artifact holds the report's own overall values.
    (accuracy,) = [
        m for m in direct["metrics"] if m["metric"] == "accuracy_score" and m["segment"] is None
    ]
    name = accuracy["candidate"]
    assert ran["metrics"][f"{name}.accuracy_score.candidate_value"] == accuracy["candidate_value"]
    assert ran["metrics"][f"{name}.accuracy_score.delta"] == accuracy["delta"]
    assert ran["metrics"]["passed"] == float(direct["passed"])
    assert "<html" in ran["html"].lower()
    assert ran["deployed"] is direct["passed"]


def test_a_closed_gate_skips_the_deployment(
    kubeflow: tuple[Any, Any], validation: Validation, tmp_path: Path
) -> None:
    spec = yaml.safe_load(validation.spec.read_text())
    # The candidate (C=0.02) disagrees with the reference on some rows: near-perfect agreement
    # cannot be shown, so the gate stays closed.
    spec["criteria"] = [{"id": "agreement", "metric": "top1_agreement", "min": 0.999}]
    validation.spec.write_text(yaml.safe_dump(spec))
    code, direct = _direct(validation.spec, tmp_path / "direct")
    assert code == 1 and direct["passed"] is False
    ran = _run_gate(kubeflow, validation, tmp_path)
    assert ran["parameters"]["passed"] is False and ran["parameters"]["exit_code"] == 1
    _same_metrics(ran["report"], direct)
    assert ran["deployed"] is False


def test_a_candidate_given_by_uri_replaces_the_specs_path(
    kubeflow: tuple[Any, Any], validation: Validation, tmp_path: Path
) -> None:
    spec = yaml.safe_load(validation.spec.read_text())
    spec["candidates"][0]["path"] = "elsewhere/missing.onnx"  # replaced by candidate_uri
    validation.spec.write_text(yaml.safe_dump(spec))
    ran = _run_gate(kubeflow, validation, tmp_path, by_uri=True)
    spec["candidates"][0]["path"] = str(validation.candidate)
    validation.spec.write_text(yaml.safe_dump(spec))
    code, direct = _direct(validation.spec, tmp_path / "direct")
    assert ran["parameters"]["exit_code"] == code
    _same_metrics(ran["report"], direct)
