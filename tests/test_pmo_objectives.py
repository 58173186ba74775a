"""`pmo:<task>` objectives: PyTDC's PMO oracles through the registry, against golden values and
against the same scores computed here with RDKit."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys

import pytest
from rdkit import DataStructs
from rdkit.Chem import QED
from rdkit.Chem import rdFingerprintGenerator as rfg

from molvae import chem
from molvae.chem import pmo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tdc") is None, reason="PyTDC is not installed (make pmo-install)"
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CELECOXIB = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"


def score(task: str, smiles: str) -> float:
    return chem.get_objective(f"pmo:{task}").fn(chem.parse(smiles))


def test_golden_values() -> None:
    assert score("celecoxib_rediscovery", CELECOXIB) == 1.0
    assert score("celecoxib_rediscovery", ASPIRIN) == pytest.approx(0.1158, abs=1e-3)
    assert score("qed", ASPIRIN) == pytest.approx(0.5501, abs=1e-4)
    assert score("qed", CELECOXIB) == pytest.approx(0.7541, abs=1e-4)
    # neither holds valsartan's substructure (the SMARTS factor is 0, the product is 0)
    assert score("valsartan_smarts", ASPIRIN) == 0.0
    assert score("valsartan_smarts", CELECOXIB) == 0.0
    for task in pmo.PMO_TASKS:  # every task builds offline and scores in [0, 1]
        assert 0.0 <= score(task, CELECOXIB) <= 1.0


def test_qed_is_rdkits_qed() -> None:
    for smiles in (ASPIRIN, CELECOXIB):
        assert score("qed", smiles) == pytest.approx(QED.qed(chem.parse(smiles)), abs=1e-12)


def test_rediscovery_is_guacamols_ecfp4_tanimoto() -> None:
    """GuacaMol's ECFP4 (so PMO's rediscovery) is RDKit's unfolded *count* Morgan radius 2, not
    the 2048-bit vector of ``similarity:<SMILES>``, which gives other values."""
    gen = rfg.GetMorganGenerator(radius=2)
    target = chem.parse(CELECOXIB)
    for smiles in (ASPIRIN, "c1ccccc1S(N)(=O)=O", "Cc1ccc(-c2ccnn2-c2ccccc2)cc1"):
        mol = chem.parse(smiles)
        fps = gen.GetSparseCountFingerprint(mol), gen.GetSparseCountFingerprint(target)
        want = DataStructs.TanimotoSimilarity(*fps)
        assert score("celecoxib_rediscovery", smiles) == pytest.approx(want, abs=1e-12)
    bits = chem.get_objective(f"similarity:{CELECOXIB}").fn(chem.parse(ASPIRIN))
    assert bits == pytest.approx(0.0847, abs=1e-3)  # the bit vector: another number


def test_score_smiles_through_the_registry() -> None:
    res = chem.score_smiles([ASPIRIN, "C1CC(", CELECOXIB], "pmo:qed")
    assert res.status == ["ok", "invalid", "ok"]
    assert res.scores[0] == pytest.approx(0.5501, abs=1e-4)
    assert res.scores[2] == pytest.approx(0.7541, abs=1e-4)
    assert "pmo:qed" in chem.available_objectives()
    assert chem.get_objective(" pmo: qed ").name == "pmo:qed"


def test_unknown_task_lists_the_tasks() -> None:
    # tdc would fuzzy-match the misspelt name to some oracle; the registry refuses it
    with pytest.raises(ValueError, match=r"unknown PMO task 'celecoxib'.*zaleplon_mpo"):
        chem.get_objective("pmo:celecoxib")
    with pytest.raises(ValueError, match="drd2"):
        pmo.check_task("drd2")  # needs a downloaded model: not one of the 20


def test_objective_pickles() -> None:
    obj = chem.get_objective("pmo:celecoxib_rediscovery")
    fn = pickle.loads(pickle.dumps(obj.fn))
    assert isinstance(fn, pmo.PMOScore) and fn.task == "celecoxib_rediscovery"
    assert fn(chem.parse(CELECOXIB)) == 1.0


def test_missing_tdc_names_the_install_command(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "tdc", raising=False)
    monkeypatch.setattr(pmo.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ValueError, match="make pmo-install"):
        chem.get_objective("pmo:qed")


def test_import_keeps_the_warning_filters_and_is_quiet() -> None:
    """tdc's import silences all warnings process-wide and its oracles log RDKit deprecations;
    molvae puts the filters back and keeps RDKit quiet (a fresh process: tdc not yet imported)."""
    code = (
        "import warnings\n"
        "from molvae.chem import get_objective, parse\n"
        "before = list(warnings.filters)\n"
        "get_objective('pmo:median1').fn(parse('CCO'))\n"
        "assert list(warnings.filters) == before, 'filters changed'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "DEPRECATION" not in done.stderr + done.stdout
