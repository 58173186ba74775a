"""Proposing a batch: optimize the acquisition on the fitted GP, inside the trust region.

With constraints (some scored molecules ``infeasible``) constraint GPs model feasibility, each
below 0 where molecules satisfy it: one GP per constraint on its signed slack (``mw - 350`` for
``mw<=350``; ``constraint_model="slack"``, SCBO's model) or one GP of +0.5 infeasible / -0.5
feasible (``"binary"``, or when the campaign has no slacks). The acquisition weighs the
objective by them: qLogEI with BoTorch's outcome constraints over the best *feasible* score
(constrained EI, Gardner et al. 2014), qUCB through ``ConstrainedMCObjective``, Thompson
sampling through ``ConstrainedMaxPosteriorSampling`` (SCBO, Eriksson & Poloczek 2021). The
objective GP sees every scored molecule at its true score: the objective is defined for
infeasible molecules too, only their reporting is not.

A numerical GP or acquisition failure (``ACQ_ERRORS``) falls back to scrambled Sobol points in the
same box, so a campaign always gets a batch; the fallback is logged and recorded in the
``Proposal``. Any other error is a bug and propagates.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import partial

import torch
from botorch.acquisition import qLogExpectedImprovement, qUpperConfidenceBound
from botorch.acquisition.objective import ConstrainedMCObjective, GenericMCObjective
from botorch.acquisition.utils import get_infeasible_cost
from botorch.exceptions.errors import OptimizationGradientError
from botorch.generation import MaxPosteriorSampling
from botorch.generation.sampling import ConstrainedMaxPosteriorSampling
from botorch.models import ModelListGP, SingleTaskGP
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from linear_operator.utils.errors import NanError
from torch.quasirandom import SobolEngine

from molvae.bo.config import BOConfig
from molvae.bo.surrogate import GP_ERRORS, believe_pending, fit_gp, lengthscales, select_gp_points
from molvae.bo.trust_region import trust_region_box

logger = logging.getLogger(__name__)

# What optimizing the acquisition may fail with and still fall back: the GP's numerical errors
# (its posterior is factorized here too) plus BoTorch's NaN gradient of the acquisition, which it
# raises as a RuntimeError subclass ("this often indicates numerical issues").
ACQ_ERRORS = (*GP_ERRORS, OptimizationGradientError)
# Spare candidates for re-drawing come in rounds, each from a box this many times the side of the
# one before, starting at the trust region: a region too small to decode to anything new still
# fills its batch, from around it.
SPARE_GROWTH = 4.0


@dataclass
class Proposal:
    """A proposed batch ``z`` (``q x d``, float64) and how it was made."""

    z: torch.Tensor
    source: str  # "bo" or "random" (GP fallback / random search)
    spare: torch.Tensor | None = None  # ranked spare candidates for re-drawing duplicates
    fallback: str | None = None
    gp_points: int = 0
    constraint_gps: int = 0  # GPs modelling the constraints (0: every point so far feasible)
    fit_s: float = 0.0
    acq_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def sobol_in_box(box: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n x d`` scrambled Sobol points in ``box: 2 x d`` (float64)."""
    u = SobolEngine(box.shape[-1], scramble=True, seed=seed).draw(n, dtype=torch.float64)
    return box[0] + u * (box[1] - box[0])


def _acq_candidates(
    model: SingleTaskGP,
    best_f: torch.Tensor,
    box: torch.Tensor,
    q: int,
    cfg: BOConfig,
    seed: int,
    feasibility: list[SingleTaskGP] | None = None,
    x_pending: torch.Tensor | None = None,
) -> torch.Tensor:
    """Optimize the configured acquisition over ``box`` (raw latent coordinates), seeded;
    weighted by ``feasibility`` (GPs below 0 where molecules satisfy the constraints);
    ``x_pending``: points whose oracle calls are running (BoTorch's ``X_pending``)."""
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        z = _optimize_acq(model, best_f, box, q, cfg, seed, feasibility, x_pending)
    if not torch.isfinite(z).all():
        raise NanError("acquisition returned non-finite candidates")
    return z


def _first(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    return samples[..., 0]


def _output(i: int, samples: torch.Tensor) -> torch.Tensor:
    return samples[..., i]  # output i of the model list: infeasible where positive


def _optimize_acq(
    model: SingleTaskGP,
    best_f: torch.Tensor,
    box: torch.Tensor,
    q: int,
    cfg: BOConfig,
    seed: int,
    feasibility: list[SingleTaskGP] | None,
    x_pending: torch.Tensor | None = None,
) -> torch.Tensor:
    if cfg.acquisition == "ts":  # pending points: the caller made the model believe them
        cand = sobol_in_box(box, max(cfg.ts_candidates, q), seed)
        with torch.no_grad():
            if feasibility:
                cons = feasibility[0] if len(feasibility) == 1 else ModelListGP(*feasibility)
                ts = ConstrainedMaxPosteriorSampling(model, cons, replacement=False)
                return ts(cand, num_samples=q)
            return MaxPosteriorSampling(model, replacement=False)(cand, num_samples=q)
    sampler = SobolQMCNormalSampler(torch.Size([cfg.mc_samples]), seed=seed)
    acq_model, kw = model, {}
    pending = {"X_pending": x_pending} if x_pending is not None and len(x_pending) else {}
    if feasibility:
        acq_model = ModelListGP(model, *feasibility)
        outputs = [partial(_output, i) for i in range(1, len(feasibility) + 1)]
        if cfg.acquisition == "qlogei":
            kw = {"objective": GenericMCObjective(_first), "constraints": outputs}
        else:  # an infeasible sample scores below anything the objective GP finds plausible
            x_train = model.input_transform.untransform(model.train_inputs[0])  # stored scaled
            cost = float(get_infeasible_cost(x_train, model).max())
            kw = {"objective": ConstrainedMCObjective(_first, outputs, cost)}
    if cfg.acquisition == "qlogei":
        acq = qLogExpectedImprovement(acq_model, best_f=best_f, sampler=sampler, **kw,
                                      **pending)  # fmt: skip
    else:
        acq = qUpperConfidenceBound(acq_model, beta=cfg.beta, sampler=sampler, **kw, **pending)
    cand, _ = optimize_acqf(
        acq,
        bounds=box,
        q=q,
        num_restarts=cfg.num_restarts,
        raw_samples=cfg.raw_samples,
        options={"batch_limit": 2, "maxiter": cfg.acq_maxiter, "seed": seed},
    )
    return cand.detach()


def _finite(slack: torch.Tensor) -> torch.Tensor:
    """``slack`` with each column's NaN / inf (a property that could not be computed: missed)
    set past its largest finite value, so a GP can be fitted to it."""
    out = slack.clone()
    for col in out.T:  # views: writes go to ``out``
        ok = torch.isfinite(col)
        top = float(col[ok].max().clamp(min=0.0)) if ok.any() else 0.0
        col[~ok] = 2.0 * top + 1.0
    return out


def feasibility_gps(
    x: torch.Tensor, y: torch.Tensor, feasible: torch.Tensor | None, bounds: torch.Tensor,
    seed: int, cfg: BOConfig, notes: list[str], slack: torch.Tensor | None = None,
) -> tuple[list[SingleTaskGP], torch.Tensor]:  # fmt: skip
    """The constraint GPs at ``x`` (each below 0 where molecules satisfy its constraint) and
    the score EI improves on: the best feasible one (with nothing feasible yet the lowest: any
    feasible point improves). With ``slack`` (``n x m``), one GP per constraint some point
    missed, on its signed slack (SCBO); else (or when no slack is positive) one GP of +0.5
    (infeasible) / -0.5 (feasible). [] when every point is feasible (no constraint, or none
    missed yet); a failed fit is noted and left out (with none left, the objective proposes)."""
    if feasible is None or bool(feasible.all()):
        return [], y.max()
    targets = [0.5 - feasible.to(torch.float64)]
    if slack is not None and cfg.constraint_model == "slack":
        s = _finite(slack.to(torch.float64))
        targets = [s[:, j] for j in range(s.shape[1]) if bool((s[:, j] > 0).any())] or targets
    models = []
    for target in targets:
        model, _, failed = fit_gp(x, target, bounds, seed, cfg.fit_maxiter)
        notes += [f"feasibility {m}" for m in failed]
        models += [model] if model is not None else []
    return models, y[feasible].max() if feasible.any() else y.min()


def _spares(
    model: SingleTaskGP | None, boxes: list[torch.Tensor], n: int, n_cand: int, seed: int
) -> torch.Tensor | None:
    """``n`` spare candidates per box (raw coordinates), box after box: Thompson samples among
    ``n_cand`` Sobol points, or ``n`` Sobol points without a GP. None when ``n`` is 0."""
    if not n:
        return None
    out = []
    for r, box in enumerate(boxes):
        cand = sobol_in_box(box, max(n_cand, 2 * n) if model else n, seed + 1 + r)
        if model is None:
            out.append(cand)
            continue
        with torch.no_grad(), torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed + 1 + r)
            out.append(MaxPosteriorSampling(model, replacement=False)(cand, num_samples=n))
    return torch.cat(out).detach().reshape(len(boxes) * n, -1).to(torch.float64)


def _fallback(
    prop: Proposal, reason: str, boxes: list[torch.Tensor], q: int, n_spare: int, seed: int
) -> Proposal:
    """Sobol points in ``boxes[0]`` (raw coordinates), spares in each box, instead of the GP's."""
    logger.warning("iteration falls back to random proposals: %s", reason)
    prop.z, prop.source, prop.fallback = sobol_in_box(boxes[0], q, seed), "random", reason
    prop.spare = _spares(None, boxes, n_spare, 0, seed)
    return prop


def _with_pending(
    model: SingleTaskGP, cfg: BOConfig, x_pending: torch.Tensor | None
) -> tuple[SingleTaskGP, torch.Tensor | None]:
    """The model and the ``X_pending`` the acquisition integrates over; Thompson sampling takes
    no ``X_pending``, so there the GP believes its own mean at the pending points instead."""
    if x_pending is None or not len(x_pending):
        return model, None
    xp = x_pending.to(torch.float64)
    return (believe_pending(model, xp), None) if cfg.acquisition == "ts" else (model, xp)


def propose_batch(
    cfg: BOConfig, x: torch.Tensor, y: torch.Tensor, bounds: torch.Tensor, q: int, seed: int,
    tr_length: float | None = None, center: torch.Tensor | None = None, n_spare: int = 0,
    spare_rounds: int = 1, feasible: torch.Tensor | None = None,
    slack: torch.Tensor | None = None, x_pending: torch.Tensor | None = None,
) -> Proposal:  # fmt: skip
    """``q`` latent points (and spares) from observations ``x: n x d``, ``y: n`` (``feasible``:
    ``n`` bool, False where a molecule missed a constraint; None = all feasible; ``slack``:
    ``n x m`` signed constraint slacks, > 0 where one is missed, for ``"slack"`` GPs).

    Fits the GP on at most ``cfg.max_gp_points`` points and optimizes the acquisition within
    ``bounds``, inside the trust region around ``center`` (raw ``d``; default the incumbent)
    when ``tr_length`` is given; the incumbent and the "best" third of the GP's points are the
    best feasible ones, and constraint GPs weigh the acquisition. Spares, for re-drawing,
    are ``n_spare`` Thompson samples per round in boxes ``SPARE_GROWTH`` times larger each
    round (the region's own first). ``x_pending``: ``p x d`` points still being scored
    (`_with_pending`). A numerical failure falls back to Sobol points; others propagate.
    """
    x, y, bounds = x.to(torch.float64), y.to(torch.float64), bounds.to(torch.float64)
    span = bounds[1] - bounds[0]
    rank = y if feasible is None else torch.where(feasible, y, y.min() - 1.0)  # feasible first
    anchor = x[torch.argmax(rank)] if center is None and len(y) else center
    unit_center = None if anchor is None else ((anchor.double() - bounds[0]) / span).clamp(0, 1)

    def boxes(ls: torch.Tensor | None = None) -> list[torch.Tensor]:  # raw coordinates
        growth = [SPARE_GROWTH**r for r in range(max(spare_rounds, 1))]
        if tr_length is None or unit_center is None:
            return [bounds.clone() for _ in growth]
        return [bounds[0] + trust_region_box(unit_center, tr_length * g, ls) * span for g in growth]

    prop = Proposal(z=torch.empty(0, bounds.shape[-1], dtype=torch.float64), source="bo")
    if len(y) == 0:
        return _fallback(prop, "no scored points to fit a GP on", boxes(), q, n_spare, seed)
    t0 = time.perf_counter()
    idx = select_gp_points(x, rank, cfg.max_gp_points, anchor.double(), seed)
    model, prop.gp_points, prop.notes = fit_gp(x[idx], y[idx], bounds, seed, cfg.fit_maxiter)
    if model is None:
        reason = "GP fit failed: " + (prop.notes[-1] if prop.notes else "?")
        return _fallback(prop, reason, boxes(), q, n_spare, seed)
    used = idx[: prop.gp_points]
    feas = None if feasible is None else feasible[used]
    con, best_f = feasibility_gps(x[used], y[used], feas, bounds, seed, cfg, prop.notes,
                                   None if slack is None else slack[used])  # fmt: skip
    prop.constraint_gps = len(con)
    prop.fit_s = time.perf_counter() - t0
    region = boxes(lengthscales(model))
    t0 = time.perf_counter()
    try:  # the spares too: Thompson sampling factorizes the GP posterior over 2,000 points
        model, xp = _with_pending(model, cfg, x_pending)
        z = _acq_candidates(model, best_f, region[0], q, cfg, seed, con, xp)
        prop.spare = _spares(model, region, n_spare, cfg.ts_candidates, seed)
    except ACQ_ERRORS as err:
        prop.acq_s = time.perf_counter() - t0
        msg = f"acquisition failed: {type(err).__name__}: {err}"[:300]
        prop.notes.append(msg)
        return _fallback(prop, msg, boxes(), q, n_spare, seed)
    prop.acq_s = time.perf_counter() - t0
    prop.z = z.reshape(q, -1).to(torch.float64)
    prop.fallback = "; ".join(prop.notes)[:500] if prop.notes else None
    return prop
