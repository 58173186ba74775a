"""Campaign reports: best-so-far trace, grid image of the top molecules, a Markdown summary.

Reads a campaign through ``molvae.bo.store`` (never the loop); writes through ``molvae.io``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo.accounting import CALLED, charged_rows
from molvae.bo.html_report import read_campaign, write_html_report
from molvae.bo.iteration_table import iteration_table
from molvae.bo.metrics import PMO_FREQ_LOG, campaign_metrics
from molvae.bo.pareto import pareto_table
from molvae.bo.pareto_charts import objective_labels
from molvae.bo.store import STATUSES, CampaignResult, top_molecules
from molvae.bo.substructures import substructures
from molvae.io import markdown_table, write_bytes, write_text, write_with


def best_so_far(history: pd.DataFrame, free_pool: bool = False) -> pd.DataFrame:
    """Best score after each call of the objective: columns ``evaluations`` (the oracle calls
    charged so far, `molvae.bo.accounting.charged_rows`), ``best`` (NaN before the first ok
    molecule), ``iteration``, in recording order. A call that cost nothing (init data, a free
    pool) stays at the count before it; duplicate and invalid rows reach no objective.
    """
    if history.empty:
        return pd.DataFrame({"evaluations": [], "best": [], "iteration": []})
    called = history["status"].isin(CALLED)
    rows = history[called]
    ok = (rows["status"] == "ok").to_numpy(dtype=bool)
    score = np.where(ok, rows["score"].to_numpy(dtype=float), np.nan)
    return pd.DataFrame({
        "evaluations": np.cumsum(charged_rows(history, free_pool)[called].to_numpy(dtype=int)),
        "best": np.fmax.accumulate(score) if len(score) else score,
        "iteration": rows["iteration"].to_numpy(),
    })  # fmt: skip


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_trace(ax, result: CampaignResult, label: str, mark_init: bool) -> None:
    trace = best_so_far(result.history, result.config.free_pool)
    ax.step(trace["evaluations"], trace["best"], where="post", label=label)
    # the calls the initial design was charged (none with a free pool: it starts at 0)
    init = trace.loc[trace["iteration"] == 0, "evaluations"]
    n_init = int(init.max()) if len(init) else 0
    if mark_init and n_init:
        ax.axvline(n_init, color="grey", linestyle="--", linewidth=1)
        ax.annotate("initial design", (n_init, ax.get_ylim()[0]), fontsize=8, rotation=90,
                    va="bottom", ha="right", color="grey")  # fmt: skip


def _as_result(campaign: CampaignResult | str | Path) -> CampaignResult:
    return read_campaign(campaign)  # a directory that is no campaign: one clear error


def plot_trace(result: CampaignResult, path: Path) -> Path:
    """Best-so-far score vs oracle calls charged, the charged initial design marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    _plot_trace(ax, result, result.kind, mark_init=True)
    ax.set_xlabel("oracle calls")
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
        _plot_trace(ax, result, name, mark_init=i == 0)
    ax.set_xlabel("oracle calls")
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
    cfg = result.config
    m = campaign_metrics(result.history, cfg.budget, free_pool=cfg.free_pool)
    which = ("the proposals' (free pool: initial design excluded)" if cfg.free_pool
             else "every charged call's, the initial pool included")  # fmt: skip
    return (
        f"Oracle calls scored: {m['scored']}; best {m['best']:.4f}, top-10 mean "
        f"{m['top10_mean']:.4f}, **top-10 AUC {m['top10_auc']:.4f}** (PMO benchmark: the "
        f"running top-10 mean integrated over oracle calls every {PMO_FREQ_LOG}, divided by the "
        f"budget of {cfg.budget}; padded with its last value when fewer were made; {which})."
    )


def oracle_calls_line(result: CampaignResult) -> str:
    """One sentence: the oracle calls spent of the budget, and what was scored for free."""
    c = result.oracle_counts()
    return (f"Oracle calls spent: {c['calls']} of {c['budget']} (initial pool {c['pool']}, "
            f"proposals {c['proposals']}; free: {c['free_data']} from --init-data / "
            f"{c['free_pool']} free pool).")  # fmt: skip


def _iterations_table(iterations: pd.DataFrame) -> str:
    return markdown_table(iteration_table(iterations))


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
        f"{int((new['status'] == 'infeasible').sum()) if len(new) else 0} infeasible.",
        oracle_calls_line(result),
        f"Stopped: {result.stop_reason or 'not yet (the campaign is running or was cut off)'}.",
        _scores_line(result),
        "## Counts by status", markdown_table(status),
        "## Top molecules", markdown_table(top) if len(top) else "(none)",
    ]  # fmt: skip
    if result.config.n_objectives > 1:  # the top molecules above rank by the first objective
        front = pareto_table(h, objective_labels(result.metadata, result.config.n_objectives))
        parts[-2:-2] = ["## Pareto set", markdown_table(front) if len(front) else "(none)"]
    if len(result.iterations):
        parts += ["## Iterations", _iterations_table(result.iterations)]
    parts += ["## Settings", markdown_table(settings)]
    if result.metadata:
        parts += ["## Run metadata", "\n".join(f"- {k}: {v}" for k, v in result.metadata.items())]
    parts += ["## Images", *(f"![{name}]({p.name})" for name, p in images.items())]
    parts += [
        "Interactive report (every scored molecule, trace, latent map): [index.html](index.html)"
    ]
    return "\n\n".join(parts) + "\n"


def write_report(
    campaign: CampaignResult | str | Path, top_k: int = 12, smarts: Iterable[str] = ()
) -> dict[str, Path]:
    """Write ``trace.png``, ``top_molecules.png``, ``summary.md`` and the HTML report
    ``index.html`` (`molvae.bo.html_report.write_html_report`, its substructure filter with the
    extra ``smarts``) into ``out_dir/report/``.

    Returns the written files by name (``top_molecules`` is missing when nothing parses). An
    invalid SMARTS raises ValueError before anything is written.
    """
    smarts = list(smarts)
    substructures(smarts)
    result = _as_result(campaign)
    report_dir = Path(result.out_dir) / "report"
    images: dict[str, Path] = {"trace": plot_trace(result, report_dir / "trace.png")}
    grid = plot_top_molecules(
        top_molecules(result.history, top_k), report_dir / "top_molecules.png"
    )
    if grid is not None:
        images["top_molecules"] = grid
    summary = write_text(report_dir / "summary.md", summary_markdown(result, images, top_k))
    return {**images, "summary": summary, "html": write_html_report(result, smarts)}
