"""The HTML report's trace: best score so far against oracle calls, as inline SVG.

The x axis counts oracle calls as the campaign's budget does (`molvae.bo.accounting`): call k is
the k-th charged call. At 0 the trace starts from the best molecule scored for free (init data,
a free pool) when there is one.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from molvae.bo.accounting import charged_rows, oracle_call_scores, oracle_calls
from molvae.bo.svg_plot import Frame, axes, padded, svg


def trace_points(history: pd.DataFrame, free_pool: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(oracle calls 0..n, best ok score after each, NaN before the first; the calls charged
    to the initial design)."""
    if history.empty:
        return np.arange(1), np.full(1, np.nan), 0
    scores = oracle_call_scores(history, free_pool)
    free = history[~charged_rows(history, free_pool) & (history["iteration"] == 0)
                   & (history["status"] == "ok")]  # fmt: skip
    free_scores = free["score"].to_numpy(dtype=float)
    start = np.nanmax(free_scores) if np.isfinite(free_scores).any() else np.nan
    best = np.fmax.accumulate(np.concatenate([[start], scores]))
    init = oracle_calls(history[history["iteration"] == 0], free_pool)
    return np.arange(len(best)), best, init


def _step_path(frame: Frame, x: np.ndarray, best: np.ndarray) -> tuple[str, list[str]]:
    """Polyline points of the post-step trace from its first finite value, and one dot (with a
    tooltip) where the best improved."""
    first = int(np.flatnonzero(np.isfinite(best))[0])
    pts, dots = [], []
    for i in range(first, len(x)):
        if i > first:
            pts.append(f"{frame.x(x[i]):.1f},{frame.y(best[i - 1]):.1f}")
        pts.append(f"{frame.x(x[i]):.1f},{frame.y(best[i]):.1f}")
        if i == first or best[i] > best[i - 1]:
            dots.append(f'<circle class="gain" cx="{frame.x(x[i]):.1f}" '
                        f'cy="{frame.y(best[i]):.1f}" r="3"><title>after {x[i]} oracle calls: '
                        f"best {best[i]:.4g}</title></circle>")  # fmt: skip
    return " ".join(pts), dots


def _marker(frame: Frame, at: float, text: str) -> list[str]:
    px, y0, y1 = frame.x(at), frame.top, frame.height - frame.bottom
    return [f'<line class="mark" x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}"/>',
            f'<text class="mark-label" x="{px - 4:.1f}" y="{y0 + 12}" text-anchor="end">'
            f"{escape(text)}</text>"]  # fmt: skip


def trace_svg(history: pd.DataFrame, free_pool: bool, budget: int) -> str:
    """The trace as inline SVG (a sentence when nothing has scored ok yet); the calls of the
    initial design and the budget are marked."""
    x, best, init = trace_points(history, free_pool)
    if not np.isfinite(best).any():
        return "<p>No molecule has scored ok yet: no trace.</p>"
    width, height = 680, 320
    finite = best[np.isfinite(best)]
    frame = Frame(width, height, (0.0, float(max(budget, x[-1], 1))),
                  padded(float(finite.min()), float(finite.max())))  # fmt: skip
    parts = axes(frame, "oracle calls (as the budget counts them)", "best score so far")
    if init:
        parts += _marker(frame, init, "initial design")
    if budget and math.isfinite(budget):
        parts += _marker(frame, budget, "budget")
    points, dots = _step_path(frame, x, best)
    parts.append(f'<polyline class="trace" points="{points}"/>')
    parts += dots
    return svg(width, height, parts, "best score so far against oracle calls")
