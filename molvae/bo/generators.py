"""Where the fingerprint GP's candidate molecules come from (`molvae.bo.candidates`): Graph GA's
children climbing the GP's upper confidence bound, and the VAE's decodes around the best
molecules' latents. Neither costs an oracle call."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from mol_ga.graph_ga.gen_candidates import mutate, reproduce
from mol_ga.sample_population import uniform_quantile_sampling
from rdkit import Chem

from molvae.bo.config import BOConfig, CanonicalFn, DecodeFn, KnownFn
from molvae.bo.fingerprint import fingerprints
from molvae.chem.molecules import silence_rdkit

INNER_POPULATION = 120  # Graph GA's population size in PMO


def heavy_atoms(smiles: str) -> int | None:
    """Heavy atoms of a molecule, None when RDKit cannot parse it."""
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else mol.GetNumHeavyAtoms()


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
