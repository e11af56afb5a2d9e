"""prepare_renderers: a renderer's slow set-up runs on the side, only if its format is chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A child process: registering renderers would otherwise change this process's registry.
_CHILD = """
import threading
from compval.reports import prepare_renderers, register_renderer

ran = []

def broken():
    raise ImportError("its library is missing")

register_renderer("fake", lambda report: "", filename="fake.txt", prepare=lambda: ran.append(1))
register_renderer("broken", lambda report: "", filename="broken.txt", prepare=broken)
prepare_renderers({formats!r})
for thread in threading.enumerate():
    if thread.name == "compval-prepare-reports":
        thread.join(timeout=60)
print(len(ran))
"""


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (["fake"], "1"),
        # A set-up that fails does not stop the others (the renderer reports it itself).
        (["broken", "fake"], "1"),
        # The built-in renderers, html included, have nothing to prepare.
        (["json", "markdown", "junit", "html", "broken"], "0"),
    ],
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
