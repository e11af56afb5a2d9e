"""Headless Chromium for the report.html tests, and the reports it opens.

The browser is the system's Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it),
driven by Playwright's Python client with ``executable_path``: no Playwright browser download.
Set ``COMPVAL_CHROMIUM`` to use another Chromium or Chrome binary. Without playwright or a
browser the tests that need one are skipped, with the reason.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """``COMPVAL_CHROMIUM``, else the first Chromium or Chrome on PATH."""
    configured = os.environ.get("COMPVAL_CHROMIUM")
    if configured:
        return configured
    return next((p for p in map(shutil.which, _CHROMIUM_NAMES) if p), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found: apt-get install -y chromium, or set COMPVAL_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium's sandbox refuses to start; the page
        # is a local file without scripts.
        launched = playwright.chromium.launch(executable_path=path, chromium_sandbox=False)
        yield launched
        launched.close()


@dataclass
class Visit:
    """A page opened from a file, with everything it said while loading."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def visit(browser: Any) -> Iterator[Any]:
    """``visit(path)`` opens a file in a fresh 1200-pixel-wide page."""
    contexts = []

    def open_file(path: Path) -> Visit:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page)
        page.on(
            "console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
        page.on("request", lambda r: seen.requests.append(r.url))

        def dismiss(dialog: Any) -> None:
            seen.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismiss)
        page.goto(path.resolve().as_uri(), wait_until="load")
        return seen

    yield open_file
    for context in contexts:
        context.close()


@dataclass(frozen=True)
class DemoRun:
    """The demo's report object and the folder its reports were written to."""

    report: Any
    folder: Path


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``compval demo``'s models and run, with every registered report format written."""
    for module in ("onnxruntime", "sklearn", "pyarrow"):
        pytest.importorskip(module, reason=f"the demo report needs {module}")
    from compval.demo import build_demo
    from compval.engine import RunOptions, run_validation
    from compval.reports import RENDERERS, write_reports

    root = tmp_path_factory.mktemp("demo")
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        files = build_demo(root / "work", seed=0)
        report = run_validation(files.spec, options=RunOptions(replicates=200))
    write_reports(report, root / "report", formats=list(RENDERERS))
    return DemoRun(report=report, folder=root / "report")
