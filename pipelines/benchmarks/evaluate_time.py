"""Where ``molvae evaluate``'s time goes: seconds per stage and per row; prints a table.

    python pipelines/benchmarks/evaluate_time.py                  # 30,000 samples, raw + grammar
    python pipelines/benchmarks/evaluate_time.py --decoding raw   # one row
    python pipelines/benchmarks/evaluate_time.py --smoke          # seconds: 200 samples, 2,000 refs

Runs `molvae.runs.evaluate_model` on the bundled model in this process with the reference
statistics as they are in the cache (``--cold``: a fresh cache in a temp folder, so the one-time
cost of the 176k-molecule references and the train split is measured too; many minutes on a
CPU). Writes ``timing.csv`` and ``timing.md`` under ``--out`` with the evaluation's own files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from molvae.evaluation import EvaluateConfig
from molvae.io import markdown_table, write_text
from molvae.runs import environment, evaluate_model

DECODINGS = {"both": ("raw", "grammar"), "raw": ("raw",), "grammar": ("grammar",)}


def timing_table(result, wall: float) -> pd.DataFrame:
    """One line per (row, stage), then the shared stages and the wall time."""
    rows = [
        {"row": f"{r.prior} {r.decoding}", "stage": k.removesuffix("_s"), "seconds": v}
        for r in result.rows
        for k, v in r.timing.items()
    ]
    rows += [{"row": "all", "stage": k.removesuffix("_s"), "seconds": v}
             for k, v in result.timing.items()]  # fmt: skip
    rows.append({"row": "all", "stage": "wall (incl. loading)", "seconds": wall})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--n-samples", type=int, default=30000)
    p.add_argument("--decoding", choices=list(DECODINGS), default="both")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--cold", action="store_true", help="measure with an empty reference cache")
    p.add_argument("--smoke", action="store_true", help="200 samples against 2,000 references")
    p.add_argument("--out", default="runs/benchmarks/evaluate_time")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    n = 200 if a.smoke else a.n_samples
    extra = {"n_jobs": a.jobs} if a.jobs else {}
    cfg = EvaluateConfig(n_samples=n, n_reconstruct=50 if a.smoke else 2000,
                         decodings=DECODINGS[a.decoding], **extra)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if a.cold:
            os.environ["MOLVAE_CACHE"] = tmp
        t0 = time.perf_counter()
        result = _smoke(a, cfg, tmp) if a.smoke else evaluate_model(a.model, a.out, config=cfg)
        wall = time.perf_counter() - t0
    df = timing_table(result, wall)
    env = environment()
    head = (f"# molvae evaluate: time per stage\n\n{n:,} samples per row, decoding "
            f"{a.decoding}, {'cold' if a.cold else 'warm'} reference cache; {env['platform']}, "
            f"{env['cpu_count']} CPUs, torch threads {env['torch_threads']}, "
            f"gpu {env['gpu']}.\n\n")  # fmt: skip
    table = head + markdown_table(df) + "\n"
    out = Path(a.out)
    df.to_csv(out / "timing.csv", index=False)
    write_text(out / "timing.md", table)
    print(table)
    return 0


def _smoke(a: argparse.Namespace, cfg: EvaluateConfig, tmp: str):
    """The bundled 250k train subset's first 2,000 molecules stand in for the train split."""
    from molvae.data import read_smiles

    train = Path(tmp) / "train.smi"
    write_text(train, "\n".join(read_smiles("zinc")[:2000]) + "\n")
    return evaluate_model(a.model, a.out, config=cfg, max_reference=2000, train=str(train))


if __name__ == "__main__":
    sys.exit(main())
