"""``metrics.json``, ``metrics.md``, the samples and ``property_histograms.png`` of an evaluation.

``metrics.md`` prints our rows beside the published ones (`molvae.evaluation.published`). Every
file is written atomically through `molvae.io`.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from molvae.evaluation.evaluator import EvaluationResult, GenerationRow
from molvae.evaluation.moses import PROPERTY_NAMES
from molvae.evaluation.published import (
    GB_ROWS,
    GB_SOURCE,
    MOSES_METRICS,
    MOSES_ROWS,
    MOSES_SOURCE,
    RECON_ROWS,
    RECON_SOURCE,
)
from molvae.io import write_json, write_text, write_with

TEST_COLUMNS = ("valid", "unique@1k", "unique@10k", "FCD/Test", "SNN/Test", "Frag/Test",
                "Scaf/Test", "IntDiv", "IntDiv2", "Filters", "Novelty")  # fmt: skip
SF_COLUMNS = ("FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF")
PRIOR_NAMES = {"gaussian": "N(0, I)", "learned": "learned"}


def _fmt(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _label(row: GenerationRow, model: str) -> list[str]:
    return [model, PRIOR_NAMES.get(row.prior, row.prior), row.decoding]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [" | ".join(head), "|".join(["---"] * len(head)), *(" | ".join(r) for r in rows)]


def _generation_tables(r: EvaluationResult, model: str) -> list[str]:
    head = ["Model", "prior", "decoding", *TEST_COLUMNS]
    ours = [_label(row, model) + [_fmt(row.metrics[k]) for k in TEST_COLUMNS] for row in r.rows]
    published = [
        [f"{name} (published)", "", "raw"]
        + [_fmt(values[MOSES_METRICS.index(k)]) for k in TEST_COLUMNS]
        for name, values in MOSES_ROWS.items()
    ]
    lines = ["### Against the test split (Test)", "", *_table(head, ours + published), ""]
    lines += ["### Against the scaffold-test split (TestSF)", ""]
    if all(math.isnan(row.metrics["SNN/TestSF"]) for row in r.rows):
        return [*lines, f"Skipped: {r.references['test_scaffolds']}", ""]
    head = ["Model", "prior", "decoding", *SF_COLUMNS]
    ours = [_label(row, model) + [_fmt(row.metrics[k]) for k in SF_COLUMNS] for row in r.rows]
    published = [
        [f"{name} (published)", "", "raw"]
        + [_fmt(values[MOSES_METRICS.index(k)]) for k in SF_COLUMNS]
        for name, values in MOSES_ROWS.items()
    ]
    return [*lines, *_table(head, ours + published), ""]


def _reconstruction_table(r: EvaluationResult, model: str) -> list[str]:
    decodings = list(dict.fromkeys(x.decoding for x in r.reconstruction))
    majority = any(math.isfinite(x.majority) for x in r.reconstruction)
    head = ["Set", "molecules", "encoded", *(f"greedy, {d}" for d in decodings)]
    head += [f"majority of {r.config.n_recon_attempts}, {d}" for d in decodings if majority]
    rows = []
    for name in dict.fromkeys(x.dataset for x in r.reconstruction):
        by = {x.decoding: x for x in r.reconstruction if x.dataset == name}
        first = next(iter(by.values()))
        row = [name, str(first.n), str(first.n_encoded)]
        row += [_pct(by[d].greedy) for d in decodings]
        row += [_pct(by[d].majority) for d in decodings if majority]
        rows.append(row)
    published = [["Model (published, on ZINC-250k)", "Reconstruction", "Valid prior samples"]]
    published += [list(p) for p in RECON_ROWS]
    return [
        f"Greedy decoding of the posterior mean; a hit is the same canonical SMILES. A molecule "
        f"{model} cannot encode (tokens outside its vocabulary, too long) is a miss.",
        "",
        *_table(head, rows),
        "",
        f"Published ({RECON_SOURCE}):",
        "",
        *_table(published[0], published[1:]),
        "",
    ]


def _mean_std(stats: dict[str, dict[str, float]], name: str) -> str:
    return f"{_fmt(stats[name]['mean'], 2)} ({_fmt(stats[name]['std'], 2)})"


def _statistics_table(r: EvaluationResult, model: str) -> list[str]:
    data = r.train_properties
    n_data = data["logP"]["n"]
    rows = [
        [f"Training data ({n_data:,} molecules)", *(_mean_std(data, k) for k in PROPERTY_NAMES)]
    ]
    for row in r.rows:
        p = row.properties
        cells = [
            f"{_mean_std(p, k)} [{p[k]['mean'] - data[k]['mean']:+.2f}]" for k in PROPERTY_NAMES
        ]
        rows.append([" ".join(_label(row, model)) + f" ({row.n_valid:,} valid)", *cells])
    rows += [[name, *values, ""] for name, *values in GB_ROWS]
    return [
        "Mean (std); in brackets the gap of the mean to the training data. Published rows: "
        f"{GB_SOURCE}.",
        "",
        *_table(["Source", *PROPERTY_NAMES], rows),
        "",
    ]


def _timing_lines(r: EvaluationResult, model: str) -> list[str]:
    stages = list(dict.fromkeys(k for row in r.rows for k in row.timing))
    head = ["Row", *(s.removesuffix("_s") for s in stages), "row total"]
    rows = [
        [" ".join(_label(row, model)[1:]), *(f"{row.timing.get(s, 0.0):.1f}" for s in stages),
         f"{sum(row.timing.values()):.1f}"]
        for row in r.rows
    ]  # fmt: skip
    t = r.timing
    return [
        *_table(head, rows),
        "",
        f"References {t['references_s']:.1f} s, reconstruction {t['reconstruction_s']:.1f} s, "
        f"likelihood {t.get('likelihood_s', 0.0):.1f} s, total {t['total_s']:.1f} s.",
        "",
    ]


def _likelihood_lines(r: EvaluationResult, model: str) -> list[str]:
    b = r.likelihood
    if not b:
        return []
    return [
        "## Held-out likelihood (nats per molecule)",
        "",
        f"Bounds on log p(x) of {b['n']:,} molecules of {b['set']}, from the same K = {b['k']} "
        "draws of the encoder per molecule, under the model's training prior N(0, I) (and "
        "p(y) for a conditional model, y unobserved): the ELBO (beta = 1) is the mean of the log "
        "importance weights, the IWAE bound (Burda et al. 2015) their log-mean-exp. ± is the "
        "standard error over molecules.",
        "",
        *_table(
            ["model", "ELBO", f"IWAE (K={b['k']})", "IWAE - ELBO"],
            [
                [
                    model,
                    f"{b['elbo']:.2f} ± {b['elbo_sem']:.2f}",
                    f"{b['iwae']:.2f} ± {b['iwae_sem']:.2f}",
                    f"{b['gap']:.2f}",
                ]
            ],
        ),
    ]


def render_markdown(result: EvaluationResult, model_name: str = "molvae") -> str:
    """``metrics.md``: generation, reconstruction, sample statistics and time per stage."""
    r, c = result, result.config
    raw = "raw: the model's own distribution (unconstrained decoding); grammar: decoded through "
    raw += "the SMILES grammar"
    lines = [
        f"# Evaluation of {model_name}",
        "",
        "## Generation (MOSES protocol)",
        "",
        f"{c.n_samples:,} samples per row (temperature {c.temperature}, seed {c.seed}; {raw}). "
        f"Test: {r.references['test']}. TestSF: {r.references['test_scaffolds']}. Novelty "
        f"against {r.references['train']}. Published rows: {MOSES_SOURCE}, raw decoding from "
        "the N(0, I) prior (the VAEs) or no latent space.",
        "",
        *_generation_tables(r, model_name),
        "## Reconstruction",
        "",
        *_reconstruction_table(r, model_name),
        "## Sample statistics (Gómez-Bombarelli et al. 2018, Table 1, with MW)",
        "",
        *_statistics_table(r, model_name),
        *_likelihood_lines(r, model_name),
        "## Time per stage (seconds)",
        "",
        *_timing_lines(r, model_name),
    ]
    return "\n".join(lines)


def to_dict(result: EvaluationResult) -> dict[str, Any]:
    """``metrics.json``: rows, reconstruction, references, statistics, timing and config; the
    first row's size and validity also at the top (the keys before rows existed)."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, float | np.floating):
            return float(x) if math.isfinite(x) else None
        return x.item() if isinstance(x, np.generic) else x

    skip = ("property_values", "samples")
    rows = [{k: v for k, v in asdict(r).items() if k not in skip} for r in result.rows]
    first = result.rows[0]
    config = asdict(result.config)
    config["constrained"] = "grammar" in result.config.decodings
    return clean({
        "n_samples": first.n_samples, "n_valid": first.n_valid,
        "validity": first.metrics["valid"], "rows": rows,
        "reconstruction": [asdict(r) for r in result.reconstruction],
        "references": result.references, "train_properties": result.train_properties,
        "timing": result.timing, "config": config, "likelihood": result.likelihood,
    })  # fmt: skip


def plot_property_histograms(result: EvaluationResult, path: Path) -> Path:
    """Density histograms of logP, SAS, QED and MW, the training data (black outline) and
    every row overlaid on shared bin edges, saved as PNG."""
    # The object-oriented API renders with Agg without switching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PROPERTY_NAMES))
    for ax, name in zip(axes, PROPERTY_NAMES, strict=True):
        series = [
            (" ".join(_label(row, "")[1:]), row.property_values.get(name, np.array([])))
            for row in result.rows
        ]
        data = np.asarray(result.train_property_values.get(name, []), dtype=np.float64)
        series = [(n, v[np.isfinite(v)]) for n, v in [*series, ("training data", data)] if len(v)]
        if not series:
            continue
        edges = np.histogram_bin_edges(np.concatenate([v for _, v in series]), bins=50)
        for label, values in series:
            style = {"histtype": "step", "color": "k"} if label == "training data" else {}
            ax.hist(values, bins=edges, density=True, alpha=0.5, label=f"{label} (n={len(values)})",
                    **style)  # fmt: skip
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    fmt = Path(path).suffix[1:].lower() or None
    write_with(path, lambda fh: fig.savefig(fh, format=fmt, dpi=110))
    return path


def write_evaluation(
    result: EvaluationResult, out_dir: str | Path, model_name: str = "molvae"
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md``, ``property_histograms.png`` and one
    ``samples-<prior>-<decoding>.smi`` per row into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics_json": out / "metrics.json",
        "metrics_md": out / "metrics.md",
        "histograms": out / "property_histograms.png",
    }
    write_json(paths["metrics_json"], {"model": model_name, **to_dict(result)})
    write_text(paths["metrics_md"], render_markdown(result, model_name))
    plot_property_histograms(result, paths["histograms"])
    for row in result.rows:
        key = f"samples-{row.prior}-{row.decoding}"
        paths[key] = write_text(out / f"{key}.smi", "".join(f"{s}\n" for s in row.samples))
    return paths
