"""``evaluate``: the MOSES protocol on a model's samples, decoupled from the model by callables.

One `Sampler` per row (a prior and a decoding: raw, or through the SMILES grammar) draws
``n_samples`` SMILES; each row gets the MOSES metrics (Polykovskiy et al. 2020) against the test
and scaffold-test splits, novelty against the training set and the sample statistics of
Gómez-Bombarelli et al. 2018. One `Reconstructor` per decoding reconstructs each set of
``ReferenceData.reconstruction`` greedily. Every stage is timed (`GenerationRow.timing`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molvae.evaluation import moses, reference, similarity
from molvae.evaluation.chemnet import chemnet, fcd_statistics, frechet_distance
from molvae.evaluation.memo import MoleculeMemo
from molvae.evaluation.published import MOSES_METRICS
from molvae.evaluation.reconstruction import ReconstructionRow, Reconstructor, reconstruction_row
from molvae.evaluation.reference import Log, ReferenceStats, TrainStats


def usable_cpus(cap: int = 8) -> int:
    """CPUs this process may run on (its affinity, not the host's count), at most ``cap``."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    n = len(getaffinity(0)) if getaffinity else (os.cpu_count() or 1)
    return max(1, min(cap, n))


@dataclass
class EvaluateConfig:
    """What ``evaluate`` measures and how much of it.

    ``temperature``, ``decodings`` and ``prior`` are applied by the caller's callables (see
    `molvae.runs.evaluate_model`) and recorded here so the written metrics say how the samples
    were drawn. ``n_jobs`` worker processes do the RDKit work of large sets; ``device`` runs
    ChemNet and the fingerprint products. ``cache`` keeps reference statistics on disk
    (`molvae.evaluation.reference`).
    """

    n_samples: int = 30000
    n_reconstruct: int = 2000
    n_recon_attempts: int = 1  # more than 1 adds majority-of-k reconstruction (Kusner et al.)
    temperature: float = 1.0
    seed: int = 0
    decodings: tuple[str, ...] = ("raw", "grammar")
    prior: str = "all"  # N(0, I) + learned when there is one; or gaussian, learned
    compute_fcd: bool = True
    compute_filters: bool = True
    n_train_properties: int = 30000
    n_jobs: int = field(default_factory=usable_cpus)
    device: str = "cpu"
    cache: bool = True
    # the ELBO and the IWAE bound (Burda et al. 2015, K = iwae_samples) of this many test
    # molecules, in nats per molecule (0 = not measured)
    n_likelihood: int = 1000
    iwae_samples: int = 50

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.n_likelihood < 0 or self.iwae_samples < 1:
            raise ValueError("n_likelihood must be >= 0 and iwae_samples >= 1")
        if self.n_reconstruct < 0 or self.n_recon_attempts < 1:
            raise ValueError("n_reconstruct must be >= 0 and n_recon_attempts >= 1")
        unknown = set(self.decodings) - {"raw", "grammar"}
        if not self.decodings or unknown:
            raise ValueError(f"decodings must be 'raw' and/or 'grammar', got {self.decodings}")
        self.decodings = tuple(self.decodings)


@dataclass
class Sampler:
    """One row: ``sample(n, seed)`` returns ``n`` SMILES from ``prior`` decoded by ``decoding``."""

    prior: str
    decoding: str
    sample: Callable[[int, int], list[str]]


@dataclass
class ReferenceData:
    """The molecules the samples are measured against, with a line saying what each set is.

    ``test_scaffolds`` None skips the TestSF columns; ``test_scaffolds_name`` then says why.
    ``reconstruction``: name -> molecules to reconstruct (at most ``n_reconstruct`` of each).
    """

    test: list[str]
    test_name: str
    train: list[str]
    train_name: str
    test_scaffolds: list[str] | None = None
    test_scaffolds_name: str = ""
    reconstruction: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class GenerationRow:
    """The MOSES metrics (keys `MOSES_METRICS`, NaN where not computed) of one sampler."""

    prior: str
    decoding: str
    n_samples: int
    n_valid: int
    metrics: dict[str, float]
    properties: dict[str, dict[str, float]]  # logP/SAS/QED/MW -> mean, std, n
    timing: dict[str, float]
    property_values: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    samples: list[str] = field(repr=False, default_factory=list)


@dataclass
class EvaluationResult:
    """Everything ``evaluate`` measured; `molvae.evaluation.report` writes it."""

    config: EvaluateConfig
    rows: list[GenerationRow]
    reconstruction: list[ReconstructionRow]
    references: dict[str, str]  # test, test_scaffolds (or why skipped), train
    train_properties: dict[str, dict[str, float]]
    timing: dict[str, float]  # references, reconstruction, total
    train_property_values: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    # ELBO and IWAE of test molecules (`molvae.model.likelihood.LikelihoodBounds.summary`, plus
    # "set"); None when not measured
    likelihood: dict[str, Any] | None = None


def summarize(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (ddof 1) and count per property; NaN where too few values."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        mean = float(v.mean()) if len(v) else math.nan
        out[name] = {"mean": mean, "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                     "n": len(v)}  # fmt: skip
    return out


def evaluate(
    samplers: list[Sampler],
    reconstructors: list[Reconstructor],
    data: ReferenceData,
    config: EvaluateConfig,
    log: Log | None = None,
    likelihood: Callable[[list[str]], dict[str, Any]] | None = None,
) -> EvaluationResult:
    """Every sampler's MOSES metrics and sample statistics, every reconstructor's greedy
    reconstruction of each set in ``data.reconstruction``, and ``likelihood`` (a summary of
    the bounds on log p(x)) of the first ``config.n_likelihood`` test molecules."""
    t0 = time.perf_counter()
    test, scaf, train = _references(data, config, log)
    t_ref = time.perf_counter() - t0
    rows = []
    memo = MoleculeMemo(config.compute_filters, config.n_jobs, config.device)
    for sampler in samplers:
        if log:
            log(f"sampling {config.n_samples:,} ({sampler.prior}, {sampler.decoding})")
        rows.append(_generation_row(sampler, test, scaf, train, config, memo))
    t = time.perf_counter()
    recon = [
        reconstruction_row(name, smiles, r, config.n_reconstruct, config.n_recon_attempts,
                           config.seed + 1)
        for r in reconstructors
        for name, smiles in data.reconstruction.items()
    ]  # fmt: skip
    t_recon = time.perf_counter() - t
    bounds = None
    t = time.perf_counter()
    if likelihood is not None and config.n_likelihood > 0:
        if log:
            log(f"ELBO and IWAE (K={config.iwae_samples}) of {config.n_likelihood:,} test "
                "molecules")  # fmt: skip
        bounds = {**likelihood(list(data.test[: config.n_likelihood])), "set": data.test_name}
    t_lik = time.perf_counter() - t
    refs = {
        "test": data.test_name,
        "test_scaffolds": data.test_scaffolds_name,
        "train": data.train_name,
    }
    timing = {"references_s": t_ref, "reconstruction_s": t_recon, "likelihood_s": t_lik,
              "total_s": time.perf_counter() - t0}  # fmt: skip
    return EvaluationResult(
        config, rows, recon, refs, summarize(train.properties), timing, train.properties, bounds
    )


def _references(
    data: ReferenceData, config: EvaluateConfig, log: Log | None
) -> tuple[ReferenceStats, ReferenceStats | None, TrainStats]:
    kw = {"fcd": config.compute_fcd, "device": config.device, "n_jobs": config.n_jobs,
          "cache": config.cache, "log": log}  # fmt: skip
    test = reference.reference_stats("Test", data.test, data.test_name, **kw)
    scaf = None
    if data.test_scaffolds is not None:
        scaf = reference.reference_stats(
            "TestSF", data.test_scaffolds, data.test_scaffolds_name, **kw
        )
    train = reference.train_stats(
        data.train, data.train_name, config.n_train_properties, config.seed,
        n_jobs=config.n_jobs, cache=config.cache, log=log,
    )  # fmt: skip
    return test, scaf, train


class _Clock:
    """Seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.timing: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timing[f"{stage}_s"] = self.timing.get(f"{stage}_s", 0.0) + now - self._t
        self._t = now


def _generation_row(
    sampler: Sampler,
    test: ReferenceStats,
    scaf: ReferenceStats | None,
    train: TrainStats,
    config: EvaluateConfig,
    memo: MoleculeMemo,
) -> GenerationRow:
    clock = _Clock()
    samples = list(sampler.sample(config.n_samples, config.seed))
    if len(samples) != config.n_samples:
        raise ValueError(f"sampler returned {len(samples)} SMILES, expected {config.n_samples}")
    clock.lap("sample")
    valid = [c for c in moses.canonical_all(samples, config.n_jobs) if c is not None]
    m = dict.fromkeys(MOSES_METRICS, math.nan)
    m["valid"] = len(valid) / len(samples)
    for k, key in ((1000, "unique@1k"), (10000, "unique@10k")):
        m[key] = len(set(valid[:k])) / len(valid[:k]) if valid else math.nan
    m["Novelty"] = reference.novelty(valid, train)
    clock.lap("canonical_novelty")
    refs = [r for r in (test, scaf) if r is not None]
    described = _set_metrics(valid, refs, config, memo, m, clock)
    values = {
        name: np.array([r[name] for r in described], dtype=np.float64)
        for name in moses.PROPERTY_NAMES
    }
    return GenerationRow(
        sampler.prior, sampler.decoding, len(samples), len(valid), m, summarize(values),
        clock.timing, values, samples,
    )  # fmt: skip


def _set_metrics(
    valid: list[str],
    refs: list[ReferenceStats],
    config: EvaluateConfig,
    memo: MoleculeMemo,
    m: dict[str, float],
    clock: _Clock,
) -> list[dict[str, Any]]:
    """IntDiv, Filters, SNN/Frag/Scaf and FCD of the valid samples into ``m``; returns the
    per-sample descriptors (`moses.describe`). Each distinct molecule is described once per
    evaluation (``memo``), whichever row drew it first."""
    unique = list(dict.fromkeys(valid))
    index = {s: i for i, s in enumerate(unique)}
    back = np.array([index[s] for s in valid], dtype=np.int64)
    rows = memo.described(unique)
    described = [rows[i] for i in back]
    if config.compute_filters and valid:
        m["Filters"] = float(np.mean([r["filters"] for r in described]))
    clock.lap("rdkit_descriptors")
    fps = memo.fingerprints(unique)[back]
    div = similarity.internal_diversities(fps, (1, 2), config.device)
    m["IntDiv"], m["IntDiv2"] = div[1], div[2]
    clock.lap("intdiv")
    if not valid:
        return described
    frags, scafs = moses.count(described, "fragments"), moses.count(described, "scaffold")
    for ref in refs:
        best = memo.max_tanimoto(unique, ref.label, ref.fingerprints)  # NaN for an empty ref
        m[f"SNN/{ref.label}"] = float(best[back].mean())
        m[f"Frag/{ref.label}"] = moses.cos_similarity(ref.fragments, frags)
        m[f"Scaf/{ref.label}"] = moses.cos_similarity(ref.scaffolds, scafs)
    clock.lap("snn_frag_scaf")
    if config.compute_fcd and len(valid) >= 2:
        acts = memo.activations(unique, lambda: chemnet(config.device))[back]
        mu, sigma = fcd_statistics(acts)
        for ref in refs:
            if ref.fcd_mu is not None:
                m[f"FCD/{ref.label}"] = frechet_distance(mu, sigma, ref.fcd_mu, ref.fcd_sigma)
        clock.lap("fcd")
    return described
