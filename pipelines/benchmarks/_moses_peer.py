"""The MOSES VAE (``molsets==0.3.1``) as a benchmark peer, fetched at run time, never vendored.

``load_moses_vae()`` downloads the wheel with ``pip download --no-deps`` into a cache directory,
checks its sha256, extracts only ``moses/vae/model.py`` and ``config.py`` into a temp directory and
imports them there as a bare package. ``moses/__init__.py`` (and ``moses/vae/__init__.py``, which
pulls in the trainer) import a metrics stack we do not install, so neither is executed. The one
``torch.uint8`` mask in ``VAE.sample`` is patched to ``torch.bool`` (uint8 masks are an error in
current PyTorch). ``CharVocab`` mirrors the interface of ``moses.utils.OneHotVocab``.
"""

from __future__ import annotations

import importlib.util
import tempfile
import types
import zipfile
from pathlib import Path

import torch

from molvae.data import fetch_moses_wheel

_PATCH = ("dtype=torch.uint8", "dtype=torch.bool")


def load_moses_vae(cache: Path) -> types.SimpleNamespace:
    """``VAE`` (the model class) and ``config`` (its default argparse config) of MOSES."""
    wheel = fetch_moses_wheel(cache)
    tmp = Path(tempfile.mkdtemp(prefix="moses-vae-"))
    pkg = tmp / "moses_vae"
    pkg.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        for name in ("model.py", "config.py", "misc.py"):
            (pkg / name).write_bytes(zf.read(f"moses/vae/{name}"))
    (pkg / "__init__.py").write_text("")  # the bare package: no trainer, no moses metrics
    src = (pkg / "model.py").read_text()
    if src.count(_PATCH[0]) != 1:
        raise RuntimeError(f"expected one {_PATCH[0]} in moses/vae/model.py")
    (pkg / "model.py").write_text(src.replace(*_PATCH))
    mods = {}
    for name in ("config", "model"):
        spec = importlib.util.spec_from_file_location(f"moses_vae.{name}", pkg / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    config = mods["config"].get_parser().parse_args([])
    return types.SimpleNamespace(VAE=mods["model"].VAE, config=config, dir=tmp)


class CharVocab:
    """Character vocabulary with one-hot vectors, as ``moses.utils.OneHotVocab``."""

    def __init__(self, smiles: list[str]):
        chars = sorted({c for s in smiles for c in s})
        syms = [*chars, "<bos>", "<eos>", "<pad>", "<unk>"]
        self.c2i = {c: i for i, c in enumerate(syms)}
        self.i2c = dict(enumerate(syms))
        self.bos, self.eos, self.pad, self.unk = (self.c2i[t] for t in syms[-4:])
        self.vectors = torch.eye(len(syms))

    def __len__(self) -> int:
        return len(self.c2i)

    def string2ids(self, string: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = [self.c2i.get(c, self.unk) for c in string]
        return [self.bos] * add_bos + ids + [self.eos] * add_eos

    def ids2string(self, ids: list[int], rem_bos: bool = True, rem_eos: bool = True) -> str:
        if rem_bos and ids and ids[0] == self.bos:
            ids = ids[1:]
        if rem_eos and ids and ids[-1] == self.eos:
            ids = ids[:-1]
        return "".join(self.i2c.get(i, "<unk>") for i in ids)


def moses_collate(model, smiles: list[str]) -> list[torch.Tensor]:
    """MOSES ``VAETrainer.get_collate_fn``: sort by length (descending), one tensor each."""
    return [model.string2tensor(s, device="cpu") for s in sorted(smiles, key=len, reverse=True)]
