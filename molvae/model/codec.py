"""SMILES <-> latent bridge over a trained :class:`~molvae.model.vae.MolVAE`.

Callers canonicalize; strings that cannot be encoded are reported per row, never raised on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molvae.data.batching import PadCollate
from molvae.data.tokens import Vocab, tokenize
from molvae.model.checkpoint import load_checkpoint
from molvae.model.device import resolve_device
from molvae.model.grammar import GrammarConfig, SmilesGrammar
from molvae.model.vae import MolVAE


@dataclass
class EncodeResult:
    """Latents of a list of SMILES; rows that could not be encoded are NaN with a reason."""

    z: Tensor  # n x latent_dim float32 on cpu, NaN rows where not ok
    ok: np.ndarray  # n bool
    reason: list[str]  # "" where ok, else "empty" | "too_long" | "unknown_tokens:<t>,<t>"


class LatentCodec:
    """Wraps a model, its vocabulary and a device; encodes SMILES and decodes latents.

    By default greedy and sampled strings are decoded through the SMILES grammar
    (`molvae.model.grammar.SmilesGrammar`, settings in ``grammar``), so they are far more often
    valid;
    ``grammar=None`` decodes the model's raw distribution, as MOSES benchmarks other models.
    """

    def __init__(
        self,
        model: MolVAE,
        vocab: Vocab,
        device: torch.device | str = "cpu",
        grammar: GrammarConfig | None = GrammarConfig(),  # noqa: B008 (frozen, so shared safely)
    ):
        if len(vocab) != model.config.vocab_size:
            raise ValueError(
                f"vocab has {len(vocab)} tokens, the model expects {model.config.vocab_size}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.grammar = grammar

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "auto",
        grammar: GrammarConfig | None = GrammarConfig(),  # noqa: B008
    ) -> LatentCodec:
        """Load a codec from a checkpoint file (``device="auto"``: cuda when available)."""
        dev = resolve_device(device)
        ck = load_checkpoint(path, map_location="cpu")
        return cls(MolVAE.from_checkpoint(ck, dev), ck.vocab(), dev, grammar=grammar)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    @property
    def max_len(self) -> int:
        return self.model.config.max_len

    def encodable(self, smiles: str) -> str | None:
        """None if ``smiles`` can be encoded, else the reason (see :class:`EncodeResult`)."""
        if not smiles:
            return "empty"
        toks = tokenize(smiles)
        if len(toks) > self.max_len - 2:
            return "too_long"
        unknown = list(dict.fromkeys(t for t in toks if t not in self.vocab.index))
        if unknown:
            return "unknown_tokens:" + ",".join(unknown)
        return None

    @torch.no_grad()
    def encode(
        self,
        smiles: Sequence[str],
        batch_size: int = 1024,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> EncodeResult:
        """Posterior means (or samples with ``sample=True``) of each string, ``n x latent_dim``."""
        n = len(smiles)
        reasons = [self.encodable(s) or "" for s in smiles]
        ok = np.array([r == "" for r in reasons], dtype=bool)
        z = torch.full((n, self.latent_dim), float("nan"))
        rows = np.flatnonzero(ok)
        collate = PadCollate(self.vocab.pad_id)
        for s in range(0, len(rows), batch_size):
            chunk = rows[s : s + batch_size]
            items = [(int(i), np.asarray(self.vocab.encode(smiles[i]))) for i in chunk]
            x, lengths, _ = collate(items)
            mu, logvar = self.model.encode(x.to(self.device), lengths)
            if sample:
                mu = self.model.reparameterize(mu.float(), logvar.float(), generator=generator)
            z[torch.as_tensor(chunk)] = mu.float().cpu()
        return EncodeResult(z, ok, reasons)

    def decode(
        self,
        z: Tensor,
        strategy: str = "greedy",
        temperature: float = 1.0,
        beam_width: int = 5,
        batch_size: int = 1024,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """``n x latent_dim`` latents -> n SMILES strings (not checked for validity).

        Greedy and sampled strings follow the grammar unless the codec's ``grammar`` is None;
        beam search never does.
        """
        out: list[str] = []
        g = self.grammar
        extra = {} if g is None else {
            "constraint": SmilesGrammar(self.vocab, g.max_ring_size),
            "backtrack": g.backtrack,
            "min_mass": g.min_mass,
        }  # fmt: skip
        for s in range(0, z.shape[0], batch_size):
            ids = self.model.decode(
                z[s : s + batch_size].to(self.device),
                strategy=strategy,
                temperature=temperature,
                beam_width=beam_width,
                generator=generator,
                **extra,
            )
            out.extend(self.vocab.decode(row) for row in ids.cpu().tolist())
        return out

    def decode_attempts(
        self,
        z: Tensor,
        n_attempts: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
    ) -> list[list[str]]:
        """Per z, ``n_attempts`` strings: attempt 0 greedy, the rest temperature samples."""
        greedy = self.decode(z, "greedy", batch_size=batch_size)
        attempts = [[g] for g in greedy]
        if n_attempts > 1:
            zs = z.repeat_interleave(n_attempts - 1, dim=0)
            sampled = self.decode(
                zs, "sample", temperature=temperature, batch_size=batch_size, generator=generator
            )
            for i, row in enumerate(attempts):
                row.extend(sampled[i * (n_attempts - 1) : (i + 1) * (n_attempts - 1)])
        return attempts

    def sample(
        self,
        n: int,
        strategy: str = "greedy",
        temperature: float = 1.0,
        seed: int | None = None,
        batch_size: int = 1024,
    ) -> tuple[Tensor, list[str]]:
        """Draw ``n`` latents from the prior and decode them; seeded runs repeat exactly."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.model.sample_prior(n, generator=gen)
        smiles = self.decode(z, strategy, temperature, batch_size=batch_size, generator=gen)
        return z, smiles

    def reconstruct(
        self,
        smiles: Sequence[str],
        strategy: str = "greedy",
        temperature: float = 1.0,
        beam_width: int = 5,
        batch_size: int = 1024,
        generator: torch.Generator | None = None,
    ) -> list[str | None]:
        """Encode (posterior mean) and decode each string; None where it cannot be encoded."""
        enc = self.encode(smiles, batch_size=batch_size)
        out: list[str | None] = [None] * len(smiles)
        rows = np.flatnonzero(enc.ok)
        if len(rows):
            dec = self.decode(
                enc.z[torch.as_tensor(rows)],
                strategy,
                temperature,
                beam_width,
                batch_size,
                generator,
            )
            for i, s in zip(rows, dec, strict=True):
                out[int(i)] = s
        return out
