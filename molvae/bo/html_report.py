"""The HTML report of a campaign: ``report/index.html``, one file that opens offline.

It holds a grid of every scored molecule (RDKit depictions as inline SVG; sort, SMILES and
substructure filters, copy buttons), the best-so-far trace against oracle calls, a latent map
(PCA) and the per-iteration table. Reads the campaign through ``molvae.bo.store``; writes through
``molvae.io``. The fixed page parts are in ``html_page``, the charts in ``trace_chart`` and
``latent_map``, the pictures in ``depictions`` and the substructure flags in ``substructures``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molvae.bo.accounting import SCORED
from molvae.bo.depictions import depictions, shared_styles
from molvae.bo.html_page import page
from molvae.bo.iteration_table import iteration_table
from molvae.bo.latent_map import latent_map, latent_map_svg, latent_view
from molvae.bo.pareto_charts import objective_labels, pareto_section
from molvae.bo.store import CampaignResult, CampaignStore, load_campaign
from molvae.bo.substructures import Substructure, substructure_flags, substructures
from molvae.bo.trace_chart import trace_svg
from molvae.io import read_json, write_text

MAX_PICTURES = 2000
PAGE_SIZE = 60
CACHE_NAME = "depictions.json"  # SVG of each molecule drawn, by canonical SMILES
FLAGS_NAME = "substructures.json"  # substructures of each molecule, for these patterns


def read_campaign(campaign: CampaignResult | str | Path) -> CampaignResult:
    """`load_campaign`, with one clear error for a directory that holds no campaign (missing,
    or its ``config.json`` is another tool's, such as a training run's)."""
    if isinstance(campaign, CampaignResult):
        return campaign
    path = Path(campaign)
    what = f"{path} is not a campaign directory (written by `molvae optimize`)"
    try:
        stored = read_json(path / "config.json") if path.is_dir() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: its config.json does not read as JSON ({exc})") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        found = "no config.json" if stored is None else "its config.json holds no campaign settings"
        raise FileNotFoundError(f"{what}: {found}")
    return load_campaign(path)


def grid_molecules(history: pd.DataFrame) -> pd.DataFrame:
    """Each molecule scored (``ok`` or ``infeasible``, a finite score) once, at its first row:
    ``canonical``, ``score``, ``iteration``, ``status``, ``source``, in recording order."""
    cols = ["canonical", "score", "iteration", "status", "source"]
    if history.empty:
        return pd.DataFrame({c: [] for c in cols})
    score = history["score"].astype(float)
    rows = history[
        history["status"].isin(SCORED) & np.isfinite(score) & (history["canonical"] != "")
    ]
    return rows.drop_duplicates("canonical")[cols].reset_index(drop=True)


def _pictures(
    mols: pd.DataFrame, cache: Path, max_pictures: int
) -> tuple[list[int], list[str], str]:
    """Per molecule its picture's index (-1 beyond the ``max_pictures`` best, -2 not drawable),
    the pictures, and the stylesheet they share."""
    best = mols.sort_values("score", ascending=False, kind="stable").head(max(max_pictures, 0))
    drawn = depictions(list(best["canonical"]), cache)
    order = [s for s in best["canonical"] if drawn[s]]
    pics, styles = shared_styles([drawn[s] for s in order], prefix="m")
    index = {s: i for i, s in enumerate(order)}
    picture = [index.get(s, -2 if s in drawn else -1) for s in mols["canonical"]]
    css = "".join(f".pic .{name}{{{style.translate(str.maketrans('', '', '<>{}'))}}}"
                  for name, style in styles.items())  # fmt: skip
    return picture, pics, css


def _objective(metadata: dict[str, Any]) -> str:
    run = metadata.get("run") if isinstance(metadata.get("run"), dict) else {}
    name, about = run.get("objective"), metadata.get("objective_description")
    if not name and not about:
        return "not recorded (config.json has no run metadata)"
    return " \u2014 ".join(str(v) for v in (name, about) if v)


def _facts(result: CampaignResult) -> str:
    """The header's list: objective, budget and oracle calls spent, best, why it stopped. The
    calls are counted from the history, as ``state.json``'s ``oracle_calls`` is, so a report of
    a live campaign includes the rows of the iteration in progress."""
    c = result.oracle_counts()
    best = ("none yet" if result.best_smiles is None
            else f"{result.best_score:.4g} <code>{escape(result.best_smiles)}</code>")  # fmt: skip
    facts = {
        "objective": escape(_objective(result.metadata)),
        "budget": escape(f"{c['budget']} oracle calls"),
        "oracle calls spent": escape(
            f"{c['calls']} of {c['budget']} (initial pool {c['pool']}, proposals "
            f"{c['proposals']}; scored for free: {c['free_data']} init data, {c['free_pool']} "
            "free pool)"
        ),
        "best": best,
        "stopped": escape(result.stop_reason or "not yet (running, or cut off)"),
        "iterations": str(len(result.iterations)),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, (float, np.floating)):
        return f"<td>{float(value):.4g}</td>"
    if isinstance(value, (int, np.integer, bool, np.bool_)):
        return f"<td>{value}</td>"
    return f'<td class="text">{escape(str(value))}</td>'


def iterations_html(iterations: pd.DataFrame) -> str:
    """The per-iteration table (the Markdown report's columns) as an HTML table."""
    if not len(iterations):
        return "<p>No iteration has finished yet.</p>"
    table = iteration_table(iterations)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>"
                   for row in table.itertuples(index=False))  # fmt: skip
    return f'<div class="table-wrap"><table><tr>{head}</tr>{rows}</table></div>'


def _sub_options(patterns: list[Substructure], flags: list[list[int]]) -> str:
    counts = np.bincount([i for f in flags for i in f], minlength=len(patterns))
    labels = [f"{p.smarts} (yours)" if p.user else f"{p.name} \u2014 {p.smarts}" for p in patterns]
    return "".join(f'<option value="{i}">{escape(label)} ({counts[i]})</option>'
                   for i, label in enumerate(labels))  # fmt: skip


def _map_section(result: CampaignResult, state: dict[str, Any]) -> str:
    view = latent_view(result.history, Path(result.out_dir), state)
    m = latent_map(view, list(state.get("iterations", [])))
    if m is None:
        return "<p>Fewer than two scored molecules have a latent vector: no map.</p>"
    retrained = " Weighted retraining: every molecule is placed at its latent in the latest " \
        "model (models/latents_&lt;k&gt;.csv)." if state.get("model_version") else ""  # fmt: skip
    return (
        f'<p class="note">{len(m.score)} scored molecules with a latent vector, projected on '
        "their first two principal components (PCA of the centred latents), coloured by "
        f"score; rows without a latent are left out.{retrained} Red crosses, joined in "
        f"iteration order: {escape(m.centre_label)}. Hover a mark for its molecule.</p>"
        + latent_map_svg(m)
    )


_GRID_NOTE = (
    "Every molecule the campaign scored (ok, or infeasible: scored but missing a constraint), "
    "once, at the first row that scored it. The SMILES filter keeps molecules whose canonical "
    "SMILES contains the text as typed (case matters: <code>c</code> is aromatic carbon); it is "
    "not a substructure search. The substructure filter can only use the patterns listed: each "
    "molecule was matched with RDKit against them when this page was written (<code>molvae "
    "report DIR --smarts SMARTS</code> adds patterns); a pattern not in the list cannot be "
    "searched here."
)


def _molecules_section(n: int, n_pics: int, max_pictures: int, options: str) -> str:
    capped = (f" Pictures are embedded for the {max_pictures} best molecules only; the "
              f"{n - max_pictures} others are listed without one." if n > max_pictures
              else "")  # fmt: skip
    sorts = (("score-desc", "score, best first"), ("score-asc", "score, worst first"),
             ("iteration-asc", "iteration, first first"),
             ("iteration-desc", "iteration, last first"))  # fmt: skip
    return (
        f'<section id="molecules"><h2>Molecules ({n})</h2><p class="note">{_GRID_NOTE}'
        f"{capped} {n_pics} pictures in this file.</p>"
        '<div class="controls"><label>Sort <select id="sort">'
        + "".join(f'<option value="{v}">{t}</option>' for v, t in sorts)
        + '</select></label><label>SMILES contains <input id="text" type="search" '
        'placeholder="e.g. Cl or c1ccccc1" autocomplete="off"></label><label>Substructure '
        '<select id="sub-mode"><option value="with">with</option><option value="without">'
        'without</option></select> <select id="sub"><option value="">(any)</option>'
        f"{options}</select></label></div>"
        '<div class="pager"><button type="button" id="prev">previous</button>'
        '<span id="count"></span><button type="button" id="next">next</button></div>'
        '<div id="grid" class="grid"></div>'
        "<noscript><p>The molecule grid needs JavaScript; the sections below do not.</p>"
        "</noscript></section>"
    )


def _front(result: CampaignResult, state: dict[str, Any]) -> str:
    """The multi-objective sections ("" for one objective); the trace below then follows the
    first objective."""
    m = result.config.n_objectives
    if m < 2:
        return ""
    labels = objective_labels(result.metadata, m)
    return pareto_section(result.history, labels, state, result.config.free_pool,
                          result.config.budget)  # fmt: skip


def _links(report_dir: Path) -> str:
    files = [n for n in ("summary.md", "trace.png", "top_molecules.png")
             if (report_dir / n).exists()]  # fmt: skip
    return " ".join(f'<a href="{n}">{n}</a>' for n in files)


def html_report(
    result: CampaignResult,
    smarts: Iterable[str] = (),
    *,
    max_pictures: int = MAX_PICTURES,
    page_size: int = PAGE_SIZE,
) -> str:
    """The HTML report of ``result`` as a string (`write_html_report` writes it)."""
    patterns = substructures(smarts)  # an invalid SMARTS fails before any drawing
    report_dir = Path(result.out_dir) / "report"
    state = CampaignStore(result.out_dir).read_state() or {}
    mols = grid_molecules(result.history)
    picture, pics, css = _pictures(mols, report_dir / CACHE_NAME, max_pictures)
    flags = substructure_flags(list(mols["canonical"]), patterns, report_dir / FLAGS_NAME)
    payload = {
        "perPage": max(int(page_size), 1), "maxPictures": max_pictures, "pics": pics,
        "mols": [[str(r.canonical), float(r.score), int(r.iteration), str(r.status),
                  str(r.source), picture[i], flags[i]]
                 for i, r in enumerate(mols.itertuples(index=False))],
    }  # fmt: skip
    title = f"{result.kind} campaign: {Path(result.out_dir).name}"
    body = (
        f'<header><h1>{escape(title)}</h1><dl class="facts">{_facts(result)}</dl>'
        '<nav><a href="#molecules">molecules</a>'
        + ('<a href="#front">Pareto front</a>' if result.config.n_objectives > 1 else "")
        + '<a href="#trace">trace</a>'
        '<a href="#latent-map">latent map</a><a href="#iterations">iterations</a>'
        f"{_links(report_dir)}</nav></header>"
        + _molecules_section(len(mols), len(pics), max_pictures, _sub_options(patterns, flags))
        + _front(result, state)
        + '<section id="trace"><h2>Best score against oracle calls</h2>'
        + trace_svg(result.history, result.config.free_pool, result.config.budget)
        + '</section><section id="latent-map"><h2>Latent map</h2>'
        + _map_section(result, state)
        + '</section><section id="iterations"><h2>Iterations</h2>'
        + iterations_html(result.iterations)
        + "</section>"
    )
    return page(title, body, payload, extra_css=css)


def write_html_report(
    campaign: CampaignResult | str | Path,
    smarts: Iterable[str] = (),
    *,
    max_pictures: int = MAX_PICTURES,
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write ``report/index.html`` of a campaign (a directory, finished or not, or its
    `CampaignResult`); returns its path.

    One self-contained file that opens offline: a molecule grid (``page_size`` a page;
    pictures for the ``max_pictures`` best, drawn by RDKit and cached in
    ``report/depictions.json``) with sorting, a SMILES text filter and a substructure filter,
    the best-so-far trace against oracle calls, a latent map and the per-iteration table.
    The substructure filter is precomputed: each molecule is matched with RDKit against
    ``molvae.bo.substructures.COMMON_SUBSTRUCTURES`` and the ``smarts`` given here, and the
    page can filter by those patterns only. An invalid SMARTS raises ValueError before anything
    is written; a directory that is no campaign raises FileNotFoundError (`read_campaign`).
    """
    result = read_campaign(campaign)
    text = html_report(result, smarts, max_pictures=max_pictures, page_size=page_size)
    return write_text(Path(result.out_dir) / "report" / "index.html", text)
