"""Property targets for training: computed once per molecule, cached beside the token cache.

Names are objective names (`molvae.chem.get_objective`: ``logp``, ``qed``, ``sa`` = -SA score,
``plogp`` = standardized penalized logP, ``mw``, ``tpsa``, ... or ``module:function``), so a
property means the same number as in ``molvae score``. A molecule whose property cannot be
computed gets NaN (the trainer masks it). For a token cache each property is one ``float32``
file ``properties/<name>.npy`` in the cache directory; missing ones are computed in chunks that
are kept as they finish, so a killed computation goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from molvae.chem import get_objective, parse
from molvae.chem import properties as P
from molvae.io import write_npy

if TYPE_CHECKING:
    from molvae.data.cache import TokenCache

log = logging.getLogger(__name__)

CHUNK = 20_000  # molecules per chunk (a worker's task; the unit a killed run keeps)
MIN_PARALLEL = 2 * CHUNK  # smaller sets are computed in this process


def _plogp(mol, memo: dict) -> float:
    # as `molvae.chem.properties.penalized_logp`, term by term, reusing logP and SA
    return (
        (memo["logp"] - P.LOGP_MEAN) / P.LOGP_STD
        + (-memo["sa_score"] - P.NEG_SA_MEAN) / P.NEG_SA_STD
        + (-P.ring_penalty(mol) - P.NEG_RING_MEAN) / P.NEG_RING_STD
    )


# names whose values share parts (computed once per molecule): the parts each needs, and how
# the value follows from them
_PARTS = {"logp": P.logp, "sa_score": P.sa_score}
_SHARED: dict[str, tuple[tuple[str, ...], Callable]] = {
    "logp": (("logp",), lambda mol, memo: memo["logp"]),
    "sa": (("sa_score",), lambda mol, memo: -memo["sa_score"]),
    "plogp": (("logp", "sa_score"), _plogp),
}


def check_names(names: Sequence[str]) -> list[str]:
    """The names, each resolvable (``ValueError`` otherwise) and given once."""
    names = [str(n).strip() for n in names]
    if len(set(names)) != len(names):
        raise ValueError(f"properties listed twice: {names}")
    for n in names:
        get_objective(n)
    return names


def _molecule(smiles: str, names: Sequence[str], fns: list[Callable | None]) -> list[float]:
    mol = parse(smiles)
    if mol is None:
        return [math.nan] * len(names)
    memo: dict[str, float] = {}
    out = []
    for name, fn in zip(names, fns, strict=True):
        try:
            if fn is None:  # a shared one: its parts are computed once, on first use
                parts, combine = _SHARED[name]
                for part in parts:
                    if part not in memo:
                        memo[part] = _PARTS[part](mol)
                value = combine(mol, memo)
            else:
                value = fn(mol)
            value = float(value)
        except Exception:  # one odd molecule must not stop the computation
            value = math.nan
        out.append(value if math.isfinite(value) else math.nan)
    return out


def _chunk(smiles: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """``len(smiles) x len(names)`` float32, NaN where a property failed."""
    fns = [None if n in _SHARED else get_objective(n).fn for n in names]
    rows = [_molecule(s, names, fns) for s in smiles]
    return np.asarray(rows, dtype=np.float32).reshape(len(smiles), len(names))


def compute_properties(smiles: Sequence[str], names: Sequence[str], workers: int = 1) -> np.ndarray:
    """Properties of each SMILES: ``n x len(names)`` float32, NaN where one failed."""
    names = check_names(names)
    starts = list(range(0, len(smiles), CHUNK))
    parts = _map_chunks(lambda a: list(smiles[a : a + CHUNK]), starts, names, workers)
    empty = np.zeros((0, len(names)), dtype=np.float32)
    return np.concatenate([parts[a] for a in starts]) if starts else empty


def _map_chunks(
    get: Callable[[int], list[str]],
    starts: Sequence[int],
    names: Sequence[str],
    workers: int,
    done: Callable[[int, np.ndarray], None] | None = None,
) -> dict[int, np.ndarray]:
    """``_chunk`` of each chunk start, in ``workers`` spawned processes when it pays."""
    out: dict[int, np.ndarray] = {}
    parallel = workers > 1 and len(starts) * CHUNK >= MIN_PARALLEL
    if not parallel:
        for a in starts:
            out[a] = _chunk(get(a), names)
            if done:
                done(a, out[a])
        return out
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        queue = list(starts)
        running: dict[int, Future] = {}
        while queue or running:
            while queue and len(running) < 2 * workers:  # a few chunks' SMILES in memory at once
                a = queue.pop(0)
                running[a] = pool.submit(_chunk, get(a), list(names))
            a = next(iter(running))
            out[a] = running.pop(a).result()
            if done:
                done(a, out[a])
    return out


def cached_properties(
    cache: TokenCache, names: Sequence[str], workers: int = 2
) -> tuple[np.ndarray, str]:
    """Properties of every molecule of a whole token cache (``n x len(names)``), computed once
    and kept in ``<cache>/properties/``; returns them and that directory."""
    if getattr(cache, "_index", None) is not None:
        raise ValueError("cached_properties needs the whole token cache, not a subset")
    names = check_names(names)
    folder = cache.dir / "properties"
    missing = [n for n in names if not (folder / _file(n)).exists()]
    if missing:
        _build(cache, missing, folder, workers)
    cols = [np.load(folder / _file(n)) for n in names]
    return np.stack(cols, axis=1).astype(np.float32), str(folder)


def _file(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    if safe == name:
        return f"{safe}.npy"
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.npy"


def _build(cache: TokenCache, names: list[str], folder: Path, workers: int) -> None:
    """Compute ``names`` for the cache in chunks (kept in a build folder), then one file each."""
    build = folder / (".build-" + "+".join(_file(n)[:-4] for n in names))
    build.mkdir(parents=True, exist_ok=True)
    n = len(cache)
    todo = [a for a in range(0, n, CHUNK) if not (build / f"{a}.npy").exists()]
    log.info("computing %s for %d molecules (%d chunks left, %d workers)",
             ", ".join(names), n, len(todo), workers)  # fmt: skip

    def smiles_of(a: int) -> list[str]:
        return [cache.vocab.decode(cache[i]) for i in range(a, min(a + CHUNK, n))]

    _map_chunks(smiles_of, todo, names, workers,
                done=lambda a, arr: write_npy(build / f"{a}.npy", arr))  # fmt: skip
    full = np.concatenate([np.load(build / f"{a}.npy") for a in range(0, n, CHUNK)])
    for j, name in enumerate(names):
        write_npy(folder / _file(name), np.ascontiguousarray(full[:, j]))
    shutil.rmtree(build, ignore_errors=True)
