from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from molvae.chem import canonical
from molvae.data.tokens import Vocab
from molvae.model import LatentCodec, MolVAE, VAEConfig
from molvae.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from molvae.resources import BUNDLED_MODELS, resolve_model


@pytest.fixture
def saved(tmp_path, zinc_small):
    vocab = Vocab.build(zinc_small)
    torch.manual_seed(0)
    model = MolVAE(VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=4, dec_hidden=16))
    meta = {"trained_on": tmp_path / "unit.smi", "epochs": 0, "score": np.float32(0.5)}
    path = save_checkpoint(tmp_path / "m.pt", model, vocab.tokens, meta=meta)
    return path, model, vocab


class Payload:
    """Unpickling this would run a shell command (it must never be unpickled)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_gives_identical_decodes(saved) -> None:
    path, model, vocab = saved
    ck = load_checkpoint(path)
    assert ck.config == model.config and ck.vocab() == vocab
    assert ck.meta["trained_on"].endswith("unit.smi") and ck.meta["score"] == 0.5
    assert ck.meta["versions"]["torch"] == torch.__version__
    assert ck.train_state is None
    loaded = MolVAE.from_checkpoint(ck, "cpu")
    assert not loaded.training
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    model.eval()
    assert torch.equal(model.decode(z), loaded.decode(z))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(
        model.decode(z, "sample", generator=g1), loaded.decode(z, "sample", generator=g2)
    )


def test_file_is_plain_weights_only_dict(saved) -> None:
    path, model, vocab = saved
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == 1 and raw["vocab"] == vocab.tokens
    assert raw["config"] == model.config.to_dict()
    assert set(raw["state_dict"]) == set(model.state_dict())


def test_train_state_round_trips(tmp_path, saved) -> None:
    _, model, vocab = saved
    state = {"epoch": 3, "step": 10, "rng": {"torch": torch.get_rng_state(), "py": [1, [2, 3]]}}
    path = save_checkpoint(tmp_path / "last.pt", model, vocab.tokens, train_state=state)
    ts = load_checkpoint(path).train_state
    assert ts["epoch"] == 3 and ts["rng"]["py"] == [1, [2, 3]]
    assert torch.equal(ts["rng"]["torch"], state["rng"]["torch"])


def test_atomic_save_leaves_no_temp_files(tmp_path, saved) -> None:
    _, model, vocab = saved
    for _ in range(2):
        save_checkpoint(tmp_path / "sub" / "x.pt", model, vocab.tokens)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.pt"]


def test_missing_file_is_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file_is_refused(tmp_path, saved) -> None:
    path = saved[0]
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt.*damaged"):
        load_checkpoint(bad)


def test_text_file_is_refused(tmp_path) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt"):
        load_checkpoint(bad)


def test_foreign_dict_and_wrong_format_are_refused(tmp_path, saved) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a molvae checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    raw = torch.load(saved[0], weights_only=True)
    torch.save({**raw, "format": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({**raw, "config": {**raw["config"], "vocab_size": 3}}, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="vocab"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, saved) -> None:
    marker = tmp_path / "pwned"
    raw = torch.load(saved[0], weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**raw, "meta": {"x": Payload(str(marker))}}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_every_bundled_model_is_a_plain_checkpoint_that_writes_molecules(name) -> None:
    """Each bundled model loads with weights_only=True and its greedy decodes of its own
    encodings of a few ZINC molecules come back mostly exact."""
    path = resolve_model(name)
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert raw["format"] == 1 and "state_dict" in raw
    codec = LatentCodec.from_checkpoint(path, device="cpu")
    smiles = [
        "CC(=O)Nc1ccc(Cl)cc1C(=O)N1CCCC1",
        "COc1ccc(CNC(=O)c2cccs2)cc1",
        "Cc1ccc(S(N)(=O)=O)cc1",
    ]
    z = codec.encode(smiles).z
    back = codec.decode(z, "greedy")
    assert sum(canonical(a) == canonical(b) for a, b in zip(smiles, back, strict=True)) >= 2
