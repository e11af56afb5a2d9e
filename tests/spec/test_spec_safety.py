"""Specs that used to hang, flood the terminal or be read as something else.

* A YAML alias bomb (1 KB expanding to 10^9 values) is refused at once (exit 4), and no error
  message echoes more than a couple of hundred characters of a value.
* Booleans and integers are strict: ``allow_pickle: "on"`` is not true (and the pickle is not
  loaded), ``batch_size: true`` is not 1. Floats still accept integers.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from compval.cli.main import ExitCode, main
from compval.errors import InvalidParameterError, SpecParseError, SpecValidationError
from compval.spec import AcceptanceSpec, load_spec, parse_spec

Run = Callable[..., tuple[ExitCode, str, str]]

BASE = """\
version: 1
reference: {path: ref.onnx}
candidates: [{path: cand.onnx}]
data: {path: data.parquet, labels: y}
"""


def _bomb(levels: int = 9) -> str:
    parts = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return BASE + "batch_size: [" + ", ".join(parts) + "]\n"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        return code, out, err

    return run


# -- alias bombs and echoed values -----------------------------------------------------------
def test_alias_bomb_exits_4_within_a_second(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(), encoding="utf-8")
    assert path.stat().st_size < 1024
    start = time.perf_counter()
    code, _, err = cli("validate", path, "--report-dir", tmp_path / "out")
    elapsed = time.perf_counter() - start
    assert code == ExitCode.USAGE_ERROR
    assert elapsed < 2.0
    assert "aliases" in err and "expand" in err
    assert len(err) < 1000


def test_recursive_alias_and_deep_nesting_are_spec_errors() -> None:
    with pytest.raises(SpecParseError, match="recursive alias"):
        parse_spec(BASE + "batch_size: &a [*a]\n", fmt="yaml")
    with pytest.raises(SpecParseError, match="nested too deeply"):
        parse_spec(BASE + "batch_size: " + "[" * 5000 + "]" * 5000 + "\n", fmt="yaml")


def test_small_aliases_and_merge_keys_still_work() -> None:
    text = """\
version: 1
reference: &model {path: ref.onnx, threads: 2}
candidates: [{<<: *model, path: cand.onnx}]
data: {path: data.parquet, labels: y, segments: &segments [region]}
criteria:
  - {id: a, metric: accuracy_score, max_drop: 0.01, candidates: [cand]}
"""
    spec = parse_spec(text, fmt="yaml")
    assert spec.candidates[0].threads == 2 and spec.candidates[0].path == "cand.onnx"
    assert spec.reference.path == "ref.onnx"


@pytest.mark.parametrize(
    "extra",
    [
        # A wrong type whose value is a modest alias expansion (~1,000 values).
        "batch_size: [&a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [*a, *a, *a, *a, *a, *a, *a, *a, *a]]\n",
        "task: {outputs: " + "x" * 100_000 + "}\n",
        "performance: {target: " + "y" * 100_000 + "}\n",
        "criteria: [{id: a, metric: accuracy_score, max_drop: '" + "9" * 100_000 + "'}]\n",
    ],
    ids=["aliased-list", "long-choice", "long-target", "long-number-text"],
)
def test_echoed_values_are_cut_to_about_200_characters(extra: str) -> None:
    with pytest.raises(SpecValidationError) as info:
        parse_spec(BASE + extra, fmt="yaml")
    message = str(info.value)
    assert len(message) < 1000
    for line in message.splitlines():
        assert len(line) < 600


# -- strict booleans and integers ------------------------------------------------------------
class _Tripwire:
    """Unpickling this writes a marker file: proof that the pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.system, (f"echo loaded > {self.marker}",))


def test_quoted_on_is_not_permission_to_unpickle(tmp_path: Path, cli: Run) -> None:
    marker = tmp_path / "unpickled"
    with (tmp_path / "cand.pkl").open("wb") as handle:
        pickle.dump(_Tripwire(marker), handle)
    spec = yaml.safe_load(BASE)
    spec["reference"] = {"path": str(tmp_path / "cand.pkl"), "allow_pickle": "on"}
    spec["candidates"] = [{"path": str(tmp_path / "cand.pkl"), "allow_pickle": "yes"}]
    spec["data"]["path"] = str(tmp_path / "data.parquet")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")

    code, _, err = cli("validate", path, "--report-dir", tmp_path / "out")

    assert code == ExitCode.USAGE_ERROR
    assert "allow_pickle" in err and "true or false" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("batch_size: true\n", "batch_size"),
        ("batch_size: '8'\n", "batch_size"),
        ("batch_size: 8.0\n", "batch_size"),
        ("seed: '7'\n", "seed"),
        ("allow_nonfinite: 'false'\n", "allow_nonfinite"),
        ("allow_nonfinite: 0\n", "allow_nonfinite"),
        ("statistics: {replicates: '200'}\n", "statistics.replicates"),
        ("statistics: {discovery: 'off'}\n", "statistics.discovery"),
        ("criteria: [{id: a, metric: accuracy_score, max_drop: '0.01'}]\n", "max_drop"),
        ("criteria: [{id: a, metric: accuracy_score, max_drop: true}]\n", "max_drop"),
        ("performance: {batch_sizes: [1, '8']}\n", "performance.batch_sizes[1]"),
        ("performance: {measure_memory: 'no'}\n", "performance.measure_memory"),
    ],
)
def test_lax_values_are_refused_with_the_field(extra: str, field: str) -> None:
    with pytest.raises(SpecValidationError, match=field.replace("[", r"\[")):
        parse_spec(BASE + extra, fmt="yaml")


def test_version_true_is_not_version_1() -> None:
    with pytest.raises(SpecValidationError, match="version"):
        parse_spec(BASE.replace("version: 1", "version: true"), fmt="yaml")


def test_numbers_that_are_numbers_are_accepted() -> None:
    spec = parse_spec(
        BASE + "batch_size: 64\nseed: -3\ncriteria: [{id: a, metric: accuracy_score, min: 1}]\n",
        fmt="yaml",
    )
    assert spec.batch_size == 64 and spec.seed == -3
    assert spec.criteria[0].min == 1.0 and isinstance(spec.criteria[0].min, float)
    # From Python, numpy scalars are numbers too.
    raw = yaml.safe_load(BASE)
    raw.update(batch_size=np.int64(32), allow_nonfinite=np.bool_(True))
    built = AcceptanceSpec.model_validate(raw)
    assert built.batch_size == 32 and built.allow_nonfinite is True


# -- load_spec takes a mapping ---------------------------------------------------------------
def test_load_spec_takes_a_mapping_and_refuses_other_types() -> None:
    loaded = load_spec(yaml.safe_load(BASE))
    assert loaded.path is None and loaded.spec.data.labels == "y"
    with pytest.raises(InvalidParameterError, match="got int"):
        load_spec(3)  # type: ignore[arg-type]
