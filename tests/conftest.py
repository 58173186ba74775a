"""Shared fixtures. The expensive ones are session-scoped and read-only: a test that changes a
run or a campaign works on its own copy (``shutil.copytree``)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent

# Real ZINC molecules (MOSES train), small enough for fast fixtures.
ZINC_SMALL = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(=O)Oc1ccccc1C(=O)O",
    "O=C(Nc1ccc(Br)cc1)c1ccco1",
    "COc1ccc(CC(=O)N2CCN(c3ncccn3)CC2)cc1",
    "N#Cc1ccc(OCC(O)CN2CCOCC2)cc1",
]

# The model size of every tiny CLI model (latent dimension 8).
TINY = ["--emb-dim", "16", "--enc-hidden", "32", "--latent-dim", "8", "--dec-hidden", "48",
        "--dec-layers", "1"]  # fmt: skip


@pytest.fixture
def zinc_small() -> list[str]:
    return list(ZINC_SMALL)


def overfit_tiny_codec():
    """A tiny model overfitted on `ZINC_SMALL` (150 Adam steps, seed 0): near their codes it
    writes the 8 molecules back, further out strings the grammar refuses. A fresh one per call,
    so a module that changes its codec keeps that to itself."""
    import numpy as np

    from molvae.data.batching import PadCollate
    from molvae.data.tokens import Vocab
    from molvae.model import LatentCodec, MolVAE, VAEConfig

    vocab = Vocab.build(ZINC_SMALL)
    torch.manual_seed(0)
    config = VAEConfig(len(vocab), emb_dim=16, enc_hidden=64, latent_dim=8, dec_hidden=64,
                       dec_layers=2, max_len=50)  # fmt: skip
    model = MolVAE(config)
    x, lengths, _ = PadCollate()([(i, np.array(vocab.encode(s))) for i, s in enumerate(ZINC_SMALL)])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(150):
        out = model(x, lengths)
        opt.zero_grad()
        (out.recon + 0.01 * out.kl).backward()
        opt.step()
    return LatentCodec(model.eval(), vocab)


def load_pipeline(name: str, folder: Path = ROOT / "pipelines") -> ModuleType:
    """Import ``folder/name.py`` as a module (the pipelines are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny epoch through `molvae train` on 400 bundled ZINC molecules: the run directory."""
    from molvae.cli import main

    out = tmp_path_factory.mktemp("tiny-run")
    args = ["train", "--data", "zinc", "--max-molecules", "400", "--epochs", "1", "--batch-size",
            "64", "--out", str(out), "--no-progress", "--threads", "1", *TINY]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_run) -> Path:
    return tiny_run / "best.pt"


@dataclass(frozen=True)
class Campaign:
    """A finished `molvae optimize` campaign and the command line that made it: a charged pool
    of 4, then 2 iterations of 2 (8 oracle calls)."""

    model: Path
    pool: Path  # the --data file: 50 ZINC test molecules, so the initial pool is small
    dir: Path

    def args(self, out: Path) -> list[str]:
        """The same campaign into ``out`` (on ``dir`` itself, or a copy: a resume)."""
        return ["optimize", "--model", str(self.model), "--data", str(self.pool), "--objective",
                "qed", "--budget", "8", "-q", "2", "--init-pool", "4", "--iterations", "2",
                "--seed", "1", "--threads", "1", "--no-progress", "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_campaign(tiny_model, tmp_path_factory) -> Campaign:
    """Two BO iterations of 2 from an initial design of 4, with the tiny model (read-only)."""
    from molvae.cli import main
    from molvae.data import read_smiles

    base = tmp_path_factory.mktemp("tiny-campaign")
    pool = base / "pool.smi"
    pool.write_text("\n".join(read_smiles("zinc-test")[:50]) + "\n")
    campaign = Campaign(tiny_model, pool, base / "campaign")
    assert main(campaign.args(campaign.dir)) == 0
    return campaign


@pytest.fixture(scope="session")
def smoke_model_run(tmp_path_factory) -> Path:
    """``pipelines/train_default.py --smoke``: both phases, in seconds (read-only)."""
    out = tmp_path_factory.mktemp("train-default") / "run"
    args = ["--smoke", "--out", str(out), "--threads", "1", "--no-install"]
    assert load_pipeline("train_default").main(args) == 0
    return out
