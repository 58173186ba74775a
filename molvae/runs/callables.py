"""What a campaign reaches the model and the chemistry through: decode, encode, score, sample
the prior and compute constraint slacks, bound to a checkpoint's codec; and the ``--init-data``
table as a campaign reads it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig
from molvae.bo.init_data import read_init_data
from molvae.chem import known_part_values, score_smiles
from molvae.chem.cache import OracleCache
from molvae.chem.constraints import cheap_constraints, constraint_slacks, parse_constraints
from molvae.model import LatentCodec
from molvae.model.codec import PRIORS


def resolve_prior(codec: LatentCodec, prior: str) -> str:
    """The prior a campaign samples: "learned" or "gaussian" (``prior`` in ``PRIORS``)."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, not {prior!r}")
    learned = getattr(codec, "prior", None) is not None
    if prior == "learned" and not learned:
        raise ValueError(
            "--prior learned: this checkpoint has no learned prior (fit one with `molvae "
            "fit-prior`, or use --prior gaussian)"
        )
    return "learned" if learned and prior != "gaussian" else "gaussian"


def prior_sampler(codec: LatentCodec, kind: str) -> Callable[[int, int], np.ndarray]:
    """``SampleFn``: ``(n, seed) -> n x d`` float64 samples of the ``kind`` prior, seeded on CPU.

    Through ``codec.sample_latents`` when the codec has it, else the model's N(0, I).
    """
    sample_latents = getattr(codec, "sample_latents", None)

    def sample(n: int, seed: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(int(seed))
        if sample_latents is not None:
            z = sample_latents(n, prior=kind, generator=gen)
        else:
            z = codec.model.sample_prior(n, generator=gen)
        return z.detach().to("cpu", torch.float64).numpy()

    return sample


@dataclass
class CampaignCallables:
    """The contract `molvae.bo` works through, bound to one codec and one objective."""

    decode: Callable[[torch.Tensor, int, int], list[list[str]]]
    encode: Callable[[list[str]], torch.Tensor]
    objective: Callable[[list[str]], tuple[np.ndarray, list[str]]]
    prior: Callable[[int, int], np.ndarray]
    slack: Callable[[list[str]], np.ndarray] | None = None  # None: the campaign has no constraint
    # the objective's part computed exactly (`molvae.chem.Objective.known_part`); None: none
    known: Callable[[list[str]], np.ndarray] | None = None


def campaign_callables(
    codec: LatentCodec,
    objective: str | Sequence[str],
    bo_config: BOConfig,
    prior: str = "gaussian",
    constraints: Sequence[str] = (),
    executor: Executor | None = None,
    cache: OracleCache | None = None,
) -> CampaignCallables:
    """Decode (greedy + sampled attempts, seeded per batch), encode, score and prior callables
    (``objective``: one spec, or several: the objective then returns ``n x M`` values;
    ``prior``: "learned" or "gaussian", see ``resolve_prior``; ``constraints``: specs a
    molecule must satisfy to be "ok" rather than "infeasible"; ``executor``: where objective
    calls run, e.g. a Dask cluster's, else ``bo_config.n_jobs`` local processes; ``cache``: an
    oracle cache to look outcomes up in and store them to)."""

    def decode_fn(z: torch.Tensor, n_attempts: int, seed: int) -> list[list[str]]:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return codec.decode_attempts(
            z, n_attempts, temperature=bo_config.decode_temperature, generator=gen
        )

    def encode_fn(smiles: list[str]) -> torch.Tensor:
        return codec.encode(smiles, check_domain=False).z  # the status is not used here

    specs = [objective] if isinstance(objective, str) else list(objective)

    def objective_fn(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        # several objectives: one call scores a molecule on each (the constraints with the
        # first); it is scored when every one of them is, and failed when one fails
        values, status = [], []
        for i, spec in enumerate(specs):
            res = score_smiles(smiles, spec, n_jobs=bo_config.n_jobs,
                               constraints=constraints if i == 0 else (), executor=executor,
                               cache=cache)  # fmt: skip
            values.append(res.scores)
            status = (
                list(res.status)
                if i == 0
                else [_worse(a, b) for a, b in zip(status, res.status, strict=True)]
            )
        if len(specs) == 1:
            return values[0], status
        return np.stack(values, axis=1), status

    # candidates are checked against the cheap constraints only; an expensive one (docking)
    # is checked in the oracle call of each molecule chosen, and the surrogate learns it
    # from the "infeasible" statuses (`molvae.bo.candidates`, `molvae.bo.iteration`)
    parsed = cheap_constraints(parse_constraints(constraints))
    slack_fn = (lambda smiles: constraint_slacks(smiles, parsed)) if parsed else None
    known = known_part_values(specs[0]) if len(specs) == 1 else None
    return CampaignCallables(decode_fn, encode_fn, objective_fn, prior_sampler(codec, prior),
                             slack_fn, known)  # fmt: skip


def _worse(first: str, other: str) -> str:
    """A molecule's status from the first objective's (which checks the constraints) and
    another's: an unscored answer of the other wins."""
    return other if other not in ("ok", "infeasible") else first


def init_data_table(
    path: str, score_column: str = "score", constraints: Sequence[str] = ()
) -> pd.DataFrame:
    """The ``--init-data`` file as `molvae.bo.init_data.read_init_data` reads it; where it gives
    no status and the campaign has ``constraints``, a row that misses one is "infeasible" (the
    campaign's constraint check on the molecule, as `score_smiles` does it; no oracle call).
    An expensive constraint (docking) is not checked here: give such rows a status."""
    data = read_init_data(path, score_column)
    parsed = cheap_constraints(parse_constraints(constraints))
    missing = (data["status"] == "").to_numpy()
    if parsed and missing.any():
        slack = constraint_slacks(data.loc[missing, "smiles"].tolist(), parsed)
        data.loc[missing, "status"] = np.where((slack > 0).any(axis=1), "infeasible", "ok")
    return data
