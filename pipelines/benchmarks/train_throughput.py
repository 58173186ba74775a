"""Training throughput (molecules/s): molvae's trainer, old and new, against the MOSES VAE's.

    python pipelines/benchmarks/train_throughput.py --threads 1   # both ISAs, both allocators
    python pipelines/benchmarks/train_throughput.py --smoke       # seconds
    python pipelines/benchmarks/train_throughput.py --no-peer     # molvae only (no download)

Same data (the first molecules of the bundled ZINC), same batch size and the MOSES VAE's default
size: 1-layer GRU encoder 256, 3-layer GRU decoder 512, latent 128, one-hot-sized embeddings.
molvae's encoder is always bidirectional (MOSES default: one direction), so its encoder does twice
the work; the table lists both parameter counts. The MOSES side is its own model
(``moses/vae/model.py`` of the ``molsets==0.3.1`` wheel, fetched and checksum-verified at run
time, see ``_moses_peer.py``) driven as its ``VAETrainer._train_epoch`` does: shuffled batches
sorted by length, Adam 3e-4, gradient clipping at 50, three ``.item()`` calls per step. molvae's
steps are its trainer's own (`molvae.train.prepare` and `molvae.train.epoch.train_step`:
length-bucketed batches, AdamW, clipping, KL schedule, loss sums).

Trainers, stepped in turn (one batch each, round after round) in one process, so a busy machine
slows all of them alike:

* ``old``: molvae's trainer as it was (``rnn="native"``: torch's GRU kernels, packed encoder);
* ``new``: the current default on the CPU (``rnn="auto"``: the GRU of `molvae.model.gru`), in
  fp32 and, where the CPU runs bf16 natively, with its default bf16 autocast.

One process per CPU kind and allocator setting: ``native`` (what the CPU has) and ``avx2``
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``, an AVX2-only
CPU's kernels; no bf16 there), with glibc's default allocator and with the freed memory kept in
the process (what molvae's trainer sets on the CPU, `molvae.train.memory`; process-wide, so the
other trainers of that process get it too). Ratios compare rows of the same process only. Both
wall-clock and the process's CPU time are reported: on a shared machine CPU time is the steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from molvae.data import cache_dir, encode_all, read_smiles
from molvae.data.tokens import Vocab
from molvae.io import markdown_table, write_text
from molvae.model import MolVAE, VAEConfig, fast_bf16, resolve_device
from molvae.train import TrainConfig
from molvae.train.epoch import train_step
from molvae.train.loop import prepare
from molvae.train.memory import retain_freed_memory

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # fmt: skip
PEER = "MOSES VAE (molsets 0.3.1)"


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


def molvae_stepper(smiles: list[str], batch: int, smoke: bool, tmp: str, **train_kw):
    """(step function: round -> molecules, row fields) for molvae's trainer on ``smiles``."""
    vocab = Vocab.build(smiles)
    ids = encode_all(smiles, vocab)
    cfg = molvae_config(len(vocab), smoke)
    tc = TrainConfig(epochs=1, batch_size=batch, **train_kw)
    run, st = prepare(cfg, tc, vocab.tokens, ids, tempfile.mkdtemp(dir=tmp))
    run.net.train()
    run.sampler.set_epoch(0)
    batches = list(run.sampler)

    def step(r: int) -> int:
        train_step(run, st, batches[r])
        return len(batches[r])

    return step, {"model": "molvae", "precision": precision(tc.amp, run.device),
                  "device": run.device.type, "params": n_params(MolVAE(cfg))}  # fmt: skip


def moses_stepper(smiles: list[str], batch: int, smoke: bool, cache: Path):
    """The MOSES VAE's training step as its ``VAETrainer`` takes it, on random batches."""
    from _moses_peer import CharVocab, load_moses_vae, moses_collate

    peer = load_moses_vae(cache)
    config = peer.config
    if smoke:
        config.q_d_h, config.d_d_h, config.d_z, config.d_n_layers = 16, 16, 8, 3
    torch.manual_seed(0)
    model = peer.VAE(CharVocab(smiles), config).to(resolve_device("auto"))
    params = [p for p in model.vae.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr_start)
    order = np.random.default_rng(0).permutation(len(smiles))
    model.train()

    def step(r: int) -> int:
        chunk = [smiles[i] for i in order[r * batch : (r + 1) * batch]]
        x = tuple(t.to(model.device) for t in moses_collate(model, chunk))
        kl, recon = model(x)
        loss = config.kl_w_start * kl + recon  # kl weight at epoch 0 (KLAnnealer)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
        opt.step()
        kl.item(), recon.item(), loss.item()  # its loop logs these every step
        return len(chunk)

    return step, {"model": PEER, "precision": "fp32", "device": model.device.type,
                  "params": n_params(model)}  # fmt: skip


def run_child(a: argparse.Namespace) -> list[dict]:
    """This process's rows: every trainer stepped in turn, ``warmup`` rounds untimed."""
    if a.threads:
        torch.set_num_threads(a.threads)
    retained = a.allocator == "retained" and retain_freed_memory()
    rounds = a.warmup + a.steps
    smiles = [s for s in read_smiles(a.data)[: rounds * a.batch_size] if s]
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not a.no_peer:
            trainers["MOSES"] = moses_stepper(smiles, a.batch_size, a.smoke, Path(a.peer_cache))
        common = dict(device="auto", retain_memory=retained, val_recon_samples=8)
        for name in a.trainers.split(","):
            rnn = "native" if name == "old" else "auto"
            amps = [False] + ([True] if name == "new" and fast_bf16(resolve_device("auto")) else [])
            for amp in amps:
                trainers[f"{name}-{'bf16' if amp else 'fp32'}"] = molvae_stepper(
                    smiles, a.batch_size, a.smoke, tmp, rnn=rnn, amp=amp, **common
                )
        return _interleave(trainers, a, rounds, retained)


def _interleave(trainers: dict, a: argparse.Namespace, rounds: int, retained: bool) -> list[dict]:
    wall = dict.fromkeys(trainers, 0.0)
    cpu, n = dict(wall), dict.fromkeys(trainers, 0)
    for r in range(rounds):
        for name, (step, _) in trainers.items():
            w, c = time.perf_counter(), time.process_time()
            got = step(r)
            if r >= a.warmup:
                wall[name] += time.perf_counter() - w
                cpu[name] += time.process_time() - c
                n[name] += got
    isa = torch.backends.cpu.get_cpu_capability()
    return [{"trainer": name.split("-")[0] if name != "MOSES" else "MOSES", **fields,
             "isa": f"{a.isa} ({isa})", "allocator": "retained" if retained else "default",
             "batch_size": a.batch_size, "steps": a.steps, "molecules": n[name],
             "wall_s": wall[name], "cpu_s": cpu[name], "mol_per_s": n[name] / wall[name],
             "mol_per_cpu_s": n[name] / max(cpu[name], 1e-9)}
            for name, (_, fields) in trainers.items()]  # fmt: skip


def ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Throughput over the MOSES row and over the old fp32 row of the same process."""
    df = df.copy()
    old = (df["trainer"] == "old") & (df["precision"] == "fp32")
    for col, ref in (("x_moses", df["trainer"] == "MOSES"), ("x_old", old)):
        for key in ("mol_per_s", "mol_per_cpu_s"):
            base = df[ref].groupby(["isa", "allocator"])[key].first()
            idx = pd.MultiIndex.from_frame(df[["isa", "allocator"]])
            suffix = "" if key == "mol_per_s" else "_cpu"
            df[col + suffix] = df[key].to_numpy() / base.reindex(idx).to_numpy()
    return df


def quality(a: argparse.Namespace) -> pd.DataFrame:
    """Validation after the same molecules for the old and the new trainer: one epoch each on
    the first ``--quality`` molecules (fp32, same seed, same batches), 1,000 held out."""
    from molvae.train import train

    smiles = [s for s in read_smiles(a.data)[: a.quality + 1000] if s]
    vocab = Vocab.build(smiles)
    ids = encode_all(smiles, vocab)
    cfg = molvae_config(len(vocab), a.smoke)
    rows = []
    for name, rnn in (("old", "native"), ("new", "auto")):
        tc = TrainConfig(epochs=1, batch_size=a.batch_size, amp=False, rnn=rnn, lr=1e-3,
                         kl_warmup_epochs=1.0, val_recon_samples=1000)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train(cfg, tc, vocab.tokens, ids[1000:], ids[:1000], tmp, progress=False)
        last = res.history.iloc[-1]
        rows.append({"trainer": name, "rnn": rnn, "molecules": len(ids) - 1000,
                     "batch_size": a.batch_size, "wall_s": time.perf_counter() - t0,
                     **{k: last[k] for k in ("train_loss", "val_recon", "val_kl",
                                             "val_token_acc", "val_recon_acc")}})  # fmt: skip
    return pd.DataFrame(rows)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="timed rounds (one batch per trainer)")
    p.add_argument("--warmup", type=int, default=1, help="untimed first rounds")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--data", default="zinc")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--isas", default=None, help="CPU kinds (default: native,avx2)")
    p.add_argument("--allocators", default=None, help="(default: default,retained)")
    p.add_argument("--trainers", default=None, help="molvae trainers (default: old,new)")
    p.add_argument("--no-peer", action="store_true", help="skip MOSES (no download)")
    p.add_argument("--peer-cache", default=str(cache_dir() / "peers"), help="wheel cache")
    p.add_argument("--out", default="runs/benchmarks/train_throughput")
    p.add_argument("--smoke", action="store_true", help="tiny models, 2 steps of 16; without "
                   "--isas/--allocators: in this process, new trainer only")  # fmt: skip
    p.add_argument("--quality", type=int, default=0, metavar="N",
                   help="instead: train old and new for one epoch on N molecules, compare "
                   "validation")  # fmt: skip
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # isa,allocator
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.warmup, a.batch_size = 2, 0, 16
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.quality:
        if a.threads:
            torch.set_num_threads(a.threads)
        df = quality(a)
        text = "# Validation after the same molecules, old and new trainer\n\n"
        text += markdown_table(df.round(4))
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "quality.csv", index=False)
        write_text(out / "quality.md", text + "\n")
        print(text)
        return 0
    if a.child:
        a.isa, a.allocator = a.child.split(",")
        a.trainers = a.trainers or "old,new"
        print("ROWS " + json.dumps(run_child(a)))
        return 0
    if a.smoke and a.isas is None and a.allocators is None:  # in this process (the tests)
        a.isa, a.allocator, a.trainers = "native", "default", a.trainers or "new"
        rows = run_child(a)
    else:
        a.trainers = a.trainers or "old,new"
        rows = []
        for isa in (a.isas or "native,avx2").split(","):
            for allocator in (a.allocators or "default,retained").split(","):
                rows += _spawn(argv or sys.argv[1:], isa, allocator)
    df = ratios(pd.DataFrame(rows))
    df["threads"] = a.threads or torch.get_num_threads()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = "# Training throughput\n\n" + markdown_table(df.round(3))
    text += f"\n\n{os.cpu_count()} CPUs, torch {torch.__version__}, data {a.data}\n"
    write_text(out / "results.md", text)
    print(text)
    return 0


def _spawn(argv: list[str], isa: str, allocator: str) -> list[dict]:
    env = {**os.environ, **(AVX2 if isa == "avx2" else {})}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, *argv, "--child", f"{isa},{allocator}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("ROWS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{isa}/{allocator} run failed: {done.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][5:])


if __name__ == "__main__":
    raise SystemExit(main())
