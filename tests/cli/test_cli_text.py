"""What people read from the CLI: help texts, error lines, the console view, the new flags."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_builders import Plan, base_spec, write_models, write_yaml

from compval.cli.main import ExitCode, main

Run = Callable[..., tuple[ExitCode, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("COLUMNS", "80")  # a CI log

    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        return code, out, err

    return run


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("text")
    write_models(work)
    plan = Plan(600, seed=4)
    plan.pick((plan.region == "north") & (plan.ref_pred == plan.y) & (plan.y != 1), 40)
    frame = plan.frame()
    frame.to_parquet(work / "data.parquet")
    frame.assign(note="free text").to_parquet(work / "noted.parquet")
    return work


# -- help texts ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["validate", "compare", "profile", "init", "demo"])
def test_every_help_lists_the_exit_codes_including_2(command: str, cli: Run) -> None:
    code, out, _ = cli(command, "--help")
    assert code == ExitCode.OK
    text = " ".join(out.split())
    assert "2 interrupted" in text and "4 usage" in text and "5 model" in text


def test_demo_help_prints_a_single_percent_sign(cli: Run) -> None:
    _, out, _ = cli("demo", "--help")
    assert "50% magnitude" in " ".join(out.split())
    assert "%%" not in out


def test_seed_flags_have_help_and_compare_replicates_does_not_mention_a_spec(cli: Run) -> None:
    for command in ("compare", "profile", "demo"):
        _, out, _ = cli(command, "--help")
        seed_help = " ".join(out.split("\n  --seed SEED", 1)[1].split()[:3])
        assert seed_help.startswith("seed"), (command, seed_help)
    _, out, _ = cli("compare", "--help")
    after = out.split("\n  --replicates REPLICATES", 1)[1]
    replicates = " ".join(after.split("\n  --", 1)[0].split("\n\n", 1)[0].split())
    assert "spec" not in replicates and "2000" in replicates


def test_readme_lists_every_exit_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for code in ("**0**", "**1**", "**2**", "**3**", "**4**", "**5**"):
        assert code in readme


# -- error lines -----------------------------------------------------------------------------
def test_unknown_command_has_one_prefix(cli: Run) -> None:
    code, _, err = cli("frobnicate")
    assert code == ExitCode.USAGE_ERROR
    assert err.startswith("compval: error: unknown command 'frobnicate'")
    assert "compval: error: compval" not in err


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "true"], "--batch-size"),
        (["--batch-size", "1_000"], "--batch-size"),
        (["--seed", "1.5"], "--seed"),
        (["--replicates", "-3"], "--replicates"),
    ],
)
def test_bad_numbers_in_flags_are_blamed_on_the_flag(
    flags: list[str], flag: str, work: Path, tmp_path: Path, cli: Run
) -> None:
    code, _, err = cli(
        "compare", work / "ref.onnx", work / "same.onnx", "--data", work / "data.parquet",
        "--report-dir", tmp_path / "out", *flags,
    )  # fmt: skip
    assert code == ExitCode.USAGE_ERROR
    assert f"argument {flag}" in err
    assert "spec" not in err
    assert len(err.strip().splitlines()) == 1


def test_invalid_flag_values_name_the_command_once(work: Path, tmp_path: Path, cli: Run) -> None:
    for task in ("", "moon"):
        code, _, err = cli(
            "compare", work / "ref.onnx", work / "same.onnx", "--data", work / "data.parquet",
            "--task", task, "--report-dir", tmp_path / "a",
        )  # fmt: skip
        assert code == ExitCode.USAGE_ERROR
        assert err.startswith("compval: error: compare: argument --task: unknown task")
    code, _, err = cli(
        "compare", work / "ref.onnx", work / "same.onnx", "--data", work / "data.parquet",
        "--output", "", "--report-dir", tmp_path / "a",
    )  # fmt: skip
    assert code == ExitCode.USAGE_ERROR
    assert err.startswith("compval: error: compare: invalid arguments") and "output" in err
    code, _, err = cli(
        "profile", work / "ref.onnx", work / "same.onnx", "--target", "moon",
        "--report-dir", tmp_path / "b",
    )  # fmt: skip
    assert code == ExitCode.USAGE_ERROR
    assert err.startswith("compval: error: profile: invalid flags") and "moon" in err


# -- the console view ------------------------------------------------------------------------
def _validate(cli: Run, work: Path, tmp_path: Path, *flags: str) -> tuple[ExitCode, str, str]:
    spec = base_spec(
        reference={"name": "ref", "path": str(work / "ref.onnx")},
        candidates=[{"name": "cand", "path": str(work / "push.onnx")}],
        data={"path": str(work / "data.parquet"), "labels": "y", "segments": ["region"]},
        criteria=[
            {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.2},
            {"id": "accuracy-per-segment", "metric": "accuracy_score", "max_drop": 0.02,
             "segment": "*"},
            {"id": "agreement", "metric": "top1_agreement", "min": 0.99, "severity": "warn"},
        ],
    )  # fmt: skip
    path = write_yaml(tmp_path / "spec.yaml", spec)
    return cli("validate", path, "--report-dir", tmp_path / "out", *flags)


def test_default_view_fits_80_columns_and_prints_the_verdict_once(
    work: Path, tmp_path: Path, cli: Run
) -> None:
    code, out, _ = _validate(cli, work, tmp_path)
    assert code == ExitCode.CHECKS_FAILED
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert out.count("compval: FAILED") == 1
    assert lines[-1].startswith("compval: FAILED")
    assert "cand: FAILED" in out
    assert "accuracy-per-segment[cand][region=north]" in out  # a one-line reason
    assert "Headline metrics" in out and "accuracy_score" in out
    assert "Checks" not in out  # the full table is for --verbose


def test_verbose_prints_the_full_tables(work: Path, tmp_path: Path, cli: Run) -> None:
    code, out, _ = _validate(cli, work, tmp_path, "--verbose")
    assert code == ExitCode.CHECKS_FAILED
    assert "Checks" in out and "Overall metrics: cand" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.count("compval: FAILED") == 1


def test_quiet_prints_only_the_verdict(work: Path, tmp_path: Path, cli: Run) -> None:
    _, out, _ = _validate(cli, work, tmp_path, "--quiet")
    (line,) = out.strip().splitlines()
    assert re.fullmatch(r"compval: FAILED \(1 candidate\(s\), \d+ checks\)", line)
    code, _, err = _validate(cli, work, tmp_path, "--quiet", "--verbose")
    assert code == ExitCode.USAGE_ERROR and "not allowed with" in err


@pytest.mark.parametrize("command", ["compare", "demo"])
def test_verbose_flag_exists_for_compare_and_demo(command: str, cli: Run) -> None:
    _, out, _ = cli(command, "--help")
    assert "--verbose" in out


# -- compare's new flags ---------------------------------------------------------------------
def _compare(cli: Run, work: Path, out: Path, data: str, *flags: str) -> tuple[ExitCode, str, str]:
    return cli(
        "compare", work / "ref.onnx", work / "push.onnx", "--data", work / data,
        "--labels", "y", "--segments", "region", "--report-dir", out, "--quiet", *flags,
    )  # fmt: skip


def test_compare_features_selects_the_model_inputs(work: Path, tmp_path: Path, cli: Run) -> None:
    code, _, err = _compare(cli, work, tmp_path / "a", "noted.parquet")
    assert code == ExitCode.RUN_ERROR and "note" in err  # a text column is not an input
    code, _, _ = _compare(cli, work, tmp_path / "b", "noted.parquet", "--features", "f0,f1,f2,f3")
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)


def test_compare_output_names_the_compared_output(work: Path, tmp_path: Path, cli: Run) -> None:
    code, _, _ = _compare(cli, work, tmp_path / "a", "data.parquet", "--output", "probs")
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    code, _, err = _compare(cli, work, tmp_path / "b", "data.parquet", "--output", "nope")
    assert code == ExitCode.RUN_ERROR and "nope" in err


def test_compare_no_discovery_skips_the_slice_search(work: Path, tmp_path: Path, cli: Run) -> None:
    _compare(cli, work, tmp_path / "on", "data.parquet")
    _compare(cli, work, tmp_path / "off", "data.parquet", "--no-discovery")
    on = json.loads((tmp_path / "on" / "report.json").read_text(encoding="utf-8"))
    off = json.loads((tmp_path / "off" / "report.json").read_text(encoding="utf-8"))
    assert on["statistics"]["discovered"]  # the pushed rows make a weak slice
    assert not off["statistics"]["discovered"]
