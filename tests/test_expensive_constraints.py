"""Expensive constraints (``-C "dock:DRD2>=9"``): checked only in the oracle call of a molecule
chosen to be scored, never on a campaign's candidates or its init data, and learnt by the
surrogates from the "infeasible" statuses (`molvae.bo.feasibility`)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from molvae.bo.feasibility import hidden_infeasible
from molvae.chem import docking
from molvae.chem.constraints import cheap_constraints, constraint_slacks, parse_constraints
from molvae.cli import main

needs_dockstring = pytest.mark.skipif(
    importlib.util.find_spec("dockstring") is None, reason="dockstring is not installed"
)


def test_hidden_infeasible_are_the_ones_the_cheap_checks_pass() -> None:
    history = pd.DataFrame({
        "canonical": ["CCO", "c1ccccc1", "CCCCCCCCCCCCCCCCCCCC", "CCN", ""],
        "status": ["ok", "infeasible", "infeasible", "infeasible", "invalid"],
    })  # fmt: skip
    cheap = parse_constraints(["mw<=200"])

    def slack_fn(smiles):
        return constraint_slacks(smiles, cheap)

    # the long alkane misses mw<=200, which the candidate filter sees; the others missed
    # something only an oracle call checks
    assert hidden_infeasible(history, slack_fn) == {"c1ccccc1", "CCN"}
    assert hidden_infeasible(history, None) == {"c1ccccc1", "CCCCCCCCCCCCCCCCCCCC", "CCN"}
    assert hidden_infeasible(history.iloc[:0], slack_fn) == set()


@needs_dockstring
def test_docking_constraints_are_expensive_and_left_to_the_oracle_call() -> None:
    parsed = parse_constraints(["mw<=500", "dock:DRD2>=9", "dockstring:F2>=-8"])
    assert [c.expensive for c in parsed] == [False, True, True]
    assert [c.spec for c in cheap_constraints(parsed)] == ["mw<=500"]


@needs_dockstring
def test_campaign_docks_only_the_molecules_it_scores(tiny_campaign, tmp_path, monkeypatch,
                                                     capsys) -> None:  # fmt: skip
    docked: list[str] = []

    def fake_dock(smiles, target, timeout, seed, num_cpus):  # Vina in kcal/mol, made up
        docked.append(smiles)
        return -8.0 - 0.01 * len(smiles)

    monkeypatch.setattr(docking, "memo_dock", fake_dock)
    out = tmp_path / "constrained"
    args = [*tiny_campaign.args(out), "-C", "dock:DRD2>=8.3", "-C", "mw<=400"]
    assert main(args) == 0
    assert "oracle calls: 8 of 8" in capsys.readouterr().out
    h = pd.read_csv(out / "evaluations.csv")
    scored = h[h["status"].isin(["ok", "infeasible", "failed"])]
    # one docking per oracle call (the constraint is checked with the objective), none on the
    # hundreds of candidates the fingerprint GP ranked
    assert len(docked) == len(scored) == 8
    expect = np.where(8.0 + 0.01 * scored["canonical"].str.len() >= 8.3, "ok", "infeasible")
    mw_ok = constraint_slacks(scored["canonical"].tolist(), parse_constraints(["mw<=400"]))
    assert (scored["status"] == np.where(mw_ok[:, 0] > 0, "infeasible", expect)).all()
