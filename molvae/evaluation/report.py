"""``metrics.json``, ``metrics.md`` and ``property_histograms.png`` of an evaluation.

The published rows come from REFERENCES.md; every file is written atomically through `molvae.io`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from molvae.io import write_json, write_text, write_with

if TYPE_CHECKING:
    import pandas as pd

    from molvae.evaluation.evaluator import EvaluationResult

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
    # A file object carries no suffix: name the format the path's suffix would have chosen.
    fmt = Path(path).suffix[1:].lower() or None
    write_with(path, lambda fh: fig.savefig(fh, format=fmt, dpi=120))
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
    write_json(paths["metrics_json"], {"model": model_name, **result.to_dict()})
    write_text(paths["metrics_md"], render_markdown(result, model_name))
    plot_property_histograms(result, paths["histograms"])
    return paths
