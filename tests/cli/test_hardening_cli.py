"""Issue 15's remaining hardening items, through the CLI (or the public API) on real models.

The models are real exports: scikit-learn classifiers through skl2onnx with its default
options (a ``label`` output and a ZipMap of probabilities), the candidate made from the
reference by onnxruntime's ``quantize_dynamic``, and torch modules through ``torch.onnx.export``
without dynamic axes (a batch dimension fixed to the example's). Expected numbers come from
onnxruntime run directly on the files, not from compval.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_builders import read_report, write_yaml

import compval.engine._profile as profile_engine
from compval import run_validation
from compval.cli.main import ExitCode, build_parser, main
from compval.errors import DataError, SpecValidationError

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

Run = Callable[..., tuple[ExitCode, str, str]]
FEATURES = ["f0", "f1", "f2", "f3"]
N_ROWS = 3000


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    return run


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.4 * rng.standard_normal(n) > 0).astype(np.int64)
    return x, y


def _export(path: Path, estimator: Any, x: np.ndarray) -> Path:
    from skl2onnx import to_onnx

    path.write_bytes(to_onnx(estimator, x[:1]).SerializeToString())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ref.onnx (an MLP, skl2onnx defaults) and cand.onnx (its dynamic INT8 quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    work = tmp_path_factory.mktemp("hardening")
    x, y = _rows(2000, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((16,), max_iter=200, random_state=0).fit(x, y)
    _export(work / "ref.onnx", mlp, x)
    quantize_dynamic(str(work / "ref.onnx"), str(work / "cand.onnx"), weight_type=QuantType.QInt8)
    return work


def _frame(n: int = N_ROWS, seed: int = 2) -> pd.DataFrame:
    x, y = _rows(n, seed)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["y"] = y
    return frame


def _predicted(model: Path, frame: pd.DataFrame) -> np.ndarray:
    """The model's predicted labels, from onnxruntime directly."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    labels = session.run(None, {name: frame[FEATURES].to_numpy(np.float32)})[0]
    return np.asarray(labels).reshape(-1)


def _compare(cli: Run, models: Path, data: Path, out: Path, *flags: object) -> tuple[Any, ...]:
    return cli(
        "compare",
        models / "ref.onnx",
        models / "cand.onnx",
        "--data",
        data,
        "--labels",
        "y",
        "--replicates",
        "0",
        "--report-dir",
        out,
        "--quiet",
        *flags,
    )


def _segment_metric(report: dict[str, Any], metric: str, segment: str | None) -> dict[str, Any]:
    (found,) = [m for m in report["metrics"] if m["metric"] == metric and m["segment"] == segment]
    return found


# -- 1. segment cardinality ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_id_like_segment_column_stops_at_open_naming_column_count_and_key(
    cli: Run, models: Path, tmp_path: Path, suffix: str
) -> None:
    frame = _frame(100_000)
    frame["row_id"] = np.arange(len(frame)).astype(str)
    data = tmp_path / f"ids{suffix}"
    frame.to_parquet(data) if suffix == ".parquet" else frame.to_csv(data, index=False)

    code, _, err = _compare(cli, models, data, tmp_path / "out", "--segments", "row_id")

    assert code == ExitCode.RUN_ERROR
    assert "'row_id'" in err and "data.max_segment_values" in err and "1,000" in err
    # Counting stopped at the first block that crossed the limit, not after 100,000 rows.
    found = re.search(r"got ([\d,]+) in its first", err)
    assert found is not None, err
    assert 1000 < int(found.group(1).replace(",", "")) < 100_000
    assert not (tmp_path / "out" / "report.json").exists()


def test_in_memory_data_is_capped_while_it_streams(models: Path, tmp_path: Path) -> None:
    frame = _frame(20_000)
    frame["row_id"] = np.arange(len(frame))
    spec = {
        "version": 1,
        "reference": {"name": "ref", "path": str(models / "ref.onnx")},
        "candidates": [{"name": "cand", "path": str(models / "cand.onnx")}],
        "data": {"path": "unused.parquet", "labels": "y", "segments": ["row_id"]},
        "statistics": {"replicates": 0},
    }
    with pytest.raises(DataError, match=r"'row_id'.*data\.max_segment_values"):
        run_validation(spec, data=frame)


def test_max_segment_values_flag_raises_the_limit(cli: Run, models: Path, tmp_path: Path) -> None:
    frame = _frame(600)
    frame["store"] = (np.arange(len(frame)) % 120).astype(str)
    data = tmp_path / "stores.parquet"
    frame.to_parquet(data)

    code, _, err = _compare(
        cli, models, data, tmp_path / "low", "--segments", "store", "--max-segment-values", "100"
    )
    assert code == ExitCode.RUN_ERROR
    assert "'store'" in err and "got 120" in err

    code, _, err = _compare(
        cli, models, data, tmp_path / "high", "--segments", "store", "--max-segment-values", "120"
    )
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED), err
    segments = {m["segment"] for m in read_report(tmp_path / "high")["metrics"]}
    assert {f"store={i}" for i in range(120)} <= segments


def test_discovery_skips_a_column_no_slice_of_which_can_be_tested(
    cli: Run, models: Path, tmp_path: Path
) -> None:
    frame = _frame()
    frame["shop"] = (np.arange(len(frame)) % 300).astype(str)  # 10 rows per value
    frame["half"] = np.where(np.arange(len(frame)) % 2 == 0, "even", "odd")
    data = tmp_path / "shops.parquet"
    frame.to_parquet(data)

    code, _, err = _compare(cli, models, data, tmp_path / "out", "--segments", "shop,half")

    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED), err
    report = read_report(tmp_path / "out")
    notes = [n for n in report["run"]["notes"] if "Weak-slice search" in n]
    assert len(notes) == 1
    assert "'shop'" in notes[0] and "300" in notes[0] and "min_rows" in notes[0]
    # Its segments are reported all the same, each with its 10 rows.
    assert _segment_metric(report, "accuracy_score", "shop=7")["n"] == 10
    assert _segment_metric(report, "accuracy_score", "half=odd")["n"] == N_ROWS // 2


# -- 2. missing segment values vs the text <NA> ----------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_missing_values_and_the_text_na_are_two_segments(
    cli: Run, models: Path, tmp_path: Path, suffix: str
) -> None:
    frame = _frame()
    third = len(frame) // 3
    kind = np.array(["a"] * len(frame), dtype=object)
    kind[:third] = None
    kind[third : 2 * third] = "<NA>"
    frame["kind"] = kind
    # A numeric segment with missing values (NaN): numbers and the missing segment together.
    frame["size"] = np.where(np.arange(len(frame)) % 4 == 0, np.nan, np.arange(len(frame)) % 2)
    data = tmp_path / f"na{suffix}"
    frame.to_parquet(data) if suffix == ".parquet" else frame.to_csv(data, index=False)

    code, _, err = _compare(cli, models, data, tmp_path / "out", "--segments", "kind,size")

    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED), err
    report = read_report(tmp_path / "out")
    correct = _predicted(models / "ref.onnx", frame) == frame["y"].to_numpy()
    rows = {
        "kind=<NA>": np.arange(len(frame)) < third,
        'kind="<NA>"': (np.arange(len(frame)) >= third) & (np.arange(len(frame)) < 2 * third),
        "kind=a": np.arange(len(frame)) >= 2 * third,
        "size=<NA>": np.arange(len(frame)) % 4 == 0,
    }
    for segment, mask in rows.items():
        found = _segment_metric(report, "accuracy_score", segment)
        assert found["n"] == mask.sum(), segment
        assert found["reference_value"] == pytest.approx(correct[mask].mean()), segment


# -- 3. limits checked before any model runs ----------------------------------------------
def test_profile_refuses_an_absurd_batch_size_at_once(cli: Run, models: Path) -> None:
    code, _, err = cli(
        "profile", models / "ref.onnx", models / "cand.onnx", "--batch-sizes", "100000000"
    )
    assert code == ExitCode.USAGE_ERROR
    assert "--batch-sizes" in err and "1,000,000" in err


def test_spec_batch_sizes_are_bounded(cli: Run, models: Path, tmp_path: Path) -> None:
    frame = _frame(200)
    frame.to_parquet(tmp_path / "data.parquet")
    spec = {
        "version": 1,
        "reference": {"name": "ref", "path": str(models / "ref.onnx")},
        "candidates": [{"name": "cand", "path": str(models / "cand.onnx")}],
        "data": {"path": "data.parquet", "labels": "y"},
        "performance": {"batch_sizes": [1, 100_000_000], "concurrency_batch_size": 10_000_000},
    }
    code, _, err = cli("validate", write_yaml(tmp_path / "spec.yaml", spec), "--quiet")
    assert code == ExitCode.USAGE_ERROR
    assert "performance.batch_sizes" in err and "concurrency_batch_size" in err


def test_profile_checks_batch_sizes_against_memory_before_timing(
    cli: Run, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 models + the pool, 20,000 rows of 4 float32 features: 960,000 bytes of inputs.
    monkeypatch.setattr(profile_engine, "physical_memory", lambda: 1_000_000)
    code, out, err = cli(
        "profile", models / "ref.onnx", models / "cand.onnx", "--batch-sizes", "1,20000"
    )
    assert code == ExitCode.USAGE_ERROR
    assert "--batch-sizes" in err and "20,000" in err and "memory" in err
    assert out == ""  # nothing was timed or reported


def test_validate_checks_profile_memory_before_loading_models(
    cli: Run, models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profile_engine, "physical_memory", lambda: 1_000_000)
    _frame(200).to_parquet(tmp_path / "data.parquet")
    spec = {
        "version": 1,
        "reference": {"name": "ref", "path": str(models / "ref.onnx")},
        # Never opened: the limit is checked first (a missing model would exit 5).
        "candidates": [{"name": "cand", "path": str(tmp_path / "missing.onnx")}],
        "data": {"path": "data.parquet", "labels": "y"},
        "performance": {"batch_sizes": [1, 20_000]},
    }
    code, _, err = cli("validate", write_yaml(tmp_path / "spec.yaml", spec), "--quiet")
    assert code == ExitCode.USAGE_ERROR
    assert "performance.batch_sizes" in err and "20,000" in err


# -- 4. fixed-batch models -----------------------------------------------------------------
@pytest.fixture(scope="module")
def fixed_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """torch.onnx.export of one MLP without dynamic axes, at example batches of 1 and 4."""
    torch = pytest.importorskip("torch")
    work = tmp_path_factory.mktemp("fixed")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    out = {}
    for rows in (1, 4):
        out[rows] = work / f"fixed{rows}.onnx"
        # dynamo=False: the exporter that needs no onnxscript (its deprecation warning is
        # torch's); both exporters fix the batch to the example's without dynamic axes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net.eval(), torch.zeros(rows, 4), str(out[rows]), dynamo=False)
    return out


@pytest.mark.torch
def test_fixed_batch_model_message_names_the_batch_dimension_and_the_setting(
    cli: Run, fixed_batch: dict[int, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data.parquet"
    _frame(300).to_parquet(data)
    model = fixed_batch[1]
    args = ("compare", model, model, "--data", data, "--labels", "y", "--replicates", "0")

    code, _, err = cli(*args, "--report-dir", tmp_path / "a", "--quiet")

    assert code == ExitCode.RUN_ERROR
    assert "fixed batch dimension of 1" in err and "256 rows" in err
    assert "batch_size: 1" in err and "--batch-size 1" in err
    assert "feature columns" not in err
    code, _, err = cli(*args, "--batch-size", "1", "--report-dir", tmp_path / "b", "--quiet")
    assert code == ExitCode.OK, err


@pytest.mark.torch
def test_profile_runs_a_fixed_batch_model_with_the_flags_it_suggests(
    cli: Run, fixed_batch: dict[int, Path], tmp_path: Path
) -> None:
    model = fixed_batch[4]
    code, _, err = cli("profile", model, model, "--report-dir", tmp_path / "a", "--quiet")
    assert code == ExitCode.RUN_ERROR
    flags = re.findall(r"--[a-z-]+ \d+", err)
    assert flags == ["--batch-sizes 4", "--concurrency-batch-size 4"]

    code, _, err = cli(
        "profile", model, model, *" ".join(flags).split(), "--concurrency", "1",
        "--report-dir", tmp_path / "b", "--format", "json", "--quiet",
    )  # fmt: skip

    assert code == ExitCode.OK, err
    names = {m["metric"] for m in read_report(tmp_path / "b")["metrics"]}
    assert {"latency_p50_ms[batch=4]", "concurrent_throughput_sps[clients=1]"} <= names


def _cli_flags() -> set[str]:
    parser = build_parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    for action in parser._actions:
        for sub in getattr(action, "choices", None) or {}:
            flags |= {s for a in action.choices[sub]._actions for s in a.option_strings}
    return flags


_FLAG = re.compile(r"(?<![\w-])(?<!var\()--([a-z][a-z0-9-]+)(?![\w:-])")


def _message_strings(path: Path) -> list[str]:
    """Every string constant of a module except its docstrings (messages, help texts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_every_flag_a_message_suggests_exists() -> None:
    source = Path(__file__).resolve().parents[2] / "src" / "compval"
    known = _cli_flags()
    mentioned: dict[str, set[str]] = {}
    for path in source.rglob("*.py"):
        for text in _message_strings(path):
            for flag in _FLAG.findall(text):
                mentioned.setdefault(f"--{flag}", set()).add(path.name)
    assert "--concurrency-batch-size" in mentioned  # the scan sees the messages
    unknown = {flag: files for flag, files in mentioned.items() if flag not in known}
    assert unknown == {}


# -- 5. text label vocabularies ------------------------------------------------------------
@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two skl2onnx classifiers trained on the labels {"cat", "dog"}."""
    from sklearn.linear_model import LogisticRegression

    work = tmp_path_factory.mktemp("pets")
    x, y = _rows(1000, seed=3)
    names = np.where(y == 1, "dog", "cat")
    _export(work / "ref.onnx", LogisticRegression().fit(x, names), x)
    _export(work / "cand.onnx", LogisticRegression(C=0.01).fit(x, names), x)
    return work


def _label_spec(tmp_path: Path, pets: Path, labels: np.ndarray) -> Path:
    frame = _frame(600, seed=4)
    frame["y"] = labels
    frame.to_parquet(tmp_path / "data.parquet")
    spec = {
        "version": 1,
        "reference": {"name": "ref", "path": str(pets / "ref.onnx"), "output": "output_label"},
        "candidates": [{"name": "cand", "path": str(pets / "cand.onnx"), "output": "output_label"}],
        "data": {"path": "data.parquet", "labels": "y"},
        "statistics": {"replicates": 0},
        "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05}],
    }
    return write_yaml(tmp_path / "spec.yaml", spec)


def test_label_vocabularies_that_share_no_value_stop_the_run(
    cli: Run, pets: Path, tmp_path: Path
) -> None:
    y = _frame(600, seed=4)["y"].to_numpy()
    spec = _label_spec(tmp_path, pets, np.where(y == 1, "yes", "no"))

    code, _, err = cli("validate", spec, "--report-dir", tmp_path / "out", "--quiet")

    assert code == ExitCode.RUN_ERROR
    assert "'y'" in err and "data.labels" in err
    assert "'no', 'yes'" in err and "'cat', 'dog'" in err
    assert "Map the labels" in err


def test_partly_overlapping_vocabularies_are_noted_with_the_values_that_match_nothing(
    cli: Run, pets: Path, tmp_path: Path
) -> None:
    frame = _frame(600, seed=4)
    x0 = frame["f0"].to_numpy()
    truth = _predicted(pets / "ref.onnx", frame)  # what the reference predicts
    labels = np.where(x0 > 1.0, "bird", truth).astype(object)
    spec = _label_spec(tmp_path, pets, labels)

    code, _, err = cli(
        "validate", spec, "--report-dir", tmp_path / "out", "--format", "json", "--quiet"
    )

    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED), err
    report = read_report(tmp_path / "out")
    notes = [n for n in report["run"]["notes"] if "never predicts" in n]
    assert {n.split("'")[1] for n in notes} == {"ref", "cand"}
    assert all("'bird'" in n and "'y'" in n for n in notes)
    accuracy = _segment_metric(report, "accuracy_score", None)
    assert accuracy["reference_value"] == pytest.approx(np.mean(labels == truth))


# -- 6. echoed metric names ----------------------------------------------------------------
def test_an_unknown_metric_is_echoed_short_and_escaped(models: Path) -> None:
    metric = "accuracy\x1b[31m" + "x" * 50_000
    spec = {
        "version": 1,
        "reference": {"name": "ref", "path": str(models / "ref.onnx")},
        "candidates": [{"name": "cand", "path": str(models / "cand.onnx")}],
        "data": {"path": "unused.parquet", "labels": "y"},
        "criteria": [{"id": "c", "metric": metric, "min": 0.5}],
    }
    with pytest.raises(SpecValidationError, match=r"criteria\[0\]\.metric") as caught:
        run_validation(spec, data=_frame(100))
    message = str(caught.value)
    assert "\x1b" not in message and "\\x1b" in message
    assert len(message) < 600
