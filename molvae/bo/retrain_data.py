"""Weighted retraining's data: the rank weights, the retraining set, the latents of each model
version (``models/latents_<k>.csv``) and the history as the GP sees it in the current latent space.

The retraining set is the campaign's scored pool (the data molecules the initial design was drawn
from, scored once) plus every proposal scored ok, each molecule once, ranked together by score.
Tripp et al. (2020) rank the model's whole training set with the new points; scoring the model's
training set (240k molecules) would cost more than the campaign, and the pool is a uniform sample
of the same data, so its ranks stand in for the training set's. Molecules a campaign discards
(invalid, failed) have no score and no rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo.config import DecodeFn, EncodeFn, SampleFn
from molvae.bo.store import csv_line, read_table, z_columns
from molvae.io import write_text


@dataclass
class RetrainedModel:
    """The callables of a fine-tuned model: the campaign decodes and encodes through them."""

    decode_fn: DecodeFn
    encode_fn: EncodeFn
    prior_fn: SampleFn | None = None


RetrainFn = Callable[[Path, "Path | None", list[str], np.ndarray, int], RetrainedModel]
"""(path, start, canonical SMILES, weights, seed) -> the model saved at ``path``.

When ``path`` holds a model, it is loaded and the other arguments are ignored (a resumed campaign
picks up a finished fine-tuning). Otherwise the model at ``start`` (None: the campaign's own
model) is fine-tuned on the SMILES drawn by weight, seeded with ``seed``, and saved to ``path``
atomically (a kill leaves no half-written file) before it is loaded.
"""


def rank_weights(scores: np.ndarray, k: float = 1e-3) -> np.ndarray:
    """Weights ``1 / (k N + rank)`` of ``N`` scores, rank 0 the best (Tripp et al. 2020,
    rank-based weighting); equal scores are ranked in the order given."""
    s = np.asarray(scores, dtype=float)
    if not np.isfinite(s).all():
        raise ValueError("rank weights need finite scores")
    ranks = np.empty(len(s), dtype=np.int64)
    ranks[np.argsort(-s, kind="stable")] = np.arange(len(s))
    return 1.0 / (k * len(s) + ranks)


def retraining_set(pool: pd.DataFrame | None, history: pd.DataFrame) -> pd.DataFrame:
    """``canonical``, ``score`` of the pool's scored molecules and every proposal scored ok (not
    the initial design's rows: they are pool molecules), each molecule once, pool order first."""
    cols = ["canonical", "score", "status"]
    parts = [] if pool is None else [pool[cols]]
    if len(history):
        parts.append(history.loc[history["iteration"] > 0, cols])
    if not parts:
        return pd.DataFrame({"canonical": [], "score": []})
    rows = pd.concat(parts, ignore_index=True)
    score = rows["score"].astype(float)
    rows = rows[(rows["status"] == "ok") & np.isfinite(score) & (rows["canonical"] != "")]
    return rows.drop_duplicates("canonical")[["canonical", "score"]].reset_index(drop=True)


def molecules_to_encode(pool: pd.DataFrame | None, history: pd.DataFrame) -> list[str]:
    """Every valid molecule of the pool and the history, once (pool order first): what a new
    model version encodes."""
    cans = [] if pool is None else list(pool["canonical"])
    cans += list(history["canonical"]) if len(history) else []
    return list(dict.fromkeys(c for c in cans if isinstance(c, str) and c))


def model_path(campaign_dir: Path, version: int) -> Path:
    """The fine-tuned checkpoint of model version ``version`` (1, 2, ...)."""
    return Path(campaign_dir) / "models" / f"retrain_{version}.pt"


def latents_path(campaign_dir: Path, version: int) -> Path:
    """The latents of every molecule in model version ``version``'s space."""
    return Path(campaign_dir) / "models" / f"latents_{version}.csv"


def write_latents(path: Path, canonical: list[str], z: np.ndarray) -> None:
    """Write ``canonical`` + ``z0..`` (``n x d``; NaN rows: could not be encoded) atomically,
    floats by ``repr`` so they read back exactly."""
    lines = [csv_line(["canonical", *z_columns(z.shape[1])])]
    lines += [csv_line([c, *map(float, row)]) for c, row in zip(canonical, z, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(lines))


def read_latents(path: Path) -> pd.DataFrame:
    """What `write_latents` wrote (``canonical``, ``z0..``)."""
    return read_table(path)


def in_latent_space(
    history: pd.DataFrame, latents: pd.DataFrame | None, since: int, dim: int | None
) -> pd.DataFrame:
    """``history`` with the latent vector of every row recorded up to iteration ``since`` (the
    retraining point) replaced by its molecule's latents in the current model (NaN where it has
    none: the row drops out of the GP); later rows were proposed in that space and keep theirs.
    Without ``latents`` (no retraining yet) the history itself."""
    if latents is None or dim is None or not len(history):
        return history
    zc = z_columns(dim)
    old = (history["iteration"] <= since).to_numpy()
    table = latents.drop_duplicates("canonical").set_index("canonical")[zc]
    view = history.copy()
    view.loc[old, zc] = table.reindex(history.loc[old, "canonical"]).to_numpy(dtype=float)
    return view


def pool_latents(pool: pd.DataFrame, latents: pd.DataFrame, dim: int) -> np.ndarray:
    """The pool molecules' latents in the current model (``n x d``; NaN where not encoded)."""
    table = latents.drop_duplicates("canonical").set_index("canonical")[z_columns(dim)]
    return table.reindex(pool["canonical"]).to_numpy(dtype=float)
