"""One string's incremental grammar state: its molecule graph so far, with undo.

A `RowState` holds what a SMILES prefix has built: atoms (type, bond-order sum, degree,
aromatic bonds, open ring bonds), the branch stack, the open ring-bond labels with their bond
orders, a pending bond symbol. `push` adds a token in constant time (plus a small search where a
ring closes or an aromatic system is finished) and `pop` undoes it, so a decoder can back up.

Which tokens may follow depends on the state only through its *view* (the previous token's kind,
the pending bond, branch depth, the current atom's record, the open labels); the shared
`molvae.grammar.tables.GrammarTables` caches, per view, which tokens are allowed, which
refused, and which need a check against the whole graph ("verify": ring closures, eos, a token
that finishes an aromatic system; `molvae.grammar.checks`), so most steps cost a
dictionary lookup.
"""

from __future__ import annotations

from typing import Any, Protocol

from molvae.grammar.atoms import ATOM, BOND, CLOSE, EOS, OPEN, RING

START = -1  # the previous token's kind before any token
FORBID, ALLOW, VERIFY = 0, 1, 2
# an atom's record, a tuple (replaced, never changed, so undo restores the old one): type index,
# bond-order sum, degree, aromatic bonds, the first order >= 2 of a non-aromatic bond, promised
# order of its open ring bonds, open ring bonds, and (oxygens only) whether its first neighbour
# is a nitrogen
T, VAL, DEG, NAROM, HI, PROM, NOPEN, FN = range(8)


class Tables(Protocol):
    """What a row's state and the checks read of its vocabulary's tables (a Protocol: the
    tables, `molvae.grammar.tables.GrammarTables`, build on this module)."""

    tokens: list[str]
    labels: list[str]
    atypes: list[Any]
    aromatic: list[bool]
    elem: list[Any]
    stats: Any

    def view_id(self, st: RowState) -> int:
        """The id of the view (the part of the state a verdict depends on) ``st`` is in."""
        ...


class RowState:
    """The grammar state of one string; `push` a token id (False: refused, state unchanged)."""

    __slots__ = ("atoms", "g", "labels", "last", "nbrs", "openb", "paren", "pend", "prev",
                 "ring_cap", "toks", "trail", "vid")  # fmt: skip

    def __init__(self, tables: Tables, ring_cap: int = 0):
        self.g = tables
        self.ring_cap = ring_cap  # the largest ring a closure may make (0: any)
        self.atoms: list[tuple] = []
        self.nbrs: list[list[tuple[int, bool]]] = []  # per atom: (neighbour, aromatic bond)
        self.prev: list[int] = []  # branch stack; prev[-1] is the atom the next bond starts at
        self.openb: dict[int, tuple[int, int]] = {}  # label index -> (atom, bond order or 0)
        self.labels: tuple[int, ...] = (0,) * len(tables.labels)  # 0 closed, else 1 + order
        self.pend = 0  # order of a bond symbol written and not yet used (0: none)
        self.last = START
        self.paren = False  # a '(' or ')' since the current atom (no ring label may follow)
        self.trail: list[tuple] = []
        self.toks: list[int] = []
        self.vid = -1
        self.vid = tables.view_id(self)

    def push(self, tok: int) -> bool:
        """Add token ``tok`` if the grammar allows it; eos is checked, never added."""
        g = self.g
        code = g.verdicts[self.vid][tok]
        if not code:
            return False
        kind = g.kind[tok]
        if kind == EOS:
            return g.final_ok(self)
        before = self.vid
        self.apply(kind, g.arg[tok])
        if code == VERIFY and not g.nonlocal_ok(self, self.trail[-1]):
            self.undo()
            return False
        self.toks.append(tok)
        self.vid = g.view_id(self)
        if code == ALLOW and kind != CLOSE and (kind != RING or self.trail[-1][6] is None):
            g.trans[before, tok] = self.vid  # the new view follows from the old and the token
        return True

    def replay(self, tok: int) -> None:
        """Add ``tok``, known allowed, whose next view the tables know (see `push`)."""
        g = self.g
        self.apply(g.kind[tok], g.arg[tok])
        self.toks.append(tok)
        self.vid = int(g.trans[self.trail[-1][4], tok])

    def pop(self) -> None:
        """Undo the last token pushed."""
        self.toks.pop()
        self.undo()

    def text(self) -> str:
        return "".join(self.g.tokens[t] for t in self.toks)

    def view(self) -> tuple:
        """What the next token's local checks read (see the module docstring)."""
        prev = self.prev
        if not prev:
            return (self.last, self.pend, False, False, self.paren, None, self.labels, 0)
        cur = prev[-1]
        a = self.atoms[cur]
        mine = 0
        if a[NOPEN]:
            mine = sum(1 << lab for lab, (o, _) in self.openb.items() if o == cur)
        depth = len(prev)
        just = depth > 1 and prev[-2] == cur
        return (self.last, self.pend, depth == 1, just, self.paren, a, self.labels, mine)

    def apply(self, kind: int, arg) -> None:
        """Change the state by one token (no checks); `undo` reverts it. The trail record
        starts (kind, pend, last, paren, vid); then ATOM: (previous atom, its old record,
        aromatic bond); CLOSE: (the atom the branch ended on); RING: see `_apply_ring`."""
        rec: tuple = (kind, self.pend, self.last, self.paren, self.vid)
        prev = self.prev
        if kind == ATOM:
            a = len(self.atoms)
            self.atoms.append((arg, 0, 0, 0, 0, 0, 0, False))
            self.nbrs.append([])
            if prev:
                cur = prev[-1]
                bo = self.pend or 1
                arom = (
                    not self.pend and self.g.aromatic[self.atoms[cur][T]] and self.g.aromatic[arg]
                )
                rec += (cur, self.atoms[cur], arom)
                self.add_bond(cur, a, bo, arom)
                prev[-1] = a
            else:
                prev.append(a)
            self.paren = False
        elif kind == BOND:
            self.pend = arg
        elif kind == OPEN:
            prev.append(prev[-1])
            self.paren = True
        elif kind == CLOSE:
            rec += (prev.pop(),)
            self.paren = True
        else:
            rec += self._apply_ring(arg)
        if kind != BOND:
            self.pend = 0
        self.last = kind
        self.trail.append(rec)

    def _apply_ring(self, lab: int) -> tuple:
        """A ring label: opens a ring bond on the current atom, or closes the open one.
        Record: (label, opener or None, current atom's old record, old labels[, opener's old
        record, the opening bond order])."""
        cur = self.prev[-1]
        old_cur, old_labels, pend = self.atoms[cur], self.labels, self.pend
        labels = list(old_labels)
        if lab not in self.openb:
            self.openb[lab] = (cur, pend)
            t, v, d, na, hi, prom, nopen, fn = old_cur
            self.atoms[cur] = (t, v, d, na, hi, prom + (pend or 1), nopen + 1, fn)
            labels[lab] = 1 + pend
            self.labels = tuple(labels)
            return (lab, None, old_cur, old_labels)
        opener, order = self.openb.pop(lab)
        old_op = self.atoms[opener]
        t, v, d, na, hi, prom, nopen, fn = old_op
        self.atoms[opener] = (t, v, d, na, hi, prom - (order or 1), nopen - 1, fn)
        aromatic = self.g.aromatic
        arom = not pend and not order and aromatic[old_cur[T]] and aromatic[old_op[T]]
        self.add_bond(opener, cur, pend or order or 1, arom)
        labels[lab] = 0
        self.labels = tuple(labels)
        return (lab, opener, old_cur, old_labels, old_op, order)

    def add_bond(self, x: int, y: int, bo: int, arom: bool) -> None:
        atoms, elem = self.atoms, self.g.elem
        tx, vx, dx, nx, hx, px, ox, fx = atoms[x]  # written out for both ends: a hot path
        ty, vy, dy, ny, hy, py, oy, fy = atoms[y]
        if not arom and bo >= 2:
            hx, hy = hx or bo, hy or bo
        if not dx and elem[tx] == 8:  # an oxygen's first neighbour (a TEMPO-like radical)
            fx = elem[ty] == 7
        if not dy and elem[ty] == 8:
            fy = elem[tx] == 7
        atoms[x] = (tx, vx + bo, dx + 1, nx + arom, hx, px, ox, fx)
        atoms[y] = (ty, vy + bo, dy + 1, ny + arom, hy, py, oy, fy)
        self.nbrs[x].append((y, arom))
        self.nbrs[y].append((x, arom))

    def undo(self) -> None:
        rec = self.trail.pop()
        kind, self.pend, self.last, self.paren, self.vid = rec[:5]
        prev = self.prev
        if kind == ATOM:
            self.atoms.pop()
            self.nbrs.pop()
            if len(rec) > 5:
                cur = rec[5]
                self.atoms[cur] = rec[6]
                self.nbrs[cur].pop()
                prev[-1] = cur
            else:
                prev.pop()
        elif kind == OPEN:
            prev.pop()
        elif kind == CLOSE:
            prev.append(rec[5])
        elif kind != BOND:  # RING
            lab, opener, old_cur, self.labels = rec[5:9]
            cur = prev[-1]
            self.atoms[cur] = old_cur
            if opener is None:
                del self.openb[lab]
            else:
                self.atoms[opener] = rec[9]
                self.nbrs[cur].pop()
                self.nbrs[opener].pop()
                self.openb[lab] = (opener, rec[10])
