"""MLflow model URIs as model paths, against models logged and registered in a temporary store.

The models are skl2onnx's default exports, logged with ``mlflow.onnx.log_model`` (registered
as versions of one model, with an alias) or as a plain run artifact. The check that the right
model ran is independent of compval: the content hash in report.json equals the SHA-256 of
the bytes that were logged.
"""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import pytest
from tracker_builders import Validation, onnx_models, read_report, write_spec

from compval.cli.main import main
from compval.errors import ExitCode

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("mlflow.onnx")
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:sqlalchemy.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Both models registered as versions 1 and 2 of 'clf' ('champion' -> 1), and logged
    as plain artifacts of one run; returns the tracking URI and the run id.

    One store for the module: creating an MLflow database takes seconds.
    """
    import onnx

    folder = tmp_path_factory.mktemp("registry")
    models = dict(zip(("fp32", "small"), onnx_models()[:2], strict=True))
    uri = f"sqlite:///{folder / 'registry.db'}"
    # MLflow caches the store of a URI with its default artifact root, ./mlruns as it is now.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        client = mlflow.MlflowClient(tracking_uri=uri)
        client.search_experiments()
    experiment = client.create_experiment("models", artifact_location=str(folder / "artifacts"))
    mlflow.set_tracking_uri(uri)  # the fluent API (log_model) knows no other way
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            for name, content in models.items():
                path = folder / f"{name}.onnx"
                path.write_bytes(content)
                mlflow.onnx.log_model(
                    onnx.load_from_string(content), name=name, registered_model_name="clf"
                )
                mlflow.log_artifact(str(path), artifact_path="files")
    finally:
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI, which it had set
    client.set_registered_model_alias("clf", "champion", "1")
    return {"tracking": uri, "run_id": run.info.run_id}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registered_versions_and_aliases_resolve_and_are_recorded(
    store: dict[str, str], validation: Validation, tmp_path: Path
) -> None:
    spec = write_spec(
        validation.folder,
        "models:/clf@champion",
        "models:/clf/2",
        tracking={"mlflow": store["tracking"]},
    )
    code = main(["validate", str(spec), "--report-dir", str(tmp_path / "r"), "--quiet"])
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    models = read_report(tmp_path / "r")["run"]["models"]
    assert set(models) == {"clf-champion", "clf-2"}
    reference, candidate = models["clf-champion"], models["clf-2"]
    # The downloaded files are the logged ones (report.json's model_id is their SHA-256).
    assert reference["model_id"] == _sha(validation.reference)
    assert candidate["model_id"] == _sha(validation.candidate)
    assert reference["source"]["uri"] == "models:/clf@champion"
    assert reference["source"]["alias"] == "champion"
    assert reference["source"]["version"] == "1"
    assert candidate["source"]["version"] == "2"
    client = mlflow.MlflowClient(tracking_uri=store["tracking"])
    version = client.get_model_version("clf", "2")
    assert candidate["source"]["run_id"] == version.run_id == store["run_id"]
    assert candidate["source"]["resolved_uri"] == client.get_model_version_download_uri("clf", "2")
    assert candidate["source"]["model_file"] == "model.onnx"
    assert candidate["source"]["tracking_uri"] == store["tracking"]


def test_compare_takes_runs_uris_and_the_mlflow_flag(
    store: dict[str, str], validation: Validation, tmp_path: Path
) -> None:
    base = f"runs:/{store['run_id']}/files"
    code = main(
        [
            "compare",
            f"{base}/fp32.onnx",
            f"{base}/small.onnx",
            "--data",
            str(validation.folder / "data.parquet"),
            "--labels",
            "label",
            "--segments",
            "region",
            "--quiet",
            "--report-dir",
            str(tmp_path / "r"),
            "--replicates",
            "0",
            "--mlflow",
            store["tracking"],
        ]
    )
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    models = read_report(tmp_path / "r")["run"]["models"]
    assert models["small"]["model_id"] == _sha(validation.candidate)
    source = models["small"]["source"]
    assert source["run_id"] == store["run_id"]
    assert source["artifact_path"] == "files/small.onnx"
    # The comparison run itself went to the same server, as the flag asked.
    client = mlflow.MlflowClient(tracking_uri=store["tracking"])
    assert client.get_experiment_by_name("compval") is not None


def test_an_unknown_version_is_a_model_error_naming_the_uri(
    store: dict[str, str],
    validation: Validation,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(
        validation.folder, "models:/clf/9", "small.onnx", tracking={"mlflow": store["tracking"]}
    )
    code = main(["validate", str(spec), "--report-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == ExitCode.RUN_ERROR
    assert "models:/clf/9" in err and "version" in err and "Traceback" not in err


def test_a_download_without_one_model_file_is_refused(
    store: dict[str, str],
    validation: Validation,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # runs:/<id>/files holds two .onnx files: which one is meant cannot be guessed.
    spec = write_spec(
        validation.folder,
        f"runs:/{store['run_id']}/files",
        "small.onnx",
        tracking={"mlflow": store["tracking"]},
    )
    code = main(["validate", str(spec), "--report-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == ExitCode.RUN_ERROR
    assert "2 model files" in err and "fp32.onnx" in err and "small.onnx" in err


def test_the_download_folder_goes_with_the_adapter(store: dict[str, str]) -> None:
    from compval.adapters import load_model
    from compval.spec import ModelRef, TrackingSpec

    adapter = load_model(
        ModelRef(path="models:/clf/1"),
        base_dir=Path.cwd(),
        tracking=TrackingSpec(mlflow=store["tracking"]),
    )
    assert adapter.name == "clf-1"
    assert adapter.model_file is not None
    folder = adapter.model_file.parent
    assert folder.is_dir()
    del adapter
    gc.collect()
    assert not folder.exists()


def test_profile_takes_registry_uris(
    store: dict[str, str], validation: Validation, tmp_path: Path
) -> None:
    # compval profile resolves model URIs as validate and compare do (it used to make
    # "models:/clf/1" a path relative to the working folder).
    code = main(
        [
            "profile",
            f"--mlflow={store['tracking']}",
            "models:/clf@champion",
            "models:/clf/2",
            "--batch-sizes",
            "1,8",
            "--concurrency",
            "1",
            "--quiet",
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    models = read_report(tmp_path / "r")["run"]["models"]
    assert models["clf-champion"]["model_id"] == _sha(validation.reference)
    assert models["clf-2"]["source"]["version"] == "2"
