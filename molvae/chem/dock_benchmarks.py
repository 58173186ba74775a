"""DOCKSTRING's molecular-design benchmark objectives (García-Ortegón et al. 2022, section 2.3):
``dockstring:F2``, ``dockstring:promiscuous_PPAR`` and ``dockstring:selective_JAK2``, each
target docked as `molvae.chem.docking` docks it, the score dockstring's own aggregation
(``dockstring.benchmarks.original``), negated so that higher is better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdkit import Chem

from molvae.chem import docking

if TYPE_CHECKING:
    from rdkit.Chem import Mol

# DOCKSTRING's three benchmark objectives (García-Ortegón et al. 2022, section 2.3): the targets
# each docks to; the score itself is dockstring's own aggregation (dockstring.benchmarks.original)
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "F2": ("F2",),
    "promiscuous_PPAR": ("PPARA", "PPARD", "PPARG"),
    "selective_JAK2": ("JAK2", "LCK"),
}
BENCHMARK_FORMULAS = {
    "F2": "F2 + 10(1 - QED)",
    "promiscuous_PPAR": "max(PPARA, PPARD, PPARG) + 10(1 - QED)",
    "selective_JAK2": "JAK2 - min(LCK + 8.1, 0) + 10(1 - QED)",
}


def check_benchmark(name: str) -> str:
    """``name`` if it is one of DOCKSTRING's benchmark objectives, else ``ValueError``."""
    name = name.strip()
    if name not in BENCHMARKS:
        raise ValueError(f"unknown dockstring benchmark {name!r}; choose one of "
                         f"{', '.join(BENCHMARKS)}")  # fmt: skip
    return name


class DockstringBenchmark:
    """Picklable callable: ``-`` one of DOCKSTRING's benchmark objectives (lower is better
    there, so negated here: higher is better), e.g. ``F2``: ``-(Vina(F2) + 10 (1 - QED))``.

    Each target is docked as `DockingScore` docks (a child process, ``timeout`` seconds each,
    the same seed); QED and the aggregation are dockstring's own functions. A molecule any
    target fails to dock raises `DockingFailed` (dockstring's benchmark gives it NaN).
    """

    def __init__(self, name: str, timeout: float | None = None, num_cpus: int = 1,
                 seed: int = docking.DOCK_SEED):  # fmt: skip
        self.name = check_benchmark(name)
        for target in BENCHMARKS[self.name]:
            docking.check_target(target)
        self.timeout = (
            docking.timeout_from_env() if timeout is None else docking.check_timeout(timeout)
        )
        self.num_cpus = int(num_cpus)
        self.seed = int(seed)

    def raw(self, mol: Mol) -> float:
        """DOCKSTRING's own value (lower is better) and nothing negated."""
        from dockstring.benchmarks import original

        smiles = Chem.MolToSmiles(mol)
        values = {t: docking.memo_dock(smiles, t, self.timeout, self.seed, self.num_cpus)
                  for t in BENCHMARKS[self.name]}  # fmt: skip
        aggregate = {"F2": original.F2_score, "promiscuous_PPAR": original.promiscuous_PPAR_score,
                     "selective_JAK2": original.selective_JAK2_score}[self.name]  # fmt: skip
        return float(aggregate(QED=original.QED_function(smiles), **values))

    def __call__(self, mol: Mol) -> float:
        return -self.raw(mol)

    def known_part(self, mol: Mol) -> float:
        """The negated ``10 (1 - QED)`` penalty all three objectives add: the part of the score
        computed without docking, exactly as `raw` computes it."""
        from dockstring.benchmarks import original

        return -float(original.QED_penalty(original.QED_function(Chem.MolToSmiles(mol))))

    def __reduce__(self) -> tuple[Any, ...]:
        return (DockstringBenchmark, (self.name, self.timeout, self.num_cpus, self.seed))

    def __repr__(self) -> str:
        return f"DockstringBenchmark({self.name!r}, timeout={self.timeout:g})"


def benchmark_version(name: str, seed: int = docking.DOCK_SEED) -> str:
    """What decides a ``dockstring:<name>`` score besides the spec (see `dock_version`)."""
    targets = ", ".join(docking.check_target(t) for t in BENCHMARKS[check_benchmark(name)])
    return f"{docking.tool_versions()}; targets {targets}; seed {seed}"


def benchmark_description(name: str) -> str:
    """The registry's one-line description of ``dockstring:<name>``."""
    return (f"-({BENCHMARK_FORMULAS[check_benchmark(name)]}), DOCKSTRING's {name} objective "
            "negated (Vina scores in kcal/mol; higher = better)")  # fmt: skip
