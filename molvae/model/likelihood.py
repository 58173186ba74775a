"""Held-out likelihood bounds of a `~molvae.model.vae.MolVAE`: the ELBO and the importance-
weighted bound (IWAE, Burda et al. 2015) from the same K draws of the encoder.

log p(x) >= IWAE_K = E[log (1/K) sum_k w_k] >= ELBO = E[log w_k], w_k = p(x, z_k) / q(z_k | x)
(a conditional model's y is drawn from q(y | x) too and counted in p and q). Both are estimated
from one set of K draws per molecule, so on every molecule the IWAE estimate is at least the
ELBO estimate (log-mean-exp >= mean). Tensors in, numbers out; the codec tokenizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from molvae.data.batching import PadCollate
from molvae.data.tokens import Vocab
from molvae.model import conditional as cond
from molvae.model.vae import MolVAE

MAX_ROWS = 2048  # molecule-draw rows in one teacher-forced pass


@dataclass
class LikelihoodBounds:
    """Per molecule bounds on log p(x) in nats (NaN where it could not be encoded)."""

    elbo: np.ndarray  # n: mean of the K log importance weights (beta = 1)
    iwae: np.ndarray  # n: log-mean-exp of the same K weights
    ok: np.ndarray  # n bool
    k: int

    def summary(self) -> dict[str, float]:
        """Means over the encodable molecules with their standard errors, and the gap."""
        e, w = self.elbo[self.ok], self.iwae[self.ok]
        n = len(e)
        sem = lambda v: float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan  # noqa: E731
        return {
            "n": n, "k": self.k,
            "elbo": float(e.mean()) if n else math.nan, "elbo_sem": sem(e),
            "iwae": float(w.mean()) if n else math.nan, "iwae_sem": sem(w),
            "gap": float((w - e).mean()) if n else math.nan,
        }  # fmt: skip


@torch.no_grad()
def importance_weights(
    model: MolVAE, x: Tensor, lengths: Tensor, k: int, generator: torch.Generator | None = None
) -> Tensor:
    """log importance weights ``batch x k`` of x under the model's own prior, N(0, I) for z
    (and p(y) for a conditional model, y unobserved): ``log p(x|z[,y]) + log p(z)[ + log
    p(y)] - log q(z|x[,y])[ - log q(y|x)]`` for k draws from the encoder. Their mean is a
    Monte-Carlo ELBO (beta = 1), their log-mean-exp the IWAE bound; both in nats per
    molecule. Dropout is as the model's mode leaves it (the caller sets eval)."""
    b = x.shape[0]
    xs, ls = x.repeat_interleave(k, 0), lengths.repeat_interleave(k, 0)
    h = model.summary(x, lengths).float().repeat_interleave(k, 0)
    log_w = torch.zeros(b * k, device=x.device)
    y = None
    if model.y_head is not None:
        y_mu, y_logvar = model.y_posterior(h)
        y = model.reparameterize(y_mu, y_logvar, generator)
        log_w += cond.prior_log_prob(y, model.y_prior_cov)
        log_w += cond.gaussian_nll(y, y_mu, y_logvar).sum(-1)  # - log q(y|x)
    mu, logvar = model.z_posterior(h, y)
    mu, logvar = mu.float(), logvar.float()
    z = model.reparameterize(mu, logvar, generator)
    log_w -= cond.gaussian_nll(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)  # log p(z)
    log_w += cond.gaussian_nll(z, mu, logvar).sum(-1)  # - log q(z|x,y)
    code = z if y is None else torch.cat([z, y], dim=-1)
    logits = model.decoder_logits(xs[:, :-1], ls - 1, code).float()
    ce = F.cross_entropy(logits.transpose(1, 2), xs[:, 1:], ignore_index=model.config.pad_id,
                         reduction="none")  # fmt: skip
    log_w -= ce.sum(dim=1)
    return log_w.view(b, k)


@torch.no_grad()
def log_weights(
    model: MolVAE, x: Tensor, lengths: Tensor, k: int, generator: torch.Generator | None = None
) -> Tensor:
    """``batch x k`` log importance weights (`importance_weights`), the K draws made in
    chunks so that a pass holds at most `MAX_ROWS` rows."""
    per = max(1, min(k, MAX_ROWS // max(1, x.shape[0])))
    parts, done = [], 0
    while done < k:
        m = min(per, k - done)
        parts.append(importance_weights(model, x, lengths, m, generator))
        done += m
    return torch.cat(parts, dim=1)


def bounds_from_weights(log_w: Tensor) -> tuple[Tensor, Tensor]:
    """``batch x k`` log weights -> (ELBO estimate, IWAE estimate), each ``batch``."""
    k = log_w.shape[1]
    return log_w.mean(dim=1), torch.logsumexp(log_w.double(), dim=1).float() - math.log(k)


@torch.no_grad()
def likelihood_bounds(
    model: MolVAE,
    vocab: Vocab,
    smiles: Sequence[str],
    ok: np.ndarray,
    k: int = 50,
    seed: int = 0,
    batch_size: int = 64,
) -> LikelihoodBounds:
    """The ELBO and IWAE bounds on log p(x) of each string where ``ok`` (encodable), in nats,
    from the same ``k`` encoder draws, under the model's training prior N(0, I) (and p(y) for a
    conditional model, y unobserved); NaN elsewhere. Dropout is off; seeded."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n, device = len(smiles), next(model.parameters()).device
    elbo, iwae = np.full(n, np.nan), np.full(n, np.nan)
    gen = torch.Generator(device=device).manual_seed(seed)
    collate = PadCollate(vocab.pad_id)
    rows = np.flatnonzero(ok)
    was_training = model.training
    model.eval()
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        x, lengths, _ = collate([(int(i), np.asarray(vocab.encode(smiles[i]))) for i in chunk])
        log_w = log_weights(model, x.to(device), lengths.to(device), k, gen)
        e, w = bounds_from_weights(log_w.float())
        elbo[chunk], iwae[chunk] = e.cpu().numpy(), w.cpu().numpy()
    model.train(was_training)
    return LikelihoodBounds(elbo, iwae, np.asarray(ok, dtype=bool), k)
