"""Molecule proposals ranked by the fingerprint GP: candidates from Graph GA's operators evolved
on the GP's upper confidence bound and from the VAE's latent neighbourhoods of the best
molecules, then a batch chosen by Thompson sampling.

The candidates cost no oracle call: only the ``q`` molecules chosen are scored. Graph GA's
crossover and mutation (Jensen 2019, through ``mol_ga``, Tripp & Hernández-Lobato 2023) make
chemically local moves; the decoder's neighbourhoods add molecules no graph edit reaches. The
inner GA climbs the GP's UCB for ``ga_generations`` generations (PMO's GP BO uses a GA as its
acquisition optimizer the same way), so the candidate set concentrates where the GP expects
improvement before Thompson sampling picks the batch.

When the objective is an expensive part plus a part computed exactly (``known_fn``, e.g.
DOCKSTRING's F2: a Vina score plus 10 (1 - QED)), the GP models the expensive part only and the
exact part is added to every UCB and Thompson sample (composite BO, Astudillo & Frazier 2019):
measured on 797 F2 dockings, the GP's held-out rank correlation with the score rose from 0.86 to
0.96 (docs/benchmarks/dockstring.md).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from mol_ga.graph_ga.gen_candidates import mutate, reproduce
from mol_ga.sample_population import uniform_quantile_sampling
from rdkit import Chem

from molvae.bo.candidate_reuse import CandidateReuse
from molvae.bo.config import BOConfig, CanonicalFn, DecodeFn, EncodeFn, KnownFn, SlackFn
from molvae.bo.feasibility import feasible_first, hidden_infeasible
from molvae.bo.fingerprint import fingerprints, fit_fingerprint_gp, thompson_select
from molvae.bo.observations import scored_molecules
from molvae.bo.surrogate import believe_pending
from molvae.chem.molecules import silence_rdkit

INNER_POPULATION = 120  # Graph GA's population size in PMO
# Room to grow past the starting molecules, not a drug-likeness rule: the bundled data's largest
# molecule has 26 heavy atoms, 1.5 x allows 39; at 1.1 x (29) the limit sat below targets such
# as osimertinib's 37 heavy atoms (docs/benchmarks/pmo.md).
SIZE_FACTOR = 1.5


@dataclass
class MoleculeProposal:
    """A batch of molecules to score: canonical SMILES, where each came from, and timings."""

    smiles: list[str]
    sources: list[str]
    n_candidates: int
    gp_points: int
    fit_s: float
    acq_s: float
    known_part: bool = False  # the GP modelled the objective's unknown part only


def heavy_atoms(smiles: str) -> int | None:
    """Heavy atoms of a molecule, None when RDKit cannot parse it."""
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else mol.GetNumHeavyAtoms()


def size_limit(history: pd.DataFrame, cfg: BOConfig) -> int | None:
    """The most heavy atoms a candidate may have: ``cfg.max_heavy_atoms`` when set (0: no
    limit), else ``SIZE_FACTOR`` times the largest molecule the campaign started from (its
    iteration-0 rows: the pool or the caller's data), so it follows the user's chemistry and a
    resumed campaign computes the same limit."""
    if cfg.max_heavy_atoms is not None:
        return cfg.max_heavy_atoms or None
    start = history.loc[history["iteration"] == 0, "canonical"] if not history.empty else []
    sizes = [n for n in map(heavy_atoms, {c for c in start if c}) if n is not None]
    return math.ceil(SIZE_FACTOR * max(sizes)) if sizes else None


def _small(smiles: list[str], limit: int | None) -> list[str]:
    if limit is None:
        return smiles
    return [s for s in smiles if (heavy_atoms(s) or 0) <= limit]


def _offspring(parents: list[str], n: int, rng: random.Random) -> set[str]:
    """``mol_ga``'s blend of Graph GA moves (its ``graph_ga_blended_generation``: a tenth of
    the parents mutated, the rest crossed with a shuffled partner, 1% of those mutated too),
    one operator call at a time: RDKit raises on a few odd molecules (e.g. a Kekulize of a
    parent it cannot parse), and one such molecule must not cost the whole generation."""
    mutants: list[str] = []
    crossers: list[str] = []
    for s in parents:
        (mutants if rng.random() < _MUTATE_FRACTION else crossers).append(s)
    mutants = mutants[: int(n * _MUTATE_FRACTION) + 1]
    partners = list(crossers)
    rng.shuffle(partners)
    moves = [(mutate, (s, rng)) for s in mutants]
    moves += [(reproduce, (a, b, 1e-2, rng))
              for a, b in zip(crossers[: n - len(moves)], partners, strict=False)]  # fmt: skip
    out: set[str] = set()
    for fn, args in moves:
        try:
            child = fn(*args)
        except Exception:  # RDKit's Boost errors share no narrower base class
            continue
        if child:
            out.add(child)
    return out


_MUTATE_FRACTION = 0.1


def _ucb(
    model, smiles: list[str], beta: float, kind: str = "bits", known_fn: KnownFn | None = None
) -> list[float]:
    with torch.no_grad():
        post = model.posterior(fingerprints(smiles, kind=kind))
        mean = post.mean.squeeze(-1)
        std = post.variance.squeeze(-1).clamp_min(0).sqrt()
    ucb = mean + beta * std
    if known_fn is not None:  # a molecule whose exact part cannot be computed ranks last
        known = torch.as_tensor(np.asarray(known_fn(smiles), dtype=np.float64))
        ucb = torch.where(known.isfinite(), ucb + known, -math.inf)
    return ucb.tolist()


def ga_candidates(
    model,
    population: list[tuple[float, str]],
    known: set[str],
    cfg: BOConfig,
    rng: random.Random,
    canonical_fn: CanonicalFn,
    q: int,
    limit: int | None = None,
    fitness: Callable[[list[str]], list[float]] | None = None,
    known_fn: KnownFn | None = None,
) -> list[str]:
    """New molecules (canonical SMILES) from ``cfg.ga_generations`` generations of Graph GA
    climbing the GP's UCB (or ``fitness``, e.g. a scalarization of several GPs' UCBs),
    starting from the best scored ``population`` (score, canonical):
    ``cfg.ga_candidates`` children a generation, or 20 per molecule of a small batch ``q``
    (the operators cost milliseconds a child, and a few candidates per pick suffice); children
    with more than ``limit`` heavy atoms are dropped before they can parent. ``known_fn``: the
    objective's exact part, added to the UCB of a GP that models the rest."""
    n_children = min(cfg.ga_candidates, max(20 * q, 50))
    silence_rdkit()  # the operators try many bonds RDKit rejects, loudly
    inner = heapq.nlargest(INNER_POPULATION, population)
    found: dict[str, None] = {}
    for _ in range(cfg.ga_generations):
        parents = uniform_quantile_sampling(inner, 2 * n_children, rng)
        children = sorted(_offspring(parents, n_children, rng))
        # mol_ga writes RDKit's canonical SMILES; the campaign's canonical_fn decides identity
        cans = dict.fromkeys(c for c in map(canonical_fn, children) if c)
        new = _small([c for c in cans if c not in known and c not in found], limit)
        if not new:
            continue
        found.update(dict.fromkeys(new))
        score = fitness or partial(_ucb, model, beta=1.0, kind=cfg.fp_kind, known_fn=known_fn)
        # a child with no finite fitness (its known part fails) parents nothing
        ranked = [(v, c) for v, c in zip(score(new), new, strict=True) if math.isfinite(v)]
        inner = heapq.nlargest(INNER_POPULATION, inner + ranked)
    return list(found)


def latent_candidates(
    parents_z: torch.Tensor, cfg: BOConfig, decode_fn: DecodeFn, seed: int
) -> list[str]:
    """Greedy decodes of ``cfg.vae_neighbours`` perturbations of each parent latent
    (``parents_z: n x d``) at three scales: what the VAE proposes around the best molecules."""
    if cfg.vae_neighbours <= 0 or parents_z.shape[0] == 0:
        return []
    gen = torch.Generator().manual_seed(int(seed))
    n, d = parents_z.shape
    per_scale = max(cfg.vae_neighbours // len(_SCALES), 1)
    z = torch.cat([
        parents_z.repeat_interleave(per_scale, 0)
        + s * torch.randn(n * per_scale, d, generator=gen, dtype=parents_z.dtype)
        for s in _SCALES
    ])  # fmt: skip
    return [a[0] for a in decode_fn(z.to(torch.float32), 1, int(seed))]


# In units of the prior's standard deviation (about 1 in every dimension of the default
# model): 0.15 mostly decodes the parent again, 0.6 rarely does (measured on the default model).
_SCALES = (0.15, 0.3, 0.6)


def vae_candidates(
    population: list[tuple[float, str]], known: set[str], cfg: BOConfig, seed: int,
    canonical_fn: CanonicalFn, decode_fn: DecodeFn | None,
    latents: Callable[[list[str]], torch.Tensor] | None, limit: int | None,
) -> list[str]:  # fmt: skip
    """New molecules decoded around the best parents' latents (``cfg.vae_neighbours``)."""
    if decode_fn is None or latents is None or cfg.vae_neighbours <= 0:
        return []
    z = latents([s for _, s in heapq.nlargest(cfg.vae_parents, population)])
    raws = latent_candidates(z[torch.isfinite(z).all(-1)], cfg, decode_fn, seed)
    return [c for c in _small([c for c in map(canonical_fn, raws) if c], limit) if c not in known]


def gp_points(
    scored: Sequence[tuple[str, float]], max_points: int, rng: random.Random
) -> list[tuple[str, float]]:
    """What the fingerprint GP is fitted on: every scored molecule, or past ``max_points``
    (an exact GP costs O(n^3)) the best half of them and a random sample of the rest."""
    if len(scored) <= max_points:
        return list(scored)
    ranked = sorted(scored, key=lambda sv: -sv[1])
    best, rest = ranked[: max_points // 2], ranked[max_points // 2 :]
    return best + rng.sample(rest, max_points - len(best))


def propose_molecules(
    scored: Sequence[tuple[str, float]],
    known: set[str],
    q: int,
    seed: int,
    cfg: BOConfig,
    canonical_fn: CanonicalFn,
    decode_fn: DecodeFn | None = None,
    latents: Callable[[list[str]], torch.Tensor] | None = None,
    slack_fn: SlackFn | None = None,
    limit: int | None = None,
    pending: Sequence[str] = (),
    reuse: CandidateReuse | None = None,
    known_fn: KnownFn | None = None,
) -> MoleculeProposal:
    """Choose ``q`` new molecules given the scored ones ``(canonical, score)``.

    ``known``: canonical SMILES never to propose (everything recorded). ``pending``: molecules
    proposed whose oracle calls are still running (asynchronous BO): never proposed again, and
    the GP believes its own mean there (`molvae.bo.surrogate.believe_pending`), so Thompson
    sampling does not pile the next proposals onto their neighbourhood. ``latents`` maps the
    parents' SMILES to their latents (``n x d``, NaN rows where unknown) for the VAE's
    neighbourhoods; without it, or without ``decode_fn``, only Graph GA proposes. With the
    campaign's constraints (``slack_fn``, computed from the molecule, no oracle call) only
    candidates that satisfy them are chosen, or the least violating ones when none does.
    ``limit``: the most heavy atoms a candidate may have (`size_limit`). ``reuse``: keep the
    candidates for the next few proposals (asynchronous BO, `CandidateReuse`). ``known_fn``
    (used with ``cfg.known_part``): the objective's part computed exactly; the GP is fitted to
    the score minus it and it is added back to each candidate's UCB and Thompson samples.
    """
    rng = random.Random(seed)
    fp = partial(fingerprints, kind=cfg.fp_kind)
    fit_on = gp_points(scored, cfg.fp_max_points, rng)
    known_fn = known_fn if cfg.known_part else None
    if known_fn is not None:
        exact = np.asarray(known_fn([s for s, _ in fit_on]), dtype=np.float64)
        # a molecule whose exact part cannot be computed has no residual to learn from
        fit_on = [(s, v - k) for (s, v), k in zip(fit_on, exact, strict=True) if np.isfinite(k)]
    smiles = [s for s, _ in fit_on]
    y = torch.tensor([v for _, v in fit_on], dtype=torch.float64)
    t0 = time.perf_counter()
    model = fit_fingerprint_gp(fp(smiles), y, maxiter=cfg.fit_maxiter)
    if pending:
        known = known | set(pending)
        model = believe_pending(model, fp(list(pending)))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    population = [(float(v), s) for s, v in scored]
    best = max(v for _, v in scored)
    cands = reuse.take(known, q, best) if reuse is not None else None
    if cands is None:
        cands = dict.fromkeys(ga_candidates(model, population, known, cfg, rng, canonical_fn, q,
                                            limit, known_fn=known_fn), "ga")  # fmt: skip
        for can in vae_candidates(population, known, cfg, seed, canonical_fn, decode_fn,
                                   latents, limit):  # fmt: skip
            cands.setdefault(can, "vae")
        if reuse is not None:
            reuse.store(cands, best)
    pool = feasible_first(list(cands), slack_fn)
    offset = None
    if known_fn is not None and pool:
        exact = np.asarray(known_fn(pool), dtype=np.float64)
        pool = [c for c, k in zip(pool, exact, strict=True) if np.isfinite(k)]
        offset = torch.as_tensor(exact[np.isfinite(exact)])
    if not pool:
        return MoleculeProposal([], [], 0, len(smiles), fit_s, time.perf_counter() - t0,
                                known_fn is not None)  # fmt: skip
    pick = thompson_select(model, fp(pool), min(q, len(pool)), seed, offset=offset)
    return MoleculeProposal(
        smiles=[pool[i] for i in pick], sources=[f"fp-ts/{cands[pool[i]]}" for i in pick],
        n_candidates=len(pool), gp_points=len(smiles), fit_s=fit_s,
        acq_s=time.perf_counter() - t0, known_part=known_fn is not None,
    )  # fmt: skip


def propose_from_history(
    history: pd.DataFrame,
    q: int,
    seed: int,
    cfg: BOConfig,
    canonical_fn: CanonicalFn,
    decode_fn: DecodeFn | None,
    encode_fn: EncodeFn | None,
    slack_fn: SlackFn | None = None,
    pending: Sequence[str] = (),
    reuse: CandidateReuse | None = None,
    known_fn: KnownFn | None = None,
) -> tuple[MoleculeProposal, torch.Tensor] | None:
    """`propose_molecules` on a campaign's history, and the chosen molecules' latents
    (``q x d``, NaN rows where the codec cannot encode one; recorded, not used to choose).
    None when nothing is scored yet or no candidate is new (the caller proposes otherwise).
    ``pending``: molecules whose oracle calls are running; ``known_fn``: the objective's exact
    part (see `propose_molecules`)."""
    scored = scored_molecules(history)
    if not scored:
        return None
    hidden = hidden_infeasible(history, slack_fn)
    if hidden:  # the GP learns to avoid them: they score as the worst molecule seen
        worst = min(v for _, v in scored)
        scored = [(c, worst if c in hidden else v) for c, v in scored]
    known = {c for c in history["canonical"] if c}
    prop = propose_molecules(scored, known, q, seed, cfg, canonical_fn, decode_fn,
                             encode_fn, slack_fn, size_limit(history, cfg),
                             pending, reuse, known_fn)  # fmt: skip
    if not prop.smiles:
        return None
    z = encode_fn(prop.smiles) if encode_fn is not None else None
    if z is None:
        return None
    return prop, z.detach().to("cpu", torch.float64)
