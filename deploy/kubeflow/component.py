"""A Kubeflow Pipelines (v2) component that runs ``compval validate`` as a gate.

Inputs: the acceptance spec (a YAML artifact), the data, the reference and candidate models as
artifacts; or a model as a URI string instead (``candidate_uri``: an inference endpoint such
as ``http://int8-predictor.ns.svc/v2/models/int8``, or an MLflow ``models:/`` URI). Paths in
the spec are replaced by the artifacts' local paths, so one spec serves a laptop and a
pipeline.

Outputs:

* ``passed`` (bool parameter): every blocking check passed (exit code 0). A failed or
  inconclusive gate (exit 1) is not a task failure: the pipeline reads ``passed`` and decides
  (``dsl.If``). Any other exit (bad spec 4, a model or the data unusable 5, a bug 3) fails the
  task, with compval's message in its log.
* ``report`` (artifact folder): report.json, report.md, junit.xml and report.html.
* ``metrics`` (Metrics): the headline metrics of each candidate (overall segment): the
  candidate's value and the delta to the reference, and the checks passed and failed.
* ``html_report`` (HTML): report.html, which the Kubeflow UI renders.

The image (``COMPVAL_IMAGE``) is built from ``deploy/kubeflow/Dockerfile``.
"""

# No "from __future__ import annotations": kfp reads the annotations as objects.

import os
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

#: The image the component runs in (deploy/kubeflow/Dockerfile); override with COMPVAL_IMAGE.
COMPVAL_IMAGE = os.environ.get("COMPVAL_IMAGE", "ghcr.io/compval/compval-kfp:latest")


@dsl.component(base_image=COMPVAL_IMAGE)
def compval_validate(
    spec: Input[Artifact],
    data: Input[Dataset],
    reference: Input[Model],
    report: Output[Artifact],
    metrics: Output[Metrics],
    html_report: Output[HTML],
    candidate: Input[Model] = None,  # type: ignore[assignment]
    candidate_uri: str = "",
    reference_uri: str = "",
    replicates: int = -1,
) -> NamedTuple("GateOutputs", [("passed", bool), ("exit_code", int)]):  # type: ignore[valid-type]
    """Run ``compval validate`` on the spec with the given models and data (see module doc)."""
    # Runs inside the component's container: everything it needs is imported here.
    import json
    import shutil
    import subprocess
    import sys
    from collections import namedtuple
    from pathlib import Path

    import yaml

    loaded = yaml.safe_load(Path(spec.path).read_text())
    loaded["data"]["path"] = data.path
    loaded["reference"] = {**loaded["reference"], "path": reference_uri or reference.path}
    loaded["reference"].pop("endpoint", None)
    if "candidate" in loaded:
        loaded["candidates"] = [loaded.pop("candidate")]
    if candidate_uri or candidate is not None:
        (first, *rest) = loaded["candidates"]
        first = {k: v for k, v in first.items() if k != "endpoint"}
        first["path"] = candidate_uri or candidate.path
        loaded["candidates"] = [first, *rest]
    workdir = Path(report.path).parent / "compval-spec"
    workdir.mkdir(parents=True, exist_ok=True)
    spec_file = workdir / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(loaded, sort_keys=False))

    out = Path(report.path)
    cmd = [sys.executable, "-m", "compval", "validate", str(spec_file), "--report-dir", str(out)]
    if replicates >= 0:
        cmd += ["--replicates", str(replicates)]
    code = subprocess.run(cmd, check=False).returncode
    if code not in (0, 1):
        raise RuntimeError(f"compval validate exited with {code}; see the log above.")

    result = json.loads((out / "report.json").read_text())
    for m in result["metrics"]:
        if m.get("segment") is not None:
            continue
        for field in ("candidate_value", "delta"):
            value = m.get(field)
            if isinstance(value, (int, float)) and value == value:  # finite numbers only
                metrics.log_metric(f"{m['candidate']}.{m['metric']}.{field}", float(value))
    verdicts = [c["verdict"] for c in result["checks"]]
    metrics.log_metric("checks_passed", float(verdicts.count("pass")))
    metrics.log_metric("checks_not_passed", float(len(verdicts) - verdicts.count("pass")))
    metrics.log_metric("passed", 1.0 if result["passed"] else 0.0)
    if (out / "report.html").exists():
        shutil.copyfile(out / "report.html", html_report.path)
    else:
        Path(html_report.path).write_text("<p>compval wrote no HTML report.</p>")
    outputs = namedtuple("GateOutputs", ["passed", "exit_code"])
    return outputs(bool(result["passed"]), int(code))
