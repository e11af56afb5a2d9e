"""CallableAdapter: argument passing, output naming and error translation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from compval.adapters import CallableAdapter
from compval.errors import InferenceError, InvalidParameterError


def test_keyword_inputs_and_tuple_outputs(batch: np.ndarray) -> None:
    seen: dict[str, Any] = {}

    def fn(*, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, list[float]]:
        seen.update(a=a, b=b)
        return a + b, (a - b).sum(axis=1).tolist()

    with CallableAdapter(fn, name="f", input_names=("a", "b")) as model:
        out = model.predict({"b": batch[::-1], "a": batch})
    assert seen["a"] is batch
    assert list(out) == ["output_0", "output_1"]
    np.testing.assert_array_equal(out["output_0"], batch + batch[::-1])
    assert out["output_1"].shape == (batch.shape[0],)


def test_list_of_scalars_is_one_output() -> None:
    with CallableAdapter(lambda x: [float(v) for v in x[:, 0]], name="f") as model:
        out = model.predict({"input": np.array([[1.0], [2.0]])})
    assert list(out) == ["output"]
    np.testing.assert_array_equal(out["output"], [1.0, 2.0])


def test_list_of_arrays_is_several_outputs() -> None:
    with CallableAdapter(lambda x: [x, 2 * x], name="f", output_names=("a", "b")) as model:
        out = model.predict({"input": np.ones((2, 1))})
    np.testing.assert_array_equal(out["b"], 2 * np.ones((2, 1)))


def test_dict_outputs_selected_by_output_names() -> None:
    def fn(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"aux": x * 0, "logits": x + 1, "extra": x}

    with CallableAdapter(fn, name="f", output_names=("logits", "aux")) as model:
        out = model.predict({"input": np.zeros((2, 2))})
    assert list(out) == ["logits", "aux"]
    np.testing.assert_array_equal(out["logits"], np.ones((2, 2)))


def test_single_output_named() -> None:
    with CallableAdapter(lambda x: x, name="f", output_names=["scores"]) as model:
        assert list(model.predict({"input": np.zeros((1, 1))})) == ["scores"]


@pytest.mark.parametrize(
    ("fn", "output_names", "message"),
    [
        (lambda x: {"a": x}, ("b",), r"lacks output\(s\) \['b'\]; got keys \['a'\]"),
        (lambda x: (x, x), ("a",), "returned 2 outputs; expected 1"),
        (lambda x: x, ("a", "b"), "returned 1 output; expected 2"),
        (lambda x: float(x.sum()), None, r"output 'output' is a scalar; got shape \(\)"),
    ],
)
def test_outputs_that_do_not_fit(fn: Any, output_names: Any, message: str) -> None:
    with (
        CallableAdapter(fn, name="f", output_names=output_names) as model,
        pytest.raises(InferenceError, match=message),
    ):
        model.predict({"input": np.zeros((2, 1))})


def test_exception_in_callable_becomes_inference_error() -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel exploded")

    with (
        CallableAdapter(broken, name="b") as model,
        pytest.raises(
            InferenceError, match=r"Model 'b': the runtime failed on a batch: RuntimeError: kernel"
        ) as info,
    ):
        model.predict({"input": np.zeros((1, 1))})
    assert isinstance(info.value.__cause__, RuntimeError)


def test_info() -> None:
    import platform

    def scorer(x: np.ndarray) -> np.ndarray:
        return x

    with CallableAdapter(scorer, name="s") as model:
        info = model.info()
    assert info.runtime == "python"
    assert info.runtime_version == platform.python_version()
    assert info.model_id == "python:test_info.<locals>.scorer"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fn": 3}, "'fn' must be callable; got an object of type int"),
        ({"fn": abs, "input_names": []}, "'input_names' must be non-empty"),
        ({"fn": abs, "output_names": ("a", "")}, "'output_names' must be a sequence"),
    ],
)
def test_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        CallableAdapter(name="f", **kwargs)


def test_default_hooks_leave_no_notes_and_run_one_batch_at_a_time(batch: np.ndarray) -> None:
    with CallableAdapter(lambda x: x * 2, name="f") as model:
        model.predict({"input": batch})
        assert model.run_notes() == []
        assert model.inactive_devices() == ()
        assert model.max_concurrent_batches == 1
