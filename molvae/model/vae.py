"""The SMILES character VAE: bidirectional GRU encoder, GRU decoder conditioned on z.

Knows token ids, not SMILES; no training loop, no files, no RDKit. Runs unchanged on CPU and CUDA.
The decoding strategies live in `molvae.model.decoding`; `MolVAE.decode` chooses one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.model import conditional as cond
from molvae.model import decoding
from molvae.model.decoding import TokenConstraint
from molvae.model.device import autocast
from molvae.model.gru import gru_final_states, gru_layers
from molvae.model.property_head import PropertyScale, masked_mse
from molvae.model.vae_parts import (  # noqa: F401 (VAEConfig and the rest are imported from here)
    ModelWeights,
    VAEConfig,
    VAEOutput,
    kl_divergence,
    kl_per_dim,
)


class MolVAE(nn.Module):
    """GRU VAE over token ids (Gomez-Bombarelli style with a recurrent encoder)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = config
        self.config = c
        self.embedding = nn.Embedding(c.vocab_size, c.emb_dim, padding_idx=c.pad_id)
        self.encoder_rnn = nn.GRU(
            c.emb_dim, c.enc_hidden, num_layers=c.enc_layers, batch_first=True, bidirectional=True
        )
        p = c.condition_dim
        if p and c.property_dim:
            raise ValueError("a conditional model predicts its properties with q(y|x): "
                             "property_dim must be 0 when condition_dim > 0")  # fmt: skip
        self.mu_head = nn.Linear(2 * c.enc_hidden + p, c.latent_dim)
        self.logvar_head = nn.Linear(2 * c.enc_hidden + p, c.latent_dim)
        self.z_to_hidden = nn.Linear(c.latent_dim + p, c.dec_layers * c.dec_hidden)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.decoder_rnn = nn.GRU(
            c.emb_dim + c.latent_dim + p,
            c.dec_hidden,
            num_layers=c.dec_layers,
            batch_first=True,
            dropout=c.dropout if c.dec_layers > 1 else 0.0,
        )
        self.out = nn.Linear(c.dec_hidden, c.vocab_size)
        self.prop_head: nn.Module | None = None
        self.property_scale: PropertyScale | None = None  # set from checkpoint meta
        self.condition_scale: PropertyScale | None = None  # conditional: meta["condition"]
        self.y_head: nn.Module | None = None
        # q(y|x)'s MLP or kernel part (y_hidden, y_kernel), each adding 0 until fitted
        self.y_mlp, self.y_kernel = cond.nonlinear_parts(c)
        if p:
            # q(y|x): mean and log-variance of each standardized property, linear in the
            # encoder's summary (so a ridge fit can start it: `molvae.train.probe`)
            self.y_head = nn.Linear(2 * c.enc_hidden, 2 * p)
            # p(y) = N(0, Sigma): the labelled training molecules' correlations (set by training)
            self.register_buffer("y_prior_cov", torch.eye(p))
            # training only: predicts y from z's mean, so the encoder learns to leave the
            # properties out of z and the decoder to take them from y (Fader networks)
            self.z_adversary = nn.Sequential(
                nn.Linear(c.latent_dim, 128), nn.ReLU(), nn.Linear(128, p)
            )
        # teacher-forced passes through `molvae.model.gru` (the trainer sets it on the CPU);
        # under bf16 autocast only with fused_bf16, else the nn.GRU kernels run there
        self.fused_rnn = self.fused_bf16 = False
        if c.property_dim > 0:
            self.prop_head = nn.Sequential(
                nn.Linear(c.latent_dim, 128), nn.ReLU(), nn.Linear(128, c.property_dim)
            )

    @classmethod
    def from_checkpoint(
        cls, checkpoint: ModelWeights, device: torch.device | str = "cpu"
    ) -> MolVAE:
        """The model a loaded `~molvae.model.checkpoint.Checkpoint` describes, on ``device``, in
        eval mode."""
        model = cls(checkpoint.config)
        model.load_state_dict(checkpoint.state_dict)
        model.property_scale = PropertyScale.from_meta(checkpoint.meta)
        model.condition_scale = cond.condition_scale(checkpoint.meta)
        return model.to(device).eval()

    @property
    def code_dim(self) -> int:
        """What the decoder reads: ``latent_dim``, plus ``condition_dim`` for a conditional
        model (``[z, y]``)."""
        return self.config.latent_dim + self.config.condition_dim

    # ----------------------------------------------------------------- encoder
    def encode(self, x: Tensor, lengths: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x ``batch x length`` lengths ``batch`` -> mu, logvar ``batch x d`` of q(z|x).

        The encoder sees the full sequence; its summary is the last layer's final fwd/bwd states.
        A conditional model's q(z|x,y) is given ``y`` (``batch x p``, standardized; NaN entries
        and a missing ``y`` take q(y|x)'s mean).
        """
        h = self.summary(x, lengths)
        if self.y_head is not None:
            y_mu, _ = self.y_posterior(h)
            y = y_mu if y is None else torch.where(torch.isnan(y), y_mu, y.to(y_mu))
            return self.z_posterior(h, y)
        return self.mu_head(h), self.logvar_head(h)

    def summary(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The encoder's summary of x: last layer's final forward and backward states,
        ``batch x 2 enc_hidden``."""
        if self._fused(x) and self.config.enc_layers == 1:
            return gru_final_states(self.encoder_rnn, self.embedding(x.t()), lengths)
        emb = self.embedding(x)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.encoder_rnn(packed)  # (layers*2) x batch x enc_hidden
        return torch.cat([h[-2], h[-1]], dim=-1)

    def y_posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """q(y|x) of a conditional model from the encoder summary: mean, log-variance
        ``batch x p`` (standardized units; the log-variance is clamped to [-10, 5])."""
        if self.y_head is None:
            raise ValueError("this model is not conditional (condition_dim=0)")
        out = self.y_head(h).float()
        p = self.config.condition_dim
        mean = out[:, :p] + sum(part(h).float() for part in cond.y_parts(self))
        return mean, out[:, p:].clamp(-10.0, 5.0)

    def z_posterior(self, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z|x) (or a conditional model's q(z|x,y)) from the encoder summary ``h``."""
        if self.y_head is not None:
            h = torch.cat([h, y.to(h.dtype)], dim=-1)
        return self.mu_head(h), self.logvar_head(h)

    def encode_code(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """What a codec calls a molecule's latent: the posterior mean and log-variance of the
        decoder's input, ``batch x code_dim`` (z's; a conditional model's ``[z, y]`` with y
        q(y|x)'s mean and z q(z|x,y)'s given it)."""
        h = self.summary(x, lengths)
        if self.y_head is None:
            return self.mu_head(h), self.logvar_head(h)
        y_mu, y_logvar = self.y_posterior(h)
        mu, logvar = self.z_posterior(h, y_mu)
        return (torch.cat([mu.float(), y_mu], dim=-1),
                torch.cat([logvar.float(), y_logvar], dim=-1))  # fmt: skip

    def reparameterize(
        self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + sigma * eps, ``batch x d``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    # ----------------------------------------------------------------- decoder
    def init_hidden(self, z: Tensor) -> Tensor:
        """z ``batch x d`` -> decoder initial state ``dec_layers x batch x dec_hidden``."""
        c = self.config
        h = torch.tanh(self.z_to_hidden(z)).view(z.shape[0], c.dec_layers, c.dec_hidden)
        return h.transpose(0, 1).contiguous()

    def step_input(self, tokens: Tensor, z: Tensor) -> Tensor:
        """tokens ``batch x T``, z ``batch x d`` -> ``batch x T x (emb+d)``."""
        emb = self.emb_dropout(self.embedding(tokens))
        return torch.cat([emb, z.unsqueeze(1).expand(-1, tokens.shape[1], -1).to(emb.dtype)], -1)

    def decoder_logits(self, x_in: Tensor, lengths: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits ``batch x T x vocab`` for inputs x_in ``batch x T``.

        The GRU runs over the padded batch rather than a packed one: positions past a row's
        length only produce logits for pad targets, which the loss ignores, and the unpacked
        kernels compute every step's input projection in one matrix product. With length-bucketed
        batches (a few % padding) that is about 2x faster on the CPU than the packed path.
        ``lengths`` is therefore unused; it stays in the signature to mirror `encode`. With
        ``fused_rnn`` the same GRU runs through `molvae.model.gru` (z's input projection once
        per molecule rather than once per step).
        """
        if self._fused(x_in):
            emb = self.emb_dropout(self.embedding(x_in.t()))  # T x B x emb
            h0 = self.init_hidden(z).to(emb.dtype)
            out = gru_layers(self.decoder_rnn, emb, h0, z.to(emb.dtype), self.training)
            return self.out(out).transpose(0, 1)
        inp = self.step_input(x_in, z)
        out, _ = self.decoder_rnn(inp, self.init_hidden(z).to(inp.dtype))
        return self.out(out)

    def _fused(self, x: Tensor) -> bool:
        return self.fused_rnn and (self.fused_bf16 or not torch.is_autocast_enabled(x.device.type))

    def forward(self, x: Tensor, lengths: Tensor, props: Tensor | None = None) -> VAEOutput:
        """Loss parts for x ``batch x length`` (bos..eos, padded), optional props ``batch x p``.

        For a conditional model ``props`` are the standardized labels (NaN = unlabelled):
        ``prop_loss`` is q(y|x)'s negative log-likelihood of the known labels and ``y_term``
        the y part of the negative ELBO (`molvae.model.conditional.y_term`); unknown labels are
        drawn from q(y|x) in training and take its mean in eval mode."""
        if self.y_head is not None:
            return cond.forward(self, x, lengths, props)
        mu, logvar = self.encode(x, lengths)
        z = self.reparameterize(mu, logvar) if self.training else mu
        out = self.reconstruction(x, lengths, z, mu, logvar)
        if self.prop_head is not None and props is not None:
            out.prop_loss = masked_mse(self.prop_head(mu).float(), props.float())
        return out

    def reconstruction(
        self, x: Tensor, lengths: Tensor, code: Tensor, mu: Tensor, logvar: Tensor
    ) -> VAEOutput:
        """Teacher-forced loss parts of decoding x from ``code`` (z, or [z, y])."""
        x_in, target = x[:, :-1], x[:, 1:]
        logits = self.decoder_logits(x_in, lengths - 1, code)
        pad = self.config.pad_id
        ce = F.cross_entropy(  # batch x (length-1)
            logits.float().transpose(1, 2), target, ignore_index=pad, reduction="none"
        )
        recon = ce.sum(dim=1).mean()
        kl_dims = kl_per_dim(mu.float(), logvar.float()).mean(dim=0)
        kl = kl_dims.sum()
        prop_loss = torch.zeros((), device=x.device)
        with torch.no_grad():
            mask = target != self.config.pad_id
            n_correct = ((logits.argmax(-1) == target) & mask).sum()
            n_tokens = mask.sum()
        return VAEOutput(recon, kl, prop_loss, logits, mu, logvar, code, n_correct, n_tokens,
                         kl_dims, code=code)  # fmt: skip

    def predict_properties(self, mu: Tensor, units: bool = True) -> Tensor:
        """Property head on ``batch x d`` latents -> ``batch x property_dim``, in the properties'
        own units when the model knows its `PropertyScale` (``property_scale``, from the
        checkpoint; names in ``property_scale.names``), else (or with ``units=False``) the
        standardized values the head was trained on."""
        if self.prop_head is None:
            raise ValueError("this model has no property head (property_dim=0)")
        y = self.prop_head(mu)
        if units and self.property_scale is not None:
            y = self.property_scale.to_units(y)
        return y

    def sample_prior(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n x latent_dim`` standard-normal latents (drawn on the generator's device)."""
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=gen_device)
        return z.to(device) if device is not None else z

    @torch.no_grad()
    def decode(
        self,
        z: Tensor,
        strategy: str = "greedy",
        temperature: float = 1.0,
        beam_width: int = 5,
        max_len: int | None = None,
        generator: torch.Generator | None = None,
        amp: bool = True,
        constraint: TokenConstraint | None = None,
        backtrack: int = 32,
        min_mass: float = 0.0,
    ) -> Tensor:
        """z ``batch x d`` -> ids ``batch x T`` without bos; each row is tokens, eos, then pad.

        Decodes one GRU step at a time with the hidden state cached. A row that emits eos leaves
        the batch, so the cost follows the mean length rather than the longest row, and decoding
        stops once every row has ended (or after ``max_len`` tokens; such rows carry no eos).
        ``beam`` ranks beams by plain (not length-normalised) summed log-probability and returns
        the best finished beam. ``amp`` runs the GRU in bf16 where that is fast
        (`molvae.model.device.fast_bf16`: CUDA, or a CPU with AMX/AVX512-BF16), as training does.

        With a ``constraint``, greedy and sampled decoding only emit tokens it allows: a refused
        token is removed from the step's distribution, which is renormalised (greedy takes the
        best allowed token). A step whose allowed tokens hold no more than ``min_mass`` of the
        model's probability is a dead end: the previous token is undone and chosen again, up to
        ``backtrack`` tokens deep. Some errors only show once the next atom is written (an
        aromatic ring that cannot be kekulized), and a prefix the model itself finds nearly
        impossible to continue is better undone than forced on. A row that finds no way out
        within ``4 * max_len`` refusals is returned as it stands: tokens then pad, no eos.
        ``beam`` ignores the constraint.
        """
        max_len = max_len or self.config.max_len
        device = next(self.parameters()).device
        z = z.to(device, torch.float32)
        with autocast(device, amp):
            if strategy == "beam":
                return decoding.decode_beam(self, z, beam_width, max_len)
            if strategy not in ("greedy", "sample"):
                raise ValueError(f"unknown decode strategy {strategy!r}")
            if constraint is not None:
                return decoding.decode_constrained(
                    self, z, strategy, temperature, max_len, generator, constraint, backtrack,
                    min_mass,
                )  # fmt: skip
            return decoding.decode_rows(self, z, strategy, temperature, max_len, generator)
