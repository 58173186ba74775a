"""The checks of the incremental SMILES grammar, on a `molvae.grammar.state.RowState`.

Local checks read only what a state's view holds (syntax, the valence of the atoms a token
touches) and are cached per view by `molvae.grammar.tables`; the rest (a finished aromatic
system's kekulization, a ring closure's opener, duplicate bond and ring size, eos) read the
whole graph and run when such a token is chosen.
"""

from __future__ import annotations

from collections import Counter

from rdkit import Chem

from molvae.chem import parse
from molvae.grammar.atoms import (
    ATOM,
    BOND,
    CLOSE,
    OPEN,
    RING,
    implicit_h,
    needs_double,
    perfect_matching,
    valence_ok,
)
from molvae.grammar.state import DEG, FN, HI, NAROM, NOPEN, PROM, VAL, RowState


def complete(st: RowState, a: int) -> bool:
    """An atom that can take no more bonds: not on the branch stack, no open ring bond."""
    return not st.atoms[a][NOPEN] and a not in st.prev


def atom_ok(st: RowState, a: int) -> bool:
    """partialsmiles' verdict on atom ``a`` in this state (bonds promised by the text so far
    count, as its ``getAdjustedExplicitValence``), plus RDKit's single bond on halogens."""
    rec, prev = st.atoms[a], st.prev
    t = st.g.atypes[rec[0]]
    adj = rec[VAL] + rec[PROM]
    is_cur = bool(prev) and prev[-1] == a
    just = is_cur and len(prev) > 1 and prev[-2] == a
    if is_cur:
        if st.pend:
            adj += st.pend
        elif st.last == OPEN or (st.openb and len(prev) == 1 and st.last != CLOSE):
            adj += 1
        adj += just + (st.last == CLOSE)
    elif a in prev:
        adj += 1
    done = not is_cur and complete(st, a)
    if not valence_ok(t, adj, done, rec[NAROM] > 0, rec[DEG], rec[HI], rec[FN]):
        return False
    # neutral halogens: bonds made, ring bonds opened, branches opened, a bond symbol after
    promised = rec[VAL] + rec[NOPEN] + just + (is_cur and st.pend > 0)
    return not t.halogen or promised <= 1


def _needs_double(st: RowState, a: int) -> bool:
    rec = st.atoms[a]
    t = st.g.atypes[rec[0]]
    implh = implicit_h(t, rec[VAL], rec[NAROM] > 0)
    return needs_double(t, rec[DEG], implh, rec[HI], rec[NAROM] > 0)


def system_ok(st: RowState, a: int) -> bool:
    """Whether the aromatic system of the complete atom ``a`` can be kekulized, once every atom
    of it is complete (before that, True: it may still change)."""
    nbrs = st.nbrs
    for y, arom in nbrs[a]:  # mostly the atom just left is bonded to one still open
        if arom and not complete(st, y):
            return True
    seen, stack = {a}, [a]
    while stack:
        x = stack.pop()
        if x != a and not complete(st, x):
            return True
        for y, arom in nbrs[x]:
            if arom and y not in seen:
                seen.add(y)
                stack.append(y)
    need = [x for x in seen if _needs_double(st, x)]
    ok = set(need)
    edges = {x: [y for y, arom in nbrs[x] if arom and y in ok] for x in need}
    return perfect_matching(need, edges)


def syntax_ok(st: RowState, kind: int, arg) -> bool:
    """partialsmiles' syntax rules (branches, bond symbols, ring labels), read off the view."""
    prev, pend, last = st.prev, st.pend, st.last
    if kind == ATOM:
        return True
    if kind == BOND:
        return bool(prev) and not pend
    if kind == OPEN:
        return bool(prev) and last != OPEN and not pend
    if kind == CLOSE:
        return len(prev) > 1 and last not in (OPEN, CLOSE) and not pend
    if kind == RING:
        if not prev or st.paren:
            return False
        if arg not in st.openb:
            return True
        opener, order = st.openb[arg]
        return opener != prev[-1] and not (pend and order and pend != order)
    return bool(prev) and not pend and len(prev) == 1 and not st.openb and last != CLOSE


def local_ok(st: RowState, rec: tuple) -> bool:
    """The atoms the token just applied (trail record ``rec``) changed, as the view has them."""
    kind = rec[0]
    if kind == CLOSE:
        return atom_ok(st, rec[5])  # the branch's last atom; the branch point is as it was
    if kind == ATOM and len(rec) > 5 and not atom_ok(st, rec[5]):
        return False
    return atom_ok(st, st.prev[-1])


def needs_verify(st: RowState, rec: tuple) -> bool:
    """Whether the token just applied needs `nonlocal_ok` when chosen."""
    kind = rec[0]
    if kind == RING:
        return rec[6] is not None  # a closure
    if kind == ATOM and (len(rec) == 5 or rec[7]):
        return False  # the first atom; or an aromatic bond on, which leaves the system open
    if kind in (ATOM, CLOSE):
        done = rec[5]  # the atom the token moved on from
        return complete(st, done) and st.atoms[done][NAROM] > 0
    return False


def nonlocal_ok(st: RowState, rec: tuple) -> bool:
    """After a VERIFY token: kekulization of a finished aromatic system, and for a ring closure
    the second bond between two atoms, the opener's valence and the ring size."""
    if rec[0] in (ATOM, CLOSE):
        return system_ok(st, rec[5])
    opener, cur = rec[6], st.prev[-1]
    if sum(1 for y, _ in st.nbrs[cur] if y == opener) > 1 or not atom_ok(st, opener):
        return False
    if st.ring_cap and not st.openb and ring_size(st, opener, cur) > st.ring_cap:
        return False  # the last open ring closed; while others are open, eos checks
    return not (complete(st, opener) and st.atoms[opener][NAROM]) or system_ok(st, opener)


def final_ok(st: RowState) -> bool:
    """eos: the last atom's valence and aromatic system checked as complete (the others were as
    they completed), then RDKit's word on the whole string and its ring sizes."""
    stats = st.g.stats
    stats["eos_asked"] += 1
    cur = st.prev.pop()  # no atom is open any more
    try:
        if not atom_ok(st, cur) or (st.atoms[cur][NAROM] and not system_ok(st, cur)):
            return False
    finally:
        st.prev.append(cur)
    return molecule_ok(st.text(), st.ring_cap, stats)


def molecule_ok(smiles: str, ring_cap: int, stats: Counter) -> bool:
    """RDKit's word on a finished string and, with ``ring_cap`` (0: none), its largest ring;
    counted in ``stats``."""
    stats["rdkit_checked"] += 1
    mol = rdkit_mol(smiles)
    if mol is None:
        stats["rdkit_refused"] += 1
        return False
    rings = mol.GetRingInfo().AtomRings()
    if ring_cap and max(map(len, rings), default=0) > ring_cap:
        stats["ring_refused"] += 1
        return False
    stats["ended"] += 1
    return True


def rdkit_mol(smiles: str):
    """RDKit's ``Mol`` of ``smiles`` or None, as `molvae.chem.parse` decides: parsed unsanitized,
    then sanitized in full, which skips the hydrogen removal and stereo perception of a plain
    parse (a third of its time); a string with explicit hydrogen atoms, which that removal can
    change, takes the plain parse."""
    if "[H" in smiles:
        return parse(smiles)
    try:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None or not mol.GetNumAtoms():
            return None
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises on a valence or kekulization it cannot accept
        return None
    return mol


def ring_size(st: RowState, start: int, goal: int) -> int:
    """Atoms in the smallest ring through the bond start-goal just made (breadth-first search
    without that bond); stops once past the cap."""
    seen, frontier, depth = {start}, [start], 1
    while frontier and depth <= st.ring_cap:
        depth += 1
        nxt = []
        for x in frontier:
            for y, _ in st.nbrs[x]:
                if y == goal and x != start:
                    return depth
                if y not in seen and y != goal:
                    seen.add(y)
                    nxt.append(y)
        frontier = nxt
    return depth + 1
