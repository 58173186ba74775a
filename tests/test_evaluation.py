"""``evaluate`` with fake samplers and reconstructors: every number worked out by hand.

Tanimoto values from the pinned Morgan bits of tests/test_metrics_moses.py: CCO 6 bits, CCC 4,
CCN 6, benzene 3, toluene 11; common bits: CCO-CCC 3, CCO-CCN 3, CCN-CCC 3, toluene-benzene 3,
toluene-CCO 1, toluene-CCN 1, benzene with the others 0. T = common / (a + b - common).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from molvae.evaluation import (
    EvaluateConfig,
    Reconstructor,
    ReferenceData,
    Sampler,
    evaluate,
    reference,
    write_evaluation,
)

torch.set_num_threads(1)

CYCLE = ["CCO", "OCC", "c1ccccc1", "bad", "CCN"]  # valid, canonical: CCO CCO c1ccccc1 CCN
TEST = ["CCO", "CCC", "Cc1ccccc1"]
TRAIN = ["OCC", "CCCC"]
MW = {"CCO": 2 * 12.011 + 6 * 1.008 + 15.999, "c1ccccc1": 6 * 12.011 + 6 * 1.008,
      "CCN": 2 * 12.011 + 7 * 1.008 + 14.007, "CCCC": 4 * 12.011 + 10 * 1.008}  # fmt: skip


def cycle(n: int, seed: int) -> list[str]:
    return [CYCLE[i % len(CYCLE)] for i in range(n)]


def greedy(inputs: list[str]) -> list[str | None]:
    # the first input comes back, the second cannot be encoded, the rest decode to methane
    return [s if i == 0 else None if i == 1 else "C" for i, s in enumerate(inputs)]


def attempts(inputs: list[str], k: int) -> list[list[str]]:
    return [[s] * (k - 1) + ["bad"] for s in inputs]  # the majority is right every time


def run(scaffolds: list[str] | None = None, **cfg) -> object:
    data = ReferenceData(
        test=TEST, test_name="three test molecules", train=TRAIN, train_name="two",
        test_scaffolds=scaffolds, test_scaffolds_name="two scaffold molecules" if scaffolds
        else "not fetched", reconstruction={"test": TEST, "other": ["CCCl", "CCBr"]},
    )  # fmt: skip
    config = EvaluateConfig(**{"n_samples": 10, "n_reconstruct": 5, **cfg})
    samplers = [Sampler("gaussian", "raw", cycle), Sampler("gaussian", "grammar", cycle)]
    return evaluate(samplers, [Reconstructor("raw", greedy, attempts)], data, config)


def test_moses_metrics_by_hand() -> None:
    r = run(scaffolds=["CCO", "CCC"])
    row = r.rows[0]
    m = row.metrics
    assert (row.n_samples, row.n_valid) == (10, 8)
    assert m["valid"] == pytest.approx(0.8)
    assert m["unique@1k"] == m["unique@10k"] == pytest.approx(3 / 8)
    assert m["Novelty"] == pytest.approx(2 / 3)  # ethanol is in TRAIN, benzene and CCN are not
    # best match: CCO itself 1; benzene-toluene 3/11; CCN-CCC 3/7
    assert m["SNN/Test"] == pytest.approx((1 + 1 + 3 / 11 + 3 / 7) / 4)
    # TestSF {CCO, CCC}: CCO 1, benzene 0, CCN 3/7
    assert m["SNN/TestSF"] == pytest.approx((2 + 3 / 7) / 4)
    # no BRICS bond anywhere: fragments are the molecules; gen {CCO 4, benzene 2, CCN 2}
    assert m["Frag/Test"] == pytest.approx(4 / (math.sqrt(3) * math.sqrt(24)))
    assert math.isnan(m["Scaf/Test"])  # no scaffold of two rings on either side
    # rows of the 8 x 8 similarity matrix (CCO, CCO, benzene, CCN, twice): means 7/12 for
    # ethanol, 1/4 benzene, 5/12 CCN (T(CCO, CCN) = 3/9)
    assert m["IntDiv"] == pytest.approx(1 - (4 * 7 / 12 + 2 / 4 + 2 * 5 / 12) / 8)
    p2 = (4 * math.sqrt(19 / 36) + 2 * 0.5 + 2 * math.sqrt(11 / 36)) / 8
    assert m["IntDiv2"] == pytest.approx(1 - p2)
    assert m["Filters"] == 1.0
    assert m["FCD/Test"] > 0 and m["FCD/TestSF"] > 0
    assert r.rows[1].metrics == pytest.approx(m, nan_ok=True)  # the same strings
    mw = (4 * MW["CCO"] + 2 * MW["c1ccccc1"] + 2 * MW["CCN"]) / 8
    assert row.properties["MW"]["mean"] == pytest.approx(mw, abs=1e-3)
    assert row.properties["MW"]["n"] == 8
    assert r.train_properties["MW"]["mean"] == pytest.approx((MW["CCO"] + MW["CCCC"]) / 2, abs=1e-3)
    assert set(row.timing) >= {"sample_s", "rdkit_descriptors_s", "intdiv_s", "fcd_s"}


def test_rows_share_per_molecule_work(monkeypatch) -> None:
    # the grammar row draws the raw row's strings: nothing is described, fingerprinted,
    # matched or run through ChemNet twice, and its metrics are the raw row's
    from molvae.evaluation import chemnet, moses, similarity

    calls: dict[str, list[list[str]]] = {"describe": [], "tanimoto": [], "chemnet": []}

    def counting(name, fn, at):
        def wrapped(*args, **kwargs):
            calls[name].append(list(args[at]))
            return fn(*args, **kwargs)

        return wrapped

    for name, owner, attr, at in (
        ("describe", moses, "describe_all", 0),
        ("tanimoto", similarity, "max_tanimoto", 0),
        ("chemnet", chemnet.ChemNet, "activations", 1),
    ):
        monkeypatch.setattr(owner, attr, counting(name, getattr(owner, attr), at))
    r = run(scaffolds=["CCO", "CCC"])
    samples = ["CCO", "c1ccccc1", "CCN"]  # distinct canonical samples, in order of drawing
    # the references' calls (test, scaffold-test, train molecules) hold no benzene
    assert [c for c in calls["describe"] if "c1ccccc1" in c] == [samples]
    assert [c for c in calls["chemnet"] if "c1ccccc1" in c] == [samples]
    assert [len(c) for c in calls["tanimoto"]] == [3, 3]  # Test and TestSF, raw row only
    assert r.rows[1].metrics == pytest.approx(r.rows[0].metrics, nan_ok=True)


def test_reconstruction_rows() -> None:
    r = run(n_recon_attempts=3)
    test, other = r.reconstruction
    assert (test.dataset, test.n, test.n_encoded) == ("test", 3, 2)
    assert test.greedy == pytest.approx(1 / 3) and test.majority == 1.0
    assert (other.n, other.greedy) == (2, 0.5)
    assert math.isnan(run(n_reconstruct=0).reconstruction[0].greedy)


def test_skips_what_is_not_there() -> None:
    r = run(compute_fcd=False, compute_filters=False)
    m = r.rows[0].metrics
    assert all(math.isnan(m[k]) for k in ("FCD/Test", "SNN/TestSF", "FCD/TestSF", "Filters"))
    assert r.references["test_scaffolds"] == "not fetched"
    bad = EvaluateConfig(n_samples=5)
    data = ReferenceData(test=TEST, test_name="t", train=TRAIN, train_name="t")
    with pytest.raises(ValueError, match="expected 5"):
        evaluate([Sampler("gaussian", "raw", lambda n, s: ["CCO"])], [], data, bad)
    with pytest.raises(ValueError):
        EvaluateConfig(decodings=("beam",))


def test_write_evaluation(tmp_path) -> None:
    r = run(n_recon_attempts=3)
    paths = write_evaluation(r, tmp_path / "out", model_name="tiny")
    assert paths["histograms"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["samples-gaussian-raw"].read_text().splitlines()[:5] == CYCLE
    data = json.loads(paths["metrics_json"].read_text())
    assert data["model"] == "tiny" and data["validity"] == pytest.approx(0.8)
    assert data["rows"][0]["metrics"]["SNN/TestSF"] is None  # NaN is null in JSON
    assert data["config"]["decodings"] == ["raw", "grammar"] and data["config"]["constrained"]
    md = paths["metrics_md"].read_text()
    m = r.rows[0].metrics
    assert (
        f"tiny | N(0, I) | raw | 0.800 | 0.375 | 0.375 | {m['FCD/Test']:.3f} | "
        f"{m['SNN/Test']:.3f} | 0.471 | n/a | {m['IntDiv']:.3f} | {m['IntDiv2']:.3f} | "
        "1.000 | 0.667" in md
    )
    assert "MOSES VAE (published) |  | raw | 0.977 | 1.000 | 0.998 | 0.099 | 0.626" in md
    assert "Skipped: not fetched" in md
    assert "test | 3 | 2 | 33.3% | 100.0%" in md
    assert "JT-VAE | 76.7% | 100%" in md
    assert "ZINC data (published) | 2.46 (1.43) | 3.05 (0.83) | 0.73 (0.14)" in md
    assert "Training data (2 molecules) |" in md


def test_reference_statistics_are_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path))
    monkeypatch.setattr(reference, "CACHE_MIN", 1)
    first = reference.reference_stats("Test", TEST, "t")
    assert len(list((tmp_path / "evaluation").glob("ref-*.npz"))) == 2  # structure and FCD
    train = reference.train_stats(TRAIN, "t", n_properties=2)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached statistic")

    monkeypatch.setattr(reference.moses, "describe_all", boom)
    monkeypatch.setattr(reference.moses, "canonical_all", boom)
    again = reference.reference_stats("Test", TEST, "t")
    assert np.array_equal(again.fingerprints, first.fingerprints)
    assert again.fragments == first.fragments == {"CCO": 1, "CCC": 1, "Cc1ccccc1": 1}
    assert np.allclose(again.fcd_sigma, first.fcd_sigma)
    assert np.array_equal(reference.train_stats(TRAIN, "t", n_properties=2).hashes, train.hashes)
    with pytest.raises(AssertionError):  # other molecules: another key, computed
        reference.reference_stats("Test", [*TEST, "CCN"], "t", fcd=False)
