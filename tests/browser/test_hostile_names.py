"""Hostile names from data render as text in Chromium and execute nothing.

A real run (skl2onnx models, a parquet file) whose segment values and model names are markup:
script tags, a premature ``</svg>``, attribute-breaking quotes, an ``onerror`` image and control
characters. In the browser no script runs (``window.__pwned`` stays unset, no dialog opens),
no element or event handler comes from the data, and the page shows each name as written.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from compval.cli.main import main
from compval.reports import visible

PAYLOADS = [
    "<script>window.__pwned=1;alert(1)</script>",
    "</svg><script>window.__pwned=2</script>",
    '" onmouseover="window.__pwned=3" x="',
    "<img src=x onerror=window.__pwned=4>",
    "'single' & \"double\" $x^2$",
    "ctl\x1b[31m\x00\x07\u202eend",
]
REFERENCE = "ref<script>window.__pwned=5</script>"
CANDIDATE = 'cand" onmouseover="window.__pwned=6'
# What the page shows for the control-character payload: each control spelled out.
SHOWN_CONTROL = "ctl\\x1b[31m\\x00\\x07\\u202eend"


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skl2onnx = pytest.importorskip("skl2onnx")
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(21)
    n = 100 * len(PAYLOADS)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] - 0.4 * x[:, 2] > 0).astype(np.int64)
    for name, c in (("ref", 1.0), ("cand", 0.003)):
        model = LogisticRegression(C=c).fit(x, y)
        onnx = skl2onnx.to_onnx(model, x[:1], options={"zipmap": False})
        (folder / f"{name}.onnx").write_bytes(onnx.SerializeToString())
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(4)])
    frame["y"] = y
    frame["group"] = np.array(PAYLOADS, dtype=object)[np.arange(n) % len(PAYLOADS)]
    frame.to_parquet(folder / "val.parquet")
    spec = {
        "version": 1,
        "reference": {"name": REFERENCE, "path": "ref.onnx"},
        "candidates": [{"name": CANDIDATE, "path": "cand.onnx"}],
        "data": {"path": "val.parquet", "labels": "y", "segments": ["group"]},
        "statistics": {"replicates": 100},
        "criteria": [
            {"id": "per-group", "metric": "accuracy_score", "max_drop": 0.02, "segment": "*"}
        ],
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = folder / "report"
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        code = main(["validate", str(folder / "spec.yaml"), "--report-dir", str(out)])
    assert code in (0, 1), err.getvalue()
    return out / "report.html"


def test_hostile_names_render_as_text_and_execute_nothing(hostile_html: Path, visit: Any) -> None:
    seen = visit(hostile_html)
    page = seen.page
    page.hover("body")  # would fire an injected onmouseover
    assert page.evaluate("() => window.__pwned") is None
    assert seen.dialogs == []
    assert seen.console_errors == [] and seen.page_errors == []
    assert page.title() in ("compval: FAILED", "compval: PASSED")

    # No element and no event handler came from the data.
    assert page.eval_on_selector_all("script, img, iframe, object, embed", "e => e.length") == 0
    handlers = page.evaluate(
        "() => [...document.querySelectorAll('*')].flatMap("
        "e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'))"
    )
    assert handlers == []

    # Every name is shown as report.json spells it (control characters spelled out), in the
    # tables and inside the plots.
    report = json.loads((hostile_html.parent / "report.json").read_text("utf-8"))
    segments = sorted(
        {c["segment"] for c in report["checks"] if (c["segment"] or "").startswith("group=")}
    )
    markers = ("__pwned=1", "__pwned=2", "__pwned=3", "__pwned=4", "$x^2$", "ctl")
    assert len(segments) == len(PAYLOADS)
    assert all(any(m in s for s in segments) for m in markers)
    text = page.inner_text("body")
    for name in [*segments, REFERENCE, CANDIDATE]:
        assert visible(name) in text
    assert SHOWN_CONTROL in text
    drawn = page.eval_on_selector_all("svg text", "ts => ts.map(t => t.textContent)")
    assert f"group={PAYLOADS[1]}" in drawn  # '</svg>' inside a forest-plot label
    assert f"group={PAYLOADS[4]}" in drawn  # '$x^2$' as dollars, not mathtext
