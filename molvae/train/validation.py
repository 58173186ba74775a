"""The per-epoch validation pass: loss parts, token accuracy, greedy reconstruction and the
number of active latent units."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from molvae.data.batching import collate
from molvae.model import MolVAE
from molvae.model.device import autocast
from molvae.train.config import TrainConfig

# Burda et al. 2016: a latent dimension is active when the variance over the data of its
# posterior mean exceeds this.
ACTIVE_UNIT_VARIANCE = 0.01


@torch.no_grad()
def evaluate(
    model: MolVAE,
    ids: Sequence[np.ndarray],
    config: TrainConfig,
    device: torch.device,
    props: np.ndarray | None = None,
) -> dict[str, float]:
    """Validation loss parts (z = mu), teacher-forced token accuracy, the fraction of the first
    ``val_recon_samples`` molecules whose greedy decode from mu equals the input ids exactly, and
    ``active_units``: latent dimensions whose posterior mean varies over the set by more than
    0.01 (Burda et al. 2016)."""
    model.eval()
    sums = {"recon": 0.0, "kl": 0.0, "prop": 0.0}
    n = correct = tokens = exact = n_exact = 0
    mus = []
    bs = config.val_batch_size
    for start in range(0, len(ids), bs):
        x, lengths, idx = collate(ids, range(start, min(start + bs, len(ids))), model.config.pad_id)
        x = x.to(device)
        p = batch_props(props, idx, device)
        with autocast(device, config.amp):
            out = model(x, lengths, p)
        b = x.shape[0]
        sums["recon"] += float(out.recon) * b
        sums["kl"] += float(out.kl) * b
        sums["prop"] += float(out.prop_loss) * b
        if out.y_term is not None:
            sums["y_term"] = sums.get("y_term", 0.0) + float(out.y_term) * b
        n += b
        correct += int(out.n_correct)
        tokens += int(out.n_tokens)
        mus.append(out.mu.float().cpu())
        m = min(b, config.val_recon_samples - n_exact)
        if m > 0:
            code = out.code if out.code is not None else out.mu  # eval mode: means
            exact += _greedy_hits(model, code[:m], x[:m], lengths[:m], config, device)
            n_exact += m
    res = {k: v / max(n, 1) for k, v in sums.items()}
    res["loss"] = res["recon"] + config.beta_max * res["kl"] + config.prop_weight * res["prop"]
    if "y_term" in res:
        res["loss"] += config.beta_max * res["y_term"]
    res["token_acc"] = correct / max(tokens, 1)
    res["recon_acc"] = exact / max(n_exact, 1)
    res["active_units"] = active_units(torch.cat(mus)) if mus else 0
    return res


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_VARIANCE) -> int:
    """Dimensions of ``n x d`` posterior means whose variance over the rows exceeds
    ``threshold``."""
    if len(mu) < 2:
        return 0
    return int((mu.double().var(dim=0) > threshold).sum())


def _greedy_hits(
    model: MolVAE,
    mu: torch.Tensor,
    x: torch.Tensor,
    lengths: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
) -> int:
    """How many rows decode greedily from ``mu`` to exactly their ids ``x`` (bos dropped)."""
    with autocast(device, config.amp):
        gen = model.decode(mu.float(), "greedy").cpu()
    hits = 0
    for row in range(len(mu)):
        target = x[row, 1 : int(lengths[row])].cpu()
        hits += int(gen.shape[1] >= len(target) and torch.equal(gen[row, : len(target)], target))
    return hits


def batch_props(
    props: np.ndarray | None, idx: torch.Tensor, device: torch.device
) -> torch.Tensor | None:
    """The property rows of a batch's molecules (``batch x property_dim``), or None."""
    if props is None:
        return None
    return torch.as_tensor(np.asarray(props)[idx.numpy()], dtype=torch.float32).to(device)
