"""Decoding throughput: molvae's greedy (and sampled) decoding against the MOSES VAE's sampler.

    python pipelines/benchmarks/sample_throughput.py            # 4 x 512 latents, both models
    python pipelines/benchmarks/sample_throughput.py --smoke    # seconds
    python pipelines/benchmarks/sample_throughput.py --no-peer  # molvae only (no download)

Both models have the MOSES VAE's default size (see ``train_throughput.py``), fresh weights, the
same latents ``z ~ N(0, I)``, ``max_len=100`` and the same batch size; time includes turning ids
into SMILES strings. The MOSES sampler (``VAE.sample``, multinomial at temperature 1) always runs
all 100 steps; molvae stops once every row has emitted eos, so the table also gives decoder steps
and ``mol_steps_per_s`` (molecules x steps / s), the per-step cost that early stopping hides.
With untrained weights few rows end early; a trained model ends after about 40-60 steps.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from train_throughput import molvae_config  # a sibling script (its directory is on sys.path)

from molvae.data import cache_dir, read_smiles
from molvae.model import MolVAE
from molvae.report import markdown_table
from molvae.tokens import Vocab


def _row(model: str, strategy: str, n: int, mol_steps: int, seconds: float) -> dict:
    """``mol_steps``: decoder steps summed over batches, each times its batch size."""
    return {"model": model, "strategy": strategy, "molecules": n, "mean_steps": mol_steps / n,
            "seconds": seconds, "mol_per_s": n / seconds,
            "mol_steps_per_s": mol_steps / seconds}  # fmt: skip


def run_molvae(vocab: Vocab, zs: list[torch.Tensor], smoke: bool, strategy: str) -> dict:
    torch.manual_seed(0)
    cfg = molvae_config(len(vocab), smoke)
    model = MolVAE(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    mol_steps = n = 0
    t0 = time.perf_counter()
    for z in zs:
        ids = model.decode(z[:, : cfg.latent_dim], strategy, max_len=100, generator=gen)
        _ = [vocab.decode(row) for row in ids.tolist()]
        mol_steps += len(z) * ids.shape[1]
        n += len(z)
    return _row("molvae", strategy, n, mol_steps, time.perf_counter() - t0)


def run_moses(smiles: list[str], zs: list[torch.Tensor], smoke: bool, cache: Path) -> dict:
    from _moses_peer import CharVocab, load_moses_vae

    peer = load_moses_vae(cache)
    config = peer.config
    if smoke:
        config.q_d_h, config.d_d_h, config.d_z, config.d_n_layers = 16, 16, 8, 3
    torch.manual_seed(0)
    model = peer.VAE(CharVocab(smiles), config).eval()
    n = 0
    t0 = time.perf_counter()
    for z in zs:
        out = model.sample(len(z), max_len=100, z=z[:, : config.d_z])
        n += len(out)
    # its loop always runs max_len - 1 = 99 decoder steps
    return _row("MOSES VAE (molsets 0.3.1)", "sample", n, 99 * n, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--no-peer", action="store_true", help="skip MOSES (no download)")
    p.add_argument("--peer-cache", default=str(cache_dir() / "peers"), help="wheel cache")
    p.add_argument("--out", default="runs/benchmarks/sample_throughput")
    p.add_argument("--smoke", action="store_true", help="tiny models, 2 batches of 8")
    a = p.parse_args(argv)
    if a.smoke:
        a.batches, a.batch_size = 2, 8
    if a.threads:
        torch.set_num_threads(a.threads)
    smiles = [s for s in read_smiles("zinc")[:20000] if s]  # the vocabularies only
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(a.batch_size, 128, generator=gen) for _ in range(a.batches)]
    vocab = Vocab.build(smiles)
    rows = [run_molvae(vocab, zs, a.smoke, s) for s in ("greedy", "sample")]
    if not a.no_peer:
        rows.append(run_moses(smiles, zs, a.smoke, Path(a.peer_cache)))
    df = pd.DataFrame(rows)
    df["threads"] = torch.get_num_threads()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = "# Decoding throughput\n\n" + markdown_table(df)
    if len(df) == 3:
        r = df["mol_per_s"][0] / df["mol_per_s"][2]
        rs = df["mol_steps_per_s"][0] / df["mol_steps_per_s"][2]
        text += f"\n\nmolvae greedy / MOSES sample: {r:.2f}x molecules/s, {rs:.2f}x per step"
    text += f"\n\n{os.cpu_count()} CPUs, torch {torch.__version__}\n"
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
