from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from molvae.data.tokens import Vocab, tokenize
from molvae.grammar.reference import PartialSmilesGrammar
from molvae.grammar.smiles import GrammarConfig, SmilesGrammar

DATA = Path(__file__).resolve().parents[1] / "data" / "zinc" / "train.csv.gz"


@pytest.fixture(scope="module")
def train_smiles() -> list[str]:
    with gzip.open(DATA, "rt") as f:
        rows = [line.strip().split(",")[0] for line, _ in zip(f, range(1001), strict=False)]
    return rows[1:]  # header


# every behaviour holds for the incremental grammar and for its reference, partialsmiles
GRAMMARS = [SmilesGrammar, PartialSmilesGrammar]


@pytest.fixture(scope="module", params=GRAMMARS, ids=["incremental", "partialsmiles"])
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def grammar(train_smiles, kind) -> SmilesGrammar:
    return kind(Vocab.build(train_smiles))


def ids(grammar: SmilesGrammar, smiles: str) -> list[int]:
    index = {t: i for i, t in enumerate(grammar.tokens)}
    return [index[t] for t in tokenize(smiles)]


def walk(grammar, seq: list[int]) -> list[bool]:
    """Whether each token of ``seq``, then eos, is allowed after the tokens before it (the
    incremental grammar carries its state along; the reference parses every prefix)."""
    if isinstance(grammar, PartialSmilesGrammar):
        return [grammar.allows(seq[:t], tok) for t, tok in enumerate([*seq, grammar.eos_id])]
    st, out = grammar.state([]), []
    for tok in seq:
        out.append(st.push(tok))
    return [*out, grammar.state_allows(st, grammar.eos_id)]


def some(smiles: list[str], grammar) -> list[str]:
    """All molecules for the incremental grammar; the first 250 for the slow reference (the
    property test, tests/test_grammar_property.py, holds the two against each other)."""
    return smiles[:250] if isinstance(grammar, PartialSmilesGrammar) else smiles


def test_every_prefix_of_real_molecules_is_allowed(grammar, train_smiles) -> None:
    """A constraint that refused any token of a training molecule would distort decoding."""
    for smiles in some(train_smiles, grammar):
        assert all(walk(grammar, ids(grammar, smiles))), smiles


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


def test_max_ring_size_refuses_only_closures_of_larger_rings(train_smiles, kind) -> None:
    capped = kind(Vocab.build(train_smiles), max_ring_size=8)
    index = {t: i for i, t in enumerate(capped.tokens)}
    assert capped.allows(ids(capped, "C1CCCCCCC"), index["1"])  # cyclooctane: 8 atoms
    assert not capped.allows(ids(capped, "C1CCCCCCCC"), index["1"])  # 9 atoms
    assert capped.allows(ids(capped, "C1CC1CCCCCCCC"), index["1"])  # a label reused opens
    # the smallest ring counts: closing across a fused system makes a small ring, not a big one
    assert capped.allows(ids(capped, "C12CCCCC2CCC"), index["1"])
    assert capped.allows(ids(capped, "C1CCCCCCCC"), index["C"])  # no closure, nothing to check
    uncapped = kind(Vocab.build(train_smiles))
    assert uncapped.allows(ids(capped, "C1CCCCCCCC"), index["1"])
    for smiles in some(train_smiles, capped):  # MOSES ZINC has no ring over 8 atoms
        assert all(walk(capped, ids(capped, smiles))), smiles


def test_max_ring_size_checks_rings_closed_while_others_were_open_at_eos(
    train_smiles, kind
) -> None:
    capped = kind(Vocab.build(train_smiles), max_ring_size=8)
    seq = ids(capped, "C2CC1CCCCCCCC1C2")  # a 9-ring closed while ring 2 was open, then a 5-ring
    assert all(capped.allows(seq[:t], seq[t]) for t in range(len(seq)))
    assert not capped.allows(seq, capped.eos_id)
    assert kind(Vocab.build(train_smiles)).allows(seq, capped.eos_id)


def test_accepts_is_the_token_by_token_verdict(train_smiles) -> None:
    """`SmilesGrammar.accepts` on a batch (molecules, broken strings, prefixes, rows without
    eos) says what pushing each row's tokens and then eos one by one says."""
    grammar = SmilesGrammar(Vocab.build(train_smiles), max_ring_size=8)
    broken = ["c1ccccc", "CC(C", "CC=", "c1cccc1", "c1ccs1", "CC(C)oC", "C1CCCCCCCC1", "C1CC1"]
    seqs = [ids(grammar, s) for s in train_smiles[:150] + broken]
    seqs += [seq[: len(seq) // 2] for seq in map(partial(ids, grammar), train_smiles[150:250])]
    width = max(map(len, seqs)) + 2
    rows = np.zeros((len(seqs) + 2, width), dtype=np.int64)  # pad
    for r, seq in enumerate(seqs):
        rows[r, : len(seq) + 1] = [*seq, grammar.eos_id]
    rows[-2, : len(seqs[0])] = seqs[0]  # a molecule without eos: cut at max_len
    rows[-1, 0] = grammar.eos_id  # the empty string
    expected = [all(walk(grammar, seq)) for seq in seqs] + [False, False]
    got = grammar.accepts(rows)
    assert got.tolist() == expected
    assert 150 <= sum(expected) < len(expected) - 50  # both verdicts are exercised


def test_ends_valid_is_the_eos_check_alone(train_smiles) -> None:
    """`SmilesGrammar.ends_valid` takes what RDKit and the ring cap take at eos, including forms
    only partialsmiles refuses (a string ending in a branch), and nothing without an eos or
    with a token the grammar never allows (pad) before it."""
    grammar = SmilesGrammar(Vocab.build(train_smiles), max_ring_size=8)
    cases = {"CCO": True, "CC(C)": True, "c1ccccc1": True, "C1CC": False, "CC(C": False,
             "c1cccc1": False, "C1CCCCCCCC1": False}  # fmt: skip
    seqs = [ids(grammar, s) for s in cases]
    rows = np.zeros((len(seqs) + 3, 12), dtype=np.int64)
    for r, seq in enumerate(seqs):
        rows[r, : len(seq) + 1] = [*seq, grammar.eos_id]
    rows[-3, :3] = seqs[0]  # no eos
    rows[-2, 0] = grammar.eos_id  # the empty string
    rows[-1, :5] = [*seqs[0][:2], 0, seqs[0][2], grammar.eos_id]  # pad inside: "CC" pad "O"
    assert grammar.ends_valid(rows).tolist() == [*cases.values(), False, False, False]
    assert grammar.accepts(rows).tolist() == [True, False, True] + [False] * 7
    uncapped = SmilesGrammar(Vocab.build(train_smiles))
    assert uncapped.ends_valid(rows[6:7]).tolist() == [True]


def test_grammar_config_checks_raw_tries() -> None:
    assert GrammarConfig(raw_tries=1).raw_tries == 1
    with pytest.raises(ValueError, match="raw_tries"):
        GrammarConfig(raw_tries=0)
