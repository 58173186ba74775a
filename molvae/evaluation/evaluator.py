"""``molvae evaluate`` as a library function, decoupled from the model by callables.

``evaluate`` samples from the prior, reconstructs held-out molecules and computes the MOSES
generation metrics, reconstruction accuracy and property statistics; `molvae.evaluation.report`
writes them next to the published numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from molvae import chem
from molvae.evaluation import metrics

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class EvaluateConfig:
    """What ``evaluate`` measures and how much of it.

    ``temperature`` and ``constrained`` (decoding through the SMILES grammar,
    `molvae.model.grammar`) are not applied here: the caller's callables use them; they are recorded
    so the written metrics say how the samples were drawn. ``intdiv_subsample`` bounds the quadratic
    IntDiv cost (MOSES uses every sample; the estimate from 10k is within ~0.001).
    """

    n_samples: int = 30000
    n_reconstruct: int = 1000
    n_recon_attempts: int = 10
    temperature: float = 1.0
    constrained: bool = True
    seed: int = 0
    compute_fcd: bool = True
    fcd_reference_size: int = 10000
    intdiv_subsample: int | None = 10000
    canonicalize_train: bool = True

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.n_reconstruct < 0 or self.n_recon_attempts < 1:
            raise ValueError("n_reconstruct must be >= 0 and n_recon_attempts >= 1")


@dataclass
class Timing:
    """Seconds spent in each stage of ``evaluate``."""

    sample_s: float = 0.0
    generation_metrics_s: float = 0.0
    fcd_s: float = 0.0
    reconstruct_s: float = 0.0
    properties_s: float = 0.0
    total_s: float = 0.0


@dataclass
class EvaluationResult:
    """Everything ``evaluate`` measured. Fractions are in [0, 1]; NaN where not computed."""

    config: EvaluateConfig
    n_samples: int
    n_valid: int
    validity: float
    unique_at_1k: float
    unique_at_10k: float
    novelty: float
    fcd_test: float
    intdiv: float
    recon_greedy: float
    recon_majority: float
    n_reconstructed: int
    n_fcd_reference: int
    property_stats_data: pd.DataFrame
    property_stats_samples: pd.DataFrame
    timing: Timing
    # Per-molecule logP/SAS/QED for the histograms; kept out of metrics.json.
    properties_data: pd.DataFrame = field(repr=False, default=None)  # type: ignore[assignment]
    properties_samples: pd.DataFrame = field(repr=False, default=None)  # type: ignore[assignment]
    samples: list[str] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: scalars, config, timing and the two property-statistics tables."""
        scalars = {
            k: getattr(self, k)
            for k in (
                "n_samples",
                "n_valid",
                "validity",
                "unique_at_1k",
                "unique_at_10k",
                "novelty",
                "fcd_test",
                "intdiv",
                "recon_greedy",
                "recon_majority",
                "n_reconstructed",
                "n_fcd_reference",
            )
        }
        return {
            **{k: _json_number(v) for k, v in scalars.items()},
            "property_stats_data": _stats_dict(self.property_stats_data),
            "property_stats_samples": _stats_dict(self.property_stats_samples),
            "timing": asdict(self.timing),
            "config": asdict(self.config),
        }


def _json_number(x: float | int) -> float | int | None:
    """NaN is not JSON: write ``null`` for metrics that were not computed."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _stats_dict(stats: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    return {
        row: {col: _json_number(float(stats.loc[row, col])) for col in ("mean", "std")}
        | {"n": int(stats.loc[row, "n"])}
        for row in stats.index
    }


def _pick(items: list[str], size: int, seed: int) -> list[str]:
    """A seeded random subset of ``size`` items (all of them, in order, if there are fewer)."""
    if len(items) <= size:
        return list(items)
    idx = np.random.default_rng(seed).choice(len(items), size=size, replace=False)
    return [items[i] for i in sorted(idx)]


def evaluate(
    sample_fn: Callable[[int, int], list[str]],
    reconstruct_fn: Callable[[list[str]], list[str]],
    reconstruct_attempts_fn: Callable[[list[str], int], list[list[str]]] | None,
    test_smiles: list[str],
    train_smiles: list[str],
    config: EvaluateConfig,
) -> EvaluationResult:
    """Measure a generative model through three callables.

    ``sample_fn(n, seed)`` returns ``n`` SMILES drawn from the prior; ``reconstruct_fn(inputs)``
    returns one greedy reconstruction per input; ``reconstruct_attempts_fn(inputs, k)`` returns
    ``k`` stochastic reconstructions per input (``None`` skips majority accuracy). Generation
    metrics follow MOSES (FCD against a seeded subset of ``test_smiles``); reconstruction runs
    on a seeded subset of ``n_reconstruct`` test molecules.
    """
    t_start = time.perf_counter()
    timing = Timing()

    t = time.perf_counter()
    samples = list(sample_fn(config.n_samples, config.seed))
    timing.sample_s = time.perf_counter() - t
    if len(samples) != config.n_samples:
        raise ValueError(f"sample_fn returned {len(samples)} SMILES, expected {config.n_samples}")

    valid, generation = _generation_metrics(samples, train_smiles, config, timing)
    reference = _pick(test_smiles, config.fcd_reference_size, config.seed)
    fcd_test = math.nan
    if config.compute_fcd and len(valid) >= 2:
        t = time.perf_counter()
        fcd_test = metrics.fcd_score(valid, reference)
        timing.fcd_s = time.perf_counter() - t
    recon = _reconstruction(test_smiles, reconstruct_fn, reconstruct_attempts_fn, config, timing)

    t = time.perf_counter()
    names = ("logp", "sa_score", "qed")
    props_data = chem.property_table(reference, names=names)
    props_samples = chem.property_table(valid, names=names)
    timing.properties_s = time.perf_counter() - t
    timing.total_s = time.perf_counter() - t_start

    return EvaluationResult(
        config=config,
        n_samples=len(samples),
        n_valid=len(valid),
        **generation,
        fcd_test=fcd_test,
        **recon,
        n_fcd_reference=len(reference),
        property_stats_data=metrics.summarize_properties(props_data),
        property_stats_samples=metrics.summarize_properties(props_samples),
        timing=timing,
        properties_data=props_data[props_data["valid"]].reset_index(drop=True),
        properties_samples=props_samples[props_samples["valid"]].reset_index(drop=True),
        samples=samples,
    )


def _generation_metrics(
    samples: list[str], train_smiles: list[str], config: EvaluateConfig, timing: Timing
) -> tuple[list[str], dict[str, float]]:
    """The valid samples (canonical) and validity, unique@1k/10k, novelty and IntDiv."""
    t = time.perf_counter()
    valid = [c for c in (chem.canonical(s) for s in samples) if c is not None]
    # MOSES computes unique@k, novelty and IntDiv on the valid samples only.
    scores = {
        "validity": len(valid) / len(samples),
        "unique_at_1k": _unique_or_nan(valid, 1000),
        "unique_at_10k": _unique_or_nan(valid, 10000),
        "novelty": metrics.novelty(
            valid, train_smiles, canonicalize_train=config.canonicalize_train
        ),
        "intdiv": metrics.internal_diversity(
            valid, p=1, subsample=config.intdiv_subsample, seed=config.seed
        ),
    }
    timing.generation_metrics_s = time.perf_counter() - t
    return valid, scores


def _reconstruction(
    test_smiles: list[str],
    reconstruct_fn: Callable[[list[str]], list[str]],
    reconstruct_attempts_fn: Callable[[list[str], int], list[list[str]]] | None,
    config: EvaluateConfig,
    timing: Timing,
) -> dict[str, Any]:
    """Greedy and majority reconstruction accuracy on a seeded subset of the test molecules."""
    t = time.perf_counter()
    inputs = _pick(test_smiles, config.n_reconstruct, config.seed + 1)
    recon_greedy = recon_majority = math.nan
    if inputs:
        recon_greedy = metrics.reconstruction_accuracy(inputs, reconstruct_fn(inputs))
        if reconstruct_attempts_fn is not None:
            attempts = reconstruct_attempts_fn(inputs, config.n_recon_attempts)
            recon_majority = metrics.majority_reconstruction_accuracy(inputs, attempts)
    timing.reconstruct_s = time.perf_counter() - t
    return {
        "recon_greedy": recon_greedy,
        "recon_majority": recon_majority,
        "n_reconstructed": len(inputs),
    }


def _unique_or_nan(valid: list[str], k: int) -> float:
    """unique@k, silently on fewer than ``k`` molecules (the markdown states the sample size)."""
    if not valid:
        return math.nan
    head = valid[:k]
    return len(set(head)) / len(head)
