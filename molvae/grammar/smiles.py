"""SMILES grammar as a decoding constraint: refuse tokens that can no longer lead to a valid SMILES.

A character VAE samples one token at a time and, at temperature 1, writes many strings RDKit
rejects: rings left open, unbalanced branches, over-full valences, aromatic rings that cannot be
kekulized. `SmilesGrammar` keeps, per string, an incremental state of what the prefix has built
(`molvae.grammar.state`): the branch stack, the open ring bonds and their orders, each
atom's bonds, the aromatic atoms still to be kekulized. Whether a token may follow is a table
lookup for that state's view (`molvae.grammar.tables`), so a constrained decoder
(`molvae.model.vae.MolVAE.decode` with ``constraint=``) masks a whole batch's logits per step
instead of parsing every prefix. The decoder's distribution over the allowed tokens is
unchanged up to renormalisation.

The rules are partialsmiles' (a validating parser for incomplete SMILES, by Noel O'Boyle), which
`molvae.grammar.reference.PartialSmilesGrammar` still runs as the reference; RDKit has the
final word when a string ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from molvae.data.tokens import Vocab
from molvae.grammar.atoms import NEVER
from molvae.grammar.checks import molecule_ok
from molvae.grammar.state import ALLOW, FORBID, RowState
from molvae.grammar.tables import tables_for


@dataclass(frozen=True)
class GrammarConfig:
    """How a codec's decoder follows the grammar (see `molvae.model.vae.MolVAE.decode`).

    ``min_mass``: a step is a dead end, and the previous token is chosen again, once the tokens
    it has not refused hold at most this share of the model's probability (tokens are tried in
    the model's order, best first or drawn; each one the grammar refuses is removed).
    ``backtrack``: how many tokens deep it may undo. ``max_ring_size``: the largest ring a
    closure may make (None: any). MOSES ZINC, the bundled model's data, has no ring over 8
    atoms; without the limit, strings the grammar steers to an end close rings late, and
    macrocycles were 4x as frequent (3.1% of samples against 0.7% raw). Set None for a model
    trained on macrocycles.

    ``raw_first`` (`molvae.model.hybrid`): decode every row raw, keep the strings the
    grammar takes, and decode only the others with the grammar. Greedy keeps a string the
    grammar accepts token by token and at eos, so its output is the same string for string (a
    row's raw string is accepted only if its best token is allowed at every step, and then
    constrained greedy takes that token too), at a fraction of the cost. Sampled output changes
    law: a kept row is a draw of the model given z and given that it writes a molecule the eos
    check takes (RDKit, ring size cap; rejection sampling, up to ``raw_tries`` raw draws per
    row), a row refused ``raw_tries`` times a constrained sample. False: every row through the
    grammar, as before.
    """

    backtrack: int = 32
    min_mass: float = 0.1
    max_ring_size: int | None = 8
    raw_first: bool = True
    raw_tries: int = 8

    def __post_init__(self) -> None:
        if self.backtrack < 0 or not 0.0 <= self.min_mass < 1.0:
            raise ValueError("backtrack must be >= 0 and min_mass in [0, 1)")
        if self.max_ring_size is not None and self.max_ring_size < 3:
            raise ValueError("max_ring_size must be at least 3 (or None)")
        if self.raw_tries < 1:
            raise ValueError("raw_tries must be at least 1")


class SmilesGrammar:
    """``allows(prefix, token)``: whether the SMILES so far plus ``token`` can still be valid;
    `start` gives a batch of incremental states for a decoder.

    eos is allowed only after a complete SMILES (rings and branches closed) that RDKit accepts.
    pad, bos and unk are never allowed, nor tokens partialsmiles always refuses (':', unknown
    elements or charges), nor '.' and '*', which it would take (a decoded molecule is one
    fragment of real atoms; neither is in a MOSES-style vocabulary). Like partialsmiles, the
    grammar is stricter than RDKit in a few respects (a SMILES may not end in a branch, nor write
    '))'), forms RDKit never writes in canonical SMILES, so every training molecule passes.
    """

    def __init__(self, vocab: Vocab, max_ring_size: int | None = None):
        self.tokens = list(vocab.tokens)
        self.eos_id = vocab.eos_id
        self.max_ring_size = max_ring_size
        self.tables = tables_for(self.tokens)
        self._never = np.array([k == NEVER for k in self.tables.kind])

    def text(self, prefix: Sequence[int]) -> str:
        """The SMILES written by the token ids ``prefix``."""
        return "".join(self.tokens[i] for i in prefix)

    def state(self, prefix: Sequence[int] = ()) -> RowState | None:
        """The incremental state after ``prefix`` (None where the grammar refuses a token)."""
        st = RowState(self.tables, self.max_ring_size or 0)
        for tok in prefix:
            if tok == self.eos_id or not st.push(tok):
                return None
        return st

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow ``prefix`` (token ids, bos excluded)."""
        st = self.state(prefix)
        return st is not None and self.state_allows(st, token)

    def state_allows(self, st: RowState, token: int) -> bool:
        """Whether ``token`` may follow the state ``st`` (which is left as it was)."""
        if not st.push(token):
            return False
        if token != self.eos_id:
            st.pop()
        return True

    def _eos_at(self, ids: np.ndarray) -> np.ndarray:
        """Per row of ``ids`` (``batch x T``), the position of its first eos (-1: none)."""
        ends = ids == self.eos_id
        return np.where(ends.any(1), ends.argmax(1), -1)

    def ends_valid(self, ids: np.ndarray) -> np.ndarray:
        """Per row of ``ids`` (``batch x T``: tokens, eos, then pad), whether it writes a
        molecule the grammar's eos check takes: an eos, no token the grammar never allows
        before it ('.', '*', specials), then RDKit and the ring size cap on the string.

        Looser than `accepts`, which also asks that partialsmiles' stricter rules allowed every
        token on the way (no string ending in a branch, no 'n(=O)', ...; 0.1-0.2% of the strings
        RDKit takes from the bundled model), and about a quarter of its cost.
        """
        length = self._eos_at(ids)
        before = np.arange(ids.shape[1])[None, :] < length[:, None]
        ok = (length > 0) & ~(self._never[ids] & before).any(1)
        cap, stats = self.max_ring_size or 0, self.tables.stats
        for s in np.flatnonzero(ok).tolist():
            ok[s] = molecule_ok(self.text(ids[s, : length[s]].tolist()), cap, stats)
        return ok

    def start(self, n: int) -> BatchGrammar:
        """Fresh states for ``n`` strings (what `molvae.model.decoding` drives)."""
        return BatchGrammar([RowState(self.tables, self.max_ring_size or 0) for _ in range(n)])

    def accepts(self, ids: np.ndarray) -> np.ndarray:
        """Per row of ``ids`` (``batch x T``: tokens, eos, then pad), whether the grammar allows
        every token and then eos: the verdicts a constrained decoder would reach choosing that
        row's tokens, from the same states (a row without eos is not accepted).

        Walks the batch column by column as `BatchGrammar.fast` does; only the tokens the tables
        cannot decide alone (ring closures, ')', unknown transitions) and eos run per row. A row's
        state is dropped once its eos is checked, and the cyclic garbage collector is paused (the
        states hold no cycles; its full passes over the process's objects, which the many small
        records set off, took about 30% of the time).
        """
        n = len(ids)
        length = self._eos_at(ids)
        ok = length > 0
        with _no_gc():
            batch = self.start(n)
            for t in range(int(length.max(initial=0)) + 1):
                for s in np.flatnonzero(ok & (length == t)).tolist():
                    ok[s] = batch.row(s).push(self.eos_id)
                    batch.rows[s] = None
                slots = np.flatnonzero(ok & (length > t))
                tokens = ids[slots, t]
                took = batch.fast(slots, tokens, np.ones(len(slots), dtype=bool))
                for s, tok in zip(slots[~took].tolist(), tokens[~took].tolist(), strict=True):
                    ok[s] = batch.row(s).push(tok)
                    batch.sync(s)
        return ok


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused (if it ran), for code that makes many small acyclic
    objects; reference counting still frees them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class BatchGrammar:
    """The states of a batch of strings, one per slot, driven by `molvae.grammar.constrained`.

    `masks` reads each slot's view in one table lookup. `fast` takes, for a whole batch at once,
    every chosen token whose verdict is "allowed" and whose next view the tables already know
    (most atoms, bonds, '(' and ring openings): it only moves the slot's view id and queues the
    token. A slot's graph catches up with its queue when `row` hands it to the per-row path
    (ring closures, ')', eos, refusals, backtracking), which ends with `sync`.
    """

    def __init__(self, rows: list[RowState]):
        self.rows = rows
        self.tables = rows[0].g if rows else None
        self.vid = np.array([r.vid for r in rows], dtype=np.int64)
        # per slot, the tokens taken by `fast` and not yet applied to its graph
        self.queue = np.zeros((len(rows), 64), dtype=np.int64)
        self.queued = np.zeros(len(rows), dtype=np.int64)

    def masks(self, slots: np.ndarray) -> np.ndarray:
        """``len(slots) x vocab`` booleans: the tokens each slot's state does not refuse."""
        return self.tables.codes[self.vid[slots]] != FORBID

    def fast(self, slots: np.ndarray, tokens: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """Take ``tokens`` (one per slot) where ``eligible`` and the tables decide alone;
        returns which were taken."""
        t = self.tables
        vids = self.vid[slots]
        nxt = t.trans[vids, tokens]
        ok = eligible & (t.codes[vids, tokens] == ALLOW) & (nxt >= 0)
        took = slots[ok]
        self.vid[took] = nxt[ok]
        at = self.queued[took]
        if len(at) and at.max() >= self.queue.shape[1]:
            self.queue = np.concatenate([self.queue, np.zeros_like(self.queue)], 1)
        self.queue[took, at] = tokens[ok]
        self.queued[took] += 1
        return ok

    def row(self, slot: int) -> RowState:
        """The slot's state with its queued tokens applied."""
        st, n = self.rows[slot], self.queued[slot]
        if n:
            for tok in self.queue[slot, :n].tolist():
                st.replay(tok)
            self.queued[slot] = 0
        return st

    def sync(self, slot: int) -> None:
        """After the per-row path changed ``row(slot)``: its view id back into the batch."""
        self.vid[slot] = self.rows[slot].vid

    def reset(self, slot: int) -> None:
        """A fresh state in ``slot`` (for the next string decoded there)."""
        self.rows[slot] = RowState(self.tables, self.rows[slot].ring_cap)
        self.queued[slot] = 0
        self.vid[slot] = self.rows[slot].vid
