"""Exact resume with the trust region on: a campaign that fails at any one of its writes, resumed
by the same call, ends with the files of a campaign never interrupted.

The failure is an exception raised from ``CampaignStore`` in this process (what a kill leaves on
disk, without a subprocess): before each atomic write, and before each row of an append, with
the rows before it written and half of the row's line after them (a write cut off mid-line).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.bo import BOConfig
from molvae.bo.loop import run_campaign
from molvae.bo.regions import region_best
from molvae.bo.scoring import score_batch
from molvae.bo.store import EVAL_COLUMNS, CampaignStore, csv_line
from molvae.bo.trust_region import TrustRegionState

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

# With batch_size 4 in 4 dimensions the region halves after each failed batch, and below 0.15
# it restarts: in this campaign batches 2 and 3 improve on the best, batch 3 (mostly re-drawn, so
# a failure) shrinks the region to its minimum, it restarts around another molecule, and batch 4
# runs in the new region. Proposals are re-drawn from other decode attempts and from spare
# candidates. Thompson sampling on 16 candidates keeps one campaign at ~0.2 s: each write costs
# one campaign.
CFG = BOConfig(surrogate="latent",
    budget=40, batch_size=4, max_iterations=4, n_init=4, init_pool=20, init_top=2, free_pool=True,
    acquisition="ts", ts_candidates=16, fit_maxiter=10, n_decode_attempts=3, max_gp_points=20,
    seed=0, tr_length_min=0.15,
)  # fmt: skip
ATOMIC_WRITES = ("write_config", "write_pool", "write_pending", "write_state", "clear_pending")
TIMING = ("fit_s", "acq_s", "propose_s", "wall_s")


class Killed(Exception):
    """The simulated kill at a write."""


class Writes:
    """Counts a campaign's writes (each row of an append is one) and fails at the ``kill_at``-th.

    ``log`` names every write counted, in order, e.g. ``write_pending`` or ``append_rows[2]``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_at: int | None = None):
        self.kill_at, self.log = kill_at, []
        for name in ATOMIC_WRITES:
            write = getattr(CampaignStore, name)
            monkeypatch.setattr(CampaignStore, name, self._atomic(name, write))
        append = CampaignStore.append_rows

        def append_rows(store: CampaignStore, rows, dim: int) -> None:
            for i, row in enumerate(rows):
                if self._count(f"append_rows[{i}]"):
                    append(store, rows[:i], dim)
                    line = csv_line([*(row[c] for c in EVAL_COLUMNS), *row["z"]])
                    with open(store.eval_path, "a", encoding="utf-8") as fh:
                        fh.write(line[: len(line) // 2])
                    raise Killed(self.log[-1])
            append(store, rows, dim)

        monkeypatch.setattr(CampaignStore, "append_rows", append_rows)

    def _count(self, what: str) -> bool:
        self.log.append(what)
        return len(self.log) == self.kill_at

    def _atomic(self, name: str, write):
        def wrapper(store: CampaignStore, *args):
            if self._count(name):
                raise Killed(name)
            return write(store, *args)

        return wrapper


def run(out: Path):
    return run_campaign(
        CFG, F.decode, F.encode, F.Objective(), F.DATA, out, canonical_fn=F.canonical,
        progress=False, report=False,
    )  # fmt: skip


def state_without_timing(out: Path) -> dict:
    state = json.loads((out / "state.json").read_text())
    for rec in state["iterations"]:
        for key in TIMING:
            rec.pop(key)
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted campaign and the writes it made, in order."""
    out = tmp_path_factory.mktemp("ref") / "campaign"
    with pytest.MonkeyPatch.context() as mp:
        writes = Writes(mp)
        run(out)
    return out, writes.log


def test_reference_run_moves_the_trust_region(reference):
    out, log = reference
    iterations = json.loads((out / "state.json").read_text())["iterations"]
    lengths = [rec["tr_length"] for rec in iterations]
    assert len(lengths) == CFG.max_iterations and len(set(lengths)) > 1, lengths
    assert {rec["source"] for rec in iterations} == {"bo"}
    # A batch that improves on the best before it, followed by another batch: a resume that took
    # that batch's own appended rows as "before" would count a failure and shrink the region.
    history = pd.read_csv(out / "evaluations.csv")
    before = [history.loc[history["iteration"] == 0, "score"].max()]
    before += [rec["best"] for rec in iterations[:-1]]
    pairs = zip(iterations, before, strict=True)
    improved = [rec["iteration"] for rec, b in pairs if rec["batch_best"] > b]
    assert improved and improved[0] < CFG.max_iterations, improved
    # a restart before the last batch, around a molecule other than the incumbent
    restarted = [rec["iteration"] for rec in iterations if rec["tr_restarted"]]
    assert restarted and restarted[0] < CFG.max_iterations, restarted
    rec = iterations[restarted[0] - 1]
    best_then = history.loc[history["iteration"] <= restarted[0], "score"].max()
    assert rec["tr_center"] and rec["tr_restarts"] == 1 and "around" in rec["tr_restart"]
    assert history.loc[history["canonical"] == rec["tr_center"], "score"].max() < best_then
    # both kinds of re-draw happened, and a spare's row carries the spare's z
    assert sum(r["redrawn_attempt"] for r in iterations) > 0
    assert sum(r["redrawn_spare"] for r in iterations) > 0
    assert history["source"].str.endswith("/spare").any()
    assert log.count("write_pending") == CFG.max_iterations
    n_rows = CFG.n_init + CFG.max_iterations * CFG.batch_size
    assert sum(w.startswith("append_rows") for w in log) == n_rows


@pytest.mark.slow
def test_killed_at_every_write_resumes_exactly(reference, tmp_path):
    ref, log = reference
    ref_csv, ref_state = (ref / "evaluations.csv").read_bytes(), state_without_timing(ref)
    for k in range(1, len(log) + 2):  # len(log) + 1: no kill, then a run of the finished campaign
        out = tmp_path / f"kill{k}"
        with pytest.MonkeyPatch.context() as mp:
            writes = Writes(mp, kill_at=k)
            if k <= len(log):
                with pytest.raises(Killed):
                    run(out)
                assert writes.log == log[:k]  # the same writes as the reference, up to the kill
            else:
                run(out)
        run(out)
        where = f"killed at write {k} ({log[k - 1] if k <= len(log) else 'none'})"
        assert (out / "evaluations.csv").read_bytes() == ref_csv, where
        assert state_without_timing(out) == ref_state, where
        for name in ("config.json", "pool.csv"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), where
        assert not (out / "pending.json").exists(), where


def test_incumbent_before_a_batch_ignores_the_batch_own_rows():
    rows = [(0, "ok", 2.0), (1, "ok", 3.0), (1, "failed", math.nan), (2, "ok", 9.0)]
    history = pd.DataFrame(
        {"iteration": [r[0] for r in rows], "status": [r[1] for r in rows],
         "score": [r[2] for r in rows], "canonical": ["C", "CC", "N", "CCC"]}
    )  # fmt: skip
    tr = TrustRegionState(dim=2, batch_size=4)  # never restarted: it follows the incumbent
    assert region_best(history, tr, 2) == 3.0  # not 9.0: that row is batch 2's own
    assert region_best(history, tr, 3) == 9.0
    assert math.isnan(region_best(history, tr, 0))
    assert math.isnan(region_best(history.iloc[:0], tr, 1))
    # restarted at iteration 1 around a molecule of score 2.5: its own best from then on
    moved = dataclasses.replace(tr, center=(0.0, 0.0), center_score=2.5, since=1)
    assert region_best(history, moved, 2) == 3.0 and region_best(history, moved, 1) == 2.5


def test_batch_rows_score_the_same_however_much_was_appended_before_a_kill(tmp_path):
    """Rows of a molecule first seen earlier in the same batch (ok, failed, or invalid by the
    objective) get the same status and score when the first was appended before a kill."""
    decoded = ["CCO", "CCN", "CCO", "CCN", "C1CC", "CCC", "CCC", "CO", "CCCl", "CCCl", "CO"]
    z = torch.arange(len(decoded), dtype=torch.float64).reshape(-1, 1).repeat(1, 2)

    def decode(zs, n_attempts, seed):
        return [[decoded[int(r[0])]] * n_attempts for r in zs]

    def objective(smiles):  # CCCl: a valid molecule the objective calls invalid
        scores, status = F.Objective()(smiles)
        status = ["invalid" if s == "CCCl" else st for s, st in zip(smiles, status, strict=True)]
        return np.where(np.array(status) == "ok", scores, np.nan), status

    init = {"iteration": 0, "index": 0, "source": "init", "smiles": "CO", "canonical": "CO",
            "score": 0.5, "status": "ok", "valid_fraction": 1.0, "z": [0.0, 0.0]}  # fmt: skip
    pending = {"iteration": 1, "seed": 7, "source": "bo"}
    args = (CFG, decode, objective, F.canonical)
    store = CampaignStore(tmp_path / "all", writer=True)
    store.append_rows([init], 2)
    rows, stats = score_batch(z, pending, store.load_history(), *args)
    assert stats["primary_duplicate"] == 6 and stats["primary_invalid"] == 1
    assert [r["status"] for r in rows] == ["ok", "failed", "duplicate", "duplicate", "invalid",
                                           "ok", "duplicate", "duplicate", "invalid", "duplicate",
                                           "duplicate"]  # fmt: skip
    for cut in range(1, len(rows)):  # rows[:cut] were appended, then the process died
        store = CampaignStore(tmp_path / f"cut{cut}", writer=True)
        store.append_rows([init, *rows[:cut]], 2)
        rest, again = score_batch(z, pending, store.load_history(), *args)
        assert _comparable(rest) == _comparable(rows[cut:]) and again == stats, cut


def _comparable(rows: list[dict]) -> list[tuple]:
    return [(r["index"], r["canonical"], r["status"], repr(r["score"])) for r in rows]
