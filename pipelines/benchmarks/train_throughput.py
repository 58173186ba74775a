"""Training throughput (molecules/s): molvae's trainer against the MOSES VAE's, one run; a table.

    python pipelines/benchmarks/train_throughput.py            # 20 steps of 512, both models
    python pipelines/benchmarks/train_throughput.py --smoke    # seconds
    python pipelines/benchmarks/train_throughput.py --no-peer  # molvae only (no download)

Same data (the first molecules of the bundled ZINC), same hardware, same batch size and the MOSES
VAE's default size: 1-layer GRU encoder 256, 3-layer GRU decoder 512, latent 128, one-hot-sized
embeddings. molvae's encoder is always bidirectional (MOSES default: one direction), so its
encoder does twice the work; the table lists both parameter counts. The MOSES side is its own
model (``moses/vae/model.py`` from the ``molsets==0.3.1`` wheel, fetched and checksum-verified at
run time, see ``_moses_peer.py``) driven exactly as its ``VAETrainer._train_epoch`` does: shuffled
batches sorted by length, Adam 3e-4, gradient clipping at 50, three ``.item()`` calls per step.
molvae's number is ``TrainResult.molecules_per_second`` of ``molvae.train.train`` (length-bucketed
batches, AdamW, its own clipping and KL schedule). Both include batch collation in the timed loop.

molvae runs twice: in fp32 (the like-for-like row) and, where the hardware runs bf16 natively
(CUDA, or a CPU with AMX/AVX512-BF16; `molvae.model.fast_bf16`), with the bf16 autocast its
trainer uses by default there. The MOSES trainer has no mixed precision, so it runs in fp32.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from molvae.data import cache_dir, encode_all, read_smiles
from molvae.data.tokens import Vocab
from molvae.io import markdown_table
from molvae.model import MolVAE, VAEConfig, fast_bf16, resolve_device
from molvae.train import TrainConfig, train


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def molvae_config(vocab_size: int, smoke: bool) -> VAEConfig:
    """The MOSES VAE's default size in molvae's terms (embedding as wide as the vocabulary)."""
    if smoke:
        return VAEConfig(vocab_size, emb_dim=8, enc_hidden=16, latent_dim=8, dec_hidden=16)
    return VAEConfig(vocab_size, emb_dim=vocab_size, enc_hidden=256, enc_layers=1,
                     latent_dim=128, dec_hidden=512, dec_layers=3)  # fmt: skip


def precision(amp: bool, device: torch.device) -> str:
    """What molvae runs in: its bf16 autocast only where the hardware has native bf16."""
    return "bf16 autocast" if amp and fast_bf16(device) else "fp32"


def over_peer(df: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` of each molvae row divided by the MOSES row's (empty without the peer)."""
    ours = df["model"] == "molvae"
    peer = df.loc[~ours, metric]
    return df.loc[ours, metric] / peer.iloc[0] if len(peer) else df.loc[[], metric]


def run_molvae(smiles: list[str], steps: int, batch: int, smoke: bool, amp: bool) -> dict:
    vocab = Vocab.build(smiles)
    ids = encode_all(smiles, vocab)
    cfg = molvae_config(len(vocab), smoke)
    tc = TrainConfig(epochs=1, batch_size=batch, max_steps_per_epoch=steps, val_recon_samples=8,
                     val_batch_size=64, amp=amp)  # fmt: skip
    device = resolve_device(tc.device)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train(cfg, tc, vocab.tokens, ids, ids[:64], tmp, progress=False)
        wall = time.perf_counter() - t0
    n = min(steps * batch, len(smiles))
    return {"model": "molvae", "precision": precision(amp, device), "device": device.type,
            "params": n_params(MolVAE(cfg)), "batch_size": batch, "steps": steps, "molecules": n,
            "train_s": n / res.molecules_per_second, "mol_per_s": res.molecules_per_second,
            "wall_s": wall}  # fmt: skip


def run_moses(smiles: list[str], steps: int, batch: int, smoke: bool, cache: Path) -> dict:
    from _moses_peer import CharVocab, load_moses_vae, moses_collate

    peer = load_moses_vae(cache)
    config = peer.config
    if smoke:
        config.q_d_h, config.d_d_h, config.d_z, config.d_n_layers = 16, 16, 8, 3
    torch.manual_seed(0)
    model = peer.VAE(CharVocab(smiles), config).to(resolve_device("auto"))  # molvae's device
    params = [p for p in model.vae.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr_start)
    order = np.random.default_rng(0).permutation(len(smiles))
    model.train()
    t0 = time.perf_counter()
    n = 0
    for step in range(steps):
        chunk = [smiles[i] for i in order[step * batch : (step + 1) * batch]]
        if not chunk:
            break
        x = tuple(t.to(model.device) for t in moses_collate(model, chunk))
        kl, recon = model(x)
        loss = config.kl_w_start * kl + recon  # kl weight at epoch 0 (KLAnnealer)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
        opt.step()
        kl.item(), recon.item(), loss.item()  # its loop logs these every step
        n += len(chunk)
    train_s = time.perf_counter() - t0
    return {"model": "MOSES VAE (molsets 0.3.1)", "precision": "fp32", "device": model.device.type,
            "params": n_params(model), "batch_size": batch, "steps": steps, "molecules": n,
            "train_s": train_s, "mol_per_s": n / train_s, "wall_s": train_s}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--data", default="zinc")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--no-peer", action="store_true", help="skip MOSES (no download)")
    p.add_argument("--peer-cache", default=str(cache_dir() / "peers"), help="wheel cache")
    p.add_argument("--out", default="runs/benchmarks/train_throughput")
    p.add_argument("--smoke", action="store_true", help="tiny models, 2 steps of 16")
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.batch_size = 2, 16
    if a.threads:
        torch.set_num_threads(a.threads)
    smiles = [s for s in read_smiles(a.data)[: a.steps * a.batch_size] if s]
    rows = [run_molvae(smiles, a.steps, a.batch_size, a.smoke, amp=False)]
    if fast_bf16(resolve_device("auto")):  # the default where the hardware has native bf16
        rows.append(run_molvae(smiles, a.steps, a.batch_size, a.smoke, amp=True))
    if not a.no_peer:
        rows.append(run_moses(smiles, a.steps, a.batch_size, a.smoke, Path(a.peer_cache)))
    df = pd.DataFrame(rows)
    df["threads"] = torch.get_num_threads()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = "# Training throughput\n\n" + markdown_table(df)
    for i, ratio in over_peer(df, "mol_per_s").items():
        text += f"\n\nmolvae ({df['precision'][i]}) / MOSES (fp32): {ratio:.2f}x molecules/s"
    text += f"\n\n{os.cpu_count()} CPUs, torch {torch.__version__}, data {a.data}\n"
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
