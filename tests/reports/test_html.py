"""report.html: layout, escaping, plots only for data that exists, size and determinism.

The page is parsed with the standard library (html.parser for the page, ElementTree for each
inline SVG, which must be well-formed XML), so the assertions are about the document a browser
builds, not about substrings that happen to match.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from compval.reports import render_html, write_reports
from compval.results import (
    CalibrationBins,
    CheckResult,
    FlipMatrix,
    MetricValue,
    Reliability,
    Report,
    RunInfo,
    SliceResult,
)

SCRIPT = "<script>window.__pwned=1</script>"
CLOSE_SVG = "</svg><script>window.__pwned=1</script>"
ATTRIBUTE = '" onmouseover="window.__pwned=1" x="'
IMG = "<img src=x onerror=window.__pwned=1>"
MATH = "price=$x^2$ & 'q'"
CONTROL = "ctl=a\x1b[31mb\x00c\u202ed"
HOSTILE_SEGMENTS = [f"name={SCRIPT}", f"tag={CLOSE_SVG}", f"q={ATTRIBUTE}", f"i={IMG}", MATH]
HOSTILE_MODEL = "<b>int8</b>'\""
_RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
_SVG_NS = "{http://www.w3.org/2000/svg}"


class _Page(HTMLParser):
    """Elements, attributes, section ids and the text a browser would show."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.sections: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        if tag == "section":
            self.sections += [v or "" for k, v in attrs if k == "id"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def body_text(self) -> str:
        return "".join(self.text)


def _svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(chunk) for chunk in _SVG.findall(page)]


def _svg_texts(svg: ET.Element) -> list[ET.Element]:
    return list(svg.iter(f"{_SVG_NS}text"))


def _section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}"')
    return page[start : page.index("</section>", start)]


@pytest.fixture
def rich_report(report: Report, check_factory: Callable[..., CheckResult]) -> Report:
    """The renderer tests' report plus per-segment checks, flips, reliability and slices."""
    segments = [None, "lang=en", "lang=de", "lang=fr"]
    verdicts = ["pass", "pass", "fail", "inconclusive"]
    checks = tuple(
        dataclasses.replace(
            check_factory(
                "per-lang",
                "pruned",
                verdict,
                segment=segment,
                observed=-0.01 * i,
                threshold=-0.05,
                message=f"per-lang {verdict}",
            ),
            details={"ci": [-0.01 * i - 0.02, -0.01 * i + 0.02]},
        )
        for i, (segment, verdict) in enumerate(zip(segments, verdicts, strict=True))
    )
    assert report.statistics is not None
    statistics = dataclasses.replace(
        report.statistics,
        flips={
            "pruned": FlipMatrix(
                classes=("cat", "dog", "bird"),
                agreed=(50, 40, 30),
                moved=((0, 1, 7), (2, 1, 3)),
            )
        },
        reliability={
            "pruned": Reliability(
                reference=CalibrationBins(
                    rows=(0, 10, 90), confidence=(None, 0.5, 0.9), accuracy=(None, 0.4, 0.88)
                ),
                candidate=CalibrationBins(
                    rows=(5, 20, 75), confidence=(0.2, 0.5, 0.92), accuracy=(0.0, 0.3, 0.8)
                ),
            )
        },
        discovered={"pruned": (_slice("x in [0, 1)", delta=-0.2, p_adjusted=0.001),)},
    )
    return dataclasses.replace(report, checks=report.checks + checks, statistics=statistics)


def _slice(description: str, *, delta: float, p_adjusted: float) -> SliceResult:
    return SliceResult(
        description=description,
        features=("x",),
        n=120,
        reference_accuracy=0.9,
        candidate_accuracy=0.9 + delta,
        delta=delta,
        ci=(delta - 0.05, delta + 0.05),
        confidence=0.95,
        p_value=p_adjusted / 10,
        p_value_adjusted=p_adjusted,
        flip_correct_to_wrong_rate=0.1,
        flip_wrong_to_correct_rate=0.0,
        slices_searched=40,
    )


@pytest.fixture
def hostile_report(rich_report: Report) -> Report:
    """Every string a user's data can set, set to markup, quotes and control characters."""
    checks = tuple(
        dataclasses.replace(
            c, segment=HOSTILE_SEGMENTS[i % len(HOSTILE_SEGMENTS)], candidate=HOSTILE_MODEL
        )
        if c.id == "per-lang"
        else c
        for i, c in enumerate(rich_report.checks)
    )
    checks += (dataclasses.replace(checks[-1], segment=CONTROL, id=f"id-{SCRIPT}", message=IMG),)
    assert rich_report.statistics is not None
    statistics = dataclasses.replace(
        rich_report.statistics,
        flips={
            HOSTILE_MODEL: FlipMatrix(
                classes=(SCRIPT, CLOSE_SVG, CONTROL), agreed=(5, 5, 5), moved=((0, 1, 2),)
            )
        },
        discovered={HOSTILE_MODEL: (_slice(CLOSE_SVG, delta=-0.2, p_adjusted=0.001),)},
    )
    models = {f"ref{SCRIPT}": {"role": "reference"}, HOSTILE_MODEL: {"role": "candidate"}}
    return dataclasses.replace(
        rich_report,
        checks=checks,
        candidates=(HOSTILE_MODEL, *rich_report.candidates),
        statistics=statistics,
        run=dataclasses.replace(rich_report.run, models=models, notes=(IMG, CONTROL)),
    )


# --- layout -----------------------------------------------------------------------------------


def test_the_verdict_comes_first_then_the_failed_checks_then_the_plots(
    rich_report: Report,
) -> None:
    page = render_html(rich_report)
    parsed = _Page(page)
    assert parsed.sections[:2] == ["checks-not-passed", "segments"]
    assert {"flips", "reliability", "performance", "slices"} <= set(parsed.sections)
    assert "<title>compval: FAILED</title>" in page
    verdict = page.index('<span class="badge fail">FAILED</span> compval')
    assert verdict < page.index('id="checks-not-passed"') < page.index("<svg")
    # The blocking failure is a table row with its reason; the non-blocking one is collapsed.
    failing = _section(page, "checks-not-passed")
    assert "accuracy_score delta = -0.0312 &lt; -0.01 | bad `code`" in failing
    assert failing.index("<details>") < failing.index("latency_p95_ms[batch=1] = 2.6 &gt; 2")


def test_the_forest_plot_marks_the_failing_segment_in_red(rich_report: Report) -> None:
    section = _section(render_html(rich_report), "segments")
    # One figure per segmented criterion: agreement, nan-check (from the fixture), per-lang.
    assert [t.split("</h3>")[0] for t in section.split("<h3>")[1:]] == [
        "agreement",
        "nan-check",
        "per-lang",
    ]
    svg = _svgs(section)[-1]
    labels = {t.text: t.get("fill", "") for t in _svg_texts(svg)}
    assert {"overall", "lang=en", "lang=de", "lang=fr"} <= set(labels)
    assert "#c62828" in labels["lang=de"]  # failed
    assert "#c62828" not in labels["lang=en"] and "#c62828" not in labels["lang=fr"]
    assert "threshold >= -0.05" in labels
    assert "per-lang: pruned: 1 of 4 failed (lang=de)." in section


def test_flips_reliability_slices_and_performance_are_drawn_from_the_report(
    rich_report: Report,
) -> None:
    page = render_html(rich_report)
    flips = _section(page, "flips")
    (matrix,) = _svgs(flips)
    cells = [t.text for t in _svg_texts(matrix)]
    assert {"7", "3", "50", "40", "30"} <= set(cells)  # every non-empty cell, counts as drawn
    assert "10 of 130 rows changed class." in flips
    assert '<td>cat</td><td>dog</td><td class="num">7</td>' in flips
    reliability = _section(page, "reliability")
    assert len(_svgs(reliability)) == 1
    slices = _section(page, "slices")
    slice_labels = [t.text for t in _svg_texts(_svgs(slices)[0])]
    assert "x in [0, 1) (n=120)" in slice_labels
    performance = _section(page, "performance")
    latency, concurrency = _svgs(performance)
    assert {"p50 latency", "p95 latency", "p99 latency"} <= {t.text for t in _svg_texts(latency)}
    assert "throughput" in {t.text for t in _svg_texts(concurrency)}
    assert "1.833x" in performance  # the speedup table


def test_sections_without_data_are_left_out(passing_report: Report) -> None:
    page = render_html(passing_report)
    assert _Page(page).sections == ["checks-not-passed", "metrics", "checks-passed"]
    assert "<svg" not in page
    assert "Every check passed." in page
    assert '<span class="badge pass">PASSED</span> compval' in page


def test_a_candidate_that_never_changed_class_gets_a_sentence_not_a_matrix(
    rich_report: Report,
) -> None:
    assert rich_report.statistics is not None
    same = FlipMatrix(classes=("a", "b"), agreed=(60, 40), moved=())
    report = dataclasses.replace(
        rich_report, statistics=dataclasses.replace(rich_report.statistics, flips={"int8": same})
    )
    flips = _section(render_html(report), "flips")
    assert "<svg" not in flips
    assert "predicted the reference&#x27;s class on all 100 rows" in flips


# --- escaping ---------------------------------------------------------------------------------


def test_hostile_names_render_as_text_and_create_no_element(hostile_report: Report) -> None:
    page = render_html(hostile_report)
    parsed = _Page(page)
    # No element and no attribute came from data: only the page's own vocabulary.
    assert not {"script", "img", "iframe", "object", "b"} & set(parsed.tags)
    assert all(not name.startswith("on") for name, _ in parsed.attributes)
    text = parsed.body_text
    for literal in (SCRIPT, CLOSE_SVG, ATTRIBUTE.strip(), IMG, MATH, HOSTILE_MODEL):
        assert literal in text
    # Control characters are spelled out, never written raw.
    assert _RAW_CONTROL.search(page) is None
    assert "ctl=a\\x1b[31mb\\x00c\\u202ed" in text


def test_hostile_names_inside_plots_stay_svg_text(hostile_report: Report) -> None:
    page = render_html(hostile_report)
    svgs = _svgs(page)  # each parses as XML on its own: a '</svg>' in data did not close one
    assert page.count("<svg") == page.count("</svg>") == len(svgs) >= 4
    drawn = [t.text or "" for svg in svgs for t in _svg_texts(svg)]
    assert any(SCRIPT in t for t in drawn)  # a flip-matrix class
    assert any(CLOSE_SVG in t for t in drawn)  # a forest segment and a slice
    assert any(MATH in t for t in drawn)  # '$x^2$' stays dollars, no mathtext
    assert not any(_RAW_CONTROL.search(t) for t in drawn)
    for svg in svgs:
        assert not list(svg.iter(f"{_SVG_NS}script"))
        assert svg.find(f"{_SVG_NS}metadata") is None


# --- size, determinism, dependencies ----------------------------------------------------------


def _big_report(
    run: RunInfo,
    check_factory: Callable[..., CheckResult],
    metric_factory: Callable[..., MetricValue],
) -> Report:
    """8 candidates x 300 segments x 3 criteria, every fourth check failing."""
    names = [f"cand{i}" for i in range(8)]
    checks = [
        check_factory(
            f"crit{k}",
            name,
            "fail" if s % 4 == 0 else "pass",
            segment=f"segment=value-{s:03d}",
            observed=-0.001 * s,
            message=f"accuracy_score delta[segment=value-{s:03d}] = {-0.001 * s:.3g} " * 3,
        )
        for k in range(3)
        for name in names
        for s in range(300)
    ]
    metrics = [metric_factory(name, f"metric_{m}") for name in names for m in range(40)]
    return Report(run=run, metrics=tuple(metrics), checks=tuple(checks), candidates=tuple(names))


def test_a_large_report_stays_small(
    run_factory: Callable[..., RunInfo],
    check_factory: Callable[..., CheckResult],
    metric_factory: Callable[..., MetricValue],
) -> None:
    report = _big_report(run_factory(), check_factory, metric_factory)
    page = render_html(report)
    assert len(page.encode("utf-8")) < 2 * 1024 * 1024
    # 7,200 checks: tables and plots are cut, with a note pointing to report.json.
    assert "more rows in report.json." in page
    assert "segments with the best verdicts are not drawn" in page
    assert all(len(_svg_texts(svg)) < 400 for svg in _svgs(page))


_RENDER = """
import pickle, sys
from compval.reports import render_html
sys.stdout.write(render_html(pickle.loads(sys.stdin.buffer.read())))
"""


def test_the_same_report_gives_the_same_bytes_in_any_process(hostile_report: Report) -> None:
    import pickle

    data = pickle.dumps(hostile_report)
    pages = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _RENDER], input=data, capture_output=True, check=True, env=env
        )
        pages.append(out.stdout)
    assert pages[0] == pages[1]
    assert pages[0].decode("utf-8") == render_html(hostile_report)


_HEAVY = """
import pickle, sys
from compval.cli.main import main
try:
    main(["--help"])
except SystemExit:
    pass
from compval.reports import render_html
page = render_html(pickle.loads(sys.stdin.buffer.read()))
assert page.count("<svg") == 8, page.count("<svg")
heavy = ("matplotlib", "numpy", "scipy", "pandas", "pyarrow", "PIL", "onnxruntime", "torch",
    "sklearn")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_rendering_the_plots_imports_nothing_heavy(rich_report: Report) -> None:
    import pickle

    # The report is pickled as it is: its classes keep compval.results as their module even
    # though compval.stats and compval.profiling (imported by now) re-export some of them.
    out = subprocess.run(
        [sys.executable, "-c", _HEAVY],
        input=pickle.dumps(rich_report),
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.decode().strip().splitlines()[-1] == "[]"


def test_every_plot_is_one_plain_svg_element(hostile_report: Report) -> None:
    page = render_html(hostile_report)
    chunks = _SVG.findall(page)
    assert len(chunks) == 9
    for chunk in chunks:
        svg = ET.fromstring(chunk)  # well-formed XML on its own
        assert svg.tag == f"{_SVG_NS}svg"
        width, height = svg.get("width", ""), svg.get("height", "")
        assert width.endswith("pt") and height.endswith("pt")
        assert svg.get("viewBox") == f"0 0 {width[:-2]} {height[:-2]}"
        # No ids to collide between figures, nothing to fetch or run, no metadata.
        assert not [e for e in svg.iter() if {"id", "href", "style", "class"} & set(e.attrib)]
        tags = {e.tag.removeprefix(_SVG_NS) for e in svg.iter()}
        assert tags <= {"svg", "rect", "line", "polyline", "circle", "text"}, tags
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_write_reports_writes_report_html(rich_report: Report, tmp_path: Path) -> None:
    paths = write_reports(rich_report, tmp_path, formats=["json", "html"])
    assert paths["html"] == tmp_path / "report.html"
    assert paths["html"].read_text("utf-8") == render_html(rich_report)
