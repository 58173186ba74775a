"""Per-vocabulary tables of the incremental SMILES grammar: each token's kind and, per view of a
`molvae.grammar.state.RowState`, which tokens are allowed.

A view's row is filled the first time a string reaches it, by trying every token on that
string's state (apply, check the atoms it touched, undo); later strings in the same view read
it. Tables are shared by every grammar over the same tokens in the process, so a decoder pays
for a view once, not once per call.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from molvae.data.tokens import SPECIALS, Vocab
from molvae.grammar import checks as grammar_checks
from molvae.grammar.atoms import ATOM, EOS, NEVER, RING, classify
from molvae.grammar.state import ALLOW, FORBID, VERIFY, RowState

_SHARED: dict[tuple[str, ...], GrammarTables] = {}
_SHARED_LOCK = threading.Lock()


def tables_for(tokens: Sequence[str]) -> GrammarTables:
    """The process-wide tables for a vocabulary (built on first use)."""
    key = tuple(tokens)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = GrammarTables(key)
        return _SHARED[key]


class GrammarTables:
    """Token kinds and arguments, atom types, ring labels, and the verdict rows per view."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(tokens)
        self.atypes: list = []
        self.labels: list[str] = []
        self.kind: list[int] = []
        self.arg: list = []
        for i, tok in enumerate(self.tokens):
            kind, arg = classify(tok)
            if i == Vocab.eos_id:
                kind, arg = EOS, None
            elif tok in SPECIALS:
                kind, arg = NEVER, None
            elif kind == ATOM:
                if arg not in self.atypes:
                    self.atypes.append(arg)
                arg = self.atypes.index(arg)
            elif kind == RING:
                self.labels.append(arg)
                arg = len(self.labels) - 1
            self.kind.append(kind)
            self.arg.append(arg)
        self.aromatic = [t.arom for t in self.atypes]  # per atom type
        self.elem = [t.elem for t in self.atypes]
        self.nonlocal_ok = grammar_checks.nonlocal_ok  # the checks a VERIFY token runs
        self.final_ok = grammar_checks.final_ok
        # what eos cost: asked, checked by RDKit, refused by it or by the ring size cap, ended
        # (process-wide counts for benchmarks; see pipelines/benchmarks/grammar_decoding.py)
        self.stats: Counter[str] = Counter()
        self.views: dict[tuple, int] = {}
        self.verdicts: list[list[int]] = []
        # per view and token: the verdict, and the view after the token where that follows from
        # the view alone (-1: not known yet, or it does not: ')' and ring closures)
        self.codes = np.zeros((64, len(self.tokens)), dtype=np.int8)
        self.trans = np.full((64, len(self.tokens)), -1, dtype=np.int64)
        self._lock = threading.Lock()

    def view_id(self, st: RowState) -> int:
        """The id of ``st``'s view, its verdict row computed here the first time."""
        view = st.view()
        vid = self.views.get(view)
        if vid is None:
            with self._lock:
                vid = self.views.get(view)
                if vid is None:
                    vid = self._add(view, st)
        return vid

    def masks(self, vids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``len(vids) x vocab`` booleans: the tokens each view does not refuse outright."""
        return self.codes[np.asarray(vids, dtype=np.int64)] != FORBID

    def _add(self, view: tuple, st: RowState) -> int:
        row = [self._verdict(st, tok) for tok in range(len(self.tokens))]
        vid = len(self.verdicts)
        if vid == len(self.codes):
            self.codes = np.concatenate([self.codes, np.zeros_like(self.codes)])
            self.trans = np.concatenate([self.trans, np.full_like(self.trans, -1)])
        self.codes[vid] = row
        self.verdicts.append(row)
        self.views[view] = vid  # last: readers without the lock see complete rows only
        return vid

    def _verdict(self, st: RowState, tok: int) -> int:
        """Try ``tok`` on ``st``: FORBID, ALLOW, or VERIFY (allowed by the view, to be checked
        against the whole graph when chosen)."""
        kind, arg = self.kind[tok], self.arg[tok]
        if kind == NEVER or not grammar_checks.syntax_ok(st, kind, arg):
            return FORBID
        if kind == EOS:
            return VERIFY
        st.apply(kind, arg)
        try:
            rec = st.trail[-1]
            if not grammar_checks.local_ok(st, rec):
                return FORBID
            return VERIFY if grammar_checks.needs_verify(st, rec) else ALLOW
        finally:
            st.undo()
