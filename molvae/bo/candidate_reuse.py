"""Candidates kept across the small proposals of asynchronous BO (`molvae.bo.async_loop`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CandidateReuse:
    """Candidates kept across proposals of one or a few molecules (asynchronous BO): Graph GA's
    children cost about 15 ms each (mol_ga's ring crossover), 3 of the 4 s of a proposal of one
    molecule, while the GP refit and Thompson sampling that choose among them cost under 1 s.
    A set serves ``uses`` proposals while at least ``MIN_PER_PICK`` per molecule asked for
    are still new and the best score has not moved; then (a new best is where the GA should
    climb from) it is made afresh on the GP of the time."""

    uses: int = 4
    candidates: dict[str, str] = field(default_factory=dict)
    served: int = 0
    best: float = float("nan")  # the best score when the set was made

    def take(self, known: set[str], q: int, best: float) -> dict[str, str] | None:
        """The kept candidates not ``known`` (None: make new ones)."""
        left = {c: s for c, s in self.candidates.items() if c not in known}
        if self.served >= self.uses or len(left) < MIN_PER_PICK * q or best != self.best:
            return None
        self.served += 1
        return left

    def store(self, candidates: dict[str, str], best: float) -> None:
        """Keep a fresh set, made when the best score was ``best`` (it served one proposal)."""
        self.candidates, self.served, self.best = dict(candidates), 1, best


MIN_PER_PICK = 20
