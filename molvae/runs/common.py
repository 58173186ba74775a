"""What every run records beside its outputs: versions and hardware."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from molvae.version import __version__


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded with every run."""
    import botorch
    import rdkit

    cuda = torch.cuda.is_available()
    return {
        "molvae": __version__,
        "torch": torch.__version__,
        "rdkit": rdkit.__version__,
        "botorch": botorch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }
