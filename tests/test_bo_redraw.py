"""A loop that does not collapse: re-drawing known molecules, trust-region restarts elsewhere,
a bounded number of iterations with the reason it stopped, latent bounds from the prior."""

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

from molvae.bo import (
    BOConfig,
    iteration_cap,
    iteration_seed,
    prior_bounds,
    resolve_batch,
    stop_reason,
)
from molvae.bo.loop import run_campaign
from molvae.bo.regions import region_best, region_center, restart_region
from molvae.bo.trust_region import TrustRegionState, update_trust_region

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)

CFG = BOConfig(surrogate="latent", n_decode_attempts=3, redraw_rounds=2)

# what each latent decodes to, by its first coordinate: rows 0-4 proposals, 100+ spares (two
# rounds of 3: 100-102, 103-105)
TABLE = {
    0: ["CCO", "CCO", "CC"],  # new
    1: ["CCO", "CCO", "CCC"],  # CCO is earlier in the batch: the attempt CCC is taken
    2: ["CO", "CO", "CO"],  # known: re-drawn from a spare
    3: ["C1CC", "((", "C1CC"],  # invalid: re-drawn from a spare
    4: ["CO", "CO", "CO"],  # known, and no spare left for it: recorded as a duplicate
    100: ["CCO", "CCO", "CCO"],  # a spare that decodes to a molecule already taken
    101: ["CCCC", "CCCC", "CCCC"],
    102: ["CO", "OCCO", "CO"],  # the majority is known, the other attempt new
    103: ["CCCC", "CCCC", "CCCC"],  # taken in round 1
    104: ["C1CC", "C1CC", "C1CC"],  # invalid
    105: ["CCCCC", "CCCCC", "CCCCC"],  # new, but round 2 decodes only 2 x 1 row to fill
}


class TableDecoder:
    def __init__(self):
        self.calls = []

    def __call__(self, z, n_attempts, seed):
        self.calls.append(([int(v) for v in z[:, 0]], seed))
        return [TABLE[int(v)] for v in z[:, 0]]


def _resolve(cfg: BOConfig = CFG):
    z = torch.tensor([[float(i), 0.5] for i in range(5)], dtype=torch.float64)
    spare = torch.tensor([[100.0 + j, 0.25] for j in range(6)], dtype=torch.float64)
    decoder = TableDecoder()
    rows, stats = resolve_batch(z, spare, 7, "bo", {"CO"}, cfg, decoder, F.canonical)
    return rows, stats, decoder


def test_resolve_batch_redraws_known_and_invalid_proposals_by_hand():
    rows, stats, decoder = _resolve()
    got = [(r["index"], r["source"], r["canonical"], r["status"]) for r in rows]
    assert got == [(0, "bo", "CCO", "new"), (1, "bo/attempt", "CCC", "new"),
                   (2, "bo/spare", "CCCC", "new"), (3, "bo/spare", "OCCO", "new"),
                   (4, "bo", "CO", "duplicate")]  # fmt: skip
    assert rows[2]["z"] == [101.0, 0.25] and rows[3]["z"] == [102.0, 0.25]  # the spares' z
    assert rows[1]["z"] == [1.0, 0.5] and rows[3]["smiles"] == "OCCO"
    assert rows[3]["valid_fraction"] == 1.0
    assert stats == {"primary_duplicate": 3, "primary_invalid": 1, "redrawn_attempt": 1,
                     "redrawn_spare": 2, "spares_decoded": 5}  # fmt: skip
    # the batch with the iteration's seed, then each round with its own seed: round 1 decodes
    # its whole block of 3 (twice the 3 rows to fill would be 6), round 2 twice the 1 row left
    assert decoder.calls == [([0, 1, 2, 3, 4], 7), ([100, 101, 102], iteration_seed(7, 1)),
                             ([103, 104], iteration_seed(7, 2))]  # fmt: skip


def test_without_redraw_known_and_invalid_proposals_are_recorded_as_they_are():
    rows, stats, decoder = _resolve(dataclasses.replace(CFG, redraw=False))
    assert [r["status"] for r in rows] == ["new", "duplicate", "duplicate", "invalid", "duplicate"]
    assert {r["source"] for r in rows} == {"bo"} and len(decoder.calls) == 1
    assert stats["primary_duplicate"] == 3 and stats["redrawn_spare"] == 0


def _few_molecules(z, n_attempts, seed):
    """A decoder with a handful of molecules: batches soon decode to known ones."""
    return [[["CCCC", "CCCCO", "OCCCO", "FCCCC"][int(abs(r[0]) * 1.5) % 4]] * n_attempts
            for r in z.double().numpy()]  # fmt: skip


TINY = BOConfig(surrogate="latent",
                budget=12, batch_size=4, n_init=4, init_pool=20, init_top=2, free_pool=True,
                acquisition="ts", ts_candidates=32, fit_maxiter=10, n_decode_attempts=2,
                max_gp_points=20, seed=1)  # fmt: skip


def _campaign(out: Path, cfg: BOConfig, decode=F.decode, **kw):
    return run_campaign(cfg, decode, F.encode, F.Objective(), F.DATA, out,
                        canonical_fn=F.canonical, progress=False, report=False, **kw)  # fmt: skip


def test_redraw_cuts_duplicates_and_each_iteration_records_its_rates(tmp_path):
    """In a trust region around the incumbent, 10 of 16 proposals repeat known molecules without
    re-drawing (the collapse of issue 16, in small); with it, none do."""
    cfg = dataclasses.replace(TINY, max_iterations=4, seed=2)
    off = _campaign(tmp_path / "off", dataclasses.replace(cfg, redraw=False))
    on = _campaign(tmp_path / "on", cfg)
    dup = {name: int((r.history["status"] == "duplicate").sum()) for name, r in
           (("off", off), ("on", on))}  # fmt: skip
    assert dup["off"] >= 8 and dup["on"] <= dup["off"] // 4, dup
    assert (on.history["status"] == "ok").sum() > (off.history["status"] == "ok").sum()
    state = json.loads((tmp_path / "on" / "state.json").read_text())
    for rec in state["iterations"]:
        assert rec["new_rate"] == rec["n_new"] / rec["q"]
        assert rec["duplicate_rate"] == rec["n_duplicate"] / rec["q"]
        assert rec["invalid_rate"] == rec["n_invalid"] / rec["q"]
        assert rec["waste"] == (rec["primary_duplicate"] + rec["primary_invalid"]) / rec["q"]
    assert sum(r["redrawn_attempt"] + r["redrawn_spare"] for r in state["iterations"]) > 0
    sources = set(on.history.loc[on.history["iteration"] > 0, "source"])
    assert sources <= {"bo", "bo/attempt", "bo/spare"} and len(sources) > 1


def test_without_redraw_every_status_is_recorded(tmp_path):
    cfg = dataclasses.replace(TINY, max_iterations=4, seed=2, redraw=False, trust_region=False)
    res = _campaign(tmp_path / "c", cfg)
    new = res.history[res.history["iteration"] > 0]
    assert set(new["status"]) == {"ok", "invalid", "duplicate", "failed"}
    assert set(new["source"]) == {"bo"}


def test_trust_region_waste_is_a_failure_that_halves_at_once_by_hand():
    s = TrustRegionState(dim=16, batch_size=4, waste_tolerance=0.5)
    assert s.failure_tolerance == 4  # ceil(16 / 4)
    assert update_trust_region(s, 2.0, 1.0, waste=0.5).success_counter == 1  # at the limit
    once = update_trust_region(s, 0.5, 1.0, waste=0.5)  # an ordinary failure: counted
    assert (once.failure_counter, once.length) == (1, 0.8)
    wasted = update_trust_region(once, 2.0, 1.0, waste=0.75)  # improved, but mostly known
    assert (wasted.success_counter, wasted.failure_counter, wasted.length) == (0, 0, 0.4)
    assert wasted.best_value == 2.0
    # three wasted batches in a row: 0.2, 0.1, 0.05; from 0.8 with length_min 0.15: 0.4, 0.2,
    # then 0.1 is below the minimum: a restart
    for _ in range(3):
        wasted = update_trust_region(wasted, math.nan, 2.0, waste=1.0)
    assert (wasted.length, wasted.restarts) == (0.05, 0)
    small = dataclasses.replace(s, length_min=0.15)
    for _ in range(3):
        small = update_trust_region(small, math.nan, 2.0, waste=1.0)
    assert (small.length, small.restarts) == (0.8, 1)


def _history(rows: list[tuple[int, str, float, float]]) -> pd.DataFrame:
    """(iteration, canonical, score, z0) rows scored ok, z = (z0, 0)."""
    return pd.DataFrame({
        "iteration": [r[0] for r in rows], "index": range(len(rows)), "source": "x",
        "smiles": [r[1] for r in rows], "canonical": [r[1] for r in rows],
        "score": [r[2] for r in rows], "status": "ok", "valid_fraction": 1.0,
        "z0": [r[3] for r in rows], "z1": 0.0,
    })  # fmt: skip


def test_restart_centres_on_another_good_point_by_hand():
    rows = [(0, "A", 5.0, 0.0), (0, "B", 4.0, 1.0), (0, "C", 3.0, 2.0), (1, "D", 6.0, 0.1),
            (1, "E", 5.5, 0.2)]  # fmt: skip
    h = _history(rows)
    tr = TrustRegionState(dim=2, batch_size=4)
    assert region_center(h, tr, 2) is None and region_best(h, tr, 2) == 6.0
    assert region_best(h, tr, 1) == 5.0  # the incumbent before batch 1
    # the first region started at A (the initial incumbent), ended at D; E is its own proposal
    tr, note = restart_region(tr, h, 1, 2)
    assert (tr.center_smiles, tr.center, tr.center_score, tr.since) == ("B", (1.0, 0.0), 4.0, 2)
    assert set(tr.used_centers) == {"A", "D"} and "B" in note
    assert region_center(h, tr, 2).tolist() == [1.0, 0.0] and region_best(h, tr, 2) == 4.0
    # the new region finds F (better than B) then G: it follows F
    h = _history([*rows, (2, "F", 4.5, 1.5), (3, "G", 4.2, 1.6)])
    assert region_center(h, tr, 2).tolist() == [1.5, 0.0] and region_best(h, tr, 3) == 4.5
    assert region_best(h, tr, 2) == 4.0  # batch 2's own rows are not "before" it
    # second restart: B, F join the used centres; its own proposals (F, G) are excluded; the
    # best earlier molecule left is E, from the first region
    tr, _ = restart_region(tr, h, 3, 2)
    assert tr.center_smiles == "E" and set(tr.used_centers) == {"A", "B", "D", "F"}
    assert tr.since == 4 and tr.center_score == 5.5


def test_restart_with_nothing_else_goes_back_to_the_incumbent():
    h = _history([(0, "A", 5.0, 0.0)])
    tr, note = restart_region(TrustRegionState(dim=2, batch_size=4), h, 1, 2)
    assert tr.center_smiles == "A" and "incumbent" in note


def test_stop_reasons_by_hand():
    cfg = BOConfig(surrogate="latent", budget=100, batch_size=50)
    recs = [{"iteration": 1, "q": 50, "n_new": 30, "n_duplicate": 15, "n_invalid": 5},
            {"iteration": 2, "q": 50, "n_new": 0, "n_duplicate": 50, "n_invalid": 0}]  # fmt: skip
    assert stop_reason(cfg, [], 1, 100) is None
    assert stop_reason(cfg, recs[:1], 2, 70) is None
    assert stop_reason(cfg, recs, 3, 0).startswith("budget reached: 100 of 100 oracle calls")
    stuck = [*recs, {**recs[1], "iteration": 3}]
    assert stop_reason(cfg, stuck, 4, 70).startswith("stopped early: iterations 2-3 found no new")
    # ceil(100 / 50) + 2 = 4 iterations at most
    four = [*recs, {**recs[0], "iteration": 3}, {**recs[0], "iteration": 4}]
    cap = stop_reason(cfg, four, 5, 10)
    assert cap.startswith("stopped early: 4 iterations, the cap ceil(budget left after the "
                          "initial design / batch_size) + 2")  # fmt: skip
    assert "90 of 100 oracle calls (95 duplicates and 15 invalid of 200 proposals)" in cap
    # an initial pool of 25 calls leaves 75: ceil(75 / 50) + 2 = 4; of 60, 40 left: 3
    assert stop_reason(cfg, four, 5, 10, initial_calls=25).startswith("stopped early: 4 it")
    assert stop_reason(cfg, four[:3], 4, 10, initial_calls=60).startswith("stopped early: 3 it")
    assert iteration_cap(cfg, 60) == 3 and iteration_cap(cfg) == 4
    fixed = dataclasses.replace(cfg, max_iterations=3)  # no early stop: the user fixed it
    assert stop_reason(fixed, stuck, 4, 70).startswith("max_iterations reached: 3 iterations")
    assert stop_reason(fixed, stuck, 3, 70) is None


def test_campaign_that_runs_out_of_molecules_stops_with_its_reason(tmp_path):
    res = _campaign(tmp_path / "c", dataclasses.replace(TINY, budget=40), decode=_few_molecules)
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert state["iteration"] <= math.ceil(40 / 4) + 2
    assert res.stop_reason == state["stop_reason"] and res.stop_reason.startswith("stopped early")
    assert "\n" not in res.stop_reason
    assert (res.history["status"] == "ok").sum() < 40 + TINY.n_init
    again = _campaign(tmp_path / "c", dataclasses.replace(TINY, budget=40), decode=_few_molecules)
    assert len(again.history) == len(res.history) and again.stop_reason == res.stop_reason


def test_prior_bounds_quantiles_widened():
    g = torch.Generator().manual_seed(0)
    b = prior_bounds(torch.randn(40_000, 2, generator=g) * torch.tensor([1.0, 2.0]) + 1.0)
    expected = 2.5758 * 1.2  # 0.5% / 99.5% quantiles, widened by 10% of their range each side
    assert torch.allclose(b[:, 0], torch.tensor([1 - expected, 1 + expected], dtype=b.dtype),
                          atol=0.06)  # fmt: skip
    assert torch.allclose(b[:, 1] - 1.0, 2.0 * (b[:, 0] - 1.0), atol=0.12)
    with pytest.raises(ValueError, match="two finite"):
        prior_bounds(torch.tensor([[0.0, math.nan], [1.0, 1.0]]))


def test_bounds_from_the_prior_keep_proposals_in_the_prior_box(tmp_path):
    def narrow_prior(n, seed):  # numpy, as a SampleFn may return
        return np.random.default_rng(seed).normal(0.0, 0.1, size=(n, F.DIM))

    cfg = dataclasses.replace(TINY, bounds="prior", max_iterations=2, trust_region=False)
    res = _campaign(tmp_path / "p", cfg, prior_fn=narrow_prior)
    new = res.history[res.history["iteration"] > 0]
    z = new[[f"z{i}" for i in range(F.DIM)]].to_numpy(float)
    box = prior_bounds(torch.as_tensor(narrow_prior(10_000, iteration_seed(TINY.seed, 0))))
    assert len(new) and (z >= box[0].numpy() - 1e-9).all() and (z <= box[1].numpy() + 1e-9).all()
    assert np.abs(z).max() < 0.5  # the data box (mean +- 3 std of the pool) is ~10x wider
    with pytest.raises(ValueError, match="prior_fn"):
        _campaign(tmp_path / "q", cfg)


def test_spares_come_from_ever_larger_boxes_around_the_region():
    from molvae.bo import propose_batch

    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, generator=g, dtype=torch.float64)
    bounds = torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)
    cfg = BOConfig(surrogate="latent", acquisition="ts", ts_candidates=64, fit_maxiter=10)
    center = torch.full((3,), 0.5, dtype=torch.float64)
    prop = propose_batch(cfg, x, x.sum(-1), bounds, 2, seed=0, tr_length=0.05, center=center,
                         n_spare=4, spare_rounds=3)  # fmt: skip
    assert prop.z.shape == (2, 3) and prop.spare.shape == (12, 3)
    spread = [float((prop.spare[4 * r : 4 * r + 4] - 0.5).abs().max()) for r in range(3)]
    # box sides 0.05, 0.2, 0.8 (times lengthscale weights, volume kept): ever wider
    assert spread[0] < spread[1] < spread[2] and spread[0] < 0.2
