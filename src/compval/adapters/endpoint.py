"""EndpointAdapter: a model behind an inference server (KServe, Triton, ...), over HTTP.

Extra: ``serving`` (httpx).

Two protocols, picked from the URL:

* the Open Inference Protocol (KServe v2): ``http://host:8080/v2/models/<name>`` (optionally
  ``/versions/<v>``). ``open()`` reads the model's metadata (``GET``: input names, datatypes,
  shapes), so the data is checked against the model exactly as for a local ONNX file; each
  batch is one JSON ``POST .../infer`` and outputs are mapped back by name;
* KServe's v1 protocol: ``http://host:8080/v1/models/<name>`` (``:predict`` optional). v1
  declares no inputs: the batch is sent as ``{"instances": rows}`` and the answer's
  ``predictions`` become the output ``predictions``.

Faults never pass silently. Connection refused, timeouts, HTTP 4xx/5xx (with the server's own
error text), malformed answers and outputs of the wrong row count raise
:class:`~compval.errors.EndpointError` naming the URL. A 503 (or 429) is transient: the
request is retried with exponential backoff, up to ``retries`` times, and counted. Every row
sent must come back scored; the counts go to the model's ``source`` in report.json.

Concurrency: each batch goes to the server as one request by default (the server then sees
the spec's batch size, as a local model does). The adapter declares ``max_concurrent_batches``
= ``max_in_flight``, so the paired run keeps up to that many batches in flight (one request
each) and uses the answers in batch order: the server works on several requests at once and
results equal a one-at-a-time run. ``request_rows`` splits a batch into requests of that many
rows, sent through the adapter's own pool of ``max_in_flight`` workers; the outputs are put
back in row order. Either way a validation run has at most ``max_in_flight`` inference
requests in flight (the profiler's load test sets its own number of clients). A model whose
output depends on the batch (dynamic quantization computes its scales per request) then
answers per request, which ``source`` records.

The adapter is safe to call from several threads: the httpx client is shared (httpx clients
are thread-safe; the connection pool keeps ``max_in_flight`` connections alive) and the
counters are updated under a lock.

httpx is imported when the adapter opens, never when this module is imported.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.errors import EndpointError, InvalidParameterError
from compval.types import Array, Outputs, TensorSpec

__all__ = ["OIP_DATATYPES", "EndpointAdapter", "is_endpoint_url"]

#: Open Inference Protocol datatypes -> numpy dtype.
OIP_DATATYPES: Mapping[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_DATATYPE_OF = {v: k for k, v in OIP_DATATYPES.items() if k != "BYTES"}

_V2 = re.compile(r"^(?P<base>.*?)/v2/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?/?$")
_V1 = re.compile(r"^(?P<base>.*?)/v1/models/(?P<model>[^/:]+)(?::predict)?/?$")
#: Statuses that mean "try again later": the server is loading, scaling or shedding load.
_TRANSIENT = frozenset({429, 503})
_MAX_BACKOFF_S = 5.0
#: The binary tensor extension's header: the length of the JSON part of a body.
_HEADER_LENGTH = "Inference-Header-Content-Length"


def is_endpoint_url(path: str) -> bool:
    """Whether a model path is an inference-server URL (``http://`` or ``https://``).

    Example:
        >>> is_endpoint_url("http://127.0.0.1:8080/v2/models/int8"), is_endpoint_url("m.onnx")
        (True, False)
    """
    return urllib.parse.urlsplit(path).scheme in ("http", "https")


def endpoint_model_name(url: str) -> str:
    """The server's model name in an endpoint URL (``int8`` for ``.../v2/models/int8``)."""
    match = _V2.match(url) or _V1.match(url)
    return match.group("model") if match else urllib.parse.urlsplit(url).netloc


class EndpointAdapter(ModelAdapter):
    """Run a model served over KServe's v2 (Open Inference Protocol) or v1 REST protocol.

    Args:
        url: ``http(s)://host:port/v2/models/<name>[/versions/<v>]`` or
            ``http(s)://host:port/v1/models/<name>[:predict]``.
        name: Name shown in reports.
        timeout_s: Seconds to wait for one request (connect and read).
        max_in_flight: The most inference requests in flight at once: batches the paired run
            sends ahead (``max_concurrent_batches``), or the parts of a split batch.
        request_rows: Rows per request; None sends each batch as one request.
        retries: How many times a 503/429 answer is retried (exponential backoff).
        backoff_s: The first retry's wait; it doubles each time (at most 5 s).
        binary_data: v2 only: send inputs and ask for outputs as raw little-endian bytes (the
            Open Inference Protocol's binary tensor extension, which KServe and Triton serve)
            instead of JSON numbers; much cheaper for wide rows. Outputs the server still
            answers in JSON are read as JSON.
        transport: An httpx transport (tests inject ``httpx.MockTransport``).

    Raises:
        InvalidParameterError: The URL is not a v1/v2 model URL, or a knob is out of range.

    Example:
        >>> adapter = EndpointAdapter("http://127.0.0.1:8080/v2/models/int8", name="int8")
        >>> adapter.protocol, adapter.server_model
        ('v2', 'int8')
    """

    runtime = "endpoint"

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout_s: float = 30.0,
        max_in_flight: int = 4,
        request_rows: int | None = None,
        retries: int = 3,
        backoff_s: float = 0.05,
        binary_data: bool = False,
        transport: Any = None,
    ) -> None:
        super().__init__(name=name)
        url = url.rstrip("/")
        v2, v1 = _V2.match(url), _V1.match(url)
        if not is_endpoint_url(url) or not (v2 or v1):
            raise InvalidParameterError(
                f"Model {name!r}: not an inference endpoint URL; got {url!r}, expected "
                "http(s)://host:port/v2/models/<name> (Open Inference Protocol) or "
                "http(s)://host:port/v1/models/<name> (KServe v1)."
            )
        for knob, value, low in (
            ("timeout_s", timeout_s, 0.0),
            ("max_in_flight", max_in_flight, 1),
            ("request_rows", 1 if request_rows is None else request_rows, 1),
            ("retries", retries, 0),
            ("backoff_s", backoff_s, 0.0),
        ):
            if value < low or (knob == "timeout_s" and value <= 0):
                raise InvalidParameterError(
                    f"Model {name!r}: {knob} out of range; got {value!r}, expected "
                    f"{'> 0' if knob == 'timeout_s' else f'>= {low}'}."
                )
        match = v2 or v1
        assert match is not None
        self.url = url
        self.protocol = "v2" if v2 else "v1"
        self.server_model = match.group("model")
        if v1 is not None:
            self._predict_url = f"{match.group('base')}/v1/models/{self.server_model}:predict"
            self._meta_url = f"{match.group('base')}/v1/models/{self.server_model}"
        else:
            self._predict_url = f"{url}/infer"
            self._meta_url = url
        self._server_url = match.group("base")
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.request_rows = request_rows
        self.retries = retries
        self.backoff_s = backoff_s
        self.binary_data = binary_data and self.protocol == "v2"
        self._transport = transport
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._spec: dict[str, TensorSpec] = {}
        self._outputs: list[str] = []
        self._server = "unknown"
        self._version = "unknown"
        self._lock = threading.Lock()
        #: Counters, reported in ``source``: requests, rows sent and scored, retried answers.
        self.requests = 0
        self.rows_sent = 0
        self.rows_scored = 0
        self.retried = 0
        self._update_source()

    @classmethod
    def from_ref(cls, ref: Any) -> EndpointAdapter:
        """Build from a spec model entry (``endpoint:``/``path:`` URL and the serving knobs)."""
        return cls(
            str(ref.endpoint or ref.path),
            name=str(ref.name),
            timeout_s=ref.timeout_s,
            max_in_flight=ref.max_in_flight,
            request_rows=ref.request_rows,
            retries=ref.retries,
            binary_data=ref.binary_data,
        )

    # -- lifecycle -----------------------------------------------------------------------
    def _open(self) -> None:
        httpx = lazy_import("httpx", extra="serving")
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            # Keep a connection per request in flight: no reconnects under concurrency.
            limits=httpx.Limits(
                max_connections=max(100, self.max_in_flight),
                max_keepalive_connections=max(20, self.max_in_flight),
            ),
            transport=self._transport,
        )
        try:
            meta = self._get_json(self._meta_url, what="model metadata")
            if self.protocol == "v2":
                self._read_v2_metadata(meta)
                server = self._get_json(self._server_url + "/v2", what="server metadata", ok=True)
                if isinstance(server, dict):
                    self._server = str(server.get("name", "unknown"))
                    self._version = str(server.get("version", "unknown"))
            else:
                if isinstance(meta, dict) and meta.get("ready") is False:
                    raise EndpointError(
                        f"Model {self.name!r} at {self.url}: the server says "
                        "the model is not ready; expected ready: true. Wait for "
                        "the model to load, or check the server's log."
                    )
                self._spec = {"instances": TensorSpec(name="instances", dtype=None, shape=None)}
                self._outputs = ["predictions"]
                self._server = "kserve-v1"
        except BaseException:
            self._client.close()
            self._client = None
            raise
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="compval-http")

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _read_v2_metadata(self, meta: object) -> None:
        inputs = meta.get("inputs") if isinstance(meta, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise EndpointError(
                f"Model {self.name!r} at {self.url}: the model's metadata declares no inputs; "
                f"got {_clip(meta)}, expected 'inputs': [{{name, datatype, shape}}, ...]. "
                "compval checks the data against the declared inputs, as for a model file: "
                "declare them in the server (kserve.Model.get_input_types()), or use the v1 "
                "URL (/v1/models/<name>), which sends rows without a check."
            )
        spec: dict[str, TensorSpec] = {}
        for entry in inputs:
            try:
                name = str(entry["name"])
                datatype = str(entry["datatype"])
                shape = tuple(None if int(d) < 0 else int(d) for d in entry["shape"])
            except (KeyError, TypeError, ValueError):
                raise EndpointError(
                    f"Model {self.name!r} at {self.url}: malformed input in the model's "
                    f"metadata; got {_clip(entry)}, expected {{name, datatype, shape}}."
                ) from None
            spec[name] = TensorSpec(name=name, dtype=OIP_DATATYPES.get(datatype), shape=shape)
        self._spec = spec
        outputs = meta.get("outputs") if isinstance(meta, dict) else None
        self._outputs = [
            str(o["name"]) for o in outputs or [] if isinstance(o, dict) and "name" in o
        ]

    # -- queries -------------------------------------------------------------------------
    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _info(self) -> AdapterInfo:
        return AdapterInfo(
            runtime=self.runtime,
            runtime_version=f"{self._server} {self._version}".strip(),
            device="remote",
            model_id=self.url,
            path=None,
            size_bytes=None,
        )

    def __repr__(self) -> str:
        return f"EndpointAdapter({self.url!r}, name={self.name!r})"

    @property
    def max_concurrent_batches(self) -> int:
        """``max_in_flight``: the server answers several requests at once."""
        return self.max_in_flight

    def run_notes(self) -> list[str]:
        """What the run should say about this endpoint in ``run.notes`` (retries, split batches).

        The counts are also in ``source``; a note makes a retried or split run visible in the
        report's text. Asked after the paired run, when the counts are final.
        """
        notes = []
        with self._lock:
            retried, requests = self.retried, self.requests
            sent, scored = self.rows_sent, self.rows_scored
        if retried:
            notes.append(
                f"Model {self.name!r} at {self.url}: {retried} request(s) answered 503/429 "
                f"were retried (of {requests} sent); every row was scored "
                f"({scored:,} of {sent:,})."
            )
        if self.request_rows is not None:
            notes.append(
                f"Model {self.name!r} at {self.url}: each batch was sent as requests of "
                f"{self.request_rows} rows (request_rows), up to {self.max_in_flight} at once; a "
                "model whose outputs depend on the batch answered per request."
            )
        return notes

    # -- inference -----------------------------------------------------------------------
    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        rows = _rows(inputs)
        step = rows if self.request_rows is None else self.request_rows
        parts = [(lo, min(lo + step, rows)) for lo in range(0, max(rows, 1), max(step, 1))]

        def call(span: tuple[int, int]) -> Outputs:
            lo, hi = span
            return self._request({k: v[lo:hi] for k, v in inputs.items()}, hi - lo)

        if self.request_rows is None or self._pool is None:
            answers = [call(span) for span in parts]
        else:
            # map() keeps the order of the parts: outputs come back in row order. Every part
            # goes through the pool, even a batch's only one, so that the pool's
            # max_in_flight workers bound the requests of batches the engine sends at once.
            answers = list(self._pool.map(call, parts))
        outputs = {
            name: answers[0][name]
            if len(answers) == 1
            else np.concatenate([a[name] for a in answers])
            for name in answers[0]
        }
        scored = {name: int(out.shape[0]) for name, out in outputs.items()}
        with self._lock:
            self.rows_sent += rows
            self.rows_scored += min(scored.values(), default=0)
            self._update_source()
        if any(n != rows for n in scored.values()):
            raise EndpointError(
                f"Model {self.name!r} at {self.url}: rows sent and rows scored differ; sent "
                f"{rows:,} rows, got {scored}. No row may be dropped or added by the server."
            )
        return outputs

    def _request(self, inputs: Mapping[str, Array], rows: int) -> Outputs:
        blobs: list[bytes] = []
        if self.protocol == "v2":
            tensors = [
                _v2_tensor(n, a, blobs if self.binary_data else None) for n, a in inputs.items()
            ]
            body: dict[str, Any] = {"inputs": tensors}
            if self._outputs:
                wanted = {"binary_data": True} if self.binary_data else {}
                body["outputs"] = [{"name": n, "parameters": wanted} for n in self._outputs]
        else:
            ((_, array),) = inputs.items()
            body = {"instances": array.tolist()}
        answer, tail = self._post(body, blobs)
        out = self._v2_outputs(answer, tail) if self.protocol == "v2" else self._v1_outputs(answer)
        for name, array in out.items():
            if array.ndim == 0 or array.shape[0] != rows:
                raise EndpointError(
                    f"Model {self.name!r} at {self.url}: output {name!r} has shape "
                    f"{tuple(array.shape)}; expected {rows:,} rows on axis 0 (one per row sent)."
                )
        return out

    def _v2_outputs(self, answer: object, tail: bytes = b"") -> Outputs:
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise self._malformed(answer, "'outputs': [{name, datatype, shape, data}, ...]")
        out: dict[str, Array] = {}
        offset = 0
        for entry in outputs:
            try:
                name = str(entry["name"])
                shape = tuple(int(d) for d in entry["shape"])
                dtype = OIP_DATATYPES[str(entry["datatype"])]
                size = (entry.get("parameters") or {}).get("binary_data_size")
                if size is not None and dtype != np.object_:
                    # Binary tensor extension: the output's bytes follow the JSON, in order.
                    raw = tail[offset : offset + int(size)]
                    offset += int(size)
                    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
                    array = array.astype(dtype, copy=False)
                else:
                    array = np.asarray(entry["data"], dtype=dtype).reshape(shape)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise self._malformed(entry, "{name, datatype, shape, data} per output") from None
            out[name] = array
        if self._outputs:
            # The metadata's order: the first declared output is the one compared by default.
            order = [n for n in self._outputs if n in out] + [
                n for n in out if n not in self._outputs
            ]
            out = {n: out[n] for n in order}
        return out

    def _v1_outputs(self, answer: object) -> Outputs:
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list):
            raise self._malformed(answer, "{'predictions': [...]}")
        try:
            return {"predictions": np.asarray(predictions)}
        except ValueError:
            raise self._malformed(answer, "rectangular 'predictions'") from None

    # -- HTTP ----------------------------------------------------------------------------
    def _get_json(self, url: str, *, what: str, ok: bool = False) -> object:
        response = self._send("GET", url, None, what=what)
        if response is None:
            return None
        if response.status_code >= 400:
            if ok:
                return None
            raise self._http_error(response, what=what)
        return self._json(response, what=what)

    def _post(self, body: dict[str, Any], blobs: list[bytes]) -> tuple[object, bytes]:
        """POST one inference request; return the answer's JSON and any binary tail."""
        with self._lock:
            self.requests += 1
            self._update_source()
        response = self._send("POST", self._predict_url, body, what="inference", blobs=blobs)
        assert response is not None
        if response.status_code >= 400:
            raise self._http_error(response, what="inference")
        length = response.headers.get(_HEADER_LENGTH)
        if length is None:
            return self._json(response, what="inference"), b""
        content = response.content
        try:
            return json.loads(content[: int(length)]), content[int(length) :]
        except ValueError:
            raise self._malformed(content[:300], "a JSON header before the binary data") from None

    def _send(
        self, method: str, url: str, body: object, *, what: str, blobs: list[bytes] | None = None
    ) -> Any:
        httpx = lazy_import("httpx", extra="serving")
        wait = self.backoff_s
        kwargs: dict[str, Any] = {"json": body}
        if blobs:
            head = json.dumps(body).encode()
            kwargs = {
                "content": b"".join([head, *blobs]),
                "headers": {
                    "Content-Type": "application/octet-stream",
                    _HEADER_LENGTH: str(len(head)),
                },
            }
        for attempt in range(self.retries + 1):
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TimeoutException:
                raise EndpointError(
                    f"Model {self.name!r} at {url}: no answer to the {what} request within "
                    f"timeout_s={self.timeout_s:g} s. Raise timeout_s in the model entry, "
                    "lower the batch size, or check the server's load."
                ) from None
            except httpx.TransportError as exc:
                raise EndpointError(
                    f"Model {self.name!r} at {url}: cannot reach the server for the {what} "
                    f"request ({type(exc).__name__}: {exc}). Check that the server runs and the "
                    "URL (host, port, model name) is right."
                ) from None
            if response.status_code not in _TRANSIENT or attempt == self.retries:
                return response
            with self._lock:
                self.retried += 1
                self._update_source()
            time.sleep(min(wait, _MAX_BACKOFF_S))
            wait *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: Any, *, what: str) -> object:
        try:
            return response.json()
        except ValueError:
            raise self._malformed(response.text, f"JSON (the {what} answer)") from None

    def _http_error(self, response: Any, *, what: str) -> EndpointError:
        text = response.text.strip()
        try:
            detail = response.json().get("error", text)
        except (ValueError, AttributeError):
            detail = text
        retried = (
            f" after {self.retries} retries"
            if response.status_code in _TRANSIENT and self.retries
            else ""
        )
        hint = (
            " Check the model name in the URL (the server lists its models at /v2/models)."
            if response.status_code == 404
            else ""
        )
        said = _clip(detail).rstrip(".")
        return EndpointError(
            f"Model {self.name!r} at {response.request.url}: the server answered the {what} "
            f"request with HTTP {response.status_code}{retried}: {said}.{hint}",
            url=self.url,
            status=response.status_code,
        )

    def _malformed(self, got: object, expected: str) -> EndpointError:
        return EndpointError(
            f"Model {self.name!r} at {self.url}: malformed answer from the server; got "
            f"{_clip(got)}, expected {expected}.",
            url=self.url,
        )

    def _update_source(self) -> None:
        """Publish the counters in ``source`` (with ``_lock`` held once threads share it)."""
        self.source = {
            "endpoint": self.url,
            "protocol": self.protocol,
            "requests": str(self.requests),
            "rows_sent": str(self.rows_sent),
            "rows_scored": str(self.rows_scored),
            "retried_transient": str(self.retried),
            "rows_per_request": "batch" if self.request_rows is None else str(self.request_rows),
            "encoding": "binary" if self.binary_data else "json",
        }


def _rows(inputs: Mapping[str, Array]) -> int:
    sizes = {int(np.shape(a)[0]) for a in inputs.values() if np.ndim(a) > 0}
    if len(sizes) != 1:
        raise InvalidParameterError(
            f"inputs have different row counts {sorted(sizes)}; expected one batch size."
        )
    return sizes.pop()


def _v2_tensor(name: str, array: Array, blobs: list[bytes] | None = None) -> dict[str, Any]:
    """One OIP input tensor; with ``blobs``, its bytes are appended there (binary extension)."""
    values = np.asarray(array)
    datatype = _DATATYPE_OF.get(values.dtype)
    if datatype is not None and blobs is not None:
        raw = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
        blobs.append(raw)
        shape = list(values.shape)
        return {
            "name": name,
            "shape": shape,
            "datatype": datatype,
            "parameters": {"binary_data_size": len(raw)},
        }
    if datatype is None:
        if values.dtype.kind not in "OUS":
            raise InvalidParameterError(
                f"input {name!r}: dtype {values.dtype} has no Open Inference Protocol datatype."
            )
        datatype, data = "BYTES", [str(v) for v in values.ravel()]
    else:
        # float32 -> Python float (float64) -> JSON repr round-trips exactly.
        data = values.ravel().tolist()
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": data}


def _clip(value: object, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} chars)"
