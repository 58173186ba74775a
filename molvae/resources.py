"""The bundled model and data, and the cache for fetched data, each named once.

``default`` and the other `BUNDLED_MODELS` name bundled models wherever a checkpoint is expected;
``zinc`` and ``zinc-test`` are the bundled ZINC subset wherever a SMILES file is expected (the
fetched MOSES names live with their fetcher in `molvae.data.zinc`). Knows nothing of the rest of
molvae.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default"
"""The name that stands for the bundled model (``data/models/default.pt``)."""

BUNDLED_MODELS = {
    # the MOSES-250k model fine-tuned 3 epochs on the full MOSES train split, with a property
    # head and a learned prior; docs/models/default.md
    DEFAULT_MODEL: "models/default.pt",
    "moses-full": "models/default.pt",  # its name before it became the default
    # the default before it (13 epochs on the bundled 237k MOSES molecules); the start of
    # both moses-full and zinc250k-props
    "moses-250k": "models/moses-250k.pt",
    # ZINC-250k's charged atoms + a property head (logP, -SA, QED, penalized logP); see
    # docs/models/zinc250k-props.md and pipelines/train_charged.py
    "zinc250k-props": "models/zinc250k-props.pt",
    # the default fine-tuned into a semi-supervised conditional VAE on logP, QED, SA score and
    # MW (q(y|x), p(x|y,z)), with a learned prior over [z, y]; docs/models/conditional.md
    "conditional": "models/conditional.pt",
}
"""Model names usable wherever a checkpoint is expected, and their files under `data_dir`."""

BUNDLED_DATA = {"zinc": "zinc/train.csv.gz", "zinc-test": "zinc/test.csv.gz"}
"""Data names usable wherever a SMILES file is expected, and their files under `data_dir`."""


def data_dir() -> Path:
    """The bundled data: ``data/`` of a source checkout, else the installed ``molvae/_data``."""
    checkout = Path(__file__).resolve().parent.parent / "data"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("molvae") / "_data"))


def cache_dir() -> Path:
    """Where fetched data is cached (``$MOLVAE_CACHE`` or ``~/.cache/molvae``)."""
    return Path(os.environ.get("MOLVAE_CACHE", Path.home() / ".cache" / "molvae"))


def resolve_model(spec: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """A checkpoint path, or the name of a bundled model (`BUNDLED_MODELS`: ``default``
    (also ``moses-full``), ``moses-250k``, ``zinc250k-props``)."""
    if str(spec) in BUNDLED_MODELS:
        return data_dir() / BUNDLED_MODELS[str(spec)]
    return Path(spec).expanduser()
