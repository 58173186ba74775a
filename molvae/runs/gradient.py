"""Property-guided latent ascent with a model's property head: the objective it predicts, and
the similarity-constrained improvement of a list of molecules (`pipelines/jin_benchmark.py`).

``molvae optimize --method gradient`` goes through `molvae.runs.optimizing.optimize`, which
binds `head_predictor` into `molvae.bo.gradient.gradient_campaign`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from molvae.bo.gradient import GradientConfig, PredictFn, ascent_path
from molvae.bo.trust_region import prior_bounds
from molvae.chem.properties import (
    LOGP_MEAN,
    LOGP_STD,
    NEG_RING_MEAN,
    NEG_RING_STD,
    NEG_SA_MEAN,
    NEG_SA_STD,
)
from molvae.model import LatentCodec, MolVAE

Columns = dict[str, Tensor]


def _plogp_raw(p: Columns) -> Tensor:
    """logP - SA - ring penalty from the head's logp, sa (= -SA) and standardized plogp: the
    ring term is what plogp holds beyond its logP and -SA terms (exact for exact predictions)."""
    neg_ring = NEG_RING_STD * (
        p["plogp"] - (p["logp"] - LOGP_MEAN) / LOGP_STD - (p["sa"] - NEG_SA_MEAN) / NEG_SA_STD
    ) + NEG_RING_MEAN  # fmt: skip
    return p["logp"] + p["sa"] + neg_ring


# objective name -> (head properties it needs, its value from their predictions in units)
HEAD_OBJECTIVES: dict[str, tuple[tuple[str, ...], Callable[[Columns], Tensor]]] = {
    "logp": (("logp",), lambda p: p["logp"]),
    "sa": (("sa",), lambda p: p["sa"]),
    "qed": (("qed",), lambda p: p["qed"]),
    "plogp": (("plogp",), lambda p: p["plogp"]),
    "plogp_raw": (("logp", "sa", "plogp"), _plogp_raw),
}


def head_predictor(model: MolVAE, objective: str) -> PredictFn:
    """``PredictFn``: latents ``n x d`` -> the head's prediction of ``objective`` (its units),
    differentiable. A model without a head, or a head that cannot give the objective, raises
    one ``ValueError`` sentence."""
    if model.prop_head is None or model.property_scale is None:
        raise ValueError(
            "gradient ascent needs a model with a property head (this one has none); "
            "try --model zinc250k-props"
        )
    names = list(model.property_scale.names)
    need = HEAD_OBJECTIVES.get(objective, (None, None))[0]
    if need is None or any(n not in names for n in need):
        can = [o for o, (req, _) in HEAD_OBJECTIVES.items() if all(n in names for n in req)]
        raise ValueError(
            f"the model's property head predicts {names}, not objective {objective!r}: "
            f"gradient ascent can optimize {can}"
        )
    fn = HEAD_OBJECTIVES[objective][1]
    device = next(model.parameters()).device

    def predict(z: Tensor) -> Tensor:
        y = model.predict_properties(z.to(device, torch.float32), units=True)
        return fn({n: y[:, j] for j, n in enumerate(names)}).cpu()

    return predict


def latent_box(codec: LatentCodec, n: int = 10_000, seed: int = 0) -> Tensor:
    """``2 x d``: the prior's box (`molvae.bo.prior_bounds` of ``n`` seeded prior samples)."""
    gen = torch.Generator().manual_seed(seed)
    return prior_bounds(codec.sample_latents(n, generator=gen))


def posterior_starts(
    mu: Tensor, logvar: Tensor, k: int = 1, scale: float = 1.0, seed: int = 0
) -> Tensor:
    """``(n * k) x d`` ascent starts, start-major: per row its posterior mean, then ``k - 1``
    draws ``mu + scale * sigma * eps`` from the encoder's q(z|x), so the ascent also explores the
    latents the decoder was trained to read as that molecule. The noise has its own seeded
    stream, so the decoding samples (and ``k = 1``) do not depend on ``k`` and ``scale``."""
    if k < 1:
        raise ValueError(f"posterior starts must be >= 1, not {k}")
    mu = mu.float()
    if k == 1:
        return mu
    noise_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    eps = torch.randn(
        mu.shape[0], k - 1, mu.shape[1], generator=torch.Generator().manual_seed(noise_seed)
    )
    draws = mu[:, None] + scale * torch.exp(0.5 * logvar.float())[:, None] * eps
    return torch.cat([mu[:, None], draws], dim=1).reshape(-1, mu.shape[1])


def ascent_candidates(
    codec: LatentCodec,
    smiles: Sequence[str],
    objective: str,
    config: GradientConfig,
    n_attempts: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 4096,
    n_posterior: int = 1,
    posterior_scale: float = 1.0,
) -> pd.DataFrame:
    """Encode ``smiles``, ascend the head's ``objective`` from each of ``n_posterior`` starts per
    molecule (`posterior_starts`: the mean first), in the prior's box, and decode every
    ``config.decode_every``-th point of each path, start included, ``n_attempts`` times (greedy,
    then samples). Rows: ``start`` (index into ``smiles``), ``draw`` (0 = the mean), ``step``,
    ``attempt``, ``smiles`` (as decoded; not checked); starts that cannot be encoded get none."""
    predict = head_predictor(codec.model, objective)
    enc = codec.encode(list(smiles), check_domain=False)
    rows = torch.as_tensor(enc.ok).nonzero().flatten()
    if enc.logvar is None:  # EncodeResult allows it; LatentCodec.encode always fills it
        raise ValueError("posterior starts need the encoder's log-variances")
    z0 = posterior_starts(enc.z[rows], enc.logvar[rows], n_posterior, posterior_scale, seed)
    path = ascent_path(z0, predict, config, latent_box(codec, seed=seed))
    steps = torch.arange(0, config.steps + 1, config.decode_every)
    z = path[steps].reshape(-1, path.shape[-1]).float()  # step-major: (steps x chains) x d
    gen = torch.Generator().manual_seed(seed)
    decoded: list[list[str]] = []
    for s in range(0, z.shape[0], chunk):
        decoded += codec.decode_attempts(z[s : s + chunk], n_attempts, temperature, generator=gen)
    n = z0.shape[0]  # chain c is draw c % n_posterior of encoded row c // n_posterior
    out = [
        (int(rows[i % n // n_posterior]), i % n % n_posterior, int(steps[i // n]), a, smi)
        for i, attempts in enumerate(decoded)
        for a, smi in enumerate(attempts)
    ]
    return pd.DataFrame(out, columns=["start", "draw", "step", "attempt", "smiles"])
