"""prepare_renderers: a renderer's slow set-up (matplotlib) runs on the side, only if chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

_CHILD = """
import sys, threading
from compval.reports import prepare_renderers
prepare_renderers({formats!r})
for thread in threading.enumerate():
    if thread.name == "compval-prepare-reports":
        thread.join(timeout=60)
print("matplotlib" in sys.modules, "compval.reports._plots" in sys.modules)
"""


@pytest.mark.parametrize(
    ("formats", "expected"),
    [(["html"], "True True"), (["json", "markdown", "junit"], "False False")],
)
def test_only_the_chosen_renderers_prepare(formats: list[str], expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(formats=formats)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == expected, out.stderr[-2000:]
