"""Proposing a batch: optimize the acquisition on the fitted GP, inside the trust region.

A numerical GP or acquisition failure (``ACQ_ERRORS``) falls back to scrambled Sobol points in the
same box, so a campaign always gets a batch; the fallback is logged and recorded in the
``Proposal``. Any other error is a bug and propagates.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import torch
from botorch.acquisition import qLogExpectedImprovement, qUpperConfidenceBound
from botorch.exceptions.errors import OptimizationGradientError
from botorch.generation import MaxPosteriorSampling
from botorch.models import SingleTaskGP
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from linear_operator.utils.errors import NanError
from torch.quasirandom import SobolEngine

from molvae.bo.config import BOConfig
from molvae.bo.surrogate import GP_ERRORS, fit_gp, lengthscales, select_gp_points
from molvae.bo.trust_region import trust_region_box

logger = logging.getLogger(__name__)

# What optimizing the acquisition may fail with and still fall back: the GP's numerical errors
# (its posterior is factorized here too) plus BoTorch's NaN gradient of the acquisition, which it
# raises as a RuntimeError subclass ("this often indicates numerical issues").
ACQ_ERRORS = (*GP_ERRORS, OptimizationGradientError)


@dataclass
class Proposal:
    """A proposed batch ``z`` (``q x d``, float64) and how it was made."""

    z: torch.Tensor
    source: str  # "bo" or "random" (GP fallback / random search)
    fallback: str | None = None
    gp_points: int = 0
    fit_s: float = 0.0
    acq_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def sobol_in_box(box: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n x d`` scrambled Sobol points in ``box: 2 x d`` (float64)."""
    u = SobolEngine(box.shape[-1], scramble=True, seed=seed).draw(n, dtype=torch.float64)
    return box[0] + u * (box[1] - box[0])


def _acq_candidates(
    model: SingleTaskGP, y: torch.Tensor, box: torch.Tensor, q: int, cfg: BOConfig, seed: int
) -> torch.Tensor:
    """Optimize the configured acquisition over ``box`` (raw latent coordinates)."""
    if cfg.acquisition == "ts":
        cand = sobol_in_box(box, max(cfg.ts_candidates, q), seed)
        with torch.no_grad():
            return MaxPosteriorSampling(model, replacement=False)(cand, num_samples=q)
    sampler = SobolQMCNormalSampler(torch.Size([cfg.mc_samples]), seed=seed)
    if cfg.acquisition == "qlogei":
        acq = qLogExpectedImprovement(model, best_f=y.max(), sampler=sampler)
    else:
        acq = qUpperConfidenceBound(model, beta=cfg.beta, sampler=sampler)
    cand, _ = optimize_acqf(
        acq,
        bounds=box,
        q=q,
        num_restarts=cfg.num_restarts,
        raw_samples=cfg.raw_samples,
        options={"batch_limit": 2, "maxiter": cfg.acq_maxiter, "seed": seed},
    )
    return cand.detach()


def propose_batch(
    cfg: BOConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    bounds: torch.Tensor,
    q: int,
    seed: int,
    tr_length: float | None = None,
) -> Proposal:
    """Propose ``q`` latent points from observations ``x: n x d``, ``y: n`` within ``bounds``.

    Fits the GP on at most ``cfg.max_gp_points`` points and optimizes the acquisition, inside
    the trust region around the incumbent when ``tr_length`` is given. A numerical failure
    falls back to Sobol points in the same box (logged, recorded); any other error propagates.
    """
    x, y, bounds = x.to(torch.float64), y.to(torch.float64), bounds.to(torch.float64)
    span = bounds[1] - bounds[0]
    unit = torch.stack([torch.zeros_like(span), torch.ones_like(span)])

    def to_raw(box: torch.Tensor) -> torch.Tensor:
        return bounds[0] + box * span

    center = ((x[torch.argmax(y)] - bounds[0]) / span).clamp(0, 1) if len(y) else None
    box = unit if tr_length is None or center is None else trust_region_box(center, tr_length)

    def fallback(reason: str, prop: Proposal) -> Proposal:
        logger.warning("iteration falls back to random proposals: %s", reason)
        prop.z, prop.source, prop.fallback = sobol_in_box(to_raw(box), q, seed), "random", reason
        return prop

    prop = Proposal(z=torch.empty(0, bounds.shape[-1], dtype=torch.float64), source="bo")
    if len(y) == 0:
        return fallback("no scored points to fit a GP on", prop)
    t0 = time.perf_counter()
    anchor = x[torch.argmax(y)]
    idx = select_gp_points(x, y, cfg.max_gp_points, anchor, seed)
    model, prop.gp_points, prop.notes = fit_gp(x[idx], y[idx], bounds, seed, cfg.fit_maxiter)
    prop.fit_s = time.perf_counter() - t0
    if model is None:
        return fallback("GP fit failed: " + (prop.notes[-1] if prop.notes else "?"), prop)
    if tr_length is not None and center is not None:
        box = trust_region_box(center, tr_length, lengthscales(model))
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            z = _acq_candidates(model, y[idx], to_raw(box), q, cfg, seed)
        if not torch.isfinite(z).all():
            raise NanError("acquisition returned non-finite candidates")
    except ACQ_ERRORS as err:
        prop.acq_s = time.perf_counter() - t0
        msg = f"acquisition failed: {type(err).__name__}: {err}"
        prop.notes.append(msg[:300])
        return fallback(msg[:300], prop)
    prop.acq_s = time.perf_counter() - t0
    prop.z = z.reshape(q, -1).to(torch.float64)
    if prop.notes:
        prop.fallback = "; ".join(prop.notes)[:500]
    return prop
