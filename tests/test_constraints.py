"""Campaign constraints (`molvae.chem.constraints`): specs, golden RDKit values, scoring with
an "infeasible" status, and a BO campaign whose best and top molecules satisfy them."""

from __future__ import annotations

import math
import pickle

import bo_fakes as F
import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors

from molvae.bo import BOConfig
from molvae.bo.loop import run_campaign
from molvae.bo.observations import observations
from molvae.bo.report import write_report
from molvae.bo.store import load_campaign
from molvae.chem import parse_constraint, parse_constraints, score_smiles
from molvae.chem.constraints import violated
from molvae.cli import main

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_specs_parse_to_golden_rdkit_values() -> None:
    mol = Chem.MolFromSmiles(ASPIRIN)
    mw = Descriptors.MolWt(mol)  # 180.159
    assert parse_constraint("mw <= 200").violation(mol) == 0.0
    assert parse_constraint("mw>=250").violation(mol) == pytest.approx(250 - mw)
    assert parse_constraint("mw<=150").violation(mol) == pytest.approx(mw - 150)
    assert parse_constraint("hbd<=0").violation(mol) == 1.0  # one carboxylic acid OH
    assert parse_constraint("rings>=2").violation(mol) == 1.0
    assert parse_constraint("rotb <= 3").violation(mol) == 0.0
    assert parse_constraint("nn_bonds<=0").violation(mol) == 0.0
    tetrazoles = Chem.MolFromSmiles("CC(c1nnn(-n2nnnc2N)n1)N")  # 3 + 3 in the rings, 1 linking
    assert parse_constraint("nn_bonds<=3").violation(tetrazoles) == 4.0
    assert parse_constraint("nn_bonds<=0").violation(Chem.MolFromSmiles("CNNC")) == 1.0
    c = parse_constraint(f"similarity:{ASPIRIN} >= 0.99")  # an objective spec with '=' inside
    assert c.name == f"similarity:{ASPIRIN}" and c.violation(mol) == 0.0
    # "sa" is the SA score (1 easy .. 10 hard), not the sa objective's -SA
    assert parse_constraint("sa<=3").violation(mol) == 0.0
    assert parse_constraint("sa>=3").violation(mol) > 0
    assert parse_constraint("filters").violation(mol) == 0.0
    # a PAINS catechol fails MOSES's filters; so does a charged atom
    assert parse_constraint("filters").violation(Chem.MolFromSmiles("Oc1ccccc1O")) == 1.0
    assert parse_constraint("filters").violation(Chem.MolFromSmiles("C[N+](C)(C)C")) == 1.0
    assert [c.spec for c in parse_constraints(["mw<=500", " mw <= 500", "filters"])] == [
        "mw<=500", "filters"]  # fmt: skip
    assert pickle.loads(pickle.dumps(c)).spec == c.spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [("mw < 300", "must read"), ("nope<=3", "neither"), ("mw<=heavy", "not a number"),
     ("<=3", "property name"), ("mw<=inf", "finite"), ("", "non-empty"),
     ("alerts:brenk,foo", "alert catalogs are"), ("alerts:", "alert catalogs are")],
)  # fmt: skip
def test_bad_specs_are_one_clear_sentence(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_constraint(spec)
    assert "\n" not in str(err.value)


def test_alert_catalogs_name_what_they_flag() -> None:
    """RDKit's structural-alert catalogs: golden matches on hand-picked molecules."""
    c = parse_constraint("alerts: Brenk,PAINS")
    assert c.spec == "alerts:brenk,pains" and pickle.loads(pickle.dumps(c)).spec == c.spec
    ibuprofen, peroxide = "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "CCOOCC"
    assert c.violation(Chem.MolFromSmiles(ibuprofen)) == 0.0
    assert c.violation(Chem.MolFromSmiles(peroxide)) == 1.0
    [missed] = violated(Chem.MolFromSmiles(peroxide), [c])
    assert missed.startswith("alerts:brenk,pains (") and "peroxide" in missed
    # a catechol is a PAINS alert; an aldehyde is Brenk's but not PAINS's
    assert parse_constraint("alerts:pains").violation(Chem.MolFromSmiles("Oc1ccccc1O")) == 1.0
    aldehyde = Chem.MolFromSmiles("O=Cc1ccccc1")
    assert parse_constraint("alerts:pains").violation(aldehyde) == 0.0
    assert violated(aldehyde, [parse_constraint("alerts:brenk")]) == ["alerts:brenk (aldehyde)"]
    res = score_smiles([ibuprofen, peroxide], "logp", constraints=["alerts:brenk"])
    assert res.status == ["ok", "infeasible"] and "peroxide" in res.error[1]


def test_scoring_keeps_the_score_of_an_infeasible_molecule() -> None:
    smiles = ["CCO", "Oc1ccccc1O", ASPIRIN, "C1CC", "CCCCCCCCCCCCCCCC"]
    res = score_smiles(smiles, "logp", constraints=["filters", "mw<=200"])
    assert res.status == ["ok", "infeasible", "ok", "invalid", "infeasible"]
    assert np.isfinite(res.scores[[0, 1, 2, 4]]).all() and math.isnan(res.scores[3])
    assert res.error[1] == "filters" and res.error[4].startswith("mw<=200 (+")
    plain = score_smiles(smiles, "logp")
    assert np.allclose(plain.scores[[0, 1, 2, 4]], res.scores[[0, 1, 2, 4]])
    pooled = score_smiles(smiles * 3, "logp", n_jobs=2, constraints=["filters", "mw<=200"])
    assert pooled.status == res.status * 3 and pooled.error == res.error * 3


def test_observations_mark_infeasible_rows_and_their_duplicates() -> None:
    h = pd.DataFrame({
        "status": ["ok", "ok", "infeasible", "duplicate", "duplicate", "invalid"],
        "canonical": ["A", "B", "C", "C", "A", ""],
        "score": [1.0, 3.0, 9.0, 9.0, 1.0, np.nan],
        "z0": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    })  # fmt: skip
    x, y, feasible = observations(h, 1)
    assert x[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert y.tolist() == [1.0, 3.0, 9.0, 9.0, 1.0]  # the objective's true scores
    assert feasible.tolist() == [True, True, False, False, True]


@pytest.mark.slow
def test_acquisition_weighs_the_objective_by_feasibility() -> None:
    """y rises with z0 but z0 > 0.5 misses the constraint: each acquisition's proposal sits at
    the boundary of the feasible half (the median over four data sets: a regression GP on
    feasibility labels is unsure far from the data, and qLogEI now and then bets on a corner),
    while without the feasibility GP it goes to z0 = 1."""
    from molvae.bo.acquisition import propose_batch

    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    data = []
    for seed in range(4):
        x = torch.rand(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        data.append((x, x[:, 0] * 10.0, x[:, 0] <= 0.5))
    for acq in ("qlogei", "qucb", "ts"):
        cfg = BOConfig(surrogate="latent",
                       acquisition=acq, num_restarts=4, raw_samples=128, mc_samples=128,
                       ts_candidates=500)  # fmt: skip
        kept = [float(propose_batch(cfg, x, y, bounds, 1, seed=1, feasible=f).z[0, 0])
                for x, y, f in data]  # fmt: skip
        assert 0.4 < float(np.median(kept)) < 0.6, (acq, kept)
        free = propose_batch(cfg, *data[0][:2], bounds, 1, seed=1)
        assert float(free.z[0, 0]) > 0.9, (acq, free.z)


class _AtMostSixCarbons(F.Objective):
    """The fakes' objective (more carbons score higher), infeasible above six carbons."""

    def __call__(self, smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        scores, status = super().__call__(smiles)
        carbons = [sum(a.GetSymbol() == "C" for a in Chem.MolFromSmiles(s).GetAtoms())
                   if st == "ok" else 0 for s, st in zip(smiles, status, strict=True)]  # fmt: skip
        return scores, [
            "infeasible" if n > 6 else st for n, st in zip(carbons, status, strict=True)
        ]


@pytest.mark.slow
def test_campaign_reports_only_feasible_molecules_and_counts_misses(tmp_path) -> None:
    torch.set_num_threads(1)
    cfg = BOConfig(surrogate="latent",
                   budget=24, batch_size=6, max_iterations=40, n_init=8, init_pool=20,
                   init_top=3, free_pool=True, num_restarts=2, raw_samples=16, mc_samples=32,
                   acq_maxiter=10, n_decode_attempts=3, max_gp_points=40, seed=1)  # fmt: skip
    out = tmp_path / "camp"
    run_campaign(cfg, F.decode, F.encode, _AtMostSixCarbons(), F.DATA, out,
                 canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    res = load_campaign(out)
    h = res.history
    new = h[h["iteration"] > 0]
    infeasible = h[h["status"] == "infeasible"]
    assert len(infeasible) and np.isfinite(infeasible["score"]).all()
    assert new["status"].isin(["ok", "infeasible"]).sum() == cfg.budget  # both were scored
    ok = h[h["status"] == "ok"]
    assert res.best_score == ok["score"].max() < infeasible["score"].max()
    assert res.best_smiles in set(ok["canonical"]) and set(res.top["canonical"]) <= set(
        ok["canonical"]
    )
    write_report(out)
    summary = (out / "report" / "summary.md").read_text()
    assert "| infeasible |" in summary and "Oracle calls spent: 24 of 24" in summary


def test_cli_score_marks_what_misses_a_constraint(tmp_path, capsys) -> None:
    src = tmp_path / "in.smi"
    src.write_text("\n".join(["CCO", "Oc1ccccc1O", "C1CC"]) + "\n")
    out = tmp_path / "out.csv"
    assert main(["score", str(src), "-O", "qed", "-C", "filters", "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert df["status"].tolist() == ["ok", "infeasible", "invalid"]
    assert df["missed"].tolist() == ["", "filters", ""] and df["score"][1] != ""
    capsys.readouterr()
    assert main(["score", str(src), "-C", "mw<300"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molvae score: error:") and "\n" not in err


def test_initial_design_is_feasible_and_filled_with_misses_only_when_short() -> None:
    from molvae.bo.design import _init_rows

    pool = pd.DataFrame({
        "smiles": list("ABCDEFGH"), "canonical": list("ABCDEFGH"),
        "score": [5.0, 4.0, 3.0, 9.0, 8.0, 7.0, 6.0, np.nan],
        "status": ["ok", "ok", "ok", "infeasible", "infeasible", "infeasible", "infeasible",
                   "invalid"],
        "z0": np.arange(8.0),
    })  # fmt: skip
    cfg = BOConfig(surrogate="latent", n_init=5, init_top=2, free_pool=True)
    rows = _init_rows(pool, cfg, 1)
    assert [r["canonical"] for r in rows[:3]] == ["A", "B", "C"]  # every feasible one first
    assert {r["canonical"] for r in rows[3:]} <= set("DEFG") and len(rows) == 5
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["infeasible"] * 2
    rows = _init_rows(pool, BOConfig(surrogate="latent", n_init=2, init_top=1, free_pool=True), 1)
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["canonical"] == "A"


def test_nothing_feasible_is_said_plainly(tiny_campaign, tmp_path, capsys) -> None:
    """With a constraint no molecule meets, the campaign runs and the CLI says that nothing
    scored ok instead of 'best nan: None'."""
    out = tmp_path / "none"
    assert main([*tiny_campaign.args(out), "-C", "mw<=1"]) == 0
    text = capsys.readouterr().out
    assert "best: none (no molecule scored ok; statuses {'infeasible'" in text, text
    assert (load_campaign(out).history["status"] != "ok").all()


def test_an_ascent_starts_from_feasible_molecules_first() -> None:
    from molvae.bo.gradient import _starts

    h = pd.DataFrame({"iteration": [0, 0, 0, 0, 1], "canonical": list("ABCDE"),
                      "status": ["infeasible", "ok", "infeasible", "invalid", "ok"],
                      "score": [9.0, 1.0, 5.0, np.nan, 20.0],
                      "z0": [0.0, 1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    assert _starts(h, 2, 1)[:, 0].tolist() == [1.0, 0.0]  # B (ok), then the best infeasible A
    assert _starts(h.assign(status="infeasible"), 1, 1)[:, 0].tolist() == [0.0]


def test_infeasible_calls_spend_the_pmo_budget_without_adding_candidates() -> None:
    from molvae.bo.metrics import campaign_metrics, top_k_auc

    h = pd.DataFrame({"iteration": [0, 1, 1, 1, 1], "status": ["ok", "infeasible", "ok",
                      "infeasible", "ok"], "score": [50.0, 99.0, 2.0, 98.0, 4.0]})  # fmt: skip
    m = campaign_metrics(h, budget=4, k=2, free_pool=True)  # proposals only
    assert m["best"] == 4.0 and m["top2_mean"] == 3.0 and m["scored"] == 4
    assert m["top2_auc"] == pytest.approx(top_k_auc([np.nan, 2.0, np.nan, 4.0], 2, 4))
    # logged every call, the running top-2 means are 0 (nothing feasible yet), 2, 2, 3
    by_call = top_k_auc([np.nan, 2.0, np.nan, 4.0], 2, 4, freq_log=1)
    assert by_call == pytest.approx((0 / 2 + (0 + 2) / 2 + (2 + 2) / 2 + (2 + 3) / 2) / 4)


def test_a_constraint_that_cannot_be_computed_is_missed() -> None:
    from molvae.chem.constraints import Constraint, violated

    mol = Chem.MolFromSmiles("CCO")
    broken = Constraint("x<=1", "x", "<=", 1.0, lambda m: 1 / 0)
    nan = Constraint("y>=0", "y", ">=", 0.0, lambda m: float("nan"))
    assert broken.violation(mol) == math.inf and nan.violation(mol) == math.inf
    assert violated(mol, [broken, nan, parse_constraint("mw<=100")]) == [
        "x<=1 (+inf)",
        "y>=0 (-inf)",
    ]


def test_score_smiles_takes_constraint_objects_as_given() -> None:
    from molvae.chem.constraints import Constraint

    few_atoms = Constraint("atoms<=3", "atoms", "<=", 3.0, lambda m: m.GetNumAtoms())
    res = score_smiles(["CCO", "CCCCO"], "qed", constraints=[few_atoms])
    assert res.status == ["ok", "infeasible"] and res.error[1] == "atoms<=3 (+2)"
