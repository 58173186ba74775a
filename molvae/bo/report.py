"""Campaign reports: best-so-far trace, grid image of the top molecules, a Markdown summary.

Reads a campaign through ``molvae.bo.store`` (never the loop); writes through ``molvae.io``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo.metrics import PMO_FREQ_LOG, campaign_metrics
from molvae.bo.store import STATUSES, CampaignResult, load_campaign, top_molecules
from molvae.io import markdown_table, write_bytes, write_text, write_with


def best_so_far(history: pd.DataFrame) -> pd.DataFrame:
    """Best score after each oracle call: columns ``evaluations`` (1..n ok rows), ``best``,
    ``iteration``, in recording order. Invalid, duplicate and failed rows cost no oracle call.
    """
    if history.empty:
        return pd.DataFrame({"evaluations": [], "best": [], "iteration": []})
    ok = history[(history["status"] == "ok") & np.isfinite(history["score"].astype(float))]
    return pd.DataFrame({
        "evaluations": np.arange(1, len(ok) + 1),
        "best": np.maximum.accumulate(ok["score"].to_numpy(dtype=float)),
        "iteration": ok["iteration"].to_numpy(),
    })  # fmt: skip


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_trace(ax, history: pd.DataFrame, label: str, mark_init: bool) -> None:
    trace = best_so_far(history)
    ax.step(trace["evaluations"], trace["best"], where="post", label=label)
    n_init = int((trace["iteration"] == 0).sum())
    if mark_init and n_init:
        ax.axvline(n_init, color="grey", linestyle="--", linewidth=1)
        ax.annotate("initial design", (n_init, ax.get_ylim()[0]), fontsize=8, rotation=90,
                    va="bottom", ha="right", color="grey")  # fmt: skip


def _as_result(campaign: CampaignResult | str | Path) -> CampaignResult:
    return load_campaign(campaign) if isinstance(campaign, (str, Path)) else campaign


def plot_trace(result: CampaignResult, path: Path) -> Path:
    """Best-so-far score vs number of scored molecules, the initial design marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    _plot_trace(ax, result.history, result.kind, mark_init=True)
    ax.set_xlabel("molecules scored (oracle calls)")
    ax.set_ylabel("best score so far")
    ax.set_title(f"{result.kind} campaign: best {result.best_score:.3f}")
    fig.tight_layout()
    path = _save_figure(fig, path)
    plt.close(fig)
    return path


def _save_figure(fig, path: str | Path) -> Path:
    # the format follows the file name's suffix, as savefig(path) did (".png": PNG)
    fmt = Path(path).suffix[1:].lower() or "png"
    return write_with(path, lambda f: fig.savefig(f, format=fmt, dpi=100))


def compare_traces(results: dict[str, CampaignResult], path: str | Path) -> Path:
    """Best-so-far traces of several campaigns (e.g. BO vs random search) on one plot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(results.items()):
        _plot_trace(ax, result.history, name, mark_init=i == 0)
    ax.set_xlabel("molecules scored (oracle calls)")
    ax.set_ylabel("best score so far")
    ax.legend()
    fig.tight_layout()
    path = _save_figure(fig, path)
    plt.close(fig)
    return path


def plot_top_molecules(top: pd.DataFrame, path: Path, per_row: int = 4) -> Path | None:
    """Grid image of ``top`` (canonical, score) with score legends; None if none parse."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Draw

    RDLogger.DisableLog("rdApp.*")
    mols, legends = [], []
    for can, score in zip(top["canonical"], top["score"], strict=True):
        mol = Chem.MolFromSmiles(str(can))
        if mol is not None:
            mols.append(mol)
            legends.append(f"{score:.3f}")
    if not mols:
        return None
    png = Draw.MolsToGridImage(
        mols, molsPerRow=min(per_row, len(mols)), subImgSize=(250, 250), legends=legends,
        returnPNG=True,
    )  # fmt: skip
    if not isinstance(png, bytes):  # older RDKit returns a PIL image
        import io

        buf = io.BytesIO()
        png.save(buf, format="PNG")
        png = buf.getvalue()
    return write_bytes(path, png)


def _scores_line(result: CampaignResult) -> str:
    m = campaign_metrics(result.history, result.config.budget)
    return (
        f"Proposed molecules scored: {m['scored']}; best {m['best']:.4f}, top-10 mean "
        f"{m['top10_mean']:.4f}, **top-10 AUC {m['top10_auc']:.4f}** (PMO benchmark: the "
        f"running top-10 mean integrated over oracle calls every {PMO_FREQ_LOG}, divided by the "
        f"budget of {result.config.budget}; padded with its last value when fewer were "
        "scored; initial design excluded)."
    )


# Per iteration: what was proposed and what it decoded to (new-molecule rate, duplicates and
# invalid rows, and before re-drawing), the trust region and its restarts, timings.
_ITERATION_COLUMNS = (
    "iteration", "source", "q", "n_ok", "n_new", "new_rate", "duplicate_rate", "invalid_rate",
    "primary_duplicate", "primary_invalid", "redrawn_attempt", "redrawn_spare", "best",
    "tr_length", "tr_restarted", "tr_center", "gp_points", "fit_s", "acq_s", "wall_s",
    "fallback",
)  # fmt: skip


def _iterations_table(iterations: pd.DataFrame) -> str:
    cols = [c for c in _ITERATION_COLUMNS if c in iterations.columns]
    table = iterations[cols].copy()
    for c in ("new_rate", "duplicate_rate", "invalid_rate"):
        if c in table.columns:
            table[c] = table[c].map(lambda v: f"{100 * v:.0f}%")
    return markdown_table(table)


def summary_markdown(result: CampaignResult, images: dict[str, Path], top_k: int = 12) -> str:
    """The Markdown summary page of a campaign."""
    top = top_molecules(result.history, top_k)
    h = result.history
    new = h[h["iteration"] > 0] if len(h) else h
    counts = h["status"].value_counts() if len(h) else pd.Series(dtype=int)
    validity = float((new["canonical"] != "").mean()) if len(new) else math.nan
    settings = pd.DataFrame({"setting": list(asdict(result.config)), "value": [
        str(v) for v in asdict(result.config).values()]})  # fmt: skip
    status = pd.DataFrame({
        "status": list(STATUSES),
        "all rows": [int(counts.get(s, 0)) for s in STATUSES],
        "proposed (iteration > 0)": [
            int((new["status"] == s).sum()) if len(new) else 0 for s in STATUSES
        ],
    })  # fmt: skip
    parts = [
        f"# {result.kind} campaign: {result.out_dir.name}",
        f"Best: **{result.best_score:.4f}** `{result.best_smiles}`",
        f"Proposals after the initial design: {len(new)}; valid: {validity:.3f}; "
        f"scored: {int((new['status'] == 'ok').sum()) if len(new) else 0} ok, "
        f"{int((new['status'] == 'infeasible').sum()) if len(new) else 0} infeasible "
        f"(budget {result.config.budget}).",
        f"Stopped: {result.stop_reason or 'not yet (the campaign is running or was cut off)'}.",
        _scores_line(result),
        "## Counts by status", markdown_table(status),
        "## Top molecules", markdown_table(top) if len(top) else "(none)",
    ]  # fmt: skip
    if len(result.iterations):
        parts += ["## Iterations", _iterations_table(result.iterations)]
    parts += ["## Settings", markdown_table(settings)]
    if result.metadata:
        parts += ["## Run metadata", "\n".join(f"- {k}: {v}" for k, v in result.metadata.items())]
    parts += ["## Images", *(f"![{name}]({p.name})" for name, p in images.items())]
    return "\n\n".join(parts) + "\n"


def write_report(campaign: CampaignResult | str | Path, top_k: int = 12) -> dict[str, Path]:
    """Write ``trace.png``, ``top_molecules.png`` and ``summary.md`` into ``out_dir/report/``.

    Returns the written files by name (``top_molecules`` is missing when nothing parses).
    """
    result = _as_result(campaign)
    report_dir = Path(result.out_dir) / "report"
    images: dict[str, Path] = {"trace": plot_trace(result, report_dir / "trace.png")}
    grid = plot_top_molecules(
        top_molecules(result.history, top_k), report_dir / "top_molecules.png"
    )
    if grid is not None:
        images["top_molecules"] = grid
    summary = write_text(report_dir / "summary.md", summary_markdown(result, images, top_k))
    return {**images, "summary": summary}
