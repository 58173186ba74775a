"""SNN, IntDiv, Frag, Scaf, Filters and novelty as MOSES defines them, on molecules whose values
are worked out by hand below (not by calling the code under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from molvae.chem import filters
from molvae.evaluation import moses, reference, similarity

torch.set_num_threads(1)

# RDKit's Morgan radius-2, 1024-bit on-bits (MOSES's fingerprint), pinned: bit 33 is a CH3 on a
# carbon, 80 and 294 the CH3-CH2 environments that ethanol, propane and ethylamine share.
BITS = {
    "CCO": {33, 80, 222, 294, 386, 807},
    "CCC": {33, 80, 294, 320},
    "CCN": {33, 80, 147, 294, 789, 981},
    "c1ccccc1": {64, 389, 849},
    "Cc1ccccc1": {31, 33, 64, 175, 356, 389, 698, 726, 799, 849, 896},
}


def fps(smiles: list[str]) -> np.ndarray:
    return similarity.packed_fingerprints(moses.chem.parse(s) for s in smiles)


def test_fingerprints_are_the_pinned_bits() -> None:
    packed = fps(list(BITS))
    for row, bits in zip(np.unpackbits(packed, axis=1), BITS.values(), strict=True):
        assert set(np.flatnonzero(row)) == bits


def test_snn_by_hand() -> None:
    # T = common / (a + b - common):
    # CCO-CCC 3/(6+4-3) = 3/7, CCO-toluene 1/(6+11-1) = 1/16: best 3/7
    # benzene-CCC 0, benzene-toluene 3/(3+11-3) = 3/11: best 3/11
    gen, ref = fps(["CCO", "c1ccccc1"]), fps(["CCC", "Cc1ccccc1"])
    assert similarity.max_tanimoto(gen, ref) == pytest.approx([3 / 7, 3 / 11], abs=1e-12)
    assert similarity.snn(gen, ref) == pytest.approx((3 / 7 + 3 / 11) / 2, abs=1e-12)
    # blocks smaller than the sets, and the reference's bit counts spread over several blocks
    many = fps(["CCC", "c1ccccc1", "Cc1ccccc1", "CCN", "CCC", "CCO"])
    assert similarity.max_tanimoto(gen, many, block=(1, 2)) == pytest.approx([1.0, 1.0])
    assert math.isnan(similarity.snn(gen[:0], ref))


def test_internal_diversity_by_hand() -> None:
    # CCO, CCC, CCN: T(CCO, CCC) = 3/7, T(CCO, CCN) = 3/9, T(CCC, CCN) = 3/7, diagonal 1
    t = np.array([[1, 3 / 7, 1 / 3], [3 / 7, 1, 3 / 7], [1 / 3, 3 / 7, 1]])
    x = fps(["CCO", "CCC", "CCN"])
    assert similarity.internal_diversity(x, 1) == pytest.approx(1 - (3 + 2 * (6 / 7 + 1 / 3)) / 9)
    expected_p2 = 1 - np.mean([math.sqrt(sum(v**2 for v in row) / 3) for row in t])
    assert similarity.internal_diversity(x, 2, block=2) == pytest.approx(expected_p2)
    assert similarity.internal_diversity(fps(["CCO", "OCC"]), 1) == pytest.approx(0.0)


def test_fragments_and_frag_by_hand() -> None:
    # BRICS cuts an ester between acyl ([1*]), ether oxygen ([3*]) and alkyl ([4*]); a molecule
    # without a BRICS bond is its own fragment; identical pieces count twice.
    assert moses.fragments(moses.chem.parse("CCOC(=O)CC")) == ["[1*]C(=O)CC", "[3*]O[3*]", "[4*]CC"]
    assert moses.fragments(moses.chem.parse("CCO")) == ["CCO"]
    rows = moses.describe_all(["c1ccc(Cc2ccccc2)cc1"], properties=False, filters=False)
    assert moses.count(rows, "fragments") == {"[16*]c1ccccc1": 2, "[8*]C[8*]": 1}
    ref = moses.count(moses.describe_all(["CCOC(=O)CC", "CCO"], False, False), "fragments")
    gen_rows = moses.describe_all(["CC(=O)Oc1ccccc1C(=O)O", "CCO", "CCO"], False, False)
    gen = moses.count(gen_rows, "fragments")
    # shared: [3*]O[3*] (1 x 1) and CCO (1 x 2); |ref| = sqrt(4), |gen| = sqrt(1+1+1+1+4)
    assert moses.cos_similarity(ref, gen) == pytest.approx(3 / (2 * math.sqrt(8)))
    assert math.isnan(moses.cos_similarity({}, gen))


def test_scaffolds_and_scaf_by_hand() -> None:
    # 1,1-diphenylethane's Murcko scaffold is diphenylmethane; toluene's is benzene, one ring,
    # under MOSES's minimum of two; naphthalene is its own scaffold.
    assert moses.scaffold(moses.chem.parse("CC(c1ccccc1)c1ccccc1")) == "c1ccc(Cc2ccccc2)cc1"
    assert moses.scaffold(moses.chem.parse("Cc1ccccc1")) is None
    ref_rows = moses.describe_all(
        ["c1ccc(Cc2ccccc2)cc1", "CC(c1ccccc1)c1ccccc1", "Cc1ccccc1"], False, False
    )
    gen_rows = moses.describe_all(["c1ccc(Cc2ccccc2)cc1", "c1ccc2ccccc2c1"], False, False)
    ref, gen = moses.count(ref_rows, "scaffold"), moses.count(gen_rows, "scaffold")
    assert ref == {"c1ccc(Cc2ccccc2)cc1": 2}
    assert moses.cos_similarity(ref, gen) == pytest.approx(2 / (2 * math.sqrt(2)))


@pytest.mark.parametrize(
    ("smiles", "passes"),
    [
        ("CCO", True),
        ("CC(=O)OC", True),
        ("C1CCCCCCC1", False),  # a ring of 8 atoms
        ("C[N+](C)(C)C", False),  # a charge
        ("CCI", False),  # iodine is not allowed
        ("CC=O", False),  # an aldehyde: MCF7
        ("O=C1NC(=S)SC1=Cc1ccccc1", False),  # a benzylidene rhodanine: PAINS ene_rhod
    ],
)
def test_filters(smiles: str, passes: bool) -> None:
    assert filters.passes_filters(moses.chem.parse(smiles)) is passes


def test_filter_screen_never_skips_a_match(zinc_small) -> None:
    """The pattern-fingerprint screen gives what matching every MCF/PAINS query gives."""
    from rdkit import Chem

    queries, _ = filters._filters()
    smiles = [*zinc_small, "O=C1NC(=S)SC1=Cc1ccccc1", "Nc1ccc(N)cc1", "CC=O", "Oc1ccccc1O"]
    for s in smiles:
        h = Chem.AddHs(Chem.MolFromSmiles(s))
        every = not any(h.HasSubstructMatch(q) for q in queries)
        assert filters.passes_filters(Chem.MolFromSmiles(s)) == every, s


def test_properties_are_moses_functions() -> None:
    from rdkit.Chem import QED, Crippen, Descriptors

    mol = moses.chem.parse("CC(=O)Oc1ccccc1C(=O)O")
    row = moses.describe("CC(=O)Oc1ccccc1C(=O)O")
    assert row["logP"] == pytest.approx(Crippen.MolLogP(mol))
    assert row["QED"] == pytest.approx(QED.qed(mol))
    assert row["MW"] == pytest.approx(Descriptors.MolWt(mol))
    assert row["SAS"] == pytest.approx(moses.chem.sa_score(mol))
    with pytest.raises(ValueError, match="not a valid molecule"):
        moses.describe("bad")


def test_novelty_by_hashes() -> None:
    train = reference.train_stats(["OCC", "CCCC", "bad"], "tiny", n_properties=2)
    assert train.n == 2 and len(train.hashes) == 2
    # distinct valid samples {CCO, c1ccccc1, CCN}; ethanol is in train (written OCC)
    assert reference.novelty(["CCO", "CCO", "c1ccccc1", "CCN"], train) == pytest.approx(2 / 3)
    assert math.isnan(reference.novelty([], train))
    assert train.properties["MW"].shape == (2,)
