"""Fine-tune a property-head model onto ZINC-250k's charged atoms; install it as a bundled model.

    python pipelines/train_charged.py --threads 1     # from the finished full-MOSES training
    git show 9b068aa:data/training/moses-cpu/last.pt > step925.pt
    python pipelines/train_charged.py --init-from step925.pt --threads 1  # as the shipped model
    python pipelines/train_charged.py --smoke           # seconds; what CI runs
    python pipelines/train_charged.py --keep-vocab ...  # neutral ZINC-250k only, same vocabulary

The MOSES-trained vocabulary has no charged atoms, yet ZINC-250k (and the 800 molecules of the
similarity-constrained benchmark, `pipelines/jin_benchmark.py`) keep its protonation states
(``[NH3+]``, ``[O-]``, ...). The honest route is to teach the model those tokens on molecules
that are not the benchmark's: JT-VAE's ZINC-250k validation split
(``../shared/data/zinc250k_valid_24k.smi.gz``, disjoint from its test split). Recipe:

1. ZINC-250k validation molecules, stereochemistry removed (canonical SMILES without ``@``,
   ``/``, ``\\``): penalized logP and Morgan similarity, what the benchmark measures, do not
   see stereo, and 24k molecules are too few to learn it. The 2,000 molecules of the bundled
   ``zinc250k/neutral_2k.smi`` (drawn from the same split; `molvae evaluate` reconstructs them
   as molecules from outside the training data) are left out, and a seeded ``--heldout`` of
   the rest is kept out of training too, for the model card's reconstruction numbers.
2. As many MOSES molecules (the bundled ``zinc`` subset, seeded): fine-tuning on charged
   molecules alone would move the whole model toward 24k molecules and forget the 1.6M it
   learned; an equal share of the old distribution keeps it (the cheap rehearsal of continual
   learning), and both halves get the property head's targets.
3. Fine-tune from ``--init-from`` (a checkpoint with or without a head, with or without a
   ``train_state``): `molvae.model.vocab_extension` adds the new tokens, the property head
   learns logP, -SA, QED and penalized logP (standardized with the mixed set's statistics).
   The KL weight drops to 0.02 (from the base model's 0.1): editing a molecule under a
   similarity constraint needs the code to carry the molecule (reconstruction), more than it
   needs prior samples to be valid (JT-VAE's property-optimization runs used 0.001-0.005).
4. Measure greedy reconstruction (grammar-constrained decoding; a hit is the same canonical
   SMILES without stereo) on the held-out ZINC-250k molecules, ``neutral_2k``, 200 of the 800
   benchmark molecules (``--opt-test``, seeded) and 500 MOSES test molecules, and the property
   head's R^2 on the held-out molecules; they go into the record.
5. Install ``data/models/<name>.pt`` (no optimizer state) and ``<name>.json`` (the record).

With ``--keep-vocab`` only the ZINC-250k molecules the start model can already write are kept
(neutral, MOSES's atoms): the same recipe then widens a model beyond MOSES's clean leads
(larger molecules, the groups MOSES's filters removed) without new tokens, so the result can
replace its start model (the default) wherever that is used.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from molvae.chem import parse
from molvae.data import read_smiles
from molvae.data.property_cache import compute_properties
from molvae.evaluation.reconstruction import pick
from molvae.io import write_text, write_with
from molvae.model import LatentCodec, load_checkpoint
from molvae.resources import data_dir, resolve_model
from molvae.runs import TrainRunConfig, environment, train_on_smiles
from molvae.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent
ZINC250K_VALID = REPO.parent / "shared" / "data" / "zinc250k_valid_24k.smi.gz"
OPT_TEST = REPO.parent / "shared" / "data" / "zinc250k_opt_test_800.tsv"
PROPERTIES = ["logp", "sa", "qed", "plogp"]
NAME = "zinc250k-props"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--init-from", default="data/training/moses-cpu/best.pt", metavar="MODEL")
    p.add_argument("--zinc250k", default=str(ZINC250K_VALID), help="ZINC-250k molecules")
    p.add_argument("--opt-test", default=str(OPT_TEST), help="the 800 (reconstruction only)")
    p.add_argument("--moses", default="zinc", help="MOSES molecules mixed in (data name/file)")
    p.add_argument("--moses-ratio", type=float, default=1.0, help="MOSES per ZINC-250k molecule")
    p.add_argument("--heldout", type=int, default=1000, help="ZINC-250k molecules kept out")
    p.add_argument("--exclude", default=str(data_dir() / "zinc250k" / "neutral_2k.smi"),
                   help="molecules never trained on ('' = none)")  # fmt: skip
    p.add_argument("--out", default=f"runs/{NAME}")
    p.add_argument("--name", default=NAME, help="installed as data/models/<name>.pt")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=0.02, help="KL weight (constant)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-vocab", action="store_true",
                   help="only ZINC-250k molecules the --init-from vocabulary writes (no new tokens:"
                        " a drop-in replacement for the start model)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue where a kill stopped it")
    p.add_argument("--smoke", action="store_true", help="a few hundred molecules, a few steps")
    p.add_argument("--no-install", action="store_true", help="do not copy into data/models/")
    return p.parse_args(argv)


def without_stereo(smiles: str) -> str | None:
    """Canonical SMILES of the largest fragment, stereochemistry dropped; None if invalid."""
    mol = parse(smiles)
    if mol is None:
        return None
    frags = Chem.GetMolFrags(mol, asMols=True)
    mol = max(frags, key=lambda m: m.GetNumHeavyAtoms())
    return Chem.MolToSmiles(mol, isomericSmiles=False)


def prepare_data(a: argparse.Namespace, out: Path) -> tuple[Path, Path, dict]:
    """Write the training mix and the held-out ZINC-250k molecules; their counts."""
    with gzip.open(a.zinc250k, "rt") if a.zinc250k.endswith(".gz") else open(a.zinc250k) as fh:
        raw = [line.split()[0] for line in fh if line.strip()]
    zinc = list(dict.fromkeys(s for s in map(without_stereo, raw) if s))
    excluded = set(read_smiles(a.exclude)) if a.exclude else set()
    zinc = [s for s in zinc if s not in excluded]
    n_new_tokens = 0
    if a.keep_vocab:
        vocab = load_checkpoint(resolve_model(a.init_from)).vocab()
        kept = [s for s in zinc if not vocab.unknown_tokens(s)]
        n_new_tokens, zinc = len(zinc) - len(kept), kept
    rng = np.random.default_rng(a.seed)
    zinc = [zinc[i] for i in rng.permutation(len(zinc))]
    n_held = min(a.heldout, max(1, len(zinc) // 10)) if a.smoke else a.heldout
    heldout, zinc_train = zinc[:n_held], zinc[n_held:]
    if a.smoke:
        zinc_train = zinc_train[:200]
    moses = read_smiles(a.moses)
    n_moses = min(round(a.moses_ratio * len(zinc_train)), len(moses))
    moses = [moses[i] for i in rng.permutation(len(moses))[:n_moses]]
    mix = zinc_train + moses
    mix = [mix[i] for i in rng.permutation(len(mix))]
    mix_path, held_path = out / "data" / "train_mix.smi", out / "data" / "heldout_zinc250k.smi"
    write_text(mix_path, "\n".join(mix) + "\n")
    write_text(held_path, "\n".join(heldout) + "\n")
    counts = {"zinc250k_read": len(raw), "excluded": len(excluded),
              "zinc250k_new_tokens_dropped": n_new_tokens, "zinc250k_unique_kept": len(zinc),
              "zinc250k_train": len(zinc_train), "zinc250k_heldout": len(heldout),
              "moses": n_moses}  # fmt: skip
    return mix_path, held_path, counts


def _recon(codec: LatentCodec, smiles: list[str]) -> dict:
    """Greedy reconstruction rate (same molecule without stereo) and the share encodable."""
    flat = [without_stereo(s) or "" for s in smiles]
    dec = codec.reconstruct(flat)
    hits = [d is not None and without_stereo(d) == f for d, f in zip(dec, flat, strict=True)]
    return {"n": len(smiles), "encoded": sum(d is not None for d in dec) / max(len(dec), 1),
            "greedy": sum(hits) / max(len(hits), 1)}  # fmt: skip


def evaluate(best: Path, held_path: Path, a: argparse.Namespace) -> dict:
    """Reconstruction on four sets and the head's R^2 per property on the held-out set."""
    t0 = time.time()
    codec = LatentCodec.from_checkpoint(best, device="cpu")
    size = 20 if a.smoke else None
    sets = {"heldout_zinc250k": read_smiles(held_path)[:size],
            "moses_test": pick(read_smiles("zinc-test"), size or 500, seed=1)}  # fmt: skip
    if a.exclude and Path(a.exclude).is_file():
        sets["neutral_2k"] = pick(read_smiles(a.exclude), size or 500, seed=1)
    if a.opt_test and Path(a.opt_test).is_file():
        opt = [ln.split()[0] for ln in Path(a.opt_test).read_text().splitlines() if ln.strip()]
        sets["opt_test_800"] = pick(opt, size or 200, seed=1)
    out: dict = {"reconstruction": {k: _recon(codec, v) for k, v in sets.items()}}
    held = sets["heldout_zinc250k"]
    enc = codec.encode(held, check_domain=False)
    with torch.no_grad():
        pred = codec.model.predict_properties(enc.z[torch.as_tensor(enc.ok)]).numpy()
    true = compute_properties([s for s, ok in zip(held, enc.ok, strict=True) if ok], PROPERTIES)
    with np.errstate(divide="ignore", invalid="ignore"):  # a smoke set can have zero variance
        r2 = 1 - np.nanmean((pred - true) ** 2, axis=0) / np.nanvar(true, axis=0)
    out["property_r2_heldout"] = dict(zip(PROPERTIES, np.round(r2, 3).tolist(), strict=True))
    out["seconds"] = round(time.time() - t0, 1)
    return out


def install(best: Path, name: str, record: dict) -> Path:
    """Copy ``best`` without its optimizer state to ``data/models/<name>.pt`` (+ ``.json``)."""
    payload = torch.load(best, map_location="cpu", weights_only=True)
    payload.pop("train_state", None)
    target = data_dir() / "models" / f"{name}.pt"
    write_with(target, lambda f: torch.save(payload, f))
    write_text(target.with_suffix(".json"), json.dumps(record, indent=2, default=str) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(a.out)
    t0 = time.time()
    mix_path, held_path, counts = prepare_data(a, out)
    train_cfg = TrainConfig(
        epochs=1 if a.smoke else a.epochs, batch_size=32 if a.smoke else a.batch_size, lr=a.lr,
        beta_max=a.beta, kl_schedule="constant", seed=a.seed, num_threads=a.threads,
        max_steps_per_epoch=3 if a.smoke else None, val_recon_samples=50 if a.smoke else 1000,
    )  # fmt: skip
    run = TrainRunConfig(data=str(mix_path), out_dir=str(out / "train"), init_from=a.init_from,
                         resume=a.resume, properties=PROPERTIES, max_val=2000,
                         property_workers=1)  # fmt: skip
    result = train_on_smiles(run, train_cfg, progress=not a.smoke)
    record = {
        "name": a.name, "data": counts, "run": asdict(run), "train": asdict(train_cfg),
        "init_from": str(Path(a.init_from).expanduser().resolve()),
        "heldout": str(held_path), "epochs": result.history.to_dict(orient="records"),
        "molecules_per_second": result.molecules_per_second,
        "wall_seconds": round(time.time() - t0, 1), "environment": environment(),
        "command": " ".join(["python", "pipelines/train_charged.py", *(argv or sys.argv[1:])]),
    }  # fmt: skip
    record["evaluation"] = evaluate(result.best_path, held_path, a)
    write_text(out / "record.json", json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record["evaluation"], indent=2))
    print(json.dumps(record["epochs"][-1], indent=2, default=str))
    if a.smoke or a.no_install:
        return 0
    target = install(result.best_path, a.name, record)
    print(f"installed {target} ({record['wall_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
