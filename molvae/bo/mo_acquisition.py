"""Several objectives, latent surrogate: one latent GP per objective and qLogNEHVI optimized in a
trust region around a Pareto point.

As MORBO (Daulton et al. 2022) does, the region is centred on the Pareto point with the largest
hypervolume contribution (the volume only it dominates), and a batch is a success when it grows
the campaign's hypervolume (`molvae.bo.iteration`). Constraints weigh the acquisition as for one
objective (`molvae.bo.acquisition`): their GPs' samples are BoTorch outcome constraints. A
numerical failure falls back to Sobol points in the region, recorded as the fallback.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from functools import partial

import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective

# past 4 objectives an approximate box decomposition, as BoTorch advises
from botorch.acquisition.multi_objective.utils import get_default_partitioning_alpha
from botorch.models import ModelListGP
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from linear_operator.utils.errors import NanError

from molvae.bo.acquisition import ACQ_ERRORS, Proposal, feasibility_gps, sobol_in_box
from molvae.bo.config import BOConfig
from molvae.bo.pareto import hypervolume, pareto_mask
from molvae.bo.surrogate import fit_gp, lengthscales, select_gp_points
from molvae.bo.trust_region import trust_region_box


def contribution_center(x: torch.Tensor, y: torch.Tensor, ref_point: Sequence[float]) -> int:
    """Index of the row of ``y: n x M`` on the Pareto front with the largest exclusive
    hypervolume contribution above ``ref_point`` (ties: the first)."""
    yn = y.numpy()
    front = [int(i) for i in torch.nonzero(torch.as_tensor(pareto_mask(yn))).flatten()]
    total = hypervolume(yn[front], ref_point)
    gains = [total - hypervolume(yn[[j for j in front if j != i]], ref_point) for i in front]
    return front[max(range(len(front)), key=lambda k: (gains[k], -k))]


def _constraint(i: int, samples: torch.Tensor) -> torch.Tensor:
    return samples[..., i]  # output i of the model list: infeasible where positive


def propose_batch_mo(
    cfg: BOConfig, x: torch.Tensor, y: torch.Tensor, bounds: torch.Tensor, q: int, seed: int,
    ref_point: Sequence[float], tr_length: float | None = None, n_spare: int = 0,
    spare_rounds: int = 1, feasible: torch.Tensor | None = None,
    slack: torch.Tensor | None = None, x_pending: torch.Tensor | None = None,
) -> Proposal:  # fmt: skip
    """``q`` latent points from observations ``x: n x d``, ``y: n x M`` (all maximized; see
    the module); spares for re-drawing are Sobol points in boxes growing from the region."""
    x, y, bounds = x.double(), y.double(), bounds.double()
    span = bounds[1] - bounds[0]
    prop = Proposal(z=torch.empty(0, bounds.shape[-1], dtype=torch.float64), source="bo")
    ok = y if feasible is None else y[feasible]
    anchor_rows = x if feasible is None else x[feasible]
    center = anchor_rows[contribution_center(anchor_rows, ok, ref_point)] if len(ok) else None

    def boxes(ls: torch.Tensor | None = None) -> list[torch.Tensor]:
        growth = [4.0**r for r in range(max(spare_rounds, 1))]
        if tr_length is None or center is None:
            return [bounds.clone() for _ in growth]
        unit = ((center - bounds[0]) / span).clamp(0, 1)
        return [bounds[0] + trust_region_box(unit, tr_length * g, ls) * span for g in growth]

    def fallback(reason: str) -> Proposal:
        region = boxes()
        prop.z, prop.source, prop.fallback = sobol_in_box(region[0], q, seed), "random", reason
        prop.spare = _sobol_spares(region, n_spare, seed)
        return prop

    if len(y) == 0 or center is None:
        return fallback("no feasible scored point to fit the GPs on")
    t0 = time.perf_counter()
    rank = y.sum(-1) if feasible is None else torch.where(feasible, y.sum(-1), y.sum(-1).min() - 1)
    idx = select_gp_points(x, rank, cfg.max_gp_points, center, seed)
    models, failed = _fit_objectives(x[idx], y[idx], bounds, seed, cfg, prop)
    if failed:
        return fallback(failed)
    used = idx[: prop.gp_points]
    feas = None if feasible is None else feasible[used]
    con, _ = feasibility_gps(x[used], y[used, 0], feas, bounds, seed, cfg, prop.notes,
                             None if slack is None else slack[used])  # fmt: skip
    prop.constraint_gps, prop.fit_s = len(con), time.perf_counter() - t0
    region = boxes(lengthscales(models[0]))
    t0 = time.perf_counter()
    try:
        z = _optimize(models, con, x[used], ref_point, region[0], q, cfg, seed, x_pending)
    except ACQ_ERRORS as err:
        prop.acq_s = time.perf_counter() - t0
        return fallback(f"acquisition failed: {type(err).__name__}: {err}"[:300])
    prop.acq_s = time.perf_counter() - t0
    prop.z = z.detach().reshape(q, -1).double()
    prop.spare = _sobol_spares(region, n_spare, seed)
    prop.fallback = "; ".join(prop.notes)[:500] if prop.notes else None
    return prop


def _optimize(
    models: list, con: list, x_base: torch.Tensor, ref_point: Sequence[float],
    box: torch.Tensor, q: int, cfg: BOConfig, seed: int, x_pending: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    """qLogNEHVI on the objective GPs ``models``, constrained by the GPs ``con``, optimized
    in ``box`` one point at a time (``q x d``)."""
    m, kw = len(models), {}
    if con:
        kw = {"objective": IdentityMCMultiOutputObjective(outcomes=list(range(m))),
              "constraints": [partial(_constraint, m + i) for i in range(len(con))]}  # fmt: skip
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        acq = qLogNoisyExpectedHypervolumeImprovement(
            ModelListGP(*models, *con), ref_point=list(ref_point), X_baseline=x_base,
            sampler=SobolQMCNormalSampler(torch.Size([cfg.mc_samples]), seed=seed),
            prune_baseline=True, X_pending=x_pending, **kw,
            alpha=get_default_partitioning_alpha(len(ref_point)),
        )  # fmt: skip
        # one point at a time, each conditioned on those before it: a joint q of 20 held
        # 9.5 GB and ran for minutes
        z, _ = optimize_acqf(acq, bounds=box, q=q, num_restarts=cfg.num_restarts,
                             raw_samples=cfg.raw_samples, sequential=True,
                             options={"batch_limit": 2, "maxiter": cfg.acq_maxiter,
                                      "seed": seed})  # fmt: skip
    if not torch.isfinite(z).all():
        raise NanError("acquisition returned non-finite candidates")
    return z


def _fit_objectives(
    x: torch.Tensor, y: torch.Tensor, bounds: torch.Tensor, seed: int, cfg: BOConfig,
    prop: Proposal,
) -> tuple[list, str | None]:  # fmt: skip
    """One latent GP per objective (``y: n x M``), and why a fit failed (None when none did);
    the GP points and notes go to ``prop``."""
    models = []
    for j in range(y.shape[1]):
        model, prop.gp_points, notes = fit_gp(x, y[:, j], bounds, seed, cfg.fit_maxiter)
        prop.notes += notes
        if model is None:
            return models, f"GP fit failed for objective {j}: " + (notes[-1] if notes else "?")
        models.append(model)
    return models, None


def _sobol_spares(boxes: list[torch.Tensor], n: int, seed: int) -> torch.Tensor | None:
    if not n:
        return None
    return torch.cat([sobol_in_box(b, n, seed + 1 + r) for r, b in enumerate(boxes)])
