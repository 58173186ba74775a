from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from molvae.grammar import SmilesGrammar
from molvae.tokens import Vocab, tokenize

DATA = Path(__file__).resolve().parents[1] / "data" / "zinc" / "train.csv.gz"


@pytest.fixture(scope="module")
def train_smiles() -> list[str]:
    with gzip.open(DATA, "rt") as f:
        rows = [line.strip().split(",")[0] for line, _ in zip(f, range(1001), strict=False)]
    return rows[1:]  # header


@pytest.fixture(scope="module")
def grammar(train_smiles) -> SmilesGrammar:
    return SmilesGrammar(Vocab.build(train_smiles))


def ids(grammar: SmilesGrammar, smiles: str) -> list[int]:
    index = {t: i for i, t in enumerate(grammar.tokens)}
    return [index[t] for t in tokenize(smiles)]


def test_every_prefix_of_real_molecules_is_allowed(grammar, train_smiles) -> None:
    """A constraint that refused any token of a training molecule would distort decoding."""
    for smiles in train_smiles:
        seq = ids(grammar, smiles)
        for t in range(len(seq)):
            assert grammar.allows(seq[:t], seq[t]), (smiles, grammar.text(seq[: t + 1]))
        assert grammar.allows(seq, grammar.eos_id), smiles


@pytest.mark.parametrize(
    ("prefix", "token", "why"),
    [
        ("", ")", "a close parenthesis before any atom"),
        ("CC", ")", "an unmatched close parenthesis"),
        ("C(", ")", "an empty branch"),
        ("CC(C)(C)(C)", "C", "a fifth bond on carbon"),
        ("CBr", "=", "a double bond on a halogen"),
        ("CCl", "C", "a second bond on a halogen"),
        ("C=", "=", "two bond symbols in a row"),
        ("CBr", "(", "a branch on a halogen"),
        ("CCl", "1", "a ring bond on a halogen"),
    ],
)
def test_refuses_tokens_that_cannot_lead_to_a_valid_smiles(grammar, prefix, token, why) -> None:
    index = {t: i for i, t in enumerate(grammar.tokens)}
    assert not grammar.allows(ids(grammar, prefix), index[token]), why


@pytest.mark.parametrize(
    ("smiles", "why"),
    [
        ("c1ccccc", "a ring left open"),
        ("CC(C", "a branch left open"),
        ("CC=", "a dangling bond"),
        ("c1cccc1", "five aromatic carbons cannot be kekulized"),
        ("c1ccs1", "a four-membered thiophene"),
        ("CC(C)oC", "an aromatic atom outside any ring (partialsmiles lets it pass, RDKit not)"),
    ],
)
def test_eos_only_after_a_complete_valid_smiles(grammar, smiles, why) -> None:
    assert not grammar.allows(ids(grammar, smiles), grammar.eos_id), why
    assert not grammar.allows([], grammar.eos_id)  # the empty string is no molecule


def test_special_tokens_are_never_allowed(grammar) -> None:
    for special in (0, 1, 3):  # pad, bos, unk
        assert not grammar.allows(ids(grammar, "CC"), special)
