"""Settings of a BO campaign and the callables through which the loop talks to a model.

The loop never sees the VAE: it talks to it through three callables (``DecodeFn``, ``EncodeFn``,
``ObjectiveFn``), plus ``CanonicalFn`` for deduplication and ``PriorFn`` for random search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

DecodeFn = Callable[[torch.Tensor, int, int], list[list[str]]]
"""(z: n x d float32, n_attempts, seed) -> per z the decoded SMILES (attempt 0 greedy)."""
EncodeFn = Callable[[list[str]], torch.Tensor]
"""SMILES -> n x d latent means (NaN rows where a SMILES cannot be encoded)."""
ObjectiveFn = Callable[[list[str]], tuple[np.ndarray, list[str]]]
"""canonical SMILES -> (scores, status in {"ok", "infeasible", "invalid", "failed"}); an
infeasible molecule keeps its score but misses a constraint (never the best, see `store`)."""
SlackFn = Callable[[list[str]], np.ndarray]
"""canonical SMILES -> ``n x m`` signed slacks of the campaign's ``m`` constraints: <= 0 where
one holds, > 0 by how much it misses (`molvae.chem.constraints.Constraint.slack`)."""
KnownFn = Callable[[list[str]], np.ndarray]
"""canonical SMILES -> ``n`` values of the objective's part computed exactly (NaN where it cannot
be; `molvae.chem.Objective.known_part`)."""
CanonicalFn = Callable[[str], "str | None"]
"""SMILES -> canonical SMILES or None when invalid."""
SampleFn = Callable[[int, int], "np.ndarray | torch.Tensor"]
"""(n, seed) -> n x d latent samples from the model's prior (random search, prior bounds)."""
PriorFn = SampleFn  # the name before the prior could be learned

ACQUISITIONS = ("qlogei", "qucb", "ts")
BOUNDS = ("data", "prior")
CONSTRAINT_MODELS = ("slack", "binary")
SURROGATES = ("fingerprint", "latent")
# the fingerprint GP's features: Morgan bits (on or off) or counts (how often each environment
# occurs, so the kernel sees atom and group counts and size)
FP_KINDS = ("bits", "counts")


@dataclass
class BOConfig:
    """Settings of a latent-space BO campaign (also used, in part, by random search).

    ``budget`` counts oracle calls (PMO's rule, `molvae.bo.accounting.oracle_calls`): the first time
    a canonical molecule reaches the objective, scored ``ok``, ``infeasible`` (a constraint
    missed) or ``failed``; a duplicate (served from the record) and an invalid string cost
    nothing, and neither do the rows of ``init_data`` (molecules already measured).
    Initial pool (``free_pool=False``, the default): ``init_pool`` random data molecules are
    scored, every call charged, and all of them are the initial design (``n_init`` and
    ``init_top`` are unused); ``init_pool=None`` takes ``min(100, budget // 4)`` (at least 1),
    or 0 when the campaign has ``init_data``, resolved once and stored in ``config.json``.
    ``free_pool=True`` is Kusner's protocol, only for reproducing published tables (e.g.
    ``budget=250, batch_size=50, max_iterations=5``): the pool (``init_pool=None``: 2000) is
    scored for free, its ``init_top`` best plus random others, ``n_init`` in all, are the
    design, and the budget counts only proposals scored ``ok`` or ``infeasible``.
    ``decode_temperature`` is for the caller's decoder (the loop only records it).

    Latent box: ``bounds="data"`` is mean -/+ ``bound_std`` std of the encoded pool;
    ``"prior"`` the ``bound_quantile`` / ``1 - bound_quantile`` quantiles of samples from the
    campaign's ``prior_fn``, widened by 10% of their range on each side.
    Re-drawing (``redraw``): a proposal whose molecule is already in the history (or earlier in
    the batch) takes another of its decode attempts that is new, else (and so does a proposal
    with no valid attempt) a spare candidate that decodes to a new molecule: ``redraw_rounds``
    rounds of ``spares_per_proposal * q`` Thompson samples (random search: prior samples), the
    first in the trust region, each next in a box 4 times its side.
    Trust region: a batch is a failure when it does not improve on the region's best; when
    more than ``tr_max_waste`` of its proposals decoded to known molecules or invalid strings
    (before re-drawing) it is a failure that halves the region at once. Below ``tr_length_min``
    the region restarts around another good point.
    Constraints (``constraint_model``, used once a scored molecule missed one): ``"slack"`` fits
    one GP per constraint to its signed slack, so a bound such as ``mw<=350`` is learnt as a
    distance (SCBO, Eriksson & Poloczek 2021; needs the campaign's ``slack_fn``, else it acts
    as ``"binary"``); ``"binary"`` fits one GP to feasible / infeasible.
    Weighted retraining (Tripp et al. 2020; ``molvae.bo.retrain``): every ``retrain_every``
    iterations (0 = never) the model is fine-tuned on the scored pool and the scored proposals,
    weighted ``1 / (retrain_k * N + rank)``, and the GP continues in its latent space.
    Surrogate (``surrogate``): ``"fingerprint"`` (the default) ranks candidate *molecules* with
    a Tanimoto-kernel GP on Morgan fingerprints (``fp_kind``: counts by default, or bits;
    `molvae.bo.candidates`): ``ga_generations``
    generations of ``ga_candidates`` Graph GA children climbing the GP's UCB, plus
    ``vae_neighbours`` decodes around each of the ``vae_parents`` best molecules' latents,
    then a batch by Thompson sampling; the GP is fitted on every scored molecule up to
    ``fp_max_points``, then on the best half and a random rest. Candidates larger than
    ``max_heavy_atoms`` are dropped, as Jensen's Graph GA bounds its children's size: a big
    molecule shares a small fraction of its bits with any scored one, so the GP is unsure of it,
    and unbounded the UCB climb grew proposals far past drug size (docs/benchmarks/pmo.md).
    With ``known_part`` and an objective that declares one (a score = an expensive part + a
    part computed exactly, such as DOCKSTRING's F2 = Vina + 10 (1 - QED)), the GP is fitted to
    the expensive part only and the exact part is added to its UCB and Thompson samples
    (composite BO, Astudillo & Frazier 2019; docs/benchmarks/dockstring.md).
    The acquisition, trust region and re-drawing settings apply to ``"latent"``, the GP on the
    VAE's latent space that proposes z to decode.
    Asynchronous BO (``async_workers`` > 0, `molvae.bo.async_loop`): after the initial design,
    that many oracle calls are kept running; each time calls finish, their molecules are
    recorded, the GP refitted, and as many molecules proposed as calls are free, conditioned
    on the ones still running. ``batch_size`` is then unused; 0: synchronous batches.

    Several objectives (``n_objectives`` > 1, `molvae.bo.multi_objective`): the objective
    returns ``n x n_objectives`` values, all maximized; one GP per objective and qLogNEHVI
    choose the batch, improving the hypervolume above ``ref_point`` (None: inferred from the
    initial design, `molvae.bo.pareto.infer_ref_point`).
    """

    budget: int = 250
    batch_size: int = 50
    max_iterations: int | None = None
    n_init: int = 250  # free_pool only
    init_pool: int | None = None  # None: resolved when the directory is created
    init_top: int = 50  # free_pool only
    # False (PMO): the initial pool is charged to the budget; True: Kusner's free pool
    free_pool: bool = False
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
    tr_max_waste: float = 0.5
    bounds: str = "data"
    bound_std: float = 3.0
    bound_quantile: float = 0.005
    redraw: bool = True
    spares_per_proposal: int = 2
    redraw_rounds: int = 3
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
    retrain_every: int = 0
    retrain_k: float = 1e-3
    constraint_model: str = "slack"
    surrogate: str = "fingerprint"
    ga_candidates: int = 500
    ga_generations: int = 4
    vae_neighbours: int = 0
    vae_parents: int = 20
    fp_max_points: int = 2000
    # the fingerprint GP's features: Morgan "counts" (how often each environment occurs) or
    # "bits"; counts beat bits on most PMO tasks at 1,000 calls (docs/benchmarks/pmo.md).
    # Single-objective BO only: the multi-objective GPs stay on bits, where they were measured
    fp_kind: str = "counts"
    # when the objective declares a part computed exactly at no cost (DOCKSTRING's QED penalty
    # beside its docking score), the fingerprint GP models the rest and adds that part exactly
    known_part: bool = True
    # None: 1.5 x the largest molecule the campaign started from (its iteration-0 rows); 0: none
    max_heavy_atoms: int | None = None
    async_workers: int = 0  # > 0: asynchronous BO with this many oracle calls in flight
    # several objectives (`molvae.bo.pareto`): the objective returns n x n_objectives values
    n_objectives: int = 1
    ref_point: list[float] | None = None  # None: inferred from the initial design

    def __post_init__(self) -> None:
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, not {self.acquisition!r}")
        if self.budget < 0 or self.batch_size < 1 or self.n_decode_attempts < 1:
            raise ValueError("budget must be >= 0, batch_size and n_decode_attempts >= 1")
        if self.max_gp_points < 1 or self.n_init < 0 or self.init_top < 0:
            raise ValueError("max_gp_points must be >= 1, n_init and init_top >= 0")
        if self.init_pool is not None and self.init_pool < 0:
            raise ValueError(f"init_pool must be >= 0 or None, not {self.init_pool}")
        if not self.free_pool and self.init_pool is not None and self.init_pool > self.budget:
            raise ValueError(f"init_pool {self.init_pool} is more than the budget of "
                             f"{self.budget} oracle calls it is charged to (lower init_pool, "
                             "or use free_pool)")  # fmt: skip
        if self.bounds not in BOUNDS:
            raise ValueError(f"bounds must be one of {BOUNDS}, not {self.bounds!r}")
        if not 0.0 < self.bound_quantile < 0.5 or not 0.0 <= self.tr_max_waste <= 1.0:
            raise ValueError("bound_quantile must be in (0, 0.5), tr_max_waste in [0, 1]")
        if self.spares_per_proposal < 0 or self.redraw_rounds < 0:
            raise ValueError("spares_per_proposal and redraw_rounds must be >= 0")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, not {self.surrogate!r}")
        if min(self.ga_candidates, self.ga_generations, self.vae_neighbours, self.vae_parents) < 0:
            raise ValueError("ga_candidates, ga_generations, vae_neighbours, vae_parents >= 0")
        if self.max_heavy_atoms is not None and self.max_heavy_atoms < 0:
            raise ValueError(f"max_heavy_atoms must be >= 0 or None, not {self.max_heavy_atoms}")
        if self.fp_kind not in FP_KINDS:
            raise ValueError(f"fp_kind must be one of {FP_KINDS}, not {self.fp_kind!r}")
        if self.fp_max_points < 2:
            raise ValueError("fp_max_points must be >= 2")
        if self.constraint_model not in CONSTRAINT_MODELS:
            raise ValueError(f"constraint_model must be one of {CONSTRAINT_MODELS}, "
                             f"not {self.constraint_model!r}")  # fmt: skip
        if self.async_workers < 0:
            raise ValueError(f"async_workers must be >= 0, not {self.async_workers}")
        if self.async_workers and self.retrain_every:
            raise ValueError("asynchronous BO (async_workers) cannot retrain the model "
                             "(retrain_every): retraining waits for every call")  # fmt: skip
        self._check_objectives()
        if self.retrain_every < 0 or not self.retrain_k > 0:
            raise ValueError("retrain_every must be >= 0 and retrain_k > 0")

    def _check_objectives(self) -> None:
        if self.n_objectives < 1:
            raise ValueError(f"n_objectives must be >= 1, not {self.n_objectives}")
        if self.ref_point is not None:
            self.ref_point = [float(v) for v in self.ref_point]
            if len(self.ref_point) != self.n_objectives or self.n_objectives < 2:
                raise ValueError(
                    f"ref_point needs one value per objective ({self.n_objectives}"
                    f"), got {len(self.ref_point)}; only for several objectives"
                )
        if self.n_objectives > 1 and self.retrain_every:
            raise ValueError("weighted retraining (retrain_every) ranks molecules by one score:"
                             " it cannot run with several objectives")  # fmt: skip


# What a campaign directory that predates a setting went on with: it resumes as it started.
LEGACY_SETTINGS: dict[str, object] = {
    "constraint_model": "binary",  # before the constraint GPs on slacks
    "free_pool": True,  # before the pool was charged to the budget
    "surrogate": "latent",  # before the fingerprint GP
    "max_heavy_atoms": 0,  # before the candidate size limit
    "fp_kind": "bits",  # before count fingerprints
    "known_part": False,  # before the GP modelled an objective's unknown part only
}

FREE_POOL_SIZE = 2000  # the pool of Kusner's protocol, scored for free
MAX_COUNTED_POOL = 100


def resolve_init_pool(cfg: BOConfig, has_init_data: bool, has_pool_data: bool = True) -> BOConfig:
    """``cfg`` with ``init_pool`` set: as given, else 2000 with ``free_pool``, else (the pool is
    charged) ``min(100, budget // 4)``, at least 1 when the budget allows one call, and 0 when
    the campaign starts from ``init_data`` or has no data molecules to draw from."""
    if cfg.init_pool is not None:
        return cfg
    if cfg.free_pool:
        n = FREE_POOL_SIZE
    elif has_init_data or not has_pool_data or cfg.budget < 1:
        n = 0
    else:
        n = max(1, min(MAX_COUNTED_POOL, cfg.budget // 4))
    return replace(cfg, init_pool=n)


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of one iteration, from (campaign seed, iteration) so a resumed run repeats it."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])
