"""The SMILES character VAE: bidirectional GRU encoder, GRU decoder conditioned on z.

Knows token ids, not SMILES; no training loop, no files, no RDKit. Runs unchanged on CPU and CUDA.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


@dataclass
class VAEConfig:
    """Architecture of :class:`MolVAE` (primitives only, so it round-trips through JSON)."""

    vocab_size: int
    emb_dim: int = 64
    enc_hidden: int = 256  # per direction; the encoder GRU is bidirectional
    enc_layers: int = 1
    latent_dim: int = 56
    dec_hidden: int = 512
    dec_layers: int = 3
    dropout: float = 0.0  # between decoder GRU layers and on decoder embeddings, training only
    max_len: int = 100  # maximum generated tokens, eos included
    property_dim: int = 0  # >0 adds an MLP head predicting properties from mu
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def to_dict(self) -> dict:
        """Plain dict of primitives."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown VAEConfig fields: {sorted(unknown)}")
        return cls(**d)


@dataclass
class VAEOutput:
    """Loss parts and tensors of one forward pass (losses are scalars, means over the batch)."""

    recon: Tensor  # cross-entropy summed over the non-pad target tokens, mean over molecules
    kl: Tensor  # KL(q(z|x) || N(0, I)) summed over latent dims, mean over molecules
    prop_loss: Tensor  # MSE of the property head (0 without head or props)
    logits: Tensor  # batch x (length-1) x vocab
    mu: Tensor  # batch x latent_dim
    logvar: Tensor  # batch x latent_dim
    z: Tensor  # batch x latent_dim
    n_correct: Tensor  # teacher-forced argmax hits over non-pad targets (scalar, no grad)
    n_tokens: Tensor  # number of non-pad targets (scalar)


class TokenConstraint(Protocol):
    """Which next tokens a constrained decoder may emit (see `molvae.grammar.SmilesGrammar`)."""

    def allows(self, prefix: Sequence[int], token: int) -> bool:
        """Whether ``token`` may follow the token ids ``prefix`` (bos excluded)."""
        ...


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else as given."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=8)
def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds up this device: CUDA, or a CPU with native bf16 matrix units
    (AMX or AVX512-BF16; measured 2.2x for a GRU forward and backward there). Other CPUs would
    have to convert in software, so they stay in fp32 (not measured: none was at hand)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:  # private helpers; a torch without them gets fp32
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per row: ``batch x d -> batch``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class MolVAE(nn.Module):
    """GRU VAE over token ids (Gomez-Bombarelli style with a recurrent encoder)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = config
        self.config = c
        self.embedding = nn.Embedding(c.vocab_size, c.emb_dim, padding_idx=c.pad_id)
        self.encoder_rnn = nn.GRU(
            c.emb_dim, c.enc_hidden, num_layers=c.enc_layers, batch_first=True, bidirectional=True
        )
        self.mu_head = nn.Linear(2 * c.enc_hidden, c.latent_dim)
        self.logvar_head = nn.Linear(2 * c.enc_hidden, c.latent_dim)
        self.z_to_hidden = nn.Linear(c.latent_dim, c.dec_layers * c.dec_hidden)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.decoder_rnn = nn.GRU(
            c.emb_dim + c.latent_dim,
            c.dec_hidden,
            num_layers=c.dec_layers,
            batch_first=True,
            dropout=c.dropout if c.dec_layers > 1 else 0.0,
        )
        self.out = nn.Linear(c.dec_hidden, c.vocab_size)
        self.prop_head: nn.Module | None = None
        if c.property_dim > 0:
            self.prop_head = nn.Sequential(
                nn.Linear(c.latent_dim, 128), nn.ReLU(), nn.Linear(128, c.property_dim)
            )

    # ----------------------------------------------------------------- encoder
    def encode(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x ``batch x length`` lengths ``batch`` -> mu, logvar ``batch x d``.

        The encoder sees the full sequence; its summary is the last layer's final fwd/bwd states.
        """
        emb = self.embedding(x)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.encoder_rnn(packed)  # (layers*2) x batch x enc_hidden
        h = torch.cat([h[-2], h[-1]], dim=-1)  # last layer's forward and backward final states
        return self.mu_head(h), self.logvar_head(h)

    def reparameterize(
        self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + sigma * eps, ``batch x d``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    # ----------------------------------------------------------------- decoder
    def init_hidden(self, z: Tensor) -> Tensor:
        """z ``batch x d`` -> decoder initial state ``dec_layers x batch x dec_hidden``."""
        c = self.config
        h = torch.tanh(self.z_to_hidden(z)).view(z.shape[0], c.dec_layers, c.dec_hidden)
        return h.transpose(0, 1).contiguous()

    def _step_input(self, tokens: Tensor, z: Tensor) -> Tensor:
        """tokens ``batch x T``, z ``batch x d`` -> ``batch x T x (emb+d)``."""
        emb = self.emb_dropout(self.embedding(tokens))
        return torch.cat([emb, z.unsqueeze(1).expand(-1, tokens.shape[1], -1).to(emb.dtype)], -1)

    def decoder_logits(self, x_in: Tensor, lengths: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits ``batch x T x vocab`` for inputs x_in ``batch x T``.

        The GRU runs over the padded batch rather than a packed one: positions past a row's
        length only produce logits for pad targets, which the loss ignores, and the unpacked
        kernels compute every step's input projection in one matrix product. With length-bucketed
        batches (a few % padding) that is about 2x faster on the CPU than the packed path.
        ``lengths`` is therefore unused; it stays in the signature to mirror `encode`.
        """
        inp = self._step_input(x_in, z)
        out, _ = self.decoder_rnn(inp, self.init_hidden(z).to(inp.dtype))
        return self.out(out)

    def forward(self, x: Tensor, lengths: Tensor, props: Tensor | None = None) -> VAEOutput:
        """Loss parts for x ``batch x length`` (bos..eos, padded), optional props ``batch x p``."""
        mu, logvar = self.encode(x, lengths)
        z = self.reparameterize(mu, logvar) if self.training else mu
        x_in, target = x[:, :-1], x[:, 1:]
        logits = self.decoder_logits(x_in, lengths - 1, z)
        pad = self.config.pad_id
        ce = F.cross_entropy(  # batch x (length-1)
            logits.float().transpose(1, 2), target, ignore_index=pad, reduction="none"
        )
        recon = ce.sum(dim=1).mean()
        kl = kl_divergence(mu.float(), logvar.float()).mean()
        prop_loss = torch.zeros((), device=x.device)
        if self.prop_head is not None and props is not None:
            prop_loss = F.mse_loss(self.prop_head(mu).float(), props.float())
        with torch.no_grad():
            mask = target != self.config.pad_id
            n_correct = ((logits.argmax(-1) == target) & mask).sum()
            n_tokens = mask.sum()
        return VAEOutput(recon, kl, prop_loss, logits, mu, logvar, z, n_correct, n_tokens)

    def predict_properties(self, mu: Tensor) -> Tensor:
        """Property head on ``batch x d`` latents -> ``batch x property_dim``."""
        if self.prop_head is None:
            raise ValueError("this model has no property head (property_dim=0)")
        return self.prop_head(mu)

    def sample_prior(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n x latent_dim`` standard-normal latents (drawn on the generator's device)."""
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=gen_device)
        return z.to(device) if device is not None else z

    @torch.no_grad()
    def decode(
        self,
        z: Tensor,
        strategy: str = "greedy",
        temperature: float = 1.0,
        beam_width: int = 5,
        max_len: int | None = None,
        generator: torch.Generator | None = None,
        amp: bool = True,
        constraint: TokenConstraint | None = None,
        backtrack: int = 32,
        min_mass: float = 0.0,
    ) -> Tensor:
        """z ``batch x d`` -> ids ``batch x T`` without bos; each row is tokens, eos, then pad.

        Decodes one GRU step at a time with the hidden state cached. A row that emits eos leaves
        the batch, so the cost follows the mean length rather than the longest row, and decoding
        stops once every row has ended (or after ``max_len`` tokens; such rows carry no eos).
        ``beam`` ranks beams by plain (not length-normalised) summed log-probability and returns
        the best finished beam. ``amp`` runs the GRU in bf16 where that is fast
        (`fast_bf16`: CUDA, or a CPU with AMX/AVX512-BF16), as training does.

        With a ``constraint``, greedy and sampled decoding only emit tokens it allows: a refused
        token is removed from the step's distribution, which is renormalised (greedy takes the
        best allowed token). A step whose allowed tokens hold no more than ``min_mass`` of the
        model's probability is a dead end: the previous token is undone and chosen again, up to
        ``backtrack`` tokens deep. Some errors only show once the next atom is written (an
        aromatic ring that cannot be kekulized), and a prefix the model itself finds nearly
        impossible to continue is better undone than forced on. A row that finds no way out
        within ``4 * max_len`` refusals is returned as it stands: tokens then pad, no eos.
        ``beam`` ignores the constraint.
        """
        max_len = max_len or self.config.max_len
        device = next(self.parameters()).device
        z = z.to(device, torch.float32)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and fast_bf16(device)):
            if strategy == "beam":
                return self._beam(z, beam_width, max_len)
            if strategy not in ("greedy", "sample"):
                raise ValueError(f"unknown decode strategy {strategy!r}")
            if constraint is not None:
                return self._decode_constrained(
                    z, strategy, temperature, max_len, generator, constraint, backtrack, min_mass
                )
            return self._decode_rows(z, strategy, temperature, max_len, generator)

    def _decode_rows(
        self,
        z: Tensor,
        strategy: str,
        temperature: float,
        max_len: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        c = self.config
        b = z.shape[0]
        out = torch.full((b, max_len), c.pad_id, dtype=torch.long, device=z.device)
        rows = torch.arange(b, device=z.device)  # the rows still decoding
        h = self.init_hidden(z)
        tok = torch.full((b, 1), c.bos_id, dtype=torch.long, device=z.device)
        steps = 0
        for t in range(max_len):
            o, h = self.decoder_rnn(self._step_input(tok, z), h)
            logits = self._mask_specials(self.out(o[:, -1]).float())  # rows x vocab
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

    def _decode_constrained(
        self,
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

        Each row is a stack of chosen tokens. ``dist[p, r]`` is row r's distribution for its
        p-th token, with refused tokens zeroed; the decoder states of the last ``backtrack + 1``
        positions stay in a ring buffer, so undoing a token needs no GRU call. Rows advance at
        their own pace; every GRU call batches the rows that have just accepted a token.
        """
        c = self.config
        b, dev = z.shape[0], z.device
        ring = backtrack + 1
        budget = 4 * max_len  # refusals per row before it is given up (bounds the time spent)
        # The per-row choices run on the host, so their randomness comes from numpy, seeded
        # from ``generator`` so seeded calls repeat exactly.
        gen_dev = generator.device if generator is not None else dev
        seed = torch.randint(0, 2**62, (1,), generator=generator, device=gen_dev)
        rng = np.random.default_rng(int(seed))
        dist = np.zeros((max_len, b, c.vocab_size))
        seqs: list[list[int]] = [[] for _ in range(b)]
        slot_pos = np.full((ring, b), -1, dtype=np.int64)  # which position each slot holds
        refused = np.zeros(b, dtype=np.int64)
        ended = np.zeros(b, dtype=bool)  # emitted eos
        hist: Tensor | None = None  # ring x batch x layers x hidden

        rows = torch.arange(b, device=dev)
        h = self.init_hidden(z)
        tok = torch.full((b, 1), c.bos_id, dtype=torch.long, device=dev)
        while len(rows):
            o, h = self.decoder_rnn(self._step_input(tok, z[rows]), h)
            logits = self._mask_specials(self.out(o[:, -1]).float())
            probs = torch.softmax(logits / (temperature if strategy == "sample" else 1.0), -1)
            if hist is None:
                hist = torch.zeros(ring, b, *h.transpose(0, 1).shape[1:], dtype=h.dtype, device=dev)
            r_np = rows.cpu().numpy()
            pos = np.array([len(seqs[r]) for r in r_np])
            dist[pos, r_np] = probs.double().cpu().numpy()
            hist[torch.as_tensor(pos % ring, device=dev), rows] = h.transpose(0, 1)
            slot_pos[pos % ring, r_np] = pos
            going, nxt = [], []
            for r in r_np:
                k = self._choose(r, seqs[r], dist, slot_pos, refused, strategy, rng, constraint,
                                 budget, min_mass)  # fmt: skip
                if k == c.eos_id:
                    ended[r] = True
                elif k >= 0 and len(seqs[r]) < max_len:
                    going.append(r)
                    nxt.append(k)
            if not going:
                break
            rows = torch.as_tensor(going, device=dev)
            pos = np.array([len(seqs[r]) - 1 for r in going])  # each row's state before its token
            h = hist[torch.as_tensor(pos % ring, device=dev), rows].transpose(0, 1).contiguous()
            tok = torch.as_tensor(nxt, device=dev).unsqueeze(1)
        width = max([len(s) + int(e) for s, e in zip(seqs, ended, strict=True)] + [1])
        out = torch.full((b, width), c.pad_id, dtype=torch.long)
        for r, s in enumerate(seqs):
            out[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            if ended[r]:
                out[r, len(s)] = c.eos_id
        return out.to(dev)

    def _choose(
        self,
        r: int,
        seq: list[int],
        dist: np.ndarray,
        slot_pos: np.ndarray,
        refused: np.ndarray,
        strategy: str,
        rng: np.random.Generator,
        constraint: TokenConstraint,
        budget: int,
        min_mass: float,
    ) -> int:
        """Row r's next allowed token, appended to ``seq`` unless it is eos; -1 when given up.

        May pop tokens off ``seq`` first (backtracking): the caller then resumes the row from
        the state stored before its new last token.
        """
        while True:
            p = dist[len(seq), r]
            total = p.sum()
            if total <= min_mass or total <= 0.0:  # a dead end: undo the previous token
                q = len(seq) - 1  # re-choosing token q needs the state at q, if still stored
                if q < 0 or slot_pos[q % len(slot_pos), r] != q or refused[r] >= budget:
                    return -1
                k = seq.pop()
                dist[len(seq), r, k] = 0.0
                refused[r] += 1
                continue
            if strategy == "greedy":
                k = int(p.argmax())
            else:
                k = min(int(np.searchsorted(np.cumsum(p), rng.random() * total, side="right")),
                        len(p) - 1)  # fmt: skip
            if p[k] > 0.0 and constraint.allows(seq, k):
                if k != self.config.eos_id:
                    seq.append(k)
                return k
            p[k] = 0.0
            refused[r] += 1
            if refused[r] > budget:
                return -1

    def _mask_specials(self, logits: Tensor) -> Tensor:
        """pad and bos are never targets, so a decoder must not emit them."""
        logits = logits.clone()
        logits[:, [self.config.pad_id, self.config.bos_id]] = float("-inf")
        return logits

    def _beam(self, z: Tensor, k: int, max_len: int) -> Tensor:
        """Batched beam search: ``batch x d`` -> best beam per row ``batch x T``."""
        c = self.config
        b, v = z.shape[0], c.vocab_size
        zk = z.repeat_interleave(k, 0)  # (batch*k) x d, beams of one z are adjacent
        h = self.init_hidden(zk)
        tok = torch.full((b * k,), c.bos_id, dtype=torch.long, device=z.device)
        score = torch.full((b, k), float("-inf"), device=z.device)
        score[:, 0] = 0.0  # all beams start identical; keep one so top-k gives distinct ones
        done = torch.zeros(b, k, dtype=torch.bool, device=z.device)
        seqs = torch.zeros(b * k, 0, dtype=torch.long, device=z.device)
        for _ in range(max_len):
            o, h = self.decoder_rnn(self._step_input(tok.unsqueeze(1), zk), h)
            logits = self._mask_specials(self.out(o[:, -1]).float())
            logp = torch.log_softmax(logits, -1).view(b, k, v)
            # a finished beam may only continue with pad at no cost, so it keeps its score
            finished = torch.full((v,), float("-inf"), device=z.device)
            finished[c.pad_id] = 0.0
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
        pick = rank.argmax(-1) + torch.arange(b, device=z.device) * k
        out = seqs[pick]
        # trim columns that are pad in every row (beams can carry trailing pads)
        keep = (out != c.pad_id).any(0).nonzero()
        return out[:, : int(keep.max()) + 1] if keep.numel() else out[:, :1]


def _multinomial(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw per row of ``batch x vocab`` probs, on the generator's device when it differs."""
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
