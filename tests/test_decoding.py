"""Grammar-constrained decoding with the incremental grammar: the batched path (masks, the
vectorized first choice, table transitions, slots) makes the same choices as asking the grammar
token by token, and the per-string state undoes exactly what it did."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from molvae.chem import is_valid
from molvae.data.tokens import tokenize
from molvae.model import LatentCodec, decoding
from molvae.model.grammar import SmilesGrammar
from molvae.resources import resolve_model

DATA = Path(__file__).resolve().parents[1] / "data" / "zinc" / "test.csv.gz"


@pytest.fixture(scope="module")
def codec() -> LatentCodec:
    return LatentCodec.from_checkpoint(resolve_model("default"), device="cpu")


@pytest.fixture(scope="module")
def zinc(codec) -> list[list[int]]:
    with gzip.open(DATA, "rt") as f:
        rows = [line.strip().split(",")[0] for line, _ in zip(f, range(301), strict=False)][1:]
    return [
        codec.vocab.encode(s, add_bos_eos=False) for s in rows if not codec.vocab.unknown_tokens(s)
    ]


class TokenByToken:
    """The same grammar seen only through ``allows(prefix, token)``: the decoder then takes its
    per-row path for every choice (no masks, no table transitions), as before the batch state."""

    def __init__(self, grammar: SmilesGrammar):
        self.grammar = grammar

    def allows(self, prefix, token) -> bool:
        return self.grammar.allows(prefix, token)


def decode(codec, z, strategy, constraint, seed=1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return codec.model.decode(
        z, strategy, generator=gen, constraint=constraint, backtrack=32, min_mass=0.1, amp=False
    )


def test_batched_path_chooses_as_token_by_token(codec) -> None:
    """Greedy decoding has no randomness, so the batched path (masked tokens count as refusals
    in the order the model ranks them) must reproduce the per-row path exactly, backtracking
    and given-up rows included."""
    z = torch.randn(24, codec.latent_dim, generator=torch.Generator().manual_seed(3))
    grammar = SmilesGrammar(codec.vocab, 8)
    batched = decode(codec, z, "greedy", grammar)
    assert torch.equal(batched, decode(codec, z, "greedy", TokenByToken(grammar)))
    ended = [row for row in batched.tolist() if codec.vocab.eos_id in row]
    assert len(ended) > 12 and all(is_valid(codec.vocab.decode(r)) for r in ended)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_rows_in_flight_do_not_change_the_strings(codec, monkeypatch, strategy) -> None:
    """With 3 rows in flight the others wait for a slot; each row's string is the same as with
    all in flight (greedy), and seeded runs repeat (sampled)."""
    z = torch.randn(10, codec.latent_dim, generator=torch.Generator().manual_seed(4))
    grammar = SmilesGrammar(codec.vocab, 8)
    wide = decode(codec, z, strategy, grammar)
    monkeypatch.setattr(decoding, "CONSTRAINED_WINDOW", 3)
    narrow = decode(codec, z, strategy, grammar)
    assert torch.equal(narrow, decode(codec, z, strategy, grammar))
    if strategy == "greedy":
        assert torch.equal(narrow, wide)


def test_pop_undoes_push(codec, zinc) -> None:
    grammar = SmilesGrammar(codec.vocab, 8)
    st = grammar.state([])
    views = [st.vid]
    for seq in zinc[:50]:
        for tok in seq:
            assert st.push(tok)
            views.append(st.vid)
        for _ in seq:
            views.pop()
            st.pop()
            assert st.vid == views[-1]
        assert not st.trail and not st.atoms and not st.openb and st.text() == ""


def test_masks_never_hide_an_allowed_token(codec, zinc) -> None:
    """A token the mask hides is one the grammar refuses; one it shows may still be refused by a
    check on the whole string (a ring closure, eos, a finished aromatic ring)."""
    grammar = SmilesGrammar(codec.vocab, 8)
    batch = grammar.start(1)
    vocab = range(len(codec.vocab))
    for seq in zinc[:30]:
        batch.reset(0)
        for tok in seq:
            st = batch.row(0)
            mask = batch.masks(np.array([0]))[0]
            allowed = [grammar.state_allows(st, t) for t in vocab]
            assert all(mask[t] for t in vocab if allowed[t])
            assert st.push(tok)
            batch.sync(0)


def test_table_transitions_match_the_graph(codec, zinc) -> None:
    """After a batch takes tokens by table transition alone, its rows catch up to the same
    state (view and text) as a row that pushed every token."""
    grammar = SmilesGrammar(codec.vocab, 8)
    for seq in zinc[:40]:  # teach the tables the transitions
        st = grammar.state(seq)
    seqs = zinc[40:80]
    batch = grammar.start(len(seqs))
    slots = np.arange(len(seqs))
    for t in range(max(map(len, seqs))):
        for s in slots[[t < len(q) for q in seqs]].tolist():
            tok = np.array([seqs[s][t]])
            if not batch.fast(np.array([s]), tok, np.array([True]))[0]:
                assert batch.row(s).push(seqs[s][t])
                batch.sync(s)
    for s, seq in enumerate(seqs):
        st = grammar.state(seq)
        assert batch.row(s).text() == st.text() == "".join(tokenize(st.text()))
        assert batch.vid[s] == batch.rows[s].vid == st.vid
