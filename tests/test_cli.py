"""The ``molvae`` command end to end on a tiny model (conftest's ``tiny_run``), on the CPU, in
seconds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.chem import is_valid
from molvae.cli import main
from molvae.data import read_smiles
from molvae.model.checkpoint import load_checkpoint


@pytest.fixture
def smiles_file(tmp_path):
    path = tmp_path / "in.csv"
    good = read_smiles("zinc-test")[:5]
    pd.DataFrame(
        {"SMILES": [*good, "not_smiles", "", "CC[Se]CC", "C" * 150], "id": range(9)}
    ).to_csv(path, index=False)
    return path


def test_train_writes_run_directory(tiny_run) -> None:
    for name in ["best.pt", "last.pt", "metrics.csv", "config.json", "run.json"]:
        assert (tiny_run / name).exists(), name
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    assert ckpt["format"] == 1 and ckpt["config"]["latent_dim"] == 8
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["data_report"]["total"] == 400 and run["n_train"] + run["n_val"] <= 400
    assert len(pd.read_csv(tiny_run / "metrics.csv")) == 1


def test_sample(tiny_run, tmp_path) -> None:
    out = tmp_path / "s.csv"
    assert (
        main(["sample", "--model", str(tiny_run / "best.pt"), "-n", "20", "--out", str(out)]) == 0
    )
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 20 and set(df.columns) == {"smiles", "canonical", "valid"}


def test_encode_decode_reconstruct_report_bad_rows(tiny_run, smiles_file, tmp_path) -> None:
    model = str(tiny_run / "best.pt")
    npy = tmp_path / "z.npy"
    assert main(["encode", "--model", model, str(smiles_file), "--out", str(npy)]) == 0
    z = np.load(npy)
    status = pd.read_csv(tmp_path / "z.status.csv", keep_default_na=False)["status"].tolist()
    assert z.shape == (9, 8)
    assert status[:5] == ["ok"] * 5 and status[5:7] == ["invalid", "invalid"]
    assert status[7].startswith("unknown_tokens") and status[8] == "too_long"
    assert np.isfinite(z[:5]).all() and np.isnan(z[5:]).all()

    dec = tmp_path / "dec.csv"
    assert main(["decode", "--model", model, str(npy), "--out", str(dec)]) == 0
    df = pd.read_csv(dec, keep_default_na=False)
    assert len(df) == 9 and (df.status[5:] == "no_latent").all()

    rec = tmp_path / "rec.csv"
    assert main(["reconstruct", "--model", model, str(smiles_file), "--out", str(rec)]) == 0
    df = pd.read_csv(rec, keep_default_na=False)
    assert len(df) == 9 and not df.match[5:].any()


def test_decode_refuses_wrong_dimension(tiny_run, tmp_path, capsys) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), dtype=np.float32))
    assert main(["decode", "--model", str(tiny_run / "best.pt"), str(tmp_path / "bad.npy")]) == 2
    assert "n x 8" in capsys.readouterr().err


def test_score_adds_columns(smiles_file, tmp_path) -> None:
    out = tmp_path / "scored.csv"
    assert main(["score", "--objective", "qed", str(smiles_file), "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == ["SMILES", "id", "score", "status"]
    assert (df.status[:5] == "ok").all() and df.status[5] == "invalid"
    assert all(0 < float(s) < 1 for s in df.score[:5])


def test_score_unknown_objective_is_one_line(smiles_file, capsys) -> None:
    assert main(["score", "--objective", "nope", str(smiles_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molvae score: error:") and "qed" in err and "\n" not in err


def test_damaged_checkpoint_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", "--model", str(bad), "-n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "\n" not in err


@pytest.mark.slow
def test_evaluate_small(tmp_path) -> None:
    from conftest import ZINC_SMALL

    out = tmp_path / "eval"
    train = tmp_path / "train.smi"  # novelty reads all of --train: keep it small here
    train.write_text("\n".join(ZINC_SMALL) + "\n")
    # The bundled model, not the tiny one: ~70% of its raw samples are valid, so the recount
    # below sees both kinds (the tiny model's are nearly all invalid).
    model = "default"
    rc = main(
        [
            "evaluate",
            "--model",
            model,
            "--train",
            str(train),
            "--unconstrained",  # the tiny model's strings make the grammar backtrack a lot
            "--n-samples",
            "60",
            "--n-reconstruct",
            "20",
            "--no-fcd",
            "--max-reference",
            "500",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["constrained"] is False and metrics["n_samples"] == 60
    assert "unconstrained decoding" in (out / "metrics.md").read_text()
    assert (out / "property_histograms.png").exists()
    # The same N(0, I) samples (evaluate's first row; `sample` defaults to the model's learned
    # prior) through `molvae sample` (sampled at temperature 1, seed 0), recounted here: the
    # validity is that of these strings. (No bound on the count: bf16 decoding on another CPU
    # may draw other strings; both verbs draw the same ones.)
    samples = tmp_path / "samples.csv"
    argv = ["sample", "--model", model, "-n", "60", "--strategy", "sample", "--seed", "0",
            "--prior", "gaussian", "--unconstrained", "--out", str(samples)]  # fmt: skip
    assert main(argv) == 0
    strings = pd.read_csv(samples, keep_default_na=False, dtype=str)["smiles"].tolist()
    n_valid = sum(map(is_valid, strings))
    assert metrics["n_valid"] == n_valid and metrics["validity"] == pytest.approx(n_valid / 60)


def test_optimize_campaign_has_its_rows_and_a_resume_adds_nothing(tiny_campaign, tmp_path) -> None:
    out = tmp_path / "camp"
    shutil.copytree(tiny_campaign.dir, out)  # the session's campaign stays as it is
    before = (out / "evaluations.csv").read_bytes()
    history = pd.read_csv(out / "evaluations.csv", keep_default_na=False)
    assert {"iteration", "smiles", "canonical", "score", "status"} <= set(history.columns)
    assert (out / "report" / "summary.md").exists()
    # the latents of the checkpoint's dimension, z0..z7, and no more
    dim = load_checkpoint(tiny_campaign.model).config.latent_dim
    assert [c for c in history.columns if c.startswith("z")] == [f"z{i}" for i in range(dim)]
    # --init-pool 4 (charged, all of it the design), then at most --iterations 2 of -q 2
    assert (history["iteration"] == 0).sum() == 4
    assert set(history["iteration"]) <= {0, 1, 2} and len(history) <= 4 + 2 * 2
    state = json.loads((out / "state.json").read_text())
    called = history["status"].isin(["ok", "infeasible", "failed"])
    assert state["budget"] == 8 and state["oracle_calls"] == called.sum()
    # Running again on the finished directory resumes and adds nothing.
    assert main(tiny_campaign.args(out)) == 0
    assert (out / "evaluations.csv").read_bytes() == before


def test_resume_with_another_objective_or_decoding_is_refused(
    tiny_campaign, tmp_path, capsys
) -> None:
    out = tmp_path / "camp"
    shutil.copytree(tiny_campaign.dir, out)
    before = (out / "evaluations.csv").read_bytes()
    capsys.readouterr()
    for change in (["--objective", "logp"], ["--unconstrained"]):
        assert main([*tiny_campaign.args(out), *change]) == 2
        err = capsys.readouterr().err
        assert "started with other settings" in err and len(err.strip().splitlines()) == 1
    assert (out / "evaluations.csv").read_bytes() == before  # nothing was added


def test_fine_tune_starts_from_the_checkpoint(tiny_run, tmp_path, capsys) -> None:
    """--init-from takes the starting model's weights, size and vocabulary."""
    start = load_checkpoint(tiny_run / "best.pt")
    out = tmp_path / "ft"
    args = ["train", "--data", "zinc", "--max-molecules", "200", "--epochs", "1",
            "--batch-size", "64", "--max-steps-per-epoch", "1", "--lr", "1e-12", "--no-progress",
            "--threads", "1", "--init-from", str(tiny_run / "best.pt")]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    tuned = load_checkpoint(out / "last.pt")
    assert tuned.config == start.config and tuned.vocab_tokens == start.vocab_tokens
    assert tuned.meta["init_from"] == str(tiny_run / "best.pt")
    # one step at lr 1e-12 barely moves the weights: they are the starting model's, not new ones
    for k, v in start.state_dict.items():
        assert torch.allclose(tuned.state_dict[k], v, atol=1e-6), k
    # a size that contradicts the checkpoint is one line and exit 2
    assert main([*args, "--out", str(tmp_path / "bad"), "--latent-dim", "5"]) == 2
    assert "sizes differ" in capsys.readouterr().err


def test_train_flags_reach_the_run(tmp_path) -> None:
    from conftest import TINY

    out = tmp_path / "run"
    args = ["train", "--data", "zinc", "--max-molecules", "120", "--epochs", "1", "--batch-size",
            "32", "--out", str(out), "--no-progress", "--threads", "1", "--properties", "logp",
            "qed", "--free-bits", "0.25", "--kl-schedule", "cyclical", "--checkpoint-minutes",
            "0", *TINY]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    flat = json.dumps(config)
    assert '"free_bits": 0.25' in flat and '"kl_schedule": "cyclical"' in flat
    assert '"checkpoint_minutes": 0.0' in flat
    ck = load_checkpoint(out / "best.pt")
    assert ck.config.property_dim == 2
    assert ck.meta["properties"]["names"] == ["logp", "qed"]
