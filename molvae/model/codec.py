"""SMILES <-> latent bridge over a trained :class:`~molvae.model.vae.MolVAE`.

Callers canonicalize; strings that cannot be encoded are reported per row, never raised on, and
so are molecules outside the training data's domain (when the checkpoint records it). Latents
are sampled from the checkpoint's learned prior when it has one, else from N(0, I).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molvae.data.batching import PadCollate
from molvae.data.tokens import Vocab, tokenize
from molvae.grammar.smiles import GrammarConfig, SmilesGrammar
from molvae.model.checkpoint import load_checkpoint
from molvae.model.codec_sampling import PRIORS, Sampling, ToOrder
from molvae.model.decoding import CONSTRAINED_WINDOW
from molvae.model.device import resolve_device
from molvae.model.domain import TrainingDomain
from molvae.model.hybrid import decode_raw_first
from molvae.model.likelihood import LikelihoodBounds, likelihood_bounds
from molvae.model.prior import LatentPrior
from molvae.model.vae import MolVAE

# rows per raw-first call: the raw pass's ids stay on the host until the grammar has seen them
# (about 100 MB of int64 at this many); above it raw and grammar draws stop pairing up
RAW_FIRST_ROWS = 1 << 17

__all__ = ["PRIORS", "EncodeResult", "LatentCodec", "ToOrder"]


@dataclass
class EncodeResult:
    """Latents of a list of SMILES; rows that could not be encoded are NaN with a reason."""

    # n x latent_dim float32 on cpu, NaN rows where not ok; a conditional model's rows are its
    # decoder's input [z, y] (latent_dim + condition_dim), y the predicted standardized properties
    z: Tensor
    ok: np.ndarray  # n bool
    reason: list[str]  # "" where ok, else "empty" | "too_long" | "unknown_tokens:<t>,<t>"
    # "" inside the training domain (or where the checkpoint records none), else the reasons
    # joined by ";" (`molvae.model.domain`), e.g. "charge_outside_training:+1"; any row, ok or not
    domain: list[str] = field(default_factory=list)
    logvar: Tensor | None = None  # n x latent_dim posterior log-variances, NaN rows where not ok


class LatentCodec(Sampling):
    """Wraps a model, its vocabulary and a device; encodes SMILES and decodes latents.

    By default greedy and sampled strings are decoded through the SMILES grammar
    (`molvae.grammar.smiles.SmilesGrammar`, settings in ``grammar``), so they are far more often
    valid;
    ``grammar=None`` decodes the model's raw distribution, as MOSES benchmarks other models.
    ``prior`` (`LatentPrior`) is the learned prior that `sample_latents` draws from by default;
    ``domain`` (`TrainingDomain`) lets `encode` say which molecules lie outside the training data.

    A conditional model's latent is what its decoder reads, ``[z, y]`` (`Conditions`): y, its
    standardized properties, is part of the search space; `sample_latents` draws it from p(y).
    """

    def __init__(
        self,
        model: MolVAE,
        vocab: Vocab,
        device: torch.device | str = "cpu",
        grammar: GrammarConfig | None = GrammarConfig(),  # noqa: B008 (frozen, so shared safely)
        prior: LatentPrior | None = None,
        domain: TrainingDomain | None = None,
    ):
        if len(vocab) != model.config.vocab_size:
            raise ValueError(
                f"vocab has {len(vocab)} tokens, the model expects {model.config.vocab_size}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.grammar = grammar
        if prior is not None and prior.dim not in (model.config.latent_dim, model.code_dim):
            raise ValueError(f"prior has {prior.dim} dims, the model {model.code_dim}")
        self.prior = prior
        self.domain = domain

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
        model = MolVAE.from_checkpoint(ck, dev)
        prior, domain = ck.latent_prior(), ck.training_domain()
        return cls(model, ck.vocab(), dev, grammar=grammar, prior=prior, domain=domain)

    @property
    def latent_dim(self) -> int:
        """Columns of a latent: ``latent_dim``, plus ``condition_dim`` for a conditional model."""
        return self.model.code_dim

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
        check_domain: bool = True,
    ) -> EncodeResult:
        """Posterior means (or samples with ``sample=True``) of each string, ``n x latent_dim``.

        With ``check_domain`` (and a codec that knows its training domain) each row also gets
        its domain status; otherwise every status is "".
        """
        n = len(smiles)
        reasons = [self.encodable(s) or "" for s in smiles]
        ok = np.array([r == "" for r in reasons], dtype=bool)
        z = torch.full((n, self.latent_dim), float("nan"))
        logvars = torch.full((n, self.latent_dim), float("nan"))
        rows = np.flatnonzero(ok)
        collate = PadCollate(self.vocab.pad_id)
        for s in range(0, len(rows), batch_size):
            chunk = rows[s : s + batch_size]
            items = [(int(i), np.asarray(self.vocab.encode(smiles[i]))) for i in chunk]
            x, lengths, _ = collate(items)
            mu, logvar = self.model.encode_code(x.to(self.device), lengths)
            logvars[torch.as_tensor(chunk)] = logvar.float().cpu()
            if sample:
                mu = self.model.reparameterize(mu.float(), logvar.float(), generator=generator)
            z[torch.as_tensor(chunk)] = mu.float().cpu()
        domain = [""] * n
        if check_domain and self.domain is not None:
            domain = [self.domain.check(s) if s else "" for s in smiles]
        return EncodeResult(z, ok, reasons, domain, logvars)

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

        Greedy and sampled strings follow the grammar unless ``grammar`` is None; beam search
        never does. Constrained decoding keeps at most `CONSTRAINED_WINDOW` rows in flight per
        call and refills finished slots (the slow tail of backtracking rows is paid once per
        call). With ``grammar.raw_first`` rows are decoded raw first, ``batch_size`` at a time,
        and only those the grammar refuses go through it (`molvae.model.hybrid`), all in one
        call: with the same ``generator`` the raw pass draws what a grammar-free codec draws,
        and the two differ only where the grammar refused (up to `RAW_FIRST_ROWS` rows).
        """
        out: list[str] = []
        g = self.grammar
        constrained = g is not None and strategy != "beam"
        if not constrained:
            step = batch_size
        elif g.raw_first:
            step = RAW_FIRST_ROWS
        else:
            step = max(batch_size, 16 * CONSTRAINED_WINDOW)
        extra = {} if g is None else {
            "constraint": SmilesGrammar(self.vocab, g.max_ring_size),
            "backtrack": g.backtrack,
            "min_mass": g.min_mass,
        }  # fmt: skip
        for s in range(0, z.shape[0], step):
            zs = z[s : s + step].to(self.device)
            if constrained and g.raw_first:
                ids = decode_raw_first(self.model, zs, strategy, temperature, generator,
                                       extra["constraint"], g, batch_size)  # fmt: skip
            else:
                ids = self.model.decode(
                    zs, strategy, temperature, beam_width, generator=generator, **extra
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

    def likelihood_bounds(
        self, smiles: Sequence[str], k: int = 50, seed: int = 0, batch_size: int = 64
    ) -> LikelihoodBounds:
        """ELBO and IWAE of each string (`molvae.model.likelihood.likelihood_bounds`)."""
        ok = np.array([self.encodable(s) is None for s in smiles], dtype=bool)
        return likelihood_bounds(self.model, self.vocab, smiles, ok, k, seed, batch_size)

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
        enc = self.encode(smiles, batch_size=batch_size, check_domain=False)
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
