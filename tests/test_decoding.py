"""Grammar-constrained decoding with the incremental grammar: the batched path (masks, the
vectorized first choice, table transitions, slots) makes the same choices as asking the grammar
token by token, and the per-string state undoes exactly what it did. Raw first
(`molvae.model.hybrid`) keeps the raw strings the grammar accepts, which for greedy
decoding are the constrained decoder's own."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ZINC_SMALL, overfit_tiny_codec

from molvae.chem import is_valid
from molvae.data.tokens import tokenize
from molvae.grammar.smiles import GrammarConfig, SmilesGrammar
from molvae.model import LatentCodec, decoding
from molvae.model.hybrid import decode_raw_first
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


class Scripted:
    """A stand-in model for `decode_raw_first`: z's first column is the row's index; a row's
    k-th raw draw is ``draws[k][row]``, its constrained decoding ``fallback[row]`` (SMILES)."""

    def __init__(self, vocab, draws: list[list[str]], fallback: list[str]):
        self.config = SimpleNamespace(pad_id=vocab.pad_id)
        self.vocab, self.draws, self.fallback = vocab, draws, fallback
        self.calls: list[tuple[str, list[int]]] = []

    def decode(self, z, strategy, temperature=1.0, generator=None, constraint=None, **kw):
        rows = z[:, 0].long().tolist()
        kind = "raw" if constraint is None else "grammar"
        drawn = [sum(r in c[1] for c in self.calls if c[0] == "raw") for r in rows]
        self.calls.append((kind, rows))
        smiles = [self.draws[k][r] if kind == "raw" else self.fallback[r]
                  for r, k in zip(rows, drawn, strict=True)]  # fmt: skip
        ids = [[*self.vocab.encode(s, add_bos_eos=False), self.vocab.eos_id] for s in smiles]
        out = torch.zeros(len(rows), max(map(len, ids)), dtype=torch.long)
        for i, seq in enumerate(ids):
            out[i, : len(seq)] = torch.tensor(seq)
        return out


def raw_first(model, n, strategy, tries, batch_size=2) -> list[str]:
    z = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 2)
    grammar = SmilesGrammar(model.vocab, 8)
    ids = decode_raw_first(model, z, strategy, 1.0, None, grammar, GrammarConfig(raw_tries=tries),
                           batch_size)  # fmt: skip
    return [model.vocab.decode(row) for row in ids.tolist()]


def test_raw_first_keeps_accepted_draws_and_sends_the_rest_to_the_grammar(codec) -> None:
    """Rows keep their first draw the grammar accepts (in ``batch_size`` chunks, widths
    merged); greedy draws once; sampled rows refused ``raw_tries`` times, and only they, are
    decoded with the grammar; a draw that keeps under a fifth of its rows is the last."""
    draws = [["CCO", "C1CC", "c1cccc1", "CC(=O)NCCCCCCCc1ccccc1"],
             ["CC", "C1CC1", "CC(", "C"],
             ["N", "N", "C1CCCCCCCC1", "O"]]  # fmt: skip
    model = Scripted(codec.vocab, draws, ["F", "FF", "FFF", "FFFF"])
    assert raw_first(model, 4, "greedy", 3) == ["CCO", "FF", "FFF", "CC(=O)NCCCCCCCc1ccccc1"]
    assert model.calls == [("raw", [0, 1]), ("raw", [2, 3]), ("grammar", [1, 2])]
    model.calls = []
    assert raw_first(model, 4, "sample", 3) == ["CCO", "C1CC1", "FFF", "CC(=O)NCCCCCCCc1ccccc1"]
    assert [c for c in model.calls if c[0] == "grammar"] == [("grammar", [2])]
    model = Scripted(codec.vocab, [["C1", "C1", "C1", "C1", "CC", "C1"], *draws[1:]], ["F"] * 6)
    assert raw_first(model, 6, "sample", 3, batch_size=8) == ["F"] * 4 + ["CC", "F"]
    assert model.calls == [("raw", list(range(6))), ("grammar", [0, 1, 2, 3, 5])]


@pytest.fixture(scope="module")
def tiny() -> LatentCodec:
    """A tiny overfitted model: near the fixture molecules it writes them back, further out
    strings the grammar refuses (so both paths of raw first are taken)."""
    return overfit_tiny_codec()


def test_raw_first_greedy_is_the_constrained_greedy_on_a_tiny_model(tiny) -> None:
    near = tiny.encode(list(ZINC_SMALL)).z.repeat(25, 1)
    z = near + torch.randn(near.shape, generator=torch.Generator().manual_seed(0))
    assert_raw_first_greedy_is_exact(tiny, z, 0.2)


@pytest.mark.slow
def test_raw_first_greedy_is_the_constrained_greedy(codec) -> None:
    """Where the grammar accepts a row's raw greedy string, constrained greedy decoding writes
    the same string; so raw first changes no greedy string (here 300 latents; the slow test
    below: 3,000)."""
    z = torch.randn(300, codec.latent_dim, generator=torch.Generator().manual_seed(5))
    assert_raw_first_greedy_is_exact(codec, z)


@pytest.mark.slow
def test_raw_first_greedy_is_the_constrained_greedy_on_thousands(codec) -> None:
    gen = torch.Generator().manual_seed(6)
    z = torch.cat([torch.randn(1500, codec.latent_dim, generator=gen),
                   codec.sample_latents(1500, generator=gen)])  # fmt: skip
    assert_raw_first_greedy_is_exact(codec, z)


def assert_raw_first_greedy_is_exact(codec: LatentCodec, z: torch.Tensor, least=0.5) -> None:
    kept = SmilesGrammar(codec.vocab, 8).accepts(codec.model.decode(z, "greedy").numpy())
    assert least < kept.mean() < 0.95  # both paths are taken
    try:
        codec.grammar = GrammarConfig(raw_first=False)
        every_row = codec.decode(z, "greedy")
        codec.grammar = GrammarConfig(raw_first=True)
        assert codec.decode(z, "greedy") == every_row
    finally:
        codec.grammar = GrammarConfig()


def test_raw_first_off_is_the_constrained_decoder_and_on_repeats_when_seeded(codec) -> None:
    """``raw_first=False`` decodes every row through the grammar as `MolVAE.decode` does with a
    constraint; raw first, a seeded sample repeats and its rows end valid."""
    z = torch.randn(60, codec.latent_dim, generator=torch.Generator().manual_seed(7))
    config = GrammarConfig(raw_first=False)
    try:
        codec.grammar = config
        off = codec.decode(z, "sample", generator=torch.Generator().manual_seed(2))
        direct = codec.model.decode(
            z, "sample", generator=torch.Generator().manual_seed(2),
            constraint=SmilesGrammar(codec.vocab, 8), backtrack=32, min_mass=0.1,
        )  # fmt: skip
        assert off == [codec.vocab.decode(row) for row in direct.tolist()]
        codec.grammar = GrammarConfig(raw_first=True)
        first, again = (codec.sample(60, "sample", seed=4)[1] for _ in range(2))
        assert first == again and sum(map(is_valid, first)) >= 54
    finally:
        codec.grammar = GrammarConfig()
