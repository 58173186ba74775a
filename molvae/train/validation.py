"""The per-epoch validation pass: loss parts, token accuracy and greedy reconstruction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from molvae.data.batching import make_loader
from molvae.model import MolVAE
from molvae.model.device import autocast
from molvae.train.config import TrainConfig


@torch.no_grad()
def evaluate(
    model: MolVAE,
    ids: Sequence[np.ndarray],
    config: TrainConfig,
    device: torch.device,
    props: np.ndarray | None = None,
) -> dict[str, float]:
    """Validation loss parts (z = mu), teacher-forced token accuracy and the fraction of the first
    ``val_recon_samples`` molecules whose greedy decode from mu equals the input ids exactly."""
    model.eval()
    loader = make_loader(ids, config.val_batch_size, shuffle=False, pad_id=model.config.pad_id)
    sums = {"recon": 0.0, "kl": 0.0, "prop": 0.0}
    n = correct = tokens = exact = n_exact = 0
    for x, lengths, idx in loader:
        x = x.to(device)
        p = _props(props, idx, device)
        with autocast(device, config.amp):
            out = model(x, lengths, p)
        b = x.shape[0]
        sums["recon"] += float(out.recon) * b
        sums["kl"] += float(out.kl) * b
        sums["prop"] += float(out.prop_loss) * b
        n += b
        correct += int(out.n_correct)
        tokens += int(out.n_tokens)
        m = min(b, config.val_recon_samples - n_exact)
        if m > 0:
            with autocast(device, config.amp):
                gen = model.decode(out.mu[:m].float(), "greedy").cpu()
            for row in range(m):
                target = x[row, 1 : int(lengths[row])].cpu()
                hit = gen.shape[1] >= len(target) and torch.equal(gen[row, : len(target)], target)
                exact += int(hit)
            n_exact += m
    res = {k: v / max(n, 1) for k, v in sums.items()}
    res["loss"] = res["recon"] + config.beta_max * res["kl"] + config.prop_weight * res["prop"]
    res["token_acc"] = correct / max(tokens, 1)
    res["recon_acc"] = exact / max(n_exact, 1)
    return res


def _props(
    props: np.ndarray | None, idx: torch.Tensor, device: torch.device
) -> torch.Tensor | None:
    """The property rows of a batch's molecules (``batch x property_dim``), or None."""
    if props is None:
        return None
    return torch.as_tensor(np.asarray(props)[idx.numpy()], dtype=torch.float32).to(device)
