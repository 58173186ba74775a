"""Gaussian-process Bayesian optimization in a latent space: config, surrogate, proposals.

The loop never sees the VAE: it talks to it through three callables (``DecodeFn``, ``EncodeFn``,
``ObjectiveFn``). The loop (``run_campaign``, ``random_search``, ``load_campaign``) lives in
``molvae.campaign`` and its crash-safe directory in ``molvae.campaign_io``; both are re-exported
here, so ``from molvae.bo import run_campaign`` works.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.acquisition import qLogExpectedImprovement, qUpperConfidenceBound
from botorch.exceptions import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.generation import MaxPosteriorSampling
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NanError, NotPSDError
from torch.quasirandom import SobolEngine

from molvae.trust_region import trust_region_box

logger = logging.getLogger(__name__)

DecodeFn = Callable[[torch.Tensor, int, int], list[list[str]]]
"""(z: n x d float32, n_attempts, seed) -> per z the decoded SMILES (attempt 0 greedy)."""
EncodeFn = Callable[[list[str]], torch.Tensor]
"""SMILES -> n x d latent means (NaN rows where a SMILES cannot be encoded)."""
ObjectiveFn = Callable[[list[str]], tuple[np.ndarray, list[str]]]
"""canonical SMILES -> (scores, status in {"ok", "invalid", "failed"})."""
CanonicalFn = Callable[[str], "str | None"]
"""SMILES -> canonical SMILES or None when invalid."""
PriorFn = Callable[[int, int], torch.Tensor]
"""(n, seed) -> n x d latent samples (random search)."""

ACQUISITIONS = ("qlogei", "qucb", "ts")
# Errors a GP fit or an acquisition optimization can raise on degenerate data.
GP_ERRORS = (ModelFittingError, NotPSDError, NanError, RuntimeError, ValueError)


@dataclass
class BOConfig:
    """Settings of a latent-space BO campaign (also used, in part, by random search).

    ``budget`` counts molecules scored ``ok`` that the optimizer proposed (not the initial
    design); the Kusner protocol is ``budget=250, batch_size=50, max_iterations=5``.
    ``decode_temperature`` is for the caller's decoder (the loop only records it).
    """

    budget: int = 250
    batch_size: int = 50
    max_iterations: int | None = None
    n_init: int = 250
    init_pool: int = 2000
    init_top: int = 50
    acquisition: str = "qlogei"
    beta: float = 0.5
    mc_samples: int = 128
    ts_candidates: int = 2000
    # On by default: in 56 dimensions qLogEI over the whole box proposes edge points that decode
    # to poor molecules; a TuRBO-style box around the incumbent won on plogp and QED (README).
    trust_region: bool = True
    tr_length_init: float = 0.8
    tr_length_min: float = 0.5**7
    tr_length_max: float = 1.6
    tr_success_tolerance: int = 3
    bound_std: float = 3.0
    n_decode_attempts: int = 5
    decode_temperature: float = 1.0
    num_restarts: int = 4
    raw_samples: int = 256
    acq_maxiter: int = 100
    fit_maxiter: int = 150
    max_gp_points: int = 500
    seed: int = 0
    n_jobs: int = 1
    top_k: int = 12

    def __post_init__(self) -> None:
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, not {self.acquisition!r}")
        if self.budget < 0 or self.batch_size < 1 or self.n_decode_attempts < 1:
            raise ValueError("budget must be >= 0, batch_size and n_decode_attempts >= 1")
        if self.max_gp_points < 1 or self.n_init < 0 or self.init_top < 0:
            raise ValueError("max_gp_points must be >= 1, n_init and init_top >= 0")


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


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of one iteration, from (campaign seed, iteration) so a resumed run repeats it."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def choose_decoded(attempts: list[str], canonical_fn: CanonicalFn) -> tuple[str, str, float]:
    """Pick the most frequent valid canonical SMILES among decode attempts (ties: earliest).

    Returns ``(decoded, canonical, valid_fraction)``; ``canonical`` is ``""`` and ``decoded``
    the greedy attempt when no attempt is valid.
    """
    if not attempts:
        return "", "", 0.0
    cans = [canonical_fn(s) for s in attempts]
    valid = [(i, c) for i, c in enumerate(cans) if c]
    if not valid:
        return attempts[0], "", 0.0
    counts = Counter(c for _, c in valid)
    top = max(counts.values())
    i, can = next((i, c) for i, c in valid if counts[c] == top)
    return attempts[i], can, len(valid) / len(attempts)


def select_gp_points(
    x: torch.Tensor, y: torch.Tensor, max_points: int, center: torch.Tensor, seed: int
) -> torch.Tensor:
    """Indices (priority order) of at most ``max_points`` training points ``x: n x d``.

    A third are the best by ``y: n``, a third the nearest to ``center`` (``d``, the incumbent or
    trust-region centre), the rest at random; all points, best first, when ``n <= max_points``.
    """
    order = torch.argsort(y, descending=True, stable=True)
    n = x.shape[0]
    if n <= max_points:
        return order
    taken = torch.zeros(n, dtype=torch.bool)
    best = order[: max_points // 3]
    taken[best] = True
    dist = (x - center).pow(2).sum(-1)
    dist[taken] = math.inf
    near = torch.argsort(dist, stable=True)[: max_points // 3]
    taken[near] = True
    rest = torch.nonzero(~taken).reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    rand = rest[
        torch.randperm(rest.numel(), generator=gen)[: max_points - best.numel() - near.numel()]
    ]
    return torch.cat([best, near, rand])


def _gp(x: torch.Tensor, y: torch.Tensor, bounds: torch.Tensor, noise_floor: float | None):
    likelihood = None
    if noise_floor is not None:
        likelihood = GaussianLikelihood(
            noise_prior=LogNormalPrior(loc=-4.0, scale=1.0),
            noise_constraint=GreaterThan(noise_floor),
        )
    return SingleTaskGP(
        x,
        y.unsqueeze(-1),
        likelihood=likelihood,
        input_transform=Normalize(x.shape[-1], bounds=bounds),
        outcome_transform=Standardize(1),
    )


def fit_gp(
    x: torch.Tensor, y: torch.Tensor, bounds: torch.Tensor, seed: int = 0, maxiter: int = 150
) -> tuple[SingleTaskGP | None, int, list[str]]:
    """Fit an exact GP on ``x: n x d`` (priority order), ``y: n`` in float64, robustly.

    Tries the plain fit, then larger jitter and a noise floor, then the first half and quarter
    of the points. Returns ``(model or None, points used, notes on each failed attempt)``.
    ``maxiter`` caps L-BFGS: uncapped, irrelevant lengthscales can drift for thousands of steps
    (seen: 3,000 steps, 50 s at n = 300, d = 56) for no gain in the acquisition.
    """
    x, y, bounds = x.to(torch.float64), y.to(torch.float64), bounds.to(torch.float64)
    n = x.shape[0]
    attempts = [("plain", n, None, None), ("jitter", n, 1e-4, 1e-3)]
    attempts += [("fewer", m, 1e-4, 1e-3) for m in (n // 2, n // 4) if m >= 1 and m < n]
    notes: list[str] = []
    for name, m, jitter, floor in attempts:
        try:
            with warnings.catch_warnings(), torch.random.fork_rng():
                warnings.simplefilter("ignore")
                torch.manual_seed(seed)
                model = _gp(x[:m], y[:m], bounds, floor)
                mll = ExactMarginalLogLikelihood(model.likelihood, model)
                kwargs = {"optimizer_kwargs": {"options": {"maxiter": maxiter}}}
                if jitter is None:
                    fit_gpytorch_mll(mll, **kwargs)
                else:
                    with gpytorch_jitter(jitter):
                        fit_gpytorch_mll(mll, **kwargs)
                model.eval()
                if not torch.isfinite(model.posterior(x[:1]).mean).all():
                    raise NanError("GP posterior is not finite")
            return model, m, notes
        except GP_ERRORS as err:
            msg = f"GP fit ({name}, {m} points) failed: {type(err).__name__}: {err}"
            logger.warning(msg)
            notes.append(msg[:300])
    return None, 0, notes


def gpytorch_jitter(jitter: float):
    """Context manager raising GPyTorch's Cholesky jitter (float and double) to ``jitter``."""
    import gpytorch

    return gpytorch.settings.cholesky_jitter(float_value=jitter, double_value=jitter)


def lengthscales(model: SingleTaskGP) -> torch.Tensor | None:
    """ARD lengthscales ``d`` of a fitted GP (None if the kernel has none)."""
    kernel = model.covar_module
    ls = getattr(kernel, "lengthscale", None)
    if ls is None and hasattr(kernel, "base_kernel"):
        ls = getattr(kernel.base_kernel, "lengthscale", None)
    return None if ls is None else ls.detach().reshape(-1)


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
    the trust region around the incumbent when ``tr_length`` is given. Any GP or acquisition
    failure falls back to Sobol points in the same box; the fallback is logged and recorded.
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
    except GP_ERRORS as err:
        prop.acq_s = time.perf_counter() - t0
        msg = f"acquisition failed: {type(err).__name__}: {err}"
        prop.notes.append(msg[:300])
        return fallback(msg[:300], prop)
    prop.acq_s = time.perf_counter() - t0
    prop.z = z.reshape(q, -1).to(torch.float64)
    if prop.notes:
        prop.fallback = "; ".join(prop.notes)[:500]
    return prop


def chem_objective(spec: str, n_jobs: int = 1) -> ObjectiveFn:
    """An ``ObjectiveFn`` scoring with ``molvae.chem``: objective ``spec``, ``n_jobs`` processes."""
    from molvae.chem import get_objective, score_smiles

    objective = get_objective(spec)

    def score(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        result = score_smiles(smiles, objective, n_jobs)
        return np.asarray(result.scores, dtype=float), list(result.status)

    return score


def default_canonical() -> CanonicalFn:
    """``molvae.chem.canonical`` (imported lazily: chem is optional at import time)."""
    from molvae.chem import canonical

    return canonical


def __getattr__(name: str):
    # The loop imports this module, so its public names are re-exported lazily.
    if name in (
        "CampaignResult",
        "run_campaign",
        "random_search",
        "load_campaign",
        "chem_objective",
    ):
        from molvae import campaign

        return getattr(campaign, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
