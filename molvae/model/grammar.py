"""SMILES grammar as a decoding constraint: refuse tokens that can no longer lead to a valid SMILES.

A character VAE samples one token at a time and, at temperature 1, writes many strings RDKit
rejects: rings left open, unbalanced branches, over-full valences, aromatic rings that cannot be
kekulized. `SmilesGrammar` asks partialsmiles (a validating parser for incomplete SMILES, by
Noel O'Boyle) whether a prefix can still be completed, so a constrained decoder
(`molvae.model.vae.MolVAE.decode` with ``constraint=``) skips such tokens instead of emitting them.
The decoder's distribution over the allowed tokens is unchanged up to renormalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import partialsmiles

from molvae.chem import parse
from molvae.data.tokens import Vocab

_HALOGENS = frozenset((9, 17, 35, 53))


@dataclass(frozen=True)
class GrammarConfig:
    """How a codec's decoder follows the grammar (see `molvae.model.vae.MolVAE.decode`).

    ``min_mass``: a step whose allowed tokens hold at most this share of the model's probability
    is a dead end, and the previous token is chosen again. ``backtrack``: how many tokens deep
    it may undo. ``max_ring_size``: the largest ring a closure may make (None: any). MOSES ZINC,
    the bundled model's data, has no ring over 8 atoms; without the limit, strings the grammar
    steers to an end close rings late, and macrocycles were 4x as frequent (3.1% of samples
    against 0.7% raw). Set None for a model trained on macrocycles.
    """

    backtrack: int = 32
    min_mass: float = 0.1
    max_ring_size: int | None = 8

    def __post_init__(self) -> None:
        if self.backtrack < 0 or not 0.0 <= self.min_mass < 1.0:
            raise ValueError("backtrack must be >= 0 and min_mass in [0, 1)")
        if self.max_ring_size is not None and self.max_ring_size < 3:
            raise ValueError("max_ring_size must be at least 3 (or None)")


class SmilesGrammar:
    """``allows(prefix, token)``: whether the SMILES so far plus ``token`` can still be valid.

    eos is allowed only after a complete SMILES that partialsmiles accepts (rings and branches
    closed, common valences, kekulizable). pad, bos and unk are never allowed. partialsmiles is
    stricter than RDKit in a few respects (for example a SMILES may not end in a branch), all of
    them forms RDKit never writes in canonical SMILES, so every training molecule passes.
    """

    def __init__(self, vocab: Vocab, max_ring_size: int | None = None):
        self.tokens = list(vocab.tokens)
        self.eos_id = vocab.eos_id
        self.max_ring_size = max_ring_size
        self._never = {vocab.pad_id, vocab.bos_id, vocab.unk_id}

    def text(self, prefix: Sequence[int]) -> str:
        """The SMILES written by the token ids ``prefix``."""
        return "".join(self.tokens[i] for i in prefix)

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow ``prefix`` (token ids, bos excluded)."""
        if token in self._never:
            return False
        text = self.text(prefix)
        if token == self.eos_id:
            if not prefix or _parse(text, partial=False) is None:
                return False
            mol = parse(text)  # RDKit has the final word (partialsmiles lets a few more through)
            if mol is None:
                return False
            rings = mol.GetRingInfo().AtomRings()
            return not self.max_ring_size or max(map(len, rings), default=0) <= self.max_ring_size
        tok = self.tokens[token]
        state = _parse(text + tok, partial=True)
        if state is None:
            return False
        if self.max_ring_size and tok[-1].isdigit() and not state.openbonds:
            # the digit closed the last open ring, its bond the last one the parser added; while
            # other rings are open they may still make a shortcut, so eos checks those
            return _smallest_ring(state.mol.bonds[-1]) <= self.max_ring_size
        return True


def _smallest_ring(bond) -> int:
    """Atoms in the smallest ring through a partialsmiles ``bond`` (breadth-first search from
    one end to the other without that bond)."""
    start, goal = bond.beg, bond.end
    seen, frontier, depth = {start.idx}, [start], 1
    while frontier:
        depth += 1
        nxt = []
        for atom in frontier:
            for b in atom.bonds:
                if b is bond:
                    continue
                other = b.getNbr(atom)
                if other is goal:
                    return depth
                if other.idx not in seen:
                    seen.add(other.idx)
                    nxt.append(other)
        frontier = nxt
    return 0  # not in a ring (cannot happen for a closure bond)


def _parse(smiles: str, partial: bool):
    """partialsmiles' parse state, or None where it finds an error; plus one rule of RDKit's it
    leaves open: neutral halogens take a single bond (it allows the hypervalent 3, 5 and 7)."""
    try:
        state = partialsmiles.ParseSmiles(smiles, partial=partial)
    except partialsmiles.Error:
        return None
    # bonds a halogen is already promised: open ring bonds, branches opened on it, and a bond
    # symbol written after it
    ring_open = [atom for atom, _ in state.openbonds.values()]
    last = state.prev[-1]
    for atom in state.mol.atoms:
        if atom.element in _HALOGENS and atom.charge == 0:
            promised = ring_open.count(atom) + max(state.prev.count(atom) - 1, 0)
            promised += int(atom is last and bool(state.bondchar))
            if atom.getExplicitValence() + promised > 1:
                return None
    return state
