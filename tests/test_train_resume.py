"""Mid-epoch checkpoints: a run stopped or killed at any step resumes to the very weights of a run
that never stopped (CPU, bit-identical), and old checkpoints still resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.data import Vocab
from molvae.model import VAEConfig
from molvae.model.checkpoint import load_checkpoint, save_checkpoint
from molvae.train import TrainConfig, train
from molvae.train.state import append_metrics

EVERY_STEP = 1e-9  # checkpoint_minutes: last.pt after every step


class Stop(Exception):
    pass


@pytest.fixture
def data(zinc_small):
    smiles = zinc_small * 4  # 32 molecules: 4 batches of 8 per epoch
    vocab = Vocab.build(smiles)
    ids = [np.array(vocab.encode(s)) for s in smiles]
    mcfg = VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=4, dec_hidden=16,
                     dec_layers=1, max_len=60, dropout=0.1, property_dim=1)  # fmt: skip
    props = np.array([[len(i) / 10.0] for i in ids], dtype=np.float32)
    return vocab, ids, mcfg, props


def tcfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=8, device="cpu", lr_warmup_steps=2, kl_warmup_epochs=1.0,
                val_recon_samples=4, seed=0, checkpoint_minutes=0.0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def run(data, out, cfg, **kw):
    vocab, ids, mcfg, props = data
    return train(mcfg, cfg, vocab.tokens, ids, ids[:8], out, progress=False, train_props=props,
                 val_props=props[:8], **kw)  # fmt: skip


def stop_at(step: int):
    def on_step(st):
        if st.step == step:
            raise Stop

    return on_step


def assert_same_run(a, b) -> None:
    ca, cb = load_checkpoint(a.last_path), load_checkpoint(b.last_path)
    assert ca.train_state["step"] == cb.train_state["step"]
    for k, v in ca.state_dict.items():
        assert torch.equal(v, cb.state_dict[k]), k
    for k, v in load_checkpoint(a.best_path).state_dict.items():
        assert torch.equal(v, load_checkpoint(b.best_path).state_dict[k]), k
    cols = ["epoch", "step", "beta", "lr", "train_loss", "train_recon", "train_kl", "train_prop",
            "val_loss", "val_recon_acc", "val_active_units", "nonfinite_steps"]  # fmt: skip
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])


@pytest.mark.parametrize("kernels", [{}, {"amp": False, "rnn": "fused"}], ids=["default", "fp32"])
def test_stopped_mid_epoch_twice_resumes_bit_identical(tmp_path, data, kernels) -> None:
    full = run(data, tmp_path / "full", tcfg(**kernels))
    out = tmp_path / "cut"
    cfg = tcfg(checkpoint_minutes=EVERY_STEP, **kernels)
    with pytest.raises(Stop):  # inside epoch 1
        run(data, out, cfg, on_step=stop_at(2))
    ts = load_checkpoint(out / "last.pt").train_state
    assert ts["in_epoch"]["batch"] == 2 and ts["in_epoch"]["epoch"] == 0 and ts["epoch"] == -1
    assert not (out / "metrics.csv").exists()
    with pytest.raises(Stop):  # inside epoch 3, after two epoch ends
        run(data, out, cfg, resume=True, on_step=stop_at(9))
    last = load_checkpoint(out / "last.pt")
    assert last.meta["epochs"] == 2 and last.train_state["in_epoch"]["batch"] == 1
    assert len(pd.read_csv(out / "metrics.csv")) == 2
    resumed = run(data, out, cfg, resume=True)
    assert_same_run(full, resumed)
    assert "in_epoch" not in load_checkpoint(resumed.last_path).train_state


def test_resume_right_after_an_epoch_end_and_free_bits(tmp_path, data) -> None:
    cfg = tcfg(free_bits=0.5, kl_schedule="cyclical", kl_cycle_epochs=1.5)
    full = run(data, tmp_path / "full", cfg)
    with pytest.raises(Stop):
        run(data, tmp_path / "cut", cfg, on_step=stop_at(4))  # the last batch of epoch 1
    resumed = run(data, tmp_path / "cut", cfg, resume=True)
    assert_same_run(full, resumed)


_KILLED = """
import sys, numpy as np
from molvae.data import Vocab
from molvae.model import VAEConfig
from molvae.train import TrainConfig, train
smiles = sys.argv[2].split(",") * 8
vocab = Vocab.build(smiles)
ids = [np.array(vocab.encode(s)) for s in smiles]
mcfg = VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=4, dec_hidden=16,
                 dec_layers=1, max_len=60, dropout=0.1)
cfg = TrainConfig(epochs=4, batch_size=8, device="cpu", lr_warmup_steps=2, val_recon_samples=4,
                  checkpoint_minutes=float(sys.argv[3]), num_threads=1)
train(mcfg, cfg, vocab.tokens, ids, ids[:8], sys.argv[1], progress=False, resume=True)
"""


def _start(out, zinc_small, minutes) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _KILLED, str(out), ",".join(zinc_small),
                             str(minutes)], stderr=subprocess.PIPE)  # fmt: skip


def _step(path) -> int:
    try:
        return int(load_checkpoint(path).train_state["step"])
    except Exception:  # not written yet
        return -1


@pytest.mark.slow
def test_killed_mid_epoch_resumes_bit_identical(tmp_path, zinc_small) -> None:
    ref = _start(tmp_path / "full", zinc_small, 0.0)
    assert ref.wait(timeout=120) == 0, ref.stderr.read()
    out = tmp_path / "cut"
    kills = 0
    for target in (5, 19):  # kill -9 as soon as last.pt is past this step: mid-epoch, anywhere
        proc = _start(out, zinc_small, EVERY_STEP)
        while proc.poll() is None and _step(out / "last.pt") < target:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills == 2, "the run finished before the kills"
    proc = _start(out, zinc_small, EVERY_STEP)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(out / "last.pt")
    assert a.train_state["step"] == b.train_state["step"] == 32
    for k, v in a.state_dict.items():
        assert torch.equal(v, b.state_dict[k]), k
    ma, mb = pd.read_csv(tmp_path / "full" / "metrics.csv"), pd.read_csv(out / "metrics.csv")
    assert mb["epoch"].tolist() == [1, 2, 3, 4]
    cols = ["train_loss", "val_loss"]
    pd.testing.assert_frame_equal(ma[cols], mb[cols])


def test_checkpoint_without_batching_or_position_resumes(tmp_path, data) -> None:
    """A last.pt written before mid-epoch checkpoints (no "batching", no "in_epoch") resumes at
    the next epoch with the batching every run used then."""
    cfg = tcfg()
    full = run(data, tmp_path / "full", cfg)
    out = tmp_path / "old"

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        run(data, out, cfg, callback=stop_after_first)
    ck = load_checkpoint(out / "last.pt")
    ts = {k: v for k, v in ck.train_state.items() if k not in ("batching", "consecutive_nonfinite")}
    model = _model(ck)
    save_checkpoint(out / "last.pt", model, ck.vocab_tokens, ck.meta, ts)
    resumed = run(data, out, tcfg(bucket_chunk_batches=7), resume=True)  # old batching wins
    assert_same_run(full, resumed)


def test_resume_keeps_the_recorded_loss_settings(tmp_path, data, caplog) -> None:
    """A run resumed with other loss weights (a changed default, a mistyped flag) goes on with
    the ones its last.pt records, says so, and ends where the uninterrupted run ends."""
    cfg = tcfg(prop_weight=2.0, beta_max=0.3)
    full = run(data, tmp_path / "full", cfg)
    out = tmp_path / "cut"
    with pytest.raises(Stop):
        run(data, out, tcfg(prop_weight=2.0, beta_max=0.3, checkpoint_minutes=EVERY_STEP),
            on_step=stop_at(6))  # fmt: skip
    objective = load_checkpoint(out / "last.pt").train_state["objective"]
    assert objective["prop_weight"] == 2.0 and objective["beta_max"] == 0.3
    with caplog.at_level("WARNING", logger="molvae.train.run"):
        resumed = run(data, out, tcfg(prop_weight=1.0, beta_max=0.5), resume=True)
    assert "loss settings" in caplog.text and "prop_weight" in caplog.text
    assert_same_run(full, resumed)
    written = json.loads((out / "config.json").read_text())["train"]
    assert written["prop_weight"] == 2.0 and written["beta_max"] == 0.3


def _model(ck):
    from molvae.model import MolVAE

    m = MolVAE(ck.config)
    m.load_state_dict(ck.state_dict)
    return m


def test_metrics_row_with_new_columns_rewrites_the_file(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    append_metrics(path, {"epoch": 1, "val_loss": 2.0})
    append_metrics(path, {"epoch": 2, "val_loss": 1.5, "val_active_units": 3})
    df = pd.read_csv(path)
    assert df["epoch"].tolist() == [1, 2] and df["val_active_units"].tolist()[1] == 3
    assert np.isnan(df["val_active_units"][0])
