"""Weighted retraining with a real (tiny) model: the fine-tuning itself, and `molvae optimize`
with ``retrain_every``: the saved checkpoint, the re-encoded latents, and exact resume after a
kill during or right after the retraining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import molvae.bo.retrain as retrain_mod
import molvae.runs.retraining as retraining
from molvae.bo import BOConfig
from molvae.bo.retrain_data import read_latents
from molvae.bo.store import z_columns
from molvae.data import read_smiles, tokenize
from molvae.model import LatentCodec, MolVAE, load_checkpoint
from molvae.runs import OptimizeRunConfig, optimize
from molvae.train import FinetuneConfig, finetune, weighted_draw

FT = FinetuneConfig(steps=3, batch_size=8, warmup_steps=1)
BO = BOConfig(surrogate="latent",
              budget=6, batch_size=2, max_iterations=3, n_init=4, init_pool=40, init_top=2,
              free_pool=True, num_restarts=2, raw_samples=32, acq_maxiter=10, fit_maxiter=20,
              n_decode_attempts=2, seed=1, retrain_every=1)  # fmt: skip


class Killed(Exception):
    pass


def test_weighted_draw_follows_the_weights() -> None:
    idx = weighted_draw(np.array([0.0, 1.0, 3.0]), 4000, seed=0)
    assert set(idx) == {1, 2} and abs((idx == 2).mean() - 0.75) < 0.03
    np.testing.assert_array_equal(idx, weighted_draw(np.array([0.0, 1.0, 3.0]), 4000, seed=0))
    with pytest.raises(ValueError):
        weighted_draw(np.zeros(3), 5, seed=0)


def test_finetune_is_seeded_moves_the_weights_and_leaves_the_rng_alone(tiny_model, zinc_small):
    ck = load_checkpoint(tiny_model)
    model = MolVAE.from_checkpoint(ck)
    vocab = ck.vocab()
    ids = [np.asarray(vocab.encode(s)) for s in zinc_small
           if all(t in vocab.index for t in tokenize(s))]  # fmt: skip
    assert len(ids) >= 4
    weights = np.ones(len(ids))
    rng = torch.get_rng_state()
    a = finetune(model, vocab.tokens, ids, weights, FT, seed=5, meta=ck.meta)
    assert torch.equal(torch.get_rng_state(), rng)
    b = finetune(model, vocab.tokens, ids, weights, FT, seed=5, meta=ck.meta)
    c = finetune(model, vocab.tokens, ids, weights, FT, seed=6, meta=ck.meta)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not all(torch.equal(sa[k], v) for k, v in model.state_dict().items())
    assert not a.training and all(torch.equal(v, ck.state_dict[k]) for k, v in
                                  model.state_dict().items())  # fmt: skip


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "pool.smi"
    path.write_text("\n".join(read_smiles("zinc-test")[:50]) + "\n")
    return path


def campaign(model: Path, pool: Path, out: Path, bo: BOConfig = BO, ft: FinetuneConfig = FT):
    run = OptimizeRunConfig(model=str(model), objective="qed", data=str(pool), out_dir=str(out),
                            threads=1, device="cpu")  # fmt: skip
    return optimize(run, bo, progress=False, finetune=ft)


@pytest.fixture(scope="module")
def reference(tiny_model, pool_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retrain-ref") / "campaign"
    campaign(tiny_model, pool_file, out)
    return out


def test_campaign_saves_loadable_models_and_their_latents(reference, tiny_model) -> None:
    state = json.loads((reference / "state.json").read_text())
    assert state["model_version"] == 2, state.get("retrains")
    base = load_checkpoint(tiny_model)
    for version in (1, 2):
        path = reference / "models" / f"retrain_{version}.pt"
        raw = torch.load(path, weights_only=True)
        assert raw["meta"]["finetuned"]["config"]["steps"] == FT.steps
        ck = load_checkpoint(path)
        assert ck.prior is None and ck.config == base.config
        assert not all(torch.equal(v, base.state_dict[k]) for k, v in ck.state_dict.items())
        latents = read_latents(reference / "models" / f"latents_{version}.csv")
        codec = LatentCodec.from_checkpoint(path, device="cpu")
        z = codec.encode(list(latents["canonical"]), check_domain=False).z.double().numpy()
        zc = z_columns(base.config.latent_dim)
        np.testing.assert_allclose(latents[zc].to_numpy(), z, rtol=0, atol=1e-6)
    pinned = json.loads((reference / "config.json").read_text())["metadata"]["pinned"]
    assert pinned["finetune"]["steps"] == FT.steps


@pytest.mark.slow
@pytest.mark.parametrize("where", ["saving the model", "writing the latents"])
def test_killed_in_a_retraining_resumes_to_the_same_campaign(
    reference, tiny_model, pool_file, tmp_path, monkeypatch, where
) -> None:
    out = tmp_path / "campaign"
    target, name = ((retraining, "save_checkpoint") if where == "saving the model"
                    else (retrain_mod, "write_latents"))  # fmt: skip
    real, calls = getattr(target, name), []

    def kill_second(*args, **kw):  # the second retraining: version 2 from version 1
        calls.append(1)
        if len(calls) == 2:
            raise Killed(where)
        return real(*args, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(target, name, kill_second)
        with pytest.raises(Killed):
            campaign(tiny_model, pool_file, out)
    campaign(tiny_model, pool_file, out)
    for f in ("evaluations.csv", "models/latents_1.csv", "models/latents_2.csv"):
        assert (out / f).read_bytes() == (reference / f).read_bytes(), f
    a = load_checkpoint(out / "models" / "retrain_2.pt").state_dict
    b = load_checkpoint(reference / "models" / "retrain_2.pt").state_dict
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_resume_with_other_finetune_settings_is_refused(reference, tiny_model, pool_file,
                                                        tmp_path) -> None:  # fmt: skip
    out = tmp_path / "campaign"
    shutil.copytree(reference, out)
    with pytest.raises(ValueError, match="other settings"):
        campaign(tiny_model, pool_file, out, ft=FinetuneConfig(steps=4, batch_size=8))


@pytest.mark.slow  # two small campaigns through the benchmark, with plots and tables
def test_bo_benchmark_runs_bo_retrain(tiny_model, tmp_path) -> None:
    from conftest import load_pipeline

    out = tmp_path / "bench"
    args = ["--smoke", "--methods", "bo", "bo-retrain", "--model", str(tiny_model), "--out",
            str(out), "--threads", "1", "--retrain-steps", "2"]  # fmt: skip
    assert load_pipeline("bo_benchmark").main(args) == 0
    text = (out / "results.md").read_text()
    assert "BO + TR + weighted retraining" in text
    assert (out / "qed-bo-retrain-seed0" / "models" / "retrain_1.pt").exists()
    assert not (out / "qed-bo-seed0" / "models").exists()


@pytest.mark.slow
def test_cli_retrain_every_fine_tunes_and_pins_its_settings(tiny_campaign, tmp_path) -> None:
    from molvae.cli import main

    out = tmp_path / "campaign"
    knobs = ["--retrain-every", "1", "--retrain-steps", "2", "--retrain-batch-size", "8"]
    assert main([*tiny_campaign.args(out), *knobs]) == 0
    state = json.loads((out / "state.json").read_text())
    assert [r["iteration"] for r in state["retrains"]] == [1]
    assert load_checkpoint(out / "models" / "retrain_1.pt").meta["finetuned"]["config"] == {
        **json.loads((out / "config.json").read_text())["metadata"]["pinned"]["finetune"]
    }
    # another fine-tuning length is another experiment: refused (exit status 2)
    assert main([*tiny_campaign.args(out), *knobs[:2], "--retrain-steps", "3", *knobs[4:]]) == 2
