"""The ``molvae`` command end to end on a tiny model trained here, on the CPU, in seconds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.cli import main
from molvae.data import read_smiles
from molvae.model.checkpoint import load_checkpoint

TINY = [
    "--emb-dim",
    "16",
    "--enc-hidden",
    "32",
    "--latent-dim",
    "8",
    "--dec-hidden",
    "48",
    "--dec-layers",
    "1",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny epoch through `molvae train` on 400 bundled ZINC molecules."""
    out = tmp_path_factory.mktemp("run")
    rc = main(
        [
            "train",
            "--data",
            "zinc",
            "--max-molecules",
            "400",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
            *TINY,
        ]
    )
    assert rc == 0
    return out


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


def test_evaluate_small(tiny_run, tmp_path) -> None:
    from conftest import ZINC_SMALL

    out = tmp_path / "eval"
    train = tmp_path / "train.smi"  # novelty reads all of --train: keep it small here
    train.write_text("\n".join(ZINC_SMALL) + "\n")
    rc = main(
        [
            "evaluate",
            "--model",
            str(tiny_run / "best.pt"),
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
    assert 0.0 <= metrics["validity"] <= 1.0 and metrics["config"]["constrained"] is False
    assert "unconstrained decoding" in (out / "metrics.md").read_text()
    assert (out / "property_histograms.png").exists()


def test_optimize_tiny_campaign_and_resume(tiny_run, tmp_path) -> None:
    out = tmp_path / "camp"
    args = [
        "optimize",
        "--model",
        str(tiny_run / "best.pt"),
        "--objective",
        "qed",
        "--budget",
        "6",
        "--batch-size",
        "3",
        "--n-init",
        "10",
        "--iterations",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    history = pd.read_csv(out / "evaluations.csv", keep_default_na=False)
    assert {"iteration", "smiles", "canonical", "score", "status"} <= set(history.columns)
    assert (out / "report" / "summary.md").exists()
    ckpt = load_checkpoint(tiny_run / "best.pt")
    assert f"z{ckpt.config.latent_dim - 1}" in history.columns
    # Running again on the finished directory resumes and adds nothing.
    assert main(args) == 0
    assert len(pd.read_csv(out / "evaluations.csv")) == len(history)


def test_resume_with_another_objective_or_decoding_is_refused(tiny_run, tmp_path, capsys) -> None:
    out = tmp_path / "camp"
    args = ["optimize", "--model", str(tiny_run / "best.pt"), "--objective", "qed", "--budget",
            "3", "--batch-size", "3", "--n-init", "10", "--iterations", "1", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    rows = len(pd.read_csv(out / "evaluations.csv"))
    capsys.readouterr()
    for change in (["--objective", "logp"], ["--unconstrained"]):
        assert main([*args, *change]) == 2
        err = capsys.readouterr().err
        assert "started with other settings" in err and len(err.strip().splitlines()) == 1
    assert len(pd.read_csv(out / "evaluations.csv")) == rows  # nothing was added


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
