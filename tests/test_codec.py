from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import ZINC_SMALL, overfit_tiny_codec

from molvae.model import LatentCodec
from molvae.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def trained():
    """A tiny model overfitted on the 8 fixture molecules (shared by the module's tests)."""
    return overfit_tiny_codec(), list(ZINC_SMALL)


def test_properties(trained) -> None:
    codec, _ = trained
    assert codec.latent_dim == 8 and codec.max_len == 50


def test_encodable_reasons(trained) -> None:
    codec, smiles = trained
    assert codec.encodable(smiles[0]) is None
    assert codec.encodable("") == "empty"
    assert codec.encodable("C" * 49) == "too_long"
    assert codec.encodable("C" * 48) is None  # max_len - 2: room for bos and eos
    assert codec.encodable("C[Pt]CC[Pt]Xx") == "unknown_tokens:[Pt],X,x"


def test_encode_reports_bad_rows_without_crashing(trained) -> None:
    codec, smiles = trained
    batch = [smiles[0], "", "C" * 60, "C[Pt]C", smiles[1]]
    res = codec.encode(batch, batch_size=1)
    assert res.z.shape == (5, 8) and res.z.dtype == torch.float32 and res.z.device.type == "cpu"
    assert res.ok.tolist() == [True, False, False, False, True]
    assert res.reason == ["", "empty", "too_long", "unknown_tokens:[Pt]", ""]
    assert torch.isnan(res.z[1:4]).all() and torch.isfinite(res.z[[0, 4]]).all()
    # batching does not change the result
    assert torch.allclose(res.z[[0, 4]], codec.encode([smiles[0], smiles[1]]).z, atol=1e-5)


def test_sampled_encoding_is_seeded(trained) -> None:
    codec, smiles = trained
    a = codec.encode(smiles, sample=True, generator=torch.Generator().manual_seed(0)).z
    b = codec.encode(smiles, sample=True, generator=torch.Generator().manual_seed(0)).z
    assert torch.equal(a, b) and not torch.equal(a, codec.encode(smiles).z)


def test_reconstruct_round_trips_through_vocab(trained) -> None:
    codec, smiles = trained
    assert codec.reconstruct(smiles) == smiles
    assert codec.reconstruct(smiles, strategy="beam", beam_width=3) == smiles
    assert codec.decode(codec.encode(smiles).z, batch_size=3) == smiles
    assert codec.reconstruct(["", smiles[2], "C[Pt]"]) == [None, smiles[2], None]


def test_decode_attempts_first_is_greedy(trained) -> None:
    codec, smiles = trained
    z = codec.encode(smiles[:3]).z
    att = codec.decode_attempts(z, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert [len(a) for a in att] == [4, 4, 4]
    assert [a[0] for a in att] == smiles[:3]
    again = codec.decode_attempts(z, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert att == again
    assert codec.decode_attempts(z, 1) == [[s] for s in smiles[:3]]


def test_sample_is_seeded(trained) -> None:
    codec, _ = trained
    z1, s1 = codec.sample(6, strategy="sample", seed=3)
    z2, s2 = codec.sample(6, strategy="sample", seed=3)
    assert torch.equal(z1, z2) and s1 == s2 and len(s1) == 6 and z1.shape == (6, 8)
    assert all(isinstance(s, str) for s in s1)


def test_from_checkpoint(tmp_path, trained) -> None:
    codec, smiles = trained
    path = save_checkpoint(tmp_path / "m.pt", codec.model, codec.vocab.tokens)
    loaded = LatentCodec.from_checkpoint(path, device="cpu")
    assert loaded.reconstruct(smiles) == smiles
    assert torch.equal(loaded.encode(smiles).z, codec.encode(smiles).z)


def test_read_latents_from_npy_and_csv(tmp_path) -> None:
    import pandas as pd

    from molvae.data import DataError, read_latents

    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    z[1, 2] = np.nan  # NaN rows stay: decode reports them as no_latent
    np.save(tmp_path / "z.npy", z)
    df = pd.DataFrame(z, columns=[f"z{i}" for i in range(4)])
    # columns out of order, plus others, as a user's spreadsheet may have them
    df[["z3", "z1", "z0", "z2"]].assign(smiles="C").to_csv(tmp_path / "z.csv", index=False)
    np.testing.assert_array_equal(read_latents(tmp_path / "z.npy", 4), z)
    np.testing.assert_array_equal(read_latents(tmp_path / "z.csv", 4), z)
    with pytest.raises(ValueError, match="needs n x 5"):
        read_latents(tmp_path / "z.npy", 5)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="not a readable"):
        read_latents(tmp_path / "obj.npy", 4)  # pickled objects are refused, never loaded
    with pytest.raises(DataError, match="no such file"):
        read_latents(tmp_path / "missing.npy", 4)


def test_grammar_constrained_strings_that_end_are_valid(trained) -> None:
    """Every constrained row that emits eos is a molecule RDKit accepts; the codec decodes
    through exactly the grammar it is configured with; a seeded run repeats itself.

    Nothing here counts valid strings or compares two decoders' counts: sampled decoding rounds
    differently on other CPUs (AVX2 against AVX-512/AMX), and a count can move with it.
    """
    from molvae.chem import is_valid
    from molvae.grammar.smiles import SmilesGrammar

    codec, smiles = trained
    g, vocab = codec.grammar, codec.vocab
    near = codec.encode(smiles).z.repeat(8, 1)  # around the 8 molecules it was fitted on
    z = near + 0.5 * torch.randn(near.shape, generator=torch.Generator().manual_seed(0))

    def decode() -> torch.Tensor:
        return codec.model.decode(z, "sample", generator=torch.Generator().manual_seed(1),
                                  constraint=SmilesGrammar(vocab, g.max_ring_size),
                                  backtrack=g.backtrack, min_mass=g.min_mass)  # fmt: skip

    ids = decode()
    assert torch.equal(ids, decode())
    ended = [row for row in ids.tolist() if vocab.eos_id in row]
    assert ended and all(is_valid(vocab.decode(row)) for row in ended)
    every_row = dataclasses.replace(g, raw_first=False)  # the grammar for every row
    codec.grammar = every_row
    try:
        through_codec = codec.decode(z, "sample", generator=torch.Generator().manual_seed(1))
    finally:
        codec.grammar = g
    assert through_codec == [vocab.decode(row) for row in ids.tolist()]


def test_raw_first_keeps_each_accepted_raw_draw_in_place(trained, monkeypatch) -> None:
    """Raw and grammar decodings of one seed differ only where the grammar refused the raw
    draw, however many rows (here: many more than one constrained window)."""
    from molvae.grammar.smiles import GrammarConfig, SmilesGrammar
    from molvae.model import codec as codec_module

    monkeypatch.setattr(codec_module, "CONSTRAINED_WINDOW", 1)  # windows of 16 rows
    codec, smiles = trained
    near = codec.encode(smiles).z.repeat(12, 1)  # 96 rows
    z = near + 1.5 * torch.randn(near.shape, generator=torch.Generator().manual_seed(0))

    def draw(grammar: GrammarConfig | None) -> list[str]:
        codec.grammar = grammar
        return codec.decode(z, "sample", batch_size=8, generator=torch.Generator().manual_seed(3))

    g = codec.grammar
    try:
        raw, through = draw(None), draw(GrammarConfig())
    finally:
        codec.grammar = g
    gen, pad = torch.Generator().manual_seed(3), codec.vocab.pad_id
    parts = [
        codec.model.decode(z[s : s + 8], "sample", generator=gen).numpy() for s in range(0, 96, 8)
    ]
    width = max(p.shape[1] for p in parts)
    ids = np.concatenate(
        [np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=pad) for p in parts]
    )
    assert [codec.vocab.decode(row) for row in ids.tolist()] == raw  # the raw draws, replayed
    ok = SmilesGrammar(codec.vocab, GrammarConfig().max_ring_size).ends_valid(ids)
    assert ok.any() and (~ok).any()  # both kinds of row are there
    assert [t for t, r, k in zip(through, raw, ok, strict=True) if k] == [
        r for r, k in zip(raw, ok, strict=True) if k
    ]
