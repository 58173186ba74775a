"""Several objectives, fingerprint surrogate: one Tanimoto GP per objective, candidates from Graph
GA and the VAE around the Pareto set, the batch chosen by qLogNEHVI.

Each objective gets its own exact GP on Morgan fingerprints (`molvae.bo.fingerprint`), together a
BoTorch ``ModelListGP``. Candidates come as for one objective (`molvae.bo.candidates`), with the
inner GA climbing an augmented Chebyshev scalarization of the GPs' upper confidence bounds whose
weights are drawn afresh each iteration (ParEGO, Knowles 2006), so successive iterations push on
different parts of the front. The batch is then chosen among the (screened) candidates by
qLogNEHVI (Daulton et al. 2021; Ament et al. 2023), greedily in at most ``NEHVI_ROUNDS`` rounds,
each round conditioned on the molecules chosen before it and on those whose oracle calls are
still running (``X_pending``). A numerical failure of the acquisition falls
back to the best candidates by the iteration's scalarization of the GPs' upper confidence
bounds, and their ``source`` says so.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement

# past 4 objectives an approximate box decomposition, as BoTorch advises
from botorch.acquisition.multi_objective.utils import get_default_partitioning_alpha
from botorch.models import ModelListGP, SingleTaskGP
from botorch.sampling import SobolQMCNormalSampler

from molvae.bo.accounting import SCORED
from molvae.bo.candidates import MoleculeProposal, size_limit
from molvae.bo.config import BOConfig, CanonicalFn, DecodeFn, EncodeFn, SlackFn
from molvae.bo.feasibility import feasible_first, hidden_infeasible
from molvae.bo.fingerprint import (
    fingerprints,
    fit_fingerprint_gp,
    gram_eigen,
    on_indices,
    tanimoto_gram,
)
from molvae.bo.generators import ga_candidates, vae_candidates
from molvae.bo.pareto import objective_matrix, pareto_mask
from molvae.bo.surrogate import GP_ERRORS

logger = logging.getLogger(__name__)

CHEBYSHEV_RHO = 0.05  # the augmented Chebyshev scalarization's linear term (ParEGO's value)
# qLogNEHVI chooses among this many candidates per molecule of the batch (at least SCREEN_MIN),
# screened by `_screen`: choosing 25 among 100 takes 4 s on one EPYC core (on the Gram matrix),
# among all 1,294 candidates it took 197 s (on fingerprints, before the Gram matrix).
SCREEN_PER_PICK, SCREEN_MIN = 4, 200
NEHVI_ROUNDS = 10  # a batch is chosen in at most this many rounds of qLogNEHVI


def scored_vectors(
    history: pd.DataFrame, slack_fn: SlackFn | None = None
) -> tuple[list[str], np.ndarray]:
    """Canonical SMILES and objective vectors (``n x M``) of the molecules the objectives
    scored (ok or infeasible), first row of each; a molecule that missed an expensive
    constraint scores, in every objective, as the worst molecule seen."""
    if history.empty:
        return [], np.zeros((0, 1))
    y = objective_matrix(history)
    keep = history["status"].isin(SCORED).to_numpy() & np.isfinite(y).all(axis=1)
    keep &= (history["canonical"] != "").to_numpy() & ~history["canonical"].duplicated().to_numpy()
    cans, y = history.loc[keep, "canonical"].astype(str).tolist(), y[keep]
    hidden = hidden_infeasible(history, slack_fn)
    if hidden and len(y):
        worst = y.min(axis=0)
        y = np.where(np.array([c in hidden for c in cans])[:, None], worst, y)
    return cans, y


class Scalarization:
    """Augmented Chebyshev scalarization of objective vectors normalized to the observed
    ranges, with weights drawn from a flat Dirichlet by ``seed``."""

    def __init__(self, y: np.ndarray, seed: int):
        self.lo, span = y.min(axis=0), np.ptp(y, axis=0)
        self.span = np.where(span > 0, span, 1.0)
        self.w = np.random.default_rng(seed).dirichlet(np.ones(y.shape[1]))

    def __call__(self, y: np.ndarray) -> np.ndarray:
        u = self.w * (np.asarray(y, dtype=float) - self.lo) / self.span
        return u.min(axis=-1) + CHEBYSHEV_RHO * u.sum(axis=-1)


def _ucb_fitness(model: ModelListGP, scal: Scalarization, beta: float = 1.0):
    def fitness(smiles: list[str]) -> list[float]:
        with torch.no_grad():
            post = model.posterior(fingerprints(smiles))
            ucb = post.mean + beta * post.variance.clamp_min(0).sqrt()
        return scal(ucb.numpy()).tolist()

    return fitness


def _screen(model: ModelListGP, x: torch.Tensor, scal: Scalarization, n: int) -> list[int]:
    """The ``n`` candidates qLogNEHVI chooses among (it costs milliseconds a candidate and
    pick): whole layers of the non-dominated sorting of the candidates' upper confidence
    bounds, the last layer cut by the scalarization. A candidate whose bounds many others
    dominate in every objective would add little hypervolume."""
    if len(x) <= n:
        return list(range(len(x)))
    with torch.no_grad():
        post = model.posterior(x)
        ucb = (post.mean + post.variance.clamp_min(0).sqrt()).numpy()
    left, out = np.arange(len(x)), []
    while len(out) < n:
        layer = left[pareto_mask(ucb[left])]
        layer = layer[np.argsort(-scal(ucb[layer]), kind="stable")]
        out += [int(i) for i in layer[: n - len(out)]]
        left = np.setdiff1d(left, layer)
    return out


def _fit_points(cans: list[str], y: np.ndarray, max_points: int, rng: random.Random) -> list[int]:
    """Indices the GPs are fitted on: all, or past ``max_points`` the Pareto set and a random
    sample of the rest (an exact GP costs O(n^3))."""
    if len(cans) <= max_points:
        return list(range(len(cans)))
    front = [int(i) for i in np.flatnonzero(pareto_mask(y))][: max_points // 2]
    rest = [i for i in range(len(cans)) if i not in set(front)]
    return front + sorted(rng.sample(rest, max_points - len(front)))


def _nehvi_select(
    gps: list[SingleTaskGP], y_fit: np.ndarray, x_fit: torch.Tensor, x_cand: torch.Tensor,
    q: int, ref_point: Sequence[float], cfg: BOConfig, seed: int,
    x_pending: torch.Tensor | None,
) -> list[int]:  # fmt: skip
    """Indices of ``q`` candidates (rows of ``x_cand``) chosen by qLogNEHVI in rounds, on twins
    of ``gps`` over row numbers of one Gram matrix (`molvae.bo.fingerprint.on_indices`)."""
    n, m = len(x_fit), len(x_cand)
    parts = [x_fit, x_cand] + ([x_pending] if x_pending is not None else [])
    gram = tanimoto_gram(torch.cat(parts))
    rows = torch.arange(len(gram), dtype=torch.float64).reshape(-1, 1)
    model = ModelListGP(*[on_indices(gp, gram, rows[:n, 0], torch.as_tensor(y_fit[:, j]))
                          for j, gp in enumerate(gps)])  # fmt: skip
    sampler = SobolQMCNormalSampler(torch.Size([cfg.mc_samples]), seed=seed)
    pend = None if x_pending is None else rows[n + m :]
    chosen: list[int] = []
    with warnings.catch_warnings(), torch.random.fork_rng(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        acq = qLogNoisyExpectedHypervolumeImprovement(
            model, ref_point=list(ref_point), X_baseline=rows[:n], sampler=sampler,
            prune_baseline=True, X_pending=pend,
            alpha=get_default_partitioning_alpha(len(ref_point)),
        )  # fmt: skip
        # greedy in rounds: each round takes the candidates of highest qLogNEHVI given those
        # chosen so far (as pending points); one molecule a round cost 319 s for a batch of 50
        for size in np.diff(np.linspace(0, q, min(q, NEHVI_ROUNDS) + 1).round().astype(int)):
            if chosen:
                taken = rows[n + torch.tensor(chosen)]
                acq.set_X_pending(taken if pend is None else torch.cat([pend, taken]))
            left = [i for i in range(m) if i not in set(chosen)]
            x = rows[n + torch.tensor(left)].unsqueeze(1)
            vals = torch.cat([acq(x[s : s + 256]) for s in range(0, len(x), 256)])
            chosen += [left[int(i)] for i in torch.argsort(vals, descending=True)[:size]]
    return chosen


def _choose(
    gps: list[SingleTaskGP], y_fit: np.ndarray, x_fit: torch.Tensor, pool: list[str], q: int,
    ref_point: Sequence[float], cfg: BOConfig, seed: int, pending: Sequence[str],
    scal: Scalarization,
) -> tuple[list[str], list[int], str]:  # fmt: skip
    """The screened candidates, the indices of the ``q`` chosen among them, and how they were
    chosen ("nehvi", or "ucb-chebyshev" when qLogNEHVI failed)."""
    model = ModelListGP(*gps)
    x_cand = fingerprints(pool)
    keep = _screen(model, x_cand, scal, max(SCREEN_PER_PICK * q, SCREEN_MIN))
    pool, x_cand = [pool[i] for i in keep], x_cand[keep]
    x_pend = fingerprints(list(pending)) if pending else None
    q = min(q, len(pool))
    try:
        return pool, _nehvi_select(gps, y_fit, x_fit, x_cand, q, ref_point, cfg, seed,
                                   x_pend), "nehvi"  # fmt: skip
    except (*GP_ERRORS, RuntimeError) as err:
        logger.warning("qLogNEHVI failed (%s); choosing by the scalarized UCB", err)
        ucb = np.asarray(_ucb_fitness(model, scal)(pool))
        return pool, [int(i) for i in np.argsort(-ucb, kind="stable")[:q]], "ucb-chebyshev"


def propose_pareto_molecules(
    history: pd.DataFrame,
    q: int,
    seed: int,
    cfg: BOConfig,
    ref_point: Sequence[float],
    canonical_fn: CanonicalFn,
    decode_fn: DecodeFn | None = None,
    encode_fn: EncodeFn | None = None,
    slack_fn: SlackFn | None = None,
    pending: Sequence[str] = (),
) -> MoleculeProposal | None:
    """``q`` new molecules for a multi-objective campaign (see the module), or None when nothing
    is scored yet or no candidate is new. ``pending``: molecules whose oracle calls are
    running, never proposed again and integrated over by the acquisition."""
    cans, y = scored_vectors(history, slack_fn)
    if not cans:
        return None
    rng = random.Random(seed)
    idx = _fit_points(cans, y, cfg.fp_max_points, rng)
    x_fit = fingerprints([cans[i] for i in idx])
    t0 = time.perf_counter()
    try:  # one eigendecomposition serves every objective's GP (the same molecules)
        eigen = gram_eigen(x_fit)
    except GP_ERRORS:  # each fit tries again and keeps its initial hyperparameters
        eigen = None
    gps = [fit_fingerprint_gp(x_fit, torch.as_tensor(y[idx, j]), cfg.fit_maxiter, eigen)
           for j in range(y.shape[1])]  # fmt: skip
    model = ModelListGP(*gps)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scal = Scalarization(y, seed)
    known = {c for c in history["canonical"] if c} | set(pending)
    population = [(float(v), c) for v, c in zip(scal(y), cans, strict=True)]
    # the Pareto set always parents; the scalarization ranks the rest
    front = {cans[i] for i in np.flatnonzero(pareto_mask(y))}
    population = [(v + (1.0 if c in front else 0.0), c) for v, c in population]
    limit = size_limit(history, cfg)
    ga = ga_candidates(None, population, known, cfg, rng, canonical_fn, q, limit,
                       fitness=_ucb_fitness(model, scal))  # fmt: skip
    cands: dict[str, str] = dict.fromkeys(ga, "ga")
    latents = None if encode_fn is None else (lambda s: encode_fn(s).detach().double())
    for can in vae_candidates(population, known, cfg, seed, canonical_fn, decode_fn, latents,
                              limit):  # fmt: skip
        cands.setdefault(can, "vae")
    pool = feasible_first(list(cands), slack_fn)
    if not pool:
        return None
    n_candidates = len(pool)
    pool, pick, source = _choose(gps, y[idx], x_fit, pool, q, ref_point, cfg, seed, pending, scal)
    return MoleculeProposal(
        smiles=[pool[i] for i in pick], sources=[f"fp-{source}/{cands[pool[i]]}" for i in pick],
        n_candidates=n_candidates, gp_points=len(idx), fit_s=fit_s,
        acq_s=time.perf_counter() - t0,
    )  # fmt: skip
