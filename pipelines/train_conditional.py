"""Make the bundled conditional model (``--model conditional``) from the bundled default.

    python pipelines/train_conditional.py --threads 1              # about 2 hours on one core
    python pipelines/train_conditional.py --install                # then copy it into data/models
    python pipelines/train_conditional.py --smoke                  # seconds: tiny stages

Stages, each skipped when its ``best.pt`` exists (so a killed run goes on where it stopped):

1. ``base``: the default fine-tuned into a conditional VAE on the first 100,000 bundled ZINC
   molecules, every one labelled with RDKit's logP, QED, SA score and MW; one epoch, lr 3e-4,
   constant KL weight 0.1, the z adversary at weight 1, no consistency loss (release 18's model).
2. ``consistency1``, ``consistency2``: one epoch each on the same molecules with the
   consistency loss (`molvae.model.conditional.consistency_loss`) at ``--consistency-weight``,
   each starting from the stage before, so that the decoder learns to read y.
3. ``edit1``, ``edit2``: one epoch each more, the consistency loss now asking half of each
   batch for the molecule's own y with one property moved by U(-2.5, 2.5) standard deviations
   (``--edit-fraction``; `molvae.model.conditional.asked_properties`): edits and the
   properties' tails, which another molecule's y rarely asks for (release 20).
4. The learned prior: a posterior mixture over [z, y] of 10,000 components fitted to 50,000
   molecules (`molvae fit-prior --kind posterior`), written to ``<out>/conditional.pt``.
5. The edit check: 200 MOSES test molecules' own z decoded with y's logP set to 1 and to 5.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from molvae.cli import main as cli
from molvae.data import read_smiles
from molvae.data.property_cache import compute_properties
from molvae.model import GrammarConfig, LatentCodec
from molvae.resources import resolve_model
from molvae.runs import TrainRunConfig, train_on_smiles
from molvae.train import TrainConfig

PROPERTIES = ["logp", "qed", "sa_score", "mw"]


def stage(
    out: Path, init: str, a: argparse.Namespace, weight: float, warmup: int, edits: float = 0.0
) -> Path:
    """One epoch of conditional fine-tuning from ``init`` into ``out``; its best checkpoint."""
    if (out / "best.pt").exists():
        return out / "best.pt"
    run = TrainRunConfig(data="zinc", out_dir=str(out), max_molecules=a.molecules, init_from=init,
                         properties=PROPERTIES, conditional=True,
                         resume=(out / "last.pt").exists())  # fmt: skip
    tc = TrainConfig(epochs=1, lr=3e-4, beta_max=0.1, kl_schedule="constant", batch_size=256,
                     num_threads=a.threads, adversary_weight=1.0, consistency_weight=weight,
                     consistency_edit_fraction=edits,
                     lr_warmup_steps=warmup, max_steps_per_epoch=a.max_steps,
                     val_recon_samples=a.val_recon)  # fmt: skip
    return Path(train_on_smiles(run, tc, progress=False).best_path)


def edit_check(path: Path, n: int) -> dict:
    """Mean RDKit logP of ``n`` MOSES test molecules decoded from their own z with y's logP
    set to 1 and to 5 (greedy, grammar), and their greedy reconstruction rate."""
    codec = LatentCodec.from_checkpoint(path, device="cpu", grammar=GrammarConfig())
    test = read_smiles("zinc-test")[:n]
    z = codec.encode(test).z
    row = {
        "reconstruction": float(
            np.mean([a == b for a, b in zip(codec.decode(z), test, strict=True)])
        )
    }
    for target in (1.0, 5.0):
        smiles = [s for s in codec.decode(codec.with_condition(z, {"logp": target})) if s]
        logp = np.asarray(compute_properties(smiles, ["logp"]), dtype=float)[:, 0]
        row[f"logp_asked_{target:g}"] = float(np.nanmean(logp))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/conditional_model")
    p.add_argument("--molecules", type=int, default=100_000)
    p.add_argument("--consistency-weight", type=float, default=10.0)
    p.add_argument("--consistency-epochs", type=int, default=2)
    p.add_argument("--edit-epochs", type=int, default=2)
    p.add_argument("--edit-fraction", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="per stage (smoke runs)")
    p.add_argument("--val-recon", type=int, default=200)
    p.add_argument("--prior-molecules", type=int, default=50_000)
    p.add_argument("--components", type=int, default=10_000)
    p.add_argument("--install", action="store_true", help="copy into data/models/conditional.pt")
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args(argv)
    if a.smoke:
        a.molecules, a.max_steps, a.val_recon = 600, 2, 20
        a.prior_molecules, a.components, a.consistency_epochs, a.edit_epochs = 300, 50, 1, 1
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    best = stage(out, str(resolve_model("default")), a, weight=0.0, warmup=200)
    for k in range(1, a.consistency_epochs + 1):
        best = stage(out / f"consistency{k}", str(best), a, a.consistency_weight, warmup=20)
    for k in range(1, a.edit_epochs + 1):
        best = stage(out / f"edit{k}", str(best), a, a.consistency_weight, warmup=20,
                     edits=a.edit_fraction)  # fmt: skip
    final = out / "conditional.pt"
    if not final.exists():
        cli(["fit-prior", str(best), "--out", str(final), "--kind", "posterior",
             "--components", str(a.components), "--n-molecules", str(a.prior_molecules),
             "--smoothing", "2", "--max-scale", "1", "--jobs", "1"])  # fmt: skip
    check = edit_check(final, 20 if a.smoke else 200)
    print(json.dumps(check))
    (out / "edit_check.json").write_text(json.dumps(check, indent=2))
    if a.install:
        shutil.copy(final, "data/models/conditional.pt")
        print("installed data/models/conditional.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
