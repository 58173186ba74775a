"""Crash safety: real ``molvae`` processes are SIGKILLed at random moments and resumed.

A campaign killed any number of times ends with exactly the history of an uninterrupted run, and
every row on disk at a kill survives, once. A training run killed mid-epoch resumes from its last
complete epoch; ``last.pt``/``best.pt`` load at every moment (never half-written).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from molvae.cli import main
from molvae.model.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # whole CLI runs killed by signals: seconds each

TINY = ["--emb-dim", "16", "--enc-hidden", "32", "--latent-dim", "8", "--dec-hidden", "48",
        "--dec-layers", "1"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _molvae(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "molvae.cli", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc`` if it still runs; True if it was killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def _rows(path: Path) -> list[str]:
    """Complete lines of a CSV written row by row (a cut-off last line is not a row yet)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    args = ["train", "--data", "zinc", "--max-molecules", "400", "--epochs", "1",
            "--batch-size", "64", "--out", str(out), "--no-progress", "--threads", "1",
            *TINY]  # fmt: skip
    assert main(args) == 0
    return out / "best.pt"


def test_optimize_killed_three_times_equals_uninterrupted_run(model, tmp_path) -> None:
    def args(out: Path) -> list[str]:
        return ["optimize", "--model", str(model), "--objective", "qed", "--budget", "6",
                "-q", "3", "--n-init", "6", "--iterations", "2", "--seed", "0",
                "--threads", "1", "--no-progress", "--out", str(out)]  # fmt: skip

    ref = tmp_path / "ref"
    assert main(args(ref)) == 0  # in this process: no import cost
    out = tmp_path / "killed"
    rng = random.Random(0)
    kills, before_kill = 0, []
    for _ in range(3):
        proc = _molvae(args(out))
        # start the clock once the campaign exists (imports and model loading are done)
        while not (out / "config.json").exists() and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 4.0))  # pool, initial design, GP fit, decode, score, writes
        if _kill(proc):
            kills += 1
            before_kill.append(_rows(out / "evaluations.csv"))
    proc = _molvae(args(out))
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert kills >= 2
    final = _rows(out / "evaluations.csv")
    assert final == _rows(ref / "evaluations.csv")  # bit-identical, latents included
    for rows in before_kill:  # every row on disk at a kill survives, exactly once
        assert all(final.count(r) == 1 for r in rows[1:])
    assert not (out / "pending.json").exists()
    assert (out / "report" / "summary.md").exists()


def test_train_killed_in_epoch_two_resumes_from_epoch_one(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "zinc", "--max-molecules", "1500", "--epochs", "3",
            "--batch-size", "64", "--out", str(out), "--no-progress", "--threads", "1",
            "--resume", *TINY]  # fmt: skip
    proc = _molvae(args)
    while len(_rows(out / "metrics.csv")) < 2 and proc.poll() is None:
        time.sleep(0.02)
    loads, deadline = 0, time.monotonic() + random.Random(1).uniform(0.2, 0.8)
    while time.monotonic() < deadline:  # epoch 2 is in progress
        # a reader polling the run never sees a half-written checkpoint
        assert load_checkpoint(out / "last.pt").meta["epochs"] == 1
        loads += 1
    assert _kill(proc), "training finished before the kill; make epoch 2 longer"
    assert [r.split(",")[0] for r in _rows(out / "metrics.csv")[1:]] == ["1"]
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(out / name).meta["epochs"] == 1
    assert loads >= 1

    # The kill between saving last.pt and appending its metrics row: the row is restored.
    (out / "metrics.csv").write_text(_rows(out / "metrics.csv")[0] + "\n")
    proc = _molvae(args)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert metrics["step"].is_monotonic_increasing
    last = load_checkpoint(out / "last.pt")
    assert last.meta["epochs"] == 3 and last.train_state["epoch"] == 2
    assert load_checkpoint(out / "best.pt").meta["epochs"] == metrics["val_loss"].idxmin() + 1
