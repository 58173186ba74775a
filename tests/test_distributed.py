"""Objective calls on a real Dask cluster (a `LocalCluster` of worker processes): the same scores
as local scoring, a worker killed mid-batch costs nothing but time, and clear errors."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from molvae.chem import score_smiles  # noqa: E402
from molvae.chem.distributed import connect  # noqa: E402
from molvae.cli import main  # noqa: E402

SMILES = ["CCO", "c1ccccc1", "not a smiles", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "C1CCCCC1",
          "OCC(O)CO", "Cc1ccccc1", "CC(C)O", "ClCCl", "CCCCCCCC", "c1ccncc1"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    calls = tmp_path_factory.mktemp("calls") / "calls.log"
    os.environ["MOLVAE_TEST_CALLS"] = str(calls)  # the worker processes inherit it
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=":0")  # fmt: skip
    try:
        yield local, calls
    finally:
        local.close()
        os.environ.pop("MOLVAE_TEST_CALLS", None)


def test_cluster_scores_equal_local_scores(cluster) -> None:
    local, _ = cluster
    with connect(local.scheduler_address) as remote:
        assert remote.n_workers() == 2
        on_cluster = score_smiles(SMILES, "qed", executor=remote.executor, constraints=["mw<=100"])
    here = score_smiles(SMILES, "qed", constraints=["mw<=100"])
    assert on_cluster.status == here.status and "invalid" in here.status
    assert "infeasible" in here.status  # aspirin, 180 Da
    np.testing.assert_array_equal(on_cluster.scores, here.scores)


def test_a_worker_killed_mid_batch_loses_no_molecule(cluster) -> None:
    local, calls = cluster
    calls.write_text("")
    valid = [s for s in SMILES if s != "not a smiles"]
    with connect(local.scheduler_address) as remote:
        pids = remote.client.run(os.getpid)
        victim = next(iter(pids.values()))

        def kill_soon() -> None:
            time.sleep(0.8)  # the batch is under way: each call takes 0.3 s
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        res = score_smiles(valid, "dask_objectives:slow_heavy_atoms", executor=remote.executor)
        killer.join()
    assert res.status == ["ok"] * len(valid)  # every molecule scored, once in the result
    here = score_smiles(valid, "dask_objectives:slow_heavy_atoms")
    np.testing.assert_array_equal(res.scores, here.scores)
    seen = calls.read_text().split()
    assert str(victim) in seen  # the killed worker was working when it died
    # the local reference run's calls are in the log too: the cluster's are the rest, at least
    # one per molecule (the killed worker's molecule was called again elsewhere)
    assert len(seen) - len(valid) >= len(valid)


def test_an_unreachable_scheduler_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout=2)


def test_cli_score_on_the_cluster(cluster, tmp_path, capsys) -> None:
    local, _ = cluster
    src = tmp_path / "mols.smi"
    src.write_text("\n".join(SMILES[:4]) + "\n")
    out = tmp_path / "scored.csv"
    main(["score", str(src), "--objective", "qed", "--scheduler", local.scheduler_address,
          "--out", str(out)])  # fmt: skip
    text = out.read_text()
    assert text.count("\n") == 5 and "invalid" in text


def test_async_campaign_on_the_cluster_sizes_itself_to_its_threads(
    cluster, tiny_campaign, tmp_path, capsys
) -> None:
    import json

    import pandas as pd

    local, _ = cluster
    out = tmp_path / "async"
    args = tiny_campaign.args(out)
    args = args[: args.index("--iterations")] + args[args.index("--iterations") + 2 :]
    assert main([*args, "--budget", "10", "--scheduler", local.scheduler_address,
                 "--async"]) == 0  # fmt: skip
    assert "oracle calls: 10 of 10" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["config"]["async_workers"] == 2
    h = pd.read_csv(out / "evaluations.csv")
    scored = h[h["status"].isin(["ok", "infeasible", "failed"])]
    assert len(scored) == 10 and not scored["canonical"].duplicated().any()
