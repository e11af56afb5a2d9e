"""Every bad input to ``compval validate``: its exit code and a message that names the problem.

No case may show a Python traceback: user errors print one line (or one block), never a trace.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_builders import (
    Plan,
    base_spec,
    checks_by,
    metric,
    read_report,
    reference_weights,
    write_classifier,
    write_models,
    write_yaml,
)

from compval.cli.main import ExitCode, main

Run = Callable[..., tuple[ExitCode, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        assert "Traceback" not in out, out
        return code, out, err

    return run


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models and data files shared by the error cases (none of them writes here)."""
    work = tmp_path_factory.mktemp("errors")
    write_models(work)
    frame = Plan(300, seed=21).frame()
    frame.to_parquet(work / "data.parquet")
    frame.assign(f4=1.0).to_parquet(work / "five_features.parquet")
    frame.drop(columns=["y"]).to_parquet(work / "unlabelled.parquet")
    frame.assign(y=np.where(np.arange(len(frame)) == 7, 5, frame["y"])).to_parquet(
        work / "bad_labels.parquet"
    )
    (work / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    (work / "corrupt.onnx").write_bytes(b"definitely not a protobuf")
    with (work / "model.pkl").open("wb") as handle:
        pickle.dump({"weights": [1, 2, 3]}, handle)
    return work


def _validate(
    cli: Run, work: Path, tmp_path: Path, spec: dict[str, Any] | str, *flags: str
) -> tuple[ExitCode, str, str]:
    path = tmp_path / "spec.yaml"
    if isinstance(spec, str):
        path.write_text(spec)
    else:
        write_yaml(path, {**spec, **_absolute(work, spec)})
    return cli("validate", path, "--report-dir", tmp_path / "out", "--quiet", *flags)


def _absolute(work: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Make the model and data paths of ``spec`` absolute (the spec lives elsewhere)."""
    out: dict[str, Any] = {}
    for key in ("reference", "data"):
        if isinstance(spec.get(key), dict) and "path" in spec[key]:
            out[key] = {**spec[key], "path": str(work / spec[key]["path"])}
    if isinstance(spec.get("candidates"), list):
        out["candidates"] = [
            {**c, "path": str(work / c["path"])} if "path" in c else c for c in spec["candidates"]
        ]
    return out


def _criterion(**fields: Any) -> dict[str, Any]:
    return base_spec(criteria=[{"id": "c", **fields}])


SPEC_ERRORS = [
    pytest.param(
        "version: 1\nreference: {path: ref.onnx\ncandidates:\n  - [a\n",
        ["not valid YAML", "line ", "indentation"],
        id="invalid-yaml",
    ),
    pytest.param(
        {**base_spec(), "criterai": [{"id": "a", "metric": "accuracy_score", "max_drop": 0.01}]},
        ["spec.yaml", "criterai: unknown key", "check its spelling"],
        id="top-level-typo",
    ),
    pytest.param(
        base_spec(criteria=[{"id": "a", "metric": "accuracy_score", "max_dorp": 0.01}]),
        ["criteria[0].max_dorp: unknown key"],
        id="criterion-key-typo",
    ),
    pytest.param(
        base_spec(data={"path": "data.parquet", "lables": "y"}),
        ["data.lables: unknown key"],
        id="data-key-typo",
    ),
    pytest.param(
        _criterion(metric="acuracy_score", max_drop=0.01),
        ["criteria[0].metric", "unknown metric 'acuracy_score'", "Did you mean 'accuracy_score'"],
        id="unknown-metric",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=5),
        ["criteria[0].max_drop", "got 5", "Did you mean 0.05", "never percents"],
        id="percent-not-fraction",
    ),
    pytest.param(
        _criterion(metric="top1_agreement", min=98),
        ["criteria[0].min", "Did you mean 0.98"],
        id="percent-min",
    ),
    pytest.param(
        _criterion(metric="brier_loss", max_drop=0.01),
        ["criteria[0].max_drop", "'brier_loss' is lower-is-better", "Use 'max_increase'"],
        id="max-drop-on-lower-is-better",
    ),
    pytest.param(
        _criterion(metric="mean_kl_divergence", max_increase=0.01),
        ["criteria[0].max_increase", "has one value for the pair", "'min' or 'max'"],
        id="drop-on-paired-metric",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=-0.01),
        ["criteria[0].max_drop", "must be >= 0", "positive margin"],
        id="negative-margin",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=0.01, segment="country=*"),
        ["criteria[0].segment", "'country'", "'label', 'region'", "Add it to data.segments"],
        id="unknown-segment-column",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=0.01, segment="region"),
        ["criteria[0].segment", "unknown segment scope 'region'", "'<column>=<value>'"],
        id="segment-without-value",
    ),
    pytest.param(
        _criterion(metric="recall_score", max_drop=0.01),
        ["criteria[0].metric", "per class", "recall_score[3]"],
        id="per-class-metric-without-class",
    ),
    pytest.param(
        _criterion(metric="mean_absolute_error", max_increase=0.1),
        ["criteria[0].metric", "not computed for task 'classification'", "regression"],
        id="metric-of-another-task",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=0.01, min=0.9),
        ["criteria[0]", "give one concise form", "write two criteria"],
        id="two-concise-forms",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", max_drop=0.01, op=">="),
        ["criteria[0]", "cannot be combined with op"],
        id="concise-and-explicit",
    ),
    pytest.param(
        _criterion(metric="accuracy_score"),
        ["criteria[0]", "needs a threshold"],
        id="no-threshold",
    ),
    pytest.param(
        _criterion(metric="accuracy_score", op="=>", threshold=0.9),
        ["criteria[0].op", "'>='"],
        id="bad-op",
    ),
    pytest.param(
        base_spec(
            criteria=[
                {"id": "a", "metric": "accuracy_score", "max_drop": 0.01},
                {"id": "a", "metric": "top1_agreement", "min": 0.9},
            ]
        ),
        ["criteria", "'a' is used twice"],
        id="duplicate-criterion-ids",
    ),
    pytest.param({**base_spec(), "version": 2}, ["version", "got 2"], id="wrong-version"),
    pytest.param({**base_spec(), "batch_size": "many"}, ["batch_size"], id="bad-type"),
    pytest.param(
        {**base_spec(), "statistics": {"replicates": 200, "inconclusive": "ignore"}},
        ["statistics.inconclusive", "'block'", "'warn'"],
        id="bad-choice",
    ),
    pytest.param("", ["must be a mapping", "compval init"], id="empty-file"),
    pytest.param(
        base_spec(data={"path": "unlabelled.parquet", "segments": ["region"]}),
        ["criteria[0].metric", "'accuracy_score' needs labels", "set data.labels"],
        id="accuracy-without-labels",
    ),
    pytest.param(
        base_spec(
            data={"path": "unlabelled.parquet", "segments": ["region"]},
            criteria=[{"id": "a", "metric": "top1_agreement", "min": 0.9, "segment": "label=*"}],
        ),
        ["criteria[0].segment", "'label=*' needs labels", "set data.labels"],
        id="label-scope-without-labels",
    ),
    pytest.param(
        base_spec(candidates=[{"name": "ref", "path": "same.onnx"}]),
        ["model names must be unique", "['ref']", "distinct 'name'"],
        id="candidate-named-like-reference",
    ),
    pytest.param(
        base_spec(
            candidates=[{"name": "c", "path": "same.onnx"}, {"name": "c", "path": "push.onnx"}]
        ),
        ["model names must be unique", "['c']"],
        id="duplicate-candidate-names",
    ),
    # Refusing a pickle is a decision the command or spec must change (exit 4), not a fault
    # of the model file (exit 5).
    pytest.param(
        base_spec(candidates=[{"name": "cand", "path": "model.pkl"}]),
        ["model.pkl", "loading refused", "arbitrary code", "--allow-pickle", "allow_pickle: true"],
        id="pickle-without-permission",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), SPEC_ERRORS)
def test_spec_errors_exit_4_with_the_field_and_a_fix(
    spec: dict[str, Any] | str, expected: list[str], work: Path, tmp_path: Path, cli: Run
) -> None:
    code, _, err = _validate(cli, work, tmp_path, spec)

    assert code == ExitCode.USAGE_ERROR
    assert err.startswith("compval: error: ")
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"
    assert not (tmp_path / "out").exists()


def test_missing_spec_file_exits_4_and_suggests_init(tmp_path: Path, cli: Run) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = cli("validate", missing, "--report-dir", tmp_path / "out")
    assert code == ExitCode.USAGE_ERROR
    assert f"{missing}: spec file not found" in err
    assert f"compval init {missing}" in err


def test_invalid_toml_exits_4(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "spec.toml"
    path.write_text('version = 1\n[reference\npath = "ref.onnx"\n')
    code, _, err = cli("validate", path, "--report-dir", tmp_path / "out")
    assert code == ExitCode.USAGE_ERROR
    assert f"{path}: not valid TOML" in err
    assert "line 2" in err


RUN_ERRORS = [
    pytest.param(
        base_spec(candidates=[{"name": "cand", "path": "missing.onnx"}]),
        ["Model file", "missing.onnx", "file not found", "Check the path"],
        id="missing-model",
    ),
    pytest.param(
        base_spec(candidates=[{"name": "cand", "path": "corrupt.onnx"}]),
        ["corrupt.onnx", "onnxruntime cannot load it", "expected a valid ONNX model", "Re-export"],
        id="corrupt-model",
    ),
    pytest.param(
        base_spec(data={"path": "five_features.parquet", "labels": "y", "segments": ["region"]}),
        ["Model 'ref'", "input 'x' has shape (256, 5)", "float32[?, 4]", "feature columns"],
        id="wrong-input-shape",
    ),
    pytest.param(
        base_spec(data={"path": "data.parquet", "labels": "target", "segments": ["region"]}),
        ["label column 'target' not found", "['f0', 'f1', 'f2', 'f3', 'y', 'region']"],
        id="missing-label-column",
    ),
    pytest.param(
        base_spec(data={"path": "data.parquet", "labels": "y", "segments": ["country"]}),
        ["'country'", "not found", "'region'"],
        id="missing-segment-column",
    ),
    pytest.param(
        base_spec(data={"path": "missing.parquet", "labels": "y"}),
        ["missing.parquet", "not found", "data.path"],
        id="missing-data-file",
    ),
    pytest.param(
        base_spec(data={"path": "corrupt.parquet", "labels": "y", "segments": ["region"]}),
        ["corrupt.parquet", "cannot be read as parquet", "expected a valid parquet file"],
        id="corrupt-data-file",
    ),
    pytest.param(
        base_spec(data={"path": "data.parquet", "labels": "y"}),
        ["text feature column(s) 'region'", "data.segments", "data.features"],
        id="string-feature-column",
    ),
    pytest.param(
        base_spec(data={"path": "bad_labels.parquet", "labels": "y", "segments": ["region"]}),
        ["Labels", "5", "not among the model's 3 output classes", "data.labels"],
        id="label-outside-the-model-classes",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), RUN_ERRORS)
def test_model_and_data_errors_exit_5_with_the_file_and_a_fix(
    spec: dict[str, Any], expected: list[str], work: Path, tmp_path: Path, cli: Run
) -> None:
    code, _, err = _validate(cli, work, tmp_path, spec)

    assert code == ExitCode.RUN_ERROR
    assert err.startswith("compval: error: ")
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", "spec.yaml", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["validate"], "the following arguments are required: spec"),
        (["validate", "spec.yaml", "--replicates", "-1"], "--replicates: expected 0 or more"),
        (["validate", "spec.yaml", "--replicates", "many"], "expected an integer"),
        (["compare", "a.onnx", "b.onnx"], "--data"),
    ],
)
def test_command_line_errors_exit_4_with_a_pointer_to_help(
    argv: list[str], expected: str, cli: Run
) -> None:
    code, _, err = cli(*argv)
    assert code == ExitCode.USAGE_ERROR
    assert expected in err
    assert "--help" in err
    assert err.count("compval") == 2  # "compval: error: ..." and "See 'compval ... --help'"


# -- errors found by checks: the run completes, the gate closes ----------------------------
def test_empty_named_segment_is_inconclusive_and_lists_present_segments(
    work: Path, tmp_path: Path, cli: Run
) -> None:
    spec = _criterion(metric="accuracy_score", max_drop=0.01, segment="region=nowhere")
    code, _, _ = _validate(cli, work, tmp_path, spec)

    assert code == ExitCode.CHECKS_FAILED
    check = checks_by(read_report(tmp_path / "out"), "c")["region=nowhere"]
    assert check["verdict"] == "inconclusive"
    assert check["blocking"] is True
    assert "'region=nowhere' has no rows" in check["message"]
    assert "region=north" in check["message"] and "region=south" in check["message"]


def test_empty_segment_hint_lists_the_values_of_its_column(tmp_path: Path, cli: Run) -> None:
    write_models(tmp_path)
    plan = Plan(600, seed=22)
    plan.correct_to_wrong(40)
    frame = plan.frame().rename(columns={"region": "zone"})
    frame.to_parquet(tmp_path / "data.parquet")
    spec = base_spec(
        data={"path": "data.parquet", "labels": "y", "segments": ["zone"]},
        statistics={"replicates": 0, "top_slices": 10},
        criteria=[{"id": "c", "metric": "accuracy_score", "max_drop": 0.01, "segment": "zone=x"}],
    )
    write_yaml(tmp_path / "spec.yaml", spec)

    code, _, _ = cli("validate", tmp_path / "spec.yaml", "--report-dir", tmp_path / "out")

    assert code == ExitCode.CHECKS_FAILED
    message = checks_by(read_report(tmp_path / "out"), "c")["zone=x"]["message"]
    assert "zone=north" in message and "zone=south" in message
    assert "slice:" not in message


def _nan_data(work: Path, tmp_path: Path) -> Path:
    """data.parquet where rows 0-2 have a negative marker: the NaN model outputs NaN there."""
    frame = Plan(300, seed=23).frame()
    frame.loc[:2, "f3"] = -1.0
    frame.to_parquet(tmp_path / "nan_data.parquet")
    write_classifier(tmp_path / "nan.onnx", reference_weights(), nan_marker=True)
    return tmp_path


@pytest.mark.parametrize("allow_nonfinite", [False, True])
def test_nan_in_candidate_outputs_fails_the_built_in_check_unless_allowed(
    work: Path, tmp_path: Path, cli: Run, allow_nonfinite: bool
) -> None:
    _nan_data(work, tmp_path)
    spec = base_spec(
        candidates=[{"name": "cand", "path": str(tmp_path / "nan.onnx")}],
        data={"path": str(tmp_path / "nan_data.parquet"), "labels": "y", "segments": ["region"]},
        allow_nonfinite=allow_nonfinite,
    )
    write_yaml(
        tmp_path / "spec.yaml",
        {**spec, "reference": {"name": "ref", "path": str(work / "ref.onnx")}},
    )

    code, _, _ = cli("validate", tmp_path / "spec.yaml", "--report-dir", tmp_path / "out")

    report = read_report(tmp_path / "out")
    nonfinite = metric(report, "nonfinite_count")
    assert nonfinite["reference_value"] == 0
    assert nonfinite["candidate_value"] > 0
    assert metric(report, "nan_count")["candidate_value"] == nonfinite["candidate_value"]
    ids = {c["id"] for c in report["checks"]}
    if allow_nonfinite:
        assert code == ExitCode.OK
        assert ids == {"accuracy"}
    else:
        assert code == ExitCode.CHECKS_FAILED
        check = checks_by(report, "nonfinite-outputs")[None]
        assert check["verdict"] == "fail"
        assert check["observed"] == nonfinite["candidate_value"]
        assert "allow_nonfinite" in check["message"]
        # Only the NaN check fails: three wrong rows out of 300 stay within the 2-point margin.
        assert checks_by(report, "accuracy")[None]["verdict"] == "pass"
