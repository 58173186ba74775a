"""Time to write a campaign's HTML report (``report/index.html``) for N scored molecules.

    python pipelines/benchmarks/html_report_time.py               # 1,000 molecules
    python pipelines/benchmarks/html_report_time.py --n 10000     # a long campaign
    python pipelines/benchmarks/html_report_time.py --smoke       # 60 molecules, seconds

Builds a synthetic campaign directory (bundled ZINC test molecules, random 56-d latents, random
scores, batches of 25 with a trust-region record per iteration) and times
`molvae.bo.write_html_report`: ``cold`` draws every picture (no depiction cache), ``warm``
rewrites it with the cache (what a campaign pays at its next report), ``warm+25`` after one
more batch of 25 new molecules, and ``write_report`` the whole report (PNGs, Markdown, HTML).
Writes ``results.csv`` and ``results.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo import BOConfig, CampaignStore, write_html_report, write_report
from molvae.io import markdown_table
from molvae.resources import data_dir

DIM, BATCH = 56, 25


def _rows(smiles: list[str], start: int, rng: np.random.Generator) -> list[dict]:
    return [{"iteration": (start + i) // BATCH, "index": (start + i) % BATCH, "source": "bo",
             "smiles": s, "canonical": s, "score": float(rng.random()), "status": "ok",
             "valid_fraction": 1.0, "z": rng.standard_normal(DIM)}
            for i, s in enumerate(smiles)]  # fmt: skip


def _state(store: CampaignStore, n: int) -> None:
    records = [{"iteration": t, "source": "bo", "q": BATCH, "n_ok": BATCH, "n_new": BATCH,
                "new_rate": 1.0, "duplicate_rate": 0.0, "invalid_rate": 0.0, "best": 1.0,
                "tr_length": 0.8, "tr_restarted": False, "tr_center": None, "wall_s": 1.0}
               for t in range(1, n // BATCH)]  # fmt: skip
    store.write_state({"iteration": len(records), "iterations": records, "oracle_calls": n,
                       "budget": n + BATCH})  # fmt: skip


def make_campaign(out: Path, smiles: list[str], seed: int = 0) -> CampaignStore:
    """A campaign directory whose history scores ``smiles`` (ok, random scores)."""
    store = CampaignStore(out, writer=True)
    cfg = BOConfig(budget=len(smiles) + BATCH, batch_size=BATCH)
    store.write_config({"kind": "bo", "config": asdict(cfg),
                        "metadata": {"run": {"objective": "qed"}}})  # fmt: skip
    store.append_rows(_rows(smiles, 0, np.random.default_rng(seed)), DIM)
    _state(store, len(smiles))
    return store


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="scored molecules")
    parser.add_argument("--smoke", action="store_true", help="60 molecules")
    parser.add_argument("--out", default="runs/benchmarks/html_report_time")
    args = parser.parse_args(argv)
    n = 60 if args.smoke else args.n
    zinc = pd.read_csv(data_dir() / "zinc" / "test.csv.gz")["SMILES"].drop_duplicates()
    smiles = list(zinc.head(n + BATCH))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "campaign"
        store = make_campaign(out, smiles[:n])
        times = {"cold": _timed(lambda: write_html_report(out)),
                 "warm": _timed(lambda: write_html_report(out))}  # fmt: skip
        store.append_rows(_rows(smiles[n:], n, np.random.default_rng(1)), DIM)
        times["warm+25"] = _timed(lambda: write_html_report(out))
        times["write_report"] = _timed(lambda: write_report(out))
        size = (out / "report" / "index.html").stat().st_size
    df = pd.DataFrame([{"molecules": n, **{f"{k}_s": round(v, 3) for k, v in times.items()},
                        "index_html_mb": round(size / 1e6, 2)}])  # fmt: skip
    results = Path(args.out)
    results.mkdir(parents=True, exist_ok=True)
    df.to_csv(results / "results.csv", index=False)
    text = (f"# Time to write the HTML report\n\n{markdown_table(df)}\n\n{os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()})\n")  # fmt: skip
    (results / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
