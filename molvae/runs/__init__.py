"""End-to-end runs composed from the stages: train on a SMILES file, evaluate a model, optimize.

The CLI and `pipelines/` are thin layers over these functions; each run writes its resolved
configuration next to its outputs. This is the one place that wires every stage together, so it
may import all of them; no stage imports it.
"""

from molvae.resources import DEFAULT_MODEL, resolve_model
from molvae.runs.callables import CampaignCallables, campaign_callables
from molvae.runs.common import environment
from molvae.runs.evaluating import evaluate_model
from molvae.runs.optimizing import OptimizeRunConfig, optimize
from molvae.runs.priors import FitPriorResult, fit_prior_run
from molvae.runs.training import TrainRunConfig, train_on_smiles

__all__ = [
    "DEFAULT_MODEL",
    "CampaignCallables",
    "FitPriorResult",
    "OptimizeRunConfig",
    "TrainRunConfig",
    "campaign_callables",
    "environment",
    "evaluate_model",
    "fit_prior_run",
    "optimize",
    "resolve_model",
    "train_on_smiles",
]
