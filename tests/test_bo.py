"""Tests of molvae.bo (surrogate, store, loop, trust region) with a fake decoder and objective."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from botorch.exceptions import ModelFittingError
from botorch.exceptions.errors import OptimizationGradientError
from linear_operator.utils.errors import NotPSDError
from torch.linalg import LinAlgError

import molvae.bo.acquisition as acquisition
import molvae.bo.surrogate as surrogate
from molvae.bo import BOConfig, choose_decoded, fit_gp, iteration_seed, select_gp_points
from molvae.bo.accounting import oracle_calls
from molvae.bo.loop import random_search, run_campaign
from molvae.bo.store import load_campaign
from molvae.bo.trust_region import (
    TrustRegionState,
    latent_bounds,
    trust_region_box,
    update_trust_region,
)

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)

# The fake decoder gives many invalid and duplicate molecules (free, re-drawn or not), so the
# budget may need more than the default cap of ceil(budget left / batch_size) + 2 iterations:
# max_iterations lifts it. The pool is charged (the default): init_pool None resolves to
# 20 // 4 = 5 calls, then 15 for proposals.
TINY = BOConfig(surrogate="latent",
    budget=20, batch_size=6, max_iterations=20, num_restarts=2, raw_samples=16, mc_samples=32,
    acq_maxiter=10, n_decode_attempts=3, max_gp_points=20, seed=3, trust_region=False,
)  # fmt: skip
POOL = 5


def _base(sources: pd.Series) -> pd.Series:
    """Sources without the re-draw suffix (``bo/spare`` -> ``bo``)."""
    return sources.str.split("/").str[0]


def run(out: Path, cfg: BOConfig = TINY, objective=None, **kw):
    return run_campaign(
        cfg, F.decode, F.encode, objective or F.Objective(), F.DATA, out,
        canonical_fn=F.canonical, progress=False, report=False, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted TINY campaign, shared by the determinism and resume tests."""
    out = tmp_path_factory.mktemp("ref") / "campaign"
    run(out)
    return out


# -- pure helpers ---------------------------------------------------------------------------
def test_trust_region_transitions_by_hand():
    s = TrustRegionState(dim=10, batch_size=4, length_min=0.3)
    assert s.failure_tolerance == 3  # ceil(max(4/4, 10/4))
    s = update_trust_region(s, 1.0, -math.inf)  # anything beats nothing
    assert (s.success_counter, s.best_value) == (1, 1.0)
    s = update_trust_region(s, 1.0005, 1.0)  # within 1e-3 * |best|: a failure
    assert (s.success_counter, s.failure_counter, s.best_value) == (0, 1, 1.0005)
    for best in (2.0, 3.0):
        s = update_trust_region(s, best, best - 1)
    assert (s.success_counter, s.failure_counter, s.length) == (2, 0, 0.8)
    s = update_trust_region(s, 4.0, 3.0)  # third success: doubles
    assert (s.length, s.success_counter) == (1.6, 0)
    for _ in range(3):
        s = update_trust_region(s, 4.0, 5.0)
    s2 = update_trust_region(s, 4.0, 5.0)
    assert s.length == 0.8 and s.failure_counter == 0 and s2.failure_counter == 1
    for _ in range(3):  # NaN (nothing scored) counts as a failure
        s = update_trust_region(s, math.nan, 5.0)
    assert s.length == 0.4 and s.best_value == 5.0
    for _ in range(3):  # 0.2 < length_min: restart
        s = update_trust_region(s, 1.0, 5.0)
    assert (s.length, s.restarts, s.failure_counter) == (0.8, 1, 0)


def test_trust_region_box_keeps_volume_and_clamps():
    box = trust_region_box(
        torch.full((2,), 0.5, dtype=torch.float64), 0.4, torch.tensor([1.0, 4.0])
    )
    side = box[1] - box[0]
    assert torch.allclose(side, torch.tensor([0.2, 0.8], dtype=torch.float64))
    assert math.isclose(float(side.prod()), 0.4**2)
    edge = trust_region_box(torch.tensor([0.0, 1.0], dtype=torch.float64), 0.4)
    assert edge.tolist() == [[0.0, 0.8], [0.2, 1.0]]


def test_latent_bounds_from_mean_and_std_not_min_max():
    z = torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0], [math.nan, 0.0]])
    b = latent_bounds(z, bound_std=3.0)
    assert torch.allclose(b[:, 0], torch.tensor([2.0 - 6.0, 2.0 + 6.0], dtype=torch.float64))
    assert b[0, 1] < 10.0 < b[1, 1] and float(b[1, 1] - b[0, 1]) < 1e-4  # collapsed dim kept open
    assert latent_bounds(torch.zeros(1, 3)).tolist() == [[-3.0] * 3, [3.0] * 3]


def test_choose_decoded_majority_ties_and_invalid():
    assert choose_decoded(["OCC", "CCO", "C1CC", "CC"], F.canonical) == ("OCC", "CCO", 0.75)
    # tie between CC and CCO: the earliest attempt (greedy) wins
    assert choose_decoded(["CC", "CCO", "C1CC", "OCC", "CC"], F.canonical)[:2] == ("CC", "CC")
    assert choose_decoded(["C1CC", "(("], F.canonical) == ("C1CC", "", 0.0)


def test_select_gp_points_best_near_random():
    x = torch.arange(10, dtype=torch.float64).reshape(10, 1)
    y = torch.tensor([0, 9, 1, 8, 2, 7, 3, 6, 4, 5], dtype=torch.float64)
    assert select_gp_points(x, y, 20, x[0], 0).tolist() == [1, 3, 5, 7, 9, 8, 6, 4, 2, 0]
    idx = select_gp_points(x, y, 6, torch.tensor([0.0], dtype=torch.float64), 0)
    assert idx[:2].tolist() == [1, 3] and idx[2:4].tolist() == [0, 2]
    assert len(set(idx.tolist())) == 6


def test_iteration_seed_is_stable():
    assert iteration_seed(0, 1) == iteration_seed(0, 1) != iteration_seed(0, 2)
    assert iteration_seed(0, 1) != iteration_seed(1, 1)


@pytest.mark.parametrize("case", ["duplicates", "constant", "single"])
def test_gp_fits_degenerate_data(case):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, generator=g, dtype=torch.float64)
    y = torch.rand(12, generator=g, dtype=torch.float64)
    if case == "duplicates":
        x[6:], y[6:] = x[0], y[0]
    elif case == "constant":
        y[:] = 2.5
    else:
        x, y = x[:1], y[:1]
    bounds = torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)
    model, n, _ = fit_gp(x, y, bounds)
    assert model is not None and n == len(y)
    mean = model.posterior(torch.rand(5, 3, dtype=torch.float64)).mean
    assert torch.isfinite(mean).all()
    if case == "constant":
        assert torch.allclose(mean, torch.full_like(mean, 2.5), atol=1e-3)


# -- campaigns ------------------------------------------------------------------------------
def test_campaign_reaches_budget_and_records_every_status(reference):
    res = load_campaign(reference)
    h = res.history
    # duplicates and invalid decodes are re-drawn before a batch is spent: rare here (a
    # campaign without re-drawing records every status: tests/test_bo_redraw.py)
    assert {"ok", "failed"} <= set(h["status"]) <= {"ok", "invalid", "duplicate", "failed"}
    new = h[h["iteration"] > 0]
    # the budget counts every first call of a molecule, ok or failed, the initial pool included
    called = h[h["status"].isin(["ok", "failed"])]
    assert len(called) == TINY.budget and not called["canonical"].duplicated().any()
    assert res.config.init_pool == POOL and not res.config.free_pool
    assert not h.duplicated(["iteration", "index"]).any()
    # the whole scored pool is the initial design (its failed calls too: they were paid for)
    init = h[h["iteration"] == 0]
    pool = pd.read_csv(reference / "pool.csv", keep_default_na=False)
    scored = pool[pool["status"] != "unscored"]
    assert len(init) == len(scored) == POOL and set(init["source"]) == {"init"}
    assert init["canonical"].tolist() == scored["canonical"].tolist()
    assert len(pool) == len(F.DATA)  # the others encoded, unscored, for the latent box
    # proposals stay inside the latent bounds from the pool's mean +- 3 std
    zc = [f"z{i}" for i in range(F.DIM)]
    bounds = latent_bounds(torch.tensor(pool[zc].to_numpy(dtype=float)), 3.0).numpy()
    assert ((new[zc] >= bounds[0] - 1e-9) & (new[zc] <= bounds[1] + 1e-9)).all().all()
    # a duplicate carries the score of its molecule; invalid rows have no canonical SMILES
    known = h[h["status"] == "ok"].drop_duplicates("canonical").set_index("canonical")["score"]
    dup = h[(h["status"] == "duplicate") & h["canonical"].isin(known.index)]
    assert np.allclose(dup["score"].to_numpy(float), known[dup["canonical"]].to_numpy(float))
    assert (h.loc[h["status"] == "invalid", "canonical"] == "").all()
    assert h.loc[h["status"] == "invalid", "valid_fraction"].eq(0).all()
    # an ok molecule appears once as ok; the last batch was shrunk to what the budget needed
    assert not h[h["status"] == "ok"]["canonical"].duplicated().any()
    state = json.loads((reference / "state.json").read_text())
    assert state["iteration"] == h["iteration"].max() and not (reference / "pending.json").exists()
    assert res.best_score == h["score"].max() and res.top["score"].is_monotonic_decreasing
    assert len(res.iteration_times) == state["iteration"]


def test_same_seed_same_csv(reference, tmp_path):
    run(tmp_path / "again")
    assert (tmp_path / "again" / "evaluations.csv").read_bytes() == (
        reference / "evaluations.csv"
    ).read_bytes()


def test_gp_improves_over_initial_design(reference):
    h = load_campaign(reference).history
    assert h.loc[h["iteration"] > 0, "score"].max() > h.loc[h["iteration"] == 0, "score"].max()


@pytest.mark.parametrize("crash_after", [1, 3])
def test_resume_after_objective_crash(reference, tmp_path, crash_after):
    out = tmp_path / "c"
    with pytest.raises(F.Crash):
        run(out, objective=F.Objective(crash_after=crash_after))
    pending = 0  # crash_after=1: the pool's scoring crashed, before any iteration
    if crash_after == 3:  # calls: pool, iteration 1, 2; the 4th (iteration 3) crashes
        pending = json.loads((out / "pending.json").read_text())["iteration"]
        assert pending == 3
        with open(out / "evaluations.csv", "a") as fh:  # a row cut off mid-write by a kill
            fh.write(f"{pending},0,bo,CCC")
        # a reader ignores the partial row and leaves the file alone; the resuming writer cuts it
        assert not (load_campaign(out).history["iteration"] == pending).any()
        assert (out / "evaluations.csv").read_text().endswith(f"{pending},0,bo,CCC")
    seen: list[str] = []

    def recording(smiles):
        seen.extend(smiles)
        return F.Objective()(smiles)

    run(out, objective=recording)
    assert (out / "evaluations.csv").read_bytes() == (reference / "evaluations.csv").read_bytes()
    assert len(seen) == len(set(seen))  # nothing scored twice on resume
    h = load_campaign(out).history
    done_before = h[h["iteration"] < pending]
    assert len(done_before) > 0 or crash_after == 1
    assert not set(done_before["canonical"]) & set(seen)


@pytest.mark.slow
def test_resume_after_sigkill(reference, tmp_path):
    out = tmp_path / "k"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch
        torch.set_num_threads(1)
        import bo_fakes as F
        from molvae.bo.loop import run_campaign
        from molvae.bo import BOConfig
        cfg = BOConfig(**{dataclasses.asdict(TINY)!r})
        obj = F.Objective()
        def slow(smiles):
            time.sleep(0.05 * len(smiles))  # >= 2.5 s in all: the kill lands mid-run
            return obj(smiles)
        print("ready", flush=True)
        run_campaign(cfg, F.decode, F.encode, slow, F.DATA, sys.argv[1],
                     canonical_fn=F.canonical, progress=False, report=False)
    """)
    )
    # One kill at a random moment after the imports (init design, GP fit, decoding, scoring or
    # a write), then a clean resume; imports dominate a subprocess's cost, hence only one.
    delay = random.Random(0).uniform(0.1, 2.0)
    kills = 0
    for attempt in range(2):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        if attempt == 0:
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        proc.wait(timeout=120)
    assert proc.returncode == 0 and kills >= 1
    assert (out / "evaluations.csv").read_bytes() == (reference / "evaluations.csv").read_bytes()


@pytest.mark.parametrize(
    "error",
    [ModelFittingError("simulated"), NotPSDError("simulated"), LinAlgError("simulated")],
    ids=lambda e: type(e).__name__,
)
def test_gp_fit_failure_falls_back_to_random(tmp_path, monkeypatch, caplog, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", broken)
    cfg = dataclasses.replace(TINY, budget=10)
    res = run(tmp_path / "f", cfg)
    new = res.history[res.history["iteration"] > 0]
    assert oracle_calls(res.history, False) == 10 and set(_base(new["source"])) == {"random"}
    assert res.iterations["fallback"].str.contains("GP fit failed").all()
    state = json.loads((tmp_path / "f" / "state.json").read_text())
    assert len(state["gp_fallbacks"]) == len(res.iterations)
    reason = f"{type(error).__name__}: simulated"  # every iteration records why it fell back
    assert all(reason in g["fallback"] for g in state["gp_fallbacks"])
    assert all(reason in rec["fallback"] for rec in state["iterations"])
    assert "falls back to random" in caplog.text


def _propose_on_toy_data() -> acquisition.Proposal:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, generator=g, dtype=torch.float64)
    bounds = torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)
    return acquisition.propose_batch(TINY, x, x.sum(-1), bounds, 2, seed=0, tr_length=0.8)


@pytest.mark.parametrize(
    "error",
    [NotPSDError("simulated"), LinAlgError("simulated"),
     OptimizationGradientError("simulated", current_x=np.zeros(3))],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_numerical_acquisition_failure_falls_back_with_its_reason(monkeypatch, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(acquisition, "optimize_acqf", broken)
    prop = _propose_on_toy_data()
    assert prop.source == "random" and prop.z.shape == (2, 3) and prop.gp_points == 8
    assert prop.fallback == f"acquisition failed: {type(error).__name__}: simulated"


CODING_ERRORS = [TypeError("bad operand"), RuntimeError("shape mismatch"), ValueError("bad arg")]


@pytest.mark.parametrize("where", ["fit", "acquisition"])
@pytest.mark.parametrize("error", CODING_ERRORS, ids=lambda e: type(e).__name__)
def test_coding_errors_propagate_instead_of_random_search(monkeypatch, where, error):
    def broken(*args, **kwargs):
        raise error

    if where == "fit":
        monkeypatch.setattr(surrogate, "fit_gpytorch_mll", broken)
    else:
        monkeypatch.setattr(acquisition, "optimize_acqf", broken)
    with pytest.raises(type(error), match=str(error)):
        _propose_on_toy_data()


def test_coding_error_in_the_fit_stops_the_campaign(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run(tmp_path / "e")
    assert not (tmp_path / "e" / "pending.json").exists()  # no batch was proposed
    assert not (tmp_path / "e" / "state.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("acq", ["qucb", "ts"])
def test_other_acquisitions_and_trust_region(tmp_path, acq):
    cfg = dataclasses.replace(TINY, acquisition=acq, trust_region=True, max_iterations=2)
    res = run(tmp_path / acq, cfg)
    assert res.iterations["iteration"].tolist() == [1, 2]
    assert set(res.iterations["source"]) == {"bo"} and res.iterations["fallback"].isna().all()
    state = json.loads((tmp_path / acq / "state.json").read_text())
    tr = TrustRegionState(**state["trust_region"])
    assert res.iterations["tr_length"].iloc[-1] == tr.length
    assert len(res.history[res.history["iteration"] > 0]) == 2 * TINY.batch_size


def test_config_mismatch_refused_budget_may_grow(reference, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(reference, out)
    with pytest.raises(ValueError, match="acquisition"):
        run(out, dataclasses.replace(TINY, acquisition="ts"))
    with pytest.raises(ValueError, match="budget"):
        run(out, dataclasses.replace(TINY, budget=TINY.budget - 1))
    res = run(out, dataclasses.replace(TINY, budget=TINY.budget + 6, max_iterations=40))
    assert oracle_calls(res.history, False) == TINY.budget + 6
    # the pool the campaign began with (26 // 4 would be 6), stored resolved in config.json
    assert res.config.init_pool == POOL and (res.history["iteration"] == 0).sum() == POOL
    before = pd.read_csv(reference / "evaluations.csv")
    assert (
        res.history.iloc[: len(before)]["canonical"].fillna("").tolist()
        == before["canonical"].fillna("").tolist()
    )


def test_random_search_same_harness(reference, tmp_path):
    res = random_search(
        TINY, F.decode, F.prior, F.Objective(), tmp_path / "r", init_smiles=F.DATA,
        encode_fn=F.encode, canonical_fn=F.canonical, progress=False, report=False,
    )  # fmt: skip
    h, ref = res.history, load_campaign(reference).history
    assert list(h.columns) == list(ref.columns) and res.kind == "random"
    pd.testing.assert_frame_equal(h[h["iteration"] == 0], ref[ref["iteration"] == 0])
    new = h[h["iteration"] > 0]
    assert set(_base(new["source"])) == {"random"} and oracle_calls(h, False) == TINY.budget
    first = new[(new["iteration"] == 1) & (new["source"] != "random/spare")]
    z = F.prior(TINY.batch_size, iteration_seed(TINY.seed, 1)).double().numpy()[first["index"]]
    assert np.array_equal(first[[f"z{i}" for i in range(F.DIM)]].to_numpy(float), z)
