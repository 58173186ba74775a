"""BO iteration wall time against the number of evaluated points; prints a table.

    python pipelines/benchmarks/bo_scaling.py                 # 1k, 5k, 20k points, q=50, d=56
    python pipelines/benchmarks/bo_scaling.py --smoke         # 200 and 500 points, q=5; seconds

For each size it writes a synthetic campaign directory holding that many evaluations (latents in
d dimensions, scores of a smooth function of z), then times one real `run_campaign` iteration on
it with a fake decoder and objective: reading the history, choosing the GP subset
(``max_gp_points``), fitting the GP, optimizing qLogEI, decoding, scoring, appending, state.
Only the chemistry is fake, so the numbers are the BO machinery's cost. Results go to
``--out/results.csv`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig, run_campaign
from molvae.bo.store import CampaignStore, z_columns
from molvae.io import markdown_table, write_text


def _score(z: np.ndarray) -> np.ndarray:
    """A smooth synthetic objective of ``z: n x d`` (a shifted quadratic with a ripple)."""
    return -((z - 0.5) ** 2).sum(-1) / z.shape[-1] + 0.1 * np.sin(3 * z[..., 0])


def _name(z: np.ndarray) -> str:
    return "M" + hashlib.sha1(np.asarray(z, dtype=np.float64).tobytes()).hexdigest()[:16]


def fake_decode(z: torch.Tensor, n_attempts: int, seed: int) -> list[list[str]]:
    """Each z decodes to its own name (every proposal is new and valid)."""
    return [[_name(row)] * n_attempts for row in z.double().numpy()]


def make_campaign(path: Path, n: int, cfg: BOConfig, dim: int, seed: int = 0) -> int:
    """A finished BO campaign with ``n`` evaluations (``n_init`` initial, then batches of q).

    Returns how many the optimizer proposed (its budget, so a larger budget resumes it)."""
    rng = np.random.default_rng(seed)
    store = CampaignStore(path, writer=True)
    store.write_config({"kind": "bo", "config": asdict(cfg), "metadata": {"synthetic": True}})
    zp = rng.standard_normal((max(cfg.n_init, 1) * 2, dim))
    names = [_name(r) for r in zp]
    pool = pd.DataFrame({"smiles": names, "canonical": names, "score": _score(zp), "status": "ok"})
    store.write_pool(pd.concat([pool, pd.DataFrame(zp, columns=z_columns(dim))], axis=1))
    # the initial design is what the loop would pick from this pool (so it adds nothing)
    from molvae.bo.design import _init_rows

    rows = _init_rows(store.read_pool(), cfg, dim)
    z = rng.standard_normal((max(n - len(rows), 0), dim))
    s = _score(z)
    its = 1 + np.arange(len(z)) // cfg.batch_size
    for i, (zi, si, it) in enumerate(zip(z, s, its, strict=True)):
        rows.append({"iteration": int(it), "index": i % cfg.batch_size, "source": "bo",
                     "smiles": _name(zi), "canonical": _name(zi), "score": float(si),
                     "status": "ok", "valid_fraction": 1.0, "z": zi})  # fmt: skip
    from molvae.bo.store import EVAL_COLUMNS, csv_line

    lines = [csv_line([*EVAL_COLUMNS, *z_columns(dim)])]
    lines += [csv_line([r[c] for c in EVAL_COLUMNS] + [float(v) for v in r["z"]]) for r in rows]
    write_text(store.eval_path, "".join(lines))
    last = int(its[-1]) if len(its) else 0
    store.write_state({"iteration": last, "iterations": [], "trust_region": None})
    cfg = BOConfig(**{**asdict(cfg), "budget": len(z)})
    store.write_config({"kind": "bo", "config": asdict(cfg), "metadata": {"synthetic": True}})
    return len(z)


def time_iteration(path: Path, cfg: BOConfig, n_ok_new: int) -> dict:
    """Run one BO iteration on the campaign in ``path``; its timings."""
    t0 = time.perf_counter()
    h = CampaignStore(path).load_history()
    read_s = time.perf_counter() - t0
    cfg = BOConfig(**{**asdict(cfg), "budget": n_ok_new + cfg.batch_size})
    t0 = time.perf_counter()
    res = run_campaign(cfg, fake_decode, lambda s: torch.zeros(len(s), 1), _objective, ["C"],
                       path, progress=False, report=False, canonical_fn=lambda s: s)  # fmt: skip
    wall = time.perf_counter() - t0
    rec = res.iterations.iloc[-1]
    assert len(res.history) == len(h) + cfg.batch_size, "the iteration did not add a batch"
    return {"points": len(h), "q": cfg.batch_size, "gp_points": int(rec["gp_points"]),
            "read_history_s": read_s, "fit_s": float(rec["fit_s"]),
            "acq_s": float(rec["acq_s"]), "iteration_s": float(rec["wall_s"]),
            "run_campaign_s": wall, "source": rec["source"]}  # fmt: skip


def _objective(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
    # the score does not matter for timing; a hash keeps it deterministic
    return np.array([int(s[1:9], 16) / 2**32 for s in smiles]), ["ok"] * len(smiles)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="default: 1000 5000 20000")
    p.add_argument("-q", "--batch-size", type=int, default=50)
    p.add_argument("--dim", type=int, default=56)
    p.add_argument("--max-gp-points", type=int, default=BOConfig.max_gp_points)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--out", default="runs/benchmarks/bo_scaling")
    p.add_argument("--smoke", action="store_true", help="200 and 500 points, q=5, d=8, a cheap GP")
    a = p.parse_args(argv)
    cfg_kw: dict = {}
    if a.smoke:
        a.sizes, a.batch_size, a.dim = a.sizes or [200, 500], 5, 8
        a.max_gp_points = 100
        cfg_kw = dict(n_init=50, init_top=10, raw_samples=32, acq_maxiter=10, fit_maxiter=20,
                      mc_samples=32, num_restarts=2)  # fmt: skip
    a.sizes = a.sizes or [1000, 5000, 20000]
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # free_pool: the budget counts proposals only, as make_campaign sets it; what scales is the
    # latent GP's exact fit, so the latent surrogate
    cfg = BOConfig(batch_size=a.batch_size, max_gp_points=a.max_gp_points, free_pool=True,
                   surrogate="latent", **cfg_kw)  # fmt: skip
    rows = []
    for n in a.sizes:
        path = out / f"campaign-{n}"
        if path.exists():
            import shutil

            shutil.rmtree(path)
        n_ok_new = make_campaign(path, n, cfg, a.dim)
        rows.append({"dim": a.dim, **time_iteration(path, cfg, n_ok_new)})
        print(f"{n} points: {rows[-1]['iteration_s']:.2f} s per iteration", file=sys.stderr)
    df = pd.DataFrame(rows)
    df.to_csv(out / "results.csv", index=False)
    table = markdown_table(df)
    env = f"torch threads {torch.get_num_threads()}, CPU count {os.cpu_count()}"
    head = "# BO iteration time vs evaluated points"
    (out / "results.md").write_text(f"{head}\n\n{env}\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
