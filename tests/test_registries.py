"""Registries: a runtime, a task, a renderer and a run sink are each one registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compval.adapters import (
    AdapterRegistration,
    CallableAdapter,
    adapter_names,
    load_model,
    register_adapter,
    suffix_adapters,
)
from compval.engine import run_validation
from compval.errors import InvalidParameterError, OutputError, SpecValidationError
from compval.reports import RENDERERS, get_sink, register_renderer, sink_names, write_reports
from compval.results import Report
from compval.spec import AcceptanceSpec, ModelRef
from compval.tasks import GenericTask, get_task, register_task, task_names


def _spec(**extra: object) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "unused.npz"},
            "statistics": {"replicates": 50},
            **extra,
        }
    )


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_builtin_runtimes_are_registered() -> None:
    assert {"onnxruntime", "torchscript", "torch_export", "sklearn"} <= set(adapter_names())
    assert suffix_adapters()[".onnx"] == "onnxruntime"
    assert suffix_adapters()[".pt2"] == "torch_export"


def test_a_registered_runtime_loads_its_files_by_extension_and_by_name(tmp_path: Path) -> None:
    model = tmp_path / "double.dbl"
    model.write_text("2.0")

    def load(path: Path, ref: ModelRef) -> CallableAdapter:
        factor = float(path.read_text())
        return CallableAdapter(lambda x: factor * x, name=str(ref.name))

    register_adapter(AdapterRegistration("doubler-test", (".dbl",), load))
    with load_model(ModelRef(path=str(model)), base_dir=tmp_path) as adapter:
        assert adapter.name == "double"
        out = adapter.predict({"input": np.ones((2, 1))})["output"]
    np.testing.assert_array_equal(out, [[2.0], [2.0]])
    explicit = load_model(ModelRef(path=str(model), adapter="doubler-test"), base_dir=tmp_path)
    assert isinstance(explicit, CallableAdapter)
    with pytest.raises(InvalidParameterError, match=r"runtime name already used"):
        register_adapter(AdapterRegistration("doubler-test", (".dbl2",), load))
    with pytest.raises(InvalidParameterError, match=r"already map to 'doubler-test'"):
        register_adapter(AdapterRegistration("other-test", (".dbl",), load))


class _EntryPoint:
    def __init__(self, name: str, obj: object) -> None:
        self.name, self._obj = name, obj

    def load(self) -> object:
        return self._obj


@pytest.mark.parametrize("how", ["extension", "name"])
def test_entry_points_are_read_only_for_a_runtime_no_registered_one_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import compval._plugins
    import compval.adapters._registry as registry

    scans: list[str] = []

    def entry_points(group: str) -> list[_EntryPoint]:
        scans.append(group)
        plugin = AdapterRegistration(
            "tripler-test",
            (".tpl",),
            lambda path, ref: CallableAdapter(lambda x: 3 * x, name=str(ref.name)),
        )
        return [_EntryPoint("tripler", plugin)]

    monkeypatch.setattr(compval._plugins, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    (tmp_path / "m.onnx").write_bytes(b"not opened")
    (tmp_path / "m.tpl").write_bytes(b"")
    # A built-in runtime, by extension or by name: the installed packages are not scanned.
    load_model(ModelRef(path="m.onnx"), base_dir=tmp_path)
    load_model(ModelRef(path="m.onnx", adapter="onnxruntime"), base_dir=tmp_path)
    assert scans == []
    # A runtime only an entry point provides: scanned once, then found.
    ref = (
        ModelRef(path="m.tpl")
        if how == "extension"
        else ModelRef(path="m.onnx", adapter="tripler-test")
    )
    with load_model(ref, base_dir=tmp_path) as adapter:
        out = adapter.predict({"input": np.ones((1, 1))})["output"]
    np.testing.assert_array_equal(out, [[3.0]])
    assert scans == ["compval.adapters"]
    assert "tripler-test" in adapter_names()
    with pytest.raises(InvalidParameterError, match=r"unknown adapter; got 'none-test'"):
        load_model(ModelRef(path="m.onnx", adapter="none-test"), base_dir=tmp_path)
    assert scans == ["compval.adapters"]


def test_an_unknown_adapter_name_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match=r"unknown adapter; got 'onnxrutime'"):
        load_model(ModelRef(path="m.onnx", adapter="onnxrutime"), base_dir=tmp_path)


def test_an_unknown_task_is_a_spec_error_naming_the_known_ones() -> None:
    with pytest.raises(SpecValidationError, match=r"task.type: unknown task; got 'ranking'") as e:
        run_validation(
            _spec(task="ranking"),
            reference=lambda x: x,
            candidates={"cand": lambda x: x},
            data=_data(),
        )
    assert e.value.path == "task.type"
    assert "classification" in str(e.value)


def test_a_registered_task_runs_without_engine_changes() -> None:
    class ScaledGeneric(GenericTask):
        name = "generic-test"

        def default_criteria(self, *, has_labels: bool) -> list[dict[str, object]]:
            return []

    register_task(ScaledGeneric())
    assert "generic-test" in task_names()
    assert isinstance(get_task("generic-test"), ScaledGeneric)
    x, y = _data()
    report = run_validation(
        _spec(
            task="generic-test",
            criteria=[{"id": "cos", "metric": "cosine_similarity", "min": 0.99}],
        ),
        reference=lambda a: a,
        candidates={"cand": lambda a: a * 1.001},
        data=(x, y),
    )
    assert report.run.task == "generic-test"
    cosine = [m for m in report.metrics if m.metric == "cosine_similarity" and m.segment is None]
    assert cosine and cosine[0].candidate_value == pytest.approx(1.0)
    assert report.passed


def test_a_registered_renderer_is_written_with_the_others(tmp_path: Path, report: Report) -> None:
    register_renderer("count-test", lambda r: f"{len(r.checks)} checks\n", filename="count.txt")
    assert "count-test" in RENDERERS
    paths = write_reports(report, tmp_path, formats=["json", "count-test"])
    assert paths["count-test"].read_text() == f"{len(report.checks)} checks\n"
    with pytest.raises(InvalidParameterError, match=r"already registered"):
        register_renderer("count-test", lambda r: "", filename="other.txt")


def test_github_summary_sink_appends_the_markdown(
    tmp_path: Path, report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "github-summary" in sink_names()
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    get_sink("github-summary").send(report, {})
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "compval" in text and len(text) > 100
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    with pytest.raises(OutputError, match=r"GITHUB_STEP_SUMMARY is not set"):
        get_sink("github-summary").send(report, {})
    with pytest.raises(InvalidParameterError, match=r"Unknown run sink; got 'nope'"):
        get_sink("nope")


@pytest.fixture
def report() -> Report:
    x, y = _data()
    return run_validation(
        _spec(criteria=[{"id": "acc", "metric": "accuracy_score", "max_drop": 0.05}]),
        reference=lambda a: np.stack([a[:, 0] <= 0, a[:, 0] > 0], axis=1).astype(np.float64),
        candidates={"cand": lambda a: np.stack([a[:, 0] <= 0, a[:, 0] > 0], axis=1) * 1.0},
        data=(x, y),
    )
