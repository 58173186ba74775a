"""The ``molvae optimize`` arguments: the campaign, its BO, gradient and retraining settings,
and its initial design."""

from __future__ import annotations

import argparse
from typing import Any

from molvae.bo import (
    ACQUISITIONS,
    CONSTRAINT_MODELS,
    FP_KINDS,
    SURROGATES,
    BOConfig,
    GradientConfig,
)
from molvae.cli.args import (
    add_async,
    add_constraint,
    add_grammar,
    add_model,
    add_oracle_cache,
    add_out,
    add_scheduler,
    default,
)
from molvae.runs import OptimizeRunConfig
from molvae.train import FinetuneConfig


def _add_bo_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-init", type=int, default=default(BOConfig, "n_init"), help="with "
                   "--free-pool: design drawn from the pool (default: %(default)s)")  # fmt: skip
    p.add_argument("--surrogate", choices=SURROGATES, default=default(BOConfig, "surrogate"),
                   help="fingerprint: a Tanimoto GP ranks Graph GA children (and VAE decodes, "
                   "--vae-neighbours); latent: a GP on the latent space (default: %(default)s)",
                   )  # fmt: skip
    p.add_argument("--vae-neighbours", type=int, default=default(BOConfig, "vae_neighbours"),
                   help="decodes around each best latent (default: %(default)s)")  # fmt: skip
    p.add_argument("--fingerprints", choices=FP_KINDS, dest="fp_kind",
                   default=default(BOConfig, "fp_kind"), help="--surrogate fingerprint: the "
                   "GP's Morgan features, counts or bits (default: %(default)s)")  # fmt: skip
    p.add_argument("--known-part", action=argparse.BooleanOptionalAction,
                   default=default(BOConfig, "known_part"), help="--surrogate fingerprint: "
                   "when the objective has a part computed exactly (dockstring:*'s QED "
                   "penalty), the GP models the rest only (default: %(default)s)")  # fmt: skip
    p.add_argument("--max-heavy-atoms", type=int, default=None, metavar="N",
                   help="--surrogate fingerprint: no candidate larger than N heavy atoms (default: "
                   "1.5 x the largest molecule of the initial design; 0: no limit)")  # fmt: skip
    p.add_argument("--acquisition", choices=ACQUISITIONS, default=default(BOConfig, "acquisition"),
                   help="--surrogate latent (default: %(default)s)")  # fmt: skip
    p.add_argument("--trust-region", action=argparse.BooleanOptionalAction,
                   default=default(BOConfig, "trust_region"), help="--surrogate latent: "
                   "TuRBO-style trust region around the incumbent (default: %(default)s)",
                   )  # fmt: skip
    p.add_argument("--constraint-model", choices=CONSTRAINT_MODELS,
                   default=default(BOConfig, "constraint_model"),
                   help="with -C: one GP per constraint on its slack (SCBO) or one GP of "
                   "feasible/infeasible (default: %(default)s)")  # fmt: skip


def _add_gradient_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--method gradient")
    g.add_argument("--steps", type=int, default=default(GradientConfig, "steps"),
                   help="ascent steps (default: %(default)s)")  # fmt: skip
    g.add_argument("--step-size", type=float, default=default(GradientConfig, "step_size"),
                   help="latent length of a step (default: %(default)s)")  # fmt: skip
    g.add_argument("--starts", type=int, default=default(GradientConfig, "n_starts"),
                   help="chains, from the best initial molecules (default: %(default)s)",
                   )  # fmt: skip
    g.add_argument("--substep-growth", type=float,
                   default=default(GradientConfig, "substep_growth"),
                   help="a chain stuck on a known molecule steps on, each step this many times "
                   "longer (1: as campaigns before it; default: %(default)s)")  # fmt: skip


def _add_retrain_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("weighted retraining (Tripp et al. 2020; --method bo)")
    g.add_argument("--retrain-every", type=int, default=default(BOConfig, "retrain_every"),
                   help="fine-tune the model every r iterations on the scored molecules weighted "
                   "by rank (0 = never; default: %(default)s)")  # fmt: skip
    g.add_argument("--retrain-k", type=float, default=default(BOConfig, "retrain_k"),
                   help="rank weights 1 / (k N + rank) (default: %(default)s)")  # fmt: skip
    g.add_argument("--retrain-steps", type=int, default=default(FinetuneConfig, "steps"),
                   help="fine-tuning updates per retraining (default: %(default)s)")  # fmt: skip
    g.add_argument("--retrain-batch-size", type=int,
                   default=default(FinetuneConfig, "batch_size"),
                   help="molecules per update (default: %(default)s)")  # fmt: skip
    g.add_argument("--retrain-lr", type=float, default=default(FinetuneConfig, "lr"),
                   help="fine-tuning learning rate (default: %(default)s)")  # fmt: skip


def _add_initial_design(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("initial design")
    g.add_argument("--init-pool", type=int, default=None,
                   help="data molecules scored for the initial design (default: charged, "
                   "min(100, budget / 4), 0 with --init-data; --free-pool: 2000)")  # fmt: skip
    g.add_argument("--free-pool", action="store_true",
                   help="Kusner's protocol, for reproducing published tables: the pool is "
                   "scored for free, --n-init of it is the design, the budget counts proposals "
                   "only")  # fmt: skip
    g.add_argument("--init-data", default=None, metavar="FILE",
                   help="CSV (.gz) of molecules already measured: a smiles column, a score "
                   "column, optional status (ok/infeasible/failed); added to the design at no "
                   "oracle cost and never scored again")  # fmt: skip
    g.add_argument("--init-score-column", metavar="NAME",
                   default=default(OptimizeRunConfig, "init_score_column"),
                   help="the --init-data column of scores (default: %(default)s)")  # fmt: skip


def _add_objectives(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", action="append", default=None,
                   help="objective (default: qed); repeat it for a multi-objective campaign "
                   "(qLogNEHVI, a Pareto front; every objective maximized)")  # fmt: skip
    p.add_argument("--ref-point", type=float, nargs="+", default=None, metavar="VALUE",
                   help="several objectives: the hypervolume's reference point, one value "
                   "per objective in their order (default: inferred from the initial "
                   "design)")  # fmt: skip


def add_optimize(sub: Any) -> None:
    """The ``optimize`` verb."""
    p = sub.add_parser("optimize", help="Bayesian optimization (or random search) in latent space")
    add_model(p)
    _add_objectives(p)
    add_constraint(p, "the best and top molecules satisfy it; misses count as scored")
    p.add_argument("--budget", type=int, default=default(BOConfig, "budget"),
                   help="oracle calls: every new molecule scored (ok, infeasible or failed), the "
                   "initial pool included; repeats, invalid strings and --init-data cost nothing "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--batch-size", "-q", type=int, default=default(BOConfig, "batch_size"),
                   help="proposals per iteration (default: %(default)s)")  # fmt: skip
    p.add_argument("--iterations", type=int, default=None, help="cap on BO iterations")
    _add_bo_settings(p)
    p.add_argument(
        "--method",
        choices=["bo", "random", "gradient"],
        default=default(OptimizeRunConfig, "method"),
        help="gradient: ascent on the model's property head from the best initial molecules "
        "(default: %(default)s)",
    )
    _add_gradient_settings(p)
    _add_retrain_settings(p)
    p.add_argument(
        "--prior",
        choices=["auto", "learned", "gaussian"],
        default=default(OptimizeRunConfig, "prior"),
        help="latent prior for random search and the search box: auto = the model's learned "
        "prior when it has one (box from its samples), else N(0, I) (box from the encoded "
        "data) (default: %(default)s)",
    )
    p.add_argument(
        "--data",
        default=default(OptimizeRunConfig, "data"),
        help="initial design pool (default: %(default)s)",
    )
    _add_initial_design(p)
    p.add_argument("--seed", type=int, default=default(BOConfig, "seed"))
    p.add_argument("--jobs", type=int, default=default(BOConfig, "n_jobs"),
                   help="scoring processes")  # fmt: skip
    add_scheduler(p)
    add_async(p)
    add_oracle_cache(
        p,
        "a killed campaign's finished calls, and molecules another campaign or "
        "molvae score computed, are not called again (still counted in the budget)",
    )
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is fastest on a shared CPU)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    add_grammar(p)
    add_out(
        p, default(OptimizeRunConfig, "out_dir"), "campaign directory; an existing one is resumed"
    )
