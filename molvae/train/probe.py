"""Linear probing before fine-tuning (LP-FT, Kumar et al. 2022) for a conditional model's q(y|x).

Fine-tuned from a trained encoder, q(y|x) starts fresh while everything it reads is already
good: a ridge regression on the encoder's summary of only 475 labelled ZINC molecules predicts
held-out logP with R² 0.90 (QED 0.51, SA 0.85, MW 0.86; the default model, measured), while
q(y|x) learned by gradient steps over two epochs of the same labels reached 0.49. So before the
first step its mean is set to that ridge fit (per property, on the molecules labelled for it,
the ridge penalty chosen by leave-one-out) and its log-variance to the fit's residual variance;
fine-tuning goes on from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from molvae.data.batching import collate

log = logging.getLogger(__name__)

MAX_MOLECULES = 20_000  # labelled molecules the probe is fitted on (a seeded choice)
ALPHAS = np.logspace(-3, 3, 13)


@torch.no_grad()
def probe_features(
    model: nn.Module, ids: Sequence[np.ndarray], rows: np.ndarray, device: torch.device
) -> np.ndarray:
    """The encoder summaries ``len(rows) x 2 enc_hidden`` of molecules ``rows`` (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(rows), 512):
        x, lengths, _ = collate(ids, rows[s : s + 512], model.config.pad_id)
        out.append(model.summary(x.to(device), lengths).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 2 * model.config.enc_hidden))


@torch.no_grad()
def probe_init(
    model: nn.Module,
    ids: Sequence[np.ndarray],
    props: np.ndarray,
    device: torch.device,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Set a conditional model's q(y|x) (a linear ``y_head``: mean rows, then log-variance
    rows) to ridge fits of the standardized labels ``props`` (``n x p``, NaN = unlabelled) on
    the encoder's summaries. Returns the chosen penalties and the fits' R² on their own
    molecules, per property (NaN where a property had fewer than 3 labels: left as it was)."""
    from sklearn.linear_model import RidgeCV

    p = model.config.condition_dim
    labelled = np.flatnonzero(np.isfinite(props).any(axis=1))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(labelled)[:MAX_MOLECULES])
    feats = probe_features(model, ids, rows, device).astype(np.float64)
    head = model.y_head
    record: dict[str, list[float]] = {"alpha": [], "r2_fit": [], "n": []}
    for j in range(p):
        y = np.asarray(props[rows, j], dtype=np.float64)
        ok = np.isfinite(y)
        record["n"].append(int(ok.sum()))
        if ok.sum() < 3:
            record["alpha"].append(float("nan"))
            record["r2_fit"].append(float("nan"))
            continue
        fit = RidgeCV(alphas=ALPHAS).fit(feats[ok], y[ok])
        resid = y[ok] - fit.predict(feats[ok])
        head.weight[j] = torch.as_tensor(fit.coef_, dtype=head.weight.dtype)
        head.bias[j] = float(fit.intercept_)
        head.weight[p + j] = 0.0
        head.bias[p + j] = float(np.log(max(resid.var(), 1e-4)))
        record["alpha"].append(float(fit.alpha_))
        record["r2_fit"].append(float(1 - resid.var() / max(y[ok].var(), 1e-12)))
    log.info("q(y|x) set to ridge fits on %d labelled molecules: %s", len(rows), record)
    return record
