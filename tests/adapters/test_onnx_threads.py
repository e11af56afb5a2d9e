"""A scoring session settles its thread count on its first batch, without changing outputs.

ONNX Runtime splits each operator over one thread per core; a light model spends more on the
hand-offs than the split saves. ``OnnxRuntimeAdapter`` times the first batch and, when it is
light, runs it again on a one-thread session that it keeps only if the results are bitwise the
same and it ran no slower. Timings are machine-dependent, so the tests that need a decision
fix the timings and check what must hold whatever they are: every output equals a default
session's, bit for bit, over a whole dataset, for models as skl2onnx and onnxruntime's
quantizer write them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

import compval.adapters.onnxruntime as ort_adapter
from compval.adapters import OnnxRuntimeAdapter

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    y = np.argmax(x[:, :3] + rng.normal(scale=0.5, size=(3000, 3)), axis=1)
    return x, y


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("threads")
    x, y = _data()
    mlp = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200, random_state=0)
    with warnings.catch_warnings():  # converged or not, it is a model users export
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, y)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)
    paths = {}
    for name, estimator, zipmap in (("mlp", mlp, False), ("forest", forest, True)):
        onx = skl2onnx.to_onnx(estimator, x[:1], options={id(estimator): {"zipmap": zipmap}})
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(onx.SerializeToString())
    paths["mlp-int8"] = folder / "mlp-int8.onnx"
    quantize_dynamic(paths["mlp"], paths["mlp-int8"], weight_type=QuantType.QInt8)
    return paths


def _batches(x: np.ndarray, size: int = 256) -> Iterator[np.ndarray]:
    for lo in range(0, len(x), size):
        yield x[lo : lo + size]


def _outputs(adapter: OnnxRuntimeAdapter, x: np.ndarray) -> dict[str, np.ndarray]:
    name = next(iter(adapter.input_spec()))
    parts = [adapter.predict({name: batch}) for batch in _batches(x)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _default_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """What ONNX Runtime's default session (one thread per core) answers, batch by batch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: batch}) for batch in _batches(x)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def _times(monkeypatch: pytest.MonkeyPatch, pooled: float, single: float) -> list[int]:
    """Fix the measured batch times: the pool's first, then the one-thread session's."""
    calls: list[int] = []

    def best_time(session: Any, names: list[str], feed: dict[str, Any], repeats: int = 3) -> float:
        session.run(names, feed)
        calls.append(1)
        return pooled if len(calls) == 1 else single

    monkeypatch.setattr(ort_adapter, "_best_time", best_time)
    return calls


@pytest.mark.parametrize("model", ["mlp", "mlp-int8"])
def test_a_light_model_moves_to_one_thread_and_its_outputs_stay_bitwise_the_same(
    models: dict[str, Path], model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _times(monkeypatch, pooled=1e-4, single=5e-5)
    x, _ = _data(seed=1)
    with OnnxRuntimeAdapter(models[model], name=model) as adapter:
        outputs = _outputs(adapter, x)
        assert adapter.settled_threads == 1
        assert adapter.session.get_session_options().intra_op_num_threads == 1
    expected = _default_outputs(models[model], x)
    assert [o.tobytes() for o in outputs.values()] == [e.tobytes() for e in expected]


def test_a_model_slower_on_one_thread_keeps_the_pool(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _times(monkeypatch, pooled=1e-4, single=3e-4)
    with OnnxRuntimeAdapter(models["mlp"], name="mlp") as adapter:
        _outputs(adapter, _data(seed=1)[0][:512])
        assert adapter.settled_threads is None
        assert adapter.session.get_session_options().intra_op_num_threads == 0
    assert len(calls) == 2  # measured once each, on the first batch only


def test_a_heavy_first_batch_opens_no_second_session(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _times(monkeypatch, pooled=ort_adapter._LIGHT_BATCH_S * 2, single=0.0)
    opened: list[object] = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: opened.append(1) or real(*a, **k))
    with OnnxRuntimeAdapter(models["mlp"], name="mlp") as adapter:
        _outputs(adapter, _data(seed=1)[0][:512])
        assert adapter.settled_threads is None
    assert len(opened) == 1 and len(calls) == 1


def test_a_slow_first_run_is_not_timed_again(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large model's batch can take seconds: three more runs only to time it would cost that
    # three times over. Any first run counts as slow here.
    calls = _times(monkeypatch, pooled=1e-4, single=5e-5)
    monkeypatch.setattr(ort_adapter, "_HEAVY_FIRST_RUN_S", 0.0)
    with OnnxRuntimeAdapter(models["mlp"], name="mlp") as adapter:
        _outputs(adapter, _data(seed=1)[0][:512])
        assert adapter.settled_threads is None
    assert calls == []


def test_different_bits_on_one_thread_keep_the_pool(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tree ensembles add per-thread partial sums: their last bits follow the thread count.
    # Whether they differ on this machine depends on its cores, so the difference is forced.
    _times(monkeypatch, pooled=1e-4, single=5e-5)
    monkeypatch.setattr(ort_adapter, "_same_results", lambda first, second: False)
    with OnnxRuntimeAdapter(models["mlp"], name="mlp") as adapter:
        _outputs(adapter, _data(seed=1)[0][:512])
        assert adapter.settled_threads is None
        assert adapter.session.get_session_options().intra_op_num_threads == 0


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every session has one thread")
def test_a_forest_whose_bits_follow_the_thread_count_is_compared_exactly(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the decision, the run's outputs are the default session's, bit for bit.
    _times(monkeypatch, pooled=1e-4, single=5e-5)
    x, _ = _data(seed=2)
    with OnnxRuntimeAdapter(models["forest"], name="forest") as adapter:
        outputs = _outputs(adapter, x)
    expected = _default_outputs(models["forest"], x)
    assert outputs["output_label"].tobytes() == expected[0].tobytes()
    assert np.array_equal(
        outputs["output_probability"],
        np.array([[row[k] for k in sorted(row)] for row in expected[1]], dtype=np.float32),
    )


def test_same_results_compares_bits_and_score_maps() -> None:
    same = ort_adapter._same_results
    a = np.array([0.1, np.nan], dtype=np.float32)
    assert same([a], [a.copy()])
    assert not same([a], [np.nextafter(a, 1)])
    assert not same([a], [a.astype(np.float64)])
    assert not same([np.zeros((2, 1))], [np.zeros(2)])
    assert same([np.array(["x"], dtype=object)], [np.array(["x"], dtype=object)])
    assert not same([np.array(["x"], dtype=object)], [np.array(["y"], dtype=object)])
    assert same([[{0: 0.5, 1: 0.5}]], [[{0: 0.5, 1: 0.5}]])
    assert not same([[{0: 0.5, 1: 0.5}]], [[{0: 0.25, 1: 0.75}]])
    assert not same([[{0: 0.5}]], [[{1: 0.5}]])
    assert not same([[{0: float("nan")}]], [[{0: float("nan")}]])  # unsure: keep the pool
    # A sequence output is a list of arrays: compared element by element, never by truth.
    seq = [np.arange(3.0), np.ones((2, 2))]
    assert same([seq], [[x.copy() for x in seq]])
    assert not same([seq], [[seq[0], seq[1] * 2]])
    assert not same([seq], [seq[:1]])
    assert not same([np.zeros(2)], [[0.0, 0.0]])
    assert not same([a], [a, a])


@pytest.mark.parametrize("kwargs", [{"threads": 2}, {"timed": True}])
def test_sessions_with_a_set_thread_count_or_timed_are_never_settled(
    models: dict[str, Path], kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _times(monkeypatch, pooled=1e-4, single=5e-5)
    with OnnxRuntimeAdapter(models["mlp"], name="mlp", **kwargs) as adapter:
        _outputs(adapter, _data(seed=1)[0][:512])
        assert adapter.settled_threads is None
    assert calls == []


def test_an_unpatched_run_gives_the_same_outputs_whatever_it_settles(
    models: dict[str, Path],
) -> None:
    # Unpatched: the decision is the machine's. Whichever it is, the outputs are the
    # default's; and reopening the adapter measures afresh.
    x, _ = _data(seed=3)
    adapter = OnnxRuntimeAdapter(models["mlp-int8"], name="int8")
    with adapter:
        first = _outputs(adapter, x)
        assert adapter.settled_threads in (None, 1)
    with adapter:
        assert adapter.settled_threads is None  # not settled until its first batch
        second = _outputs(adapter, x)
    for a, b in zip(first.values(), second.values(), strict=True):
        assert a.tobytes() == b.tobytes()
