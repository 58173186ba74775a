"""Decoding a :class:`~molvae.model.vae.MolVAE`: greedy, sampled, beam, and grammar-constrained.

Every strategy runs the decoder GRU one step at a time with its hidden state cached. Functions
here take the model as their first argument; `MolVAE.decode` picks one. Knows token ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from molvae.model.vae import MolVAE, VAEConfig


class TokenConstraint(Protocol):
    """Which next tokens a constrained decoder may emit (`molvae.model.grammar.SmilesGrammar`)."""

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow the token ids ``prefix`` (bos excluded)."""
        ...


def mask_specials(config: VAEConfig, logits: Tensor) -> Tensor:
    """pad and bos are never targets, so a decoder must not emit them: ``rows x vocab``."""
    logits = logits.clone()
    logits[:, [config.pad_id, config.bos_id]] = float("-inf")
    return logits


def _step_logits(model: MolVAE, tok: Tensor, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """One decoder step: tokens ``rows x 1`` -> (masked float logits ``rows x vocab``, new h)."""
    o, h = model.decoder_rnn(model._step_input(tok, z), h)
    return mask_specials(model.config, model.out(o[:, -1]).float()), h


def decode_rows(
    model: MolVAE,
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


@dataclass
class ConstrainedState:
    """Per-row bookkeeping of constrained decoding (rows are indexed ``r``, positions ``p``).

    ``dist[p, r]`` is row r's distribution for its p-th token with refused tokens zeroed;
    ``slot_pos[s, r]`` which position ring slot s holds (-1: none); ``refused[r]`` how many
    tokens row r has had refused or undone; ``ended[r]`` whether it emitted eos.
    """

    strategy: str
    constraint: TokenConstraint
    eos_id: int
    budget: int  # a row is given up at its budget-th refusal or undo (bounds the time spent)
    min_mass: float
    rng: np.random.Generator
    dist: np.ndarray  # max_len x batch x vocab, float64
    slot_pos: np.ndarray  # ring x batch, int64
    seqs: list[list[int]] = field(default_factory=list)
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ended: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def new(cls, b: int, vocab: int, max_len: int, ring: int, **kw) -> ConstrainedState:
        return cls(
            dist=np.zeros((max_len, b, vocab)),
            slot_pos=np.full((ring, b), -1, dtype=np.int64),
            seqs=[[] for _ in range(b)],
            refused=np.zeros(b, dtype=np.int64),
            ended=np.zeros(b, dtype=bool),
            **kw,
        )


def decode_constrained(
    model: MolVAE,
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
    own pace; every GRU call batches the rows that have just accepted a token.
    """
    c = model.config
    b, dev = z.shape[0], z.device
    ring = backtrack + 1
    # The per-row choices run on the host, so their randomness comes from numpy, seeded from
    # ``generator`` so seeded calls repeat exactly.
    gen_dev = generator.device if generator is not None else dev
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=gen_dev)
    st = ConstrainedState.new(
        b, c.vocab_size, max_len, ring, strategy=strategy, constraint=constraint,
        eos_id=c.eos_id, budget=4 * max_len, min_mass=min_mass,
        rng=np.random.default_rng(int(seed)),
    )  # fmt: skip
    hist: Tensor | None = None  # ring x batch x layers x hidden
    rows = torch.arange(b, device=dev)
    h = model.init_hidden(z)
    tok = torch.full((b, 1), c.bos_id, dtype=torch.long, device=dev)
    while len(rows):
        logits, h = _step_logits(model, tok, z[rows], h)
        probs = torch.softmax(logits / (temperature if strategy == "sample" else 1.0), -1)
        if hist is None:
            hist = torch.zeros(ring, b, *h.transpose(0, 1).shape[1:], dtype=h.dtype, device=dev)
        r_np = rows.cpu().numpy()
        pos = np.array([len(st.seqs[r]) for r in r_np])
        st.dist[pos, r_np] = probs.double().cpu().numpy()
        hist[torch.as_tensor(pos % ring, device=dev), rows] = h.transpose(0, 1)
        st.slot_pos[pos % ring, r_np] = pos
        going, nxt = _advance(st, r_np, max_len)
        if not going:
            break
        rows = torch.as_tensor(going, device=dev)
        pos = np.array([len(st.seqs[r]) - 1 for r in going])  # each row's state before its token
        h = hist[torch.as_tensor(pos % ring, device=dev), rows].transpose(0, 1).contiguous()
        tok = torch.as_tensor(nxt, device=dev).unsqueeze(1)
    return _pack_rows(st, c.pad_id, c.eos_id).to(dev)


def _advance(st: ConstrainedState, rows: np.ndarray, max_len: int) -> tuple[list[int], list[int]]:
    """Choose each row's next token: (rows that go on, their tokens); rows that end drop out."""
    going, nxt = [], []
    for r in rows:
        k = choose_token(st, r)
        if k == st.eos_id:
            st.ended[r] = True
        elif k >= 0 and len(st.seqs[r]) < max_len:
            going.append(r)
            nxt.append(k)
    return going, nxt


def choose_token(st: ConstrainedState, r: int) -> int:
    """Row r's next allowed token, appended to its sequence unless it is eos; -1 when given up.

    May pop tokens off the sequence first (backtracking): the caller then resumes the row from
    the state stored before its new last token.
    """
    seq = st.seqs[r]
    while True:
        p = st.dist[len(seq), r]
        total = p.sum()
        if total <= st.min_mass or total <= 0.0:  # a dead end: undo the previous token
            q = len(seq) - 1  # re-choosing token q needs the state at q, if still stored
            if q < 0 or st.slot_pos[q % len(st.slot_pos), r] != q or st.refused[r] >= st.budget:
                return -1
            k = seq.pop()
            st.dist[len(seq), r, k] = 0.0
            st.refused[r] += 1
            continue
        if st.strategy == "greedy":
            k = int(p.argmax())
        else:
            k = min(int(np.searchsorted(np.cumsum(p), st.rng.random() * total, side="right")),
                    len(p) - 1)  # fmt: skip
        if p[k] > 0.0 and st.constraint.allows(seq, k):
            if k != st.eos_id:
                seq.append(k)
            return k
        p[k] = 0.0
        st.refused[r] += 1
        if st.refused[r] >= st.budget:  # the same limit as for undoing a token, above
            return -1


def _pack_rows(st: ConstrainedState, pad_id: int, eos_id: int) -> Tensor:
    """The rows' token lists as ``batch x T`` ids: tokens, eos where the row ended, then pad."""
    width = max([len(s) + int(e) for s, e in zip(st.seqs, st.ended, strict=True)] + [1])
    out = torch.full((len(st.seqs), width), pad_id, dtype=torch.long)
    for r, s in enumerate(st.seqs):
        out[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        if st.ended[r]:
            out[r, len(s)] = eos_id
    return out


def decode_beam(model: MolVAE, z: Tensor, k: int, max_len: int) -> Tensor:
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
