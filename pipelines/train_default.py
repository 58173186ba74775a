"""Train the bundled default model and install it as ``data/models/default.pt``.

    python pipelines/train_default.py                      # the shipped CPU model (bundled ZINC)
    python pipelines/train_default.py --preset gpu --data zinc-full --device cuda
    python pipelines/train_default.py --init-from default --epochs 10 --beta 0.3  # fine-tune
    python pipelines/train_default.py --smoke              # seconds; what CI runs

Writes the run directory (checkpoints, metrics.csv, config.json, run.json) and, unless
``--no-install``, copies the best checkpoint to ``data/models/default.pt`` with a training record
``data/models/default.json`` (data, configs, seed, hardware, wall time, final validation metrics).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from molvae.data import data_dir
from molvae.runs import TrainRunConfig, environment, train_on_smiles
from molvae.train import TrainConfig

# Model sizes. "cpu" is sized to train in about an hour on 2 CPU cores; "gpu" is the MOSES VAE size
# (1-layer encoder 256, 3-layer decoder 512) with the 56-dim latent that keeps BO tractable.
PRESETS = {
    "cpu": dict(emb_dim=48, enc_hidden=192, latent_dim=56, dec_hidden=384, dec_layers=2),
    "gpu": dict(emb_dim=64, enc_hidden=256, latent_dim=56, dec_hidden=512, dec_layers=3),
    "smoke": dict(emb_dim=16, enc_hidden=32, latent_dim=8, dec_hidden=32, dec_layers=1),
}
TRAIN = {
    "cpu": dict(epochs=6, batch_size=128, lr=1e-3, beta_max=0.5, kl_warmup_epochs=2.0),
    "gpu": dict(epochs=50, batch_size=512, lr=1e-3, beta_max=0.5, kl_warmup_epochs=5.0),
    "smoke": dict(epochs=1, batch_size=32, lr=1e-3, max_steps_per_epoch=3),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--data", default="zinc", help="SMILES file or data name (default: zinc)")
    p.add_argument("--out", default="runs/default-model")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-molecules", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="fine-tune this checkpoint ('default' = the bundled model)",
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--beta",
        type=float,
        default=None,
        help="KL weight; constant when fine-tuning (default: the preset's ramp)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny model, 300 molecules, 3 steps")
    p.add_argument("--no-install", action="store_true", help="do not copy into data/models/")
    a = p.parse_args(argv)

    preset = "smoke" if a.smoke else a.preset
    train_kw = dict(TRAIN[preset], seed=a.seed, device=a.device, num_threads=a.threads)
    for key, value in [("epochs", a.epochs), ("batch_size", a.batch_size), ("lr", a.lr)]:
        if value is not None:
            train_kw[key] = value
    if a.beta is not None:
        train_kw["beta_max"] = a.beta
    if a.init_from is not None and a.beta is not None:
        train_kw["kl_schedule"] = "constant"  # the KL term is already on: no second warm-up
    started_from = None
    if a.init_from == "default":  # keep the history of the model being fine-tuned
        record_path = data_dir() / "models" / "default.json"
        started_from = json.loads(record_path.read_text()) if record_path.exists() else None
    run = TrainRunConfig(
        data=a.data,
        out_dir=a.out,
        model={} if a.init_from else PRESETS[preset],  # fine-tuning keeps the model's size
        resume=a.resume,
        init_from=a.init_from,
        max_molecules=300 if a.smoke else a.max_molecules,
    )
    t0 = time.time()
    result = train_on_smiles(run, TrainConfig(**train_kw), progress=not a.smoke)
    wall = time.time() - t0
    history = pd.read_csv(Path(a.out) / "metrics.csv")
    record = {
        "preset": preset,
        "data": a.data,
        "run": asdict(run),
        "train": train_kw,
        "wall_seconds": round(wall, 1),
        "final_epoch": history.iloc[-1].to_dict(),
        "environment": environment(),
        "command": " ".join(["python", "pipelines/train_default.py", *(argv or sys.argv[1:])]),
        "started_from": started_from,
    }
    print(json.dumps(record["final_epoch"], indent=2))
    if a.smoke or a.no_install:
        return 0
    target = data_dir() / "models"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.best_path, target / "default.pt")
    (target / "default.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"installed {target / 'default.pt'} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
