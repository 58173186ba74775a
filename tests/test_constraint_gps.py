"""One GP per constraint on its signed slack (SCBO): golden slacks from RDKit, proposals at a
continuous boundary, and a campaign that fits them only once a molecule missed a constraint."""

from __future__ import annotations

import json
import math

import bo_fakes as F
import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors

from molvae.bo import BOConfig
from molvae.bo.acquisition import propose_batch
from molvae.bo.loop import run_campaign
from molvae.bo.store import load_campaign
from molvae.chem import Constraint, constraint_slacks, parse_constraint, parse_constraints

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_slack_is_signed_in_the_property_units() -> None:
    mol = Chem.MolFromSmiles(ASPIRIN)
    mw = Descriptors.MolWt(mol)  # 180.159
    assert parse_constraint("mw<=200").slack(mol) == pytest.approx(mw - 200)  # holds: < 0
    assert parse_constraint("mw>=200").slack(mol) == pytest.approx(200 - mw)  # misses: > 0
    assert parse_constraint("hbd<=1").slack(mol) == 0.0  # on the bound holds
    assert parse_constraint("filters").slack(mol) == -0.5  # pass/fail: -0.5 holds, +0.5 misses
    assert parse_constraint("filters").slack(Chem.MolFromSmiles("Oc1ccccc1O")) == 0.5
    assert parse_constraint("alerts:brenk").slack(Chem.MolFromSmiles("CCOOCC")) == 0.5
    assert parse_constraint("filters").pass_fail and not parse_constraint("mw<=1").pass_fail
    # a property that cannot be computed for a molecule misses by an unknown amount
    assert Constraint("boom<=1", "boom", "<=", 1.0, lambda m: 1 / 0).slack(mol) == math.inf


def test_constraint_slacks_table() -> None:
    cons = parse_constraints(["mw<=100", "filters"])
    table = constraint_slacks(["CCO", "Oc1ccccc1O", "C1CC", ""], cons)
    mw = Descriptors.MolWt(Chem.MolFromSmiles("CCO"))
    assert table.shape == (4, 2)
    assert table[0].tolist() == pytest.approx([mw - 100, -0.5])
    assert table[1, 1] == 0.5 and np.isnan(table[2:]).all()  # unparsable rows: NaN


def _half_feasible(seed: int) -> tuple[torch.Tensor, ...]:
    """y rises with z0; z0 > 0.5 misses the constraint, by z0 - 0.5."""
    x = torch.rand(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x, x[:, 0] * 10.0, x[:, 0] <= 0.5, (x[:, 0] - 0.5).unsqueeze(-1)


@pytest.mark.slow
@pytest.mark.parametrize("acq", ["qlogei", "qucb", "ts"])
def test_slack_gps_propose_at_the_boundary(acq: str) -> None:
    """Where the binary GP's proposals scatter around the boundary (and qLogEI now and then
    bets on a corner, `test_constraints`), the slack GP, which knows how far each point is from
    it, proposes on it for every data set."""
    torch.set_num_threads(1)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    cfg = BOConfig(surrogate="latent",
                   acquisition=acq, num_restarts=4, raw_samples=128, mc_samples=128,
                   ts_candidates=500)  # fmt: skip
    for seed in range(4):
        x, y, feasible, slack = _half_feasible(seed)
        prop = propose_batch(cfg, x, y, bounds, 1, seed=1, feasible=feasible, slack=slack)
        assert prop.constraint_gps == 1 and prop.fallback is None
        assert abs(float(prop.z[0, 0]) - 0.5) < 0.03, (acq, seed, prop.z)


def test_each_missed_constraint_gets_a_gp() -> None:
    """Two numeric bounds (z0 <= 0.5, z1 >= 0.6) and a pass/fail constraint nothing missed:
    two GPs, and the proposal sits in the feasible corner that is best for y; a property that
    could not be computed (inf) is a miss, not a failed fit."""
    torch.set_num_threads(1)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    x = torch.rand(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = 10 * x[:, 0] - 2 * x[:, 1]
    slack = torch.stack([x[:, 0] - 0.5, 0.6 - x[:, 1], torch.full((100,), -0.5)], -1)
    feasible = (slack <= 0).all(-1)
    slack[3, 0] = math.inf
    feasible[3] = False
    cfg = BOConfig(surrogate="latent", num_restarts=4, raw_samples=128, mc_samples=128)
    prop = propose_batch(cfg, x, y, bounds, 1, seed=1, feasible=feasible, slack=slack)
    assert prop.constraint_gps == 2 and prop.fallback is None
    z0, z1 = prop.z[0].tolist()
    assert 0.42 < z0 < 0.52 and 0.58 < z1 < 0.7, prop.z
    binary = propose_batch(BOConfig(surrogate="latent",
                                    num_restarts=4, raw_samples=128, mc_samples=128,
                                    constraint_model="binary"),
                           x, y, bounds, 1, seed=1, feasible=feasible, slack=slack)  # fmt: skip
    assert binary.constraint_gps == 1


def _carbons(smiles: str) -> int:
    return sum(a.GetSymbol() == "C" for a in Chem.MolFromSmiles(smiles).GetAtoms())


class _AtMostSixCarbons(F.Objective):
    """The fakes' objective (more carbons score higher), infeasible above six carbons."""

    def __call__(self, smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        scores, status = super().__call__(smiles)
        return scores, ["infeasible" if st == "ok" and _carbons(s) > 6 else st
                        for s, st in zip(smiles, status, strict=True)]  # fmt: skip


def _slack(calls: list[int]):
    def fn(smiles: list[str]) -> np.ndarray:
        calls.append(len(smiles))
        return np.array([[_carbons(s) - 6.0] for s in smiles])

    return fn


@pytest.mark.slow
@pytest.mark.parametrize("model", ["slack", "binary"])
def test_campaign_fits_constraint_gps_once_a_molecule_missed(tmp_path, model: str) -> None:
    torch.set_num_threads(1)
    cfg = BOConfig(surrogate="latent",
                   budget=18, batch_size=6, max_iterations=30, n_init=8, init_pool=20,
                   init_top=3, free_pool=True, num_restarts=2, raw_samples=16, mc_samples=32,
                   acq_maxiter=10, n_decode_attempts=3, max_gp_points=40, seed=1,
                   constraint_model=model)  # fmt: skip
    calls: list[int] = []
    out = tmp_path / model
    run_campaign(cfg, F.decode, F.encode, _AtMostSixCarbons(), F.DATA, out,
                 canonical_fn=F.canonical, progress=False, report=False,
                 slack_fn=_slack(calls))  # fmt: skip
    res = load_campaign(out)
    h = res.history
    assert (h["status"] == "infeasible").any()
    assert res.best_smiles is not None and _carbons(res.best_smiles) <= 6
    used = res.iterations.get("constraint_gps", np.zeros(len(res.iterations)))
    assert (used.fillna(0) == 1).any()  # one constraint, one GP
    seen = h.loc[h["status"].isin(["ok", "infeasible", "duplicate"]), "canonical"].nunique()
    if model == "slack":  # each molecule's slack is computed once
        assert calls and sum(calls) <= seen
    else:
        assert not calls


def test_cli_chooses_the_constraint_model() -> None:
    from molvae.cli.parser import build_parser

    parse = build_parser().parse_args
    assert parse(["optimize"]).constraint_model == "slack"
    assert parse(["optimize", "--constraint-model", "binary"]).constraint_model == "binary"
    with pytest.raises(ValueError, match="constraint_model must be one of"):
        BOConfig(surrogate="latent", constraint_model="soft")


@pytest.mark.slow
def test_a_campaign_from_before_slack_gps_resumes_with_the_binary_gp(tmp_path) -> None:
    """Two constraints (at most six carbons, at least six: some molecules miss each): two slack
    GPs; a directory whose config predates ``constraint_model`` goes on with the one binary GP
    it was started with."""
    torch.set_num_threads(1)

    class SixCarbons(F.Objective):
        def __call__(self, smiles: list[str]) -> tuple[np.ndarray, list[str]]:
            scores, status = super().__call__(smiles)
            return scores, ["infeasible" if st == "ok" and _carbons(s) != 6 else st
                            for s, st in zip(smiles, status, strict=True)]  # fmt: skip

    def two(smiles: list[str]) -> np.ndarray:
        return np.array([[_carbons(s) - 6.0, 12.0 - 2.0 * _carbons(s)] for s in smiles])

    def run(iterations: int) -> None:
        cfg = BOConfig(surrogate="latent",
                       budget=60, batch_size=6, max_iterations=iterations, n_init=8,
                       init_pool=20, init_top=3, free_pool=True, num_restarts=2, raw_samples=16,
                       mc_samples=32, acq_maxiter=10, n_decode_attempts=3, max_gp_points=40,
                       seed=1)  # fmt: skip
        run_campaign(cfg, F.decode, F.encode, SixCarbons(), F.DATA, out,
                     canonical_fn=F.canonical, progress=False, report=False,
                     slack_fn=two)  # fmt: skip

    out = tmp_path / "camp"
    run(3)
    config = json.loads((out / "config.json").read_text())
    del config["config"]["constraint_model"]  # as release 11 wrote it
    (out / "config.json").write_text(json.dumps(config))
    run(6)
    gps = load_campaign(out).iterations["constraint_gps"].fillna(0).tolist()
    assert 2 in gps[:3] and set(gps[3:]) <= {0, 1} and 1 in gps[3:], gps
