"""The ``molvae evaluate`` arguments (the verb's settings are many; `molvae.cli.parser` calls
``add_evaluate``)."""

from __future__ import annotations

import argparse
from typing import Any

from molvae.cli.args import add_grammar, add_model, add_out, default, param_default
from molvae.evaluation import EvaluateConfig
from molvae.runs import evaluate_model


def add_evaluate(sub: Any) -> None:
    """The ``evaluate`` verb."""
    p = sub.add_parser(
        "evaluate", help="MOSES metrics, reconstruction and sample statistics of a model"
    )
    add_model(p)
    for flag, name, what in (
        ("--n-samples", "n_samples", "samples per row"),
        ("--n-reconstruct", "n_reconstruct", "molecules reconstructed per set"),
        ("--recon-attempts", "n_recon_attempts", "decodes per molecule; >1 adds majority"),
        ("--seed", "seed", "seed"),
        ("--jobs", "n_jobs", "worker processes for the RDKit work"),
        (
            "--n-likelihood",
            "n_likelihood",
            "test molecules whose ELBO and IWAE bound are reported (0 = none)",
        ),
        ("--iwae-samples", "iwae_samples", "importance samples K of the IWAE bound"),
    ):
        p.add_argument(flag, type=int, default=default(EvaluateConfig, name),
                       help=f"{what} (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--decoding",
        choices=["both", "raw", "grammar"],
        default="both",
        help="rows decoded raw (the model's distribution, as MOSES), through the SMILES grammar, "
        "or both (default: %(default)s); --unconstrained = raw",
    )
    p.add_argument(
        "--prior",
        choices=["all", "gaussian", "learned"],
        default=default(EvaluateConfig, "prior"),
        help="prior rows: N(0, I), the checkpoint's learned prior, or all there are "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--strategy",
        choices=["sample", "greedy"],
        default=param_default(evaluate_model, "strategy"),
        help="how samples are decoded (default: %(default)s, as MOSES)",
    )
    p.add_argument("--no-fcd", action="store_true", help="skip the Frechet ChemNet Distance")
    p.add_argument("--no-filters", action="store_true", help="skip the MCF/PAINS filters")
    p.add_argument("--no-cache", action="store_true", help="recompute reference statistics")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    _evaluate_references(p)
    add_grammar(p)
    add_out(p, "runs/evaluate", "directory for metrics.json, metrics.md, samples, histograms")


def _evaluate_references(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--test",
        default=param_default(evaluate_model, "test"),
        help="test molecules (default: %(default)s, the MOSES test split)",
    )
    p.add_argument(
        "--test-scaffolds",
        default=param_default(evaluate_model, "test_scaffolds"),
        help="scaffold-test molecules: auto (the MOSES split when fetched), none, or a file "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--train",
        default=param_default(evaluate_model, "train"),
        help="training molecules for novelty and the data statistics: auto (the full MOSES "
        "train split when fetched, else the bundled 250k subset) or a file (default: %(default)s)",
    )
    p.add_argument(
        "--recon-set",
        default=param_default(evaluate_model, "recon_set"),
        help="molecules from outside the training set to reconstruct: auto (2,000 neutral "
        "ZINC-250k molecules, bundled) or a file (default: %(default)s)",
    )
    p.add_argument(
        "--max-reference",
        type=int,
        default=param_default(evaluate_model, "max_reference"),
        help="use only the first N test and scaffold-test molecules (default: all, as MOSES)",
    )
