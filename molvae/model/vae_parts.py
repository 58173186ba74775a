"""The model's plain parts: its architecture (`VAEConfig`), what a forward pass returns
(`VAEOutput`), the Gaussian KL, and the `ModelWeights` a model is loaded from. Re-exported by
`molvae.model.vae`, whose `MolVAE` uses them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from torch import Tensor


class ModelWeights(Protocol):
    """What `MolVAE.from_checkpoint` reads: a loaded `molvae.model.checkpoint.Checkpoint` (a
    Protocol, so the model need not import the checkpoint format that imports it)."""

    config: VAEConfig
    state_dict: dict[str, Tensor]
    meta: dict[str, Any]


# a new conditional model's kernel reader (``y_kernel``): it read QED better than the linear
# q(y|x) at 5% and 100% labels; 4,096 inducing molecules make it the exact GP up to 4,096 labels
# and read QED better than 1,024 with 20,000 (docs/benchmarks/conditional.md), for 6.3 MB more
# checkpoint at a 384-wide summary
DEFAULT_Y_KERNEL = 4096


@dataclass
class VAEConfig:
    """Architecture of :class:`MolVAE` (primitives only, so it round-trips through JSON)."""

    vocab_size: int
    emb_dim: int = 64
    enc_hidden: int = 256  # per direction; the encoder GRU is bidirectional
    enc_layers: int = 1
    latent_dim: int = 56
    dec_hidden: int = 512
    dec_layers: int = 3
    dropout: float = 0.0  # between decoder GRU layers and on decoder embeddings, training only
    max_len: int = 100  # maximum generated tokens, eos included
    property_dim: int = 0  # >0 adds an MLP head predicting properties from mu
    # >0: a semi-supervised conditional VAE (`molvae.model.conditional`) over this many
    # standardized properties y: q(y|x), q(z|x,y), p(x|y,z); the decoder reads [z, y]
    condition_dim: int = 0
    # conditional models: >0 adds to q(y|x)'s mean, linear in the encoder's summary, a
    # one-hidden-layer MLP of this width (its output starts at 0; `molvae.train.probe` fits it)
    y_hidden: int = 0
    # conditional models: >0 adds to q(y|x)'s mean a kernel read of the summary through this
    # many inducing summaries (`molvae.model.conditional.KernelReader`; the probe fits it)
    y_kernel: int = 0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
        if self.y_hidden < 0 or self.y_kernel < 0:
            raise ValueError("y_hidden and y_kernel must be >= 0")
        if self.y_hidden and self.y_kernel:
            raise ValueError("q(y|x) takes an MLP part (y_hidden) or a kernel part (y_kernel), "
                             "not both")  # fmt: skip

    def to_dict(self) -> dict:
        """Plain dict of primitives."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown VAEConfig fields: {sorted(unknown)}")
        return cls(**d)


@dataclass
class VAEOutput:
    """Loss parts and tensors of one forward pass (losses are scalars, means over the batch)."""

    recon: Tensor  # cross-entropy summed over the non-pad target tokens, mean over molecules
    kl: Tensor  # KL(q(z|x) || N(0, I)) summed over latent dims, mean over molecules
    prop_loss: Tensor  # MSE of the property head (0 without head or props)
    logits: Tensor  # batch x (length-1) x vocab
    mu: Tensor  # batch x latent_dim
    logvar: Tensor  # batch x latent_dim
    z: Tensor  # batch x latent_dim
    n_correct: Tensor  # teacher-forced argmax hits over non-pad targets (scalar, no grad)
    n_tokens: Tensor  # number of non-pad targets (scalar)
    kl_dims: Tensor | None = None  # latent_dim: each dimension's KL, mean over molecules
    # conditional models: what the decoder read, [z, y] (batch x (latent_dim + condition_dim);
    # z itself without), and the y part of the negative ELBO, mean over molecules (0 without)
    code: Tensor | None = None
    y_term: Tensor | None = None
    # conditional models in training: the adversary's error predicting the known labels from
    # mu, as it learns (adv_fit) and as the encoder is judged by it (adv_fool, weights frozen)
    adv_fit: Tensor | None = None
    adv_fool: Tensor | None = None
    # conditional models with a consistency weight: `molvae.model.conditional.consistency_loss`
    consistency: Tensor | None = None


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per row: ``batch x d -> batch``."""
    return kl_per_dim(mu, logvar).sum(dim=-1)


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL of each latent dimension: ``batch x d -> batch x d``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
