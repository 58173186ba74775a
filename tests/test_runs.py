"""End-to-end runs: a campaign is pinned to the model bytes and decoding it ran with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from molvae.bo import BOConfig
from molvae.data import Vocab
from molvae.io import file_sha256
from molvae.model import MolVAE, VAEConfig, save_checkpoint
from molvae.runs import OptimizeRunConfig, optimize

SIZES = {"emb_dim": 8, "enc_hidden": 16, "latent_dim": 4, "dec_hidden": 16, "dec_layers": 1}
TINY_BO = BOConfig(budget=2, batch_size=2, max_iterations=1, n_init=4, init_pool=8, init_top=2,
                   mc_samples=16, num_restarts=1, raw_samples=16, acq_maxiter=5,
                   n_decode_attempts=1)  # fmt: skip


def _checkpoint(path: Path, smiles: list[str], seed: int) -> Path:
    vocab = Vocab.build(smiles)
    torch.manual_seed(seed)
    model = MolVAE(VAEConfig(len(vocab), max_len=60, **SIZES))
    return save_checkpoint(path, model, vocab.tokens)


@pytest.fixture
def setup(tmp_path, zinc_small):
    data = tmp_path / "pool.smi"
    data.write_text("\n".join(zinc_small) + "\n")
    model = _checkpoint(tmp_path / "a.pt", zinc_small, seed=0)
    run = OptimizeRunConfig(model=str(model), objective="qed", data=str(data),
                            out_dir=str(tmp_path / "camp"), device="cpu")  # fmt: skip
    optimize(run, TINY_BO, progress=False)
    return run, model, tmp_path


def test_config_and_report_name_the_model_by_path_and_hash(setup) -> None:
    run, model, _ = setup
    meta = json.loads((Path(run.out_dir) / "config.json").read_text())["metadata"]
    assert meta["model_path"] == str(model.resolve())
    assert meta["model_sha256"] == meta["pinned"]["model_sha256"] == file_sha256(model)
    summary = (Path(run.out_dir) / "report" / "summary.md").read_text()
    assert file_sha256(model) in summary and str(model.resolve()) in summary


def test_same_bytes_under_another_path_resume(setup) -> None:
    run, model, tmp_path = setup
    copy = shutil.copy(model, tmp_path / "elsewhere.pt")
    bigger = BOConfig(**{**TINY_BO.__dict__, "budget": 4, "max_iterations": 2})
    result = optimize(OptimizeRunConfig(**{**run.__dict__, "model": str(copy)}), bigger,
                      progress=False)  # fmt: skip
    assert result.history["iteration"].max() == 2


def test_other_model_bytes_or_decoding_are_refused(setup, zinc_small) -> None:
    run, model, _ = setup
    before = (Path(run.out_dir) / "evaluations.csv").read_bytes()
    _checkpoint(model, zinc_small, seed=1)  # the same file name, other weights
    with pytest.raises(ValueError, match="model_sha256") as err:
        optimize(run, TINY_BO, progress=False)
    assert "\n" not in str(err.value)
    _checkpoint(model, zinc_small, seed=0)
    with pytest.raises(ValueError, match=r"constrained: True -> False.*grammar"):
        optimize(OptimizeRunConfig(**{**run.__dict__, "constrained": False}), TINY_BO,
                 progress=False)  # fmt: skip
    assert (Path(run.out_dir) / "evaluations.csv").read_bytes() == before
