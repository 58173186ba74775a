"""The HTML report's latent map: a 2-D PCA of the scored molecules' latents, with where the
search was centred after each iteration.

Latents are ``evaluations.csv``'s ``z0..`` columns; after weighted retraining (`molvae.bo.retrain`)
the rows recorded before the last retraining are shown at their latents in the latest model
(``models/latents_<k>.csv``), as the GP sees them, so the map is one space. A row without a
latent is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molvae.bo.accounting import SCORED
from molvae.bo.retrain_data import in_latent_space, latents_path, read_latents
from molvae.bo.store import z_columns
from molvae.bo.svg_plot import Frame, axes, colour_bar, colours, padded, svg

_Z = re.compile(r"z\d+")


@dataclass
class LatentMap:
    """Scored rows with a latent: their 2-D coordinates, scores, SMILES, and the centre marks."""

    xy: np.ndarray  # n x 2
    score: np.ndarray
    smiles: list[str]
    explained: tuple[float, float]  # fraction of the variance along each axis
    centres: list[tuple[int, int]]  # (iteration, index into xy) in iteration order
    centre_label: str
    note: str = ""


def latent_view(history: pd.DataFrame, out_dir: Path, state: dict[str, Any]) -> pd.DataFrame:
    """``history`` in the latest model version's latent space (itself without retraining)."""
    dim = sum(bool(_Z.fullmatch(str(c))) for c in history.columns)
    version = int(state.get("model_version", 0) or 0)
    path = latents_path(out_dir, version)
    if not version or not dim or not path.exists():
        return history
    since = int(state["retrains"][-1]["iteration"])
    return in_latent_space(history, read_latents(path), since, dim)


def _scored_rows(view: pd.DataFrame) -> pd.DataFrame:
    dim = sum(bool(_Z.fullmatch(str(c))) for c in view.columns)
    if not dim or not len(view):
        return view.iloc[:0]
    score = view["score"].astype(float)
    rows = view[view["status"].isin(SCORED) & np.isfinite(score)]
    return rows[np.isfinite(rows[z_columns(dim)].to_numpy(dtype=float)).all(axis=1)]


def pca_2d(z: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """``n x 2`` principal-component coordinates of ``z`` and the fraction of the variance
    each explains (a missing component: zeros and 0). Each axis points where its largest
    loading is positive, so the map keeps its orientation from one report to the next."""
    centred = z - z.mean(axis=0)
    # the d x d covariance's eigenvectors, not an SVD of the n x d table: same axes, and a
    # small problem (d = 56) whatever the campaign's length
    var, vec = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(var)[::-1][:2]
    var, vec = np.clip(var, 0, None), vec[:, order]
    vec = vec * np.where(vec[np.abs(vec).argmax(axis=0), range(vec.shape[1])] < 0, -1.0, 1.0)
    xy = np.zeros((len(z), 2))
    xy[:, : vec.shape[1]] = centred @ vec
    frac = np.pad(var[order] / var.sum() if var.sum() > 0 else 0 * var[order], (0, 2 - len(order)))
    return xy, (float(frac[0]), float(frac[1]))


@dataclass(frozen=True)
class _Rows:
    """The map's rows as arrays: a search over them per iteration stays cheap."""

    iteration: np.ndarray
    ok_score: np.ndarray  # the score of rows scored ok, -inf for the others
    first: dict[str, int]  # canonical SMILES -> its first ok row

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _Rows:
        ok = (rows["status"] == "ok").to_numpy()
        score = np.where(ok, rows["score"].to_numpy(dtype=float), -np.inf)
        canonical, first = rows["canonical"].to_numpy(dtype=str), {}
        for i in np.flatnonzero(ok)[::-1]:  # the first row wins: written last
            first[str(canonical[i])] = int(i)
        return cls(rows["iteration"].to_numpy(), score, first)

    def best(self, upto: int, since: int = 0) -> int | None:
        """Position of the best ok row of iterations [since, upto], the first on ties."""
        score = np.where(
            (self.iteration <= upto) & (self.iteration >= since), self.ok_score, -np.inf
        )
        i = int(np.argmax(score)) if len(score) else 0
        return i if len(score) and np.isfinite(score[i]) else None


def _trust_region_centre(rows: _Rows, records: list[dict], k: int) -> int | None:
    """Where `molvae.bo.regions` centres the region after record ``k``: the incumbent until
    a restart, then the restart molecule or the better one the region found since."""
    rec = records[k]
    t, smiles = int(rec["iteration"]), rec.get("tr_center")
    if not isinstance(smiles, str) or not smiles:
        return rows.best(t)
    since = next((int(r["iteration"]) + 1 for r in reversed(records[: k + 1])
                  if r.get("tr_restarted")), 0)  # fmt: skip
    start = rows.first.get(smiles)
    if start is None:
        return None
    own = rows.best(t, since)
    return own if own is not None and rows.ok_score[own] > rows.ok_score[start] else start


def centres(rows: pd.DataFrame, records: list[dict]) -> tuple[list[tuple[int, int]], str]:
    """(iteration, position in ``rows``) per finished iteration, and what they are: the trust
    region's centre when the campaign had one, else the best molecule so far."""
    trust = any(r.get("tr_length") is not None for r in records)
    arrays, found = _Rows.of(rows), []
    for k, rec in enumerate(records):
        t = int(rec["iteration"])
        pos = _trust_region_centre(arrays, records, k) if trust else arrays.best(t)
        if pos is not None:
            found.append((int(rec["iteration"]), pos))
    label = ("trust-region centre after each iteration (reconstructed from state.json's "
             "tr_center / tr_restarted and the history, as molvae.bo.regions places it)"
             if trust else "best molecule after each iteration (this campaign had no trust "
             "region, so no centre is recorded)")  # fmt: skip
    return found, label


def latent_map(view: pd.DataFrame, records: list[dict]) -> LatentMap | None:
    """The map of ``view`` (`latent_view`), None with fewer than 2 scored rows with a latent."""
    rows = _scored_rows(view).reset_index(drop=True)
    if len(rows) < 2:
        return None
    dim = sum(bool(_Z.fullmatch(str(c))) for c in rows.columns)
    xy, explained = pca_2d(rows[z_columns(dim)].to_numpy(dtype=float))
    marks, label = centres(rows, records)
    return LatentMap(xy, rows["score"].to_numpy(dtype=float), list(rows["canonical"]),
                     explained, marks, label)  # fmt: skip


def latent_map_svg(m: LatentMap, width: int = 680, height: int = 480) -> str:
    """The map as inline SVG: points coloured by score (best drawn last), centres as crosses
    joined in iteration order; every mark has a tooltip."""
    x_range = padded(float(m.xy[:, 0].min()), float(m.xy[:, 0].max()))
    frame = Frame(width, height, x_range, padded(float(m.xy[:, 1].min()), float(m.xy[:, 1].max())),
                  right=80)  # fmt: skip
    lo, hi = float(m.score.min()), float(m.score.max())
    px, py = frame.x(m.xy[:, 0]), frame.y(m.xy[:, 1])
    parts = axes(frame, f"PC1 ({100 * m.explained[0]:.0f}% of variance)",
                 f"PC2 ({100 * m.explained[1]:.0f}% of variance)")  # fmt: skip
    fill = colours((m.score - lo) / ((hi - lo) or 1.0))
    for i in np.argsort(m.score, kind="stable"):
        c = fill[i]
        tip = f"{escape(m.smiles[i])}: {m.score[i]:.4g}"
        parts.append(f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="3.5" fill="{c}">'
                     f"<title>{tip}</title></circle>")  # fmt: skip
    if m.centres:
        pts = " ".join(f"{px[i]:.1f},{py[i]:.1f}" for _, i in m.centres)
        parts.append(f'<polyline class="centre-path" points="{pts}"/>')
        for t, i in m.centres:
            x, y = px[i], py[i]
            parts.append(f'<path class="centre" d="M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},'
                         f'{y + 5:.1f}M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}">'
                         f"<title>iteration {t}: {escape(m.smiles[i])} "
                         f"({m.score[i]:.4g})</title></path>")  # fmt: skip
    parts += colour_bar(width - 64, 40, height - 120, lo, hi, "score")
    return svg(width, height, parts, "latent map: PCA of the scored molecules' latents")
