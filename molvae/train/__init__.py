"""The training stage: token-id arrays in, checkpoints and metrics out.

Owns `TrainConfig` (`config`), the training loop and its result (`loop`), one epoch's steps and
the checkpoints written in and after it (`epoch`), the KL and learning-rate schedules and the
free-bits KL term (`schedules`), the per-epoch validation pass with active units (`validation`),
the loop's state, seeding and exact resume at any step (`state`), the CPU execution settings
(`memory`), multi-process training under torchrun (`distributed`) and weighted fine-tuning
(`weighted`: weighted retraining of a BO campaign's model).

Imports only `molvae.io`, `molvae.resources`, `molvae.data` and `molvae.model`; must not import
`molvae.evaluation`, `molvae.bo`, `molvae.runs` or `molvae.cli`.
"""

from molvae.train.config import TrainConfig
from molvae.train.loop import TrainingDiverged, TrainResult, train
from molvae.train.schedules import kl_weight, lr_factor
from molvae.train.validation import evaluate
from molvae.train.weighted import FinetuneConfig, finetune, weighted_draw

__all__ = [
    "FinetuneConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "evaluate",
    "finetune",
    "kl_weight",
    "lr_factor",
    "train",
    "weighted_draw",
]
