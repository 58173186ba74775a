"""Fault injection: bad input through the CLI, numerical faults, a full disk, hostile files,
determinism. Every expected failure is one line ``molvae <verb>: error: ...`` and exit code 2;
every bad row gets a status. See docs/GUARANTEES.md."""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import molvae.bo.store as campaign_io
import molvae.model.checkpoint as checkpoint
from molvae.bo import BOConfig, propose_batch, run_campaign
from molvae.chem import get_objective
from molvae.cli import main
from molvae.model import MolVAE
from molvae.model.checkpoint import load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--emb-dim", "16", "--enc-hidden", "32", "--latent-dim", "8", "--dec-hidden", "48",
        "--dec-layers", "1"]  # fmt: skip
TRAIN = ["train", "--data", "zinc", "--max-molecules", "400", "--epochs", "1", "--batch-size",
         "64", "--no-progress", "--threads", "1", *TINY]  # fmt: skip
USER_OBJECTIVES = """
import math
def boom(mol):
    raise RuntimeError("boom")
def nan(mol):
    return float("nan")
def inf(mol):
    return -math.inf
def text(mol):
    return "high"
def atoms(mol):
    return float(mol.GetNumAtoms())
"""


class Payload:
    """Unpickling this would create ``path``: a checkpoint or .npy from a stranger."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.fixture(scope="module")
def model(tiny_model) -> Path:
    """conftest's tiny model (latent dimension 8), shared by the whole session: read it only."""
    return tiny_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """One directory of broken and half-broken inputs."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty.smi").write_text("")
    (d / "blank.smi").write_text("\n  \n\n")
    (d / "nocol.csv").write_text("name,value\naspirin,1\n")
    (d / "binary.smi").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" + os.urandom(200))
    (d / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    mixed = ["CC(=O)Oc1ccccc1C(=O)O", "C1CC", "not_smiles", "", "CC(=O)O.[Na+].[Cl-]",
             "C" * 150, "CC[Se]CC", "c1ccccc1"]  # fmt: skip
    (d / "mixed.smi").write_bytes("\n".join(mixed).encode() + b"\nC\xe9C\xff\n")
    np.save(d / "z5.npy", np.zeros((3, 5), np.float32))
    np.save(d / "z3d.npy", np.zeros((2, 2, 8), np.float32))
    np.save(d / "zobj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "zpickle.npy").write_bytes(pickle.dumps(Payload(str(d / "pwned-npy"))))
    (d / "zstr.csv").write_text("z0,z1,z2,z3,z4,z5,z6,z7\n" + "a," * 7 + "b\n")
    (d / "zlatin.csv").write_bytes(b"z0\n\xe9\xff\n")
    z = np.zeros((4, 8), np.float32)
    z[1, 3], z[2, 0] = np.nan, np.inf
    np.save(d / "znan.npy", z)
    pd.DataFrame(z, columns=[f"z{i}" for i in range(8)]).to_csv(d / "znan.csv", index=False)
    (d / "user_objectives.py").write_text(USER_OBJECTIVES)
    return d


def _one_line_error(capsys, verb: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"molvae {verb}: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _evil_checkpoint(model: Path, tmp: Path) -> tuple[Path, Path]:
    marker = tmp / "pwned"
    raw = torch.load(model, weights_only=True)
    torch.save({**raw, "meta": {"x": Payload(str(marker))}}, tmp / "evil.pt")
    return tmp / "evil.pt", marker


# -- bad input: one line, exit 2 -------------------------------------------------------------
SMALL = ["--budget", "2", "-q", "2", "--n-init", "4", "--iterations", "1", "--out", "{d}/c"]
BAD_INPUTS = [
    # (argv with {m} = model, {d} = input dir), text the one-line error must hold
    (["score", "{d}/empty.smi"], "empty.smi: the file is empty"),
    (["score", "{d}/blank.smi"], "blank.smi: the file is empty"),
    (["score", "{d}/nocol.csv"], "no 'smiles' column (columns: name, value)"),
    (["score", "{d}/binary.smi"], "binary file"),
    (["score", "{d}/bad.gz"], "bad.gz: cannot read the file"),
    (["score", "{d}"], "cannot read the file"),
    (["score", "{d}/missing.smi"], "missing.smi: no such file"),
    (["score", "-O", "nosuchmodule_xyz:f", "{d}/mixed.smi"], "could not import module"),
    (["score", "-O", "os:no_such_function", "{d}/mixed.smi"], "no callable 'no_such_function'"),
    (["score", "-O", "similarity:C1CC", "{d}/mixed.smi"], "not a valid SMILES"),
    (["encode", "--model", "{m}", "{d}/binary.smi"], "binary file"),
    (["encode", "--model", "{m}", "{d}/nocol.csv"], "no 'smiles' column"),
    (["reconstruct", "--model", "{m}", "{d}/empty.smi"], "the file is empty"),
    (["decode", "--model", "{m}", "{d}/z5.npy"], "needs n x 8"),
    (["decode", "--model", "{m}", "{d}/z3d.npy"], "needs n x 8"),
    (["decode", "--model", "{m}", "{d}/zobj.npy"], "not a readable .npy"),
    (["decode", "--model", "{m}", "{d}/zpickle.npy"], "not a readable .npy"),
    (["decode", "--model", "{m}", "{d}/zstr.csv"], "not a CSV of numeric z0..z7"),
    (["decode", "--model", "{m}", "{d}/zlatin.csv"], "not a CSV of numeric"),
    (["decode", "--model", "{m}", "{d}/empty.smi"], "not a CSV of numeric"),
    (["decode", "--model", "{m}", "{d}/nocol.csv"], "needs n x 8"),
    (["decode", "--model", "{m}", "{d}"], "not a file"),
    (["decode", "--model", "{m}", "{d}/missing.npy"], "no such file"),
    (["sample", "--model", "{d}/missing.pt"], "missing.pt does not exist"),
    (["sample", "--model", "{d}"], "is a directory, not a checkpoint file"),
    (["sample", "--model", "{d}/mixed.smi"], "mixed.smi is damaged or not a torch file"),
    # (small campaigns, should a refusal ever be missed)
    (["optimize", "--model", "{m}", "--objective", "nope", *SMALL], "unknown objective"),
    (["optimize", "--model", "{d}/binary.smi", *SMALL], "damaged or not a torch file"),
    (["optimize", "--model", "{m}", "--data", "{d}/blank.smi", *SMALL], "is empty"),
    (["train", "--data", "{d}/empty.smi", "--out", "{d}/t"], "the file is empty"),
    (["train", "--data", "{d}/nocol.csv", "--out", "{d}/t"], "no 'smiles' column"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=lambda v: " ".join(v)[:40])
def test_bad_input_is_one_line_and_exit_2(model, files, capsys, argv, message) -> None:
    argv = [a.replace("{m}", str(model)).replace("{d}", str(files)) for a in argv]
    assert main(argv) == 2
    assert message in _one_line_error(capsys, argv[0])
    assert not (files / "pwned-npy").exists()


def test_crafted_pickle_checkpoint_is_refused_and_never_runs(model, tmp_path, capsys) -> None:
    evil, marker = _evil_checkpoint(model, tmp_path)
    small = ["--budget", "2", "-q", "2", "--n-init", "4", "--iterations", "1", "--no-progress"]
    for verb in (["sample"], ["optimize", "--out", str(tmp_path / "c"), *small]):
        assert main([*verb, "--model", str(evil)]) == 2
        err = _one_line_error(capsys, verb[0])
        assert "refused (weights_only)" in err and "GLOBAL" in err
    assert not marker.exists() and not (tmp_path / "c" / "evaluations.csv").exists()


# -- bad rows: a status per row, never a crash ----------------------------------------------
def test_mixed_file_gets_a_status_per_row(model, files, tmp_path) -> None:
    out = tmp_path / "z.csv"
    assert main(["encode", "--model", str(model), str(files / "mixed.smi"), "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    # salt -> largest fragment (acetate); non-UTF-8 line -> U+FFFD -> invalid; blank -> invalid
    assert df["status"].tolist()[:7] == [
        "ok", "invalid", "invalid", "invalid", "ok", "too_long", "unknown_tokens:[Se]",
    ]  # fmt: skip
    assert df["canonical"][4] == "CC(=O)O" and df["status"].iloc[-1] == "invalid"
    z = pd.read_csv(out)[[f"z{i}" for i in range(8)]].to_numpy(dtype=float)
    assert np.isfinite(z[df["status"] == "ok"]).all()
    assert np.isnan(z[df["status"] != "ok"]).all()

    scored = tmp_path / "s.csv"
    assert main(["score", "-O", "qed", str(files / "mixed.smi"), "--out", str(scored)]) == 0
    s = pd.read_csv(scored, keep_default_na=False)
    assert len(s) == 9 and set(s["status"]) <= {"ok", "invalid", "failed"}
    assert s["status"].tolist()[:4] == ["ok", "invalid", "invalid", "invalid"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_objective_that_raises_or_returns_nan_inf_text_is_failed(
    files, tmp_path, monkeypatch, jobs
) -> None:
    monkeypatch.syspath_prepend(str(files))
    monkeypatch.setenv("PYTHONPATH", str(files))  # for the --jobs worker processes
    out = tmp_path / "s.csv"
    specs = ["boom", "nan", "inf", "text", "atoms"]
    argv = ["score", str(files / "mixed.smi"), "--jobs", jobs, "--out", str(out)]
    for s in specs:
        argv += ["-O", f"user_objectives:{s}"]
    assert main(argv) == 0
    df = pd.read_csv(out, keep_default_na=False)
    valid = [0, 4, 5, 6, 7]  # rows RDKit parses (the too-long and [Se] ones included)
    for s in specs[:4]:
        st = df[f"user_objectives:{s}_status"]
        assert (st[valid] == "failed").all() and (df[f"user_objectives:{s}"][valid] == "").all()
    assert df["user_objectives:atoms"][0] == "13.0"


def test_decode_nan_and_inf_latents_get_no_latent_rows(model, files, tmp_path) -> None:
    for name in ("znan.npy", "znan.csv"):
        out = tmp_path / f"{name}.out.csv"
        assert main(["decode", "--model", str(model), str(files / name), "--out", str(out)]) == 0
        df = pd.read_csv(out, keep_default_na=False)
        assert df["status"].tolist()[1:3] == ["no_latent", "no_latent"]
        assert df["smiles"][1] == df["smiles"][2] == "" and df["status"][0] != "no_latent"


# -- numerical faults ------------------------------------------------------------------------
def _poison_forward(monkeypatch, bad_calls) -> None:
    """Make the training forward pass return a NaN loss on the chosen call numbers."""
    real, calls = MolVAE.forward, [0]

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if self.training:
            calls[0] += 1
            if bad_calls(calls[0]):
                return dataclasses.replace(out, recon=out.recon * float("nan"))
        return out

    monkeypatch.setattr(MolVAE, "forward", forward)


def test_cli_train_skips_and_counts_nan_losses(tmp_path, monkeypatch) -> None:
    _poison_forward(monkeypatch, lambda n: n in (2, 4))
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["nonfinite_steps"].tolist() == [2, 2]
    assert np.isfinite(metrics[["train_loss", "val_loss"]].to_numpy()).all()
    last = load_checkpoint(out / "last.pt")
    assert all(torch.isfinite(v).all() for v in last.state_dict.values())


def test_cli_train_that_diverges_stops_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    _poison_forward(monkeypatch, lambda n: True)
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 2
    err = _one_line_error(capsys, "train")
    assert "training stopped: no finite loss in epoch 1" in err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("case", ["single", "duplicates_constant", "all_identical"])
def test_proposals_from_degenerate_observations_are_finite_and_in_bounds(case) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 4, generator=g, dtype=torch.float64)
    y = torch.rand(10, generator=g, dtype=torch.float64)
    if case == "single":
        x, y = x[:1], y[:1]
    elif case == "duplicates_constant":
        x[5:], y[:] = x[0], 1.0
    else:
        x[:], y[:] = x[0], y[0]
    bounds = torch.tensor([[-1.0] * 4, [2.0] * 4], dtype=torch.float64)
    cfg = BOConfig(
        surrogate="latent", num_restarts=2, raw_samples=16, mc_samples=32, acq_maxiter=10
    )
    prop = propose_batch(cfg, x, y, bounds, q=3, seed=0)
    assert prop.z.shape == (3, 4) and torch.isfinite(prop.z).all()
    assert ((prop.z >= bounds[0]) & (prop.z <= bounds[1])).all()


def test_all_invalid_proposals_are_recorded_and_the_campaign_ends(tmp_path) -> None:
    def invalid_decoder(z, n_attempts, seed):
        return [["C1CC"] * n_attempts for _ in range(z.shape[0])]

    cfg = BOConfig(surrogate="latent",
                   budget=4, batch_size=2, max_iterations=3, n_init=4, init_pool=12,
                   free_pool=True, num_restarts=2, raw_samples=16, mc_samples=32,
                   acq_maxiter=10)  # fmt: skip
    res = run_campaign(cfg, invalid_decoder, F.encode, F.Objective(), F.DATA, tmp_path / "c",
                       canonical_fn=F.canonical, progress=False, report=True)  # fmt: skip
    new = res.history[res.history["iteration"] > 0]
    assert len(new) == 6 and (new["status"] == "invalid").all()
    assert (new["canonical"] == "").all() and new["score"].isna().all()
    assert res.best_score == res.history.loc[res.history["iteration"] == 0, "score"].max()
    assert (tmp_path / "c" / "report" / "summary.md").exists()


# -- a full disk -----------------------------------------------------------------------------
def test_disk_full_during_checkpoint_save_keeps_the_old_file(model, tmp_path, monkeypatch) -> None:
    ck = load_checkpoint(model)
    net, path = MolVAE.from_checkpoint(ck), tmp_path / "last.pt"
    save_checkpoint(path, net, ck.vocab_tokens, {"epochs": 1})

    def full_disk(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, net, ck.vocab_tokens, {"epochs": 2})
    assert load_checkpoint(path).meta["epochs"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no half-written temp file


def test_same_seed_same_campaign_through_the_cli(tiny_campaign, tmp_path) -> None:
    assert main(tiny_campaign.args(tmp_path / "again")) == 0
    a = (tiny_campaign.dir / "evaluations.csv").read_bytes()
    assert (tmp_path / "again" / "evaluations.csv").read_bytes() == a
    assert len(a.splitlines()) == 1 + 4 + 4  # header, initial design, two batches of 2


def test_disk_full_mid_campaign_is_one_line_and_resumes(
    tiny_campaign, tmp_path, monkeypatch, capsys
) -> None:
    real, calls = campaign_io.CampaignStore.append_rows, [0]

    def append_then_fill_disk(self, rows, dim):
        calls[0] += 1
        if calls[0] == 2:  # the first BO batch: a short write, then ENOSPC
            with open(self.eval_path, "a") as fh:
                fh.write("1,0,bo,CC")
            raise OSError(errno.ENOSPC, "No space left on device", str(self.eval_path))
        return real(self, rows, dim)

    monkeypatch.setattr(campaign_io.CampaignStore, "append_rows", append_then_fill_disk)
    out = tmp_path / "c"
    assert main(tiny_campaign.args(out)) == 2
    assert "No space left on device" in _one_line_error(capsys, "optimize")
    monkeypatch.undo()
    assert main(tiny_campaign.args(out)) == 0
    ref = (tiny_campaign.dir / "evaluations.csv").read_bytes()
    assert (out / "evaluations.csv").read_bytes() == ref


# -- security --------------------------------------------------------------------------------
def _sources() -> list[Path]:
    return sorted([*(ROOT / "molvae").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")])


def test_every_load_refuses_pickles() -> None:
    calls = {"torch.load": 0, "np.load": 0}
    for path in _sources():
        text = path.read_text()
        for call in re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text):
            assert "weights_only=True" in call, f"{path.name}: {call}"
            calls["torch.load"] += 1
        for call in re.findall(r"np\.load\((?:[^()]|\([^()]*\))*\)", text):
            # numpy's default is allow_pickle=False; nothing may turn it on
            assert "allow_pickle=True" not in call, f"{path.name}: {call}"
            calls["np.load"] += 1
        unsafe = r"pickle\.loads?\(|(?<![.\w])(eval|exec)\(|shell=True"
        assert not re.search(unsafe, text), path.name
    assert calls["torch.load"] >= 1 and calls["np.load"] >= 1


def test_user_code_is_imported_only_from_module_colon_function(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "sneaky_mod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef f(mol):\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("sneaky_mod", "sneaky_mod.f", " sneaky_mod ", "sneaky_mod:"):
        with pytest.raises(ValueError):
            get_objective(spec)
        assert not marker.exists(), spec
    assert get_objective("sneaky_mod:f").fn(None) == 1.0 and marker.exists()
    sys.modules.pop("sneaky_mod", None)
    # only chem's _import_function imports a name it is given; the package's lazy public names
    # come from a fixed table in molvae/__init__.py
    users = sorted(
        str(p.relative_to(ROOT / "molvae")) for p in _sources() if "import_module(" in p.read_text()
    )
    assert users == ["__init__.py", "chem/objectives.py"]


def test_data_never_names_a_file(tiny_campaign) -> None:
    """Campaign files have fixed names: no SMILES or objective name becomes a path."""
    names = {str(p.relative_to(tiny_campaign.dir)) for p in tiny_campaign.dir.rglob("*")}
    fixed = ["config.json", "pool.csv", "evaluations.csv", "state.json", "report",
             "report/trace.png", "report/top_molecules.png", "report/summary.md",
             "report/index.html", "report/depictions.json",
             "report/substructures.json"]  # fmt: skip
    assert names == set(fixed)


def test_benchmark_file_names_stay_inside_out() -> None:
    path = ROOT / "pipelines" / "bo_benchmark.py"
    spec = importlib.util.spec_from_file_location("bo_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.file_stem("qed") == "qed" and bench.file_stem("plogp_raw") == "plogp_raw"
    specs = ["similarity:../../etc/passwd", "similarity:C/C=C/C", "similarity:C\\C=C\\C",
             "mod:fn", "..", "", "/abs"]  # fmt: skip
    stems = [bench.file_stem(s) for s in specs]
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert re.fullmatch(r"[A-Za-z0-9_+=-]+", stem), stem
        assert (Path("/out") / f"{stem}-bo-seed0").resolve().parent == Path("/out")
