"""molvae: latent-space molecular design with a SMILES GRU VAE and Bayesian optimization.

The package is one subpackage per stage, in the order data flows; a stage imports only the
stages above it (and `molvae.io`, `molvae.resources`), never one below:

    molvae.io, molvae.resources   atomic writer and readers; the bundled model and data
    molvae.chem                   RDKit: molecules, properties, objectives (no torch)
    molvae.data                   SMILES files, filtering, ZINC, tokens, token cache, batches
    molvae.grammar                the SMILES grammar and grammar-constrained decoding
    molvae.model                  the VAE, decoding, checkpoint, LatentCodec
    molvae.train                  the training loop, schedules, DDP
    molvae.evaluation             MOSES metrics and `evaluate`
    molvae.bo                     BO campaigns: surrogate, acquisition, trust region, store, report
    molvae.runs, molvae.cli       end-to-end runs and the ``molvae`` command over all of the above

The names users need are importable from here (``from molvae import LatentCodec``). They are
loaded on first use, so ``import molvae`` (and ``molvae --help``) does not pay for torch, RDKit
and BoTorch until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from molvae.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "molvae.resources": ("DEFAULT_MODEL", "cache_dir", "data_dir", "resolve_model"),
    "molvae.chem": (
        "Objective", "ScoreResult", "available_objectives", "canonical", "get_objective",
        "is_valid", "parse", "property_table", "score_smiles",
    ),
    "molvae.data": (
        "DataError", "DropReport", "FilterConfig", "Vocab", "fetch_moses", "filter_smiles",
        "load_smiles", "read_latents", "read_smiles", "read_table", "token_cache", "tokenize",
    ),
    "molvae.model": (
        "Checkpoint", "CheckpointError", "EncodeResult", "GrammarConfig", "LatentCodec",
        "MolVAE", "SmilesGrammar", "VAEConfig", "load_checkpoint", "save_checkpoint",
        "LatentPrior", "PriorConfig", "fit_prior", "TrainingDomain", "compute_domain",
    ),
    "molvae.train": ("TrainConfig", "TrainResult", "TrainingDiverged", "FinetuneConfig"),
    "molvae.evaluation": ("EvaluateConfig", "EvaluationResult", "evaluate"),
    "molvae.bo": (
        "BOConfig", "CampaignResult", "load_campaign", "random_search", "run_campaign",
        "write_report", "write_html_report", "GradientConfig", "gradient_campaign",
    ),
    "molvae.runs": (
        "OptimizeRunConfig", "TrainRunConfig", "evaluate_model", "optimize", "train_on_smiles",
        "fit_prior_run",
    ),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "DEFAULT_MODEL",
    "BOConfig",
    "CampaignResult",
    "Checkpoint",
    "CheckpointError",
    "DataError",
    "DropReport",
    "EncodeResult",
    "EvaluateConfig",
    "EvaluationResult",
    "FilterConfig",
    "FinetuneConfig",
    "GradientConfig",
    "GrammarConfig",
    "LatentCodec",
    "LatentPrior",
    "MolVAE",
    "Objective",
    "OptimizeRunConfig",
    "PriorConfig",
    "ScoreResult",
    "SmilesGrammar",
    "TrainConfig",
    "TrainResult",
    "TrainRunConfig",
    "TrainingDiverged",
    "TrainingDomain",
    "VAEConfig",
    "Vocab",
    "__version__",
    "available_objectives",
    "cache_dir",
    "canonical",
    "compute_domain",
    "data_dir",
    "evaluate",
    "evaluate_model",
    "fetch_moses",
    "filter_smiles",
    "fit_prior",
    "fit_prior_run",
    "get_objective",
    "gradient_campaign",
    "is_valid",
    "load_campaign",
    "load_checkpoint",
    "load_smiles",
    "optimize",
    "parse",
    "property_table",
    "random_search",
    "read_latents",
    "read_smiles",
    "read_table",
    "resolve_model",
    "run_campaign",
    "save_checkpoint",
    "score_smiles",
    "token_cache",
    "tokenize",
    "train_on_smiles",
    "write_html_report",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'molvae' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from molvae.bo import (
        BOConfig,
        CampaignResult,
        GradientConfig,
        gradient_campaign,
        load_campaign,
        random_search,
        run_campaign,
        write_html_report,
        write_report,
    )
    from molvae.chem import (
        Objective,
        ScoreResult,
        available_objectives,
        canonical,
        get_objective,
        is_valid,
        parse,
        property_table,
        score_smiles,
    )
    from molvae.data import (
        DataError,
        DropReport,
        FilterConfig,
        Vocab,
        fetch_moses,
        filter_smiles,
        load_smiles,
        read_latents,
        read_smiles,
        read_table,
        token_cache,
        tokenize,
    )
    from molvae.evaluation import EvaluateConfig, EvaluationResult, evaluate
    from molvae.model import (
        Checkpoint,
        CheckpointError,
        EncodeResult,
        GrammarConfig,
        LatentCodec,
        LatentPrior,
        MolVAE,
        PriorConfig,
        SmilesGrammar,
        TrainingDomain,
        VAEConfig,
        compute_domain,
        fit_prior,
        load_checkpoint,
        save_checkpoint,
    )
    from molvae.resources import DEFAULT_MODEL, cache_dir, data_dir, resolve_model
    from molvae.runs import (
        OptimizeRunConfig,
        TrainRunConfig,
        evaluate_model,
        fit_prior_run,
        optimize,
        train_on_smiles,
    )
    from molvae.train import FinetuneConfig, TrainConfig, TrainingDiverged, TrainResult
