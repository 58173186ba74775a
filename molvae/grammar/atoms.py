"""Atom-level rules of the incremental SMILES grammar: token kinds, valences, kekulization.

`molvae.grammar.state` keeps a graph per string and asks these pure functions whether an
atom's valence is still possible and whether a finished aromatic system can be kekulized. The
rules are partialsmiles' (`partialsmiles.smiparser.SmilesParser.hasCommonValence`,
`partialsmiles.valence.NeedsDblBond`), restated over plain numbers so that a check costs a few
comparisons instead of a parse of the whole prefix; its valence tables are used as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import partialsmiles
from partialsmiles.smiparser import valencemodel
from partialsmiles.valence import common_valencies

# token kinds
NEVER, ATOM, BOND, OPEN, CLOSE, RING, EOS = range(7)
BOND_ORDERS = {"-": 1, "=": 2, "#": 3, "$": 4, "/": 1, "\\": 1}  # ':' is refused, as partialsmiles
_RING_LABEL = re.compile(r"^(\d|%\d\d)$")
_ORGANIC = frozenset(
    ("B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "p", "s")
)
HALOGENS = frozenset((9, 17, 35, 53))
_PNICTOGENS = frozenset((5, 7, 15, 33, 51, 83))
_CHALCOGENS = frozenset((8, 16, 34, 52))


@dataclass(frozen=True)
class AtomType:
    """What the grammar needs of an atom token: element, charge, aromatic (lower case) and the
    hydrogen count of a bracket atom (-1: implicit, from the valence model)."""

    elem: int
    charge: int
    arom: bool
    hfix: int

    @property
    def allowed(self) -> tuple[int, ...]:
        return tuple(common_valencies[self.elem][self.charge])

    @property
    def halogen(self) -> bool:
        """A neutral halogen, which RDKit lets take a single bond only."""
        return self.elem in HALOGENS and self.charge == 0


def classify(token: str) -> tuple[int, object]:
    """(kind, argument) of a vocabulary token: an `AtomType`, a bond order, a ring label.

    NEVER: tokens partialsmiles always refuses (':', unknown elements, odd charges), and '.',
    '*' and anything else this grammar does not model; the caller marks the specials itself.
    """
    if token in BOND_ORDERS:
        return BOND, BOND_ORDERS[token]
    if token in ("(", ")"):
        return (OPEN if token == "(" else CLOSE), None
    if _RING_LABEL.match(token):
        return RING, token
    if token in _ORGANIC or (token.startswith("[") and token.endswith("]")):
        try:  # the atom alone, parsed by the reference: element, charge, H count
            state = partialsmiles.ParseSmiles(token, partial=True)
        except partialsmiles.Error:
            return NEVER, None
        atom = state.mol.atoms[0]
        if atom.element == 0 or atom.element not in common_valencies:
            return NEVER, None
        return ATOM, AtomType(atom.element, atom.charge, atom.arom, state.hcount[0])
    return NEVER, None


def implicit_h(t: AtomType, adj: int, arom_bond: bool) -> int:
    """Implicit hydrogens of an atom whose (adjusted) explicit valence is ``adj``."""
    if t.hfix >= 0:
        return t.hfix
    h = _smiles_valence(t.elem, adj) - adj
    return h - 1 if h > 0 and (t.arom or arom_bond) else h


def _smiles_valence(elem: int, val: int) -> int:
    for v in valencemodel[elem]:
        if val <= v:
            return v
    return val


def needs_double(t: AtomType, deg: int, implh: int, hi: int, arom_bond: bool) -> bool:
    """Whether an aromatic atom must take one of its ring's double bonds (partialsmiles'
    ``NeedsDblBond``); ``hi`` is the order of its first non-aromatic bond of order 2 or more."""
    if not arom_bond:
        return False
    deg += implh
    if hi == 2:  # an exocyclic double bond: only N-oxide and sulfoxide-like atoms still need one
        return t.charge == 0 and ((t.elem == 7 and deg == 3) or (t.elem == 16 and deg == 4))
    if hi > 2:
        return False
    chg, elem = t.charge, t.elem
    if elem == 6:
        return not (deg == 3 and chg in (1, -1))
    if elem in _PNICTOGENS:
        if chg == 0:
            return not (deg == 3 or deg > 4)
        if chg == -1:
            return deg != 2
        return not (chg == 1 and deg > 3)
    if elem in _CHALCOGENS:
        if chg == 0:
            return not (deg in (2, 4) or deg > 5)
        if chg in (-1, 1):
            return not (deg in (3, 5) or deg > 6)
    return True


def valence_ok(
    t: AtomType, adj: int, complete: bool, arom_bond: bool, deg: int, hi: int, first_n: bool
) -> bool:
    """partialsmiles' valence rule: a complete atom must have a common valence, an incomplete
    one (still to get bonds) must not exceed the largest; ``first_n``: its first neighbour is a
    nitrogen (a TEMPO-like oxygen radical is allowed)."""
    allowed = t.allowed
    implh = implicit_h(t, adj, arom_bond)
    explval = adj + int(complete and needs_double(t, deg, implh, hi, arom_bond))
    total = explval + implh
    if total in allowed or (not complete and total <= max(allowed)):
        return True
    return t.elem == 8 and t.charge == 0 and explval == 1 and implh == 0 and first_n


def perfect_matching(nodes: list[int], edges: dict[int, list[int]]) -> bool:
    """Whether ``nodes`` can be paired along ``edges`` (every node in exactly one pair): the
    atoms of a finished aromatic system that each need one of its double bonds."""
    free = set(nodes)
    if len(free) % 2:
        return False
    for a in nodes:  # greedy first, in the order the string wrote them: enough for most rings
        if a in free:
            b = next((b for b in edges.get(a, ()) if b in free and b != a), None)
            if b is None:
                break
            free -= {a, b}
    if not free:
        return True
    free = set(nodes)

    def solve() -> bool:
        if not free:
            return True
        # the most constrained atom first: forced pairs cost no search
        a = min(free, key=lambda x: sum(1 for y in edges.get(x, ()) if y in free))
        free.discard(a)
        for b in edges.get(a, ()):
            if b in free:
                free.discard(b)
                if solve():
                    return True
                free.add(b)
        free.add(a)
        return False

    return solve()
