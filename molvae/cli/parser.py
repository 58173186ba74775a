"""The ``molvae`` argument parser, one function per verb.

A flag that sets a config field takes its default from that config dataclass (`TrainConfig`,
`TrainRunConfig`, `VAEConfig`, `EvaluateConfig`, `BOConfig`, `OptimizeRunConfig`), so each setting
has one default, and ``--help`` shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from molvae.bo import ACQUISITIONS, CONSTRAINT_MODELS, SURROGATES, BOConfig, GradientConfig
from molvae.resources import DEFAULT_MODEL
from molvae.runs import OptimizeRunConfig, TrainRunConfig
from molvae.train import FinetuneConfig, TrainConfig

CSV_OUT = "CSV file (default: standard output)"


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


def _param_default(fn: Any, name: str) -> Any:
    return inspect.signature(fn).parameters[name].default


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="checkpoint file, or 'default' for the bundled model (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")


def _add_grammar(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unconstrained",
        action="store_true",
        help="decode the model's raw distribution, not through the SMILES grammar "
        "(more invalid strings; what MOSES-style benchmarks measure)",
    )


def _add_out(p: argparse.ArgumentParser, default_: str | None, what: str) -> None:
    p.add_argument("--out", "-o", default=default_, help=f"{what} (default: %(default)s)")


def _train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a VAE on a SMILES file or a ZINC set")
    p.add_argument(
        "--data",
        default=default(TrainRunConfig, "data"),
        help="SMILES file, 'zinc' (bundled 250k subset) or 'zinc-full' (MOSES train, "
        "fetched once) (default: %(default)s)",
    )
    _add_out(p, default(TrainRunConfig, "out_dir"), "run directory: checkpoints, metrics.csv")
    for flag, name, typ in (
        ("--epochs", "epochs", int),
        ("--batch-size", "batch_size", int),
        ("--lr", "lr", float),
        ("--beta-max", "beta_max", float),
        ("--kl-warmup-epochs", "kl_warmup_epochs", float),
        ("--free-bits", "free_bits", float),
        ("--checkpoint-minutes", "checkpoint_minutes", float),
        ("--seed", "seed", int),
        ("--device", "device", str),
    ):
        p.add_argument(
            flag, type=typ, default=default(TrainConfig, name), help="(default: %(default)s)"
        )
    p.add_argument(
        "--kl-schedule",
        choices=["linear", "sigmoid", "constant", "cyclical"],
        default=default(TrainConfig, "kl_schedule"),
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--properties",
        nargs="*",
        default=[],
        metavar="NAME",
        help="train the property head on these objectives (e.g. logp sa qed plogp)",
    )
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="smoke runs")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--max-molecules", type=int, default=None, help="use the first N molecules")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=default(TrainRunConfig, "val_fraction"),
        help="(default: %(default)s)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="fine-tune: start from this checkpoint's weights, size and vocabulary "
        "('default' = the bundled model)",
    )
    p.add_argument("--no-progress", action="store_true")
    _add_model_size(p)


def _add_model_size(p: argparse.ArgumentParser) -> None:
    names = ("emb-dim", "enc-hidden", "enc-layers", "latent-dim", "dec-hidden", "dec-layers",
             "dropout", "max-len")  # fmt: skip
    for name in names:
        # None = not given: a fine-tuning run keeps its starting checkpoint's sizes
        p.add_argument(
            f"--{name}",
            type=float if name == "dropout" else int,
            default=None,
            help="model size (default: VAEConfig's, or the --init-from model's)",
        )


def _add_constraint(p: Any, effect: str) -> None:
    p.add_argument("--constraint", "-C", action="append", default=[], metavar="SPEC",
                   help="'<property> <= <value>', '<property> >= <value>' (sa, mw, hbd, hba, "
                   "rotb, rings, heavy_atoms, nn_bonds, logp, qed, tpsa, ...), 'filters' or "
                   f"'alerts:brenk,pains' (also nih, zinc, chembl); {effect}; "
                   "repeatable")  # fmt: skip


def _score(sub: Any) -> None:
    p = sub.add_parser("score", help="add objective scores (and a status column) to a SMILES file")
    p.add_argument("input")
    p.add_argument(
        "--objective",
        "-O",
        action="append",
        default=None,
        help="objective name, similarity:SMILES or module:function; repeatable "
        "(default: qed); see --list",
    )
    p.add_argument("--column", default=None)
    _add_constraint(p, "status 'infeasible' (scored) for a molecule that misses it")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--list", action="store_true", help="list the objectives and exit")
    _add_out(p, None, CSV_OUT)


def _evaluate(sub: Any) -> None:
    from molvae.cli.evaluate_parser import add_evaluate  # its own module: parser.py stays small

    add_evaluate(sub)


def _add_bo_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-init", type=int, default=default(BOConfig, "n_init"), help="with "
                   "--free-pool: design drawn from the pool (default: %(default)s)")  # fmt: skip
    p.add_argument("--surrogate", choices=SURROGATES, default=default(BOConfig, "surrogate"),
                   help="fingerprint: a Tanimoto GP ranks Graph GA children (and VAE decodes, "
                   "--vae-neighbours); latent: a GP on the latent space (default: %(default)s)",
                   )  # fmt: skip
    p.add_argument("--vae-neighbours", type=int, default=default(BOConfig, "vae_neighbours"),
                   help="decodes around each best latent (default: %(default)s)")  # fmt: skip
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


def _optimize(sub: Any) -> None:
    p = sub.add_parser("optimize", help="Bayesian optimization (or random search) in latent space")
    _add_model(p)
    p.add_argument(
        "--objective",
        default=default(OptimizeRunConfig, "objective"),
        help="objective (default: %(default)s)",
    )
    _add_constraint(p, "the best and top molecules satisfy it; misses count as scored")
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
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is fastest on a shared CPU)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    _add_grammar(p)
    _add_out(
        p, default(OptimizeRunConfig, "out_dir"), "campaign directory; an existing one is resumed"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``molvae`` parser with its verbs."""
    parser = argparse.ArgumentParser(
        prog="molvae",
        description="SMILES VAE on ZINC and Bayesian optimization in its latent space.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train(sub)
    from molvae.cli.latents import add_latent_verbs  # it imports this module

    add_latent_verbs(sub)
    _score(sub)
    _evaluate(sub)
    _optimize(sub)
    sub.add_parser("fetch-zinc", help="download and cache the full MOSES ZINC splits")
    return parser
