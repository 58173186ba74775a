"""Give a trained model a larger vocabulary, so it can be fine-tuned on data with new tokens.

Fine-tuning on another data set (the full MOSES split has ring label ``6``, ZINC-250k has charged
atoms such as ``[NH3+]``) needs every token of the new data. Dropping those molecules would hide
the very chemistry the fine-tuning is for, so the model's token-indexed weights (the embedding
rows, the output layer's rows and biases) are re-laid out for the new vocabulary by token name:
known tokens keep their trained rows wherever they now sit, new tokens start with embedding rows
of the trained rows' scale and output rows that make them unlikely until training raises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from molvae.data.tokens import SPECIALS, Vocab
from molvae.model.checkpoint import Checkpoint

# the state-dict entries with one row per token
_EMBEDDING = "embedding.weight"
_OUT_WEIGHT = "out.weight"
_OUT_BIAS = "out.bias"


def merged_tokens(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """``first`` in its order, then the tokens only ``second`` has (a valid `Vocab` order when
    ``first`` is one)."""
    seen = set(first)
    return [*first, *(t for t in second if t not in seen)]


def extend_vocabulary(checkpoint: Checkpoint, tokens: Sequence[str], seed: int = 0) -> Checkpoint:
    """A copy of ``checkpoint`` whose model reads and writes ``tokens``, which must contain every
    token of its vocabulary (any order; `Vocab` rules: the special tokens first).

    Known tokens keep their trained rows. A new token's embedding row is drawn from
    N(0, s^2), s = the trained rows' standard deviation (seeded); its output row is zero and its
    output bias the lowest trained bias of a data token, so the model does not emit it until
    training says so. The training state (optimizer moments sized for the old vocabulary) is
    dropped; the prior, domain and meta are kept.
    """
    old = checkpoint.vocab_tokens
    new = Vocab(tokens).tokens
    missing = [t for t in old if t not in set(new)]
    if missing:
        raise ValueError(f"the new vocabulary lacks tokens the model knows: {missing}")
    if new == list(old):
        return checkpoint
    state = dict(checkpoint.state_dict)
    pos = torch.tensor([old.index(t) if t in old else -1 for t in new])
    known = pos >= 0
    gen = torch.Generator().manual_seed(seed)

    emb = state[_EMBEDDING]
    new_emb = torch.randn(len(new), emb.shape[1], generator=gen, dtype=emb.dtype) * emb.std()
    new_emb[known] = emb[pos[known]]
    state[_EMBEDDING] = new_emb

    w, b = state[_OUT_WEIGHT], state[_OUT_BIAS]
    new_w = torch.zeros(len(new), w.shape[1], dtype=w.dtype)
    new_w[known] = w[pos[known]]
    data_rows = [i for i, t in enumerate(old) if t not in SPECIALS]
    new_b = torch.full((len(new),), float(b[data_rows].min()), dtype=b.dtype)
    new_b[known] = b[pos[known]]
    state[_OUT_WEIGHT], state[_OUT_BIAS] = new_w, new_b

    config = replace(checkpoint.config, vocab_size=len(new))
    return replace(checkpoint, config=config, vocab_tokens=new, state_dict=state, train_state=None)
