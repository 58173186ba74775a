"""Tests for molvae.metrics: MOSES metrics on tiny lists with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rdkit import DataStructs

from molvae import chem
from molvae.evaluation import metrics

# 8 strings: 6 valid ("CCO" and "OCC" are the same molecule), one invalid, one empty.
GEN = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "CCN", "CC(=O)O", "c1ccccc1"]


def test_validity() -> None:
    assert metrics.validity(GEN) == pytest.approx(6 / 8)
    assert metrics.validity(["CCO"]) == 1.0
    assert metrics.validity(["", "bad"]) == 0.0
    assert math.isnan(metrics.validity([]))


def test_uniqueness() -> None:
    # valid canonical: CCO, CCO, c1ccccc1, CCN, CC(=O)O, c1ccccc1 -> 4 distinct of 6
    assert metrics.uniqueness(GEN) == pytest.approx(4 / 6)
    # first 3 valid: CCO, CCO, c1ccccc1 -> 2 of 3
    assert metrics.uniqueness(GEN, k=3) == pytest.approx(2 / 3)
    with pytest.warns(RuntimeWarning, match="unique@10"):
        assert metrics.uniqueness(GEN, k=10) == pytest.approx(4 / 6)
    assert math.isnan(metrics.uniqueness(["bad"]))


def test_novelty() -> None:
    # distinct valid: {CCO, c1ccccc1, CCN, CC(=O)O}; train holds ethanol (as OCC) and benzene
    assert metrics.novelty(GEN, ["OCC", "C1=CC=CC=C1", "bad"]) == pytest.approx(2 / 4)
    assert metrics.novelty(GEN, []) == 1.0
    # without canonicalizing the training set, "OCC" does not match canonical "CCO"
    assert metrics.novelty(GEN, ["OCC"], canonicalize_train=False) == 1.0
    assert metrics.novelty(GEN, ["CCO"], canonicalize_train=False) == pytest.approx(3 / 4)


def test_reconstruction_accuracy() -> None:
    inputs = ["CCO", "c1ccccc1", "CCN", "CC(=O)O"]
    outputs = ["OCC", "C1=CC=CC=C1", "CC", "C(C(=O"]  # hit, hit (kekulé), wrong, invalid
    assert metrics.reconstruction_accuracy(inputs, outputs) == 0.5
    assert metrics.reconstruction_accuracy(["bad"], ["bad"]) == 0.0  # invalid never matches
    with pytest.raises(ValueError):
        metrics.reconstruction_accuracy(["CCO"], [])


def test_majority_reconstruction_accuracy() -> None:
    inputs = ["CCO", "CCN", "c1ccccc1", "CC"]
    attempts = [
        ["OCC", "CCC", "CCO", "bad"],  # CCO twice: hit
        ["CCC", "CCC", "CCN", ""],  # CCC wins: miss
        ["bad", "", "x"],  # nothing valid: miss
        ["CCC", "CC", "bad", "bad", "bad"],  # tie 1-1, first seen (CCC) wins: miss
    ]
    assert metrics.majority_reconstruction_accuracy(inputs, attempts) == 0.25
    assert metrics.majority_reconstruction_accuracy(["CC"], [["bad", "CC", "bad"]]) == 1.0


def test_internal_diversity() -> None:
    assert metrics.internal_diversity(["CCO", "OCC", "CCO"]) == pytest.approx(0.0)
    assert math.isnan(metrics.internal_diversity(["bad"]))
    # By hand, MOSES style (diagonal included): 1 - mean over the 2 x 2 similarity matrix.
    a, b = "CCO", "c1ccccc1"
    fa, fb = (chem.morgan_fingerprint(chem.parse(s), 1024) for s in (a, b))
    t = DataStructs.TanimotoSimilarity(fa, fb)
    assert metrics.internal_diversity([a, b, "bad"]) == pytest.approx(1 - (2 + 2 * t) / 4)
    # p = 2: 1 - mean_i sqrt(mean_j T^2)
    expected_p2 = 1 - math.sqrt((1 + t**2) / 2)
    assert metrics.internal_diversity([a, b], p=2) == pytest.approx(expected_p2)


def test_internal_diversity_subsample_is_seeded() -> None:
    smiles = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "c1ccncc1", "CCCl", "OCCO"]
    full = metrics.internal_diversity(smiles)
    sub = metrics.internal_diversity(smiles, subsample=5, seed=3)
    assert sub == metrics.internal_diversity(smiles, subsample=5, seed=3)
    assert 0 < sub < 1 and 0 < full < 1
    assert metrics.internal_diversity(smiles, subsample=100) == full


def test_snn() -> None:
    assert metrics.snn(["CCO", "c1ccccc1"], ["OCC", "c1ccccc1", "CCCCCC"]) == pytest.approx(1.0)
    assert metrics.snn(["CCO"], ["c1ccccc1"]) == pytest.approx(0.0)


def test_property_stats() -> None:
    stats = metrics.property_stats(["c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "bad"])
    assert list(stats.index) == ["logP", "SAS", "QED", "MW"]
    # C6H6 and C9H8O4 from IUPAC atomic weights (C 12.011, H 1.008, O 15.999)
    mw = np.array([6 * 12.011 + 6 * 1.008, 9 * 12.011 + 8 * 1.008 + 4 * 15.999])
    assert stats.loc["MW", "mean"] == pytest.approx(mw.mean(), abs=1e-3)
    assert stats.loc["logP", "n"] == 2
    logps = np.array([1.6866, 1.3101])
    assert stats.loc["logP", "mean"] == pytest.approx(logps.mean())
    assert stats.loc["logP", "std"] == pytest.approx(logps.std(ddof=1))
    assert stats.loc["SAS", "mean"] == pytest.approx((1.0 + 1.580039750008826) / 2)


DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccc2ccccc2c1",
    "O=C(O)c1ccccc1O",
    "CN1CCC[C@H]1c1cccnc1",
    "COc1ccc2[nH]cc(CCN)c2c1",
]
HALOCARBONS = [
    "FC(F)(F)C(F)(F)F", "ClCCl", "BrCBr", "ClC(Cl)Cl", "FC(F)Cl", "ClCCCl", "BrCCBr", "IC"
]  # fmt: skip


def test_fcd() -> None:
    torch.set_num_threads(1)
    same = metrics.fcd_score(DRUGS, [*reversed(DRUGS), "bad", ""])
    assert abs(same) < 1e-3
    far = metrics.fcd_score(DRUGS, HALOCARBONS)
    assert far > 5.0
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fcd_score(["CCO", "bad"], DRUGS)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd calls sqrtm(disp=...)
def test_frechet_distance_matches_fcd_package() -> None:
    import fcd

    from molvae.evaluation.chemnet import fcd_statistics, frechet_distance

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 8)), rng.standard_normal((30, 8)) * 1.5 + 0.3
    expected = fcd.calculate_frechet_distance(
        a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    )  # scipy.linalg.sqrtm route
    assert frechet_distance(*fcd_statistics(a), *fcd_statistics(b)) == pytest.approx(
        expected, rel=1e-8
    )
    assert frechet_distance(*fcd_statistics(a), *fcd_statistics(a)) == pytest.approx(0, abs=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # np.row_stack in fcd 1.2.2
@pytest.mark.filterwarnings("ignore::UserWarning")  # fcd: padding beyond 350 characters
def test_chemnet_windows_match_the_fcd_package() -> None:
    """The windowed ChemNet gives fcd.get_predictions's activations: short and long strings,
    one over fcd's 350-character padding (which pads the whole list further)."""
    import fcd

    from molvae.evaluation.chemnet import chemnet

    torch.set_num_threads(1)
    net = chemnet("cpu")
    for smiles in ([*DRUGS, "C", "CC", "Cl" * 60], [*DRUGS[:3], "C" * 360]):
        expected = fcd.get_predictions(net.model, smiles, n_jobs=0, device="cpu")
        assert np.abs(net.activations(smiles, batch_size=4) - expected).max() < 1e-5
