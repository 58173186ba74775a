"""pipelines/benchmarks/dockstring_benchmark.py: the random-ZINC baseline's order and its smoke
run (QED stands in for docking)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_dockstring", ROOT / "pipelines/benchmarks/dockstring_benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
    sys.modules.pop("bench_pmo", None)


def test_random_zinc_order_starts_with_graph_gas_population(bench) -> None:
    zinc = bench.pmo._zinc()
    order = bench.zinc_order(seed=3, head=100)
    assert order[:100] == bench.pmo.initial_population(100, 3)  # shared first calls
    assert sorted(order) == sorted(zinc)  # every molecule once: still a random order of all
    assert order[100:300] != bench.zinc_order(seed=4, head=100)[100:300]


def test_random_zinc_smoke_spends_the_budget_and_resumes(tmp_path, bench, capsys) -> None:
    args = ["--smoke", "--methods", "random_zinc", "--out", str(tmp_path)]
    assert bench.main(args) == 0
    (row,) = [json.loads(ln) for ln in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert row["method"] == "random_zinc" and row["calls"] == row["budget"] == 60
    assert row["settings"]["graph_ga_head"] == 15
    calls = pd.read_csv(tmp_path / "calls" / "b60" / "qed" / "random_zinc-seed0.csv")
    assert calls["canonical"].tolist()[:15] == bench.pmo.initial_population(15, 0)
    assert row["best"] == pytest.approx(calls["score"].max())
    table = capsys.readouterr().out
    assert "| random_zinc | 1 |" in table
    assert bench.main(args) == 0  # finished: skipped, nothing appended
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1
