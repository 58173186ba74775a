"""Training on a SMILES file: read, filter, split, build the vocabulary, then `molvae.train`.

The small-data path keeps SMILES in memory; the fetched MOSES sets go through the memory-mapped
token cache. Both pick the same molecules for the same split and write the same records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molvae.data import FETCHED, FilterConfig, Vocab, encode_all, load_smiles, split, token_cache
from molvae.io import write_json
from molvae.model import Checkpoint, VAEConfig, load_checkpoint
from molvae.resources import resolve_model
from molvae.runs.common import environment
from molvae.train import TrainConfig, TrainResult, train

log = logging.getLogger(__name__)


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


def train_on_smiles(
    run: TrainRunConfig, train_config: TrainConfig | None = None, progress: bool = True
) -> TrainResult:
    """Read, filter and split ``run.data``, build the vocabulary, then train a `MolVAE`.

    On ``resume`` the vocabulary comes from the run's ``last.pt`` so token ids stay the same.
    Returns the `molvae.train.TrainResult`.
    """
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


def _launch(
    run: TrainRunConfig,
    train_config: TrainConfig,
    vocab: Vocab,
    train_ids: Sequence[np.ndarray],
    val_ids: Sequence[np.ndarray],
    info: dict[str, Any],
    init: Checkpoint | None,
    progress: bool,
) -> TrainResult:
    """The part both data paths share: model config, ``run.json``, checkpoint meta, `train`."""

    out = Path(run.out_dir)
    model_config = _model_config(run, vocab, init)
    out.mkdir(parents=True, exist_ok=True)
    info = {"n_train": len(train_ids), "n_val": len(val_ids), **info, "environment": environment()}
    write_json(out / "run.json", {"run": asdict(run), **info})
    return train(
        model_config, train_config, vocab.tokens, train_ids, val_ids, out, resume=run.resume,
        init_state=init.state_dict if init is not None else None,
        meta={"trained_on": str(run.data), "init_from": run.init_from, **info}, progress=progress,
    )  # fmt: skip


def _init_checkpoint(run: TrainRunConfig) -> Checkpoint | None:
    """The checkpoint a fine-tuning run starts from (None for a fresh or resumed run)."""

    if run.init_from is None or (run.resume and (Path(run.out_dir) / "last.pt").exists()):
        return None
    return load_checkpoint(resolve_model(run.init_from))


def _model_config(run: TrainRunConfig, vocab: Vocab, init: Checkpoint | None) -> VAEConfig:
    """The run's VAEConfig: the starting checkpoint's when fine-tuning (sizes must agree)."""

    if init is None:
        return VAEConfig(**{**run.model, "vocab_size": len(vocab)})
    base = init.config.to_dict()
    clash = {k: v for k, v in run.model.items() if k in base and base[k] != v}
    if clash:
        raise ValueError(
            f"init_from {run.init_from}: its model sizes differ from the requested {clash}"
        )
    return VAEConfig(**{**base, **run.model})


def _train_cached(
    run: TrainRunConfig, train_config: TrainConfig, progress: bool, max_len: int,
    init: Checkpoint | None,
) -> TrainResult:  # fmt: skip
    """`train_on_smiles` over the memory-mapped token cache (same filter, split and records)."""

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
