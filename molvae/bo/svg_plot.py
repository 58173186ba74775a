"""Hand-drawn SVG charts for the HTML report: axes with round ticks, a colour scale, markup.

Hand-drawn rather than matplotlib's SVG: a few kB instead of tens (matplotlib inlines its glyphs),
no font or file to load, and text the page's stylesheet sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

# viridis at 9 stops, interpolated: readable on white, in grey and for most colour blindness
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
            "#addc30", "#fde725")  # fmt: skip


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def fmt_tick(v: float) -> str:
    """A tick label: no trailing zeros, 4 significant digits."""
    return f"{v:.4g}"


@dataclass(frozen=True)
class Frame:
    """A chart's plotting area inside a ``width x height`` picture and its data ranges."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    left: int = 56
    right: int = 16
    top: int = 16
    bottom: int = 44

    def x(self, v: float | np.ndarray) -> float | np.ndarray:
        """Data x to picture x."""
        lo, hi = self.x_range
        return self.left + (v - lo) / ((hi - lo) or 1.0) * (self.width - self.left - self.right)

    def y(self, v: float | np.ndarray) -> float | np.ndarray:
        """Data y to picture y (up is larger)."""
        lo, hi = self.y_range
        inner = self.height - self.top - self.bottom
        return self.top + inner - (v - lo) / ((hi - lo) or 1.0) * inner


def padded(lo: float, hi: float, frac: float = 0.05) -> tuple[float, float]:
    """[lo, hi] widened by ``frac`` of its span on each side (a span of 0 by 0.5)."""
    span = hi - lo
    return (lo - 0.5, hi + 0.5) if span <= 0 else (lo - frac * span, hi + frac * span)


def axes(frame: Frame, x_label: str, y_label: str) -> list[str]:
    """SVG elements of the frame's box, round ticks, grid lines and axis labels."""
    f = frame
    x0, x1, y0, y1 = f.left, f.width - f.right, f.top, f.height - f.bottom
    out = [f'<rect class="frame" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/>']
    for v in nice_ticks(*f.x_range):
        if f.x_range[0] <= v <= f.x_range[1]:
            px = f.x(v)
            out.append(f'<line class="gridline" x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}"/>')
            out.append(f'<text x="{px:.1f}" y="{y1 + 16}" text-anchor="middle">'
                       f"{fmt_tick(v)}</text>")  # fmt: skip
    for v in nice_ticks(*f.y_range):
        if f.y_range[0] <= v <= f.y_range[1]:
            py = f.y(v)
            out.append(f'<line class="gridline" x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"/>')
            out.append(f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end">'
                       f"{fmt_tick(v)}</text>")  # fmt: skip
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{f.height - 8}" text-anchor="middle">'
               f"{escape(x_label)}</text>")  # fmt: skip
    out.append(f'<text transform="translate(14 {(y0 + y1) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')  # fmt: skip
    return out


def colours(t: np.ndarray) -> list[str]:
    """Viridis colours of ``t`` in [0, 1] (clipped; NaN as 0) as ``#rrggbb``."""
    t = np.clip(np.nan_to_num(np.asarray(t, dtype=float), nan=0.0), 0.0, 1.0)
    table = np.array([[int(c[k : k + 2], 16) for k in (1, 3, 5)] for c in _VIRIDIS], dtype=float)
    pos = t * (len(_VIRIDIS) - 1)
    i = np.minimum(pos.astype(int), len(_VIRIDIS) - 2)
    rgb = np.rint(table[i] + (table[i + 1] - table[i]) * (pos - i)[:, None]).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def colour_bar(x: int, y: int, height: int, lo: float, hi: float, label: str) -> list[str]:
    """A vertical viridis scale from ``lo`` (bottom) to ``hi`` (top), labelled."""
    stops = "".join(f'<stop offset="{i / (len(_VIRIDIS) - 1):.3f}" stop-color="{c}"/>'
                    for i, c in enumerate(reversed(_VIRIDIS)))  # fmt: skip
    return [
        f'<defs><linearGradient id="viridis" x1="0" y1="0" x2="0" y2="1">{stops}'
        "</linearGradient></defs>",
        f'<rect x="{x}" y="{y}" width="12" height="{height}" fill="url(#viridis)"/>',
        f'<text x="{x + 16}" y="{y + 10}">{fmt_tick(hi)}</text>',
        f'<text x="{x + 16}" y="{y + height}">{fmt_tick(lo)}</text>',
        f'<text x="{x}" y="{y - 6}">{escape(label)}</text>',
    ]


def svg(width: int, height: int, parts: list[str], label: str) -> str:
    """An ``<svg>`` element of ``parts`` with an accessible label."""
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(parts) + "</svg>")  # fmt: skip
