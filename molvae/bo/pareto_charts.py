"""The HTML report's multi-objective sections: the Pareto front (two objectives: one scatter;
more: a panel per pair), the hypervolume against oracle calls, and the Pareto molecules drawn
with their scores. Hand-drawn SVG, as the other charts (`molvae.bo.svg_plot`)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import combinations

import numpy as np
import pandas as pd

from molvae.bo.depictions import depict
from molvae.bo.pareto import hypervolume_trace, ok_points, pareto_mask, pareto_table
from molvae.bo.svg_plot import Frame, axes, fmt_tick, padded, svg

MAX_DRAWN = 30  # Pareto molecules drawn in the report (the table lists them all)


def objective_labels(metadata: dict, n: int) -> list[str]:
    """The objectives' specs as the run recorded them, else ``score_<i>``."""
    run = metadata.get("run") if isinstance(metadata.get("run"), dict) else {}
    specs = run.get("objective")
    if isinstance(specs, list) and len(specs) == n:
        return [str(s) for s in specs]
    return [f"score_{i}" for i in range(n)]


def _panel(y: np.ndarray, mask: np.ndarray, cans: list[str], i: int, j: int,
           labels: Sequence[str], size: int) -> str:  # fmt: skip
    f = Frame(size, size, padded(float(y[:, i].min()), float(y[:, i].max())),
              padded(float(y[:, j].min()), float(y[:, j].max())))  # fmt: skip
    parts = axes(f, labels[i], labels[j])
    for k in np.flatnonzero(~mask):
        parts.append(f'<circle class="dominated" cx="{f.x(y[k, i]):.1f}" '
                     f'cy="{f.y(y[k, j]):.1f}" r="2.5"/>')  # fmt: skip
    front = np.flatnonzero(mask)
    if y.shape[1] == 2 and len(front):  # the front as a staircase: what it dominates
        order = front[np.argsort(-y[front, i], kind="stable")]
        pts, prev = [], None
        for k in order:
            if prev is not None:
                pts.append(f"{f.x(y[k, i]):.1f},{f.y(y[prev, j]):.1f}")
            pts.append(f"{f.x(y[k, i]):.1f},{f.y(y[k, j]):.1f}")
            prev = k
        parts.append(f'<polyline class="trace" points="{" ".join(pts)}"/>')
    for k in front:
        tip = ", ".join(f"{escape(labels[m])} {fmt_tick(v)}" for m, v in enumerate(y[k]))
        parts.append(f'<circle class="gain" cx="{f.x(y[k, i]):.1f}" cy="{f.y(y[k, j]):.1f}" '
                     f'r="4"><title>{escape(cans[k])}: {tip}</title></circle>')  # fmt: skip
    return svg(size, size, parts, f"{labels[j]} against {labels[i]}: every molecule scored "
               "ok, the Pareto set in blue")  # fmt: skip


def front_svg(history: pd.DataFrame, labels: Sequence[str]) -> str:
    """The objective space: every molecule scored ok (grey), the Pareto set (blue, with the
    front's staircase for two objectives); one panel per pair of objectives past two."""
    y, cans = ok_points(history)
    if len(y) == 0:
        return "<p>No molecule has scored ok yet: no front.</p>"
    mask = pareto_mask(y)
    size = 420 if y.shape[1] == 2 else 300
    return "".join(_panel(y, mask, cans, i, j, labels, size)
                   for i, j in combinations(range(y.shape[1]), 2))  # fmt: skip


def hypervolume_svg(
    history: pd.DataFrame, ref_point: Sequence[float] | None, free_pool: bool, budget: int
) -> str:
    """The dominated hypervolume after each oracle call."""
    if ref_point is None:
        return "<p>No reference point yet (nothing scored ok): no hypervolume.</p>"
    calls, hv = hypervolume_trace(history, ref_point, free_pool)
    if len(calls) == 0:
        return "<p>No oracle call yet.</p>"
    f = Frame(680, 300, (0.0, float(max(budget, calls[-1], 1))), padded(0.0, float(hv.max())))
    parts = axes(f, "oracle calls (as the budget counts them)", "hypervolume")
    pts = " ".join(f"{f.x(c):.1f},{f.y(v):.1f}" for c, v in zip(calls, hv, strict=True))
    parts.append(f'<polyline class="trace" points="{pts}"/>')
    return svg(680, 300, parts, "hypervolume against oracle calls")


def pareto_section(
    history: pd.DataFrame, labels: Sequence[str], state: dict, free_pool: bool, budget: int
) -> str:
    """The report's sections for several objectives (HTML)."""
    ref = state.get("ref_point")
    table = pareto_table(history, labels)
    cells = []
    m = len(labels)
    for r in table.head(MAX_DRAWN).itertuples(index=False, name=None):
        can, values, iteration, source = r[0], r[1 : 1 + m], r[1 + m], r[2 + m]
        scores = "<br>".join(f"{escape(lab)}: {fmt_tick(float(v))}"
                             for lab, v in zip(labels, values, strict=True))  # fmt: skip
        cells.append(f'<div class="cell"><div class="pic">{depict(can)}</div>'
                     f'<code>{escape(can)}</code><span class="meta">{scores}<br>'
                     f"iteration {int(iteration)}, {escape(str(source))}</span></div>")  # fmt: skip
    more = (f"<p class='note'>{len(table) - MAX_DRAWN} more in state.json's pareto list.</p>"
            if len(table) > MAX_DRAWN else "")  # fmt: skip
    ref_text = "none yet" if ref is None else ", ".join(fmt_tick(v) for v in ref)
    return (
        f'<section id="front"><h2>Pareto front ({len(table)} molecules)</h2>'
        f"<p class='note'>Every objective is maximized; hypervolume reference point: "
        f"{escape(ref_text)}.</p>{front_svg(history, labels)}</section>"
        '<section id="hypervolume"><h2>Hypervolume against oracle calls</h2>'
        f"{hypervolume_svg(history, ref, free_pool, budget)}</section>"
        f'<section id="pareto-molecules"><h2>Pareto molecules</h2><div class="grid">'
        f"{''.join(cells)}</div>{more}</section>"
    )
