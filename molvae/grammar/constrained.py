"""Per-row bookkeeping of grammar-constrained decoding: masks, choices, refusals, backtracking.

`molvae.model.decoding.decode_constrained` runs the decoder GRU; this module decides, for a
batch of rows that each have a fresh next-token distribution, which token each row takes. A
constraint with a batched state (`molvae.grammar.smiles.SmilesGrammar.start`) masks every row's
distribution in one table read before anything is chosen, and the choice itself is vectorized
over the batch; only a row whose chosen token fails a check the mask could not make (a ring
closure, eos, a finished aromatic ring), or that hit a dead end, takes the per-row path with
refusals and backtracking. A plain `TokenConstraint` (``allows(prefix, token)`` only) runs
through the same code with an all-true mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

    ``toks[s, :length[s]]`` are slot s's tokens so far (eos is never stored). ``dist[p % ring,
    s]`` is its distribution for its p-th token with refused tokens zeroed and ``slot_pos[p %
    ring, s]`` the position that ring entry holds (-1: none): only the last ``ring`` positions
    can be chosen again, as only their decoder states are kept. ``refused[s]`` counts the tokens
    the row has had refused or undone; ``ended[s]`` whether it emitted eos; ``batch.rows[s]`` is
    its constraint state; ``slot_row[s]`` the row it holds (-1: free). A row's tokens, length
    and ending move to ``out_toks``/``out_len``/``out_ended`` when it finishes.
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
    toks: np.ndarray  # slots x max_len, int64
    length: np.ndarray  # slots, int64
    refused: np.ndarray  # slots, int64
    ended: np.ndarray  # slots, bool
    slot_row: np.ndarray  # slots, int64
    out_toks: np.ndarray  # z_rows x max_len, int64
    out_len: np.ndarray  # z_rows, int64
    out_ended: np.ndarray  # z_rows, bool
    next_row: int = 0

    @classmethod
    def new(cls, w: int, vocab: int, ring: int, max_len: int, **kw) -> ConstrainedState:
        """``w`` slots, distributions over ``vocab`` tokens, ``ring`` positions kept, rows of at
        most ``max_len`` tokens."""
        n = kw["z_rows"]
        return cls(
            dist=np.zeros((ring, w, vocab)),
            slot_pos=np.full((ring, w), -1, dtype=np.int64),
            toks=np.zeros((w, max_len), dtype=np.int64),
            length=np.zeros(w, dtype=np.int64),
            refused=np.zeros(w, dtype=np.int64),
            ended=np.zeros(w, dtype=bool),
            slot_row=np.full(w, -1, dtype=np.int64),
            out_toks=np.zeros((n, max_len), dtype=np.int64),
            out_len=np.zeros(n, dtype=np.int64),
            out_ended=np.zeros(n, dtype=bool),
            **kw,
        )

    def admit(self, lane: int = 0, lanes: int = 1) -> np.ndarray:
        """Give the free slots of a lane (slot numbers ``lane`` modulo ``lanes``) to the next
        rows, in row order; returns those slots."""
        free = np.flatnonzero(self.slot_row[lane::lanes] < 0) * lanes + lane
        free = free[: self.z_rows - self.next_row]
        self.slot_row[free] = self.next_row + np.arange(len(free))
        self.next_row += len(free)
        self.length[free] = 0
        self.refused[free] = 0
        self.ended[free] = False
        self.slot_pos[:, free] = -1
        for s in free.tolist():
            self.batch.reset(s)
        return free

    def finish(self, slots: np.ndarray) -> None:
        """Move the rows of ``slots`` (ended, given up or full) out; the slots become free."""
        r = self.slot_row[slots]
        self.out_toks[r], self.out_len[r] = self.toks[slots], self.length[slots]
        self.out_ended[r] = self.ended[slots]
        self.slot_row[slots] = -1


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
    to ``st.toks``; returns the batch indices of the rows that go on (not ended, given up, or
    at ``max_len``).

    The same process as `choose_token`, run for the whole batch at once: tokens are drawn
    without replacement (greedy: best first; sampled: in the order of an exponential race,
    which draws each next token in proportion to the mass not yet refused), each masked token
    drawn is a refusal, and a step is a dead end once the tokens not yet refused hold at most
    ``min_mass``. A row's first unmasked token needs no sort: the masked tokens drawn before it
    are those with a larger key. A row whose token fails its check, or that meets a dead end,
    goes on in `choose_token`.
    """
    n, v = probs.shape
    # sampled: p / Exp(1) gives the order of Gumbel-max sampling (log p + Gumbel), without logs
    greedy = st.strategy == "greedy"
    keys = probs if greedy else probs / st.rng.standard_exponential((n, v))
    live = probs > 0.0
    ok = masks & live
    tokens = np.where(ok, keys, -1.0).argmax(1)  # first best on ties, as a stable sort
    drawn = np.take_along_axis(keys, tokens[:, None], 1)
    before = live & ~ok & (keys > drawn)  # masked tokens drawn before the chosen one
    none = ~ok.any(1)
    before[none] = live[none]  # nothing allowed: every token with mass is drawn and refused
    first = before.sum(1)
    kept = np.where(before, 0.0, probs)
    give_at = st.budget - st.refused[rows]  # the refusal that gives a row up
    plain = (kept.sum(1) > st.min_mass) & (first < give_at)
    n_refused, cand = first, plain.copy()
    odd = np.flatnonzero(~plain)  # a dead end or the budget reached on the way: in draw order
    if len(odd):
        n_refused = first.copy()
        n_refused[odd], kept[odd], cand[odd] = _cut(st, keys[odd], probs[odd], first[odd],
                                                    give_at[odd])  # fmt: skip
    st.dist[pos % len(st.dist), rows] = kept
    st.refused[rows] += n_refused
    going_on = give_at > n_refused  # the others are given up
    cand &= going_on
    fast = st.batch.fast(rows, tokens, cand & (tokens != st.eos_id))
    took = rows[fast]
    st.toks[took, st.length[took]] = tokens[fast]
    st.length[took] += 1
    going = np.flatnonzero(fast & (pos + 1 < max_len)).tolist()
    for i in np.flatnonzero(going_on & ~fast).tolist():
        if _settle(st, int(rows[i]), int(tokens[i]) if cand[i] else -1, pos[i], max_len):
            going.append(i)
    return np.sort(np.asarray(going, dtype=np.int64))


def _cut(
    st: ConstrainedState, keys: np.ndarray, probs: np.ndarray, first: np.ndarray, give_at
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that meet a dead end or their budget before their first allowed token: how many
    refusals they make, their distributions with those tokens zeroed, and whether the token
    is still a candidate (the tokens are refused in draw order: by key, best first)."""
    n, v = probs.shape
    order = np.argsort(-keys, axis=1, kind="stable")
    p_ord = np.take_along_axis(probs, order, 1)
    unrefused = np.zeros((n, v + 1))  # [j]: the mass left after j refusals
    unrefused[:, :v] = np.cumsum(p_ord[:, ::-1], 1)[:, ::-1]
    dead_at = (unrefused <= st.min_mass).argmax(1)  # the first j with a dead end
    n_refused = np.minimum(np.minimum(first, dead_at), give_at)
    dropped = np.zeros((n, v), dtype=bool)
    np.put_along_axis(dropped, order, np.arange(v) < n_refused[:, None], 1)
    return n_refused, np.where(dropped, 0.0, probs), first < dead_at


def _settle(st: ConstrainedState, r: int, k: int, pos: int, max_len: int) -> bool:
    """Row r's candidate ``k`` (-1: none, a dead end): pushed if its state takes it, else the
    row goes on in `choose_token`. Whether the row goes on (else it ended or was given up)."""
    if k >= 0 and st.batch.row(r).push(k):
        if k != st.eos_id:
            st.toks[r, st.length[r]] = k
            st.length[r] += 1
    else:
        if k >= 0:  # refused by a check the mask could not make
            st.dist[pos % len(st.dist), r, k] = 0.0
            st.refused[r] += 1
        k = choose_token(st, r) if st.refused[r] < st.budget else -1
    st.batch.sync(r)
    if k == st.eos_id:
        st.ended[r] = True
        return False
    return k >= 0 and st.length[r] < max_len


def choose_token(st: ConstrainedState, r: int) -> int:
    """Row r's next allowed token, appended to its sequence unless it is eos; -1 when given up.

    May pop tokens off the sequence first (backtracking): the caller then resumes the row from
    the state stored before its new last token.
    """
    row, n = st.batch.row(r), int(st.length[r])
    while True:
        p = st.dist[n % len(st.dist), r]
        total = p.sum()
        if total <= st.min_mass or total <= 0.0:  # a dead end: undo the previous token
            q = n - 1  # re-choosing token q needs the state at q, if still stored
            if q < 0 or st.slot_pos[q % len(st.slot_pos), r] != q or st.refused[r] >= st.budget:
                return -1
            n = q
            st.length[r] = n
            k = int(st.toks[r, n])
            row.pop()
            st.dist[n % len(st.dist), r, k] = 0.0
            st.refused[r] += 1
            continue
        if st.strategy == "greedy":
            k = int(p.argmax())
        else:
            k = min(int(np.searchsorted(np.cumsum(p), st.rng.random() * total, side="right")),
                    len(p) - 1)  # fmt: skip
        if p[k] > 0.0 and row.push(k):
            if k != st.eos_id:
                st.toks[r, n] = k
                st.length[r] = n + 1
            return k
        p[k] = 0.0
        st.refused[r] += 1
        if st.refused[r] >= st.budget:  # the same limit as for undoing a token, above
            return -1
