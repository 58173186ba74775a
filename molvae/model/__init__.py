"""The model stage: the SMILES VAE, its decoding, its checkpoint file, and `LatentCodec`, the
SMILES <-> latent bridge everything downstream uses.

Owns: `VAEConfig`/`MolVAE` (bi-GRU encoder, GRU decoder, optional property head), decoding
(greedy, sampled, beam, and grammar-constrained through `molvae.grammar`, whose
`SmilesGrammar` it re-exports), the checkpoint format, device choice, `LatentCodec`. Imports
only `molvae.chem`, `molvae.data`, `molvae.grammar`, `molvae.io`; must not import
`train`, `evaluation`, `bo`, `runs` or `cli`, and reads no file but a checkpoint.
"""

from molvae.grammar import GrammarConfig, SmilesGrammar
from molvae.model.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    add_to_checkpoint,
    load_checkpoint,
    save_checkpoint,
    versions,
)
from molvae.model.codec import EncodeResult, LatentCodec, ToOrder
from molvae.model.decoding import TokenConstraint
from molvae.model.device import autocast, fast_bf16, resolve_device
from molvae.model.domain import TrainingDomain, compute_domain, domain_summary
from molvae.model.prior import LatentPrior, PriorConfig, fit_prior
from molvae.model.vae import MolVAE, VAEConfig, VAEOutput, kl_divergence

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "EncodeResult",
    "GrammarConfig",
    "LatentCodec",
    "LatentPrior",
    "MolVAE",
    "PriorConfig",
    "SmilesGrammar",
    "ToOrder",
    "TokenConstraint",
    "TrainingDomain",
    "VAEConfig",
    "VAEOutput",
    "add_to_checkpoint",
    "autocast",
    "compute_domain",
    "domain_summary",
    "fast_bf16",
    "fit_prior",
    "kl_divergence",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "versions",
]
