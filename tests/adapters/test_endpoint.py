"""The endpoint adapter against a real KServe ModelServer (deploy/kserve/serve_onnx.py).

One server per module, started on a free 127.0.0.1 port in a child process and stopped at the
end, serves real skl2onnx exports (the exporter's defaults: a label output and a ZipMap of
probabilities) under several names: clean, and with injected faults (503s, slow answers, a
dropped row, an exception). Malformed answers a real server does not produce are tested with
``httpx.MockTransport``.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from compval.adapters import EndpointAdapter, load_model
from compval.cli.main import ExitCode, main
from compval.errors import EndpointError, InputMismatchError, InvalidParameterError
from compval.spec import ModelRef

pytest.importorskip("kserve")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "deploy" / "kserve" / "serve_onnx.py"
N_ROWS = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two classifiers exported with skl2onnx's defaults, and labelled data."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("endpoint")
    rng = np.random.default_rng(12)
    x = rng.normal(size=(N_ROWS, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8)
    out = {"data": folder / "data.npz"}
    np.savez(out["data"], x=x, y=y)
    for name, c in (("fp32", 1.0), ("small", 0.02)):
        model = LogisticRegression(C=c, max_iter=500).fit(x, y)
        out[name] = folder / f"{name}.onnx"
        out[name].write_bytes(to_onnx(model, x[:1]).SerializeToString())
    return out


@pytest.fixture(scope="module")
def server(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("kserve") / "server.log"
    small = files["small"]
    cmd = [
        sys.executable,
        str(SERVER),
        "--port",
        str(port),
        f"small={small}",
        f"flaky={small}",
        f"flaky2={small}",
        f"flaky3={small}",
        f"flaky4={small}",
        f"slow={small}",
        f"short={small}",
        f"broken={small}",
        "--fault",
        "flaky=unavailable:2",
        "--fault",
        "flaky2=unavailable:2",
        "--fault",
        "flaky3=unavailable:2",
        "--fault",
        "flaky4=unavailable:2",
        "--fault",
        "slow=slow:3",
        "--fault",
        "short=short",
        "--fault",
        "broken=error",
    ]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"KServe server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("KServe server did not become ready within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _local(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The file's own answer through onnxruntime: labels and the ZipMap as an array."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, maps = session.run(None, {"X": x})
    keys = list(maps[0])
    return labels, np.asarray([[m[k] for k in keys] for m in maps], dtype=np.float32)


def _x(files: dict[str, Path]) -> np.ndarray:
    return np.load(files["data"])["x"]


# -- the protocols -----------------------------------------------------------------------
def test_v2_outputs_equal_the_files_exactly(server: str, files: dict[str, Path]) -> None:
    x = _x(files)[:97]
    labels, probabilities = _local(files["small"], x)
    with EndpointAdapter(f"{server}/v2/models/small", name="small") as adapter:
        spec = adapter.input_spec()
        out = adapter.predict({"X": x})
        info = adapter.info()
    assert list(spec) == ["X"] and spec["X"].dtype == np.float32 and spec["X"].shape == (None, 5)
    assert list(out) == ["output_label", "output_probability"]
    np.testing.assert_array_equal(out["output_label"], labels)
    assert out["output_probability"].dtype == np.float32
    np.testing.assert_array_equal(out["output_probability"], probabilities)
    assert (info.runtime, info.device, info.model_id) == (
        "endpoint",
        "remote",
        f"{server}/v2/models/small",
    )
    assert info.runtime_version.startswith("kserve ")
    assert adapter.source is not None
    assert adapter.source["rows_sent"] == adapter.source["rows_scored"] == "97"


def test_binary_tensor_extension_gives_the_same_outputs(
    server: str, files: dict[str, Path]
) -> None:
    x = _x(files)[:64]
    labels, probabilities = _local(files["small"], x)
    url = f"{server}/v2/models/small"
    with EndpointAdapter(url, name="b", binary_data=True) as adapter:
        out = adapter.predict({"X": x})
    assert out["output_label"].dtype == np.int64
    np.testing.assert_array_equal(out["output_label"], labels)
    np.testing.assert_array_equal(out["output_probability"], probabilities)
    assert adapter.source is not None and adapter.source["encoding"] == "binary"


def test_v1_predict_returns_the_first_output(server: str, files: dict[str, Path]) -> None:
    x = _x(files)[:31]
    labels, _ = _local(files["small"], x)
    with EndpointAdapter(f"{server}/v1/models/small:predict", name="v1") as adapter:
        out = adapter.predict({"instances": x})
    assert list(out) == ["predictions"]
    np.testing.assert_array_equal(out["predictions"], labels)


def test_split_requests_come_back_in_row_order(server: str, files: dict[str, Path]) -> None:
    x = _x(files)[:250]
    _, probabilities = _local(files["small"], x)
    url = f"{server}/v2/models/small"
    with EndpointAdapter(url, name="s", request_rows=16, max_in_flight=4) as adapter:
        out = adapter.predict({"X": x})
    np.testing.assert_array_equal(out["output_probability"], probabilities)
    assert adapter.requests == math.ceil(250 / 16)
    assert adapter.source is not None and adapter.source["rows_per_request"] == "16"


def test_data_is_checked_against_the_served_metadata(server: str, files: dict[str, Path]) -> None:
    with (
        EndpointAdapter(f"{server}/v2/models/small", name="s") as adapter,
        pytest.raises(InputMismatchError, match=r"input 'X' has shape \(3, 4\); expected"),
    ):
        adapter.predict({"X": np.zeros((3, 4), np.float32)})


# -- the engine and the CLI: the endpoint's report equals the file's ----------------------
def _compare(tmp_path: Path, candidate: str, files: dict[str, Path], name: str) -> dict[str, Any]:
    out = tmp_path / name
    argv = ["compare", str(files["fp32"]), candidate, "--data", str(files["data"]), "--labels", "y"]
    argv += ["--report-dir", str(out), "--quiet", "--batch-size", "128", "--replicates", "200"]
    code = main(argv)
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def test_compare_through_kserve_equals_the_local_file(
    server: str, files: dict[str, Path], tmp_path: Path
) -> None:
    local = _compare(tmp_path, str(files["small"]), files, "local")
    served = _compare(tmp_path, f"{server}/v2/models/small", files, "served")

    def strip(metrics: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(m, sort_keys=True) for m in metrics)

    assert strip(served["metrics"]) == strip(local["metrics"])
    assert [(c["id"], c["verdict"]) for c in served["checks"]] == [
        (c["id"], c["verdict"]) for c in local["checks"]
    ]
    assert served["passed"] == local["passed"]
    # An independent reference: the candidate's accuracy from onnxruntime and numpy.
    data = np.load(files["data"])
    labels, _ = _local(files["small"], data["x"])
    accuracy = float(np.mean(labels == data["y"]))
    (value,) = [
        m["candidate_value"]
        for m in served["metrics"]
        if m["metric"] == "accuracy_score" and m["segment"] is None
    ]
    assert value == pytest.approx(accuracy, abs=1e-12)
    source = served["run"]["models"]["small"]["source"]
    assert source["rows_sent"] == source["rows_scored"] == str(N_ROWS)
    assert source["requests"] == str(math.ceil(N_ROWS / 128))


def _validate(files: dict[str, Path], candidate: dict[str, Any], **objects: Any) -> Any:
    from compval.engine import run_validation
    from compval.spec import AcceptanceSpec

    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "fp32", "path": str(files["fp32"])},
            "candidates": [{"name": "small", **candidate}],
            "data": {"path": str(files["data"]), "labels": "y"},
            "batch_size": 64,
            "statistics": {"replicates": 200},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05}],
        }
    )
    return run_validation(spec, candidates=objects or None)


def _metric_rows(report: Any) -> list[str]:
    return sorted(json.dumps(m, sort_keys=True) for m in report.to_dict()["metrics"])


def test_batches_in_flight_through_kserve_equal_one_at_a_time_and_the_file(
    server: str, files: dict[str, Path]
) -> None:
    """max_in_flight batches in flight (cross-batch concurrency) change no number."""
    url = f"{server}/v2/models/small"
    local = _validate(files, {"path": str(files["small"])})
    one = _validate(files, {"endpoint": url, "max_in_flight": 1})
    four = _validate(files, {"endpoint": url, "max_in_flight": 4})
    assert _metric_rows(four) == _metric_rows(one) == _metric_rows(local)
    assert [c.verdict for c in four.checks] == [c.verdict for c in local.checks]
    for report in (one, four):
        source = report.run.models["small"]["source"]
        assert source["rows_sent"] == source["rows_scored"] == str(N_ROWS)
        assert source["requests"] == str(math.ceil(N_ROWS / 64))


def test_injected_503s_under_concurrent_batches_are_retried_and_noted(
    server: str, files: dict[str, Path]
) -> None:
    """flaky4 answers 503 to every second request it receives: N batches need N - 1 retries.

    Whatever order the four batches in flight arrive in, the successes are the server's odd
    arrivals and the last arrival is a success, so the count is exact (retries=20 makes a
    request that loses the draw 21 times in a row practically impossible).
    """
    url = f"{server}/v2/models/flaky4"
    adapter = EndpointAdapter(url, name="small", max_in_flight=4, retries=20, backoff_s=0.01)
    served = _validate(files, {}, small=adapter)
    local = _validate(files, {"path": str(files["small"])})
    assert _metric_rows(served) == _metric_rows(local)
    batches = math.ceil(N_ROWS / 64)
    assert (adapter.requests, adapter.retried) == (batches, batches - 1)
    (note,) = adapter.run_notes()
    assert f"{batches - 1} request(s) answered 503/429 were retried (of {batches} sent)" in note
    assert f"every row was scored ({N_ROWS:,} of {N_ROWS:,})" in note
    assert url in note


def test_spec_endpoint_key_is_the_path(server: str) -> None:
    ref = ModelRef(endpoint=f"{server}/v2/models/small", timeout_s=2, max_in_flight=2)
    adapter = load_model(ref, base_dir=Path.cwd())
    assert isinstance(adapter, EndpointAdapter) and adapter.name == "small"
    assert (adapter.timeout_s, adapter.max_in_flight) == (2, 2)
    with pytest.raises(ValueError, match="'endpoint' and 'path' exclude each other"):
        ModelRef(endpoint=f"{server}/v2/models/small", path="m.onnx")
    with pytest.raises(InvalidParameterError, match="expected 'auto' or 'endpoint'"):
        load_model(ModelRef(path=f"{server}/v2/models/small", adapter="sklearn"), base_dir=ROOT)


# -- faults ------------------------------------------------------------------------------
def test_transient_503s_are_retried_and_counted(server: str, files: dict[str, Path]) -> None:
    x = _x(files)[:40]
    _, probabilities = _local(files["small"], x)
    with EndpointAdapter(f"{server}/v2/models/flaky", name="f", backoff_s=0.01) as adapter:
        outs = [adapter.predict({"X": x[i : i + 10]}) for i in range(0, 40, 10)]
    got = np.concatenate([o["output_probability"] for o in outs])
    np.testing.assert_array_equal(got, probabilities)
    # The server answers 503 to every second request it receives: retried each time.
    assert adapter.retried == 3
    assert adapter.source is not None and adapter.source["retried_transient"] == "3"


def test_503_beyond_the_retries_names_the_url_and_the_server_text(
    server: str, files: dict[str, Path]
) -> None:
    url = f"{server}/v2/models/flaky2"
    with EndpointAdapter(url, name="f", retries=0) as adapter:
        adapter.predict({"X": _x(files)[:2]})  # the server's first request succeeds
        with pytest.raises(EndpointError, match=r"HTTP 503: .*not ready. Injected fault") as err:
            adapter.predict({"X": _x(files)[:2]})
    assert url in str(err.value) and err.value.status == 503


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("slow", r"no answer to the inference request within timeout_s=0.5 s"),
        ("short", r"output 'output_label' has shape \(4,\); expected 5 rows"),
        ("broken", r"HTTP 500: .*injected failure: the model cannot run this batch"),
    ],
)
def test_faults_give_clear_errors(
    server: str, files: dict[str, Path], model: str, match: str
) -> None:
    url = f"{server}/v2/models/{model}"
    with (
        EndpointAdapter(url, name=model, timeout_s=0.5) as adapter,
        pytest.raises(EndpointError, match=match) as err,
    ):
        adapter.predict({"X": _x(files)[:5]})
    assert url in str(err.value)


def test_unknown_model_and_refused_connection(server: str) -> None:
    with pytest.raises(EndpointError, match=r"HTTP 404: .*Check the model name"):
        EndpointAdapter(f"{server}/v2/models/nope", name="n").open()
    url = f"http://127.0.0.1:{_free_port()}/v2/models/small"
    with pytest.raises(EndpointError, match=r"cannot reach the server .*Check that the server"):
        EndpointAdapter(url, name="n").open()


def test_cli_names_the_url_without_a_traceback(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v2/models/small"
    argv = [
        "compare",
        str(files["fp32"]),
        url,
        "--data",
        str(files["data"]),
        "--labels",
        "y",
        "--quiet",
    ]
    code = main([*argv, "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == ExitCode.RUN_ERROR
    assert url in err and "Traceback" not in err


# -- malformed answers (a mock transport: a real server does not send these) -------------
_META = {"name": "m", "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 2]}]}


def _mock(infer: Any, meta: Any = _META) -> EndpointAdapter:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/models/m":
            return httpx.Response(200, json=meta)
        if request.url.path == "/v2":
            return httpx.Response(200, json={"name": "mock", "version": "1"})
        return infer if isinstance(infer, httpx.Response) else httpx.Response(200, json=infer)

    return EndpointAdapter(
        "http://mock/v2/models/m", name="m", transport=httpx.MockTransport(handle)
    )


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (httpx.Response(200, text="<html>oops"), r"malformed answer .*got <html>oops"),
        ({"model_name": "m"}, r"malformed answer .*expected 'outputs'"),
        (
            {"outputs": [{"name": "y", "shape": [3], "datatype": "FP32", "data": [1.0]}]},
            r"malformed answer .*per output",
        ),
        (
            {"outputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            r"output 'y' has shape \(1,\); expected 2 rows",
        ),
    ],
)
def test_malformed_answers(answer: Any, match: str) -> None:
    with _mock(answer) as adapter, pytest.raises(EndpointError, match=match) as err:
        adapter.predict({"X": np.zeros((2, 2), np.float32)})
    assert "http://mock/v2/models/m" in str(err.value)


def test_metadata_without_inputs_is_refused() -> None:
    with pytest.raises(EndpointError, match=r"declares no inputs.*get_input_types"):
        _mock({}, meta={"name": "m", "inputs": []}).open()


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("http://h/models/m", {}, "not an inference endpoint URL"),
        ("ftp://h/v2/models/m", {}, "not an inference endpoint URL"),
        ("http://h/v2/models/m", {"max_in_flight": 0}, "max_in_flight out of range"),
        ("http://h/v2/models/m", {"timeout_s": 0}, "timeout_s out of range"),
    ],
)
def test_bad_arguments(url: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        EndpointAdapter(url, name="m", **kwargs)


# -- a spec with an endpoint entry, and the profiler's concurrent load through it ---------
def test_validate_spec_profiles_the_endpoint_under_concurrent_load(
    server: str, files: dict[str, Path], tmp_path: Path
) -> None:
    import yaml

    spec = {
        "version": 1,
        "reference": {"path": str(files["fp32"])},
        "candidates": [{"name": "served", "endpoint": f"{server}/v2/models/small"}],
        "data": {"path": str(files["data"]), "labels": "y"},
        "batch_size": 100,
        "statistics": {"replicates": 0},
        "performance": {
            "batch_sizes": [8],
            "concurrency": [1, 2],
            "concurrency_batch_size": 8,
            "warmup": 1,
            "min_iterations": 3,
            "min_duration_s": 0.0,
            "concurrency_duration_s": 0.3,
            "measure_memory": False,
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["validate", str(path), "--report-dir", str(tmp_path / "r"), "--quiet"])
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    served = report["profile"]["models"]["served"]
    levels = {level["clients"]: level for level in served["concurrency"]}
    assert sorted(levels) == [1, 2]
    for level in levels.values():
        assert level["batch_size"] == 8 and level["requests"] > 0 and level["errors"] == 0
        assert level["p50_ms"] > 0 and level["throughput_sps"] > 0
    source = report["run"]["models"]["served"]["source"]
    # Recorded after the accuracy run (600 rows in 6 requests), before the profiler ran.
    assert source["rows_sent"] == source["rows_scored"] == str(N_ROWS)
    assert source["requests"] == "6"


def test_run_notes_say_what_was_retried_and_split(server: str, files: dict[str, Path]) -> None:
    url = f"{server}/v2/models/small"
    with EndpointAdapter(url, name="s", request_rows=8, max_in_flight=2) as adapter:
        adapter.predict({"X": _x(files)[:20]})
    (note,) = adapter.run_notes()
    assert "requests of 8 rows (request_rows), up to 2 at once" in note
    adapter.retried, adapter.request_rows = 2, None
    (note,) = adapter.run_notes()
    assert "2 request(s) answered 503/429 were retried (of 3 sent)" in note
    assert "(20 of 20)" in note


def test_load_run_counts_the_servers_errors(server: str, files: dict[str, Path]) -> None:
    """The profiler's load run through the adapter: every second request to flaky3 is a 503."""
    import functools

    from compval.profiling import run_load

    url = f"{server}/v2/models/flaky3"
    with EndpointAdapter(url, name="f", retries=0) as adapter:
        call = functools.partial(adapter.predict, {"X": _x(files)[:4]})
        stats = run_load(call, clients=2, duration_s=0.3, batch_size=4)
    assert stats.requests >= 4 and stats.errors == pytest.approx(stats.requests / 2, abs=1)
    assert any("HTTP 503" in e and url in e for e in stats.error_examples)
    assert stats.throughput_sps > 0 and stats.p50_ms is not None


def test_options_of_the_other_kind_of_model_are_refused(server: str) -> None:
    url = f"{server}/v2/models/small"
    with pytest.raises(
        InvalidParameterError, match=r"threads do\(es\) not apply to a model served"
    ):
        load_model(ModelRef(endpoint=url, threads=2), base_dir=ROOT)
    with pytest.raises(InvalidParameterError, match=r"request_rows, timeout_s do\(es\) not apply"):
        load_model(ModelRef(path="m.onnx", timeout_s=5, request_rows=8), base_dir=ROOT)
