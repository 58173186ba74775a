"""Weighted retraining for `molvae optimize --retrain-every`: the `RetrainFn` a campaign calls,
composed from the weighted fine-tuning (`molvae.train.weighted`) and a checkpoint's codec.

Each fine-tuned model is a normal checkpoint (``models/retrain_<k>.pt`` in the campaign
directory; loads with ``weights_only=True``), written atomically: the base checkpoint's meta
(its KL weight and property scale, for the next fine-tuning too) plus ``meta["finetuned"]``
(from which model, on how many molecules, with which settings and seed) and its training domain.
Its learned prior is not carried over: it was fitted to the base model's encoder, so a
retrained model's prior is N(0, I) (the campaign takes its latent box from the data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from molvae.bo import BOConfig
from molvae.bo.retrain_data import RetrainedModel, RetrainFn
from molvae.data.property_cache import compute_properties
from molvae.io import file_sha256
from molvae.model import LatentCodec, load_checkpoint, save_checkpoint
from molvae.train import FinetuneConfig, finetune


def _properties(codec: LatentCodec, smiles: list[str], meta: dict) -> np.ndarray | None:
    """The property head's targets, standardized as in its training (None without a head)."""
    scale = meta.get("properties")
    if codec.model.prop_head is None or not scale:
        return None
    values = compute_properties(smiles, scale["names"])
    return ((values - np.asarray(scale["mean"])) / np.asarray(scale["std"])).astype(np.float32)


def retrain_callable(
    base_path: str | Path,
    codec: LatentCodec,
    callables: Callable[[LatentCodec], Any],
    config: FinetuneConfig,
) -> RetrainFn:
    """A `RetrainFn` over the checkpoint ``base_path`` (loaded as ``codec``). ``callables(codec)``
    gives the campaign's decode/encode/prior callables for a codec (``.decode``, ``.encode``,
    ``.prior``, as `molvae.runs.callables.campaign_callables`); retrained codecs decode with
    ``codec``'s grammar on its device."""
    base = load_checkpoint(base_path)
    base_sha = file_sha256(base_path)
    device = str(codec.device)

    def load(path: Path) -> LatentCodec:
        return LatentCodec.from_checkpoint(path, device=device, grammar=codec.grammar)

    def retrain(
        path: Path, start: Path | None, smiles: list[str], weights: np.ndarray, seed: int
    ) -> RetrainedModel:
        if not path.exists():
            src = codec if start is None else load(start)
            keep = [i for i, s in enumerate(smiles) if src.encodable(s) is None]
            kept = [smiles[i] for i in keep]
            ids = [np.asarray(src.vocab.encode(s)) for s in kept]
            props = _properties(src, kept, base.meta)
            model = finetune(src.model, src.vocab.tokens, ids, np.asarray(weights)[keep], config,
                             seed, props=props, meta=base.meta)  # fmt: skip
            info = {"from": start.name if start else "base", "base_sha256": base_sha,
                    "n_molecules": len(kept), "n_not_encodable": len(smiles) - len(kept),
                    "seed": int(seed), "config": asdict(config),
                    "weighting": "rank: 1 / (k N + rank)"}  # fmt: skip
            meta = {k: v for k, v in base.meta.items() if k != "versions"}
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, model, src.vocab.tokens, {**meta, "finetuned": info},
                            domain=base.training_domain())  # fmt: skip
        fns = callables(load(path))
        return RetrainedModel(fns.decode, fns.encode, fns.prior)

    return retrain


def campaign_retraining(
    method: str,
    bo_config: BOConfig,
    model_path: str | Path,
    codec: LatentCodec,
    callables: Callable[[LatentCodec], Any],
    config: FinetuneConfig | None = None,
) -> tuple[RetrainFn | None, dict[str, Any]]:
    """A campaign's `RetrainFn` (see `retrain_callable`) and the settings its directory is pinned
    to (``finetune``: ``config``, default `FinetuneConfig`); (None, {}) when
    ``bo_config.retrain_every`` is 0. Weighted retraining is for ``method`` "bo" only."""
    if not bo_config.retrain_every:
        return None, {}
    if method != "bo":
        raise ValueError("weighted retraining (retrain_every) works with method 'bo' only")
    config = config or FinetuneConfig()
    return retrain_callable(model_path, codec, callables, config), {"finetune": asdict(config)}
