"""Smoke runs of the charged-vocabulary fine-tune, the Jin benchmark and ``gradient`` in the BO
benchmark, chained on one tiny model (seconds)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import load_pipeline

from molvae.model import load_checkpoint

CHARGED = ["COc1cc2c(cc1OC)CC([NH3+])C2", "C[C@@H]1CC[C@@H](C(N)=O)CN1C(=O)c1nnn[n-]1",
           "CC[NH+]1CC[C@@H](CNCc2ccc([O-])c[nH+]2)C1", "O=C([O-])c1ccccc1",
           "C[NH+](C)CCc1ccccc1", "CC(C)[NH2+]CC(O)c1ccccc1"] * 30  # fmt: skip


@pytest.mark.slow
def test_charged_fine_tune_then_jin_and_bo_benchmarks(tiny_model, tmp_path) -> None:
    zinc = tmp_path / "zinc250k.smi"
    zinc.write_text("\n".join(CHARGED) + "\n")
    run = tmp_path / "charged"
    args = ["--smoke", "--init-from", str(tiny_model), "--zinc250k", str(zinc), "--exclude",
            "", "--out", str(run), "--threads", "1"]  # fmt: skip
    assert load_pipeline("train_charged").main(args) == 0
    best = run / "train" / "best.pt"
    ck = load_checkpoint(best)
    assert {"[NH3+]", "[O-]", "[n-]", "[nH+]"} <= set(ck.vocab_tokens)
    assert ck.meta["properties"]["names"] == ["logp", "sa", "qed", "plogp"]
    assert not any("@" in t for t in ck.vocab_tokens)  # stereo is dropped, not learned
    held = (run / "data" / "heldout_zinc250k.smi").read_text().split()
    mix = set((run / "data" / "train_mix.smi").read_text().split())
    assert held and not mix & set(held)

    tsv = tmp_path / "opt.tsv"
    tsv.write_text("".join(f"{s} -1.0\n" for s in CHARGED[:4]))
    out = tmp_path / "jin"
    jin = ["--smoke", "--model", str(best), "--data", str(tsv), "--out", str(out),
           "--threads", "1"]  # fmt: skip
    assert load_pipeline("jin_benchmark").main(jin) == 0
    per = pd.read_csv(out / "per_molecule.csv")
    assert len(per) == 4 and (per["improvement_0.4"] >= 0).all()
    cands = pd.read_csv(out / "candidates.csv")
    assert set(cands["step"]) == {0, 1, 2, 3, 4} and set(cands["draw"]) == {0}
    assert "GCPN" in (out / "results.md").read_text()
    draws = tmp_path / "jin-draws"
    jin = [*jin, "--n", "2", "--posterior-starts", "3", "--out", str(draws)]
    assert load_pipeline("jin_benchmark").main(jin) == 0
    more = pd.read_csv(draws / "candidates.csv")
    assert set(more["draw"]) == {0, 1, 2} and len(more) == 3 * (cands["start"] < 2).sum()

    bo = ["--smoke", "--methods", "gradient", "--model", str(best), "--out",
          str(tmp_path / "bo"), "--threads", "1"]  # fmt: skip
    assert load_pipeline("bo_benchmark").main(bo) == 0
    res = pd.read_csv(tmp_path / "bo" / "results.csv")
    assert list(res["method"]) == ["gradient"] and res["proposals"].iloc[0] > 0
    torch.set_num_threads(1)  # the pipelines may set it; keep the session's setting


def test_keep_vocab_fine_tune_adds_no_tokens(tiny_model, tmp_path) -> None:
    from conftest import ZINC_SMALL

    zinc = tmp_path / "zinc250k.smi"
    zinc.write_text("\n".join([*CHARGED[:6], *ZINC_SMALL] * 20) + "\n")
    run = tmp_path / "neutral"
    args = ["--smoke", "--keep-vocab", "--init-from", str(tiny_model), "--zinc250k", str(zinc),
            "--exclude", "", "--out", str(run), "--threads", "1"]  # fmt: skip
    assert load_pipeline("train_charged").main(args) == 0
    start, tuned = load_checkpoint(tiny_model), load_checkpoint(run / "train" / "best.pt")
    assert tuned.vocab_tokens == start.vocab_tokens
    zinc_part = set((run / "data" / "train_mix.smi").read_text().split()) - set(
        (run / "data" / "heldout_zinc250k.smi").read_text().split()
    )
    assert not zinc_part & {s for s in CHARGED}  # charged molecules cannot be written: dropped
    counts = json.loads((run / "record.json").read_text())["data"]
    assert counts["zinc250k_new_tokens_dropped"] == 6
    assert counts["zinc250k_unique_kept"] == len(set(ZINC_SMALL))
    torch.set_num_threads(1)
