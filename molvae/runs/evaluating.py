"""`molvae evaluate` as a run: sample and reconstruct with a checkpoint, write the metrics.

The references follow the MOSES protocol where the data is here: the test split is bundled
(``zinc-test``); the scaffold-test split and the full train split come from ``molvae fetch-zinc``
and are used when fetched (else TestSF is skipped and novelty is against the bundled 250k
subset, and the report says so). Reconstruction runs on held-out MOSES test molecules and on
neutral ZINC-250k molecules (``data/zinc250k/neutral_2k.smi``), which MOSES did not draw from.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from functools import partial
from pathlib import Path

import torch

from molvae.data import read_smiles
from molvae.evaluation import (
    EvaluateConfig,
    EvaluationResult,
    Reconstructor,
    ReferenceData,
    Sampler,
    evaluate,
    write_evaluation,
)
from molvae.io import write_json
from molvae.model import GrammarConfig, LatentCodec
from molvae.resources import DEFAULT_MODEL, cache_dir, data_dir, resolve_model
from molvae.runs.common import environment
from molvae.train.memory import retain_freed_memory

NEUTRAL_ZINC = "zinc250k/neutral_2k.smi"  # under data_dir(): see data/README.md
AUTO = "auto"


def _fetched(split: str) -> Path | None:
    path = cache_dir() / "moses" / f"{split}.csv.gz"
    return path if path.exists() else None


def _scaffold_set(spec: str, max_reference: int | None) -> tuple[list[str] | None, str]:
    """The scaffold-test molecules and what they are, or None and why there are none."""
    path = _fetched("test_scaffolds") if spec == AUTO else spec
    if path is None:
        return None, "not fetched; `molvae fetch-zinc` adds the MOSES scaffold-test split"
    if str(path) == "none":
        return None, "skipped (--test-scaffolds none)"
    smiles = read_smiles(path)[:max_reference]
    what = "MOSES scaffold-test split" if spec == AUTO else "scaffold-test molecules"
    return smiles, f"{what}, {path} ({len(smiles):,} molecules)"


def _train_set(spec: str) -> tuple[list[str], str]:
    """The training molecules (the full MOSES split when fetched) and what they are."""
    path = (_fetched("train") or "zinc") if spec == AUTO else spec
    smiles = read_smiles(path)
    if path == "zinc":
        return smiles, f"the bundled 250k subset of MOSES train ({len(smiles):,} molecules)"
    if spec == AUTO:
        return smiles, f"the full MOSES train split, fetched ({len(smiles):,} molecules)"
    return smiles, f"{path} ({len(smiles):,} molecules)"


def _reference_data(
    test: str, test_scaffolds: str, train: str, recon_set: str, max_reference: int | None
) -> ReferenceData:
    """The molecules of each reference, read as they are (the evaluation canonicalizes)."""
    test_smiles = read_smiles(test)[:max_reference]
    kept = f"the first {len(test_smiles):,}" if max_reference else f"all {len(test_smiles):,}"
    test_name = f"{test} ({kept} molecules)"
    if test == "zinc-test":
        test_name = f"MOSES test split, bundled copy ({kept} molecules)"
    scaf, scaf_name = _scaffold_set(test_scaffolds, max_reference)
    train_smiles, train_name = _train_set(train)
    if recon_set == AUTO:
        recon_name, recon_path = f"neutral ZINC-250k ({NEUTRAL_ZINC})", data_dir() / NEUTRAL_ZINC
    else:
        recon_name, recon_path = recon_set, Path(recon_set)
    return ReferenceData(
        test=test_smiles, test_name=test_name, train=train_smiles, train_name=train_name,
        test_scaffolds=scaf, test_scaffolds_name=scaf_name,
        reconstruction={"MOSES test (held out)": test_smiles, recon_name: read_smiles(recon_path)},
    )  # fmt: skip


def _priors(codec: LatentCodec, prior: str) -> list[str]:
    """The prior rows: N(0, I), and the learned prior when the checkpoint has one."""
    has_learned = getattr(codec, "prior", None) is not None
    if prior == "learned" and not has_learned:
        raise ValueError("--prior learned: this checkpoint has no learned prior (fit-prior)")
    if prior == "all":
        return ["gaussian", "learned"] if has_learned else ["gaussian"]
    return [prior]


def _sampler(codec: LatentCodec, prior: str, decoding: str, strategy: str, t: float) -> Sampler:
    def sample(n: int, seed: int) -> list[str]:
        if hasattr(codec, "sample_latents"):  # the learned prior (molvae.model.prior) is there
            return codec.sample(n, strategy=strategy, temperature=t, seed=seed, prior=prior)[1]
        return codec.sample(n, strategy=strategy, temperature=t, seed=seed)[1]

    return Sampler(prior, decoding, sample)


def _reconstructor(codec: LatentCodec, decoding: str, config: EvaluateConfig) -> Reconstructor:
    def greedy(smiles: list[str]) -> list[str | None]:
        return codec.reconstruct(smiles, strategy="greedy")

    def attempts(smiles: list[str], n: int) -> list[list[str]]:
        enc = codec.encode(smiles, check_domain=False)
        gen = torch.Generator().manual_seed(config.seed)
        z = torch.nan_to_num(enc.z, nan=0.0)
        tries = codec.decode_attempts(z, n, temperature=config.temperature, generator=gen)
        return [a if ok else [] for a, ok in zip(tries, enc.ok, strict=True)]

    return Reconstructor(decoding, greedy, attempts)


def _log(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


def _bounds(codec: LatentCodec, k: int, seed: int, smiles: list[str]) -> dict:
    return codec.likelihood_bounds(smiles, k, seed).summary()


def evaluate_model(
    model: str | os.PathLike = DEFAULT_MODEL,
    out_dir: str | os.PathLike = "runs/evaluate",
    test: str = "zinc-test",
    train: str = AUTO,
    config: EvaluateConfig | None = None,
    strategy: str = "sample",
    device: str = "auto",
    max_reference: int | None = None,
    test_scaffolds: str = AUTO,
    recon_set: str = AUTO,
    quiet: bool = False,
) -> EvaluationResult:
    """Evaluate a checkpoint by the MOSES protocol and write the metrics files into ``out_dir``.

    One row per prior (``config.prior``: ``all`` = N(0, I) plus the learned prior when the
    checkpoint has one, or ``gaussian`` / ``learned``) and decoding (``config.decodings``: raw,
    and through the SMILES grammar with the `GrammarConfig` defaults). ``strategy`` is how
    samples are decoded (``sample`` at the configured temperature, as MOSES does, or
    ``greedy``). ``train``/``test_scaffolds``/``recon_set`` ``auto``: see the module docstring;
    ``max_reference`` keeps the first N test (and scaffold-test) molecules, MOSES uses them all.
    """
    codec = LatentCodec.from_checkpoint(resolve_model(model), device=device, grammar=None)
    if codec.device.type == "cpu":
        # the SNN blocks and ChemNet batches are large tensors freed and made again per block:
        # kept by malloc, a 4-row evaluation spent 17 s in the kernel instead of 90 s, 253 s
        # in all instead of 325 s (2-core EPYC), for a peak of 3.7 GB instead of 2.9 GB
        retain_freed_memory()
    # ChemNet and the fingerprint products run where the model does
    config = dataclasses.replace(config or EvaluateConfig(), device=codec.device.type)
    codecs = {}
    for decoding in config.decodings:
        codecs[decoding] = copy.copy(codec)
        codecs[decoding].grammar = GrammarConfig() if decoding == "grammar" else None
    samplers = [
        _sampler(codecs[d], p, d, strategy, config.temperature)
        for p in _priors(codec, config.prior)
        for d in config.decodings
    ]
    reconstructors = [_reconstructor(codecs[d], d, config) for d in config.decodings]
    data = _reference_data(test, test_scaffolds, train, recon_set, max_reference)

    bounds = partial(_bounds, codec, config.iwae_samples, config.seed)
    result = evaluate(samplers, reconstructors, data, config, None if quiet else _log, bounds)

    out = Path(out_dir)
    write_evaluation(result, out, model_name=Path(resolve_model(model)).stem)
    grammar = dataclasses.asdict(GrammarConfig()) if "grammar" in config.decodings else None
    write_json(
        out / "config.json",
        {
            "model": str(resolve_model(model)),
            "test": test, "test_scaffolds": test_scaffolds, "train": train,
            "recon_set": recon_set, "max_reference": max_reference, "strategy": strategy,
            "grammar": grammar,
            "evaluate": dataclasses.asdict(config), "environment": environment(),
        },
    )  # fmt: skip
    return result
