"""Raw first, the grammar only where raw decoding fails (`GrammarConfig.raw_first`).

Most latents decode, without any constraint, to a string the grammar accepts token by token and
at eos. Raw decoding is a plain batched GRU loop; constrained decoding pays per-row Python and
backtracking steps on top (about 4x). So every row is decoded raw, `SmilesGrammar.accepts`
checks the strings with the grammar's own states, and only the rows it refuses go through
`molvae.model.decoding.decode_constrained`.

Greedy: where the grammar accepts a row's raw string, constrained greedy decoding of that row
chooses the same token at every step (its best token is allowed, so nothing is refused, the
step keeps all its mass and no dead end or budget is reached), so the output is the constrained
decoder's, string for string. Sampled: a kept row is a draw from the model's distribution given
z and given that it writes a molecule the grammar's eos check takes (RDKit, the ring size cap,
one fragment: `SmilesGrammar.ends_valid`; rejection sampling, ``raw_tries`` draws); a row refused
every time is a constrained sample, as before. Sampled rows skip the token-by-token walk of
`SmilesGrammar.accepts`: it cost a third of a raw decoding, the eos check alone a tenth, and
they disagree only on strings RDKit takes and partialsmiles' stricter rules do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from molvae.grammar.smiles import GrammarConfig, SmilesGrammar

if TYPE_CHECKING:
    from molvae.model.vae import MolVAE

# a further raw draw is made only while the last kept at least this share of its rows: a draw
# plus its check costs about a seventh of a constrained decoding of the rows that fail it
MIN_KEPT = 0.2


def decode_raw_first(
    model: MolVAE,
    z: Tensor,
    strategy: str,
    temperature: float,
    generator: torch.Generator | None,
    grammar: SmilesGrammar,
    config: GrammarConfig,
    batch_size: int = 1024,
) -> Tensor:
    """Greedy or sampled ids ``batch x T`` for z ``batch x d``, as `MolVAE.decode` returns them:
    raw decoding (``batch_size`` rows per call) up to ``config.raw_tries`` times (once for
    greedy, whose repeats are the same string; fewer when a draw keeps under `MIN_KEPT` of its
    rows, as from a model that rarely writes valid strings), then the grammar for the rows
    still refused."""
    pad = model.config.pad_id
    b = z.shape[0]
    out = np.full((b, 1), pad, dtype=np.int64)
    todo = np.arange(b)
    tries = 1 if strategy == "greedy" else config.raw_tries
    for _ in range(tries):
        ids = _raw(model, z, todo, strategy, temperature, generator, batch_size, pad)
        ok = grammar.accepts(ids) if strategy == "greedy" else grammar.ends_valid(ids)
        out = _put(out, todo[ok], ids[ok], pad)
        todo = todo[~ok]
        if not len(todo) or ok.mean() < MIN_KEPT:
            break
    if len(todo):
        rest = model.decode(
            z[torch.as_tensor(todo, device=z.device)], strategy, temperature,
            generator=generator, constraint=grammar, backtrack=config.backtrack,
            min_mass=config.min_mass,
        )  # fmt: skip
        out = _put(out, todo, rest.cpu().numpy(), pad)
    width = max(int((out != pad).any(0).nonzero()[0].max(initial=0)) + 1, 1)
    return torch.as_tensor(out[:, :width]).to(z.device)


def _raw(
    model: MolVAE,
    z: Tensor,
    rows: np.ndarray,
    strategy: str,
    temperature: float,
    generator: torch.Generator | None,
    batch_size: int,
    pad: int,
) -> np.ndarray:
    """Raw ids of ``z[rows]``, ``len(rows) x T`` on the host, ``batch_size`` rows per call."""
    out = np.full((len(rows), 1), pad, dtype=np.int64)
    for s in range(0, len(rows), batch_size):
        chunk = torch.as_tensor(rows[s : s + batch_size], device=z.device)
        ids = model.decode(z[chunk], strategy, temperature, generator=generator)
        out = _put(out, np.arange(s, s + len(chunk)), ids.cpu().numpy(), pad)
    return out


def _put(out: np.ndarray, rows: np.ndarray, ids: np.ndarray, pad: int) -> np.ndarray:
    """``out`` with ``ids`` written into ``rows``, both padded to the wider of the two."""
    width = max(out.shape[1], ids.shape[1])
    if out.shape[1] < width:
        out = np.pad(out, ((0, 0), (0, width - out.shape[1])), constant_values=pad)
    out[rows] = pad
    out[rows, : ids.shape[1]] = ids
    return out
