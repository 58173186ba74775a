"""The reference grammar: partialsmiles parses each whole prefix, and a checker that holds the
incremental grammar (`molvae.grammar.smiles.SmilesGrammar`) against it.

`PartialSmilesGrammar` is the grammar decoding used before the incremental state existed: it
asks partialsmiles (a validating parser for incomplete SMILES, by Noel O'Boyle) whether a prefix
can still be completed, which costs a parse of the whole prefix per token (O(L^2) per string).
It stays as the specification: `compare_grammars` runs both over every prefix of given strings
and counts where they disagree (pipelines/benchmarks/grammar_property.py, tests).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import partialsmiles

from molvae.chem import is_valid, parse
from molvae.data.tokens import Vocab
from molvae.grammar.atoms import HALOGENS


class PartialSmilesGrammar:
    """``allows(prefix, token)`` by partialsmiles: eos only after a complete SMILES it and RDKit
    accept (within ``max_ring_size``); pad, bos and unk never. Slow; the reference."""

    def __init__(self, vocab: Vocab, max_ring_size: int | None = None):
        self.tokens = list(vocab.tokens)
        self.eos_id = vocab.eos_id
        self.max_ring_size = max_ring_size
        self._never = {vocab.pad_id, vocab.bos_id, vocab.unk_id}

    def text(self, prefix: Sequence[int]) -> str:
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
        if atom.element in HALOGENS and atom.charge == 0:
            promised = ring_open.count(atom) + max(state.prev.count(atom) - 1, 0)
            promised += int(atom is last and bool(state.bondchar))
            if atom.getExplicitValence() + promised > 1:
                return None
    return state


@dataclass
class Comparison:
    """Where two grammars disagreed over the prefixes of some strings."""

    prefixes: int = 0
    checks: int = 0  # prefix x token pairs
    counts: Counter = field(default_factory=Counter)  # "<which>:<token kind>" -> pairs
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: {"fast": 0.0, "reference": 0.0})

    def note(self, what: str, text: str, token: str) -> None:
        self.counts[what] += 1
        self.examples.setdefault(what, [])
        if len(self.examples[what]) < 5:
            self.examples[what].append(f"{text} + {token}")


def token_class(token: str) -> str:
    """A disagreement's token kind, for the report."""
    if token.startswith("<"):
        return "eos" if token == "<eos>" else "special"
    if token in "()":
        return "branch"
    if token in (".", "*"):
        return "fragment"  # never allowed by the incremental grammar (see `SmilesGrammar`)
    if token[-1].isdigit():
        return "ring"
    return "bond" if token in "-=#$/\\:" else "atom"


def compare_grammars(
    fast, reference: PartialSmilesGrammar, sequences: Iterable[Sequence[int]], limit: int = 0
) -> Comparison:
    """Every token after every prefix of ``sequences`` that the reference accepts, asked of both
    grammars; ``fast`` is a `molvae.grammar.smiles.SmilesGrammar`. A string is followed while the
    reference accepts it (broken strings give their prefixes up to the first error); ``limit``
    stops after that many prefixes. Kinds counted: ``forbids_allowed`` (fast refuses what the
    reference allows: must not happen), ``allows_forbidden`` (fast is more lenient), and
    ``ended_invalid`` (fast lets a string end that RDKit rejects: must not happen)."""
    out = Comparison()
    vocab = range(len(reference.tokens))
    for seq in sequences:
        state = fast.state([])
        for i in range(len(seq) + 1):
            if limit and out.prefixes >= limit:
                return out
            prefix, text = seq[:i], reference.text(seq[:i])
            t0 = time.perf_counter()
            mine = [fast.state_allows(state, t) for t in vocab]
            t1 = time.perf_counter()
            ref = [reference.allows(prefix, t) for t in vocab]
            out.seconds["fast"] += t1 - t0
            out.seconds["reference"] += time.perf_counter() - t1
            out.prefixes += 1
            out.checks += len(vocab)
            for t in vocab:
                tok = reference.tokens[t]
                if mine[t] != ref[t]:
                    what = "forbids_allowed" if ref[t] else "allows_forbidden"
                    out.note(f"{what}:{token_class(tok)}", text, tok)
                if mine[t] and t == reference.eos_id and not is_valid(text):
                    out.note("ended_invalid:eos", text, tok)
            if i == len(seq) or not ref[seq[i]] or not state.push(seq[i]):
                break
    return out
