"""Smoke runs of pipelines/benchmarks/ (no MOSES download: ``--no-peer``), and the BO scaling."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from molvae.chem import canonical, is_valid
from molvae.model import LatentCodec, MolVAE, fast_bf16

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "pipelines" / "benchmarks"


@pytest.fixture
def load(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # as when run as a script: siblings importable

    def _load(name: str, folder: Path = BENCH):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return _load


def test_bo_scaling_smoke_caps_the_gp_and_adds_one_batch(tmp_path, load) -> None:
    assert load("bo_scaling").main(["--smoke", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    assert df["points"].tolist() == [200, 500]
    assert (df["gp_points"] == 100).all()  # max_gp_points, whatever the history size
    assert (df["source"] == "bo").all()  # a real GP proposal, not the random fallback
    assert (tmp_path / "results.md").read_text().startswith("# BO iteration time")
    # the synthetic campaign resumed and recorded exactly one more batch of q=5
    hist = pd.read_csv(tmp_path / "campaign-500" / "evaluations.csv")
    assert len(hist) == 505 and (hist["iteration"] == hist["iteration"].max()).sum() == 5


def test_train_throughput_smoke(tmp_path, load) -> None:
    args = ["--smoke", "--no-peer", "--threads", "1", "--out", str(tmp_path)]
    assert load("train_throughput").main(args) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    # fp32 always; bf16 autocast too where the CPU runs it natively
    precisions = ["fp32", "bf16 autocast"] if fast_bf16(torch.device("cpu")) else ["fp32"]
    assert df["model"].tolist() == ["molvae"] * len(precisions)
    assert df["precision"].tolist() == precisions
    assert (df["molecules"] == 32).all() and (df["mol_per_s"] > 0).all()


def test_sample_throughput_smoke(tmp_path, load) -> None:
    args = ["--smoke", "--no-peer", "--threads", "1", "--out", str(tmp_path)]
    assert load("sample_throughput").main(args) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    n = 2 if fast_bf16(torch.device("cpu")) else 1
    assert df["strategy"].tolist() == ["greedy"] * n + ["sample"] * n
    assert (df["molecules"] == 16).all() and (df["mean_steps"] <= 100).all()
    grammar = pd.read_csv(tmp_path / "grammar.csv")
    rows = ["raw", "grammar", "grammar-every-row"]
    assert grammar["decoding"].tolist() == rows * 2
    assert (grammar["molecules"] == 16).all() and grammar["mol_per_s"].gt(0).all()


@pytest.mark.slow
def test_grammar_decoding_smoke_counts_the_strings_it_decoded(tmp_path, load, monkeypatch) -> None:
    """The table against a recount of the strings the benchmark decoded (seen through a spy on
    the codec), and the grammar's promise: a constrained row that ends with eos is valid.

    Nothing here compares raw with constrained validity: both are counts of sampled strings,
    which bf16 decoding on another CPU can move."""
    calls: list[dict] = []
    codec_decode, model_decode = LatentCodec.decode, MolVAE.decode

    def spy_codec(self, z, strategy="greedy", *args, **kwargs):
        calls.append({"strategy": strategy, "grammar": self.grammar, "ids": []})
        calls[-1]["strings"] = codec_decode(self, z, strategy, *args, **kwargs)
        calls[-1]["eos"] = self.vocab.eos_id
        return calls[-1]["strings"]

    def spy_model(self, *args, **kwargs):
        ids = model_decode(self, *args, **kwargs)
        calls[-1]["ids"].extend(ids.cpu().tolist())
        return ids

    monkeypatch.setattr(LatentCodec, "decode", spy_codec)
    monkeypatch.setattr(MolVAE, "decode", spy_model)
    assert load("grammar_decoding").main(["--smoke", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "results.csv").set_index(["strategy", "decoding"])
    assert len(calls) == len(df) == 6
    for call in calls:
        strings, n, g = call["strings"], len(call["strings"]), call["grammar"]
        decoding = "raw" if g is None else "raw-first" if g.raw_first else "grammar"
        row = df.loc[(call["strategy"], decoding)]
        assert n == 200 and row["molecules"] == n
        valid = [s for s in strings if is_valid(s)]
        assert row["valid"] == pytest.approx(len(valid) / n)
        assert row["unique_valid"] == pytest.approx(
            len(set(map(canonical, valid))) / max(len(valid), 1)
        )
        assert row["mean_length"] == pytest.approx(sum(map(len, strings)) / n)
        if g is None:
            assert pd.isna(row["gave_up"]) and len(call["ids"]) == n
            continue
        assert row["gave_up"] == n - len(valid)
        if g.raw_first:  # raw draws and the grammar's rows: several model calls
            continue
        assert len(call["ids"]) == n
        ended = [call["eos"] in ids for ids in call["ids"]]
        assert all(is_valid(s) for s, e in zip(strings, ended, strict=True) if e)
        # so every invalid row is one that never ended (given up, or cut at max_len)
        assert n - len(valid) <= n - sum(ended)


@pytest.mark.slow  # a real `molvae optimize` in a subprocess: imports and the default pool
def test_demo_time_smoke(tmp_path, load, smoke_model_run) -> None:
    model = str(smoke_model_run / "phase2" / "best.pt")
    args = ["--smoke", "--model", model, "--threads", "1", "--out", str(tmp_path)]
    assert load("demo_time").main(args) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    assert df["iterations"][0] == 1 and df["proposals"][0] == 2 and bool(df["report"][0])


def test_moses_peer_vocab_round_trip(load) -> None:
    peer = load("_moses_peer")
    vocab = peer.CharVocab(["CCO", "c1ccccc1Cl"])
    ids = vocab.string2ids("CCl", add_bos=True, add_eos=True)
    assert ids[0] == vocab.bos and ids[-1] == vocab.eos and vocab.ids2string(ids) == "CCl"
    assert vocab.string2ids("N") == [vocab.unk] and vocab.vectors.shape == (len(vocab),) * 2


def test_moses_peer_loads_patched_when_the_wheel_is_cached(load) -> None:
    """Runs only where the wheel is already cached (tests never download)."""
    from molvae.data import MOSES_WHEEL_FILE, cache_dir

    peer = load("_moses_peer")
    cache = cache_dir() / "peers"
    if not (cache / MOSES_WHEEL_FILE).exists():
        pytest.skip("molsets wheel not cached; run a benchmark without --no-peer first")
    moses = peer.load_moses_vae(cache)
    assert "torch.uint8" not in (moses.dir / "moses_vae" / "model.py").read_text()
    cfg = moses.config
    assert (cfg.q_d_h, cfg.d_d_h, cfg.d_n_layers, cfg.d_z, cfg.q_bidir) == (256, 512, 3, 128, False)
    cfg.q_d_h, cfg.d_d_h, cfg.d_z = 8, 8, 4
    torch.manual_seed(0)
    model = moses.VAE(peer.CharVocab(["CCO", "CCN"]), cfg).eval()
    out = model.sample(3, max_len=10)  # the patched bool mask: no uint8 indexing error
    assert len(out) == 3 and all(isinstance(s, str) for s in out)


@pytest.mark.slow  # two small campaigns with the tiny model
def test_constrained_bo_smoke_judges_both_campaigns_alike(tmp_path, load, tiny_model) -> None:
    args = ["--smoke", "--model", str(tiny_model), "--out", str(tmp_path), "-C", "mw<=250"]
    assert load("constrained_bo").main(args) == 0
    df = pd.read_csv(tmp_path / "results.csv")
    assert df["method"].tolist() == ["free", "binary", "slack"]
    assert (df["feasible"] <= df["scored"]).all() and (df["scored"] > 0).all()
    for method, model in (("binary", "binary"), ("slack", "slack")):
        config = json.loads((tmp_path / f"{method}-seed0" / "config.json").read_text())
        assert config["metadata"]["run"]["constraints"] == ["mw<=250"]
        assert config["config"]["constraint_model"] == model
    assert "mw<=250" in (tmp_path / "results.md").read_text()


@pytest.mark.slow  # a two-objective campaign, random search and Graph GA at 40 calls each
def test_multi_objective_smoke_counts_calls_alike(tmp_path, load, tiny_model) -> None:
    from molvae.bo.pareto import hypervolume, pareto_mask

    args = ["--smoke", "--model", str(tiny_model), "--out", str(tmp_path)]
    assert load("multi_objective").main(args) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["graph_ga", "molvae", "random"]
    for r in rows:  # every method spent the same calls; its front is non-dominated
        assert r["calls"] == 40 and r["pareto_size"] == len(r["pareto"]) >= 1
        assert 0.0 <= r["hv_at"]["40"] == r["hypervolume"] <= 1.0
    ga = next(r for r in rows if r["method"] == "graph_ga")
    mod = load("multi_objective")
    fns = mod.Desirabilities(mod.TASKS["qed_celecoxib"]).fns
    y = [[fn(Chem.MolFromSmiles(s)) for fn in fns] for s in ga["pareto"]]
    assert pareto_mask(np.array(y)).all()
    assert hypervolume(np.array(y), [0.0, 0.0]) == pytest.approx(ga["hypervolume"])
    assert "HV @ 40" in (tmp_path / "results.md").read_text()


@pytest.mark.slow  # a small fine-tune of the default model, then sampling and bounds
def test_conditional_smoke_runs_every_part_once(tmp_path, load) -> None:
    mod = load("conditional")
    assert mod.r2(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 1.0
    assert mod.r2(np.full(3, 2.0), np.array([1.0, 2.0, 3.0])) == 0.0
    assert mod.main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["part"] for r in rows) == ["generation", "likelihood", "prediction"]
    pred = next(r for r in rows if r["part"] == "prediction")
    assert set(pred["r2"]) == {"molvae", "ridge_fp", "rf_fp"} and pred["final_probe"]
    assert set(pred["r2"]["molvae"]) == {"logp", "qed", "sa_score", "mw"}
    run = json.loads((tmp_path / "runs" / "labels-0.5" / "run.json").read_text())
    assert pred["n_labelled"] == run["condition"]["labelled_train"][0] > 0
    gen = next(r for r in rows if r["part"] == "generation")
    assert gen["n"] == 8 and 0 <= gen["within"] <= 1 and gen["valid"] > 0
    lik = next(r for r in rows if r["part"] == "likelihood")
    assert lik["k"] == 4 and lik["iwae"] >= lik["elbo"]
    assert mod.main(["--smoke", "--out", str(tmp_path)]) == 0  # finished units are skipped
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    assert "R² of logp" in (tmp_path / "results.md").read_text()
    # the probe part refits q(y|x), here with a kernel part, on the finished run's encoder
    assert mod.main(["probe", "--smoke", "--y-kernel", "16", "--out", str(tmp_path)]) == 0
    probe = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert probe["part"] == "probe" and probe["y_kernel"] == 16
    assert probe["n_labelled"] == pred["n_labelled"] and set(probe["r2"]) == set(
        pred["r2"]["molvae"]
    )
    assert "kernel 16" in (tmp_path / "results.md").read_text()


def test_known_part_cv_scores_the_composite_gp_on_a_cache(tmp_path, load, monkeypatch, capsys):
    # an objective whose known part is most of it: the composite GP must predict it better
    (tmp_path / "kp_objective.py").write_text(
        "def rings(mol):\n    return 2.0 * mol.GetRingInfo().NumRings()\n"
        "def score(mol):\n    return 0.1 * mol.GetNumHeavyAtoms() + rings(mol)\n"
        "score.known_part = rings\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from molvae.chem import OracleCache, score_smiles
    from molvae.data import read_smiles

    data = read_smiles("zinc-test")[:60]
    with OracleCache(tmp_path / "oracle.sqlite") as cache:
        res = score_smiles(data, "kp_objective:score", cache=cache)
    assert sum(s == "ok" for s in res.status) >= 40
    cv = load("known_part_cv")
    argv = ["--cache", str(tmp_path / "oracle.sqlite"), "--objective", "kp_objective:score",
            "--top", "5"]  # fmt: skip
    assert cv.main(argv) == 0
    out = capsys.readouterr().out
    cells = [line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("| ")]
    spearman = {(c[0], c[1]): float(c[2]) for c in cells[1:]}  # past the header row
    assert len(spearman) == 4
    assert spearman["counts", "composite"] > spearman["counts", "direct"]
    with pytest.raises(SystemExit):
        cv.main(["--cache", str(tmp_path / "oracle.sqlite"), "--objective", "qed"])
