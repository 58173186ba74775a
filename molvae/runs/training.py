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
from molvae.data.labels import LabelFile, computed_names, label_matrix, read_labels
from molvae.data.property_cache import cached_properties, check_names, compute_properties
from molvae.io import write_json
from molvae.model import Checkpoint, VAEConfig, load_checkpoint
from molvae.model.vae_parts import DEFAULT_Y_KERNEL
from molvae.model.vocab_extension import extend_vocabulary, merged_tokens
from molvae.resources import resolve_model
from molvae.runs.common import environment
from molvae.runs.labelling import hide_labels, label_record
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
    # Property-head targets, objective names (`molvae.chem.get_objective`: "logp", "qed", "sa"
    # = -SA, "plogp", ...); property_dim follows. Standardized with the training set's mean and
    # std (kept in the checkpoint's meta["properties"]); a molecule whose property fails is
    # masked and counted. With the token cache they are computed once and kept beside it.
    properties: list[str] = field(default_factory=list)
    property_workers: int = 2  # processes computing them (large sets only)
    # A semi-supervised conditional VAE (`molvae.model.conditional`: q(y|x), q(z|x,y), p(x|y,z))
    # on ``properties`` instead of a property head; implied by ``labels`` or ``label_fraction``.
    conditional: bool = False
    # CSV with a SMILES column and property columns (empty cells: unlabelled), matched to the
    # data by canonical SMILES; its molecules missing from the data are added to it (SMILES-file
    # data only). Properties it lacks are computed with RDKit.
    labels: str | None = None
    # keep labels on this random share of the molecules only (training and validation alike)
    label_fraction: float | None = None
    label_seed: int = 0

    @property
    def is_conditional(self) -> bool:
        return self.conditional or self.labels is not None or self.label_fraction is not None


def train_on_smiles(
    run: TrainRunConfig, train_config: TrainConfig | None = None, progress: bool = True
) -> TrainResult:
    """Read, filter and split ``run.data``, build the vocabulary, then train a `MolVAE`.

    On ``resume`` the vocabulary comes from the run's ``last.pt`` so token ids stay the same.
    Returns the `molvae.train.TrainResult`.
    """
    train_config = train_config or TrainConfig()
    out = Path(run.out_dir)
    saved = load_checkpoint(out / "last.pt") if run.resume and (out / "last.pt").exists() else None
    init = None if saved else _init_checkpoint(run)
    base = saved or init
    if run.is_conditional and not run.properties:
        raise ValueError("a conditional model needs --properties (what it is conditioned on)")
    max_len = run.model.get("max_len", base.config.max_len if base else VAEConfig.max_len)
    use_cache = run.cache_tokens if run.cache_tokens is not None else str(run.data) in FETCHED
    if use_cache:
        return _train_cached(run, train_config, progress, max_len, init, saved)
    filters = FilterConfig(max_tokens=max_len - 2, dedupe=True)
    smiles, report = load_smiles(run.data, config=filters, limit=run.max_molecules)
    log.info("data %s: %s", run.data, report.summary())
    labels = _labels(run, filters)
    if labels is not None:  # measured molecules the data lacks are trained on too
        have = set(smiles)
        added = [s for s in labels.values if s not in have]
        smiles = smiles + added
        log.info("labels %s: %d molecules, %d of them added to the data", run.labels,
                 len(labels.values), len(added))  # fmt: skip
    if len(smiles) < 2:
        raise ValueError(f"{run.data}: fewer than 2 usable molecules ({report.summary()})")
    if init is not None:  # fine-tuning learns the data's new tokens too
        init = _extended(init, merged_tokens(init.vocab_tokens, Vocab.build(smiles).tokens), run)
    vocab = (saved or init).vocab() if (saved or init) is not None else Vocab.build(smiles)
    train_smiles, val_smiles = split_run(smiles, run)
    # On resume, molecules with tokens the saved vocabulary lacks cannot be encoded: drop them.
    n_before = len(train_smiles) + len(val_smiles)
    train_smiles = [s for s in train_smiles if not vocab.unknown_tokens(s)]
    val_smiles = [s for s in val_smiles if not vocab.unknown_tokens(s)]
    n_unknown = n_before - len(train_smiles) - len(val_smiles)
    if n_unknown:
        log.warning("%d molecules have tokens outside the model's vocabulary: skipped", n_unknown)
    train_ids, val_ids = encode_all(train_smiles, vocab), encode_all(val_smiles, vocab)
    info = {"data_report": report.to_dict(), "unknown_tokens": n_unknown}
    props = None
    if run.is_conditional:
        computed_names(run.properties, labels)
        info["label_columns"] = labels.columns if labels is not None else []
        values = label_matrix(train_smiles + val_smiles, run.properties, labels,
                              run.property_workers)  # fmt: skip
        props = (values[: len(train_smiles)], values[len(train_smiles) :])
    elif run.properties:
        values = compute_properties(train_smiles + val_smiles, run.properties, run.property_workers)
        props = (values[: len(train_smiles)], values[len(train_smiles) :])
    return _launch(run, train_config, vocab, train_ids, val_ids, info, (init, saved), progress,
                   props)  # fmt: skip


def split_run(items: Sequence, run: TrainRunConfig) -> tuple[list, list]:
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
    start: tuple[Checkpoint | None, Checkpoint | None],
    progress: bool,
    props: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """The part both data paths share: model config, properties standardized, ``run.json``,
    checkpoint meta, `train`. ``start``: the init_from checkpoint (fine-tuning) and the run's
    own ``last.pt`` (resuming), either or both None."""

    out = Path(run.out_dir)
    init, saved = start
    model_config = _model_config(run, vocab, init, saved)
    out.mkdir(parents=True, exist_ok=True)
    info = {"n_train": len(train_ids), "n_val": len(val_ids), **info, "environment": environment()}
    train_props = val_props = None
    if props is not None and run.is_conditional:
        # without a value before the fraction is applied: not in the labels file, or failed
        missing = {n: int(np.isnan(props[0][:, j]).sum() + np.isnan(props[1][:, j]).sum())
                   for j, n in enumerate(run.properties)}  # fmt: skip
        props = hide_labels(props, run.properties, run.label_fraction, run.label_seed,
                            info.get("label_columns", []))  # fmt: skip
        train_props, val_props, record = standardize(run.properties, *props, warn=False)
        record["failed"] = missing
        info["condition"] = {
            **record,
            **label_record(train_props, val_props, run.label_fraction, run.labels),
        }
    elif props is not None:
        train_props, val_props, info["properties"] = standardize(run.properties, *props)
    elif (saved or init) is not None and model_config.property_dim:
        # the head is kept as it was trained
        info["properties"] = (saved or init).meta.get("properties")
    write_json(out / "run.json", {"run": asdict(run), **info})
    return train(
        model_config, train_config, vocab.tokens, train_ids, val_ids, out, resume=run.resume,
        init_state=init.state_dict if init is not None else None, train_props=train_props,
        val_props=val_props, progress=progress,
        meta={"trained_on": str(run.data), "init_from": run.init_from, **info},
    )  # fmt: skip


def standardize(
    names: Sequence[str], train_values: np.ndarray, val_values: np.ndarray, warn: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Both sets standardized with the training set's mean and std per property (NaN stays
    NaN: masked), and the record for ``meta["properties"]`` (names, mean, std, failed counts)."""
    mean = np.nanmean(train_values, axis=0) if len(train_values) else np.zeros(len(names))
    std = np.nanstd(train_values, axis=0) if len(train_values) else np.ones(len(names))
    mean, std = np.nan_to_num(mean), np.where(np.isfinite(std) & (std > 0), std, 1.0)
    failed = {n: int(np.isnan(train_values[:, j]).sum() + np.isnan(val_values[:, j]).sum())
              for j, n in enumerate(names)}  # fmt: skip
    if warn and any(failed.values()):
        log.warning("properties that could not be computed (masked in the loss): %s", failed)
    record = {"names": list(names), "mean": mean.tolist(), "std": std.tolist(), "failed": failed}
    scale = lambda v: ((v - mean) / std).astype(np.float32)  # noqa: E731
    return scale(train_values), scale(val_values), record


def _labels(run: TrainRunConfig, filters: FilterConfig) -> LabelFile | None:
    return read_labels(run.labels, run.properties, filters) if run.labels else None


def _extended(init: Checkpoint, tokens: list[str], run: TrainRunConfig) -> Checkpoint:
    """``init`` with the vocabulary ``tokens`` (`extend_vocabulary`), logged when it grew."""
    grown = extend_vocabulary(init, tokens, seed=run.split_seed)
    if grown is not init:
        added = [t for t in grown.vocab_tokens if t not in set(init.vocab_tokens)]
        log.info("init_from %s: vocabulary extended by %s", run.init_from, added)
    return grown


def _init_checkpoint(run: TrainRunConfig) -> Checkpoint | None:
    """The checkpoint a fine-tuning run starts from (None for a fresh or resumed run)."""

    if run.init_from is None or (run.resume and (Path(run.out_dir) / "last.pt").exists()):
        return None
    return load_checkpoint(resolve_model(run.init_from))


def _model_config(
    run: TrainRunConfig, vocab: Vocab, init: Checkpoint | None, saved: Checkpoint | None = None
) -> VAEConfig:
    """The run's VAEConfig: the resumed ``last.pt``'s, or the starting checkpoint's when
    fine-tuning (sizes must agree, except property_dim when fine-tuning: a property head of
    another size starts fresh). ``properties`` set ``property_dim``; without them a
    fine-tuning run keeps the checkpoint's head."""

    requested = dict(run.model)
    if run.is_conditional:
        requested["condition_dim"] = len(run.properties)
        requested["property_dim"] = 0
    elif run.properties:
        requested["property_dim"] = len(check_names(run.properties))
    start = saved or init
    fresh_q_y = run.is_conditional and (start is None or start.config.condition_dim == 0)
    if fresh_q_y and not requested.get("y_hidden") and "y_kernel" not in requested:
        requested["y_kernel"] = DEFAULT_Y_KERNEL  # a new q(y|x) reads through the kernel
    if start is None:
        return VAEConfig(**{**requested, "vocab_size": len(vocab)})
    base = start.config.to_dict()
    clash = {k: v for k, v in requested.items()
             if k in base and base[k] != v
             and (saved or k not in ("property_dim", "condition_dim", "y_hidden",
                                     "y_kernel"))}  # fmt: skip
    if clash:
        what = f"{run.out_dir}/last.pt" if saved else f"init_from {run.init_from}"
        raise ValueError(f"{what}: its model sizes differ from the requested {clash}")
    config = VAEConfig(**{**base, **requested})
    if init is not None and config.property_dim != init.config.property_dim:
        log.info("init_from %s: all weights but the property head (property_dim %d -> %d, "
                 "fresh)", run.init_from, init.config.property_dim,
                 config.property_dim)  # fmt: skip
    return config


def _train_cached(
    run: TrainRunConfig, train_config: TrainConfig, progress: bool, max_len: int,
    init: Checkpoint | None, saved: Checkpoint | None,
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
    if saved is not None and saved.vocab() != vocab:
        raise ValueError(f"{out / 'last.pt'} has another vocabulary than {run.data}")
    if init is not None:  # the cache's token ids stay valid: its tokens come first
        init = _extended(init, merged_tokens(vocab.tokens, init.vocab_tokens), run)
        vocab = init.vocab()
    # the same permutation as `split` over the SMILES list, so both paths pick the same molecules
    train_idx, val_idx = split_run(np.arange(len(cache)), run)
    info = {"data_report": report.to_dict(), "token_cache": str(cache.dir)}
    props = None
    if run.is_conditional:
        labels = _labels(run, FilterConfig(max_tokens=max_len - 2, dedupe=True))
        rest = computed_names(run.properties, labels)
        computed = None
        if rest:
            computed, info["property_cache"] = cached_properties(cache, rest, run.property_workers)
        # the labels file is matched by SMILES: decoded only when there is one
        smiles = ([cache.vocab.decode(cache[i]) for i in range(len(cache))] if labels
                  else [""] * len(cache))  # fmt: skip
        values = label_matrix(smiles, run.properties, labels, computed=computed)
        info["label_columns"] = labels.columns if labels is not None else []
        props = (values[train_idx], values[val_idx])
    elif run.properties:
        values, info["property_cache"] = cached_properties(
            cache, run.properties, run.property_workers
        )
        props = (values[train_idx], values[val_idx])
    return _launch(run, train_config, vocab, cache.subset(train_idx), cache.subset(val_idx), info,
                   (init, saved), progress, props)  # fmt: skip
