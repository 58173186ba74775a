"""The GP surrogate: which points it is fitted on, and a fit that survives degenerate data.

The GP runs on the CPU in float64. A fit that fails numerically (``GP_ERRORS``) is retried with
more jitter and a noise floor, then on fewer points; the caller falls back to random proposals
when every attempt fails.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
from botorch.exceptions import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NanError, NotPSDError

logger = logging.getLogger(__name__)

# The numerical failures a GP fit can raise on degenerate data, and the only ones the campaign
# survives (retried, then random proposals, recorded per iteration): BoTorch's fit giving up,
# linear_operator's Cholesky of a non-PSD matrix or a NaN, and torch's own Cholesky/solve errors.
# Anything else (TypeError, a shape mismatch's RuntimeError, a bad argument's ValueError) is a bug
# and propagates, instead of silently turning BO into random search.
GP_ERRORS = (ModelFittingError, NotPSDError, NanError, torch.linalg.LinAlgError)


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


def believe_pending(model: SingleTaskGP, x_pending: torch.Tensor | None) -> SingleTaskGP:
    """``model`` conditioned on its own posterior mean at ``x_pending`` (``p x d``, points
    proposed whose oracle calls are still running): the "kriging believer" fantasy (Ginsbourger
    et al. 2010). The mean is unchanged, the variance at and near the pending points shrinks,
    so Thompson sampling and UCB look elsewhere; ``model`` itself when nothing is pending."""
    if x_pending is None or len(x_pending) == 0:
        return model
    with torch.no_grad():
        mean = model.posterior(x_pending).mean  # p x 1, in the observations' units
        return model.condition_on_observations(x_pending, mean)
