"""Oracle accounting (PMO's rule): the budget counts every first call of a molecule that reaches
the objective, the initial pool included; duplicates, invalid strings and init data are free.

The fakes of ``bo_fakes`` with an objective that records every molecule it is called on.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.bo import BOConfig
from molvae.bo.accounting import oracle_call_counts, oracle_call_scores, oracle_calls
from molvae.bo.config import resolve_init_pool
from molvae.bo.loop import random_search, run_campaign
from molvae.bo.metrics import campaign_metrics, top_k_auc
from molvae.bo.report import write_report
from molvae.bo.store import CampaignStore, load_campaign
from molvae.io import file_sha256

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)

# Thompson sampling on few candidates: a campaign takes a fraction of a second.
FAST = dict(acquisition="ts", ts_candidates=32, fit_maxiter=10, n_decode_attempts=2,
            max_gp_points=20, max_iterations=20)  # fmt: skip
CFG = BOConfig(
    surrogate="latent", budget=16, batch_size=4, seed=0, **FAST
)  # a charged pool of 16 // 4 = 4


class Recording:
    """The fake objective, recording every molecule it is called on (optionally crashing)."""

    def __init__(self, crash_after: int | None = None):
        self.inner, self.seen = F.Objective(crash_after), []

    def __call__(self, smiles: list[str]):
        out = self.inner(smiles)  # a crash scores nothing
        self.seen.extend(smiles)
        return out


def bo(out: Path, cfg: BOConfig = CFG, objective=None, data=F.DATA, **kw):
    return run_campaign(cfg, F.decode, F.encode, objective or Recording(), data, out,
                        canonical_fn=F.canonical, progress=False, report=False, **kw)  # fmt: skip


def test_init_pool_resolves_once_and_is_checked_against_the_budget():
    assert resolve_init_pool(BOConfig(surrogate="latent", budget=250), False).init_pool == 62
    assert resolve_init_pool(BOConfig(surrogate="latent", budget=1000), False).init_pool == 100
    assert resolve_init_pool(BOConfig(surrogate="latent", budget=3), False).init_pool == 1
    assert resolve_init_pool(BOConfig(surrogate="latent", budget=0), False).init_pool == 0
    assert (
        resolve_init_pool(BOConfig(surrogate="latent", budget=250), True).init_pool == 0
    )  # init data
    assert (
        resolve_init_pool(BOConfig(surrogate="latent", budget=250, free_pool=True), True).init_pool
        == 2000
    )
    assert (
        resolve_init_pool(BOConfig(surrogate="latent", budget=9, init_pool=7), False).init_pool == 7
    )
    # (g) a charged pool larger than the budget is refused in one sentence; a free one is not
    with pytest.raises(ValueError, match="init_pool 11 is more than the budget of 10") as err:
        BOConfig(surrogate="latent", budget=10, init_pool=11)
    assert "\n" not in str(err.value)
    assert BOConfig(surrogate="latent", budget=10, init_pool=2000, free_pool=True).init_pool == 2000


def test_counted_campaign_calls_the_objective_on_exactly_budget_molecules(tmp_path):
    """(a) The pool and the proposals together: ``budget`` distinct molecules, each once."""
    obj = Recording()
    res = bo(tmp_path / "c", objective=obj)
    assert len(obj.seen) == CFG.budget and len(set(obj.seen)) == CFG.budget
    h = res.history
    assert oracle_calls(h, free_pool=False) == CFG.budget
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert state["oracle_calls"] == state["budget"] == CFG.budget
    assert res.stop_reason == (f"budget reached: 16 of 16 oracle calls in {state['iteration']} "
                               "iterations")  # fmt: skip
    stored = json.loads((tmp_path / "c" / "config.json").read_text())["config"]
    assert stored["init_pool"] == 4 and stored["free_pool"] is False
    # every pool molecule scored is the initial design, the failed ones (N) too
    init = h[h["iteration"] == 0]
    assert len(init) == 4 and set(init["canonical"]) == set(obj.seen[:4])
    assert oracle_call_counts(h, False) == {"calls": 16, "pool": 4, "proposals": 12,
                                            "free_data": 0, "free_pool": 0}  # fmt: skip
    # the calls in call order: the pool first, a NaN where a call failed
    scores = oracle_call_scores(h, False)
    called = h[h["status"].isin(["ok", "failed"])]
    assert len(scores) == 16 and np.array_equal(
        np.isnan(scores), (called["status"] == "failed").to_numpy()
    )
    summary = write_report(res)["summary"].read_text()
    assert ("Oracle calls spent: 16 of 16 (initial pool 4, proposals 12; free: 0 from "
            "--init-data / 0 free pool)") in summary  # fmt: skip


def test_pool_molecules_that_fail_or_cannot_be_encoded_stay_in_the_design(tmp_path):
    """Paid for, so kept: a failed call (status failed) and a molecule the encoder refuses
    (NaN z, never a GP point), both charged."""

    def encode(smiles):
        z = F.encode(smiles)
        z[[s == "CCO" for s in smiles]] = float("nan")
        return z

    data = ["CCO", "CCN", "CCC", "CCCC"]
    cfg = BOConfig(
        surrogate="latent", budget=6, batch_size=2, init_pool=4, seed=0, max_iterations=5
    )
    res = random_search(cfg, F.decode, F.prior, Recording(), tmp_path / "r", init_smiles=data,
                        encode_fn=encode, canonical_fn=F.canonical, progress=False,
                        report=False)  # fmt: skip
    init = res.history[res.history["iteration"] == 0].set_index("canonical")
    assert sorted(init.index) == sorted(data) and init.loc["CCN", "status"] == "failed"
    assert np.isnan(init.loc["CCO", [f"z{i}" for i in range(F.DIM)]].to_numpy(float)).all()
    assert init.loc["CCO", "status"] == "ok" and oracle_calls(res.history, False) == 6


def test_duplicates_and_invalid_decodes_cost_nothing(tmp_path):
    """(b) Without re-drawing, known molecules and garbage are recorded and cost no call."""
    data = ["CCO", "CCC", "CCCC", "CCCCO"]
    made = iter(range(1000))

    def decode(z, n_attempts, seed):  # a known molecule, garbage, a new molecule, in turn
        out = []
        for _ in range(len(z)):
            k = next(made)
            out.append([["CCO", "C1CC((", "C" * 5 + "O" * (k // 3 + 1)][k % 3]] * n_attempts)
        return out

    obj = Recording()
    cfg = BOConfig(
        surrogate="latent",
        budget=8,
        batch_size=3,
        init_pool=4,
        redraw=False,
        seed=0,
        max_iterations=10,
    )
    res = random_search(cfg, decode, F.prior, obj, tmp_path / "r", init_smiles=data,
                        encode_fn=F.encode, canonical_fn=F.canonical, progress=False,
                        report=False)  # fmt: skip
    h = res.history
    new = h[h["iteration"] > 0]
    assert (new["status"] == "duplicate").sum() == 4 and (new["status"] == "invalid").sum() == 4
    assert len(obj.seen) == len(set(obj.seen)) == 8 == oracle_calls(h, False)
    assert obj.seen.count("CCO") == 1  # scored with the pool, never again
    assert res.stop_reason.startswith("budget reached: 8 of 8 oracle calls")


@pytest.mark.slow
def test_init_data_costs_nothing_is_never_rescored_and_bad_rows_are_reported(tmp_path, caplog):
    """(c) Measured molecules join the design for free; the pool and proposals skip them."""
    path = tmp_path / "measured.csv.gz"
    rows = "SMILES,y,status\nCCO,1.5,\nOCCCCCC,2.5,ok\nC1CC,3.0,\nCCN,n/a,\nCCCCF,0.5,infeasible\n"
    with gzip.open(path, "wt") as fh:
        fh.write(rows)
    pd.read_csv(path).rename(columns={"y": "score"}).to_csv(tmp_path / "m.csv", index=False)
    measured = {"CCO", "CCCCCCO", "CCN", "CCCCF"}
    made = iter(range(1000))

    def decode(z, n_attempts, seed):  # the first proposal is a measured molecule
        return [["CCCCCCO" if next(made) == 0 else F.smiles_of(r)] * n_attempts
                for r in z.double().numpy()]  # fmt: skip

    obj = Recording()
    cfg = BOConfig(
        surrogate="latent", budget=24, batch_size=4, init_pool=20, redraw=False, seed=0, **FAST
    )
    with caplog.at_level(logging.WARNING):
        res = run_campaign(cfg, decode, F.encode, obj, F.DATA, tmp_path / "c",
                           canonical_fn=F.canonical, progress=False, report=False,
                           init_data=tmp_path / "m.csv")  # fmt: skip
    assert "init data: 1 rows with an invalid SMILES" in caplog.text
    h = res.history
    data = h[h["source"] == "data"]
    assert data["canonical"].tolist() == ["CCO", "CCCCCCO", "CCN", "CCCCF"]
    assert data["status"].tolist() == ["ok", "ok", "failed", "infeasible"]
    assert data["index"].tolist() == [0, 1, 2, 3] and (data["iteration"] == 0).all()
    assert not measured & set(obj.seen)  # CCO is in F.DATA: the pool skipped it
    assert len(obj.seen) == len(set(obj.seen)) == cfg.budget == oracle_calls(h, False)
    first = h[(h["iteration"] == 1) & (h["index"] == 0)].iloc[0]
    assert first["status"] == "duplicate" and first["score"] == 2.5
    assert oracle_call_counts(h, False)["free_data"] == 4
    pinned = json.loads((tmp_path / "c" / "config.json").read_text())["metadata"]["pinned"]
    assert pinned["init_data_sha256"] == file_sha256(tmp_path / "m.csv")
    # the directory is bound to its init data, and to having started with it
    other = pd.DataFrame({"smiles": ["CCO"], "score": [9.0]})
    with pytest.raises(ValueError, match="init_data_sha256"):
        run_campaign(cfg, decode, F.encode, obj, F.DATA, tmp_path / "c",
                     canonical_fn=F.canonical, progress=False, report=False,
                     init_data=other)  # fmt: skip
    bo(tmp_path / "plain", dataclasses.replace(CFG, max_iterations=1))
    with pytest.raises(ValueError, match="started without init data"):
        bo(tmp_path / "plain", dataclasses.replace(CFG, max_iterations=2), init_data=other)
    # with init data and no init_pool, the pool is empty: the whole budget goes to proposals
    obj = Recording()
    res = bo(tmp_path / "auto", dataclasses.replace(cfg, init_pool=None, redraw=True),
             objective=obj, init_data=other)  # fmt: skip
    assert res.config.init_pool == 0 and (res.history["source"] == "init").sum() == 0
    assert len(obj.seen) == cfg.budget and "CCO" not in obj.seen
    assert np.isfinite(res.history.loc[res.history["iteration"] > 0, "z0"]).all()


def test_free_pool_keeps_the_old_accounting(tmp_path):
    """(d) Kusner's protocol: the pool is scored free, ``n_init`` of it is the design, the budget
    counts proposals scored ok or infeasible."""
    obj = Recording()
    cfg = BOConfig(surrogate="latent",
                   budget=6, batch_size=3, n_init=8, init_pool=20, init_top=3, free_pool=True,
                   seed=0, **FAST)  # fmt: skip
    res = bo(tmp_path / "f", cfg, objective=obj)
    h = res.history
    new = h[h["iteration"] > 0]
    assert (h["iteration"] == 0).sum() == 8
    assert new["status"].isin(["ok", "infeasible"]).sum() == 6 == oracle_calls(h, True)
    assert len(obj.seen) == 20 + new["status"].isin(["ok", "failed"]).sum()
    counts = res.oracle_counts()
    assert counts["calls"] == 6 and counts["pool"] == 0 and counts["free_pool"] == 20
    state = json.loads((tmp_path / "f" / "state.json").read_text())
    assert state["oracle_calls"] == state["n_scored_new"] == 6
    assert campaign_metrics(h, 6, free_pool=True)["scored"] == 6


def test_a_directory_from_before_free_pool_resumes_with_its_free_pool(tmp_path):
    """(e) config.json without ``free_pool`` (and its pool of 20 > budget) goes on as it began."""
    out = tmp_path / "old"
    old_cfg = BOConfig(surrogate="latent",
                       budget=6, batch_size=3, n_init=8, init_pool=20, init_top=3,
                       free_pool=True, seed=0, **FAST)  # fmt: skip
    bo(out, old_cfg)
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["free_pool"]
    (out / "config.json").write_text(json.dumps(stored))
    assert load_campaign(out).config.free_pool  # read back as it was run, not refused
    obj = Recording()
    # today's defaults: a charged pool of init_pool None; the directory's settings win
    now = dataclasses.replace(old_cfg, free_pool=False, init_pool=None, budget=12)
    res = bo(out, now, objective=obj)
    assert res.config.free_pool and res.config.init_pool == 20
    h = res.history
    assert (h["iteration"] == 0).sum() == 8 and oracle_calls(h, True) == 12
    assert not set(obj.seen) & set(h.loc[h["iteration"] == 0, "canonical"])  # no new pool


@pytest.mark.parametrize("crash_after", [0, 1, 2])
def test_resume_after_a_kill_calls_no_finished_molecule_again(tmp_path, crash_after):
    """(f) The objective crashes after 0 calls (at the pool's), 1 or 2 (in iteration 1 or 2);
    the resumed campaign ends as the uninterrupted one and never calls a molecule whose row
    was recorded."""
    ref = tmp_path / "ref"
    bo(ref)
    out = tmp_path / "k"
    first = Recording(crash_after)
    with pytest.raises(F.Crash):
        bo(out, objective=first)
    done = set(CampaignStore(out).load_history()["canonical"])
    pool = CampaignStore(out).read_pool()
    if pool is not None:
        done |= set(pool.loc[pool["status"] != "unscored", "canonical"])
    assert bool(done) == (crash_after > 0)
    again = Recording()
    bo(out, objective=again)
    assert not done & set(again.seen)
    assert len(first.seen) + len(again.seen) == CFG.budget
    assert (out / "evaluations.csv").read_bytes() == (ref / "evaluations.csv").read_bytes()


def test_a_kill_after_the_pool_is_stored_does_not_score_it_again(tmp_path, monkeypatch):
    append = CampaignStore.append_rows

    def killed(store, rows, dim):
        raise KeyboardInterrupt  # as a kill after pool.csv, before the design's rows

    monkeypatch.setattr(CampaignStore, "append_rows", killed)
    first = Recording()
    with pytest.raises(KeyboardInterrupt):
        bo(tmp_path / "c", objective=first)
    monkeypatch.setattr(CampaignStore, "append_rows", append)
    again = Recording()
    res = bo(tmp_path / "c", objective=again)
    assert len(first.seen) == 4 and not set(first.seen) & set(again.seen)
    assert oracle_calls(res.history, False) == CFG.budget == len(first.seen) + len(again.seen)


def test_top10_auc_counts_the_charged_pool():
    """(h) The AUC runs over every charged call, the pool first; with a free pool, proposals."""
    h = pd.DataFrame({
        "iteration": [0, 0, 0, 1, 1, 1, 2],
        "source": ["data", "init", "init", "bo", "bo", "bo", "bo"],
        "status": ["ok", "ok", "failed", "ok", "duplicate", "infeasible", "ok"],
        "score": [99.0, 7.0, np.nan, 1.0, 7.0, 50.0, 3.0],
    })  # fmt: skip
    counted = campaign_metrics(h, budget=6, k=10)
    assert counted["scored"] == 5 and counted["best"] == 7.0  # init data (99) is not a call
    by_call = top_k_auc([7.0, np.nan, 1.0, np.nan, 3.0], 10, 6)
    assert counted["top10_auc"] == pytest.approx(by_call)
    free = campaign_metrics(h, budget=6, k=10, free_pool=True)
    assert free["scored"] == 3 and free["best"] == 3.0
    assert counted["top10_auc"] > free["top10_auc"]


def test_cli_init_data_and_the_last_line(tmp_path, zinc_small, capsys, caplog):
    """`molvae optimize --init-data`: free rows (an invalid one reported in one line, a
    constraint checked where no status is given), and the oracle calls on the last line."""
    from molvae.cli import main
    from molvae.data import Vocab
    from molvae.model import MolVAE, VAEConfig, save_checkpoint

    vocab = Vocab.build(zinc_small)
    torch.manual_seed(0)
    sizes = {"emb_dim": 8, "enc_hidden": 16, "latent_dim": 4, "dec_hidden": 16, "dec_layers": 1}
    model = save_checkpoint(tmp_path / "m.pt", MolVAE(VAEConfig(len(vocab), max_len=60, **sizes)),
                            vocab.tokens)  # fmt: skip
    pool = tmp_path / "pool.smi"
    pool.write_text("\n".join(zinc_small) + "\n")
    measured = tmp_path / "measured.csv"
    pd.DataFrame({"smiles": [zinc_small[0], "not a molecule", "CCO"],
                  "qed": [0.5, 0.6, 0.1]}).to_csv(measured, index=False)  # fmt: skip
    out = tmp_path / "camp"
    args = ["optimize", "--model", str(model), "--data", str(pool), "--objective", "qed",
            "--budget", "4", "-q", "2", "--iterations", "2", "--device", "cpu", "-C", "mw>=100",
            "--init-data", str(measured), "--init-score-column", "qed", "--no-progress",
            "--out", str(out)]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    assert "1 rows with an invalid SMILES" in caplog.text
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("oracle calls: ") and "(pool 0, proposals " in last, last
    assert last.endswith("; free: 2")
    h = load_campaign(out).history
    data = h[h["source"] == "data"]
    assert data["status"].tolist() == ["ok", "infeasible"]  # CCO: mw 46 < 100
    stored = json.loads((out / "config.json").read_text())
    assert stored["metadata"]["pinned"]["init_data_sha256"] == file_sha256(measured)
    assert stored["metadata"]["pinned"]["init_score_column"] == "qed"
    assert stored["config"]["init_pool"] == 0
