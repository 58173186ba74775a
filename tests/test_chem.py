"""Tests for molvae.chem: golden property values, objectives, scoring."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from molvae import chem

BENZENE = "c1ccccc1"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"
CYCLOOCTANONE = "O=C1CCCCCCC1"  # 8-membered ring: ring penalty 2

# Computed once with RDKit 2026.9.1 (Crippen logP, QED, Contrib sascorer, MolWt, TPSA).
GOLDEN = {
    BENZENE: dict(logp=1.6866, qed=0.4426283718993647, sa_score=1.0, mol_weight=78.114,
                  tpsa=0.0, ring_penalty=0.0),
    ASPIRIN: dict(logp=1.3101, qed=0.5501217966938848, sa_score=1.580039750008826,
                  mol_weight=180.159, tpsa=63.6, ring_penalty=0.0),
    CAFFEINE: dict(logp=-1.0293, qed=0.5384628262372215, sa_score=2.29798245679401,
                   mol_weight=194.194, tpsa=61.82, ring_penalty=0.0),
    CYCLOOCTANONE: dict(logp=2.2998, qed=0.4864243604523067, sa_score=1.88717120249183,
                        mol_weight=126.199, tpsa=17.07, ring_penalty=2.0),
}  # fmt: skip


@pytest.mark.parametrize("smiles", list(GOLDEN))
@pytest.mark.parametrize("prop", ["logp", "qed", "sa_score", "mol_weight", "tpsa", "ring_penalty"])
def test_property_golden_values(smiles: str, prop: str) -> None:
    mol = chem.parse(smiles)
    assert chem.PROPERTIES[prop](mol) == pytest.approx(GOLDEN[smiles][prop], abs=1e-6)


@pytest.mark.parametrize("smiles", list(GOLDEN))
def test_penalized_logp_by_hand(smiles: str) -> None:
    g = GOLDEN[smiles]
    standardized = (
        (g["logp"] - 2.4570953396190123) / 1.434324401111988
        + (-g["sa_score"] + 3.0525811293166134) / 0.8335207024513095
        + (-g["ring_penalty"] + 0.0485696876403053) / 0.2860212110245455
    )
    mol = chem.parse(smiles)
    assert chem.penalized_logp(mol) == pytest.approx(standardized, abs=1e-6)
    raw = g["logp"] - g["sa_score"] - g["ring_penalty"]
    assert chem.penalized_logp_raw(mol) == pytest.approx(raw, abs=1e-6)


def test_ring_penalty_counts_largest_ring() -> None:
    assert chem.ring_penalty(chem.parse("CCCC")) == 0.0
    assert chem.ring_penalty(chem.parse("C1CCCCCCCCC1")) == 4.0  # 10-ring
    assert chem.ring_penalty(chem.parse("C1CCCCC1C1CCCCCCC1")) == 2.0  # 6-ring and 8-ring


@pytest.mark.parametrize("bad", ["", "   ", "C1CC", "xyz", "c1cccc1", None, 42])
def test_parse_never_raises_on_invalid(bad: object) -> None:
    assert chem.parse(bad) is None
    assert chem.canonical(bad) is None
    assert not chem.is_valid(bad)


def test_canonical_and_largest_fragment() -> None:
    assert chem.canonical("OCC") == chem.canonical("CCO") == "CCO"
    assert chem.canonical(CAFFEINE) == "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
    assert chem.canonical("C[C@H](N)C(=O)O") == "C[C@H](N)C(=O)O"  # stereo kept
    assert chem.largest_fragment("[Na+].CC(=O)[O-]") == "CC(=O)[O-]"
    assert chem.largest_fragment("Cl.c1ccccc1N") == "Nc1ccccc1"
    assert chem.largest_fragment("nope") is None


def test_similarity_to_self_is_one() -> None:
    mol = chem.parse(ASPIRIN)
    assert chem.tanimoto_similarity(mol, mol) == 1.0
    assert chem.tanimoto_similarity(mol, chem.parse(BENZENE)) < 0.5
    obj = chem.get_objective(f"similarity:{ASPIRIN}")
    assert obj.fn(chem.parse(chem.canonical(ASPIRIN))) == 1.0
    assert pickle.loads(pickle.dumps(obj)).fn(mol) == 1.0


def test_registry_objectives() -> None:
    names = set(chem.available_objectives())
    assert {"logp", "qed", "sa", "mw", "tpsa", "plogp", "plogp_raw", "qed_sa"} <= names
    mol = chem.parse(ASPIRIN)
    g = GOLDEN[ASPIRIN]
    assert chem.get_objective("sa").fn(mol) == pytest.approx(-g["sa_score"])
    assert chem.get_objective("qed_sa").fn(mol) == pytest.approx(5 * g["qed"] - g["sa_score"])
    assert chem.get_objective("plogp").fn(mol) == pytest.approx(chem.penalized_logp(mol))
    assert chem.get_objective(" logp ").name == "logp"


def test_bad_specs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="plogp"):  # lists the available names
        chem.get_objective("no_such_objective")
    with pytest.raises(ValueError, match="not a valid SMILES"):
        chem.get_objective("similarity:C1CC")
    with pytest.raises(ValueError, match="could not import"):
        chem.get_objective("molvae_no_such_module_xyz:f")
    with pytest.raises(ValueError, match="no callable"):
        chem.get_objective("math:no_such_function")
    with pytest.raises(ValueError):
        chem.get_objective("")


def test_user_module_objective(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_objectives_mod.py").write_text(
        "def heavy_atoms(mol):\n    return float(mol.GetNumHeavyAtoms())\n"
        "def boom(mol):\n    raise RuntimeError('oracle down')\n"
        "def nan(mol):\n    return float('nan')\n"
        "def text(mol):\n    return 'high'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    obj = chem.get_objective("my_objectives_mod:heavy_atoms")
    assert obj.name == "my_objectives_mod:heavy_atoms"
    res = chem.score_smiles([ASPIRIN, "C1CC", BENZENE], obj)
    np.testing.assert_array_equal(res.scores, [13.0, np.nan, 6.0])
    assert res.status == ["ok", "invalid", "ok"]

    for fn, message in (("boom", "oracle down"), ("nan", "nan"), ("text", "not a number")):
        res = chem.score_smiles([BENZENE, "bad"], f"my_objectives_mod:{fn}")
        assert res.status == ["failed", "invalid"]
        assert message in res.error[0]
        assert np.isnan(res.scores).all()


def test_score_smiles_statuses_and_values() -> None:
    res = chem.score_smiles([BENZENE, "", "C1CC", CAFFEINE], "logp")
    assert res.status == ["ok", "invalid", "invalid", "ok"]
    assert res.error[0] == "" and res.error[1]
    np.testing.assert_allclose(res.scores, [1.6866, np.nan, np.nan, -1.0293])
    np.testing.assert_array_equal(res.ok, [True, False, False, True])
    assert len(chem.score_smiles([], "qed")) == 0


def test_unpicklable_objective_falls_back_to_serial() -> None:
    obj = chem.Objective("atoms", "number of atoms", lambda m: float(m.GetNumAtoms()))
    with pytest.warns(RuntimeWarning, match="pickled"):
        res = chem.score_smiles([BENZENE, "CCO"], obj, n_jobs=2)
    np.testing.assert_array_equal(res.scores, [6.0, 3.0])


def test_parallel_matches_serial() -> None:
    smiles = [BENZENE, ASPIRIN, "bad", CAFFEINE, CYCLOOCTANONE, "CCO", "", "CCN"]
    serial = chem.score_smiles(smiles, "plogp", n_jobs=1)
    parallel = chem.score_smiles(smiles, "plogp", n_jobs=2)
    np.testing.assert_array_equal(serial.scores, parallel.scores)
    assert serial.status == parallel.status
    by_object = chem.score_smiles(smiles, chem.get_objective("similarity:CCO"), n_jobs=2)
    assert by_object.scores[5] == 1.0 and by_object.status[2] == "invalid"


def test_property_table() -> None:
    df = chem.property_table(["OCC", "nope", BENZENE], names=("logp", "ring_penalty"))
    assert list(df.columns) == ["smiles", "canonical", "valid", "logp", "ring_penalty"]
    assert df["valid"].tolist() == [True, False, True]
    assert df.loc[0, "canonical"] == "CCO"
    assert math.isnan(df.loc[1, "logp"])
    assert df.loc[2, "logp"] == pytest.approx(1.6866)
    with pytest.raises(ValueError, match="unknown properties"):
        chem.property_table(["CCO"], names=("nope",))
