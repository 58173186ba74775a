"""Weighted retraining in the campaign loop, with a fake model: the rank weights, the retraining
set, the GP in the new latent space, the trust region reset, the files of each model version, and
exact resume after a kill at any write, the retraining's own included."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import molvae.bo.iteration as iteration
import molvae.bo.retrain as retrain_mod
from molvae.bo import BOConfig
from molvae.bo.loop import run_campaign
from molvae.bo.retrain_data import (
    RetrainedModel,
    in_latent_space,
    rank_weights,
    read_latents,
    retraining_set,
)
from molvae.bo.store import read_table, z_columns
from molvae.bo.trust_region import latent_bounds
from molvae.io import write_text

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F
from test_bo_resume import CFG as RESUME_CFG
from test_bo_resume import Killed, Writes

# Retrain after iterations 1 and 2 of 3: two model versions, the second fine-tuned from the first.
CFG = dataclasses.replace(RESUME_CFG, max_iterations=3, retrain_every=1)
TIMING = ("fit_s", "acq_s", "propose_s", "wall_s", "train_s", "encode_s")


def save_shift(path: Path, payload: str) -> None:
    """The fake model's file (a module function, so a test can make it fail like a kill)."""
    write_text(path, payload)


class FakeRetrain:
    """Fine-tuning as a shift of the latent space: each version moves it by 10 plus a bit that
    depends on the seed, from the version it starts from; the file holds the shift."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int, int, float]] = []

    def __call__(self, path, start, smiles, weights, seed) -> RetrainedModel:
        self.calls.append((path.name, start and start.name, len(smiles), seed, weights.max()))
        if not path.exists():
            base = json.loads(start.read_text())["shift"] if start else 0.0
            path.parent.mkdir(parents=True, exist_ok=True)
            save_shift(path, json.dumps({"shift": base + 10.0 + (seed % 1000) / 1000}))
        shift = json.loads(path.read_text())["shift"]
        return RetrainedModel(
            decode_fn=lambda z, n, s: F.decode(z - shift, n, s),
            encode_fn=lambda smiles: F.encode(smiles) + shift,
        )


def run(out: Path, cfg: BOConfig = CFG, fake: FakeRetrain | None = None):
    return run_campaign(
        cfg, F.decode, F.encode, F.Objective(), F.DATA, out, canonical_fn=F.canonical,
        progress=False, report=False, retrain_fn=fake or FakeRetrain(),
    )  # fmt: skip


def test_rank_weights_are_one_over_kn_plus_rank() -> None:
    w = rank_weights(np.array([1.0, 3.0, 2.0, 3.0]), k=0.1)  # ranks 3, 0, 2, 1 (ties in order)
    np.testing.assert_allclose(w, 1.0 / (0.4 + np.array([3, 0, 2, 1])))
    # the mass on the top fraction p is about log(1 + p / k) / log(1 + 1 / k), whatever N (once
    # k N is not tiny): the top 1% draw about 35% of the molecules
    for n in (10_000, 100_000):
        w = rank_weights(np.random.default_rng(0).normal(size=n), k=1e-3)
        top = np.sort(w)[::-1][: n // 100].sum() / w.sum()
        assert abs(top - np.log(11) / np.log(1001)) < 0.01, (n, top)
    with pytest.raises(ValueError):
        rank_weights(np.array([1.0, np.nan]))


def test_retraining_set_ranks_the_pool_and_the_scored_proposals_once() -> None:
    pool = pd.DataFrame({"canonical": ["CC", "CO", "CN"], "score": [1.0, np.nan, 2.0],
                         "status": ["ok", "failed", "ok"]})  # fmt: skip
    history = pd.DataFrame({
        "iteration": [0, 1, 1, 1, 2], "canonical": ["CC", "CCC", "", "CC", "CCCC"],
        "score": [1.0, 3.0, np.nan, 1.0, np.nan], "status": ["ok", "ok", "invalid", "ok", "failed"],
    })  # fmt: skip
    data = retraining_set(pool, history)
    assert list(data["canonical"]) == ["CC", "CN", "CCC"]
    assert list(data["score"]) == [1.0, 2.0, 3.0]


def test_in_latent_space_replaces_rows_up_to_the_retraining() -> None:
    history = pd.DataFrame({"iteration": [0, 1, 2], "canonical": ["CC", "", "CO"],
                            "z0": [0.0, 0.0, 5.0], "z1": [0.0, 0.0, 6.0]})  # fmt: skip
    latents = pd.DataFrame({"canonical": ["CC", "CO"], "z0": [1.0, 2.0], "z1": [1.5, 2.5]})
    view = in_latent_space(history, latents, since=1, dim=2)
    assert view.loc[0, ["z0", "z1"]].tolist() == [1.0, 1.5]
    assert view.loc[1, ["z0", "z1"]].isna().all()  # invalid: no latents, out of the GP
    assert view.loc[2, ["z0", "z1"]].tolist() == [5.0, 6.0]  # proposed in the new space
    assert history.loc[0, "z0"] == 0.0  # the records stay as they are


@pytest.fixture(scope="module")
def spied(tmp_path_factory):
    """A retraining campaign with every proposal's GP data, bounds and trust region recorded."""
    out = tmp_path_factory.mktemp("retrain") / "campaign"
    seen, fake = [], FakeRetrain()
    with pytest.MonkeyPatch.context() as mp:
        propose = iteration.propose_batch

        def spy(cfg, x, y, bounds, q, seed, length, **kw):
            seen.append({"x": x.clone(), "y": y.clone(), "bounds": bounds.clone(),
                         "length": length, "center": kw["center"]})  # fmt: skip
            return propose(cfg, x, y, bounds, q, seed, length, **kw)

        mp.setattr(iteration, "propose_batch", spy)
        run(out, fake=fake)
    return out, seen, fake


def test_retraining_moves_the_gp_into_the_new_latent_space(spied) -> None:
    out, seen, fake = spied
    state = json.loads((out / "state.json").read_text())
    assert state["model_version"] == 2 and [r["iteration"] for r in state["retrains"]] == [1, 2]
    assert [r["model_version"] for r in state["iterations"]] == [0, 1, 2]
    # the second version starts from the first; the best molecule weighs the most
    assert [(c[0], c[1]) for c in fake.calls] == [("retrain_1.pt", None),
                                                  ("retrain_2.pt", "retrain_1.pt")]  # fmt: skip
    history = read_table(out / "evaluations.csv")
    pool = read_table(out / "pool.csv")
    zc = z_columns(F.DIM)
    for version, rec in enumerate(state["retrains"], start=1):
        t = rec["iteration"]
        shift = json.loads((out / "models" / f"retrain_{version}.pt").read_text())["shift"]
        latents = read_latents(out / "models" / f"latents_{version}.csv")
        cans = list(latents["canonical"])
        before = history[history["iteration"] <= t]
        assert cans == [c for c in dict.fromkeys([*pool["canonical"], *before["canonical"]]) if c]
        np.testing.assert_array_equal(latents[zc].to_numpy(), (F.encode(cans) + shift).numpy())
        # the GP of the next iteration: every scored molecule so far at its new latents
        gp = seen[t]
        table = latents.set_index("canonical")[zc]
        scored = before[before["status"].isin(["ok", "duplicate"]) & np.isfinite(before["score"])]
        expect = table.loc[scored["canonical"]].to_numpy()
        expect = expect[np.isfinite(expect).all(axis=1)]
        np.testing.assert_array_equal(gp["x"].numpy(), expect)
        np.testing.assert_array_equal(gp["y"].numpy(), scored["score"].to_numpy()[
            np.isfinite(table.loc[scored["canonical"]].to_numpy()).all(axis=1)])  # fmt: skip
        # the latent box from the pool's new latents, the trust region afresh at the incumbent
        bounds = latent_bounds(torch.tensor(table.loc[pool["canonical"]].to_numpy()), CFG.bound_std)
        torch.testing.assert_close(gp["bounds"], bounds)
        assert gp["length"] == CFG.tr_length_init and gp["center"] is None
    # proposals after a retraining lie in the shifted space (their decoded z carry the shift)
    later = history[history["iteration"] == 3]
    assert (later[zc[0]].astype(float) > 15).all()


def test_retrained_campaign_refuses_other_retrain_settings(spied, tmp_path) -> None:
    import shutil

    out = tmp_path / "campaign"
    shutil.copytree(spied[0], out)
    for change in ({"retrain_every": 2}, {"retrain_k": 0.01}, {"retrain_every": 0}):
        with pytest.raises(ValueError, match=r"other settings|retrain"):
            run(out, dataclasses.replace(CFG, **change))
    with pytest.raises(ValueError, match="retrain_fn"):
        run_campaign(CFG, F.decode, F.encode, F.Objective(), F.DATA, tmp_path / "x",
                     canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip


def _state(out: Path) -> dict:
    state = json.loads((out / "state.json").read_text())
    for rec in state["iterations"] + state.get("retrains", []):
        for key in TIMING:
            rec.pop(key, None)
    return state


def _writes(mp: pytest.MonkeyPatch, kill_at: int | None = None) -> Writes:
    """The campaign's writes (`test_bo_resume.Writes`) plus the retraining's: the model file and
    the latents file."""
    writes = Writes(mp, kill_at)
    mp.setattr(sys.modules[__name__], "save_shift", writes._atomic("save_model", save_shift))
    mp.setattr(retrain_mod, "write_latents",
               writes._atomic("write_latents", retrain_mod.write_latents))  # fmt: skip
    return writes


@pytest.mark.slow
def test_killed_at_every_write_of_a_retraining_campaign_resumes_exactly(tmp_path) -> None:
    ref = tmp_path / "ref"
    with pytest.MonkeyPatch.context() as mp:
        log = _writes(mp).log
        run(ref)
    assert log.count("save_model") == 2 and log.count("write_latents") == 2
    ref_csv, ref_state = (ref / "evaluations.csv").read_bytes(), _state(ref)
    # the writes before the first retraining are a plain campaign's (`test_bo_resume`)
    for k in range(log.index("save_model") + 1, len(log) + 1):
        out = tmp_path / f"kill{k}"
        with pytest.MonkeyPatch.context() as mp:
            writes = _writes(mp, kill_at=k)
            with pytest.raises(Killed):
                run(out)
            assert writes.log == log[:k]
        run(out)
        where = f"killed at write {k} ({log[k - 1]})"
        assert (out / "evaluations.csv").read_bytes() == ref_csv, where
        assert _state(out) == ref_state, where
        for name in ("models/retrain_2.pt", "models/latents_2.csv", "config.json"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), where
