"""The objective registry: an objective spec to a function of a molecule (`molvae.chem.scoring`
scores SMILES lists with one).

Objectives are always *maximized*. ``get_objective`` accepts a registry name (``logp``, ``qed``,
``sa``, ``mw``, ``tpsa``, ``plogp``, ``plogp_raw``, ``qed_sa``), ``similarity:<SMILES>``,
``pmo:<task>`` (the PMO benchmark's oracles, `molvae.chem.pmo`; needs ``make pmo-install``),
``dock:<TARGET>`` (-Vina score against a dockstring target, `molvae.chem.docking`; needs
``pip install 'molvae[dock]'``), ``dockstring:<name>`` (DOCKSTRING's benchmark objectives F2,
promiscuous_PPAR and selective_JAK2, negated) or a user ``module:function`` whose function
takes a ``Mol`` and returns a float.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import DataStructs

from molvae.chem.dock_benchmarks import (
    BENCHMARKS,
    DockstringBenchmark,
    benchmark_description,
    benchmark_version,
)
from molvae.chem.docking import DockingScore, dock_description, dock_version
from molvae.chem.molecules import parse
from molvae.chem.pmo import PMO_TASKS, PMOScore, import_tdc
from molvae.chem.properties import (
    logp,
    mol_weight,
    morgan_fingerprint,
    penalized_logp,
    penalized_logp_raw,
    qed,
    sa_score,
    tpsa,
)

if TYPE_CHECKING:
    from rdkit.Chem import Mol


# --------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """A score to maximize. ``name`` is the spec that rebuilds it through ``get_objective``;
    ``version`` names what else decides its values (a package's version, a target's files), so a
    stored score is reused only while both match ("" = the spec alone decides)."""

    name: str
    description: str
    fn: Callable[[Mol], float]
    version: str = ""
    # an oracle call costs minutes (docking): as a constraint it is checked only in the oracle
    # call of a molecule chosen to be scored, never on a campaign's candidates
    expensive: bool = False
    # the part of ``fn`` computed exactly and at no cost, ``fn(m) = (the rest) + known_part(m)``
    # (DOCKSTRING's 10 (1 - QED) penalty beside a docking score): the fingerprint GP then models
    # only the rest and adds this part exactly (`molvae.bo.candidates`)
    known_part: Callable[[Mol], float] | None = None


def neg_sa_score(mol: Mol) -> float:
    """``-SA`` so that higher is better (easier to synthesize)."""
    return -sa_score(mol)


def qed_minus_sa(mol: Mol) -> float:
    """``5 * QED - SA``, the objective of Gómez-Bombarelli et al. 2018."""
    return 5.0 * qed(mol) - sa_score(mol)


class TanimotoTo:
    """Picklable callable: Tanimoto similarity (Morgan r2, 2048 bits) to a fixed target."""

    def __init__(self, target_smiles: str):
        target = parse(target_smiles)
        if target is None:
            raise ValueError(f"similarity target {target_smiles!r} is not a valid SMILES string")
        self.target_smiles = target_smiles
        self._target_fp = morgan_fingerprint(target)

    def __call__(self, mol: Mol) -> float:
        return float(DataStructs.TanimotoSimilarity(morgan_fingerprint(mol), self._target_fp))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TanimotoTo, (self.target_smiles,))


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("logp", "Crippen logP", logp),
        Objective("qed", "QED drug-likeness in [0, 1]", qed),
        Objective("sa", "negated SA score (-SA, higher = easier to synthesize)", neg_sa_score),
        Objective(
            "sa_score",
            "SA score, 1 (easy to synthesize) to 10 (hard); to condition on "
            "or constrain, not to maximize",
            sa_score,
        ),
        Objective("mw", "molecular weight in Da", mol_weight),
        Objective("tpsa", "topological polar surface area in Å²", tpsa),
        Objective("plogp", "penalized logP, standardized with ZINC-250k constants", penalized_logp),
        Objective("plogp_raw", "penalized logP, raw: logP - SA - ring penalty", penalized_logp_raw),
        Objective("qed_sa", "5 * QED - SA (Gómez-Bombarelli et al. 2018)", qed_minus_sa),
    )
}

# one line for all targets: listing dockstring's 58 would need dockstring installed
DOCK_FORM = (
    "-Vina score in kcal/mol (higher = binds better), docked by dockstring, e.g. dock:DRD2; "
    "targets: python -c 'import molvae.chem as c; print(*c.dock_targets())' "
    "(needs pip install 'molvae[dock]')"
)


def available_objectives() -> dict[str, str]:
    """Registry names and their descriptions, then the ``pmo:<task>`` specs, the
    ``dockstring:<name>`` benchmarks and the ``dock:<TARGET>`` form (``similarity:<SMILES>``
    and ``module:function`` are accepted by ``get_objective`` as well)."""
    names = {name: o.description for name, o in OBJECTIVES.items()}
    names |= {f"pmo:{task}": _pmo_description(task) for task in PMO_TASKS}
    names |= {f"dockstring:{name}": benchmark_description(name) for name in BENCHMARKS}
    return names | {"dock:<TARGET>": DOCK_FORM}


def _pmo_description(task: str) -> str:
    return f"PMO benchmark task {task} (PyTDC oracle, in [0, 1])"


def get_objective(spec: str) -> Objective:
    """Resolve a registry name, ``similarity:<SMILES>``, ``pmo:<task>``, ``dock:<TARGET>``,
    ``dockstring:<name>`` or a user ``module:function``.

    Raises ``ValueError`` with one clear sentence for an unknown name, an invalid similarity
    target or a module/function that cannot be imported.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"an objective spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in OBJECTIVES:
        return OBJECTIVES[spec]
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "similarity":
        fn = TanimotoTo(rest.strip())
        return Objective(spec, f"Tanimoto similarity (Morgan r2, 2048 bits) to {rest.strip()}", fn)
    if sep and prefix == "pmo":
        pmo = PMOScore(rest)  # an unknown task: ValueError listing the tasks
        import_tdc()  # not installed: one sentence now, not a "failed" row per molecule later
        return Objective(f"pmo:{pmo.task}", _pmo_description(pmo.task), pmo)
    if sep and prefix == "dock":
        # not installed, an unknown target (listing them), a Vina that cannot run: ValueError
        dock = DockingScore(rest)
        version = dock_version(dock.target, dock.seed)
        return Objective(f"dock:{dock.target}", dock_description(dock.target), dock, version,
                         expensive=True)  # fmt: skip
    if sep and prefix == "dockstring":
        bench = DockstringBenchmark(rest)  # an unknown name: ValueError listing the three
        version = benchmark_version(bench.name, bench.seed)
        return Objective(f"dockstring:{bench.name}", benchmark_description(bench.name), bench,
                         version, expensive=True, known_part=bench.known_part)  # fmt: skip
    if sep:
        fn = _import_function(prefix, rest)
        # a user's objective declares its cheap, exact part as an attribute of the function
        known = getattr(fn, "known_part", None)
        if known is not None and not callable(known):
            raise ValueError(f"objective {spec!r}: its known_part must be a function of a Mol")
        return Objective(spec, f"user objective {spec}", fn, known_part=known)
    names = ", ".join(OBJECTIVES)
    raise ValueError(
        f"unknown objective {spec!r}; choose one of {names}, "
        "or give 'similarity:<SMILES>', 'pmo:<task>', 'dock:<TARGET>', 'dockstring:<name>' "
        "or a 'module:function'"
    )


def known_part_values(spec: str) -> Callable[[list[str]], np.ndarray] | None:
    """``smiles -> n`` values of the objective's `Objective.known_part` (NaN where a SMILES does
    not parse or the part raises), or None when ``spec``'s objective declares none. Each
    molecule's value is computed once and remembered: a campaign asks again for the molecules
    it scored and for the candidates it keeps (about 1.4 ms a molecule for F2's QED part)."""
    known = get_objective(spec).known_part
    if known is None:
        return None
    memo: dict[str, float] = {}

    def value(smiles: str) -> float:
        mol = parse(smiles)
        if mol is None:
            return float("nan")
        try:
            return float(known(mol))
        except Exception:  # a user's function: one molecule must not stop the campaign
            return float("nan")

    def values(smiles: list[str]) -> np.ndarray:
        for s in dict.fromkeys(smiles):
            if s not in memo:
                memo[s] = value(s)
        return np.array([memo[s] for s in smiles], dtype=np.float64)

    return values


def _import_function(module_name: str, function_name: str) -> Callable[[Mol], float]:
    spec = f"{module_name}:{function_name}"
    if not module_name or not function_name:
        raise ValueError(f"objective {spec!r} must have the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of user code is reported the same way
        raise ValueError(
            f"could not import module {module_name!r} for objective {spec!r} ({exc})"
        ) from exc
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise ValueError(f"module {module_name!r} has no callable {function_name!r}")
    return fn
