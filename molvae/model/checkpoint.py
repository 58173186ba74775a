"""One self-describing checkpoint file: config + vocab + weights + meta (+ resume state).

Optional entries: "prior" (a learned latent prior, `molvae.model.prior`; absent = N(0, I)) and
"domain" (the training data's domain, `molvae.model.domain`; absent = unknown). Loads with
``torch.load(path, weights_only=True)``, so a file can never run code on load.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from molvae.data.tokens import Vocab
from molvae.io import write_with
from molvae.model.domain import TrainingDomain
from molvae.model.prior import LatentPrior
from molvae.model.vae import VAEConfig
from molvae.version import __version__

FORMAT_VERSION = 1
_REQUIRED = ("format", "config", "vocab", "state_dict")


class CheckpointError(Exception):
    """A checkpoint that is missing, damaged, foreign, or of an unsupported format."""


@dataclass
class Checkpoint:
    """The loaded contents of a checkpoint file."""

    config: VAEConfig
    vocab_tokens: list[str]
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None  # {"kind", "config", "state"}; None = N(0, I)
    domain: dict[str, Any] | None = None  # TrainingDomain.to_dict(); None = unknown
    path: Path | None = None

    def vocab(self) -> Vocab:
        """The vocabulary the model was trained with."""
        return Vocab(self.vocab_tokens)

    def latent_prior(self) -> LatentPrior | None:
        """The learned prior, or None (N(0, I)); a malformed entry raises `CheckpointError`."""
        if self.prior is None:
            return None
        try:
            return LatentPrior.from_dict(self.prior)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path}: {e}") from None

    def training_domain(self) -> TrainingDomain | None:
        """The training data's domain, or None; a malformed entry raises `CheckpointError`."""
        if self.domain is None:
            return None
        try:
            return TrainingDomain.from_dict(self.domain)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path}: {e}") from None


def versions() -> dict[str, str]:
    """Library versions recorded in ``meta["versions"]`` (plain strings for weights_only)."""
    return {"torch": str(torch.__version__), "molvae": __version__}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    vocab_tokens: list[str],
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    prior: LatentPrior | None = None,
    domain: TrainingDomain | None = None,
) -> Path:
    """Write ``model`` atomically (`molvae.io`: temp file in the same folder, then rename).

    ``prior`` and ``domain``, when given, are stored as plain entries ("prior", "domain").
    """
    # a JSON round trip turns Paths, numpy scalars etc. into primitives weights_only can load
    meta = json.loads(json.dumps({"versions": versions(), **(meta or {})}, default=_plain))
    payload: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "vocab": list(vocab_tokens),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    if train_state is not None:
        payload["train_state"] = train_state
    _add_extras(payload, prior, domain)
    return write_with(path, lambda f: torch.save(payload, f))


def add_to_checkpoint(
    src: str | Path,
    dst: str | Path,
    prior: LatentPrior | None = None,
    domain: TrainingDomain | None = None,
) -> Path:
    """Copy checkpoint ``src`` to ``dst`` (atomically; may be ``src`` itself) with a prior and/or
    a training domain added or replaced; every other entry is kept as it is."""
    load_checkpoint(src)  # one clear error for a bad file
    payload = torch.load(Path(src), map_location="cpu", weights_only=True)
    _add_extras(payload, prior, domain)
    return write_with(dst, lambda f: torch.save(payload, f))


def _add_extras(
    payload: dict[str, Any], prior: LatentPrior | None, domain: TrainingDomain | None
) -> None:
    if prior is not None:
        payload["prior"] = prior.to_dict()
    if domain is not None:
        # a JSON round trip: plain lists, numbers and strings only
        payload["domain"] = json.loads(json.dumps(domain.to_dict(), default=_plain))


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint; any problem raises :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message starts with a generic paragraph; the line naming the global is the news
        glob = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if not glob:  # not a pickle that asks for code, just bytes that are no pickle at all
            raise CheckpointError(f"checkpoint {path} is damaged or not a torch file") from None
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and primitives "
            f"and was refused (weights_only): {glob[0]}"
        ) from None
    except Exception as e:  # garbage bytes raise anything: KeyError, struct.error, ...
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a torch file: {_first_line(e)}"
        ) from None
    if not isinstance(raw, dict) or not all(k in raw for k in _REQUIRED):
        raise CheckpointError(f"{path} is not a molvae checkpoint (missing {_REQUIRED} keys)")
    if raw["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {raw['format']!r}; this molvae reads {FORMAT_VERSION}"
        )
    try:
        config = VAEConfig.from_dict(raw["config"])
        vocab = [str(t) for t in raw["vocab"]]
        Vocab(vocab)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid config or vocab: {e}") from None
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"checkpoint {path}: vocab has {len(vocab)} tokens but config says {config.vocab_size}"
        )
    meta = raw.get("meta") or {}
    extras = {k: raw.get(k) for k in ("prior", "domain")}
    for key, value in extras.items():
        if value is not None and not isinstance(value, dict):
            raise CheckpointError(f"checkpoint {path}: entry {key!r} is not a dict")
    return Checkpoint(
        config, vocab, raw["state_dict"], meta, raw.get("train_state"), **extras, path=path
    )


def _plain(obj: Any) -> Any:
    return obj.item() if hasattr(obj, "item") else str(obj)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
