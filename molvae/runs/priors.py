"""Fit a learned latent prior (and record the training domain) into a copy of a checkpoint.

`fit_prior_run` is what ``molvae fit-prior`` runs: encode a random sample of the training
molecules, fit a `molvae.model.prior.LatentPrior` to their posteriors, compute the training
data's domain (`molvae.model.domain`), and write both into a new checkpoint.
`pipelines/fit_prior.py` chooses the prior's settings on held-out molecules.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molvae.chem import score_smiles
from molvae.data import read_smiles
from molvae.model import LatentCodec
from molvae.model.checkpoint import add_to_checkpoint
from molvae.model.domain import TrainingDomain, compute_domain
from molvae.model.prior import LatentPrior, PriorConfig, fit_prior
from molvae.resources import resolve_model


@dataclass
class FitPriorResult:
    """What `fit_prior_run` wrote."""

    path: Path
    prior: LatentPrior
    domain: TrainingDomain | None
    n_molecules: int  # training molecules whose posteriors the prior was fitted to
    seconds: float


def encode_posteriors(
    codec: LatentCodec, smiles: list[str], batch_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """Posterior means and log-variances (``m x d``) of the strings the codec can encode (a
    conditional model's [z, y]: its prior is the joint one, conditioned on y when sampling)."""
    enc = codec.encode(smiles, batch_size=batch_size, check_domain=False)
    rows = torch.as_tensor(np.flatnonzero(enc.ok))
    if enc.logvar is None or len(rows) < 2:
        raise ValueError(f"need at least 2 encodable molecules, got {len(rows)}")
    mu, logvar = enc.z[rows], enc.logvar[rows]
    if codec.condition_names:
        _label_codes(codec, [smiles[int(i)] for i in rows], mu, logvar)
    return mu, logvar


def _label_codes(codec: LatentCodec, smiles: list[str], mu: Tensor, logvar: Tensor) -> None:
    """A conditional model's codes with y set to each molecule's true properties where RDKit
    computes them (standardized, a tight variance; q(y|x)'s prediction elsewhere): the prior's
    molecules are labelled, so a condition picks them by what they are, not by a prediction."""
    d, scale = codec.model.config.latent_dim, codec.model.condition_scale
    for j, name in enumerate(codec.condition_names):
        try:
            values = score_smiles(smiles, name).scores
        except ValueError:  # a labels file's own column: keep the prediction
            continue
        known = torch.as_tensor(np.isfinite(values))
        y = (torch.as_tensor(values, dtype=torch.float32) - scale.mean[j]) / scale.std[j]
        mu[known, d + j] = y[known]
        logvar[known, d + j] = math.log(0.05**2)


def sample_rows(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """A seeded random choice of ``n`` of ``n_total`` row indices (all, shuffled, when None)."""
    order = np.random.default_rng(seed).permutation(n_total)
    return order if n is None else order[:n]


def fit_prior_run(
    model: str | os.PathLike,
    out: str | os.PathLike,
    data: str | os.PathLike = "zinc",
    config: PriorConfig | None = None,
    n_molecules: int | None = 50_000,
    domain: bool = True,
    device: str = "cpu",
    n_jobs: int = 1,
    domain_data: Sequence[str | os.PathLike] | None = None,
) -> FitPriorResult:
    """Fit a prior to ``n_molecules`` random molecules of ``data`` and write ``model`` with it
    (and, with ``domain``, the domain of all of ``data``) to ``out``.

    ``model`` is a checkpoint path or "default"; ``out`` must name another file. The domain
    costs about 1 ms per molecule (`compute_domain`), shared by ``n_jobs`` processes.
    ``domain_data`` (data names or files) replaces ``data`` as what the domain is computed
    from: a model trained on a mix has the mix's domain while its prior may follow one part.
    """
    t0 = time.perf_counter()
    config = config or PriorConfig()
    src, dst = resolve_model(model), Path(out)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"--out {dst} is the input model; write the prior into a new file")
    smiles = read_smiles(data)
    codec = LatentCodec.from_checkpoint(src, device=device, grammar=None)
    chosen = [smiles[i] for i in sample_rows(len(smiles), n_molecules, config.seed)]
    mu, logvar = encode_posteriors(codec, chosen)
    prior = fit_prior(mu, logvar, config)
    dom = None
    if domain:
        sources = [str(d) for d in domain_data] if domain_data else [str(data)]
        every = smiles if not domain_data else [s for d in sources for s in read_smiles(d)]
        dom = compute_domain(every, {"data": " + ".join(sources)}, n_jobs)
    add_to_checkpoint(src, dst, prior=prior, domain=dom)
    return FitPriorResult(dst, prior, dom, len(mu), time.perf_counter() - t0)
