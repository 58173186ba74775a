"""End-to-end demo time: ``molvae optimize`` with its defaults in a fresh temp directory.

    python pipelines/benchmarks/demo_time.py              # the default campaign, as `make demo`
    python pipelines/benchmarks/demo_time.py --smoke --model runs/smoke/best.pt   # seconds

Runs the ``molvae`` command in a subprocess (so import and model-loading time count, as for a
user), then reads the campaign it wrote: wall time, per-iteration times, what was proposed and
the best score. ``--smoke`` shrinks the campaign (budget 4, q 2, 1 iteration, initial design 10).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from molvae.bo import load_campaign
from molvae.io import markdown_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/benchmarks/demo_time")
    p.add_argument("--smoke", action="store_true", help="a 1-iteration campaign of 2")
    a = p.parse_args(argv)
    # the campaign `make demo` runs (Makefile), or a 1-iteration one for the tests
    demo = ["--budget", "100", "--batch-size", "25"]
    extra = ["--budget", "4", "-q", "2", "--iterations", "1", "--n-init", "10"] if a.smoke else demo
    if a.threads:
        extra += ["--threads", str(a.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        camp = Path(tmp) / "demo"
        cmd = [sys.executable, "-m", "molvae.cli", "optimize", "--model", a.model,
               "--no-progress", "--out", str(camp), *extra]  # fmt: skip
        t0 = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            print(run.stderr.strip()[-2000:], file=sys.stderr)
            return run.returncode
        res = load_campaign(camp)
        h = res.history
        own = h[h["iteration"] > 0]
        row = {"command": " ".join(["molvae optimize --model", a.model, *extra]), "wall_s": wall,
               "iterations": len(res.iteration_times),
               "mean_iteration_s": sum(res.iteration_times) / max(len(res.iteration_times), 1),
               "proposals": len(own), "ok": int((own["status"] == "ok").sum()),
               "valid_rate": float((own["canonical"] != "").mean()) if len(own) else float("nan"),
               "best_score": res.best_score, "report": (camp / "report").is_dir()}  # fmt: skip
    df = pd.DataFrame([row])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = f"# End-to-end demo time\n\n{markdown_table(df)}\n\n{os.cpu_count()} CPUs\n"
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
