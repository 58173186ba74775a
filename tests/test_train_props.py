"""Property targets (computed, cached, standardized, masked), fine-tuning into a new property head,
free bits and active units."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from molvae.chem import get_objective, parse
from molvae.data import FilterConfig, load_smiles, property_cache, split, token_cache
from molvae.data.property_cache import cached_properties, compute_properties
from molvae.model import MolVAE, load_checkpoint
from molvae.model.property_head import PropertyScale, masked_mse, masked_mse_per_column
from molvae.runs import TrainRunConfig, train_on_smiles
from molvae.train import TrainConfig
from molvae.train.schedules import kl_term
from molvae.train.validation import active_units

TINY = dict(emb_dim=8, enc_hidden=8, latent_dim=4, dec_hidden=8, dec_layers=1)
NAMES = ["logp", "sa", "qed", "plogp"]


@pytest.fixture
def smi_file(tmp_path, zinc_small):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(zinc_small) + "\n")
    return path


@pytest.fixture
def failing_objective(tmp_path, monkeypatch) -> str:
    """``failmod:chlorine``: raises for molecules with chlorine (2 of the 8 ZINC ones)."""
    (tmp_path / "failmod.py").write_text(
        "def chlorine(mol):\n"
        "    if any(a.GetSymbol() == 'Cl' for a in mol.GetAtoms()):\n"
        "        raise ValueError('no chlorine')\n"
        "    return mol.GetNumAtoms()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("failmod", None)
    return "failmod:chlorine"


def test_properties_match_the_objectives_and_failures_are_nan(zinc_small) -> None:
    smiles = [*zinc_small, "not_a_smiles"]
    got = compute_properties(smiles, [*NAMES, "mw"])
    assert got.shape == (9, 5) and got.dtype == np.float32
    for j, name in enumerate([*NAMES, "mw"]):
        want = [get_objective(name).fn(parse(s)) for s in zinc_small]
        np.testing.assert_allclose(got[:8, j], want, rtol=1e-6)
    assert np.isnan(got[8]).all()
    with pytest.raises(ValueError, match="unknown objective"):
        compute_properties(smiles, ["nope"])


def test_cache_is_built_once_and_a_killed_build_goes_on(tmp_path, smi_file, monkeypatch) -> None:
    cache = token_cache(smi_file, root=tmp_path / "tok")
    monkeypatch.setattr(property_cache, "CHUNK", 3)
    calls = []
    real = property_cache._chunk

    def chunk(smiles, names):
        calls.append(len(smiles))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the first chunk was kept
        return real(smiles, names)

    monkeypatch.setattr(property_cache, "_chunk", chunk)
    with pytest.raises(KeyboardInterrupt):
        cached_properties(cache, ["qed", "logp"], workers=1)
    got, _ = cached_properties(cache, ["qed", "logp"], workers=1)
    assert calls == [3, 3, 3, 2]  # chunk 0 was not computed again
    want = compute_properties([cache.vocab.decode(a) for a in cache], ["qed", "logp"])
    np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(property_cache, "_chunk", lambda *a: pytest.fail("recomputed"))
    again, _ = cached_properties(cache, ["logp"], workers=1)
    np.testing.assert_array_equal(again[:, 0], want[:, 1])
    assert not list((tmp_path / "tok").rglob(".build-*"))


@pytest.mark.parametrize("cached", [False, True])
def test_training_with_properties_stores_their_scale(
    tmp_path, smi_file, failing_objective, monkeypatch, cached
) -> None:
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path / "cache"))
    names = ["logp", failing_objective]
    run = TrainRunConfig(data=str(smi_file), out_dir=str(tmp_path / "run"), val_fraction=0.25,
                         model=TINY, properties=names, cache_tokens=cached)  # fmt: skip
    tc = TrainConfig(epochs=1, batch_size=4, val_recon_samples=2, device="cpu")
    res = train_on_smiles(run, tc, progress=False)
    ck = load_checkpoint(res.best_path)
    meta = ck.meta["properties"]
    assert ck.config.property_dim == 2 and meta["names"] == names
    assert meta["failed"] == {"logp": 0, failing_objective: 2}  # masked, counted
    kept, _ = load_smiles(smi_file, config=FilterConfig(max_tokens=98, dedupe=True))
    train_smiles, _ = split(kept, 0.25, seed=0)
    values = compute_properties(train_smiles, names)  # mean and std over the training molecules
    np.testing.assert_allclose(meta["mean"], np.nanmean(values, axis=0), rtol=1e-6)
    np.testing.assert_allclose(meta["std"], np.nanstd(values, axis=0), rtol=1e-6)
    assert np.isfinite(res.history["train_prop"]).all() and (res.history["train_prop"] > 0).all()
    model = MolVAE.from_checkpoint(ck)
    assert model.property_scale.names == names
    mu = torch.randn(3, 4)
    raw = model.predict_properties(mu, units=False)
    units = model.predict_properties(mu)
    torch.testing.assert_close(units, raw * torch.tensor(meta["std"]) + torch.tensor(meta["mean"]))


def test_init_from_a_model_without_head_keeps_every_other_weight(tmp_path, smi_file) -> None:
    base = TrainRunConfig(data=str(smi_file), out_dir=str(tmp_path / "base"), model=TINY,
                          val_fraction=0.25)  # fmt: skip
    tc = TrainConfig(epochs=1, batch_size=4, val_recon_samples=2, device="cpu")
    first = load_checkpoint(train_on_smiles(base, tc, progress=False).best_path)
    assert first.config.property_dim == 0
    init = str(tmp_path / "base" / "best.pt")
    tune = TrainRunConfig(data=str(smi_file), out_dir=str(tmp_path / "tune"), val_fraction=0.25,
                          init_from=init, properties=NAMES)  # fmt: skip
    frozen = TrainConfig(epochs=1, batch_size=4, val_recon_samples=2, device="cpu", lr=0.0)
    tuned = load_checkpoint(train_on_smiles(tune, frozen, progress=False).best_path)
    assert tuned.config.property_dim == 4 and tuned.meta["properties"]["names"] == NAMES
    for k, v in first.state_dict.items():
        assert torch.equal(v, tuned.state_dict[k]), k  # lr 0: the loaded weights, untouched
    assert {k for k in tuned.state_dict if k not in first.state_dict} == {
        "prop_head.0.weight",
        "prop_head.0.bias",
        "prop_head.2.weight",
        "prop_head.2.bias",
    }
    # resuming it takes the sizes from its last.pt, not from the defaults or init_from
    tune.resume = True
    more = TrainConfig(epochs=2, batch_size=4, val_recon_samples=2, device="cpu")
    resumed = train_on_smiles(tune, more, progress=False)
    assert resumed.history["epoch"].tolist() == [1, 2]
    assert load_checkpoint(resumed.last_path).meta["properties"]["names"] == NAMES
    with pytest.raises(ValueError, match="model sizes differ"):
        bad = TrainRunConfig(
            data=str(smi_file),
            out_dir=str(tmp_path / "bad"),
            init_from=init,
            model={"latent_dim": 6},
        )
        train_on_smiles(bad, frozen, progress=False)


def test_masked_mse_ignores_nan_targets_only() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, math.nan], [3.0, 2.0]])
    assert masked_mse(pred, target).item() == pytest.approx((1 + 0 + 4) / 3)
    assert masked_mse(pred, torch.zeros(2, 2)).item() == pytest.approx(30 / 4)
    assert not torch.isfinite(masked_mse(pred, torch.full((2, 2), math.inf)))
    # per column: column 0 (1 + 0) / 2, column 1 its one target; a column without one is NaN
    torch.testing.assert_close(masked_mse_per_column(pred, target), torch.tensor([0.5, 4.0]))
    assert masked_mse_per_column(pred, torch.full((2, 2), math.nan)).isnan().all()
    scale = PropertyScale(["a", "b"], [1.0, -1.0], [2.0, 0.5])
    torch.testing.assert_close(scale.to_units(pred), torch.tensor([[3.0, 0.0], [7.0, 1.0]]))


def test_free_bits_floor_each_dimension_and_active_units() -> None:
    kl_dims = torch.tensor([0.05, 0.5, 2.0])
    plain = TrainConfig()
    assert kl_term(kl_dims.sum(), kl_dims, plain).item() == pytest.approx(2.55)
    fb = TrainConfig(free_bits=0.25)
    assert kl_term(kl_dims.sum(), kl_dims, fb).item() == pytest.approx(0.25 + 0.5 + 2.0)
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 4, generator=g) * torch.tensor([1.0, 0.5, 0.05, 0.0])
    assert active_units(mu) == 2  # variances 1, 0.25, 0.0025, 0


def test_worker_processes_give_the_same_values(zinc_small, monkeypatch) -> None:
    monkeypatch.setattr(property_cache, "CHUNK", 4)
    monkeypatch.setattr(property_cache, "MIN_PARALLEL", 0)
    smiles = zinc_small * 3
    serial = compute_properties(smiles, NAMES, workers=1)
    parallel = compute_properties(smiles, NAMES, workers=2)
    np.testing.assert_array_equal(serial, parallel)
