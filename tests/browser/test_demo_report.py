"""The demo's report.html: small, self-contained, deterministic, and drawn by a real browser.

The browser test is what "done" means for the HTML report: Chromium loads the page without a
console error or a network request, and its screenshot (kept under the test's tmp folder)
shows the verdict and the forest plot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from compval.reports import render_html

_ATTRIBUTE_URL = re.compile(r'\b(?:href|src|xlink:href)="([^"]*)"')


@pytest.mark.slow
def test_the_demo_report_html_is_small_self_contained_and_deterministic(demo: Any) -> None:
    path = demo.folder / "report.html"
    page = path.read_text("utf-8")
    assert path.stat().st_size < 2 * 1024 * 1024
    # Nothing is fetched: every link or source is a fragment of the page itself.
    assert {url[:1] for url in _ATTRIBUTE_URL.findall(page)} <= {"#"}
    for section in ("checks-not-passed", "segments", "flips", "reliability", "performance"):
        assert f'<section id="{section}">' in page
    assert '<section id="slices">' in page
    # The same report renders to the same bytes.
    assert render_html(demo.report) == page


def _pixel_spread(png: Path) -> tuple[float, int]:
    """Standard deviation of the grey levels and number of distinct colours of an image."""
    from PIL import Image, ImageStat

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        return ImageStat.Stat(rgb.convert("L")).stddev[0], len(rgb.getcolors(1 << 24) or [])


@pytest.mark.slow
def test_chromium_shows_the_verdict_and_the_forest_plot(
    demo: Any, visit: Any, tmp_path: Path
) -> None:
    seen = visit(demo.folder / "report.html")
    page = seen.page
    assert seen.console_errors == [] and seen.page_errors == []
    assert [url for url in seen.requests if not url.startswith("file://")] == []
    assert page.title() == "compval: FAILED"

    verdict = page.locator("header h1")
    assert verdict.is_visible() and verdict.inner_text().startswith("FAILED")
    forest = page.locator("#segments figure svg").first
    forest.scroll_into_view_if_needed()
    box = forest.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 200
    # Every plot got a size from the browser (an SVG that failed to parse has none).
    sizes = page.eval_on_selector_all(
        "figure svg", "svgs => svgs.map(s => s.getBoundingClientRect().height)"
    )
    assert len(sizes) >= 8 and min(sizes) > 100

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    spread, colours = _pixel_spread(shot)
    assert spread > 20 and colours > 100  # not blank: text, plots, the red verdict
    forest_shot = tmp_path / "forest.png"
    forest.screenshot(path=str(forest_shot))
    spread, colours = _pixel_spread(forest_shot)
    assert spread > 10 and colours > 20
