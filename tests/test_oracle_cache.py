"""The oracle cache (molvae.chem.cache) and score_smiles/CLI on top of it: nothing computed twice,
constraints re-applied on read, several processes on one file, clear errors for a bad file. CPU,
seconds."""

from __future__ import annotations

import io
import math
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molvae import chem
from molvae.chem import CacheRow, Objective, OracleCache, OracleCacheError, score_smiles, scoring
from molvae.cli import main

ROOT = Path(__file__).resolve().parent.parent
ETHANOL = ["CCO", "OCC", "C(O)C", "[CH3][CH2][OH]"]  # one molecule, four spellings
MOLS = ["c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "CCO", "CCN"]


def counting(version: str = "", fail_on: str | None = None) -> tuple[Objective, list[str]]:
    """An objective (heavy atoms) that records the canonical SMILES of each call."""
    calls: list[str] = []

    def heavy_atoms(mol) -> float:
        smiles = Chem.MolToSmiles(mol)
        calls.append(smiles)
        if smiles == fail_on:
            raise RuntimeError("docking server said no")
        return float(mol.GetNumHeavyAtoms())

    return Objective("heavy", "heavy atoms, counted", heavy_atoms, version), calls


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "oracle.sqlite"


def test_second_call_computes_nothing(db) -> None:
    obj, calls = counting()
    first = score_smiles(MOLS, obj, cache=db)
    assert len(calls) == len(MOLS) and not any(first.cached)
    assert (first.seconds > 0).all()
    again = score_smiles(MOLS, obj, cache=db)
    assert len(calls) == len(MOLS)  # no new call
    assert all(again.cached) and (again.seconds == 0).all()
    np.testing.assert_array_equal(again.scores, first.scores)
    assert again.status == first.status == ["ok"] * len(MOLS)


def test_spellings_share_a_row_and_a_call_computes_each_molecule_once(db) -> None:
    obj, calls = counting()
    res = score_smiles(ETHANOL, obj, cache=db)
    assert calls == ["CCO"]  # computed once, on the canonical SMILES
    assert res.cached == [False, True, True, True] and res.status == ["ok"] * 4
    assert res.seconds[0] > 0 and (res.seconds[1:] == 0).all()
    with OracleCache(db) as cache:
        assert list(cache.export()["smiles"]) == ["CCO"]
        assert set(cache.get_many("heavy", "", ["CCO", "OCC"])) == {"CCO"}


def test_another_version_misses(db) -> None:
    v1, calls1 = counting("1")
    v2, calls2 = counting("2")
    score_smiles(MOLS, v1, cache=db)
    score_smiles(MOLS, v2, cache=db)
    score_smiles(MOLS, v1, cache=db)
    assert len(calls1) == len(calls2) == len(MOLS)
    stats = OracleCache(db).stats()
    assert list(stats["version"]) == ["1", "2"] and list(stats["rows"]) == [5, 5]


def test_constraints_are_applied_to_hits_and_not_stored(db) -> None:
    obj, calls = counting()
    score_smiles(MOLS, obj, cache=db)
    res = score_smiles(MOLS, obj, constraints=["mw<=100"], cache=db)
    assert len(calls) == len(MOLS)
    assert res.status == ["ok", "infeasible", "infeasible", "ok", "ok"]
    assert res.error[1].startswith("mw<=100 (+") and res.scores[1] == 13.0
    # the same molecules under constraints first: what is stored is the raw "ok"
    fresh = db.with_name("fresh.sqlite")
    score_smiles(MOLS, obj, constraints=["mw<=100"], cache=fresh)
    assert set(OracleCache(fresh).export()["status"]) == {"ok"}
    assert score_smiles(MOLS, obj, cache=fresh).status == ["ok"] * len(MOLS)


def test_failed_outcomes_are_stored_with_their_reason_and_invalid_ones_are_not(db) -> None:
    obj, calls = counting(fail_on="CCN")
    smiles = ["CCN", "not a smiles", "C1CC", "", "CCO"]
    first = score_smiles(smiles, obj, cache=db)
    assert first.status == ["failed", "invalid", "invalid", "invalid", "ok"]
    again = score_smiles(smiles, obj, cache=db)
    assert calls == ["CCN", "CCO"]
    assert again.status == first.status and again.cached == [True, False, False, False, True]
    assert "docking server said no" in again.error[0] and math.isnan(again.scores[0])
    rows = OracleCache(db).export()
    assert sorted(rows["smiles"]) == ["CCN", "CCO"]
    failed = rows.set_index("smiles").loc["CCN"]
    assert failed["status"] == "failed" and "RuntimeError" in failed["reason"]
    assert pd.isna(failed["score"])  # NULL, not NaN text


def test_put_many_keeps_the_first_row_and_checks_rows(db) -> None:
    with OracleCache(db) as cache:
        assert cache.put_many([CacheRow("o", "", "CCO", 1.0, "ok", "", 2.5)]) == 1
        assert cache.put_many([("o", "", "CCO", 9.0, "ok"), ("o", "", "CCN", 2.0, "ok")]) == 1
        hit = cache.get_many("o", "", ["CCO", "CCN", "CCC"])
        assert hit["CCO"].score == 1.0 and hit["CCO"].seconds == 2.5 and "CCC" not in hit
        with pytest.raises(ValueError, match="'ok' or 'failed'"):
            cache.put_many([CacheRow("o", "", "CCC", 1.0, "infeasible")])
        with pytest.raises(ValueError, match="finite"):
            cache.put_many([CacheRow("o", "", "CCC", math.nan, "ok")])
        stats = cache.stats()
        assert stats.loc[0, "rows"] == 2 and stats.loc[0, "seconds"] == 2.5
        assert pickle.loads(pickle.dumps(cache)).get_many("o", "", ["CCN"])["CCN"].score == 2.0


def test_pool_path_and_a_string_spec(db) -> None:
    res = score_smiles([*MOLS, "bad"], "qed", n_jobs=2, cache=db)
    assert res.status[-1] == "invalid" and not any(res.cached)
    again = score_smiles([*MOLS, "bad"], "qed", n_jobs=2, cache=db)
    np.testing.assert_allclose(again.scores[:-1], res.scores[:-1])
    assert again.cached == [True] * len(MOLS) + [False]


def test_rows_are_stored_as_they_finish(db, monkeypatch) -> None:
    # a campaign killed mid-call keeps what it computed: rows reach the file in batches
    monkeypatch.setattr(scoring, "FLUSH_ROWS", 2)

    def dies_at_caffeine(mol) -> float:
        if mol.GetNumAtoms() == 14:
            raise KeyboardInterrupt  # not an objective failure: nothing recorded for it
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        score_smiles(MOLS, Objective("k", "", dies_at_caffeine), cache=db)
    assert len(OracleCache(db).export()) == 2


def test_an_unwritable_cache_warns_and_returns_the_scores(db, monkeypatch) -> None:
    cache = OracleCache(db)

    def refuse(rows):
        raise OracleCacheError("disk full")

    monkeypatch.setattr(cache, "put_many", refuse)
    with pytest.warns(RuntimeWarning, match="disk full"):
        res = score_smiles(MOLS, "logp", cache=cache)
    assert res.status == ["ok"] * len(MOLS)


def test_threads_share_one_cache_object(db) -> None:
    cache = OracleCache(db)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            cache.put_many([CacheRow("t", "", f"C{'C' * j}", float(j), "ok") for j in range(20)])
            assert len(cache.get_many("t", "", [f"C{'C' * j}" for j in range(20)])) == 20
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    assert not errors and len(OracleCache(db).export()) == 20


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from molvae.chem import CacheRow, OracleCache, score_smiles
    db, me, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    (db.parent / f"ready{me}").touch()
    deadline = time.time() + 120
    while len(list(db.parent.glob("ready*"))) < n and time.time() < deadline:
        time.sleep(0.01)  # start together: the point is to write at the same time
    smiles = [f"C{'C' * (i % 40)}O" for i in range(me * 10, me * 10 + 60)]
    res = score_smiles(smiles, "logp", cache=db)
    assert set(res.status) == {"ok"}, res.status
    with OracleCache(db) as cache:
        for i in range(30):  # many short transactions against the other writers
            rows = [CacheRow("x", "", f"N{'C' * j}", float(me), "ok") for j in range(i, i + 10)]
            cache.put_many(rows)
""")


def test_processes_writing_one_file_keep_one_row_per_key(tmp_path) -> None:
    db, n = tmp_path / "shared.sqlite", 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(i), str(n)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, errs
    rows = OracleCache(db).export()
    assert not rows.duplicated(["objective", "version", "smiles"]).any()
    logp = rows[rows["objective"] == "logp"]
    assert len(logp) == 40  # C..O chains of 1 to 40 carbons, each once
    expected = score_smiles(list(logp["smiles"]), "logp").scores
    np.testing.assert_allclose(logp["score"], expected)
    assert len(rows[rows["objective"] == "x"]) == 39


def test_a_bad_file_is_one_clear_error(tmp_path, smiles_csv) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(OracleCacheError, match="damaged or not an oracle cache"):
        OracleCache(garbage)
    with pytest.raises(OracleCacheError):
        score_smiles(MOLS, "qed", cache=garbage)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE results (x)")
    with pytest.raises(OracleCacheError, match="not a molvae oracle cache"):
        OracleCache(foreign)
    newer = tmp_path / "newer.sqlite"
    OracleCache(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE molvae_oracle_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(OracleCacheError, match="schema 99"):
        OracleCache(newer)
    for argv in (
        ["score", str(smiles_csv), f"--cache={garbage}"],
        ["cache", "stats", "--cache", str(foreign)],
    ):
        assert main(argv) == 2


@pytest.fixture
def smiles_csv(tmp_path) -> Path:
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": [*ETHANOL, *MOLS, "bad("]}).to_csv(path, index=False)
    return path


def test_default_path_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("MOLVAE_ORACLE_CACHE", raising=False)
    assert chem.default_cache_path() == tmp_path / "c" / "oracle.sqlite"
    monkeypatch.setenv("MOLVAE_ORACLE_CACHE", str(tmp_path / "o.sqlite"))
    assert OracleCache().path == tmp_path / "o.sqlite"
    assert OracleCache(tmp_path / "arg.sqlite").path == tmp_path / "arg.sqlite"


def test_cli_score_stats_export(tmp_path, smiles_csv, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MOLVAE_ORACLE_CACHE", str(tmp_path / "default.sqlite"))
    assert main(["cache", "stats"]) == 0
    assert "no oracle cache" in capsys.readouterr().out
    out = tmp_path / "scored.csv"
    assert (
        main(["score", str(smiles_csv), "-O", "qed", "-O", "logp", "--cache", "-o", str(out)]) == 0
    )
    assert "4 reused, 5 computed" in capsys.readouterr().err  # ethanol, five spellings
    assert main(["score", str(smiles_csv), "-O", "qed", "--cache", "-C", "mw<=100"]) == 0
    captured = capsys.readouterr()
    assert "9 reused, 0 computed" in captured.err
    scored = pd.read_csv(io.StringIO(captured.out), keep_default_na=False)
    assert scored["status"].tolist() == ["ok"] * 5 + ["infeasible"] * 2 + ["ok"] * 2 + ["invalid"]
    assert main(["cache", "stats"]) == 0
    stats = capsys.readouterr().out
    assert "qed" in stats and "logp" in stats and "total: 10 rows" in stats
    export = tmp_path / "e.csv"
    assert main(["cache", "export", str(export), "--objective", "qed"]) == 0
    df = pd.read_csv(export)
    assert len(df) == 5 and set(df["objective"]) == {"qed"}
    assert {"smiles", "score", "status", "reason", "seconds", "created", "molvae_version"} <= set(
        df.columns
    )
    assert main(["cache", "export", str(export), "--cache", str(tmp_path / "none.sqlite")]) == 2
    assert main(["score", "--cache", str(smiles_csv)]) == 2
    assert "taken as --cache's PATH" in capsys.readouterr().err


def test_a_backup_holds_every_row_a_live_writer_left_in_its_log(tmp_path, capsys) -> None:
    db = tmp_path / "live.sqlite"
    writer = OracleCache(db)
    obj, _ = counting()
    score_smiles(MOLS, obj, cache=writer)  # the writer stays open: its rows sit in the -wal
    assert (tmp_path / "live.sqlite-wal").stat().st_size > 0
    copied = tmp_path / "plain-copy.sqlite"
    copied.write_bytes(db.read_bytes())  # what copying the file alone gives
    with sqlite3.connect(copied) as con:
        plain = con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert plain < len(MOLS)
    out = tmp_path / "sub" / "backup.sqlite"
    assert main(["cache", "backup", str(out), "--cache", str(db)]) == 0
    assert f"copied {len(MOLS)} rows" in capsys.readouterr().err
    assert not (tmp_path / "sub" / "backup.sqlite-wal").exists()  # one self-contained file
    with OracleCache(out, create=False) as back:
        assert back.export().drop(columns="created").equals(writer.export().drop(columns="created"))
    assert main(["cache", "backup", str(db), "--cache", str(db)]) == 2  # onto itself: refused
    assert "onto itself" in capsys.readouterr().err
    writer.close()


def test_score_result_built_the_old_way_stays_aligned() -> None:
    res = scoring.ScoreResult(scores=np.array([1.0, 2.0]), status=["ok", "ok"], error=["", ""])
    assert res.seconds.tolist() == [0.0, 0.0] and res.cached == [False, False]
    plain = score_smiles(["CCO", "bad"], "logp")
    assert plain.cached == [False, False] and plain.seconds[0] > 0 and plain.seconds[1] == 0


def test_timing_is_measured_around_the_call(db) -> None:
    res = score_smiles(
        ["CCO"], Objective("slow", "", lambda mol: time.sleep(0.05) or 1.0), cache=db
    )
    assert res.seconds[0] >= 0.05
    assert OracleCache(db).export()["seconds"][0] >= 0.05


COUNTED = '''
import os
from pathlib import Path
from rdkit.Chem import QED


def qed_counted(mol):
    """QED, each call leaving a line in $MOLVAE_TEST_CALLS: a test counts the calls."""
    with Path(os.environ["MOLVAE_TEST_CALLS"]).open("a") as fh:
        fh.write("call\\n")
    return QED.qed(mol)
'''


def test_a_campaign_rerun_with_the_cache_calls_the_objective_on_nothing(
    tiny_campaign, tmp_path, monkeypatch
) -> None:
    (tmp_path / "counted_objective.py").write_text(COUNTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("MOLVAE_TEST_CALLS", str(calls))
    db = tmp_path / "oracle.sqlite"

    def campaign(out: Path) -> list[str]:
        args = tiny_campaign.args(out)
        args[args.index("qed")] = "counted_objective:qed_counted"
        assert main([*args, "--cache", str(db)]) == 0
        return pd.read_csv(out / "evaluations.csv")["canonical"].dropna().tolist()

    first = campaign(tmp_path / "a")
    n_first = len(calls.read_text().split())
    assert n_first == 8  # the campaign's budget: every call reached the objective once
    # the same campaign again, in another directory: the same molecules, every one a cache hit
    assert campaign(tmp_path / "b") == first
    assert len(calls.read_text().split()) == n_first
    with OracleCache(db) as cache:
        assert int(cache.stats()["rows"].sum()) == 8
