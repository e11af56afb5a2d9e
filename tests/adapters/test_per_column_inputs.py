"""A model with one input per column, as skl2onnx exports a pipeline fitted on a DataFrame.

``skl2onnx.to_onnx(pipeline, df[:1])`` gives the model one ``[?, 1]`` input per DataFrame
column, named after it. A parquet or CSV file reaches a model as one array of its feature
columns, so before, every such model stopped with "input names do not match". The columns are
now fed by name. The expected numbers come from onnxruntime sessions fed by hand, column by
column, on the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from compval.adapters import bind_inputs
from compval.cli.main import ExitCode, main
from compval.engine import run_validation
from compval.errors import InputMismatchError
from compval.spec import spec_from_mapping
from compval.types import TensorSpec

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

COLUMNS = ["income", "age", "score", "tenure"]


def _frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(3.0, 0.5, rows).astype(np.float32),
            "age": rng.integers(18, 80, rows).astype(np.int64),  # an int64 input
            "score": rng.normal(size=rows).astype(np.float32),
            "tenure": rng.normal(size=rows).astype(np.float32),
        }
    )
    logits = np.stack(
        [
            frame.score + 0.3 * frame.tenure,
            (frame.age - 50) / 15.0,
            np.log(frame.income) - 3.0,
        ],
        axis=1,
    )
    labels = np.argmax(logits + rng.normal(scale=0.6, size=logits.shape), axis=1)
    return frame, labels


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An fp32 pipeline exported from a DataFrame with defaults, and its dynamic INT8 copy."""
    folder = tmp_path_factory.mktemp("per_column")
    frame, labels = _frame(3000, seed=0)
    pipeline = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0)
    ).fit(frame, labels)
    ref, cand = _export_pair(pipeline, frame, folder)
    types = {i.name: i.type.tensor_type.elem_type for i in _onnx_inputs(ref)}
    # One input per column, as the exporter made it; 'age' is INT64.
    assert types == {"income": 1, "age": 7, "score": 1, "tenure": 1}
    return ref, cand


def _export_pair(pipeline: Any, frame: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """The pipeline exported with skl2onnx's defaults (scores, not ZipMap), and its dynamic
    INT8 version."""
    onx = skl2onnx.to_onnx(pipeline, frame[:1], options={"zipmap": False})
    ref = folder / "fp32.onnx"
    ref.write_bytes(onx.SerializeToString())
    cand = folder / "int8.onnx"
    quantization.quantize_dynamic(str(ref), str(cand), weight_type=quantization.QuantType.QInt8)
    return ref, cand


def _onnx_inputs(path: Path) -> Any:
    import onnx

    return onnx.load(str(path)).graph.input


def _by_hand(path: Path, frame: pd.DataFrame, batch_size: int = 256) -> np.ndarray:
    """Predicted classes of an onnxruntime session fed each column by its input name.

    In batches of the run's size: a dynamically quantized model computes its input scales
    per batch, so its answers depend on the batching.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {"tensor(int64)": np.int64, "tensor(string)": object, "tensor(float)": np.float32}
    columns = {
        t.name: frame[t.name].to_numpy(dtypes[t.type]).reshape(-1, 1) for t in session.get_inputs()
    }
    predicted = []
    for start in range(0, len(frame), batch_size):
        feed = {name: column[start : start + batch_size] for name, column in columns.items()}
        predicted.append(np.argmax(session.run(["probabilities"], feed)[0], axis=1))
    return np.concatenate(predicted)


def _spec(
    ref: Path, cand: Path, data: Path, sections: dict[str, Any] | None = None, **data_keys: Any
) -> Any:
    return spec_from_mapping(
        {
            **(sections or {}),
            "version": 1,
            "task": "classification",
            "reference": {"name": "fp32", "path": str(ref), "output": "probabilities"},
            "candidates": [{"name": "int8", "path": str(cand), "output": "probabilities"}],
            "data": {"path": str(data), "labels": "label", "segments": ["region"], **data_keys},
            "statistics": {"replicates": 200},
            "criteria": [
                {"id": "acc", "metric": "accuracy_score", "max_drop": 0.05},
                {"id": "seg", "metric": "accuracy_score", "max_drop": 0.2, "segment": "*"},
            ],
        }
    )


def _sections(*, batch_sizes: list[int], numerics: dict[str, Any]) -> dict[str, Any]:
    """A quick profile, the given numerics, a noise perturbation and a small search."""
    return {
        "performance": {
            "batch_sizes": batch_sizes,
            "concurrency": [1],
            "concurrency_duration_s": 0.1,
            "warmup": 1,
            "min_iterations": 3,
            "min_duration_s": 0.0,
            "rounds": 2,
            "measure_memory": False,
        },
        "numerics": numerics,
        "robustness": {
            "perturbations": [{"name": "noise", "kind": "noise", "params": {"std": 0.1}}],
            "search": {"seeds": 4, "epsilon": 0.2, "budget": 20},
        },
    }


def _data_file(folder: Path, suffix: str, *, extra: bool = False) -> tuple[Path, pd.DataFrame]:
    frame, labels = _frame(1500, seed=1)
    table = frame[["tenure", "score", "age", "income"]].copy()  # not the model's input order
    table["label"] = labels
    table["region"] = np.array(["north", "south", "east"])[np.arange(len(table)) % 3]
    if extra:
        table["row_id"] = np.arange(len(table), dtype=np.float64)
    path = folder / f"data{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path)
    return path, table


def _accuracy(report: Any, segment: str | None = None) -> tuple[float, float]:
    metric = next(
        m for m in report.metrics if m.metric == "accuracy_score" and m.segment == segment
    )
    return metric.reference_value, metric.candidate_value


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_each_column_feeds_the_input_of_its_name(
    models: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    ref, cand = models
    path, table = _data_file(tmp_path, suffix)
    report = run_validation(_spec(ref, cand, path))

    labels = table["label"].to_numpy()
    ref_hand, cand_hand = _by_hand(ref, table), _by_hand(cand, table)
    assert _accuracy(report) == (
        pytest.approx(float(np.mean(ref_hand == labels))),
        pytest.approx(float(np.mean(cand_hand == labels))),
    )
    south = table["region"].to_numpy() == "south"
    assert _accuracy(report, "region=south") == (
        pytest.approx(float(np.mean(ref_hand[south] == labels[south]))),
        pytest.approx(float(np.mean(cand_hand[south] == labels[south]))),
    )
    # Fed by position instead (the file's first column to the model's first input), the
    # reference would score far lower: the order matters, and names decide it.
    session_order = [i.name for i in ort.InferenceSession(str(ref)).get_inputs()]
    file_order = list(table.columns[:4])
    assert session_order != file_order
    by_position = table[file_order].set_axis(session_order, axis=1)
    by_position["age"] = by_position["age"].round()
    assert float(np.mean(ref_hand == labels)) > 0.7
    assert float(np.mean(_by_hand(ref, by_position) == labels)) < 0.5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_column_that_is_no_input_is_refused_until_the_features_are_listed(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cand = models
    path, table = _data_file(tmp_path, ".parquet", extra=True)
    with pytest.raises(InputMismatchError, match=r"'row_id' are no input of the model"):
        run_validation(_spec(ref, cand, path))
    report = run_validation(_spec(ref, cand, path, features=COLUMNS))
    labels = table["label"].to_numpy()
    assert _accuracy(report)[0] == pytest.approx(float(np.mean(_by_hand(ref, table) == labels)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_missing_column_is_named_with_exit_5(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, cand = models
    frame, labels = _frame(200, seed=2)
    table = frame.drop(columns=["tenure"]).assign(label=labels)
    table.to_parquet(tmp_path / "d.parquet")
    code = main(
        ["compare", str(ref), str(cand), "--data", str(tmp_path / "d.parquet"), "--labels",
         "label", "--report-dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == ExitCode.RUN_ERROR
    err = capsys.readouterr().err
    assert "the data has no column 'tenure'" in err and "data.features" in err
    assert "Traceback" not in err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_integer_input_whose_column_holds_fractions_is_refused(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Truncating 40.5 to 40 would change the data the model sees."""
    ref, cand = models
    path, table = _data_file(tmp_path, ".parquet")
    table["age"] = table["age"].astype(np.float64)
    table.loc[7, "age"] = 40.5
    table.to_parquet(path)
    with pytest.raises(InputMismatchError, match=r"input 'age' is int64\[\?, 1\].*40\.5"):
        run_validation(_spec(ref, cand, path))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_profile_numerics_and_robustness_feed_the_columns_too(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cand = models
    path, _ = _data_file(tmp_path, ".parquet")
    sections = _sections(batch_sizes=[1, 8], numerics={"sample": 64})
    spec = _spec(ref, cand, path, sections)
    report = run_validation(spec)
    assert report.profile is not None and report.numerics is not None
    assert set(report.profile.models) == {"fp32", "int8"}
    (numerics,) = report.numerics.candidates
    assert numerics.sample_rows == 64
    # Per-layer localization ran both graphs on the columns fed by name.
    assert numerics.layers and numerics.layer_min_sqnr_db is not None
    assert report.robustness is not None
    assert [m for m in report.metrics if m.metric == "robustness_gap"]
    # Noise on the int64 'age' column is no whole number: rounded, and the report says so.
    (note,) = [n for n in report.run.notes if "rounded to the nearest whole number" in n]
    assert "fp32: age" in note and "int8: age" in note


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_compval_profile_times_the_columns_of_a_data_file(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, cand = models
    path, _ = _data_file(tmp_path, ".csv")
    code = main(
        ["profile", str(ref), str(cand), "--data", str(path), "--labels", "label",
         "--segments", "region", "--batch-sizes", "1", "--concurrency", "1",
         "--report-dir", str(tmp_path / "out"), "--quiet"]
    )  # fmt: skip
    assert code == ExitCode.OK, capsys.readouterr().err


@pytest.mark.parametrize("rank", [1, 2])
def test_bind_inputs_slices_columns_by_name(rank: int) -> None:
    shape: tuple[int | None, ...] = (None,) if rank == 1 else (None, 1)
    spec = {
        "b": TensorSpec("b", np.dtype(np.float32), shape),
        "a": TensorSpec("a", np.dtype(np.int64), shape),
    }
    features = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    bound = bind_inputs("m", {"features": features}, spec, columns=["a", "b"])
    expected_a = np.array([1, 2, 3], np.int64)
    expected_b = np.array([10.0, 20.0, 30.0], np.float32)
    if rank == 2:
        expected_a, expected_b = expected_a[:, None], expected_b[:, None]
    assert bound["a"].dtype == np.int64 and np.array_equal(bound["a"], expected_a)
    assert bound["b"].dtype == np.float32 and np.array_equal(bound["b"], expected_b)
    assert bound["a"].flags.c_contiguous and bound["b"].flags.c_contiguous


def test_bind_inputs_without_column_names_leaves_the_mismatch_to_check_inputs() -> None:
    spec = {n: TensorSpec(n, np.dtype(np.float32), (None, 1)) for n in ("a", "b")}
    bound = bind_inputs("m", {"features": np.ones((2, 2))}, spec)
    assert list(bound) == ["features"]


def test_bind_inputs_keeps_models_whose_inputs_are_not_columns() -> None:
    """Two inputs of width 3 are no per-column model: nothing is split, whatever the names."""
    spec = {n: TensorSpec(n, np.dtype(np.float32), (None, 3)) for n in ("a", "b")}
    bound = bind_inputs("m", {"features": np.ones((2, 2))}, spec, columns=["a", "b"])
    assert list(bound) == ["features"]


def test_bind_inputs_rounds_perturbed_values_for_integer_inputs() -> None:
    spec = {n: TensorSpec(n, np.dtype(np.int64), (None, 1)) for n in ("a", "b")}
    features = np.array([[1.4, 2.0], [2.6, -3.5]])
    with pytest.raises(InputMismatchError, match=r"input 'a' is int64\[\?, 1\].*1\.4"):
        bind_inputs("m", {"features": features}, spec, columns=["a", "b"])
    bound = bind_inputs("m", {"features": features}, spec, columns=["a", "b"], round_integers=True)
    assert bound["a"].ravel().tolist() == [1, 3] and bound["b"].ravel().tolist() == [2, -4]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_pipeline_that_encodes_a_text_column_is_fed_from_npz_arrays(tmp_path: Path) -> None:
    """A text column is no part of a table's feature array: an .npz file holds one array per
    input, and its fixed-width text reaches the string input as str objects."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["lima", "oslo", "pune"], 1200),
            "x": rng.normal(size=1200).astype(np.float32),
        }
    )
    labels = (frame.x + 1.5 * (frame.city == "oslo") > 0.3).to_numpy().astype(np.int64)
    encode = ColumnTransformer([("city", OneHotEncoder(), ["city"]), ("x", "passthrough", ["x"])])
    pipeline = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    path = tmp_path / "mixed.onnx"
    path.write_bytes(
        skl2onnx.to_onnx(pipeline, frame[:1], options={"zipmap": False}).SerializeToString()
    )
    arrays = {c: frame[c].to_numpy().reshape(-1, 1) for c in frame}
    arrays["city"] = arrays["city"].astype(str)  # fixed-width text, as np.savez keeps it
    np.savez(tmp_path / "d.npz", **arrays, labels=labels)
    spec = spec_from_mapping(
        {
            "version": 1,
            "task": "classification",
            "reference": {"name": "ref", "path": str(path), "output": "probabilities"},
            "candidates": [{"name": "cand", "path": str(path), "output": "probabilities"}],
            "data": {"path": str(tmp_path / "d.npz"), "features": ["city", "x"],
                     "labels": "labels"},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "acc", "metric": "accuracy_score", "max_drop": 0.01}],
        }
    )  # fmt: skip
    report = run_validation(spec)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"city": arrays["city"].astype(object), "x": arrays["x"]}
    expected = np.argmax(session.run(["probabilities"], feed)[0], axis=1)
    assert _accuracy(report)[0] == pytest.approx(float(np.mean(expected == labels)))
    assert float(np.mean(expected == labels)) > 0.9


CITIES = np.array(["lima", "oslo", "pune", "kyiv"])


def _mixed_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    frame, labels = _frame(rows, seed)
    rng = np.random.default_rng(seed + 100)
    city = CITIES[rng.integers(0, len(CITIES), rows)]
    # The city moves the class: the text input matters to the model.
    labels = np.where(city == "oslo", (labels + 1) % 3, labels)
    return frame.drop(columns=["tenure"]).assign(city=city), labels


@pytest.fixture(scope="module")
def mixed_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A DataFrame pipeline that one-hot encodes a text column, exported with defaults."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    folder = tmp_path_factory.mktemp("mixed")
    frame, labels = _mixed_frame(3000, seed=0)
    encode = ColumnTransformer(
        [
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("numbers", StandardScaler(), ["income", "age", "score"]),
        ]
    )
    pipeline = make_pipeline(
        encode, MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0)
    ).fit(frame, labels)
    ref, cand = _export_pair(pipeline, frame, folder)
    types = {i.name: i.type.tensor_type.elem_type for i in _onnx_inputs(ref)}
    assert types == {"income": 1, "age": 7, "score": 1, "city": 8}  # float, int64, string
    return ref, cand


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("source", ["parquet", "csv", "dataframe"])
def test_a_text_column_feeds_the_string_input_of_its_name(
    mixed_models: tuple[Path, Path], tmp_path: Path, source: str
) -> None:
    ref, cand = mixed_models
    frame, labels = _mixed_frame(1500, seed=1)
    table = frame[["city", "score", "age", "income"]].assign(label=labels)
    table["region"] = np.array(["north", "south", "east"])[np.arange(len(table)) % 3]
    path = tmp_path / f"d.{'csv' if source == 'csv' else 'parquet'}"
    table.to_csv(path, index=False) if source == "csv" else table.to_parquet(path)
    spec = _spec(ref, cand, path)
    report = run_validation(spec, data=table if source == "dataframe" else None)

    ref_hand, cand_hand = _by_hand(ref, table), _by_hand(cand, table)
    assert _accuracy(report) == (
        pytest.approx(float(np.mean(ref_hand == labels))),
        pytest.approx(float(np.mean(cand_hand == labels))),
    )
    assert float(np.mean(ref_hand == labels)) > 0.7
    # The numbers are searched for weak slices; the text column only when it is a segment.
    assert [n for n in report.run.notes if "text feature column(s) 'city'" in n]
    assert report.statistics is not None and report.statistics.discovered is not None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_text_column_that_is_also_a_segment_is_searched_and_fed(
    mixed_models: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cand = mixed_models
    frame, labels = _mixed_frame(1500, seed=1)
    path = tmp_path / "d.parquet"
    frame.assign(label=labels, region="all").to_parquet(path)
    spec = spec_from_mapping(
        {
            "version": 1,
            "task": "classification",
            "reference": {"name": "fp32", "path": str(ref), "output": "probabilities"},
            "candidates": [{"name": "int8", "path": str(cand), "output": "probabilities"}],
            "data": {"path": str(path), "labels": "label", "segments": ["city"],
                     "features": ["city", "income", "age", "score"]},
            "statistics": {"replicates": 200},
            "criteria": [{"id": "seg", "metric": "accuracy_score", "max_drop": 0.2,
                          "segment": "city=*"}],
        }
    )  # fmt: skip
    report = run_validation(spec)
    ref_hand = _by_hand(ref, frame)
    oslo = frame["city"].to_numpy() == "oslo"
    assert _accuracy(report, "city=oslo")[0] == pytest.approx(
        float(np.mean(ref_hand[oslo] == labels[oslo]))
    )
    assert not [n for n in report.run.notes if "text feature column" in n]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numerics_robustness_and_profile_take_text_columns(
    mixed_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Text has no norm and no noise: the numbers are binned and perturbed, the text is fed.

    Before, the numerics' input-norm bins converted every input to float and the run stopped
    with an internal error on the first text column.
    """
    ref, cand = mixed_models
    frame, labels = _mixed_frame(600, seed=4)
    path = tmp_path / "d.parquet"
    frame.assign(label=labels, region="all").to_parquet(path)
    sections = _sections(batch_sizes=[1], numerics={"sample": 200, "batch_consistency": True})
    report = run_validation(_spec(ref, cand, path, sections))
    assert report.numerics is not None and report.profile is not None
    (numerics,) = report.numerics.candidates
    assert sum(b.rows for b in numerics.input_ranges) == 200
    assert report.robustness is not None and report.robustness.search_results
    (note,) = [n for n in report.run.notes if "rounded to the nearest whole number" in n]
    assert "fp32: age" in note


def test_a_pipeline_exported_with_every_default_runs_from_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``to_onnx(pipeline, df[:1])`` and nothing else: ZipMap on, text labels, a float64
    (double) input, an int64 input and a string input, fed from a CSV file by name."""
    import json

    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["lima", "oslo", "pune"], 1200),
            "x": rng.normal(size=1200),
            "k": rng.integers(0, 5, 1200),
        }
    )
    noise = rng.uniform(size=1200) < 0.1
    labels = np.where(((frame.city == "oslo") & (frame.x > 0)) ^ noise, "yes", "no")
    encode = ColumnTransformer(
        [
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("n", "passthrough", ["x", "k"]),
        ]
    )
    pipeline = make_pipeline(encode, RandomForestClassifier(n_estimators=8, random_state=0))
    pipeline.fit(frame[:800], labels[:800])
    onx = skl2onnx.to_onnx(pipeline, frame[:1])
    assert {i.name: i.type.tensor_type.elem_type for i in onx.graph.input} == {
        "city": 8,
        "x": 11,
        "k": 7,
    }
    model = tmp_path / "rf.onnx"
    model.write_bytes(onx.SerializeToString())
    test = frame[800:].assign(label=labels[800:])
    test.to_csv(tmp_path / "test.csv", index=False)
    code = main(
        ["compare", str(model), str(model), "--data", str(tmp_path / "test.csv"), "--labels",
         "label", "--report-dir", str(tmp_path / "out"), "--quiet"]
    )  # fmt: skip
    assert code == ExitCode.OK, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    accuracy = next(
        m for m in report["metrics"] if m["metric"] == "accuracy_score" and m["segment"] is None
    )
    expected = float(np.mean(pipeline.predict(frame[800:]) == labels[800:]))
    assert accuracy["reference_value"] == pytest.approx(expected)
    assert 0.6 < expected < 1.0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_model_of_text_columns_only_runs_and_says_what_was_not_searched(
    tmp_path: Path,
) -> None:
    """No numeric feature at all: the weak-slice search has nothing to bin (it stopped the run
    with "numeric feature 'x0' holds non-numeric values" before), and says so."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"city": rng.choice(CITIES, 900), "shop": rng.choice(["x", "y"], 900)})
    labels = ((frame.city == "oslo") | (frame.shop == "x")).to_numpy().astype(np.int64)
    encode = ColumnTransformer([("oh", OneHotEncoder(), ["city", "shop"])])
    pipeline = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    path = tmp_path / "text.onnx"
    path.write_bytes(
        skl2onnx.to_onnx(pipeline, frame[:1], options={"zipmap": False}).SerializeToString()
    )
    data = tmp_path / "d.parquet"
    frame.assign(label=labels, region="all").to_parquet(data)
    report = run_validation(_spec(path, path, data))
    expected = float(np.mean(pipeline.predict(frame) == labels))
    assert _accuracy(report)[0] == pytest.approx(expected)
    (note,) = [n for n in report.run.notes if "Weak-slice search: text feature" in n]
    assert "'city', 'shop'" in note


def test_named_arrays_with_a_text_array_are_searched_by_their_numbers(tmp_path: Path) -> None:
    """In-memory arrays {"x": numbers, "city": text}: the numbers are binned for weak slices
    (keeping them for the search took the only input before, and there are two)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from compval.data import ArrayDataset

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["z"]), helper.make_node("Softmax", ["z"], ["p"])],
        "named",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("city", TensorProto.STRING, ["n", 1]),
        ],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 2])],
        [numpy_helper.from_array(np.array([[-2, 2], [0, 0], [0, 0]], np.float32), "W")],
    )
    path = tmp_path / "named.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    city = rng.choice(CITIES, 2000).astype(object).reshape(-1, 1)
    labels = (x[:, 0] > 0.2).astype(np.int64)
    spec = spec_from_mapping(
        {
            "version": 1,
            "task": "classification",
            "reference": {"name": "ref", "path": str(path)},
            "candidates": [{"name": "cand", "path": str(path)}],
            "data": {"path": "in-memory"},
            "statistics": {"replicates": 100},
            "criteria": [{"id": "acc", "metric": "accuracy_score", "max_drop": 0.05}],
        }
    )
    report = run_validation(spec, data=ArrayDataset({"x": x, "city": city}, labels=labels))
    expected = float(np.mean((x[:, 0] > 0).astype(np.int64) == labels))
    assert _accuracy(report)[0] == pytest.approx(expected)
    assert [n for n in report.run.notes if "text feature column(s) 'city'" in n]
    assert report.statistics is not None and report.statistics.discovered is not None
