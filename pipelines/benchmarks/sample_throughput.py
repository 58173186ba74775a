"""Decoding throughput: molvae's greedy (and sampled) decoding against the MOSES VAE's sampler.

    python pipelines/benchmarks/sample_throughput.py            # 4 x 512 latents, both models
    python pipelines/benchmarks/sample_throughput.py --smoke    # seconds
    python pipelines/benchmarks/sample_throughput.py --no-peer  # molvae only (no download)

Both models have the MOSES VAE's default size (see ``train_throughput.py``), the same latents
``z ~ N(0, I)``, ``max_len=100`` and the same batch size; time includes turning ids into SMILES
strings. The MOSES sampler (``VAE.sample``, multinomial at temperature 1) always runs all 99
steps whatever its weights. molvae's decoder drops each row once it has emitted eos, so its cost
depends on when a model ends its strings: an untrained one rarely does. The molvae model is
therefore first trained for ``--train-steps`` steps on the bundled ZINC (not timed) so it ends
strings the way a trained model does; ``--train-steps 0`` gives the fresh-weights worst case.
``mean_steps`` is the mean number of decoder steps per molecule (the string length plus eos).

molvae runs in fp32 and, where the hardware runs bf16 natively (`molvae.model.fast_bf16`), with
the bf16 autocast it uses by default there. ``sample`` against MOSES's sampler is the
like-for-like row (same strategy); ``greedy`` is what reconstruction and BO decoding use.

A second table (``grammar.csv``) decodes the first ``--grammar-batches`` batches with the same
molvae model raw, through the SMILES grammar as `LatentCodec.decode` does by default (``grammar``:
raw first, the grammar for the rows it refuses) and with every row through the grammar
(``grammar-every-row``, ``raw_first=False``), alternating batch by batch so a busy machine slows
all alike: molecules/s, ratio to raw, RDKit validity, and ``rdkit_refused``, the share of the
grammar's RDKit checks that rejected the string. A model trained this briefly writes few valid
strings, so the grammar backtracks more than with the bundled model (`grammar_decoding.py`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from train_throughput import (  # a sibling script (its directory is on sys.path)
    molvae_config,
    precision,
)

from molvae.chem import is_valid
from molvae.data import cache_dir, encode_all, read_smiles
from molvae.data.tokens import Vocab
from molvae.grammar.tables import tables_for
from molvae.io import markdown_table
from molvae.model import GrammarConfig, LatentCodec, MolVAE, fast_bf16
from molvae.train import TrainConfig, train


def over_peer(df: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` of each molvae row divided by the MOSES row's (empty without the peer)."""
    ours = df["model"] == "molvae"
    peer = df.loc[~ours, metric]
    return df.loc[ours, metric] / peer.iloc[0] if len(peer) else df.loc[[], metric]


def _row(model: str, precision: str, strategy: str, n: int, mol_steps: int, seconds: float) -> dict:
    """``mol_steps``: decoder steps summed over batches, each times its batch size."""
    return {"model": model, "precision": precision, "strategy": strategy, "molecules": n,
            "mean_steps": mol_steps / n,
            "seconds": seconds, "mol_per_s": n / seconds,
            "mol_steps_per_s": mol_steps / seconds}  # fmt: skip


def trained_molvae(smiles: list[str], vocab: Vocab, steps: int, smoke: bool) -> MolVAE:
    """The MOSES-size molvae model after ``steps`` training steps of 256 (fresh if 0)."""
    torch.manual_seed(0)
    cfg = molvae_config(len(vocab), smoke)
    if steps == 0:
        return MolVAE(cfg).eval()
    ids = encode_all(smiles, vocab)
    tc = TrainConfig(epochs=1, batch_size=256, max_steps_per_epoch=steps, val_recon_samples=8,
                     val_batch_size=64, lr_warmup_steps=min(50, steps))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        return train(cfg, tc, vocab.tokens, ids, ids[:64], tmp, progress=False).model.eval()


def run_molvae(model: MolVAE, vocab: Vocab, zs: list[torch.Tensor], strategy: str,
               amp: bool) -> dict:  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    n = mol_steps = 0
    t0 = time.perf_counter()
    for z in zs:
        ids = model.decode(z[:, : model.config.latent_dim], strategy, max_len=100, generator=gen,
                           amp=amp)  # fmt: skip
        _ = [vocab.decode(row) for row in ids.tolist()]
        # a row's steps are its tokens and eos: after eos it has left the batch
        mol_steps += int((ids != vocab.pad_id).sum())
        n += len(z)
    label = precision(amp, torch.device("cpu"))
    return _row("molvae", label, strategy, n, mol_steps, time.perf_counter() - t0)


DECODINGS = {
    "raw": None,
    "grammar": GrammarConfig(),
    "grammar-every-row": GrammarConfig(raw_first=False),
}
"""Each row's `LatentCodec` grammar: none, the default (raw first, `molvae.model.hybrid`)
and every row through the grammar (the decoder before raw first)."""


def run_grammar(model: MolVAE, vocab: Vocab, zs: list[torch.Tensor], strategy: str) -> list:
    """Raw and grammar-constrained decoding of ``zs`` as `LatentCodec.decode` does it
    (`DECODINGS`), alternating per batch: three rows."""
    amp = fast_bf16(torch.device("cpu"))
    names = list(DECODINGS)
    codecs = {name: LatentCodec(model, vocab, grammar=cfg) for name, cfg in DECODINGS.items()}
    stats = tables_for(vocab.tokens).stats
    seconds, valid, n = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0), 0
    checked, refused = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for z in zs:
        for name in names:
            before = dict(stats)
            t0 = time.perf_counter()
            strings = codecs[name].decode(z[:, : model.config.latent_dim], strategy,
                                          batch_size=len(z),
                                          generator=torch.Generator().manual_seed(0))  # fmt: skip
            seconds[name] += time.perf_counter() - t0
            valid[name] += sum(map(is_valid, strings))
            checked[name] += stats["rdkit_checked"] - before.get("rdkit_checked", 0)
            refused[name] += stats["rdkit_refused"] - before.get("rdkit_refused", 0)
        n += len(z)
    rows = [{"model": "molvae", "precision": precision(amp, torch.device("cpu")),
             "strategy": strategy, "decoding": name, "molecules": n, "valid": valid[name] / n,
             "seconds": seconds[name], "mol_per_s": n / seconds[name]}
            for name in names]  # fmt: skip
    for row in rows[1:]:
        name = row["decoding"]
        row["ratio"] = row["mol_per_s"] / rows[0]["mol_per_s"]
        row["rdkit_refused"] = refused[name] / checked[name] if checked[name] else float("nan")
    return rows


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
    return _row("MOSES VAE (molsets 0.3.1)", "fp32", "sample", n, 99 * n, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument(
        "--train-steps",
        type=int,
        default=200,
        help="train molvae's model this many steps first, untimed (0: fresh weights)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--grammar-batches", type=int, default=2,
                   help="batches decoded raw and through the grammar (0: none)")  # fmt: skip
    p.add_argument("--no-peer", action="store_true", help="skip MOSES (no download)")
    p.add_argument("--peer-cache", default=str(cache_dir() / "peers"), help="wheel cache")
    p.add_argument("--out", default="runs/benchmarks/sample_throughput")
    p.add_argument("--smoke", action="store_true", help="tiny models, 2 batches of 8")
    a = p.parse_args(argv)
    if a.smoke:
        a.batches, a.batch_size, a.train_steps = 2, 8, min(a.train_steps, 2)
    if a.threads:
        torch.set_num_threads(a.threads)
    # the vocabularies, and molvae's training data (the MOSES side only takes its vocabulary)
    smiles = [s for s in read_smiles("zinc")[: max(20000, 256 * a.train_steps)] if s]
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(a.batch_size, 128, generator=gen) for _ in range(a.batches)]
    vocab = Vocab.build(smiles)
    model = trained_molvae(smiles, vocab, a.train_steps, a.smoke)
    amps = [False, True] if fast_bf16(torch.device("cpu")) else [False]
    rows = [run_molvae(model, vocab, zs, s, amp) for s in ("greedy", "sample") for amp in amps]
    if not a.no_peer:
        rows.append(run_moses(smiles, zs, a.smoke, Path(a.peer_cache)))
    df = pd.DataFrame(rows)
    df["threads"] = torch.get_num_threads()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = "# Decoding throughput\n\n" + markdown_table(df)
    per_step = over_peer(df, "mol_steps_per_s")
    for i, r in over_peer(df, "mol_per_s").items():
        text += (f"\n\nmolvae ({df['precision'][i]}) {df['strategy'][i]} / MOSES sample: "
                 f"{r:.2f}x molecules/s, {per_step[i]:.2f}x per step")  # fmt: skip
    text += f"\n\nmolvae trained {a.train_steps} steps of 256 before timing"
    if a.grammar_batches:
        zg = zs[: a.grammar_batches]
        gdf = pd.DataFrame(
            [r for st in ("greedy", "sample") for r in run_grammar(model, vocab, zg, st)]
        )
        gdf.to_csv(out / "grammar.csv", index=False)
        text += "\n\n## Raw against grammar-constrained (same model)\n\n" + markdown_table(gdf)
    text += f"\n\n{os.cpu_count()} CPUs, torch {torch.__version__}\n"
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
