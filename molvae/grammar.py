"""SMILES grammar as a decoding constraint: refuse tokens that can no longer lead to a valid SMILES.

A character VAE samples one token at a time and, at temperature 1, writes many strings RDKit
rejects: rings left open, unbalanced branches, over-full valences, aromatic rings that cannot be
kekulized. `SmilesGrammar` asks partialsmiles (a validating parser for incomplete SMILES, by
Noel O'Boyle) whether a prefix can still be completed, so a constrained decoder
(`molvae.model.MolVAE.decode` with ``constraint=``) skips such tokens instead of emitting them.
The decoder's distribution over the allowed tokens is unchanged up to renormalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import partialsmiles

from molvae.chem import parse
from molvae.tokens import Vocab

_HALOGENS = frozenset((9, 17, 35, 53))


@dataclass(frozen=True)
class GrammarConfig:
    """How a codec's decoder follows the grammar (see `molvae.model.MolVAE.decode`).

    ``min_mass``: a step whose allowed tokens hold at most this share of the model's probability
    is a dead end, and the previous token is chosen again. ``backtrack``: how many tokens deep
    it may undo.
    """

    backtrack: int = 32
    min_mass: float = 0.1

    def __post_init__(self) -> None:
        if self.backtrack < 0 or not 0.0 <= self.min_mass < 1.0:
            raise ValueError("backtrack must be >= 0 and min_mass in [0, 1)")


class SmilesGrammar:
    """``allows(prefix, token)``: whether the SMILES so far plus ``token`` can still be valid.

    eos is allowed only after a complete SMILES that partialsmiles accepts (rings and branches
    closed, common valences, kekulizable). pad, bos and unk are never allowed. partialsmiles is
    stricter than RDKit in a few respects (for example a SMILES may not end in a branch), all of
    them forms RDKit never writes in canonical SMILES, so every training molecule passes.
    """

    def __init__(self, vocab: Vocab):
        self.tokens = list(vocab.tokens)
        self.eos_id = vocab.eos_id
        self._never = {vocab.pad_id, vocab.bos_id, vocab.unk_id}

    def text(self, prefix: Sequence[int]) -> str:
        """The SMILES written by the token ids ``prefix``."""
        return "".join(self.tokens[i] for i in prefix)

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow ``prefix`` (token ids, bos excluded)."""
        if token in self._never:
            return False
        if token == self.eos_id:
            text = self.text(prefix)
            return bool(prefix) and _parses(text, partial=False) and _rdkit_parses(text)
        return _parses(self.text(prefix) + self.tokens[token], partial=True)


def _parses(smiles: str, partial: bool) -> bool:
    """partialsmiles' verdict, plus one rule of RDKit's it leaves open: neutral halogens take a
    single bond (partialsmiles also allows the hypervalent 3, 5 and 7)."""
    try:
        state = partialsmiles.ParseSmiles(smiles, partial=partial)
    except partialsmiles.Error:
        return False
    # bonds a halogen is already promised: open ring bonds, branches opened on it, and a bond
    # symbol written after it
    ring_open = [atom for atom, _ in state.openbonds.values()]
    last = state.prev[-1]
    for atom in state.mol.atoms:
        if atom.element in _HALOGENS and atom.charge == 0:
            promised = ring_open.count(atom) + max(state.prev.count(atom) - 1, 0)
            promised += int(atom is last and bool(state.bondchar))
            if atom.getExplicitValence() + promised > 1:
                return False
    return True


def _rdkit_parses(smiles: str) -> bool:
    """The final word on a complete string, as `molvae.chem.parse` gives it (partialsmiles
    lets a few through that RDKit rejects, such as an aromatic atom outside any ring)."""
    return parse(smiles) is not None
