"""The memory-mapped token cache: same ids as the in-memory path, built once, used by training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molvae import data
from molvae.data import (
    FilterConfig,
    TokenCache,
    Vocab,
    encode_all,
    filter_smiles,
    split,
    token_cache,
)


@pytest.fixture
def smi_file(tmp_path, zinc_small):
    path = tmp_path / "mols.smi"
    lines = [*zinc_small, "not_a_smiles", "", zinc_small[0], "CCO.Cl"] * 3
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cache_holds_the_ids_of_the_filtered_molecules(tmp_path, smi_file) -> None:
    cfg = FilterConfig(max_tokens=98, dedupe=True)
    cache = token_cache(smi_file, cfg, root=tmp_path / "cache")
    kept, report = filter_smiles(data.read_smiles(smi_file), config=cfg)
    assert len(cache) == len(kept) == 9  # 8 ZINC + CCO, duplicates and the invalid line dropped
    assert cache.report.to_dict() == report.to_dict()
    assert cache.vocab == Vocab.build(kept)
    for got, want in zip(cache, encode_all(kept, cache.vocab), strict=True):
        assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert cache.lengths().tolist() == [len(a) for a in encode_all(kept, cache.vocab)]
    sub = cache.subset([4, 1]).subset([1])
    assert np.array_equal(sub[0], cache[1]) and len(sub) == 1 and sub.lengths()[0] == len(cache[1])


def test_second_call_reuses_the_cache_and_a_changed_file_rebuilds(
    tmp_path, smi_file, monkeypatch
) -> None:
    first = token_cache(smi_file, root=tmp_path / "cache")
    monkeypatch.setattr(data.cache, "load_smiles", lambda *a, **k: pytest.fail("re-tokenized"))
    again = token_cache(smi_file, root=tmp_path / "cache")
    assert again.dir == first.dir and np.array_equal(again[3], first[3])
    # other filter settings or limit are another cache entry
    monkeypatch.undo()
    limited = token_cache(smi_file, root=tmp_path / "cache", limit=3)
    assert limited.dir != first.dir and len(limited) == 3
    smi_file.write_text("CCO\nCCN\n")
    assert len(token_cache(smi_file, root=tmp_path / "cache")) == 2
    assert not list((tmp_path / "cache").glob(".build-*"))  # no half-built directory left


def test_training_on_the_cache_uses_the_same_split(tmp_path, smi_file, monkeypatch) -> None:
    from molvae.runs import TrainRunConfig, train_on_smiles
    from molvae.train import TrainConfig

    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path / "cache"))
    tiny = dict(emb_dim=4, enc_hidden=4, latent_dim=2, dec_hidden=4, dec_layers=1)
    tc = TrainConfig(epochs=1, batch_size=4, max_steps_per_epoch=1, val_recon_samples=2)
    runs = {}
    for cached in (False, True):
        run = TrainRunConfig(data=str(smi_file), out_dir=str(tmp_path / f"run{cached}"),
                             val_fraction=0.25, model=tiny, cache_tokens=cached)  # fmt: skip
        train_on_smiles(run, tc, progress=False)
        runs[cached] = json.loads((tmp_path / f"run{cached}" / "run.json").read_text())
    assert runs[True]["n_train"] == runs[False]["n_train"] == 7
    assert runs[True]["n_val"] == 2
    cache = TokenCache(runs[True]["token_cache"])
    cfg = FilterConfig(max_tokens=98, dedupe=True)
    kept, _ = filter_smiles(data.read_smiles(smi_file), config=cfg)
    _, val = split(kept, 0.25, seed=0)
    want = encode_all(val, cache.vocab)
    _, val_idx = split(np.arange(len(cache)), 0.25, seed=0)
    assert all(np.array_equal(cache[i], w) for i, w in zip(val_idx, want, strict=True))
