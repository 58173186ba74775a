"""The vectorized first choice of constrained decoding (`molvae.grammar.constrained.advance`)
against a draw-order reference, its sampling law, and the grammar's cheaper RDKit check."""

from __future__ import annotations

import numpy as np
import pytest

from molvae.chem import parse
from molvae.grammar.checks import rdkit_mol
from molvae.grammar.constrained import ConstrainedState, advance


class TakeAll:
    """A batch state whose tables take every eligible token (so no row takes the per-row path)."""

    def fast(self, slots: np.ndarray, tokens: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        return eligible.copy()


def state(strategy: str, n: int, v: int, budget: int, seed: int = 0) -> ConstrainedState:
    st = ConstrainedState.new(
        n, v, 4, 10, strategy=strategy, eos_id=v - 1, budget=budget, min_mass=0.0,
        rng=np.random.default_rng(seed), batch=TakeAll(), z_rows=n,
    )  # fmt: skip
    st.slot_row[:] = np.arange(n)
    return st


def reference(keys, probs, masks, give_at):
    """Refusals counted by walking each row's tokens in draw order (best key first)."""
    n_refused, kept, token = [], probs.copy(), []
    for i in range(len(probs)):
        j = 0
        for k in np.argsort(-keys[i], kind="stable"):
            if probs[i, k] <= 0.0:
                break
            if masks[i, k] or j == give_at[i]:
                break
            kept[i, k] = 0.0
            j += 1
        n_refused.append(j)
        token.append(int(np.argmax(np.where(masks[i] & (probs[i] > 0), keys[i], -1.0))))
    return np.array(n_refused), kept, np.array(token)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_advance_refuses_the_masked_tokens_drawn_before_the_choice(strategy) -> None:
    rng = np.random.default_rng(1)
    n, v = 200, 12
    probs = rng.dirichlet(np.full(v, 0.5), size=n)
    probs[:, v - 1] = 0.0  # no eos: every row goes on
    probs /= probs.sum(1, keepdims=True)
    masks = rng.random((n, v)) < 0.4
    masks[np.arange(n), rng.integers(0, v - 1, n)] = True  # something allowed in every row
    st = state(strategy, n, v, budget=3)
    st.refused[:] = rng.integers(0, 3, n)  # some rows reach the budget on the way
    give_at = st.budget - st.refused.copy()
    # the keys advance draws: replay its generator
    keys = (
        probs
        if strategy == "greedy"
        else probs / state(strategy, 1, v, 3).rng.standard_exponential((n, v))
    )
    rows, pos = np.arange(n), np.zeros(n, dtype=np.int64)
    going = advance(st, rows, probs, masks, pos, max_len=10)
    n_ref, kept, token = reference(keys, probs, masks, give_at)
    assert np.array_equal(st.refused, st.budget - give_at + n_ref)
    assert np.array_equal(st.dist[0], kept)
    live = give_at > n_ref  # the rows not given up took their first allowed token
    assert np.array_equal(going, np.flatnonzero(live))
    assert np.array_equal(st.toks[live, 0], token[live]) and (st.length == live).all()
    assert (~live).any() and (n_ref > 0).any()  # both cases were exercised


def test_sampled_first_token_follows_the_distribution() -> None:
    """Without masks, the first token is a draw from ``probs``: 20,000 draws of three tokens
    land within 3% of their probabilities."""
    n, p = 20000, np.array([0.5, 0.3, 0.2, 0.0])
    st = state("sample", n, 4, budget=10, seed=3)
    advance(st, np.arange(n), np.tile(p, (n, 1)), np.ones((n, 4), dtype=bool),
            np.zeros(n, dtype=np.int64), max_len=10)  # fmt: skip
    freq = np.bincount(st.toks[:, 0], minlength=4) / n
    assert np.allclose(freq, p, atol=0.03)


@pytest.mark.parametrize(
    "smiles",
    ["c1ccccc1O", "c1cccc1", "C(C)(C)(C)(C)C", "CC(=O)Nc1ccc[nH]1", "[H][H]", "[2H]C", "",
     "C1CC", "O=S(=O)(O)c1ccncc1", "[NH4+]", "Cn1cccc1"],
)  # fmt: skip
def test_rdkit_check_agrees_with_parse(smiles) -> None:
    assert (rdkit_mol(smiles) is None) == (parse(smiles) is None)
