"""Tanimoto similarity of many fingerprints at once: SNN and IntDiv as MOSES defines them.

MOSES (``average_agg_tanimoto`` in ``moses/metrics/utils.py``) multiplies 0/1 fingerprint
matrices to count common bits. So do these, in int8 with exact int32 counts where torch has the
kernel (float32 elsewhere, also exact), in blocks that fit in memory. For SNN only the best
match counts: among reference fingerprints with the same number of bits, Tanimoto
``c / (a + b - c)`` grows with the common count ``c``, so the reference is sorted by bit count
and each block keeps the largest ``c`` per bit count, never forming the similarity matrix.

Fingerprints travel as ``np.packbits`` rows (``n x 128`` uint8 for 1024 bits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

MOSES_FP_SIZE = 1024  # Morgan radius 2, 1024 bits: MOSES's fingerprints for SNN and IntDiv
_INT_MM: dict[str, bool] = {}  # device type -> torch._int_mm works there


def packed_fingerprints(mols: Iterable[Any], fp_size: int = MOSES_FP_SIZE) -> np.ndarray:
    """``n x fp_size / 8`` packed Morgan radius-2 bits of RDKit molecules (none may be None).

    The bits of MOSES's ``GetMorganFingerprintAsBitVect(mol, 2, nBits=1024)``.
    """
    gen = _generator(fp_size)
    rows = [np.packbits(gen.GetFingerprintAsNumPy(m)) for m in mols]
    return np.stack(rows) if rows else np.zeros((0, fp_size // 8), dtype=np.uint8)


@lru_cache(maxsize=2)
def _generator(fp_size: int) -> Any:
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=fp_size)


def _bits(packed: np.ndarray, device: Any) -> Any:
    import torch

    return torch.from_numpy(np.unpackbits(packed, axis=1).view(np.int8)).to(device)


def _common(a: Any, b: Any) -> Any:
    """Common-bit counts ``a @ b.T`` (int32) of two int8 0/1 matrices."""
    import torch

    kind = a.device.type
    if _INT_MM.get(kind, True) and a.shape[0] > 16:
        try:
            out = torch._int_mm(a, b.T.contiguous())
            _INT_MM[kind] = True
            return out
        except (RuntimeError, NotImplementedError):
            _INT_MM[kind] = False
    return (a.float() @ b.float().T).round().int()


def max_tanimoto(
    gen: np.ndarray, ref: np.ndarray, device: str = "cpu", block: tuple[int, int] = (2048, 8192)
) -> np.ndarray:
    """For each packed fingerprint of ``gen``, its highest Tanimoto similarity to ``ref``.

    Two empty fingerprints count as similarity 1, as in MOSES. Exact: integer counts, one
    float64 division per (molecule, bit count).
    """

    if len(gen) == 0 or len(ref) == 0:
        return np.full(len(gen), math.nan)
    ref_count = np.unpackbits(ref, axis=1).sum(1)
    order = np.argsort(ref_count, kind="stable")
    ref, ref_count = ref[order], ref_count[order]
    counts, starts = np.unique(ref_count, return_index=True)
    bounds = np.append(starts, len(ref))
    best_c = np.zeros((len(gen), len(counts)), dtype=np.int32)  # max common bits per count
    g_all = _bits(gen, device)
    for j in range(0, len(ref), block[1]):
        r = _bits(ref[j : j + block[1]], device)
        lo, hi = np.searchsorted(bounds, [j, j + len(r)], side="right") - 1
        segments = [
            (k, max(bounds[k], j) - j, min(bounds[k + 1], j + len(r)) - j)
            for k in range(lo, min(hi + 1, len(counts)))
        ]
        for i in range(0, len(gen), block[0]):
            c = _common(r, g_all[i : i + block[0]])  # ref rows: each bit count a row range
            for k, s, e in segments:
                if e > s:
                    seg = c[s:e].amax(0).cpu().numpy()
                    np.maximum(best_c[i : i + len(seg), k], seg, out=best_c[i : i + len(seg), k])
    gen_count = np.unpackbits(gen, axis=1).sum(1).astype(np.float64)[:, None]
    denom = gen_count + counts[None, :] - best_c
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = np.where(denom > 0, best_c / np.where(denom > 0, denom, 1), 1.0)
    return sims.max(1)


def snn(gen: np.ndarray, ref: np.ndarray, device: str = "cpu") -> float:
    """MOSES SNN: mean over ``gen`` of the highest Tanimoto similarity to ``ref`` (packed)."""
    if len(gen) == 0 or len(ref) == 0:
        return math.nan
    return float(max_tanimoto(gen, ref, device).mean())


def internal_diversity(
    fps: np.ndarray, p: int = 1, device: str = "cpu", block: int = 4096
) -> float:
    """MOSES IntDiv_p: ``1 - mean_i (mean_j T(i, j)^p)^(1/p)`` over packed fingerprints.

    All pairs, ``i == j`` and duplicates included, as MOSES computes it.
    """
    return internal_diversities(fps, (p,), device, block)[p]


def internal_diversities(
    fps: np.ndarray, ps: tuple[int, ...] = (1, 2), device: str = "cpu", block: int = 4096
) -> dict[int, float]:
    """IntDiv_p for every ``p`` in ``ps`` from one pass over the pairs (each unordered pair of
    blocks once: the similarity matrix is symmetric). Tanimoto in float32, sums in float64."""
    import torch

    if len(fps) == 0:
        return dict.fromkeys(ps, math.nan)
    counts = torch.from_numpy(np.unpackbits(fps, axis=1).sum(1).astype(np.float32)).to(device)
    empty = not bool((counts > 0).all())  # no atom, no bit: MOSES counts T(0, 0) as 1
    totals = {q: torch.zeros(len(fps), dtype=torch.float64, device=device) for q in ps}
    bits = _bits(fps, device)
    for i in range(0, len(fps), block):
        for j in range(i, len(fps), block):
            c = _common(bits[i : i + block], bits[j : j + block]).float()
            t = c.div_((counts[i : i + block, None] + counts[None, j : j + block]).sub_(c))
            if empty:
                t = torch.nan_to_num_(t, nan=1.0)
            for q in ps:
                tq = t if q == 1 else t.pow(q)
                totals[q][i : i + len(t)] += tq.sum(1).double()  # rows of 4096: float32 is plenty
                if j != i:
                    totals[q][j : j + t.shape[1]] += tq.sum(0).double()
    return {q: float(1.0 - ((totals[q] / len(fps)) ** (1.0 / q)).mean()) for q in ps}
