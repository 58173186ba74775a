"""pipelines/benchmarks/train_throughput.py: old and new trainer stepped in turn, ratios within
one process, and the validation comparison after the same molecules."""

from __future__ import annotations

import pandas as pd
from conftest import ROOT, load_pipeline

BENCH = ROOT / "pipelines" / "benchmarks"


def test_old_and_new_trainer_rows_and_their_ratios(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    bench = load_pipeline("train_throughput", BENCH)
    args = ["--smoke", "--no-peer", "--threads", "1", "--trainers", "old,new", "--out",
            str(tmp_path)]  # fmt: skip
    assert bench.main(args) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    fp32 = df[df["precision"] == "fp32"]
    assert fp32["trainer"].tolist() == ["old", "new"]
    assert (df["molecules"] == 32).all() and (df["mol_per_cpu_s"] > 0).all()
    assert fp32["x_old"].iloc[0] == 1.0
    assert abs(fp32["x_old"].iloc[1] - fp32["mol_per_s"].iloc[1] / fp32["mol_per_s"].iloc[0]) < 1e-9


def test_ratios_compare_rows_of_the_same_process_only() -> None:
    bench = load_pipeline("train_throughput", BENCH)
    rows = [("MOSES", "fp32", "a", 10.0), ("old", "fp32", "a", 20.0), ("new", "fp32", "a", 30.0),
            ("MOSES", "fp32", "b", 5.0), ("new", "fp32", "b", 20.0)]  # fmt: skip
    df = pd.DataFrame(rows, columns=["trainer", "precision", "isa", "mol_per_s"])
    df["allocator"], df["mol_per_cpu_s"] = "default", df["mol_per_s"] * 2
    out = bench.ratios(df)
    assert out["x_moses"].tolist() == [1.0, 2.0, 3.0, 1.0, 4.0]
    assert out["x_old"].tolist()[:3] == [0.5, 1.0, 1.5] and out["x_old"].isna().tolist()[3:] == [
        True, True]  # fmt: skip
    assert out["x_moses_cpu"].tolist() == out["x_moses"].tolist()


def test_quality_mode_trains_both_on_the_same_molecules(tmp_path) -> None:
    bench = load_pipeline("train_throughput", BENCH)
    args = ["--smoke", "--quality", "64", "--threads", "1", "--out", str(tmp_path)]
    assert bench.main(args) == 0
    df = pd.read_csv(tmp_path / "quality.csv")
    assert df["trainer"].tolist() == ["old", "new"] and (df["molecules"] == 64).all()
    assert abs(df["val_recon"][0] - df["val_recon"][1]) < 1e-3 * df["val_recon"][0]
