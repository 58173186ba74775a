"""`molvae evaluate` end to end: the references it picks, the bundled neutral ZINC-250k set, and a
run with a tiny model (both decodings, the learned-prior row only when the checkpoint has one)."""

from __future__ import annotations

import json
import math

import pytest
from rdkit import Chem

from molvae.data import read_smiles
from molvae.evaluation import EvaluateConfig
from molvae.resources import data_dir
from molvae.runs import evaluating


def test_neutral_zinc250k_set_is_what_data_readme_says() -> None:
    smiles = read_smiles(data_dir() / evaluating.NEUTRAL_ZINC)
    assert len(smiles) == len(set(smiles)) == 2000
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        assert mol is not None and Chem.MolToSmiles(mol, isomericSmiles=False) == s
        assert all(a.GetFormalCharge() == 0 for a in mol.GetAtoms())
        assert "@" not in s and "/" not in s and "\\" not in s
    assert not set(smiles) & set(read_smiles("zinc-test"))  # not drawn from MOSES


def test_references_without_fetched_splits(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path))  # nothing fetched here
    data = evaluating._reference_data("zinc-test", "auto", "auto", "auto", 100)
    assert data.test_scaffolds is None and "molvae fetch-zinc" in data.test_scaffolds_name
    assert len(data.test) == 100 and "MOSES test split" in data.test_name
    assert len(data.train) == 250_000 and "bundled 250k subset" in data.train_name
    assert [len(v) for v in data.reconstruction.values()] == [100, 2000]
    (tmp_path / "moses").mkdir()
    (tmp_path / "moses" / "test_scaffolds.csv.gz").write_bytes(
        (data_dir() / "zinc" / "test.csv.gz").read_bytes()  # stands in for the fetched split
    )
    data = evaluating._reference_data("zinc-test", "auto", "zinc", "auto", 50)
    assert len(data.test_scaffolds) == 50 and "scaffold-test" in data.test_scaffolds_name
    assert evaluating._reference_data("zinc-test", "none", "zinc", "auto", 5).test_scaffolds is None


def test_evaluate_model_tiny(tiny_model, tmp_path, zinc_small) -> None:
    train, recon = tmp_path / "train.smi", tmp_path / "recon.smi"
    train.write_text("\n".join(zinc_small) + "\n")
    recon.write_text("CCO\nc1ccccc1\nCC[NH3+]\n")  # the charged one cannot be encoded
    cfg = EvaluateConfig(n_samples=8, n_reconstruct=5, compute_fcd=False, n_jobs=1)
    result = evaluating.evaluate_model(
        tiny_model, tmp_path / "eval", train=str(train), config=cfg, max_reference=40,
        test_scaffolds="none", recon_set=str(recon), device="cpu", quiet=True,
    )  # fmt: skip
    assert [(r.prior, r.decoding) for r in result.rows] == [
        ("gaussian", "raw"),
        ("gaussian", "grammar"),
    ]
    assert all(r.n_samples == 8 for r in result.rows)
    recon_rows = {(r.dataset, r.decoding): r for r in result.reconstruction}
    other = recon_rows[(str(recon), "raw")]
    assert (other.n, other.n_encoded) == (3, 2)
    assert recon_rows[("MOSES test (held out)", "grammar")].n == 5
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["references"]["test_scaffolds"] == "skipped (--test-scaffolds none)"
    assert math.isnan(result.rows[0].metrics["SNN/TestSF"])
    config = json.loads((tmp_path / "eval" / "config.json").read_text())
    assert config["evaluate"]["decodings"] == ["raw", "grammar"] and config["grammar"]
    # the held-out bounds: the 40 test molecules kept, K = 50 draws each, IWAE above the ELBO
    lik = metrics["likelihood"]
    assert (lik["n"], lik["k"], lik["set"]) == (40, 50, result.references["test"])
    assert lik["iwae"] > lik["elbo"] and lik["gap"] > 0 and lik["elbo"] < 0
    assert "IWAE (K=50)" in (tmp_path / "eval" / "metrics.md").read_text()
    with pytest.raises(ValueError, match="no learned prior"):
        evaluating.evaluate_model(
            tiny_model, tmp_path / "e2", train=str(train), device="cpu", quiet=True,
            config=EvaluateConfig(n_samples=2, prior="learned"),
        )  # fmt: skip


def test_learned_prior_rows(tiny_model, tmp_path, zinc_small) -> None:
    from molvae.model.prior import PriorConfig
    from molvae.runs.priors import fit_prior_run

    train = tmp_path / "train.smi"
    train.write_text("\n".join(zinc_small) + "\n")
    model = tmp_path / "with-prior.pt"
    fit_prior_run(tiny_model, model, data=str(train), config=PriorConfig(kind="gmm", components=2),
                  n_molecules=None, domain=False)  # fmt: skip
    cfg = EvaluateConfig(n_samples=6, n_reconstruct=2, compute_fcd=False, n_jobs=1,
                         decodings=("raw",))  # fmt: skip
    kw = {"train": str(train), "max_reference": 20, "test_scaffolds": "none", "device": "cpu",
          "quiet": True, "recon_set": str(train)}  # fmt: skip
    result = evaluating.evaluate_model(model, tmp_path / "all", config=cfg, **kw)
    assert [r.prior for r in result.rows] == ["gaussian", "learned"]
    learned = evaluating.evaluate_model(
        model, tmp_path / "learned", config=EvaluateConfig(**{**cfg.__dict__, "prior": "learned"}),
        **kw,
    )  # fmt: skip
    assert [r.prior for r in learned.rows] == ["learned"]
    # the same seed draws the same learned-prior latents: the same strings
    assert learned.rows[0].samples == result.rows[1].samples
    assert "learned | raw" in (tmp_path / "all" / "metrics.md").read_text()
