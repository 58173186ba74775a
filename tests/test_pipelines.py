"""Every pipeline's smoke-size mode runs (STYLE.md: CI runs them)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import load_pipeline


def test_train_default_smoke(smoke_model_run) -> None:
    out = smoke_model_run  # conftest: ``train_default.py --smoke``, shared with the benchmarks
    config = json.loads((out / "phase1" / "config.json").read_text())
    assert config["model"]["latent_dim"] == 8
    assert len(pd.read_csv(out / "phase1" / "metrics.csv")) == 1
    # the second phase fine-tunes the first phase's best checkpoint
    run = json.loads((out / "phase2" / "run.json").read_text())
    assert run["run"]["init_from"] == str(out / "phase1" / "best.pt")
    record = json.loads((out / "record.json").read_text())
    assert [len(p["epochs"]) for p in record["phases"]] == [1, 1]
    assert record["final_epoch"]["epoch"] == 1


@pytest.mark.slow  # BO and random search, each scoring and encoding its own initial pool
def test_bo_benchmark_smoke(smoke_model_run, tmp_path) -> None:
    out = tmp_path / "bench"
    model = str(smoke_model_run / "phase2" / "best.pt")
    args = ["--smoke", "--model", model, "--out", str(out), "--threads", "1"]
    assert load_pipeline("bo_benchmark").main(args) == 0
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["method"]) == ["bo", "random"]
    # Both methods proposed the same number of points from the same initial design.
    assert results["proposals"].nunique() == 1 and (results["proposals"] > 0).all()
    assert (out / "results.md").read_text().startswith("# BO vs random search")
    assert (out / "qed-seed0-traces.png").exists()
