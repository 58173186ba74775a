from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.data import Vocab
from molvae.model import VAEConfig
from molvae.model.checkpoint import load_checkpoint
from molvae.train import TrainConfig, kl_weight, lr_factor, train


class Stop(Exception):
    pass


@pytest.fixture
def data(zinc_small):
    smiles = zinc_small * 4  # 32 molecules
    vocab = Vocab.build(smiles)
    ids = [np.array(vocab.encode(s)) for s in smiles]
    mcfg = VAEConfig(
        len(vocab),
        emb_dim=8,
        enc_hidden=16,
        latent_dim=4,
        dec_hidden=16,
        dec_layers=1,
        max_len=60,
    )
    return vocab, ids, mcfg


def tcfg(**kw) -> TrainConfig:
    base = {
        "epochs": 1,
        "batch_size": 8,
        "device": "cpu",
        "lr_warmup_steps": 2,
        "kl_warmup_epochs": 1.0,
        "val_recon_samples": 8,
        "seed": 0,
    }
    return TrainConfig(**{**base, **kw})


def test_kl_weight_schedules() -> None:
    lin = TrainConfig(kl_schedule="linear", beta_max=0.5, kl_warmup_epochs=2.0)
    assert [kl_weight(s, 10, lin) for s in (0, 5, 10, 20, 100)] == [0.0, 0.125, 0.25, 0.5, 0.5]
    sig = TrainConfig(kl_schedule="sigmoid", beta_max=1.0, kl_warmup_epochs=1.0)
    assert kl_weight(50, 100, sig) == pytest.approx(0.5)
    assert kl_weight(0, 100, sig) == pytest.approx(1 / (1 + math.exp(6)))
    assert kl_weight(100, 100, sig) == pytest.approx(1 / (1 + math.exp(-6)))
    const = TrainConfig(kl_schedule="constant", beta_max=0.3)
    assert kl_weight(0, 10, const) == kl_weight(99, 10, const) == 0.3
    with pytest.raises(ValueError):
        kl_weight(1, 10, TrainConfig(kl_schedule="cyclic"))
    cyc = TrainConfig(kl_schedule="cyclical", beta_max=0.4, kl_cycle_epochs=2.0, kl_cycle_ramp=0.5)
    # cycles of 20 steps: ramp over the first 10, hold for 10, start again
    got = [kl_weight(s, 10, cyc) for s in (0, 5, 10, 19, 20, 25, 45)]
    assert got == pytest.approx([0.0, 0.2, 0.4, 0.4, 0.0, 0.2, 0.2])


def test_lr_factor_warmup_then_cosine() -> None:
    c = TrainConfig(lr_warmup_steps=10, lr_decay="cosine")
    assert lr_factor(0, 110, c) == pytest.approx(0.1)
    assert lr_factor(9, 110, c) == pytest.approx(1.0)
    assert lr_factor(10, 110, c) == pytest.approx(1.0)
    assert lr_factor(60, 110, c) == pytest.approx(0.5)
    assert lr_factor(110, 110, c) == pytest.approx(0.0)
    assert lr_factor(60, 110, TrainConfig(lr_warmup_steps=10, lr_decay="none")) == 1.0


def test_one_epoch_writes_all_outputs(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    seen = []
    res = train(
        mcfg,
        tcfg(),
        vocab.tokens,
        ids,
        ids[:8],
        tmp_path,
        progress=False,
        meta={"trained_on": "zinc_small"},
        callback=seen.append,
    )
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model"] == mcfg.to_dict() and cfg["train"]["batch_size"] == 8
    hist = pd.read_csv(tmp_path / "metrics.csv")
    assert len(hist) == 1 and hist["epoch"].tolist() == [1] and hist["step"].tolist() == [4]
    for col in ("train_loss", "val_loss", "val_recon", "val_kl", "val_token_acc", "val_recon_acc"):
        assert np.isfinite(hist[col]).all(), col
    assert 0 <= hist["val_recon_acc"][0] <= 1 and hist["mol_per_s"][0] > 0
    assert res.history.equals(hist) and len(seen) == 1 and seen[0]["epoch"] == 1
    assert res.best_epoch == 1 and res.best_val_loss == pytest.approx(hist["val_loss"][0])
    best, last = load_checkpoint(res.best_path), load_checkpoint(res.last_path)
    assert best.train_state is None and last.train_state["epoch"] == 0
    assert best.meta["trained_on"] == "zinc_small" and best.meta["epochs"] == 1
    assert best.vocab() == vocab and best.config == mcfg
    assert all(torch.equal(v, last.state_dict[k]) for k, v in best.state_dict.items())


def test_resume_matches_uninterrupted_run(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    cfg = tcfg(epochs=3)
    full = train(mcfg, cfg, vocab.tokens, ids, ids[:8], tmp_path / "full", progress=False)

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(
            mcfg,
            cfg,
            vocab.tokens,
            ids,
            ids[:8],
            tmp_path / "cut",
            progress=False,
            callback=stop_after_first,
        )
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 1
    resumed = train(
        mcfg, cfg, vocab.tokens, ids, ids[:8], tmp_path / "cut", progress=False, resume=True
    )
    a, b = load_checkpoint(full.last_path), load_checkpoint(resumed.last_path)
    assert a.train_state["step"] == b.train_state["step"] == 12
    for k, v in a.state_dict.items():
        assert torch.equal(v, b.state_dict[k]), k
    cols = ["epoch", "train_loss", "val_loss"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])


def test_property_head_trains(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    mcfg.property_dim = 1
    props = np.array([[len(i) / 10.0] for i in ids], dtype=np.float32)
    res = train(
        mcfg,
        tcfg(epochs=2),
        vocab.tokens,
        ids,
        ids[:8],
        tmp_path,
        progress=False,
        train_props=props,
        val_props=props[:8],
    )
    assert (res.history["train_prop"] > 0).all() and (res.history["val_prop"] > 0).all()


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    mcfg.property_dim = 1
    props = np.zeros((len(ids), 1), dtype=np.float32)
    props[0] = 1e30  # its square overflows: poisons exactly one batch per epoch (NaN is masked)
    res = train(
        mcfg,
        tcfg(epochs=2),
        vocab.tokens,
        ids,
        ids[:8],
        tmp_path,
        progress=False,
        train_props=props,
        val_props=props[8:16],
    )
    assert res.nonfinite_steps == 2
    assert res.history["nonfinite_steps"].tolist() == [1, 2]
    assert all(torch.isfinite(v).all() for v in load_checkpoint(res.last_path).state_dict.values())


def test_diverged_run_stops_with_clear_error(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    mcfg.property_dim = 1
    props = np.full((len(ids), 1), np.inf, dtype=np.float32)
    with pytest.raises(RuntimeError, match="consecutive non-finite"):
        train(
            mcfg,
            tcfg(max_nonfinite_steps=2),
            vocab.tokens,
            ids,
            ids[:8],
            tmp_path,
            progress=False,
            train_props=props,
        )
