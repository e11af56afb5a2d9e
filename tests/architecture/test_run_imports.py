"""A whole validation run imports only what it uses.

scipy.stats costs nearly a second of start-up, pyarrow.compute and pandas a third of one
each; a run on a parquet file needs none of them (statistics use scipy.special, data is read
and segment values counted with pyarrow's arrays and numpy). compval's own profiling,
robustness and numerics packages load only for a spec with such a section (about 50 ms).
This is a process-level property, so it is checked in a child process on a real skl2onnx
export.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _model_and_data(tmp_path: Path) -> tuple[Path, Path]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    model = to_onnx(LogisticRegression().fit(x, y), x[:1], options={"zipmap": False})
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    table = {f"f{j}": x[:, j] for j in range(4)}
    table["label"] = y
    table["region"] = np.array(["north", "south", "east"])[np.arange(600) % 3]
    data = tmp_path / "val.parquet"
    pq.write_table(pa.table(table), data)
    return onnx_path, data


def test_a_run_imports_no_library_it_does_not_use(tmp_path: Path) -> None:
    model, data = _model_and_data(tmp_path)
    code = (
        "import sys\n"
        "from compval.cli.main import main\n"
        "try:\n"
        f"    main(['compare', {str(model)!r}, {str(model)!r}, '--data', {str(data)!r},\n"
        "          '--labels', 'label', '--segments', 'region',\n"
        f"          '--report-dir', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = ('scipy.stats', 'pandas', 'pyarrow.compute', 'compval.profiling',\n"
        "         'compval.robustness', 'compval.numerics')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # The run did compute what needs the special functions (intervals, McNemar).
    assert report["statistics"]["resampling"] is not None
