"""A small SVG writer for report.html's plots: elements, text, ticks and colours (stdlib only).

Drawing units are points (1/72 in; the ``<svg>`` gives its width and height in pt). Output is
SVG 1.1 elements with presentation attributes (no CSS, no ids, no script, nothing fetched),
valid inside HTML and as a standalone ``.svg``. Coordinates are printed with at most two
decimals and every value is formatted by fixed rules, so the same drawing gives the same
bytes. Text is laid out by estimate (``text_width``): the browser draws it in its own
sans-serif font.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from compval.reports._format import visible

__all__ = ["Canvas", "log_ticks", "nice_ticks", "reds", "text_width", "tick_label"]

#: Drawing units (pt) per inch: a figure's size in inches x 72.
INCH = 72.0
#: About this many pt per character of 9 pt sans-serif text (0.068 in).
_CHAR_PX = 0.068 * INCH
# Not XML characters: lone surrogates and U+FFFE/U+FFFF (the controls are ``visible``'s job).
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")
# matplotlib's "Reds" colormap: the ColorBrewer 9-class anchors, evenly spaced from 0 to 1.
_REDS = tuple(
    tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))
    for c in (
        "#fff5f0",
        "#fee0d2",
        "#fcbba1",
        "#fc9272",
        "#fb6a4a",
        "#ef3b2c",
        "#cb181d",
        "#a50f15",
        "#67000d",
    )
)
# Baseline offsets, as a fraction of the font size, that put a line of text's middle or top
# at the given y (SVG's dominant-baseline is not honoured by every viewer).
_VALIGN = {"baseline": 0.0, "middle": 0.35, "top": 0.75}


def _n(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros, never ``-0``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _outline(stroke: str | None, width: float) -> str:
    """The stroke attributes of an outlined shape ("" without an outline)."""
    return f' stroke="{stroke}" stroke-width="{_n(width)}"' if stroke else ""


def _escape(text: str) -> str:
    """Text from data as safe XML character data or a double-quoted attribute value."""
    text = _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], visible(text))
    return html.escape(text, quote=True)


def text_width(text: str, size: float = 9.0) -> float:
    """Estimated width in pt of ``text`` at ``size`` pt (layout is computed, not measured)."""
    return len(text) * _CHAR_PX * size / 9.0


def reds(fraction: float) -> str:
    """The colour of "Reds" (matplotlib's) at ``fraction``, clamped to 0..1: #fff5f0 to #67000d."""
    if not math.isfinite(fraction):
        fraction = 0.0
    position = min(max(fraction, 0.0), 1.0) * (len(_REDS) - 1)
    i = min(int(position), len(_REDS) - 2)
    t = position - i
    rgb = (round(a + (b - a) * t) for a, b in zip(_REDS[i], _REDS[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def nice_ticks(low: float, high: float, most: int = 5) -> list[float]:
    """Ticks inside ``[low, high]`` at multiples of 1, 2, 2.5 or 5 x 10^k.

    The finest such step that gives at most ``most`` ticks; values are rounded to the step's
    decimals, so 3 x 0.1 is 0.3, not 0.30000000000000004.

    Example:
        >>> nice_ticks(-0.013, 0.004)
        [-0.01, -0.005, 0.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) and low == high else []
    exponent = math.floor(math.log10((high - low) / max(most, 1)))
    for exp in (exponent, exponent + 1, exponent + 2):
        for mantissa in (1.0, 2.0, 2.5, 5.0):
            step = mantissa * 10.0**exp
            # A hair of slack: a tick that lands on a limit through float error still counts.
            first = math.ceil(low / step - 1e-9)
            last = math.floor(high / step + 1e-9)
            if last - first + 1 <= most:
                decimals = max(0, -exp + (1 if mantissa == 2.5 else 0))
                return [round(i * step, decimals) + 0.0 for i in range(first, last + 1)]
    return []  # not reached: a step of 10^(exponent + 1) always fits


def log_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Ticks of a log axis inside ``[low, high]`` (both > 0).

    Powers of ten (every n-th when there are more than ``most``); under two decades also the
    2x and 5x values, so a short range still shows a few ticks.

    Example:
        >>> log_ticks(0.013, 0.4)
        [0.02, 0.05, 0.1, 0.2]
    """
    if not (0 < low < high and math.isfinite(high)):
        return []
    first = math.floor(math.log10(low))
    last = math.ceil(math.log10(high))
    mantissas = (1, 2, 5) if math.log10(high / low) < 2 else (1,)
    ticks = [
        round(m * 10.0**e, max(0, -e))
        for e in range(first, last + 1)
        for m in mantissas
        if low * (1 - 1e-9) <= m * 10.0**e <= high * (1 + 1e-9)
    ]
    if len(ticks) > most:
        stride = -(-len(ticks) // most)
        ticks = ticks[::stride]
    return ticks


def tick_label(value: float) -> str:
    """A tick value, compactly: ``0.3``, ``-0.005``, ``0``, ``80,000``, ``1e-05``.

    Example:
        >>> [tick_label(v) for v in (0.1 + 0.2, -0.005, -0.0, 80000.0, 1e-05)]
        ['0.3', '-0.005', '0', '80,000', '1e-05']
    """
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    size = abs(value)
    if size >= 1e9 or size < 1e-4:
        return f"{value:.6g}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class Canvas:
    """One ``<svg>`` drawn element by element, in pt from the top left corner."""

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height
        self._parts: list[str] = []

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        color: str,
        width: float = 1.0,
        *,
        dash: str | None = None,
    ) -> None:
        """A straight line; ``dash`` is an SVG stroke-dasharray such as ``"3.7 1.6"``."""
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self._parts.append(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
            f'stroke="{color}" stroke-width="{_n(width)}"{dashed}/>'
        )

    def polyline(self, points: Sequence[tuple[float, float]], color: str, width: float) -> None:
        """Connected line segments (nothing for fewer than two points)."""
        if len(points) < 2:
            return
        coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self._parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" '
            f'stroke-width="{_n(width)}" stroke-linejoin="round"/>'
        )

    def rect(
        self,
        x: float,
        y: float,
        width: float,
        height: float,
        fill: str,
        *,
        stroke: str | None = None,
        stroke_width: float = 1.0,
    ) -> None:
        """A filled rectangle, optionally outlined."""
        self._parts.append(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}" '
            f'fill="{fill}"{_outline(stroke, stroke_width)}/>'
        )

    def circle(
        self,
        x: float,
        y: float,
        r: float,
        fill: str,
        *,
        stroke: str | None = None,
        stroke_width: float = 1.0,
    ) -> None:
        """A dot: filled, with an outline of ``stroke_width`` pt when ``stroke`` is given."""
        self._parts.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" '
            f'fill="{fill}"{_outline(stroke, stroke_width)}/>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 9.0,
        anchor: str = "start",
        valign: str = "baseline",
        color: str = "#222222",
        bold: bool = False,
        vertical: bool = False,
    ) -> None:
        """``text`` (escaped here, control characters spelled out) anchored at (x, y).

        ``anchor`` is start, middle or end along the text; ``valign`` puts the baseline,
        middle or top of the line at y. ``vertical`` turns it to read bottom to top, about
        (x, y): then ``valign`` works along x.
        """
        attrs = f'x="{_n(x)}" y="{_n(y + _VALIGN[valign] * size)}"'
        if size != 9.0:
            attrs += f' font-size="{_n(size)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if color != "#222222":
            attrs += f' fill="{color}"'
        if bold:
            attrs += ' font-weight="bold"'
        if vertical:
            attrs += f' transform="rotate(-90 {_n(x)} {_n(y)})"'
        self._parts.append(f"<text {attrs}>{_escape(text)}</text>")

    def svg(self) -> str:
        """The finished ``<svg>`` element: a white background, then what was drawn, in order."""
        w, h = _n(self.width), _n(self.height)
        # Shown in pt, as matplotlib's SVGs were: 1 unit = 1 pt = 1/72 in, so 9-unit text is
        # 12 CSS px on the page, the size of the page's own small print.
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt" '
            f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="9" fill="#222222">'
        )
        background = f'<rect width="{w}" height="{h}" fill="white"/>'
        return "\n".join([head, background, *self._parts, "</svg>"])
