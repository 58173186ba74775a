"""TuRBO-style trust region for latent-space BO, and latent bounds from encoded data.

Pure tensor helpers: a small state dataclass, a pure update function and the box around the
incumbent. Coordinates of the box are in the normalized unit cube of the latent bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class TrustRegionState:
    """Side length (unit-cube units) and success/failure counters of a trust region.

    ``failure_tolerance`` defaults to ``ceil(max(4 / batch_size, dim / batch_size))`` as in TuRBO.
    """

    dim: int
    batch_size: int
    length: float = 0.8
    length_init: float = 0.8
    length_min: float = 0.5**7
    length_max: float = 1.6
    success_counter: int = 0
    success_tolerance: int = 3
    failure_counter: int = 0
    failure_tolerance: int = 0
    best_value: float = -math.inf
    restarts: int = 0
    waste_tolerance: float = 1.0
    # Where the region is centred: None until its first restart (the incumbent, the best
    # observation); after a restart the chosen point (raw latent z, its molecule and score),
    # followed by the best molecule the region finds from iteration ``since`` on.
    center: tuple[float, ...] | None = None
    center_smiles: str | None = None
    center_score: float = -math.inf
    since: int = 0
    used_centers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("center", "used_centers"):  # lists when read back from state.json
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if self.failure_tolerance <= 0:
            tol = math.ceil(max(4.0 / self.batch_size, self.dim / self.batch_size))
            object.__setattr__(self, "failure_tolerance", tol)


def update_trust_region(
    state: TrustRegionState, batch_best: float, best_so_far: float, waste: float = 0.0
) -> TrustRegionState:
    """Return the state after a batch whose best score is ``batch_best``.

    ``best_so_far`` is the region's best score before the batch. A batch that improves on it by
    more than 1e-3 * |best| is a success; ``success_tolerance`` successes in a row double the
    length (up to ``length_max``), ``failure_tolerance`` failures in a row halve it. A batch
    more than ``waste_tolerance`` of whose proposals (``waste``, a fraction) decoded to known
    molecules or invalid strings is a failure that halves the length at once, improved or not:
    the region is running out of new molecules. When the length falls below ``length_min`` the
    region restarts at ``length_init`` with its counters cleared (``restarts`` counts them; the
    caller moves the centre). A NaN ``batch_best`` (nothing scored) counts as a failure.
    """
    wasted = waste > state.waste_tolerance
    if math.isnan(batch_best) or wasted:
        improved = False
    elif not math.isfinite(best_so_far):
        improved = True
    else:
        improved = batch_best > best_so_far + 1e-3 * abs(best_so_far)
    success, failure = (
        (state.success_counter + 1, 0) if improved else (0, state.failure_counter + 1)
    )
    if wasted:
        failure = state.failure_tolerance
    length = state.length
    if success == state.success_tolerance:
        length, success = min(2.0 * length, state.length_max), 0
    elif failure == state.failure_tolerance:
        length, failure = length / 2.0, 0
    candidates = [v for v in (best_so_far, batch_best) if not math.isnan(v)]
    best = max(candidates) if candidates else state.best_value
    if length < state.length_min:
        return replace(
            state,
            length=state.length_init,
            success_counter=0,
            failure_counter=0,
            best_value=best,
            restarts=state.restarts + 1,
        )
    return replace(
        state, length=length, success_counter=success, failure_counter=failure, best_value=best
    )


def trust_region_box(
    center: torch.Tensor, length: float, lengthscales: torch.Tensor | None = None
) -> torch.Tensor:
    """Box ``2 x d`` in the unit cube around ``center`` (``d``, unit-cube coordinates).

    With GP ``lengthscales`` (``d``) the sides are stretched along long lengthscales, keeping
    the box volume ``length ** d`` (TuRBO's weighting).
    """
    d = center.shape[-1]
    if lengthscales is None:
        weights = torch.ones(d, dtype=center.dtype)
    else:
        ls = lengthscales.detach().reshape(-1).to(center.dtype)
        weights = ls / ls.mean()
        weights = weights / torch.prod(weights.pow(1.0 / d))
    lower = (center - weights * length / 2.0).clamp(0.0, 1.0)
    upper = (center + weights * length / 2.0).clamp(0.0, 1.0)
    return torch.stack([lower, upper])


def latent_bounds(z: torch.Tensor, bound_std: float = 3.0, min_std: float = 1e-6) -> torch.Tensor:
    """Bounds ``2 x d``: per-dimension mean -/+ ``bound_std`` x std of encoded latents ``n x d``.

    Rows with NaN (molecules that could not be encoded) are ignored. With fewer than two usable
    rows the standard normal prior is assumed (mean 0, std 1). ``min_std`` keeps the box open
    along collapsed dimensions.
    """
    z = z.to(torch.float64)
    z = z[torch.isfinite(z).all(dim=-1)]
    if z.shape[0] < 2:
        mean = torch.zeros(z.shape[-1], dtype=torch.float64)
        std = torch.ones_like(mean)
    else:
        mean, std = z.mean(dim=0), z.std(dim=0).clamp_min(min_std)
    return torch.stack([mean - bound_std * std, mean + bound_std * std])


def prior_bounds(z: torch.Tensor, quantile: float = 0.005, widen: float = 0.1) -> torch.Tensor:
    """Bounds ``2 x d`` from prior samples ``n x d``: the ``quantile`` and ``1 - quantile``
    quantiles per dimension, each moved out by ``widen`` times their distance (for N(0, 1) and
    the defaults: -/+ 3.09, about the -/+ 3 std of ``latent_bounds``)."""
    z = z.to(torch.float64)
    z = z[torch.isfinite(z).all(dim=-1)]
    if z.shape[0] < 2:
        raise ValueError("prior bounds need at least two finite prior samples")
    lo = torch.quantile(z, quantile, dim=0)
    hi = torch.quantile(z, 1.0 - quantile, dim=0)
    margin = widen * (hi - lo).clamp_min(1e-6)
    return torch.stack([lo - margin, hi + margin])
