"""End-to-end runs composed from the parts: train on a SMILES file, evaluate a model, optimize.

The CLI and `pipelines/` are thin layers over these functions; each run writes its resolved
configuration next to its outputs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molvae import __version__
from molvae.data import (
    FETCHED,
    FilterConfig,
    data_dir,
    encode_all,
    load_smiles,
    split,
    token_cache,
)
from molvae.tokens import Vocab

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"


def resolve_model(spec: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """A checkpoint path, or ``default`` for the bundled model."""
    if str(spec) == DEFAULT_MODEL:
        return data_dir() / "models" / "default.pt"
    return Path(spec).expanduser()


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded with every run."""
    import botorch
    import rdkit

    cuda = torch.cuda.is_available()
    return {
        "molvae": __version__,
        "torch": torch.__version__,
        "rdkit": rdkit.__version__,
        "botorch": botorch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # torchrun ranks write it too
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainRunConfig:
    """A training run on a SMILES file: data handling around `molvae.train.train`."""

    data: str = "zinc"
    out_dir: str = "runs/molvae"
    max_molecules: int | None = None  # first N rows of the file (smoke runs, subsets)
    val_fraction: float = 0.05
    max_val: int | None = 10_000  # cap the validation set so an epoch's validation stays cheap
    split_seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)  # VAEConfig overrides (vocab_size is set)
    resume: bool = False
    # Checkpoint (or "default") whose weights, size and vocabulary start the run: fine-tuning.
    # Ignored when resuming from out_dir/last.pt.
    init_from: str | None = None
    # Memory-mapped token cache (molvae.data.token_cache): None = only for the fetched MOSES sets,
    # where filtering 1.6M molecules takes minutes and Python lists of them take gigabytes.
    cache_tokens: bool | None = None


def train_on_smiles(run: TrainRunConfig, train_config=None, progress: bool = True):
    """Read, filter and split ``run.data``, build the vocabulary, then train a `MolVAE`.

    On ``resume`` the vocabulary comes from the run's ``last.pt`` so token ids stay the same.
    Returns the `molvae.train.TrainResult`.
    """
    from molvae.checkpoint import load_checkpoint
    from molvae.model import VAEConfig
    from molvae.train import TrainConfig

    train_config = train_config or TrainConfig()
    out = Path(run.out_dir)
    init = _init_checkpoint(run)
    max_len = run.model.get("max_len", init.config.max_len if init else VAEConfig.max_len)
    use_cache = run.cache_tokens if run.cache_tokens is not None else str(run.data) in FETCHED
    if use_cache:
        return _train_cached(run, train_config, progress, max_len, init)
    smiles, report = load_smiles(
        run.data, config=FilterConfig(max_tokens=max_len - 2, dedupe=True), limit=run.max_molecules
    )
    log.info("data %s: %s", run.data, report.summary())
    if len(smiles) < 2:
        raise ValueError(f"{run.data}: fewer than 2 usable molecules ({report.summary()})")
    if run.resume and (out / "last.pt").exists():
        vocab = load_checkpoint(out / "last.pt").vocab()
    elif init is not None:
        vocab = init.vocab()
    else:
        vocab = Vocab.build(smiles)
    train_smiles, val_smiles = _split(smiles, run)
    # On resume or fine-tuning, molecules with tokens the saved vocabulary lacks cannot be
    # encoded: drop them.
    n_before = len(train_smiles) + len(val_smiles)
    train_smiles = [s for s in train_smiles if not vocab.unknown_tokens(s)]
    val_smiles = [s for s in val_smiles if not vocab.unknown_tokens(s)]
    n_unknown = n_before - len(train_smiles) - len(val_smiles)
    if n_unknown:
        log.warning("%d molecules have tokens outside the model's vocabulary: skipped", n_unknown)
    train_ids, val_ids = encode_all(train_smiles, vocab), encode_all(val_smiles, vocab)
    info = {"data_report": report.to_dict(), "unknown_tokens": n_unknown}
    return _launch(run, train_config, vocab, train_ids, val_ids, info, init, progress)


def _split(items: Sequence, run: TrainRunConfig) -> tuple[list, list]:
    """`split` with the run's fraction and seed, validation capped at ``max_val``, never empty."""
    train_items, val_items = split(items, run.val_fraction, seed=run.split_seed)
    if run.max_val is not None:
        val_items = val_items[: run.max_val]
    return train_items, val_items or train_items[:1]


def _launch(run: TrainRunConfig, train_config, vocab: Vocab, train_ids, val_ids, info, init,
            progress: bool):  # fmt: skip
    """The part both data paths share: model config, ``run.json``, checkpoint meta, `train`."""
    from molvae.train import train

    out = Path(run.out_dir)
    model_config = _model_config(run, vocab, init)
    out.mkdir(parents=True, exist_ok=True)
    info = {"n_train": len(train_ids), "n_val": len(val_ids), **info, "environment": environment()}
    _write_json(out / "run.json", {"run": asdict(run), **info})
    return train(
        model_config, train_config, vocab.tokens, train_ids, val_ids, out, resume=run.resume,
        init_state=init.state_dict if init is not None else None,
        meta={"trained_on": str(run.data), "init_from": run.init_from, **info}, progress=progress,
    )  # fmt: skip


def _init_checkpoint(run: TrainRunConfig):
    """The checkpoint a fine-tuning run starts from (None for a fresh or resumed run)."""
    from molvae.checkpoint import load_checkpoint

    if run.init_from is None or (run.resume and (Path(run.out_dir) / "last.pt").exists()):
        return None
    return load_checkpoint(resolve_model(run.init_from))


def _model_config(run: TrainRunConfig, vocab: Vocab, init):
    """The run's VAEConfig: the starting checkpoint's when fine-tuning (sizes must agree)."""
    from molvae.model import VAEConfig

    if init is None:
        return VAEConfig(**{**run.model, "vocab_size": len(vocab)})
    base = init.config.to_dict()
    clash = {k: v for k, v in run.model.items() if k in base and base[k] != v}
    if clash:
        raise ValueError(
            f"init_from {run.init_from}: its model sizes differ from the requested {clash}"
        )
    return VAEConfig(**{**base, **run.model})


def _train_cached(run: TrainRunConfig, train_config, progress: bool, max_len: int, init):
    """`train_on_smiles` over the memory-mapped token cache (same filter, split and records)."""
    from molvae.checkpoint import load_checkpoint

    out = Path(run.out_dir)
    cache = token_cache(
        run.data, FilterConfig(max_tokens=max_len - 2, dedupe=True), limit=run.max_molecules
    )
    report, vocab = cache.report, cache.vocab
    log.info("data %s (token cache %s): %s", run.data, cache.dir, report.summary())
    if len(cache) < 2:
        raise ValueError(f"{run.data}: fewer than 2 usable molecules ({report.summary()})")
    if run.resume and (out / "last.pt").exists():
        saved = load_checkpoint(out / "last.pt").vocab()
        if saved != vocab:
            raise ValueError(f"{out / 'last.pt'} has another vocabulary than {run.data}")
    if init is not None and init.vocab() != vocab:
        raise ValueError(f"init_from {run.init_from} has another vocabulary than {run.data}")
    # the same permutation as `split` over the SMILES list, so both paths pick the same molecules
    train_idx, val_idx = _split(np.arange(len(cache)), run)
    info = {"data_report": report.to_dict(), "token_cache": str(cache.dir)}
    return _launch(run, train_config, vocab, cache.subset(train_idx), cache.subset(val_idx), info,
                   init, progress)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate_model(
    model: str | os.PathLike = DEFAULT_MODEL,
    out_dir: str | os.PathLike = "runs/evaluate",
    test: str = "zinc-test",
    train: str = "zinc",
    config=None,
    strategy: str = "sample",
    device: str = "auto",
    max_reference: int | None = 50_000,
):
    """Sample from the prior, reconstruct held-out molecules and write the metrics files.

    ``strategy`` is how prior samples are decoded (``sample`` at the configured temperature, as
    MOSES does, or ``greedy``); ``config.constrained`` whether decoding follows the SMILES
    grammar (`GrammarConfig` defaults). ``max_reference`` caps the test molecules read; novelty
    is against every molecule of ``train``. Returns the `molvae.evaluation.EvaluationResult`.
    """
    from molvae.codec import LatentCodec
    from molvae.evaluation import EvaluateConfig, evaluate, write_evaluation
    from molvae.grammar import GrammarConfig

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
    _write_json(
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


# ---------------------------------------------------------------------------------------------
# Optimization


@dataclass
class OptimizeRunConfig:
    """What a campaign optimizes and with which model/data (the BO settings are `BOConfig`)."""

    model: str = DEFAULT_MODEL
    objective: str = "qed"
    data: str = "zinc"  # initial design pool
    out_dir: str = "campaigns/run"
    method: str = "bo"  # "bo" | "random"
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (1 is fastest on a busy machine)
    constrained: bool = True  # decode through the SMILES grammar (`GrammarConfig` defaults)


# What a campaign directory is bound to besides its BOConfig: a resume with another model,
# objective, pool, method or decoding would mix two experiments in one history.
_RUN_PINNED = ("model", "objective", "data", "method", "constrained")


def optimize(run: OptimizeRunConfig, bo_config=None, progress: bool = True):
    """Run (or resume) a latent-space campaign; returns its `CampaignResult` (report written)."""
    from molvae.bo import BOConfig, random_search, run_campaign
    from molvae.chem import get_objective, score_smiles
    from molvae.codec import LatentCodec
    from molvae.grammar import GrammarConfig

    bo_config = bo_config or BOConfig()
    if run.method not in ("bo", "random"):
        raise ValueError(f"unknown method {run.method!r} (use 'bo' or 'random')")
    if run.threads:
        torch.set_num_threads(run.threads)
    objective = get_objective(run.objective)  # fails early, before any model is loaded
    model_path = resolve_model(run.model)
    grammar = GrammarConfig() if run.constrained else None
    codec = LatentCodec.from_checkpoint(model_path, device=run.device, grammar=grammar)
    vocab = codec.vocab

    def decode_fn(z: torch.Tensor, n_attempts: int, seed: int) -> list[list[str]]:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return codec.decode_attempts(
            z, n_attempts, temperature=bo_config.decode_temperature, generator=gen
        )

    def encode_fn(smiles: list[str]) -> torch.Tensor:
        return codec.encode(smiles).z

    def objective_fn(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        res = score_smiles(smiles, run.objective, n_jobs=bo_config.n_jobs)
        return res.scores, res.status

    def prior_fn(n: int, seed: int) -> torch.Tensor:
        return torch.randn(n, codec.latent_dim, generator=torch.Generator().manual_seed(int(seed)))

    metadata = {
        "run": asdict(run),
        "pinned": {k: getattr(run, k) for k in _RUN_PINNED},
        "grammar": asdict(grammar) if grammar else None,
        "model_path": str(model_path),
        "objective_description": objective.description,
        "environment": environment(),
    }
    # Both methods start from the same initial design (data molecules, scored and encoded once),
    # so their traces are comparable; the campaign draws `init_pool` of these at random.
    init, _ = load_smiles(
        run.data,
        vocab=vocab,
        config=FilterConfig(max_tokens=codec.max_len - 2, dedupe=True),
        limit=max(5 * bo_config.init_pool, 10_000),
    )
    t0 = time.perf_counter()
    common = dict(init_smiles=init, progress=progress, metadata=metadata)
    if run.method == "random":
        result = random_search(
            bo_config, decode_fn, prior_fn, objective_fn, run.out_dir, encode_fn=encode_fn, **common
        )
    else:
        result = run_campaign(
            bo_config, decode_fn, encode_fn, objective_fn, out_dir=run.out_dir, **common
        )
    log.info("campaign finished in %.1f s", time.perf_counter() - t0)
    return result
