from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compval.errors import InvalidParameterError, ProfilingError
from compval.profiling import measure_peak_memory


def test_child_process_reports_peak_memory(onnx_pair: tuple[Path, Path]) -> None:
    x = np.ones((16, 8), dtype=np.float32)
    result = measure_peak_memory(
        onnx_pair[0], kind="onnx", inputs={"x": x}, threads=1, timeout_s=120
    )
    assert result.peak_mb > 0
    assert result.peak_mb >= result.baseline_mb > 0
    assert result.load_time_ms > 0


def test_child_failure_is_a_profiling_error(onnx_pair: tuple[Path, Path]) -> None:
    wrong = {"not_x": np.ones((1, 8), dtype=np.float32)}
    with pytest.raises(ProfilingError, match=r"the child process failed; got exit status 1: .*"):
        measure_peak_memory(onnx_pair[0], kind="onnx", inputs=wrong, timeout_s=120)


def test_child_timeout_is_a_profiling_error(onnx_pair: tuple[Path, Path]) -> None:
    x = {"x": np.ones((1, 8), dtype=np.float32)}
    with pytest.raises(ProfilingError, match=r"ran past 0.01 s; got no result"):
        measure_peak_memory(onnx_pair[0], kind="onnx", inputs=x, timeout_s=0.01)


def test_unknown_kind_is_rejected(onnx_pair: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidParameterError, match=r"unsupported model kind; got 'sklearn'"):
        measure_peak_memory(onnx_pair[0], kind="sklearn", inputs={})


def test_child_without_result_line_is_a_profiling_error(
    onnx_pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compval.profiling._memory as memory

    script = tmp_path / "child.py"
    script.write_text("print('hello')\n")
    monkeypatch.setattr(memory, "_CHILD", script)
    x = {"x": np.ones((1, 8), dtype=np.float32)}
    with pytest.raises(ProfilingError, match=r"printed no result; got 'hello\\n'"):
        measure_peak_memory(onnx_pair[0], kind="onnx", inputs=x)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's VmHWM")
def test_peak_excludes_the_parent_process_memory(onnx_pair: tuple[Path, Path]) -> None:
    import resource

    ballast = np.ones(300 * 2**20 // 8)  # the parent now has a peak of 300 MiB or more
    parent_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    x = {"x": np.ones((4, 8), dtype=np.float32)}
    result = measure_peak_memory(onnx_pair[0], kind="onnx", inputs=x, timeout_s=120)
    del ballast
    # Linux carries ru_maxrss (the parent's peak) across exec; the reported peak must not.
    assert 0 < result.peak_mb < parent_peak_mb - 200
