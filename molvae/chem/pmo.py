"""The PMO benchmark's objectives (Gao et al. 2022), scored by PyTDC's reference oracles.

``pmo:<task>`` in `molvae.chem.objectives.get_objective` is one of ``PMO_TASKS``: the 20 tasks
of PMO's 23 that need no downloaded model (drd2, gsk3b and jnk3 do). Each is scored by
``tdc.Oracle(name=task)``, the implementation PMO's ``mol_opt`` calls, so scores match the
published tables. PyTDC is an optional extra installed with ``make pmo-install``: its declared
dependencies pin numpy<2, pandas<3 and rdkit<2024, so it goes in with ``pip --no-deps`` and only
the few packages the oracles import beside it. It is imported on first use, never at import time.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any

from rdkit import Chem

from molvae.chem.molecules import silence_rdkit

if TYPE_CHECKING:
    from rdkit.Chem import Mol

PMO_TASKS = (
    "albuterol_similarity",
    "amlodipine_mpo",
    "celecoxib_rediscovery",
    "deco_hop",
    "fexofenadine_mpo",
    "isomers_c7h8n2o2",
    "isomers_c9h10n2o2pf2cl",
    "median1",
    "median2",
    "mestranol_similarity",
    "osimertinib_mpo",
    "perindopril_mpo",
    "qed",
    "ranolazine_mpo",
    "scaffold_hop",
    "sitagliptin_mpo",
    "thiothixene_rediscovery",
    "troglitazone_rediscovery",
    "valsartan_smarts",
    "zaleplon_mpo",
)
INSTALL_HINT = "make pmo-install"

_ORACLES: dict[str, Any] = {}  # task -> tdc.Oracle, one per process (pool workers build their own)


def check_task(task: str) -> str:
    """``task`` stripped, or a ``ValueError`` that lists the tasks (tdc itself would fuzzy-match
    a misspelt name to some other oracle)."""
    task = task.strip()
    if task not in PMO_TASKS:
        raise ValueError(f"unknown PMO task {task!r}; choose one of {', '.join(PMO_TASKS)}")
    return task


def import_tdc() -> types.ModuleType:
    """PyTDC's ``tdc`` module, imported once with the fixes it needs on a current stack.

    Raises ``ValueError`` (one sentence naming ``make pmo-install``) when it cannot be imported.
    """
    if "tdc" in sys.modules:
        return sys.modules["tdc"]
    if importlib.util.find_spec("tdc") is None:
        raise ValueError(f"pmo objectives need PyTDC 1.1.15: run `{INSTALL_HINT}`")
    # PyTDC 1.1.15 does `from rdkit.six import iteritems`; RDKit dropped `rdkit.six` (a Python 2
    # shim) in 2024, so provide the one name it uses.
    if "rdkit.six" not in sys.modules and importlib.util.find_spec("rdkit.six") is None:
        six = types.ModuleType("rdkit.six")
        six.iteritems = lambda d, **kw: iter(d.items(**kw))  # type: ignore[attr-defined]
        sys.modules["rdkit.six"] = six
    # tdc's import calls warnings.filterwarnings("ignore") for the whole process; catch_warnings
    # saves the filters and puts them back, so molvae's own warnings still show. Inside, its
    # modules' import-time deprecation warnings (rdkit.Chem.Fingerprints, ...) are noise.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tdc
    except ImportError as exc:  # e.g. pkg_resources gone with setuptools >= 81
        raise ValueError(f"PyTDC could not be imported ({exc}): run `{INSTALL_HINT}`") from exc
    # The oracles call RDKit's deprecated fingerprint functions, which log a line per call.
    silence_rdkit()
    return tdc


def pmo_oracle(task: str) -> Any:
    """The cached ``tdc.Oracle`` of ``task`` in this process."""
    task = check_task(task)
    if task not in _ORACLES:
        tdc = import_tdc()
        with warnings.catch_warnings():  # building one imports more of tdc (the same noise)
            warnings.simplefilter("ignore")
            _ORACLES[task] = tdc.Oracle(name=task)
    return _ORACLES[task]


class PMOScore:
    """Picklable callable: the PMO oracle ``task``'s score of a ``Mol`` (higher is better)."""

    def __init__(self, task: str):
        self.task = check_task(task)

    def __call__(self, mol: Mol) -> float:
        # tdc branches on `type(x) == list`; a list is what mol_opt passes (tdc scores 0.0
        # what RDKit cannot parse, which a parsed Mol never is).
        return float(pmo_oracle(self.task)([Chem.MolToSmiles(mol)])[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (PMOScore, (self.task,))

    def __repr__(self) -> str:
        return f"PMOScore({self.task!r})"
