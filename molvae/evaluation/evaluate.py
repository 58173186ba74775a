"""``molvae evaluate`` as a library function, decoupled from the model by callables.

``evaluate`` samples from the prior, reconstructs held-out molecules and computes the MOSES
generation metrics, reconstruction accuracy and property statistics; ``write_evaluation`` puts
them next to the published numbers (REFERENCES.md) in ``metrics.json``, ``metrics.md`` and
``property_histograms.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from molvae import chem, metrics

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class EvaluateConfig:
    """What ``evaluate`` measures and how much of it.

    ``temperature`` and ``constrained`` (decoding through the SMILES grammar,
    `molvae.grammar`) are not applied here: the caller's callables use them; they are recorded
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

    t = time.perf_counter()
    valid = [c for c in (chem.canonical(s) for s in samples) if c is not None]
    validity = len(valid) / len(samples)
    # MOSES computes unique@k, novelty and IntDiv on the valid samples only.
    unique_1k = _unique_or_nan(valid, 1000)
    unique_10k = _unique_or_nan(valid, 10000)
    novelty = metrics.novelty(valid, train_smiles, canonicalize_train=config.canonicalize_train)
    intdiv = metrics.internal_diversity(
        valid, p=1, subsample=config.intdiv_subsample, seed=config.seed
    )
    timing.generation_metrics_s = time.perf_counter() - t

    reference = _pick(test_smiles, config.fcd_reference_size, config.seed)
    fcd_test = math.nan
    if config.compute_fcd and len(valid) >= 2:
        t = time.perf_counter()
        fcd_test = metrics.fcd_score(valid, reference)
        timing.fcd_s = time.perf_counter() - t

    t = time.perf_counter()
    inputs = _pick(test_smiles, config.n_reconstruct, config.seed + 1)
    recon_greedy = recon_majority = math.nan
    if inputs:
        recon_greedy = metrics.reconstruction_accuracy(inputs, reconstruct_fn(inputs))
        if reconstruct_attempts_fn is not None:
            attempts = reconstruct_attempts_fn(inputs, config.n_recon_attempts)
            recon_majority = metrics.majority_reconstruction_accuracy(inputs, attempts)
    timing.reconstruct_s = time.perf_counter() - t

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
        validity=validity,
        unique_at_1k=unique_1k,
        unique_at_10k=unique_10k,
        novelty=novelty,
        fcd_test=fcd_test,
        intdiv=intdiv,
        recon_greedy=recon_greedy,
        recon_majority=recon_majority,
        n_reconstructed=len(inputs),
        n_fcd_reference=len(reference),
        property_stats_data=metrics.summarize_properties(props_data),
        property_stats_samples=metrics.summarize_properties(props_samples),
        timing=timing,
        properties_data=props_data[props_data["valid"]].reset_index(drop=True),
        properties_samples=props_samples[props_samples["valid"]].reset_index(drop=True),
        samples=samples,
    )


def _unique_or_nan(valid: list[str], k: int) -> float:
    """unique@k, silently on fewer than ``k`` molecules (the markdown states the sample size)."""
    if not valid:
        return math.nan
    head = valid[:k]
    return len(set(head)) / len(head)


# --------------------------------------------------------------------------- writing

# Published rows from REFERENCES.md.
MOSES_ROWS = (
    ("MOSES VAE (published)", 0.977, 0.998, 0.099, 0.856, 0.695),
    ("MOSES CharRNN (published)", 0.975, 0.999, 0.073, 0.856, 0.842),
)
RECON_ROWS = (
    ("Character VAE, Gómez-Bombarelli et al. (published)", "44.6%", "0.7%"),
    ("Grammar VAE (published)", "53.7%", "7.2%"),
    ("SD-VAE (published)", "76.2%", "43.5%"),
    ("JT-VAE (published)", "76.7%", "100%"),
)
GB_ROWS = (
    ("ZINC data (published)", "2.46 (1.43)", "3.05 (0.83)", "0.73 (0.14)"),
    ("Gómez-Bombarelli VAE samples (published)", "2.67 (1.46)", "3.18 (0.86)", "0.70 (0.14)"),
)


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _mean_std(stats: pd.DataFrame, row: str) -> str:
    return f"{_fmt(stats.loc[row, 'mean'], 2)} ({_fmt(stats.loc[row, 'std'], 2)})"


def render_markdown(result: EvaluationResult, model_name: str = "molvae") -> str:
    """The three comparison tables of ``metrics.md`` as one markdown string."""
    r, c = result, result.config
    lines = [
        f"# Evaluation of {model_name}",
        "",
        "## Generation quality (MOSES metrics)",
        "",
        f"{r.n_samples} samples from the prior (temperature {c.temperature}, "
        f"{'grammar-constrained' if c.constrained else 'unconstrained'} decoding, seed {c.seed}); "
        f"FCD against {r.n_fcd_reference} test "
        "molecules. Published rows use the whole MOSES test set; ours the reference molecules "
        "given to `evaluate` (`molvae evaluate`: the first `--max-reference` of the MOSES test "
        "split by default).",
        "",
        "Model | Valid | Unique@10k | FCD/Test | IntDiv | Novelty",
        "---|---|---|---|---|---",
        f"{model_name} (this run) | {_fmt(r.validity)} | {_fmt(r.unique_at_10k)} | "
        f"{_fmt(r.fcd_test)} | {_fmt(r.intdiv)} | {_fmt(r.novelty)}",
    ]
    lines += [" | ".join([name, *(f"{v:.3f}" for v in vals)]) for name, *vals in MOSES_ROWS]
    if r.n_valid < 10000:
        lines += ["", f"Unique@10k computed on only {r.n_valid} valid samples."]
    majority = f"majority of {c.n_recon_attempts} decodes"
    lines += [
        "",
        "## Reconstruction and prior validity (Kusner et al. 2017; Jin et al. 2018)",
        "",
        f"{r.n_reconstructed} test molecules; reconstruction = canonical SMILES match.",
        "",
        "Model | Reconstruction | Valid prior samples",
        "---|---|---",
        f"{model_name} ({majority}) | {_pct(r.recon_majority)} | {_pct(r.validity)}",
        f"{model_name} (greedy) | {_pct(r.recon_greedy)} | {_pct(r.validity)}",
    ]
    lines += [" | ".join(row) for row in RECON_ROWS]
    lines += [
        "",
        "## Sample statistics, mean (std) (Gómez-Bombarelli et al. 2018, Table 1)",
        "",
        "Source | logP | SAS | QED",
        "---|---|---|---",
    ]
    lines += [" | ".join(row) for row in GB_ROWS]
    for name, stats in (
        ("Test data (this run)", r.property_stats_data),
        (f"{model_name} samples (this run)", r.property_stats_samples),
    ):
        lines.append(" | ".join([name, *(_mean_std(stats, k) for k in ("logP", "SAS", "QED"))]))
    tm = r.timing
    lines += [
        "",
        f"Time: {tm.total_s:.1f} s in all (sampling {tm.sample_s:.1f} s, metrics "
        f"{tm.generation_metrics_s:.1f} s, FCD {tm.fcd_s:.1f} s, reconstruction "
        f"{tm.reconstruct_s:.1f} s, properties {tm.properties_s:.1f} s).",
        "",
    ]
    return "\n".join(lines)


def plot_property_histograms(result: EvaluationResult, path: Path) -> Path:
    """Overlaid density histograms of logP, SAS and QED, data vs samples, saved as PNG."""
    # The object-oriented API renders with Agg without switching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    sources = (("data", result.properties_data), ("samples", result.properties_samples))
    for ax, (label, column) in zip(
        axes, (("logP", "logp"), ("SAS", "sa_score"), ("QED", "qed")), strict=True
    ):
        series = [(n, t[column].dropna().to_numpy()) for n, t in sources if t is not None]
        series = [(n, v) for n, v in series if len(v)]
        if not series:
            continue
        # Shared bin edges so the two distributions are comparable bar for bar.
        edges = np.histogram_bin_edges(np.concatenate([v for _, v in series]), bins=50)
        for name, values in series:
            ax.hist(values, bins=edges, density=True, alpha=0.5, label=f"{name} (n={len(values)})")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    return path


def write_evaluation(
    result: EvaluationResult, out_dir: str | Path, model_name: str = "molvae"
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` and ``property_histograms.png`` into ``out_dir``.

    Returns their paths under the keys ``metrics_json``, ``metrics_md`` and ``histograms``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics_json": out / "metrics.json",
        "metrics_md": out / "metrics.md",
        "histograms": out / "property_histograms.png",
    }
    payload = {"model": model_name, **result.to_dict()}
    paths["metrics_json"].write_text(json.dumps(payload, indent=2) + "\n")
    paths["metrics_md"].write_text(render_markdown(result, model_name))
    plot_property_histograms(result, paths["histograms"])
    return paths
