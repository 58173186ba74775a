"""The ``molvae`` argument parser, one function per verb.

A flag that sets a config field takes its default from that config dataclass (`TrainConfig`,
`TrainRunConfig`, `VAEConfig`, `EvaluateConfig`, `BOConfig`, `OptimizeRunConfig`), so each setting
has one default, and ``--help`` shows it.
"""

from __future__ import annotations

import argparse
from typing import Any

from molvae.cli.args import (
    CSV_OUT,
    ORACLE_CACHE,
    add_conditional_training,
    add_constraint,
    add_oracle_cache,
    add_out,
    add_scheduler,
    default,
)
from molvae.cli.editing import add_edit_verb
from molvae.cli.evaluate_parser import add_evaluate
from molvae.cli.latents import add_latent_verbs
from molvae.cli.optimize_parser import add_optimize
from molvae.runs import TrainRunConfig
from molvae.train import TrainConfig


def _train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a VAE on a SMILES file or a ZINC set")
    p.add_argument(
        "--data",
        default=default(TrainRunConfig, "data"),
        help="SMILES file, 'zinc' (bundled 250k subset) or 'zinc-full' (MOSES train, "
        "fetched once) (default: %(default)s)",
    )
    add_out(p, default(TrainRunConfig, "out_dir"), "run directory: checkpoints, metrics.csv")
    for flag, name, typ in (
        ("--epochs", "epochs", int),
        ("--batch-size", "batch_size", int),
        ("--lr", "lr", float),
        ("--beta-max", "beta_max", float),
        ("--kl-warmup-epochs", "kl_warmup_epochs", float),
        ("--free-bits", "free_bits", float),
        ("--adversary-weight", "adversary_weight", float),
        ("--consistency-weight", "consistency_weight", float),
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
        help="train the property head on these objectives (e.g. logp sa qed plogp); with "
        "--conditional, --labels or --label-fraction: the properties the model is conditioned "
        "on (objective names, or columns of --labels)",
    )
    add_conditional_training(p)
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


def _score(sub: Any) -> None:
    p = sub.add_parser("score", help="add objective scores (and a status column) to a SMILES file")
    # optional so that `molvae score --list` needs no file; the command says when it is missing
    p.add_argument("input", nargs="?", help="SMILES file (.smi/.txt/.csv, optionally .gz)")
    p.add_argument(
        "--objective",
        "-O",
        action="append",
        default=None,
        help="objective name, similarity:SMILES or module:function; repeatable "
        "(default: qed); see --list",
    )
    p.add_argument("--column", default=None)
    add_constraint(p, "status 'infeasible' (scored) for a molecule that misses it")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    add_scheduler(p)
    p.add_argument("--list", action="store_true", help="list the objectives and exit")
    add_oracle_cache(p, "put the SMILES file before it, or write --cache=PATH")
    add_out(p, None, CSV_OUT)


def _cache(sub: Any) -> None:
    p = sub.add_parser(
        "cache",
        help="show, export or back up the oracle cache (objective outcomes kept by --cache)",
    )
    actions = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    stats = actions.add_parser(
        "stats", help="rows and stored objective seconds per objective and version"
    )
    export = actions.add_parser("export", help="write the stored rows to a CSV file")
    export.add_argument("out", metavar="OUT.csv", help="CSV file to write")
    export.add_argument(
        "--objective", default=None, metavar="SPEC", help="only this objective spec's rows"
    )
    backup = actions.add_parser(
        "backup", help="copy the whole cache to one SQLite file, safely while campaigns write"
    )
    backup.add_argument("out", metavar="OUT.sqlite", help="file to write (replaced)")
    for q in (stats, export, backup):
        q.add_argument("--cache", default=None, metavar="PATH", help=ORACLE_CACHE)


def _report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a campaign's report: report/index.html (offline HTML), summary.md, PNGs",
    )
    p.add_argument("campaign", metavar="DIR", help="campaign directory, finished or not")
    p.add_argument(
        "--smarts",
        action="append",
        default=[],
        metavar="SMARTS",
        help="also offer this substructure in the HTML report's filter (matched with RDKit "
        "when the report is written; the page cannot match new patterns); repeatable",
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
    add_latent_verbs(sub)
    add_edit_verb(sub)
    _score(sub)
    _cache(sub)
    add_evaluate(sub)
    add_optimize(sub)
    _report(sub)
    sub.add_parser("fetch-zinc", help="download and cache the full MOSES ZINC splits")
    return parser
