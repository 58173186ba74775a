"""pipelines/benchmarks/pmo.py: the counting oracle (PMO's accounting), the reading of a
campaign's calls, the table, and the smoke runs of Graph GA and random search."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from molvae.bo import BOConfig
from molvae.chem import qed

ROOT = Path(__file__).resolve().parent.parent
needs_tdc = pytest.mark.skipif(
    importlib.util.find_spec("tdc") is None, reason="PyTDC is not installed (make pmo-install)"
)


@pytest.fixture(scope="module")
def pmo():
    spec = importlib.util.spec_from_file_location("bench_pmo", ROOT / "pipelines/benchmarks/pmo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_oracle_counts_first_calls_of_canonical_molecules(pmo) -> None:
    oracle = pmo.Oracle(qed, budget=3)
    assert oracle.score("OCC") == oracle.score("C(O)C")  # one molecule, two spellings: one call
    assert oracle.score("not a molecule") == 0.0  # invalid: scored 0, free
    assert oracle(["c1ccccc1", "C1=CC=CC=C1", "CCO"]) == [oracle.score("c1ccccc1")] * 2 + [
        oracle.score("CCO")
    ]
    assert [c for c, _ in oracle.calls] == ["CCO", "c1ccccc1"]  # canonical, in call order
    assert oracle.scores == pytest.approx([qed(pmo.parse(c)) for c in ("CCO", "c1ccccc1")])
    oracle.score("CCN")  # the third and last call
    assert oracle.score("NCC") > 0 and len(oracle.calls) == 3  # a repeat is free after the end
    with pytest.raises(pmo.BudgetExhausted):
        oracle.score("CCCC")
    assert len(oracle.calls) == 3 and "CCCC" not in oracle.cache


def test_oracle_scores_a_batch_in_sorted_order_and_stops_when_stalled(pmo) -> None:
    oracle = pmo.Oracle(qed, budget=10, patience=2)
    with pytest.raises(pmo.BudgetExhausted):  # mid-batch: the calls made so far are kept
        pmo.Oracle(qed, budget=1)(["CCO", "CCC"])
    oracle(["CCO", "CCC"])
    assert [c for c, _ in oracle.calls] == ["CCC", "CCO"]  # not mol-ga's (hash) set order
    oracle(["CCO"])  # nothing new: stalled once
    with pytest.raises(pmo.BudgetExhausted, match="no new molecule"):
        oracle([])
    oracle.patience = 100
    oracle(["CCN"])
    assert oracle.stalled == 0


def test_call_scores_read_a_campaign_record_as_pmo_counts(pmo) -> None:
    history = pd.DataFrame({
        "source": ["data", "init", "init", "bo", "bo", "bo", "bo", "bo"],
        "status": ["ok", "ok", "failed", "ok", "duplicate", "invalid", "infeasible", "ok"],
        "score": [0.9, 0.1, math.nan, 0.5, 0.5, math.nan, 0.7, 0.3],
    })  # fmt: skip
    scores = pmo.call_scores(history)
    # init data is free, a duplicate and an invalid string too; failed/infeasible calls count
    assert [scores[0], scores[2], scores[4]] == [0.1, 0.5, 0.3]
    assert math.isnan(scores[1]) and math.isnan(scores[3])  # failed, infeasible: no candidate
    assert len(scores) == 5 and math.isnan(pmo.call_scores(history.iloc[6:7])[0])


def test_table_sums_and_compares(pmo) -> None:
    rows = [{"task": t, "method": m, "seed": s, "budget": 10000, "top10_auc": v + 0.01 * s}
            for t, m, v in (("qed", "graph_ga", 0.9), ("qed", "molvae", 0.92),
                            ("median1", "graph_ga", 0.3), ("median1", "molvae", 0.2))
            for s in (0, 1)]  # fmt: skip
    text = pmo.table(pd.DataFrame(rows), ["qed", "median1"], ["graph_ga", "molvae"], True)
    assert "| qed | 0.905 ± 0.007 | 0.925 ± 0.007 | 0.941 |" in text  # REINVENT's 0.941 beside
    assert "| sum | 1.210 | 1.130 |" in text
    assert "molvae ≥ graph_ga on 1 of 2 tasks" in text
    # PMO's Mol GA has no qed or median1 value; NF-BO's qed (0.941) and median1 (0.340) are above
    assert "molvae > Mol GA (PMO) on 0 of 0 tasks" in text
    assert text.endswith("molvae > NF-BO (PMO) on 0 of 2 tasks")
    assert pmo.PUBLISHED["sitagliptin_mpo"]["Graph GA"] == 0.433
    assert pmo.PUBLISHED["qed"]["Mol GA"] is None


@needs_tdc
def test_graph_ga_smoke_spends_the_budget_and_resumes(tmp_path, pmo, capsys) -> None:
    args = ["--smoke", "--methods", "graph_ga", "--out", str(tmp_path)]
    assert pmo.main(args) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["task"] for r in rows] == list(pmo.SMOKE_TASKS)
    for r in rows:
        assert r["calls"] == r["budget"] == 60 and 0 < r["top10_auc"] <= r["top10_mean"] <= 1
        calls = pd.read_csv(tmp_path / "calls" / "b60" / r["task"] / "graph_ga-seed0.csv")
        assert len(calls) == 60 and calls["canonical"].is_unique
        assert r["top1"] == pytest.approx(calls["score"].max())
    table = capsys.readouterr().out
    assert "| qed |" in table and "| sum |" in table
    assert pmo.main(args) == 0  # finished runs are skipped: no new line, the same table
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().out == table


@needs_tdc
@pytest.mark.slow  # two random-search campaigns with the tiny model
@pytest.mark.skipif(
    "free_pool" not in {f.name for f in fields(BOConfig)},
    reason="BOConfig does not charge the initial pool yet",
)
@pytest.mark.slow
def test_random_smoke_counts_the_pool(tmp_path, pmo, tiny_model) -> None:
    args = ["--smoke", "--methods", "random", "--model", str(tiny_model), "--out", str(tmp_path)]
    assert pmo.main(args) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["task"], r["method"]) for r in rows] == [(t, "random") for t in pmo.SMOKE_TASKS]
    for r in rows:
        hist = pd.read_csv(tmp_path / "campaigns" / "b60" / r["task"] / "random-seed0" /
                           "evaluations.csv")  # fmt: skip
        pool = hist[hist["iteration"] == 0]
        assert len(pool) == 15 and 0 < r["calls"] <= 60  # the pool (60 // 4) is charged


def test_a_failed_call_is_stored_with_its_reason_and_replayed(pmo, tmp_path) -> None:
    from molvae.chem import OracleCache

    def picky(mol):
        if mol.GetNumHeavyAtoms() > 2:
            raise RuntimeError("the docking server refused it")
        return 1.0

    with OracleCache(tmp_path / "o.sqlite") as store:
        oracle = pmo.Oracle(picky, budget=5, store=store, spec="picky", version="1")
        assert oracle(["CCO", "CC"]) == [0.0, 1.0]  # the failure: no candidate, a spent call
        rows = store.export().set_index("smiles")
        assert rows.loc["CCO", "status"] == "failed"
        assert rows.loc["CCO", "reason"] == "RuntimeError: the docking server refused it"
        assert rows.loc["CC", "status"] == "ok" and rows.loc["CC", "reason"] == ""
        again = pmo.Oracle(picky, budget=5, store=store, spec="picky", version="1")
        assert again(["CCO"]) == [0.0] and len(again.calls) == 1  # replayed, counted
