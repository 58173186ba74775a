"""``pipelines/train_default.py --preset moses-cpu``: fine-tunes the bundled model with a property
head, checkpoints inside epochs, and installs nothing with ``--no-install``."""

from __future__ import annotations

import json

import pandas as pd
from conftest import load_pipeline

from molvae.data import read_smiles
from molvae.model import load_checkpoint
from molvae.resources import resolve_model


def test_moses_cpu_preset_fine_tunes_moses_250k_with_properties(tmp_path) -> None:
    """The default model's recipe: moses-250k, fine-tuned with a property head."""
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(read_smiles("zinc-test")[:40]) + "\n")
    installed = {m: resolve_model(m).read_bytes() for m in ("default", "moses-250k")}
    out = tmp_path / "run"
    args = ["--preset", "moses-cpu", "--data", str(data), "--batch-size", "16", "--epochs", "1",
            "--threads", "1", "--no-install", "--out", str(out)]  # fmt: skip
    assert load_pipeline("train_default").main(args) == 0
    run = json.loads((out / "phase1" / "run.json").read_text())
    assert run["run"]["init_from"] == "moses-250k" and run["run"]["data"] == str(data)
    assert run["properties"]["names"] == ["logp", "sa", "qed", "plogp"]
    train = json.loads((out / "phase1" / "config.json").read_text())["train"]
    assert train["checkpoint_minutes"] == 5.0 and train["beta_max"] == 0.1
    assert train["kl_schedule"] == "constant" and train["num_threads"] == 1
    best = load_checkpoint(out / "phase1" / "best.pt")
    start = load_checkpoint(resolve_model("moses-250k"))
    assert best.config.property_dim == 4
    assert {**best.config.to_dict(), "property_dim": 0} == start.config.to_dict()
    assert len(pd.read_csv(out / "phase1" / "metrics.csv")) == 1
    assert {m: resolve_model(m).read_bytes() for m in installed} == installed  # --no-install
    # --resume on a finished run adds nothing
    assert load_pipeline("train_default").main([*args, "--resume"]) == 0
    assert len(pd.read_csv(out / "phase1" / "metrics.csv")) == 1


def test_init_from_overrides_the_presets_starting_model() -> None:
    """``--preset moses-cpu --init-from X`` (the README's "train on from it") starts from X, not
    from the preset's model, and only X reaches the run's settings."""
    pipeline = load_pipeline("train_default")
    a = pipeline.parse_args(["--preset", "moses-cpu", "--init-from", "some/best.pt",
                             "--epochs", "1", "--beta", "0.05"])  # fmt: skip
    _, phases, run_kw, init_from, _ = pipeline.plan(a)
    assert init_from == "some/best.pt" and "init_from" not in run_kw
    assert phases == [{**phases[0], "epochs": 1, "beta_max": 0.05, "kl_schedule": "constant"}]
    _, _, run_kw, init_from, _ = pipeline.plan(pipeline.parse_args(["--preset", "moses-cpu"]))
    assert init_from == "moses-250k" and "init_from" not in run_kw
