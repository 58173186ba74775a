from __future__ import annotations

import pytest

from molvae.data import read_smiles
from molvae.data.tokens import SPECIALS, Vocab, tokenize


@pytest.mark.parametrize(
    ("smiles", "tokens"),
    [
        ("CCl", ["C", "Cl"]),
        ("BrC(Br)=O", ["Br", "C", "(", "Br", ")", "=", "O"]),
        ("[NH3+]CC(=O)[O-]", ["[NH3+]", "C", "C", "(", "=", "O", ")", "[O-]"]),
        ("C[C@@H](N)c1ccccc1", ["C", "[C@@H]", "(", "N", ")", "c", "1", *"ccccc", "1"]),
        ("C%12CC%12", ["C", "%12", "C", "C", "%12"]),
        ("F/C=C\\F", ["F", "/", "C", "=", "C", "\\", "F"]),
        ("c1ccc2[nH]ccc2c1", ["c", "1", "c", "c", "c", "2", "[nH]", "c", "c", "c", "2", "c", "1"]),
    ],
)
def test_tokenize_known_cases(smiles: str, tokens: list[str]) -> None:
    assert tokenize(smiles) == tokens


@pytest.mark.parametrize("name", ["zinc", "zinc-test"])
def test_tokenize_round_trip_over_bundled_data(name: str) -> None:
    smiles = read_smiles(name)
    assert len(smiles) > 100_000
    bad = [s for s in smiles if "".join(tokenize(s)) != s]
    assert bad == []


def test_tokenize_round_trip_on_garbage() -> None:
    # Not SMILES at all: the tokenizer must still never lose a character.
    for s in ["", "[", "]]", "%1", "Q!@#$ \n\t", "[Cu+2].[Cl-]", "é💊"]:
        assert "".join(tokenize(s)) == s


def test_vocab_build_encode_decode(zinc_small: list[str]) -> None:
    vocab = Vocab.build(zinc_small)
    assert tuple(vocab.tokens[:4]) == SPECIALS
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    for s in zinc_small:
        ids = vocab.encode(s)
        assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        assert vocab.unk_id not in ids
        assert vocab.decode(ids) == s
        # Padding after eos and anything past eos is ignored.
        assert vocab.decode([*ids, vocab.pad_id, 7, 8]) == s


def test_vocab_unknown_tokens(zinc_small: list[str]) -> None:
    vocab = Vocab.build(zinc_small)
    assert vocab.unknown_tokens("CC[Se]C") == ["[Se]"]
    assert vocab.encode("C[Se]", add_bos_eos=False) == [vocab.index["C"], vocab.unk_id]
    assert vocab.unknown_tokens(zinc_small[0]) == []


def test_vocab_json_round_trip(tmp_path, zinc_small: list[str]) -> None:
    vocab = Vocab.build(zinc_small)
    assert Vocab.from_json(vocab.to_json()) == vocab
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").tokens == vocab.tokens


def test_vocab_rejects_malformed() -> None:
    with pytest.raises(ValueError, match="special tokens"):
        Vocab(["C", "N"])
    with pytest.raises(ValueError, match="repeat"):
        Vocab([*SPECIALS, "C", "C"])
