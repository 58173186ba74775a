"""The semi-supervised conditional VAE's parts (M2, Kingma et al. 2014; for molecules the SSVAE
of Kang & Cho 2019): q(y | x) over standardized properties, their prior p(y), and the weights a
conditional model starts from when it is fine-tuned from an unconditional one.

A conditional `~molvae.model.vae.MolVAE` (``condition_dim`` = p > 0) encodes a molecule into
properties y (``batch x p``, standardized: the `PropertyScale` in checkpoint meta "condition")
and a code z given them; its decoder reads the concatenation ``[z, y]`` wherever an
unconditional decoder reads z, so every decoding strategy runs on it unchanged. p(y) is
N(0, Sigma), Sigma the correlation matrix of the labelled training molecules' standardized
properties (a buffer in the state dict). Knows tensors only, no SMILES.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.model.property_head import PropertyScale, masked_mse
from molvae.model.vae_parts import VAEConfig, VAEOutput

META_KEY = "condition"  # checkpoint meta entry: names, mean, std of the conditioned properties
# the tensors whose input grows by p when a model becomes conditional (new columns start at 0,
# so the fine-tuned model starts as exactly the model it came from)
GROWN_INPUTS = ("mu_head.weight", "logvar_head.weight", "z_to_hidden.weight",
                "decoder_rnn.weight_ih_l0")  # fmt: skip


def condition_scale(meta: Mapping | None) -> PropertyScale | None:
    """The conditioned properties' names and standardization in checkpoint ``meta``, or None."""
    p = (meta or {}).get(META_KEY)
    return PropertyScale(list(p["names"]), list(p["mean"]), list(p["std"])) if p else None


def gaussian_nll(y: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise -log N(y; mean, exp(logvar)), same shapes in and out."""
    return 0.5 * (logvar + (y - mean).pow(2) / logvar.exp() + math.log(2 * math.pi))


def gaussian_entropy(logvar: Tensor) -> Tensor:
    """Elementwise entropy of N(., exp(logvar)) in nats."""
    return 0.5 * (logvar + math.log(2 * math.pi) + 1.0)


def prior_log_prob(y: Tensor, cov: Tensor) -> Tensor:
    """log N(y; 0, cov) per row: ``batch x p -> batch``."""
    dist = torch.distributions.MultivariateNormal(
        torch.zeros(cov.shape[0], dtype=y.dtype, device=y.device), cov.to(y)
    )
    return dist.log_prob(y)


def masked_nll(y: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """q(y | x)'s negative log-likelihood of the known (not NaN) entries of ``y``, averaged over
    them (0 when none is known): the prediction loss of the labelled molecules."""
    known = ~torch.isnan(y)
    if not bool(known.any()):
        return mean.sum() * 0.0
    nll = gaussian_nll(y.nan_to_num(0.0), mean, logvar)
    return nll[known].mean()


def y_term(y: Tensor, known: Tensor, logvar: Tensor, cov: Tensor) -> Tensor:
    """Per molecule, the part of the negative ELBO that is about y: -log p(y) - H(q(y_u | x)),
    where y holds the labels where ``known`` and a draw from q(y | x) elsewhere (u): ``batch``.
    A fully labelled molecule's term is -log p(y), a constant of the parameters."""
    entropy = (gaussian_entropy(logvar) * (~known)).sum(dim=-1)
    return -prior_log_prob(y, cov) - entropy


def conditional_prior(
    cov: Tensor, given: Mapping[int, float] | None, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """``n x p`` draws of standardized y from p(y) = N(0, cov) given the entries ``given``
    (index -> standardized value): those are fixed, the others are drawn from their Gaussian
    conditional on them."""
    p = cov.shape[0]
    cov = cov.double().cpu()
    given = dict(given or {})
    a = sorted(given)
    b = [i for i in range(p) if i not in given]
    y = torch.zeros(n, p, dtype=torch.float64)
    if a:
        y[:, a] = torch.tensor([given[i] for i in a], dtype=torch.float64)
    if b:
        mean_b = torch.zeros(len(b), dtype=torch.float64)
        cov_b = cov[b][:, b]
        if a:
            gain = cov[b][:, a] @ torch.linalg.inv(cov[a][:, a])
            mean_b = gain @ y[0, a]
            cov_b = cov_b - gain @ cov[a][:, b]
        chol = torch.linalg.cholesky(cov_b + 1e-9 * torch.eye(len(b), dtype=torch.float64))
        eps = torch.randn(n, len(b), generator=generator, dtype=torch.float64)
        y[:, b] = mean_b + eps @ chol.T
    return y.float()


def standardized(scale: PropertyScale, condition: Mapping[str, float]) -> dict[int, float]:
    """``{name: value in units}`` -> ``{index: standardized value}``; an unknown name is a
    ``ValueError`` that lists the model's properties."""
    out = {}
    for name, value in condition.items():
        j = index_of(scale, name)
        out[j] = (float(value) - scale.mean[j]) / scale.std[j]
    return out


def index_of(scale: PropertyScale, name: str) -> int:
    """The column of property ``name``; a ``ValueError`` listing the model's properties if it
    is not one of them."""
    if name not in scale.names:
        raise ValueError(f"this model is conditioned on {', '.join(scale.names)}; not on {name!r}")
    return scale.names.index(name)


def grow_inputs(state: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An unconditional model's weights made to fit a conditional model's ``own`` state: the
    input matrices of `GROWN_INPUTS` get zero columns for the p new inputs (y comes last in
    each input: ``[h, y]``, ``[z, y]``, ``[embedding, z, y]``), so the conditional model
    computes exactly what the unconditional one did."""
    out = dict(state)
    for key in GROWN_INPUTS:
        if key in state and key in own and state[key].shape != own[key].shape:
            old, new = state[key], own[key]
            extra = new.shape[1] - old.shape[1]
            if new.shape[0] != old.shape[0] or extra <= 0:
                continue  # a true size clash: the caller reports it
            out[key] = torch.cat([old, old.new_zeros(old.shape[0], extra)], dim=1)
    return out


def label_names(scale: PropertyScale | None) -> Sequence[str]:
    """The conditioned properties' names (empty for an unconditional model)."""
    return list(scale.names) if scale is not None else []


def forward(model: nn.Module, x: Tensor, lengths: Tensor, props: Tensor | None) -> VAEOutput:
    """A conditional `~molvae.model.vae.MolVAE`'s loss parts (its ``forward``): unknown labels
    (NaN, or all without ``props``) drawn from q(y|x) in training, its mean in eval mode;
    ``prop_loss`` q(y|x)'s negative log-likelihood of the known labels, ``y_term`` the y part
    of the negative ELBO."""
    h = model.summary(x, lengths)
    y_mu, y_logvar = model.y_posterior(h)
    y_draw = model.reparameterize(y_mu, y_logvar) if model.training else y_mu
    props = torch.full_like(y_mu, float("nan")) if props is None else props.float()
    known = ~torch.isnan(props)
    y = torch.where(known, props.nan_to_num(0.0), y_draw)
    mu, logvar = model.z_posterior(h, y)
    z = model.reparameterize(mu, logvar) if model.training else mu
    code = torch.cat([z, y.to(z.dtype)], dim=-1)
    out = model.reconstruction(x, lengths, code, mu, logvar)
    out.z, out.code = z, code
    out.prop_loss = masked_nll(props, y_mu, y_logvar)
    out.y_term = y_term(y, known, y_logvar, model.y_prior_cov).mean()
    # the adversary judges z's head alone: through the shared encoder it would also take the
    # properties out of h, which q(y|x) reads (measured: q(y|x)'s loss rose sevenfold)
    mu_adv, _ = model.z_posterior(h.detach(), y.detach())
    # it is asked for every molecule's properties: the labels where known, q(y|x)'s mean
    # elsewhere, so that a few labels a batch still give it a batch's worth of signal
    target = torch.where(known, props, y_mu.detach().to(props.dtype))
    out.adv_fit, out.adv_fool = adversary_losses(model.z_adversary, mu_adv.float(), target)
    return out


def adversary_losses(adversary: nn.Module, mu: Tensor, props: Tensor) -> tuple[Tensor, Tensor]:
    """The z adversary's mean squared error on the known labels (standardized: 1 is a constant
    guess): as it learns (``mu`` detached) and as the encoder is judged by it (its weights
    detached). Training minimizes the first and maximizes the second up to 1 (Lample et al.
    2017, Fader networks): z then carries no more about y than a guess, so the decoder must read
    the properties from y. Both 0 (in the graph) when ``props`` holds no value."""
    if not bool((~torch.isnan(props)).any()):
        zero = mu.sum() * 0.0
        return zero, zero
    fit = masked_mse(adversary(mu.detach()), props)
    fool = masked_mse(frozen_call(adversary, mu), props)
    return fit, fool


def y_mlp(in_dim: int, hidden: int, p: int, zero_output: bool = True) -> nn.Sequential:
    """The nonlinear part of q(y|x)'s mean (``VAEConfig.y_hidden``), ``batch x in_dim -> batch
    x p``: QED is a product of desirabilities of what the encoder's summary holds nearly
    linearly. Its output layer starts at 0 (``zero_output``), so q(y|x) starts as its linear
    part; `molvae.train.probe` fits one from torch's default start instead."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, p))
    if zero_output:
        nn.init.zeros_(net[2].weight)
        nn.init.zeros_(net[2].bias)
    return net


class KernelReader(nn.Module):
    """The kernel part of q(y|x)'s mean (``VAEConfig.y_kernel``): per property j,
    ``sum_i w_ij exp(-|u(h) - c_i|^2 / (2 l_j^2))`` over ``m`` inducing summaries ``c_i``, where
    ``u(h)`` is the encoder summary ``h`` standardized (``batch x in_dim -> batch x p``).

    A Gaussian-process read of the summary at a fixed size (subset of regressors, Smola &
    Bartlett 2001), fitted together with q(y|x)'s linear part in closed form by the probe
    (`molvae.train.probe.fit_kernel_reader`): with 2,375 labels it read QED better than a
    ridge fit or an MLP (docs/benchmarks/conditional.md). Everything but ``weight`` is a
    buffer the probe sets; ``weight`` starts at 0, so a fresh reader adds nothing."""

    def __init__(self, in_dim: int, m: int, p: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.register_buffer("inducing", torch.zeros(m, in_dim))
        self.register_buffer("lengthscale", torch.full((p,), math.sqrt(in_dim)))
        self.weight = nn.Parameter(torch.zeros(m, p))

    def features(self, h: Tensor) -> Tensor:
        """Squared distances of the standardized summaries to the inducing ones, ``batch x m``."""
        u = (h.float() - self.center) / self.scale
        return torch.cdist(u, self.inducing).pow(2)

    def forward(self, h: Tensor) -> Tensor:
        d2 = self.features(h)
        k = torch.exp(-d2.unsqueeze(-1) / (2 * self.lengthscale.pow(2)))  # batch x m x p
        return (k * self.weight).sum(dim=1)


def nonlinear_parts(config: VAEConfig) -> tuple[nn.Sequential | None, KernelReader | None]:
    """A conditional model's q(y|x) parts beyond its linear read: the MLP (``y_hidden``) and the
    kernel reader (``y_kernel``), None where the config has none."""
    p, width = config.condition_dim, 2 * config.enc_hidden
    mlp = y_mlp(width, config.y_hidden, p) if p and config.y_hidden else None
    return mlp, KernelReader(width, config.y_kernel, p) if p and config.y_kernel else None


def y_parts(model: nn.Module) -> list[nn.Module]:
    """The parts ``model``'s q(y|x) mean adds to its linear read of the summary."""
    return [m for m in (model.y_mlp, model.y_kernel) if m is not None]


def frozen_call(module: nn.Module, *args: object) -> object:
    """``module(*args)`` with its weights detached: the gradient of the result reaches the
    inputs only, so a loss on it trains what made them and never ``module`` itself."""
    weights = {k: v.detach() for k, v in module.named_parameters()}
    return torch.func.functional_call(module, weights, args)


def frozen_y_mean(model: nn.Module, emb: Tensor, lengths: Tensor) -> Tensor:
    """q(y|x)'s mean read from embedded inputs ``batch x T x emb`` (soft token sequences
    allowed) with the encoder and q(y|x) frozen: gradients reach ``emb`` only, so a loss on the
    result trains whatever made ``emb`` and never teaches q(y|x) to read it differently."""
    packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
    _, h = frozen_call(model.encoder_rnn, packed)
    h = torch.cat([h[-2], h[-1]], dim=-1)
    mean = frozen_call(model.y_head, h).float()[:, : model.config.condition_dim]
    return mean + sum(frozen_call(part, h).float() for part in y_parts(model))


def asked_properties(y: Tensor, edit_fraction: float = 0.0, edit_range: float = 2.5) -> Tensor:
    """What the consistency loss asks the decoder for, ``batch x properties`` (standardized): the
    batch's y rolled by one row, another molecule's real combination of properties. With
    ``edit_fraction`` > 0 that share of the rows keeps its own y with one property, chosen at
    random, moved by U(-``edit_range``, ``edit_range``) standard deviations (to at most ±3): the
    edit `molvae edit` makes, and the properties' tails, which few molecules' y reach."""
    asked = y.detach().roll(1, dims=0)
    if edit_fraction <= 0:
        return asked
    b, p = y.shape
    rows = torch.rand(b, device=y.device) < edit_fraction
    col = torch.randint(p, (b,), device=y.device)
    delta = (torch.rand(b, device=y.device) * 2 - 1) * edit_range
    edited = y.detach().clone()
    at = (torch.arange(b, device=y.device), col)
    edited[at] = (edited[at] + delta.to(y.dtype)).clamp(-3.0, 3.0)
    return torch.where(rows[:, None], edited, asked)


def consistency_loss(
    model: nn.Module,
    x: Tensor,
    lengths: Tensor,
    z: Tensor,
    y: Tensor,
    temperature: float = 1.0,
    edit_fraction: float = 0.0,
    edit_range: float = 2.5,
) -> Tensor:
    """The decoder's price for ignoring y (Hu et al. 2017, "Toward controlled generation of
    text"): x ``batch x length`` is decoded, teacher-forced, from its own z and other properties
    (`asked_properties`: another molecule's y, or with ``edit_fraction`` its own y with one
    property moved); the frozen q(y|x) reads the softmax outputs as soft tokens, and the loss
    is its squared error to the asked-for y, standardized, mean over the batch and properties.
    Only the decoder learns from it. Without it a decoder fine-tuned from an unconditional one
    keeps reading the properties from z, which already holds them (measured: setting y's logP
    to 1 or 5 moved decoded molecules' mean logP by 0.04)."""
    asked = asked_properties(y, edit_fraction, edit_range)
    logits = model.decoder_logits(x[:, :-1], lengths - 1, torch.cat([z, asked.to(z.dtype)], -1))
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # batch x (length-1) x vocab
    table = model.embedding.weight.detach().float()
    emb = torch.cat([table[x[:, :1]], probs @ table], dim=1)  # bos, then the soft tokens
    return (frozen_y_mean(model, emb, lengths) - asked.float()).pow(2).mean()
