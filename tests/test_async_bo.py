"""Asynchronous BO (`molvae.bo.async_loop`, ``molvae optimize --async``): the calls stay in
flight while the next molecules are proposed, every molecule reaches the objective once, the
budget is exact, and a campaign killed with calls in flight resumes the same molecules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from molvae.bo import BOConfig
from molvae.bo.candidates import propose_molecules
from molvae.bo.fingerprint import fingerprints, fit_fingerprint_gp
from molvae.bo.surrogate import believe_pending
from molvae.chem import canonical, qed
from molvae.chem.molecules import parse
from molvae.cli import main
from molvae.data import read_smiles

TESTS = Path(__file__).resolve().parent
OBJECTIVE = "dask_objectives:logged_qed"


def _args(campaign, out: Path, budget: int = 14, *extra: str) -> list[str]:
    return ["optimize", "--model", str(campaign.model), "--data", str(campaign.pool),
            "--objective", OBJECTIVE, "--budget", str(budget), "--init-pool", "4",
            "--seed", "3", "--threads", "1", "--no-progress", "--out", str(out),
            *extra]  # fmt: skip


@pytest.fixture
def call_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("MOLVAE_TEST_CALLS", str(log))  # the scoring processes inherit it
    monkeypatch.syspath_prepend(str(TESTS))
    return log


def _calls(log: Path) -> list[str]:
    return [canonical(s) for s in log.read_text().split()] if log.exists() else []


def test_config_checks_async_workers() -> None:
    with pytest.raises(ValueError, match="async_workers must be >= 0"):
        BOConfig(async_workers=-1)
    with pytest.raises(ValueError, match="cannot retrain"):
        BOConfig(async_workers=2, retrain_every=1)


def test_pending_molecules_are_believed_and_never_proposed_again() -> None:
    smiles = read_smiles("zinc-test")[:60]
    scored = [(canonical(s), qed(parse(s))) for s in smiles[:40]]
    x = fingerprints([s for s, _ in scored])
    model = fit_fingerprint_gp(x, torch.tensor([v for _, v in scored], dtype=torch.float64))
    running = [canonical(s) for s in smiles[40:43]]
    xp = fingerprints(running)
    believed = believe_pending(model, xp)
    with torch.no_grad():
        before, after = model.posterior(xp), believed.posterior(xp)
    assert torch.allclose(before.mean, after.mean, atol=1e-6)  # the believer keeps the mean
    assert (after.variance < 0.1 * before.variance).all()  # and is sure of it there
    assert believe_pending(model, None) is model
    cfg = BOConfig(ga_candidates=60, ga_generations=1)
    known = {s for s, _ in scored}
    free = propose_molecules(scored, known, 8, 0, cfg, canonical)
    taken = propose_molecules(scored, known, 8, 0, cfg, canonical, pending=free.smiles[:3])
    assert len(taken.smiles) == 8 and not set(taken.smiles) & set(free.smiles[:3])


def test_async_campaign_keeps_calls_in_flight_and_calls_each_molecule_once(
    tiny_campaign, tmp_path, call_log, capsys
) -> None:
    out = tmp_path / "async"
    assert main(_args(tiny_campaign, out, 14, "--async", "3")) == 0
    assert "oracle calls: 14 of 14" in capsys.readouterr().out
    h = pd.read_csv(out / "evaluations.csv")
    scored = h[h["status"].isin(["ok", "infeasible", "failed"])]
    assert len(scored) == 14 and not scored["canonical"].duplicated().any()
    calls = _calls(call_log)  # what reached the objective: each recorded molecule, once
    assert sorted(calls) == sorted(scored["canonical"])
    state = json.loads((out / "state.json").read_text())
    records = state["iterations"]
    assert json.loads((out / "config.json").read_text())["config"]["async_workers"] == 3
    # a proposal made while other calls ran: the first fills 3 slots, later ones the freed
    assert records and max(r["in_flight"] for r in records) >= 1
    # a proposal made ahead, while all 3 calls ran, is one molecule for the next free worker
    ahead = [r for r in records if r.get("ahead")]
    assert ahead and all(r["q"] == 1 and r["in_flight"] <= 3 for r in ahead)
    assert all(r["q"] + r["in_flight"] <= 3 for r in records if not r.get("ahead"))
    assert all(r["oracle_s"] >= 0.2 * r["n_ok"] for r in records)
    assert not (out / "in_flight.json").exists()
    assert state["stop_reason"].startswith("budget reached: 14 of 14")


def test_async_campaign_killed_with_calls_in_flight_resumes_them(
    tiny_campaign, tmp_path, call_log, capsys
) -> None:
    out = tmp_path / "killed"
    env = {
        **os.environ,
        "MOLVAE_TEST_SLEEP": "1.0",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "molvae.cli", *_args(tiny_campaign, out, 16, "--async", "3")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    flight = out / "in_flight.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            h = pd.read_csv(out / "evaluations.csv") if (out / "evaluations.csv").exists() else None
            if flight.exists() and h is not None and (h["iteration"] > 0).any():
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)  # the campaign and its scoring processes
    finally:
        proc.wait()
    running = {r["canonical"] for p in json.loads(flight.read_text())["proposals"]
               for r in p["rows"] if r["status"] == "new"}  # fmt: skip
    before = pd.read_csv(out / "evaluations.csv")
    running -= set(before["canonical"])
    assert running, "killed with no call in flight"
    assert main(_args(tiny_campaign, out, 16)) != 0  # synchronously: refused, nothing lost
    assert "resume it asynchronously" in capsys.readouterr().err
    assert main(_args(tiny_campaign, out, 16, "--async", "3")) == 0
    after = pd.read_csv(out / "evaluations.csv")
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # the record is kept
    scored = after[after["status"].isin(["ok", "infeasible", "failed"])]
    assert len(scored) == 16 and not scored["canonical"].duplicated().any()
    assert running <= set(scored["canonical"])  # the molecules in flight, not new proposals
    assert not flight.exists()


def test_async_latent_gp_passes_running_points_to_qlogei(tiny_campaign, tmp_path, call_log) -> None:
    # Thompson sampling's believer is the fingerprint GP's (above); qLogEI takes X_pending
    out = tmp_path / "latent"
    extra = ("--async", "2", "--surrogate", "latent", "--acquisition", "qlogei")
    assert main(_args(tiny_campaign, out, 8, *extra)) == 0
    h = pd.read_csv(out / "evaluations.csv")
    scored = h[h["status"].isin(["ok", "infeasible", "failed"])]
    assert len(scored) == 8 and sorted(_calls(call_log)) == sorted(scored["canonical"])
    records = json.loads((out / "state.json").read_text())["iterations"]
    assert {r["source"].split("/")[0] for r in records} <= {"bo", "sobol"}
    # the first proposal after the pool fills both slots; its calls come back one by one, so
    # the next is made with one still running (X_pending)
    assert any(r["in_flight"] for r in records)
    assert all(r["q"] + r["in_flight"] <= 2 for r in records if not r.get("ahead"))


def test_qlogei_integrates_over_pending_points() -> None:
    from molvae.bo.acquisition import propose_batch

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 2, generator=gen, dtype=torch.float64) * 4 - 2
    y = -((x - 0.5) ** 2).sum(-1)  # best at (0.5, 0.5)
    bounds = torch.tensor([[-2.0, -2.0], [2.0, 2.0]], dtype=torch.float64)
    cfg = BOConfig(acquisition="qlogei")
    alone = propose_batch(cfg, x, y, bounds, 1, 0).z
    assert (alone - 0.5).abs().max() < 0.2
    beside = propose_batch(cfg, x, y, bounds, 1, 0, x_pending=alone).z
    # the expected improvement of a point is now joint with the pending one's: it moves off
    assert not torch.allclose(alone, beside) and (beside - 0.5).abs().max() < 0.5
