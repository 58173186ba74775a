from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

# Real ZINC molecules (MOSES train), small enough for fast fixtures.
ZINC_SMALL = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(=O)Oc1ccccc1C(=O)O",
    "O=C(Nc1ccc(Br)cc1)c1ccco1",
    "COc1ccc(CC(=O)N2CCN(c3ncccn3)CC2)cc1",
    "N#Cc1ccc(OCC(O)CN2CCOCC2)cc1",
]


@pytest.fixture
def zinc_small() -> list[str]:
    return list(ZINC_SMALL)
