"""Several named datasets in one acceptance suite (``data:`` as a list), on real ONNX models.

Every per-dataset metric is scoped ``dataset=<name>`` and must equal, value for value and
interval for interval, a single-dataset run on that dataset alone (resampling weights are a
function of seed and row id, so the two runs draw the same replicates); accuracies are checked
against onnxruntime predictions scored by scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from compval.cli.main import main
from compval.engine import run_validation
from compval.errors import DataError, SpecValidationError
from compval.reports import render_html, render_markdown
from compval.spec import AcceptanceSpec

SCHEMA = Path(__file__).parents[2] / "docs" / "report.schema.json"
#: The out-of-distribution rows are the held-out rows with every pixel scaled by this: the
#: narrow-calibrated candidate clips them and loses accuracy, the well-calibrated one does not.
OOD_SCALE = 2.5


def _labels(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x.astype(np.float32)})[1]).argmax(1)


@pytest.fixture(scope="module")
def files(models: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    x, y = models.x, models.y
    frame = pd.DataFrame(x, columns=[f"px_{i}" for i in range(x.shape[1])])
    frame["label"] = y
    frame["ink"] = np.where(x.sum(axis=1) > np.median(x.sum(axis=1)), "heavy", "light")
    out = {"validation": root / "validation.parquet", "ood": root / "ood.npz"}
    frame.to_parquet(out["validation"])
    np.savez(out["ood"], x=np.clip(x * OOD_SCALE, 0, None).astype(np.float32), y=y)
    out["production"] = root / "production.npz"
    np.savez(out["production"], x=x[::2][:300])  # unlabelled
    return out


def _spec(models: Any, files: dict[str, Path], criteria: list[dict], **extra: Any) -> dict:
    return {
        "version": 1,
        "reference": {"name": "fp32", "path": str(models.fp32)},
        "candidates": [
            {"name": "qdq", "path": str(models.qdq)},
            {"name": "narrow", "path": str(models.narrow)},
        ],
        "data": [
            {
                "name": "validation",
                "path": str(files["validation"]),
                "labels": "label",
                "segments": ["ink"],
            },
            {"name": "ood", "path": str(files["ood"]), "labels": "y"},
            {"name": "production", "path": str(files["production"])},
        ],
        "batch_size": 128,
        "statistics": {"replicates": 400, "discovery": False},
        "criteria": criteria,
        **extra,
    }


CRITERIA = [
    {"id": "acc", "metric": "accuracy_score", "max_drop": 0.03},
    {"id": "agree", "metric": "top1_agreement", "min": 0.8, "dataset": "*"},
    {
        "id": "acc-class",
        "metric": "accuracy_score",
        "max_drop": 0.5,
        "segment": "dataset=ood,label=*",
    },
]


@pytest.fixture(scope="module")
def report(models: Any, files: dict[str, Path]) -> Any:
    return run_validation(AcceptanceSpec.model_validate(_spec(models, files, CRITERIA)))


def _metric(report: Any, candidate: str, metric: str, segment: str | None) -> Any:
    (m,) = [
        m
        for m in report.metrics
        if m.candidate == candidate and m.metric == metric and m.segment == segment
    ]
    return m


def test_every_dataset_is_scored_on_its_own_rows(report: Any, models: Any) -> None:
    x, y = models.x, models.y
    ood = np.clip(x * OOD_SCALE, 0, None)
    ref_val, ref_ood = _labels(models.fp32, x), _labels(models.fp32, ood)
    for name, path in (("qdq", models.qdq), ("narrow", models.narrow)):
        val = _metric(report, name, "accuracy_score", "dataset=validation")
        assert val.candidate_value == pytest.approx(accuracy_score(y, _labels(path, x)), abs=1e-12)
        assert val.reference_value == pytest.approx(accuracy_score(y, ref_val), abs=1e-12)
        assert val.n == len(y)
        cand_ood = _labels(path, ood)
        out = _metric(report, name, "accuracy_score", "dataset=ood")
        assert out.candidate_value == pytest.approx(accuracy_score(y, cand_ood), abs=1e-12)
        assert out.reference_value == pytest.approx(accuracy_score(y, ref_ood), abs=1e-12)
        # The dataset scope composes with the label and segment-column scopes.
        for label in (1, 8):
            seg = _metric(report, name, "accuracy_score", f"dataset=ood,label={label}")
            mask = y == label
            assert seg.candidate_value == pytest.approx(accuracy_score(y[mask], cand_ood[mask]))
        heavy = _metric(report, name, "accuracy_score", "dataset=validation,ink=heavy")
        mask = x.sum(axis=1) > np.median(x.sum(axis=1))
        assert heavy.candidate_value == pytest.approx(
            accuracy_score(y[mask], _labels(path, x[mask])), abs=1e-12
        )
        # Unlabelled production rows still give agreement, and no accuracy.
        prod = x[::2][:300]
        agree = _metric(report, name, "top1_agreement", "dataset=production")
        expected = float((_labels(path, prod) == _labels(models.fp32, prod)).mean())
        assert agree.candidate_value == pytest.approx(expected, abs=1e-12)
        assert agree.n == 300
        assert not [
            m
            for m in report.metrics
            if m.metric == "accuracy_score" and (m.segment or "").startswith("dataset=production")
        ]
    # Nothing per dataset is left unscoped.
    assert all((m.segment or "").startswith("dataset=") for m in report.metrics)


def test_a_dataset_scope_equals_a_run_on_that_dataset_alone(
    report: Any, models: Any, files: dict[str, Path]
) -> None:
    alone = _spec(models, files, [])
    alone["data"] = alone["data"][1] | {"name": None}
    single = run_validation(AcceptanceSpec.model_validate(alone))
    by_key = {(m.candidate, m.metric, m.segment): m for m in report.metrics}
    compared = 0
    for m in single.metrics:
        scoped = "dataset=ood" if m.segment is None else f"dataset=ood,{m.segment}"
        other = by_key[(m.candidate, m.metric, scoped)]
        for field in ("candidate_value", "reference_value", "delta", "ci_low", "ci_high", "n"):
            assert getattr(other, field) == getattr(m, field), (m.metric, m.segment, field)
        compared += 1
    assert compared > 50


def test_default_selection_gates_the_datasets_that_can_decide(report: Any) -> None:
    acc = {(c.candidate, c.segment): c.verdict for c in report.checks if c.id == "acc"}
    # Accuracy needs labels: production (unlabelled) is left out, and the notes say so.
    assert set(acc) == {
        (n, f"dataset={d}") for n in ("qdq", "narrow") for d in ("validation", "ood")
    }
    assert acc[("qdq", "dataset=validation")] == "pass"
    assert acc[("narrow", "dataset=ood")] == "fail"
    assert any(
        "'acc' is not gated on dataset 'production'" in n and "no labels" in n
        for n in report.run.notes
    )
    # '*' gates every dataset; the built-in check too.
    agree = {c.segment for c in report.checks if c.id == "agree" and c.candidate == "qdq"}
    assert agree == {"dataset=validation", "dataset=ood", "dataset=production"}
    builtin = {c.segment for c in report.checks if c.id == "nonfinite-outputs"}
    assert builtin == agree
    per_class = {c.segment for c in report.checks if c.id == "acc-class" and c.candidate == "qdq"}
    assert per_class == {f"dataset=ood,label={k}" for k in range(10)}
    assert not report.passed


def test_the_report_lists_the_datasets(report: Any, models: Any) -> None:
    out = report.to_dict()
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(out)
    listed = {d["name"]: d for d in out["run"]["datasets"]}
    assert list(listed) == ["validation", "ood", "production"]
    assert listed["production"]["labels"] is None and listed["ood"]["labels"] == "y"
    assert [listed[n]["rows"] for n in listed] == [len(models.y), len(models.y), 300]
    assert out["run"]["data_rows"] == 2 * len(models.y) + 300
    assert len({d["data_hash"] for d in listed.values()}) == 3
    markdown = render_markdown(report)
    # Each dataset's overall values sit with the overall metrics, named by dataset.
    assert "| accuracy\\_score @ validation | " in markdown
    assert "| nonfinite\\_count @ ood | " in markdown
    # The flip matrix and reliability diagrams are the first dataset's, and say so.
    html = render_html(report)
    assert html.count("Rows of the first dataset, validation.") == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {
                "criteria": [
                    {
                        "id": "a",
                        "metric": "accuracy_score",
                        "max_drop": 0.1,
                        "dataset": "production",
                    }
                ]
            },
            "dataset 'production' has no labels",
        ),
        (
            {
                "criteria": [
                    {"id": "a", "metric": "accuracy_score", "max_drop": 0.1, "dataset": "*"}
                ]
            },
            "dataset 'production' has no labels",
        ),
        (
            {"criteria": [{"id": "a", "metric": "top1_agreement", "min": 0.1, "segment": "ink=*"}]},
            None,  # gates validation only (the one with the column); see the test below
        ),
        (
            {
                "criteria": [
                    {
                        "id": "a",
                        "metric": "accuracy_score",
                        "max_drop": 0.1,
                        "segment": "dataset=ood",
                        "dataset": "ood",
                    }
                ]
            },
            "give it once",
        ),
    ],
)
def test_dataset_selection_errors(
    models: Any, files: dict[str, Path], edit: dict, message: str | None
) -> None:
    spec = AcceptanceSpec.model_validate(_spec(models, files, []) | edit)
    if message is None:
        report = run_validation(spec)
        assert {c.segment for c in report.checks if c.id == "a" and c.candidate == "qdq"} == {
            "dataset=validation,ink=heavy",
            "dataset=validation,ink=light",
        }
        return
    with pytest.raises(SpecValidationError, match=message):
        run_validation(spec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"path": "a.npz"}, {"name": "b", "path": "b.npz"}], "data\\[0\\].name is missing"),
        ([{"name": "a", "path": "a.npz"}, {"name": "a", "path": "b.npz"}], "used twice"),
        ([], "empty list"),
        ([{"name": "a,b", "path": "a.npz"}], "pattern"),
    ],
)
def test_invalid_dataset_lists(data: list, message: str) -> None:
    spec = {
        "version": 1,
        "reference": {"path": "a.onnx"},
        "candidates": [{"path": "b.onnx"}],
        "data": data,
    }
    with pytest.raises(ValueError, match=message):
        AcceptanceSpec.model_validate(spec)


def test_unknown_dataset_names_are_refused() -> None:
    base = {"version": 1, "reference": {"path": "a.onnx"}, "candidates": [{"path": "b.onnx"}]}
    data = [{"name": "a", "path": "a.npz"}, {"name": "b", "path": "b.npz"}]
    with pytest.raises(ValueError, match="unknown dataset\\(s\\) \\['nope'\\]"):
        AcceptanceSpec.model_validate(
            base
            | {
                "data": data,
                "criteria": [
                    {"id": "a", "metric": "accuracy_score", "min": 0.5, "dataset": "nope"}
                ],
            }
        )
    with pytest.raises(ValueError, match=r"robustness\.dataset names unknown"):
        AcceptanceSpec.model_validate(base | {"data": data, "robustness": {"dataset": "c"}})
    with pytest.raises(ValueError, match="'data' is one dataset"):
        AcceptanceSpec.model_validate(
            base
            | {
                "data": data[0],
                "criteria": [{"id": "a", "metric": "accuracy_score", "min": 0.5, "dataset": "x"}],
            }
        )


def test_in_memory_datasets_by_name(models: Any, files: dict[str, Path], report: Any) -> None:
    x, y = models.x, models.y
    ood = np.clip(x * OOD_SCALE, 0, None).astype(np.float32)
    spec = AcceptanceSpec.model_validate(_spec(models, files, CRITERIA[:1]))
    swapped = run_validation(spec, data={"ood": (ood, y)})
    a = _metric(swapped, "narrow", "accuracy_score", "dataset=ood")
    b = _metric(report, "narrow", "accuracy_score", "dataset=ood")
    assert (a.candidate_value, a.ci_low, a.ci_high) == (b.candidate_value, b.ci_low, b.ci_high)
    with pytest.raises(DataError, match="mapping of dataset name"):
        run_validation(spec, data=(ood, y))
    with pytest.raises(DataError, match="keys \\['other'\\]"):
        run_validation(spec, data={"other": (ood, y)})


def test_robustness_runs_on_the_named_dataset(models: Any, files: dict[str, Path]) -> None:
    spec = _spec(
        models,
        files,
        [
            {"id": "gap", "metric": "robustness_gap", "max": 0.5},
            {"id": "robust", "metric": "robust_agreement[eps=0.3]", "min": 0.0},
        ],
        robustness={
            "dataset": "ood",
            "perturbations": [{"name": "noise", "kind": "noise", "params": {"std": 0.2}}],
            "search": {"seeds": 10, "epsilon": 0.3, "budget": 20},
        },
    )
    report = run_validation(AcceptanceSpec.model_validate(spec))
    # A qualified robustness metric is gated on the robustness dataset only, and decided.
    robust = [c for c in report.checks if c.id == "robust" and c.candidate == "qdq"]
    assert [(c.segment, c.verdict) for c in robust] == [("dataset=ood", "pass")]
    gaps = {c.segment for c in report.checks if c.id == "gap" and c.candidate == "qdq"}
    assert gaps == {"dataset=ood,perturbation=noise"}
    assert report.robustness is not None and report.robustness.dataset == "ood"
    assert _metric(report, "qdq", "accuracy_score", "dataset=ood,perturbation=noise").n == len(
        models.y
    )
    assert "The robustness section ran on dataset 'ood'." in report.run.notes
    # The gap exists on that dataset only, by construction: no "left out" note for it.
    assert not [
        n for n in report.run.notes if n.startswith(("Criterion 'gap'", "Criterion 'robust'"))
    ]
    assert "| qdq | noise (noise) |" in render_markdown(report)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:sqlalchemy.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")
@pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*")
def test_cli_validates_a_multi_dataset_spec(
    models: Any, files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    pytest.importorskip("mlflow")
    # MLflow's sqlite store keeps artifacts in ./mlruns of the working directory.
    monkeypatch.chdir(tmp_path)

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(models, files, CRITERIA[:1])))
    out = tmp_path / "out"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["validate", str(spec_path), "--report-dir", str(out), f"--mlflow={uri}"])
    assert code == 1  # the narrow candidate fails on the ood dataset
    written = json.loads((out / "report.json").read_text())
    failing = {(c["candidate"], c["segment"]) for c in written["checks"] if c["verdict"] == "fail"}
    assert ("narrow", "dataset=ood") in failing
    assert ("qdq", "dataset=validation") not in failing
    # A tracker gets each dataset's overall values as <dataset>/<metric>.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("compval")
    (child,) = [
        r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "narrow"
    ]
    (ood,) = [
        m
        for m in written["metrics"]
        if (m["candidate"], m["metric"], m["segment"])
        == ("narrow", "accuracy_score", "dataset=ood")
    ]
    assert child.data.metrics["ood/accuracy_score"] == ood["candidate_value"]
    assert child.data.metrics["ood/accuracy_score_delta"] == ood["delta"]


def test_discovered_slices_are_per_dataset(models: Any, files: dict[str, Path]) -> None:
    spec = _spec(
        models,
        files,
        [{"id": "slices", "metric": "accuracy_score", "max_drop": 0.05, "segment": "discovered"}],
    )
    spec["statistics"] = {"replicates": 200, "discovery": True, "min_rows": 30}
    report = run_validation(AcceptanceSpec.model_validate(spec))
    assert report.statistics is not None
    found = report.statistics.discovered.get("narrow", ())
    assert found, "the narrow candidate loses accuracy: the search must find weak slices"
    assert {s.dataset for s in found} <= {"validation", "ood"}
    checks = [c for c in report.checks if c.id == "slices" and c.candidate == "narrow"]
    assert checks
    for c in checks:
        head, _, rest = (c.segment or "").partition(",")
        assert head in ("dataset=validation", "dataset=ood") and rest.startswith("slice:")
    # Each checked slice is one the statistics section lists for that dataset.
    listed = {(f"dataset={s.dataset}", s.description) for s in found}
    assert {(c.segment or "").partition(",")[0] for c in checks} <= {d for d, _ in listed}
    # Unlabelled production rows are left out of a label-based slice criterion, and said so.
    assert any("'slices' is not gated on dataset 'production'" in n for n in report.run.notes)
