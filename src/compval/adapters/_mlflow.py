"""MLflow model URIs as model paths.

``models:/name/version``, ``models:/name@alias`` and ``runs:/<run_id>/path`` are resolved
with MLflow's own client and downloaded with ``mlflow.artifacts.download_artifacts`` into a
private temporary folder that lives as long as the adapter; the adapter then loads the local
file as any other path. What was resolved (the URI as written, the registered model's name,
version and run, the storage location) is kept as the model's provenance for ``report.json``.
mlflow is imported only here, and only when a path is such a URI (extra: ``mlflow``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compval._lazy import lazy_import
from compval.errors import ModelLoadError

__all__ = [
    "MLFLOW_SCHEMES",
    "ResolvedModel",
    "mlflow_http_limits",
    "public_uri",
    "resolve_mlflow_uri",
    "uri_model_name",
]

#: URI schemes that name a model in an MLflow tracking server or model registry.
MLFLOW_SCHEMES = ("models", "runs")

#: MLflow's HTTP defaults (120 s per request, 7 retries with exponential backoff from 2 s)
#: make an unreachable server look like a hang of several minutes. compval uses these
#: instead, unless the user set the variables themselves.
_MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model URI resolved to a local file.

    Attributes:
        path: The downloaded model file.
        folder: The temporary folder holding it (removed when the adapter is collected).
        source: Provenance for the report: ``uri`` (as written), ``registry``,
            ``tracking_uri``, ``resolved_uri`` and, where they apply, ``name``, ``version``,
            ``alias``, ``run_id``, ``artifact_path``.
        name: The model's default name in reports (``clf-3`` for ``models:/clf/3``).
    """

    path: Path
    folder: Path
    source: Mapping[str, str] = field(default_factory=dict)
    name: str = ""


@contextlib.contextmanager
def mlflow_http_limits(timeout_s: float) -> Iterator[None]:
    """Bound MLflow's HTTP requests (timeout and retries) while the block runs.

    Variables the user has set are left alone, so ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` still override compval's limits.
    """
    wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s))), **_MLFLOW_HTTP_DEFAULTS}
    added = [name for name in wanted if name not in os.environ]
    for name in added:
        os.environ[name] = wanted[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def public_uri(uri: str) -> str:
    """``uri`` without user name, password or query string (they may hold credentials).

    Example:
        >>> public_uri("https://user:token@mlflow.example.com:5000/path?sig=abc")
        'https://mlflow.example.com:5000/path'
    """
    parts = urllib.parse.urlsplit(uri)
    if not parts.netloc and not parts.query:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def uri_model_name(uri: str) -> str:
    """The default report name of the model a URI names.

    Example:
        >>> uri_model_name("models:/clf/3"), uri_model_name("models:/clf@champion")
        ('clf-3', 'clf-champion')
        >>> uri_model_name("runs:/0a1b2c/model/int8.onnx")
        'int8'
    """
    scheme, _, rest = uri.partition(":")
    parts = [p for p in rest.split("/") if p]
    if scheme == "runs":
        return Path(parts[-1]).stem if len(parts) > 1 else (parts[0] if parts else uri)
    if not parts:
        return uri
    if "@" in parts[0]:
        return parts[0].replace("@", "-")
    return "-".join(parts[:2])


def resolve_mlflow_uri(
    uri: str,
    *,
    tracking_uri: str | None,
    suffixes: tuple[str, ...],
    timeout_s: float = 30.0,
) -> ResolvedModel:
    """Download the model ``uri`` names and return the local file with its provenance.

    Args:
        uri: ``models:/name/version``, ``models:/name@alias``, ``models:/name/latest``
            (optionally followed by a path inside the model) or ``runs:/<run_id>/path``.
        tracking_uri: The tracking server (and registry); None: MLflow's default
            (``MLFLOW_TRACKING_URI``, else its local default).
        suffixes: Model file extensions compval can load, to find the model file in a
            downloaded folder (an MLflow model folder holds ``MLmodel`` and environment files
            besides the model).
        timeout_s: Timeout of each HTTP request to the server.

    Raises:
        MissingDependencyError: mlflow is not installed.
        ModelLoadError: The URI is malformed, names nothing, the server cannot be reached, or
            the download holds no model file (or several).
    """
    mlflow = lazy_import("mlflow", extra="mlflow")
    artifacts = lazy_import("mlflow.artifacts", extra="mlflow")
    exceptions = lazy_import("mlflow.exceptions", extra="mlflow")
    failures: tuple[type[BaseException], ...] = (exceptions.MlflowException, OSError)
    server = tracking_uri or str(mlflow.get_tracking_uri())
    folder = Path(tempfile.mkdtemp(prefix="compval-mlflow-"))
    try:
        with mlflow_http_limits(timeout_s):
            client = mlflow.MlflowClient(tracking_uri=server, registry_uri=server)
            location, source = _describe(client, uri)
            local = Path(
                artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(folder), tracking_uri=server
                )
            )
    except failures as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelLoadError(
            f"Model {uri!r}: cannot resolve it with MLflow at {public_uri(server)!r}; got "
            f"{type(exc).__name__}: {_first_line(exc)}. Check the model name and version "
            "(or alias, or run id and path), and the tracking URI: --mlflow URI, "
            "MLFLOW_TRACKING_URI, or the spec's tracking.mlflow."
        ) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    path = _model_file(uri, local, folder, suffixes)
    inner = path.relative_to(local).as_posix() if local.is_dir() else ""
    provenance = {"uri": uri, "registry": "mlflow", "tracking_uri": public_uri(server), **source}
    if inner:
        provenance["model_file"] = inner
    return ResolvedModel(path=path, folder=folder, source=provenance, name=uri_model_name(uri))


def _describe(client: Any, uri: str) -> tuple[str, dict[str, str]]:
    """Where ``uri`` is stored, and the registry's answer: name, version, alias, run.

    ``models:/`` URIs are resolved here with ``client`` rather than by
    ``download_artifacts``: MLflow's models repository asks the process-wide registry URI,
    whatever tracking URI it is given.
    """
    scheme, _, rest = uri.partition(":")
    if scheme == "runs":
        run_id, _, artifact_path = rest.strip("/").partition("/")
        stored = str(client.get_run(run_id).info.artifact_uri).rstrip("/")
        return uri, {
            "run_id": run_id,
            "artifact_path": artifact_path,
            "resolved_uri": public_uri(f"{stored}/{artifact_path}" if artifact_path else stored),
        }
    models = lazy_import("mlflow.store.artifact.utils.models", extra="mlflow")
    parts = rest.strip("/").split("/")
    size = 1 if "@" in parts[0] or len(parts) == 1 else 2
    inner = "/".join(parts[size:])
    found = models.get_model_name_and_version(client, "models:/" + "/".join(parts[:size]))
    if len(found) == 1:  # models:/<model id>, a logged model that was not registered
        model = client.get_logged_model(found[0])
        location = str(model.artifact_location)
        described = {"model_id": str(found[0]), "run_id": str(model.source_run_id or "")}
    else:
        name, version = str(found[0]), str(found[1])
        location = str(client.get_model_version_download_uri(name, version))
        described = {
            "name": name,
            "version": version,
            "run_id": str(client.get_model_version(name, version).run_id or ""),
        }
        if "@" in parts[0]:
            described["alias"] = parts[0].rpartition("@")[2]
    location = location.rstrip("/") + (f"/{inner}" if inner else "")
    described["resolved_uri"] = public_uri(location)
    return location, described


def _model_file(uri: str, local: Path, folder: Path, suffixes: tuple[str, ...]) -> Path:
    if local.is_file():
        return local
    found = sorted(p for p in local.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if len(found) == 1:
        return found[0]
    shutil.rmtree(folder, ignore_errors=True)
    what = (
        f"{len(found)} model files ({', '.join(p.relative_to(local).as_posix() for p in found)})"
        if found
        else "no file with a model extension ("
        + ", ".join(sorted(p.name for p in local.iterdir()))
        + ")"
    )
    raise ModelLoadError(
        f"Model {uri!r}: the MLflow download holds {what}; expected exactly one of "
        f"{', '.join(suffixes)}. Name the file in the URI, e.g. {uri.rstrip('/')}/model.onnx, "
        "or log the model in a format compval loads (ONNX, TorchScript, torch.export)."
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
