"""`molvae evaluate` as a run: sample and reconstruct with a checkpoint, write the metrics."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from molvae.data import load_smiles
from molvae.evaluation import EvaluateConfig, EvaluationResult, evaluate, write_evaluation
from molvae.io import write_json
from molvae.model import GrammarConfig, LatentCodec
from molvae.resources import DEFAULT_MODEL, resolve_model
from molvae.runs.common import environment


def evaluate_model(
    model: str | os.PathLike = DEFAULT_MODEL,
    out_dir: str | os.PathLike = "runs/evaluate",
    test: str = "zinc-test",
    train: str = "zinc",
    config: EvaluateConfig | None = None,
    strategy: str = "sample",
    device: str = "auto",
    max_reference: int | None = 50_000,
) -> EvaluationResult:
    """Sample from the prior, reconstruct held-out molecules and write the metrics files.

    ``strategy`` is how prior samples are decoded (``sample`` at the configured temperature, as
    MOSES does, or ``greedy``); ``config.constrained`` whether decoding follows the SMILES
    grammar (`GrammarConfig` defaults). ``max_reference`` caps the test molecules read; novelty
    is against every molecule of ``train``. Returns the `molvae.evaluation.EvaluationResult`.
    """
    config = config or EvaluateConfig()
    grammar = GrammarConfig() if config.constrained else None
    codec = LatentCodec.from_checkpoint(resolve_model(model), device=device, grammar=grammar)
    test_smiles, _ = load_smiles(test, limit=max_reference)
    train_smiles, _ = load_smiles(train)  # all of it: novelty against a part is only a bound

    def sample_fn(n: int, seed: int) -> list[str]:
        return codec.sample(n, strategy=strategy, temperature=config.temperature, seed=seed)[1]

    def reconstruct_fn(smiles: list[str]) -> list[str]:
        return [s or "" for s in codec.reconstruct(smiles, strategy="greedy")]

    def attempts_fn(smiles: list[str], n: int) -> list[list[str]]:
        enc = codec.encode(smiles)
        gen = torch.Generator().manual_seed(config.seed)
        z = torch.nan_to_num(enc.z, nan=0.0)
        attempts = codec.decode_attempts(z, n, temperature=config.temperature, generator=gen)
        return [a if ok else [] for a, ok in zip(attempts, enc.ok, strict=True)]

    result = evaluate(sample_fn, reconstruct_fn, attempts_fn, test_smiles, train_smiles, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_evaluation(result, out, model_name=Path(resolve_model(model)).stem)
    write_json(
        out / "config.json",
        {
            "model": str(resolve_model(model)),
            "test": test,
            "train": train,
            "strategy": strategy,
            "grammar": asdict(grammar) if grammar else None,
            "evaluate": asdict(config),
            "environment": environment(),
        },
    )
    return result
