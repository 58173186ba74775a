"""Every pipeline's smoke-size mode runs (STYLE.md: CI runs them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PIPELINES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_default_smoke(tmp_path) -> None:
    out = tmp_path / "run"
    assert _load("train_default").main(["--smoke", "--out", str(out), "--threads", "1"]) == 0
    config = json.loads((out / "phase1" / "config.json").read_text())
    assert config["model"]["latent_dim"] == 8
    assert len(pd.read_csv(out / "phase1" / "metrics.csv")) == 1
    # the second phase fine-tunes the first phase's best checkpoint
    run = json.loads((out / "phase2" / "run.json").read_text())
    assert run["run"]["init_from"] == str(out / "phase1" / "best.pt")
    record = json.loads((out / "record.json").read_text())
    assert [len(p["epochs"]) for p in record["phases"]] == [1, 1]
    assert record["final_epoch"]["epoch"] == 1


def test_bo_benchmark_smoke(tmp_path) -> None:
    run = tmp_path / "run"
    _load("train_default").main(["--smoke", "--out", str(run), "--threads", "1"])
    out = tmp_path / "bench"
    model = str(run / "phase2" / "best.pt")
    args = ["--smoke", "--model", model, "--out", str(out), "--threads", "1"]
    assert _load("bo_benchmark").main(args) == 0
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["method"]) == ["bo", "random"]
    # Both methods proposed the same number of points from the same initial design.
    assert results["proposals"].nunique() == 1 and (results["proposals"] > 0).all()
    assert (out / "results.md").read_text().startswith("# BO vs random search")
    assert (out / "qed-seed0-traces.png").exists()
