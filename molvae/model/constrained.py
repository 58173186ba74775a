"""Per-row bookkeeping of grammar-constrained decoding: masks, choices, refusals, backtracking.

`molvae.model.decoding.decode_constrained` runs the decoder GRU; this module decides, for a
batch of rows that each have a fresh next-token distribution, which token each row takes. A
constraint with a batched state (`molvae.model.grammar.SmilesGrammar.start`) masks every row's
distribution in one table read before anything is chosen, and the choice itself is vectorized
over the batch; only a row whose chosen token fails a check the mask could not make (a ring
closure, eos, a finished aromatic ring), or that hit a dead end, takes the per-row path with
refusals and backtracking. A plain `TokenConstraint` (``allows(prefix, token)`` only) runs
through the same code with an all-true mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class RowConstraint(Protocol):
    """One row's constraint state: ``push`` a token if allowed (eos is checked, not added)."""

    def push(self, token: int) -> bool: ...

    def pop(self) -> None: ...


class _PrefixRow:
    """A `TokenConstraint` (``allows(prefix, token)``) as a row state: the prefix it is asked
    about is kept here."""

    __slots__ = ("eos_id", "rule", "seq")

    def __init__(self, rule, eos_id: int):
        self.rule, self.eos_id, self.seq = rule, eos_id, []

    def push(self, token: int) -> bool:
        if not self.rule.allows(self.seq, token):
            return False
        if token != self.eos_id:
            self.seq.append(token)
        return True

    def pop(self) -> None:
        self.seq.pop()


class _PrefixBatch:
    def __init__(self, rule, n: int, vocab: int, eos_id: int):
        self.rows = [_PrefixRow(rule, eos_id) for _ in range(n)]
        self._ones = np.ones(vocab, dtype=bool)

    def masks(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._ones, (len(rows), len(self._ones)))

    def reset(self, slot: int) -> None:
        self.rows[slot] = _PrefixRow(self.rows[slot].rule, self.rows[slot].eos_id)

    def fast(self, slots: np.ndarray, tokens: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        return np.zeros(len(slots), dtype=bool)  # every token is asked of the rule

    def row(self, slot: int) -> _PrefixRow:
        return self.rows[slot]

    def sync(self, slot: int) -> None:
        pass


def batched(constraint, n: int, vocab: int, eos_id: int):
    """The batch state of ``constraint``: its own (``start``) or a per-row prefix wrapper."""
    start = getattr(constraint, "start", None)
    return start(n) if start is not None else _PrefixBatch(constraint, n, vocab, eos_id)


@dataclass
class ConstrainedState:
    """Per-slot bookkeeping of constrained decoding; a slot holds one row (string) at a time.

    ``dist[p % ring, s]`` is slot s's distribution for its p-th token with refused tokens
    zeroed and ``slot_pos[p % ring, s]`` the position that ring entry holds (-1: none): only
    the last ``ring`` positions can be chosen again, as only their decoder states are kept.
    ``refused[s]`` counts the tokens the row has had refused or undone; ``ended[s]`` whether it
    emitted eos; ``batch.rows[s]`` is its constraint state; ``slot_row[s]`` the row it holds
    (-1: free). A row's tokens and ending move to ``out_seqs``/``out_ended`` when it finishes.
    """

    strategy: str
    eos_id: int
    budget: int  # a row is given up at its budget-th refusal or undo (bounds the time spent)
    min_mass: float
    rng: np.random.Generator
    batch: object  # what `batched` returns: ``rows``, ``masks(slots)``, ``reset(slot)``
    z_rows: int  # rows to decode in all
    dist: np.ndarray  # ring x slots x vocab, float64
    slot_pos: np.ndarray  # ring x slots, int64
    seqs: list[list[int]] = field(default_factory=list)
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ended: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    slot_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    next_row: int = 0
    out_seqs: list[list[int]] = field(default_factory=list)
    out_ended: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def new(cls, w: int, vocab: int, ring: int, **kw) -> ConstrainedState:
        """``w`` slots, distributions over ``vocab`` tokens, ``ring`` positions kept."""
        return cls(
            dist=np.zeros((ring, w, vocab)),
            slot_pos=np.full((ring, w), -1, dtype=np.int64),
            seqs=[[] for _ in range(w)],
            refused=np.zeros(w, dtype=np.int64),
            ended=np.zeros(w, dtype=bool),
            slot_row=np.full(w, -1, dtype=np.int64),
            out_seqs=[[] for _ in range(kw["z_rows"])],
            out_ended=np.zeros(kw["z_rows"], dtype=bool),
            **kw,
        )

    def admit(self, lane: int = 0, lanes: int = 1) -> np.ndarray:
        """Give the free slots of a lane (slot numbers ``lane`` modulo ``lanes``) to the next
        rows, in row order; returns those slots."""
        free = np.flatnonzero(self.slot_row[lane::lanes] < 0) * lanes + lane
        free = free[: self.z_rows - self.next_row]
        for s in free.tolist():
            self.slot_row[s] = self.next_row
            self.next_row += 1
            self.seqs[s] = []
            self.refused[s] = 0
            self.ended[s] = False
            self.slot_pos[:, s] = -1
            self.batch.reset(s)
        return free

    def finish(self, slots: np.ndarray) -> None:
        """Move the rows of ``slots`` (ended, given up or full) out; the slots become free."""
        for s in slots.tolist():
            r = self.slot_row[s]
            self.out_seqs[r], self.out_ended[r] = self.seqs[s], self.ended[s]
            self.slot_row[s] = -1


def advance(
    st: ConstrainedState,
    rows: np.ndarray,
    probs: np.ndarray,
    masks: np.ndarray,
    pos: np.ndarray,
    max_len: int,
) -> np.ndarray:
    """Each row's next token from ``probs`` (``rows x vocab``, the model's distributions at
    positions ``pos``) and ``masks`` (the tokens its state does not refuse outright), appended
    to ``st.seqs``; returns the batch indices of the rows that go on (not ended, given up, or
    at ``max_len``).

    The same process as `choose_token`, run for the whole batch at once: tokens are drawn
    without replacement (greedy: best first; sampled: in Gumbel order, which draws each next
    token in proportion to the mass not yet refused), each masked token drawn is a refusal, and
    a step is a dead end once the tokens not yet refused hold at most ``min_mass``. A row whose
    first unmasked token fails its check, or that meets a dead end, goes on in `choose_token`.
    """
    n, v = probs.shape
    if st.strategy == "greedy":
        order = np.argsort(-probs, axis=1, kind="stable")
    else:
        with np.errstate(divide="ignore"):
            keys = np.log(probs) + st.rng.gumbel(size=(n, v))
        order = np.argsort(-keys, axis=1)
    p_ord = np.take_along_axis(probs, order, 1)
    ok = np.take_along_axis(masks, order, 1) & (p_ord > 0.0)
    first = np.where(ok.any(1), ok.argmax(1), (p_ord > 0.0).sum(1))  # masked draws before it
    unrefused = np.zeros((n, v + 1))  # [j]: the mass left after j refusals
    unrefused[:, :v] = np.cumsum(p_ord[:, ::-1], 1)[:, ::-1]
    dead_at = (unrefused <= st.min_mass).argmax(1)  # the first j with a dead end
    give_at = st.budget - st.refused[rows]  # the refusal that gives a row up
    n_refused = np.minimum(np.minimum(first, dead_at), give_at)
    dropped = np.zeros((n, v), dtype=bool)
    np.put_along_axis(dropped, order, np.arange(v) < n_refused[:, None], 1)
    st.dist[pos % len(st.dist), rows] = np.where(dropped, 0.0, probs)
    st.refused[rows] += n_refused
    tokens = np.take_along_axis(order, np.minimum(first, v - 1)[:, None], 1)[:, 0]
    live = give_at > n_refused  # the others are given up
    cand = live & (first < dead_at)  # a token to try (else a dead end before it)
    fast = st.batch.fast(rows, tokens, cand & (tokens != st.eos_id))
    for s, k in zip(rows[fast].tolist(), tokens[fast].tolist(), strict=True):
        st.seqs[s].append(k)
    going = np.flatnonzero(fast & (pos + 1 < max_len)).tolist()
    for i in np.flatnonzero(live & ~fast).tolist():
        if _settle(st, int(rows[i]), int(tokens[i]) if cand[i] else -1, pos[i], max_len):
            going.append(i)
    return np.sort(np.asarray(going, dtype=np.int64))


def _settle(st: ConstrainedState, r: int, k: int, pos: int, max_len: int) -> bool:
    """Row r's candidate ``k`` (-1: none, a dead end): pushed if its state takes it, else the
    row goes on in `choose_token`. Whether the row goes on (else it ended or was given up)."""
    if k >= 0 and st.batch.row(r).push(k):
        if k != st.eos_id:
            st.seqs[r].append(k)
    else:
        if k >= 0:  # refused by a check the mask could not make
            st.dist[pos % len(st.dist), r, k] = 0.0
            st.refused[r] += 1
        k = choose_token(st, r) if st.refused[r] < st.budget else -1
    st.batch.sync(r)
    if k == st.eos_id:
        st.ended[r] = True
        return False
    return k >= 0 and len(st.seqs[r]) < max_len


def choose_token(st: ConstrainedState, r: int) -> int:
    """Row r's next allowed token, appended to its sequence unless it is eos; -1 when given up.

    May pop tokens off the sequence first (backtracking): the caller then resumes the row from
    the state stored before its new last token.
    """
    seq, row = st.seqs[r], st.batch.row(r)
    while True:
        p = st.dist[len(seq) % len(st.dist), r]
        total = p.sum()
        if total <= st.min_mass or total <= 0.0:  # a dead end: undo the previous token
            q = len(seq) - 1  # re-choosing token q needs the state at q, if still stored
            if q < 0 or st.slot_pos[q % len(st.slot_pos), r] != q or st.refused[r] >= st.budget:
                return -1
            k = seq.pop()
            row.pop()
            st.dist[len(seq) % len(st.dist), r, k] = 0.0
            st.refused[r] += 1
            continue
        if st.strategy == "greedy":
            k = int(p.argmax())
        else:
            k = min(int(np.searchsorted(np.cumsum(p), st.rng.random() * total, side="right")),
                    len(p) - 1)  # fmt: skip
        if p[k] > 0.0 and row.push(k):
            if k != st.eos_id:
                seq.append(k)
            return k
        p[k] = 0.0
        st.refused[r] += 1
        if st.refused[r] >= st.budget:  # the same limit as for undoing a token, above
            return -1
