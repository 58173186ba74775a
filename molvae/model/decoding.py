"""Decoding a :class:`~molvae.model.vae.MolVAE`: greedy, sampled, beam, and grammar-constrained.

Every strategy runs the decoder GRU one step at a time with its hidden state cached. Functions
here take the model as their first argument; `MolVAE.decode` picks one. Knows token ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from molvae.grammar.constrained import ConstrainedState, batched
from molvae.grammar.lanes import MIN_LANE_ROWS, Loop


class DecoderModel(Protocol):
    """What the strategies here use of a model; `molvae.model.vae.MolVAE` is one (a Protocol,
    so this module need not import the model that calls it)."""

    config: Any  # a `VAEConfig`: pad_id, bos_id, eos_id, vocab_size
    decoder_rnn: torch.nn.Module
    out: torch.nn.Module

    def init_hidden(self, z: Tensor) -> Tensor:
        """Decoder GRU's initial state ``layers x batch x hidden`` from z ``batch x d``."""
        ...

    def step_input(self, tok: Tensor, z: Tensor) -> Tensor:
        """Decoder input ``batch x steps x (emb + d)`` for tokens ``batch x steps``."""
        ...


class TokenConstraint(Protocol):
    """Which next tokens a constrained decoder may emit (`molvae.grammar.smiles.SmilesGrammar`)."""

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow the token ids ``prefix`` (bos excluded)."""
        ...


def mask_specials(config: Any, logits: Tensor) -> Tensor:
    """pad and bos are never targets, so a decoder must not emit them: ``rows x vocab``."""
    logits = logits.clone()
    logits[:, [config.pad_id, config.bos_id]] = float("-inf")
    return logits


def _step_logits(model: DecoderModel, tok: Tensor, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """One decoder step: tokens ``rows x 1`` -> (masked float logits ``rows x vocab``, new h)."""
    o, h = model.decoder_rnn(model.step_input(tok, z), h)
    return mask_specials(model.config, model.out(o[:, -1]).float()), h


def decode_rows(
    model: DecoderModel,
    z: Tensor,
    strategy: str,
    temperature: float,
    max_len: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Greedy or sampled decoding, z ``batch x d`` -> ids ``batch x T`` (``T <= max_len``).

    A row that emits eos leaves the batch, so the cost follows the mean length, not the longest.
    """
    c = model.config
    b = z.shape[0]
    out = torch.full((b, max_len), c.pad_id, dtype=torch.long, device=z.device)
    rows = torch.arange(b, device=z.device)  # the rows still decoding
    h = model.init_hidden(z)
    tok = torch.full((b, 1), c.bos_id, dtype=torch.long, device=z.device)
    steps = 0
    for t in range(max_len):
        logits, h = _step_logits(model, tok, z, h)
        if strategy == "greedy":
            nxt = logits.argmax(-1)
        else:
            nxt = _multinomial(torch.softmax(logits / temperature, -1), generator)
        out[rows, t] = nxt
        steps = t + 1
        going = nxt != c.eos_id
        if not bool(going.all()):
            if not bool(going.any()):
                break
            rows, h, z, nxt = rows[going], h[:, going], z[going], nxt[going]
        tok = nxt.unsqueeze(1)
    return out[:, :steps]


CONSTRAINED_WINDOW = 1024  # rows in flight at once in constrained decoding


def decode_constrained(
    model: DecoderModel,
    z: Tensor,
    strategy: str,
    temperature: float,
    max_len: int,
    generator: torch.Generator | None,
    constraint: TokenConstraint,
    backtrack: int,
    min_mass: float,
) -> Tensor:
    """Greedy or sampled decoding through ``constraint``, with bounded backtracking.

    Each row is a stack of chosen tokens; the decoder states of its last ``backtrack + 1``
    positions stay in a ring buffer, so undoing a token needs no GRU call. Rows advance at their
    own pace; every GRU call batches the rows that have just accepted a token. At most
    `CONSTRAINED_WINDOW` rows are in flight: a row takes the slot of one that finished, so the
    few rows that backtrack for long share their GRU calls with fresh ones instead of running
    alone at the end. A grammar with a batched state (`molvae.grammar.smiles.SmilesGrammar`)
    masks each step's distributions before the batch chooses (`molvae.grammar.constrained`);
    with enough rows, two lanes overlap one's GRU step with the other's choices
    (`molvae.grammar.lanes`).
    """
    c = model.config
    b, dev = z.shape[0], z.device
    w, ring = min(b, CONSTRAINED_WINDOW), backtrack + 1
    # The per-row choices run on the host, so their randomness comes from numpy, seeded from
    # ``generator`` so seeded calls repeat exactly.
    gen_dev = generator.device if generator is not None else dev
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=gen_dev)
    st = ConstrainedState.new(
        w, c.vocab_size, ring, max_len, strategy=strategy, eos_id=c.eos_id, budget=4 * max_len,
        min_mass=min_mass, rng=np.random.default_rng(int(seed)),
        batch=batched(constraint, w, c.vocab_size, c.eos_id), z_rows=b,
    )  # fmt: skip
    amp, amp_dtype = torch.is_autocast_enabled(dev.type), torch.get_autocast_dtype(dev.type)
    temp = temperature if strategy == "sample" else 1.0

    def step(tok: Tensor, zr: Tensor, h: Tensor) -> tuple[np.ndarray, Tensor]:
        logits, h = _step_logits(model, tok, zr, h)
        return torch.softmax(logits / temp, -1).double().cpu().numpy(), h

    def modes() -> list:  # the caller's, for the worker thread
        return [torch.no_grad(), torch.autocast(dev.type, dtype=amp_dtype, enabled=amp)]

    lanes = 2 if w >= 2 * MIN_LANE_ROWS else 1
    Loop(st, step, model.init_hidden, z, c.bos_id, max_len, lanes, modes).run()
    return _pack_rows(st.out_toks, st.out_len, st.out_ended, c.pad_id, c.eos_id).to(dev)


def _pack_rows(
    toks: np.ndarray, length: np.ndarray, ended: np.ndarray, pad_id: int, eos_id: int
) -> Tensor:
    """The rows' tokens (``toks[r, :length[r]]``) as ``batch x T`` ids: tokens, eos where the
    row ended, then pad."""
    width = max(int((length + ended).max(initial=0)), 1)
    cols = np.arange(width)
    out = np.where(cols < length[:, None], toks[:, :width], pad_id)
    out[(cols == length[:, None]) & ended[:, None]] = eos_id
    return torch.as_tensor(out, dtype=torch.long)


def decode_beam(model: DecoderModel, z: Tensor, k: int, max_len: int) -> Tensor:
    """Batched beam search: ``batch x d`` -> best beam per row ``batch x T``.

    Beams are ranked by plain (not length-normalised) summed log-probability; the best finished
    beam is returned.
    """
    c = model.config
    b, v = z.shape[0], c.vocab_size
    zk = z.repeat_interleave(k, 0)  # (batch*k) x d, beams of one z are adjacent
    h = model.init_hidden(zk)
    tok = torch.full((b * k,), c.bos_id, dtype=torch.long, device=z.device)
    score = torch.full((b, k), float("-inf"), device=z.device)
    score[:, 0] = 0.0  # all beams start identical; keep one so top-k gives distinct ones
    done = torch.zeros(b, k, dtype=torch.bool, device=z.device)
    seqs = torch.zeros(b * k, 0, dtype=torch.long, device=z.device)
    # a finished beam may only continue with pad at no cost, so it keeps its score
    finished = torch.full((v,), float("-inf"), device=z.device)
    finished[c.pad_id] = 0.0
    for _ in range(max_len):
        logits, h = _step_logits(model, tok.unsqueeze(1), zk, h)
        logp = torch.log_softmax(logits, -1).view(b, k, v)
        logp = torch.where(done.unsqueeze(-1), finished, logp)
        cand = (score.unsqueeze(-1) + logp).view(b, k * v)
        score, idx = cand.topk(k, dim=-1)  # batch x k
        beam, nxt = idx // v, idx % v
        flat = (beam + torch.arange(b, device=z.device).unsqueeze(1) * k).view(-1)
        seqs = torch.cat([seqs[flat], nxt.view(-1, 1)], 1)
        h = h[:, flat]
        done = done.view(-1)[flat].view(b, k) | (nxt == c.eos_id)
        tok = nxt.view(-1)
        # plain log-probs only fall as a beam grows, so a finished best beam is final
        best_done = torch.where(done, score, float("-inf")).max(-1).values
        best_open = torch.where(done, float("-inf"), score).max(-1).values
        if bool((best_done >= best_open).all()):
            break
    rank = torch.where(done, score, score - 1e9)  # prefer finished beams, then score
    out = seqs[rank.argmax(-1) + torch.arange(b, device=z.device) * k]
    # trim columns that are pad in every row (beams can carry trailing pads)
    keep = (out != c.pad_id).any(0).nonzero()
    return out[:, : int(keep.max()) + 1] if keep.numel() else out[:, :1]


def _multinomial(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw per row of ``batch x vocab`` probs, on the generator's device when it differs."""
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
