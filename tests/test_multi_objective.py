"""Several objectives at once: the Pareto set and hypervolume (`molvae.bo.pareto`), campaigns
that choose batches by qLogNEHVI on the fingerprint and latent surrogates, their record,
exact resume, and what refuses several objectives in one line."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from molvae.bo import BOConfig
from molvae.bo.fingerprint import fingerprints, fit_fingerprint_gp, on_indices, tanimoto_gram
from molvae.bo.loop import random_search, run_campaign
from molvae.bo.pareto import (
    hypervolume,
    hypervolume_trace,
    infer_ref_point,
    pareto_mask,
    pareto_table,
    split_values,
)
from molvae.bo.store import CampaignStore
from molvae.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F
from test_bo_resume import Killed, Writes


def two_objectives(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
    """Carbons against oxygens (per heavy atom): the more of one, the less of the other;
    molecules with N fail, as in `bo_fakes.Objective`."""
    values, status = [], []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None or "N" in s:
            values.append([np.nan, np.nan])
            status.append("invalid" if mol is None else "failed")
            continue
        atoms = [a.GetSymbol() for a in mol.GetAtoms()]
        values.append([atoms.count("C"), atoms.count("O") / len(atoms)])
        status.append("ok")
    return np.array(values, dtype=float), status


CFG = BOConfig(budget=36, batch_size=4, init_pool=12, n_objectives=2, fit_maxiter=10,
               ga_candidates=40, ga_generations=2, seed=0, mc_samples=16)  # fmt: skip


def run(out: Path, cfg: BOConfig = CFG):
    return run_campaign(cfg, F.decode, F.encode, two_objectives, F.DATA, out,
                        canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip


def test_pareto_mask_and_hypervolume_golden_values() -> None:
    y = np.array([[1.0, 2.0], [2.0, 1.0], [0.5, 0.5], [1.0, 2.0], [2.0, 0.5]])
    # (0.5, 0.5) and (2, 0.5) are dominated; the repeat of (1, 2) is not kept twice
    assert pareto_mask(y).tolist() == [True, True, False, False, False]
    # two boxes of 1 x 2 and 2 x 1 overlapping in 1 x 1
    assert hypervolume(y, [0.0, 0.0]) == pytest.approx(3.0)
    assert hypervolume(y, [1.5, 0.0]) == pytest.approx(0.5)
    assert hypervolume(y, [5.0, 5.0]) == 0.0
    three = np.array([[1.0, 1.0, 1.0], [2.0, 0.5, 0.5]])
    assert hypervolume(three, [0.0, 0.0, 0.0]) == pytest.approx(1.0 + 0.25)
    # BoTorch's rule on every point: the worst of each objective less 10% of its range
    assert infer_ref_point(y) == pytest.approx([0.35, 0.35])


def test_split_values_checks_the_shape() -> None:
    assert split_values([1.0, 2.0], 2, 1).shape == (2, 1)
    assert split_values([[1.0, 2.0]], 1, 2).tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match=r"shape \(2,\) for 2 molecules and 3 objectives"):
        split_values([1.0, 2.0], 2, 3)


def test_gram_twin_has_the_fingerprint_gp_posterior() -> None:
    smi = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "c1ccncc1", "CCOC", "CC(C)O", "OCCO"]
    x, y = fingerprints(smi), torch.linspace(-1, 1, 6, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp = fit_fingerprint_gp(x[:6], y, maxiter=20)
    twin = on_indices(gp, tanimoto_gram(x), torch.arange(6), y)
    with torch.no_grad():
        a, b = gp.posterior(x[6:]), twin.posterior(torch.arange(6.0, 9.0).reshape(-1, 1))
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.mvn.covariance_matrix, b.mvn.covariance_matrix)


def test_config_checks_the_objectives() -> None:
    with pytest.raises(ValueError, match="one value per objective"):
        BOConfig(n_objectives=2, ref_point=[0.0])
    with pytest.raises(ValueError, match="cannot run with several objectives"):
        BOConfig(n_objectives=2, retrain_every=1)
    assert BOConfig(n_objectives=2, ref_point=[0, 1]).ref_point == [0.0, 1.0]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mo") / "campaign"
    run(out)
    return out


def test_campaign_records_every_objective_and_its_front(campaign) -> None:
    h = pd.read_csv(campaign / "evaluations.csv")
    state = json.loads((campaign / "state.json").read_text())
    assert {"score_0", "score_1"} <= set(h.columns)
    ok = h[h["status"] == "ok"]
    expect, _ = two_objectives(ok["canonical"].tolist())
    np.testing.assert_allclose(ok[["score_0", "score_1"]].to_numpy(), expect)
    assert (ok["score"] == ok["score_0"]).all()  # `score` repeats the first objective
    assert state["oracle_calls"] == 36  # the pool's 12 calls and the proposals', all counted
    # the reference point is inferred from the initial design and fixed
    y0, _ = two_objectives(h.loc[(h["iteration"] == 0) & (h["status"] == "ok"), "canonical"])
    assert state["ref_point"] == pytest.approx(infer_ref_point(y0))
    front = np.array([p["scores"] for p in state["pareto"]])
    y_ok = ok.drop_duplicates("canonical")[["score_0", "score_1"]].to_numpy()
    assert len(front) == pareto_mask(y_ok).sum() > 1
    assert state["hypervolume"] == pytest.approx(hypervolume(y_ok, state["ref_point"]))
    hv = [r["hypervolume"] for r in state["iterations"]]
    assert hv == sorted(hv) and hv[-1] > 0  # never shrinks: molecules are only added
    assert {r["source"] for r in state["iterations"]} == {"fp-nehvi"}
    assert set(pareto_table(h, ["C", "O"])["canonical"]) == {
        p["canonical"] for p in state["pareto"]
    }
    calls, trace = hypervolume_trace(h, state["ref_point"], free_pool=False)
    assert calls[-1] == 36 and trace[-1] == pytest.approx(state["hypervolume"])
    assert np.all(np.diff(trace) >= 0)


@pytest.mark.parametrize("kill_at", [3, 26])
def test_killed_campaign_resumes_exactly(campaign, tmp_path, kill_at) -> None:
    out = tmp_path / "killed"
    with pytest.MonkeyPatch.context() as mp:
        Writes(mp, kill_at=kill_at)
        with pytest.raises(Killed):
            run(out)
    run(out)
    assert (out / "evaluations.csv").read_bytes() == (campaign / "evaluations.csv").read_bytes()
    ref, got = (json.loads((d / "state.json").read_text()) for d in (campaign, out))
    assert got["pareto"] == ref["pareto"] and got["hypervolume"] == ref["hypervolume"]


def test_latent_surrogate_with_constraints_and_trust_region(tmp_path) -> None:
    cfg = BOConfig(surrogate="latent", budget=24, batch_size=4, init_pool=12, n_objectives=2,
                   ref_point=[0.0, 0.0], fit_maxiter=10, num_restarts=1, raw_samples=16,
                   acq_maxiter=5, mc_samples=8, seed=1)  # fmt: skip

    def slack(smiles: list[str]) -> np.ndarray:  # at most 6 heavy atoms
        return np.array([[Chem.MolFromSmiles(s).GetNumHeavyAtoms() - 6.0] for s in smiles])

    def constrained(smiles):
        values, status = two_objectives(smiles)
        status = ["infeasible" if st == "ok" and slack([s])[0, 0] > 0 else st
                  for s, st in zip(smiles, status, strict=True)]  # fmt: skip
        return values, status

    run_campaign(cfg, F.decode, F.encode, constrained, F.DATA, tmp_path / "c",
                 canonical_fn=F.canonical, progress=False, report=False,
                 slack_fn=slack)  # fmt: skip
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert state["ref_point"] == [0.0, 0.0] and state["oracle_calls"] == 24
    recs = state["iterations"]
    assert all(r["tr_length"] is not None for r in recs)
    assert any(r["source"] == "bo" and not r.get("fallback") for r in recs)
    # the front holds only feasible molecules
    assert all(slack([p["canonical"]])[0, 0] <= 0 for p in state["pareto"])


def test_random_search_and_async_record_the_front(tmp_path) -> None:
    cfg = BOConfig(budget=20, batch_size=4, init_pool=8, n_objectives=2, seed=2)
    res = random_search(cfg, F.decode, F.prior, two_objectives, tmp_path / "r",
                        init_smiles=F.DATA, encode_fn=F.encode, canonical_fn=F.canonical,
                        progress=False, report=True)  # fmt: skip
    state = CampaignStore(res.out_dir).read_state()
    assert state["oracle_calls"] == 20 and state["pareto"] and state["hypervolume"] > 0
    page = (res.out_dir / "report" / "index.html").read_text()
    assert "Pareto front" in page and "Hypervolume" in page
    summary = (res.out_dir / "report" / "summary.md").read_text()
    assert "## Pareto set" in summary and all(p["canonical"] in summary for p in state["pareto"])
    acfg = BOConfig(budget=24, init_pool=8, n_objectives=2, async_workers=3, fit_maxiter=10,
                    ga_candidates=40, ga_generations=2, mc_samples=16, seed=2)  # fmt: skip
    run(tmp_path / "a", acfg)
    h = pd.read_csv(tmp_path / "a" / "evaluations.csv")
    assert (h["status"].isin(["ok", "failed"])).sum() == 24
    assert h.loc[h["status"] == "ok", ["score_0", "score_1"]].notna().all().all()


def test_cli_refuses_what_ranks_by_one_score(tiny_campaign, tmp_path, capsys) -> None:
    base = [a for a in tiny_campaign.args(tmp_path / "x") if a not in ("--objective", "qed")]
    two = ["--objective", "qed", "--objective", "logp"]
    assert main([*base, *two, "--method", "gradient"]) == 2
    assert "--method gradient ascends one property head" in capsys.readouterr().err
    assert main([*base, *two, "--ref-point", "0.1"]) == 2
    assert "one value per objective (2), got 1" in capsys.readouterr().err
    assert main([*base, "--objective", "qed", "--objective", "qed"]) == 2
    assert "different ones" in capsys.readouterr().err
    assert main([*base, *two, "--surrogate", "latent", "--retrain-every", "1"]) == 2
    assert "cannot run with several objectives" in capsys.readouterr().err
    data = tmp_path / "measured.csv"
    data.write_text("smiles,score\nCCO,0.4\n")
    assert main([*base, *two, "--init-data", str(data)]) == 2
    assert "cannot start a campaign with several objectives" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_cli_two_objective_campaign(tiny_campaign, tmp_path, capsys) -> None:
    out = tmp_path / "two"
    base = [a for a in tiny_campaign.args(out) if a not in ("--objective", "qed")]
    assert main([*base, "--objective", "qed", "--objective", "logp"]) == 0
    text = capsys.readouterr().out
    assert "pareto set:" in text and "oracle calls: 8 of 8" in text
    h = pd.read_csv(out / "evaluations.csv")
    assert {"score_0", "score_1"} <= set(h.columns)
    config = json.loads((out / "config.json").read_text())
    assert config["metadata"]["pinned"]["objective"] == ["qed", "logp"]
    # resumed with other objectives: refused, as any other pinned setting
    assert main([*base, "--objective", "qed", "--objective", "sa", "--budget", "10"]) == 2
    assert "other settings" in capsys.readouterr().err
