"""Where a model runs: device choice and whether bf16 autocast pays on it.

Shared by decoding, the codec and the trainer, so all three make the same choice.
"""

from __future__ import annotations

import functools
import os

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else as given."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=8)
def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds up this device: CUDA, or a CPU with native bf16 matrix units
    (AMX or AVX512-BF16; measured 2.2x for a GRU forward and backward there). Other CPUs would
    have to convert in software, so they stay in fp32 (not measured: none was at hand).

    A CPU whose kernels are capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2`` or
    ``ONEDNN_MAX_CPU_ISA=AVX2``, as when mimicking an AVX2-only machine) counts as one without.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu" or _isa_capped_below_avx512():
        return False
    try:  # private helpers; a torch without them gets fp32
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def _isa_capped_below_avx512() -> bool:
    """Whether PyTorch's or oneDNN's kernels are limited to less than AVX-512 here."""
    aten = torch.backends.cpu.get_cpu_capability()  # honours ATEN_CPU_CAPABILITY
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    return not aten.startswith("AVX512") or not (
        onednn in ("ALL", "DEFAULT") or "AVX512" in onednn or "AMX" in onednn
    )


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on ``device`` when ``enabled`` and `fast_bf16` says it pays, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and fast_bf16(device))
