"""Constraints on the molecules a campaign may report: ``<property> <= <value>``,
``<property> >= <value>``, ``filters`` and ``alerts:<catalogs>``.

An objective alone is easy to game: maximizing TPSA finds strings of hypervalent sulfur and
nitrogen that RDKit accepts and no chemist would make. A constraint says what a usable molecule
must also satisfy. ``<property>`` is one of ``CONSTRAINT_PROPERTIES`` (in the property's own
units: ``sa`` is the SA score, 1 easy to 10 hard, not the ``sa`` objective's -SA), a
`molvae.chem.properties.PROPERTIES` name, or any objective spec (``qed``,
``similarity:<SMILES>``, ``module:function``). ``filters`` is MOSES's filter set
(`molvae.chem.filters`: no PAINS or medicinal-chemistry alerts, no charges, common atoms only,
no ring of 8 or more atoms). ``alerts:brenk,pains`` asks for no match in RDKit's structural-alert
catalogs (`ALERT_CATALOGS`: Brenk's unwanted groups, PAINS, NIH, ZINC, ChEMBL's sets), which
name what they flag: peroxides, azides, diazo groups, hydrazines, aldehydes, catechols...

A constraint is a picklable value rebuilt from its spec, so scoring workers get it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from rdkit.Chem import Descriptors, Lipinski, rdMolDescriptors
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

from molvae.chem.filters import passes_filters
from molvae.chem.molecules import parse
from molvae.chem.objectives import get_objective
from molvae.chem.properties import PROPERTIES, mol_weight, sa_score

if TYPE_CHECKING:
    from rdkit.Chem import Mol


def _nn_bonds(mol: Mol) -> int:
    # N-rich chains (linked azoles, azo, hydrazine) pass MOSES's and Brenk's filters yet read
    # as energetic materials to a chemist; counting N-N bonds bounds them
    return sum(b.GetBeginAtom().GetAtomicNum() == 7 and b.GetEndAtom().GetAtomicNum() == 7
               for b in mol.GetBonds())  # fmt: skip


CONSTRAINT_PROPERTIES: dict[str, tuple[Callable[[Mol], float], str]] = {
    "sa": (sa_score, "SA score, 1 (easy to make) to 10 (hard)"),
    "mw": (mol_weight, "molecular weight in Da"),
    "hbd": (Lipinski.NumHDonors, "hydrogen-bond donors"),
    "hba": (Lipinski.NumHAcceptors, "hydrogen-bond acceptors"),
    "rotb": (rdMolDescriptors.CalcNumRotatableBonds, "rotatable bonds"),
    "rings": (rdMolDescriptors.CalcNumRings, "rings (SSSR)"),
    "heavy_atoms": (Descriptors.HeavyAtomCount, "heavy atoms"),
    "nn_bonds": (_nn_bonds, "nitrogen-nitrogen bonds (a tetrazole has 3)"),
}
OPERATORS = ("<=", ">=")
# ``alerts:<name>[,<name>...]``: RDKit FilterCatalog sets (rdkit.Chem.FilterCatalog)
ALERT_CATALOGS = {"brenk": "BRENK", "pains": "PAINS", "nih": "NIH", "zinc": "ZINC",
                  "chembl": "CHEMBL"}  # fmt: skip


def _filters_value(mol: Mol) -> float:
    return 1.0 if passes_filters(mol) else 0.0


@cache
def _catalog(names: tuple[str, ...]) -> FilterCatalog:
    params = FilterCatalogParams()
    for name in names:
        params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, ALERT_CATALOGS[name]))
    return FilterCatalog(params)


def alerts(mol: Mol, names: Sequence[str]) -> list[str]:
    """Descriptions of the alerts of catalogs ``names`` that ``mol`` matches, in catalog order,
    each once ([] when clean)."""
    matches = _catalog(tuple(names)).GetMatches(mol)
    return list(dict.fromkeys(m.GetDescription() for m in matches))


def _alert_constraint(spec: str) -> Constraint:
    names = tuple(n.strip().lower() for n in spec.split(":", 1)[1].split(","))
    unknown = [n for n in names if n not in ALERT_CATALOGS]
    if not names or unknown:
        raise ValueError(f"constraint {spec!r}: alert catalogs are {', '.join(ALERT_CATALOGS)}, "
                         f"comma-separated (got {', '.join(unknown) or 'none'})")  # fmt: skip
    canonical = "alerts:" + ",".join(names)
    clean = lambda mol: 0.0 if _catalog(names).HasMatch(mol) else 1.0  # noqa: E731
    matched = lambda mol: ", ".join(alerts(mol, names))  # noqa: E731
    return Constraint(canonical, canonical, ">=", 1.0, clean, matched)


@dataclass(frozen=True)
class Constraint:
    """``value(mol) op bound``; ``spec`` rebuilds it through `parse_constraint`."""

    spec: str
    name: str
    op: str  # "<=" or ">="
    bound: float
    fn: Callable[[Mol], float] = field(compare=False, repr=False)
    # why a molecule missed, for `violated`: None = by how much (numeric bounds); a pass/fail
    # constraint names what failed ("" = nothing to add to its spec)
    explain: Callable[[Mol], str] | None = field(default=None, compare=False, repr=False)
    # its property is an expensive objective (docking): checked in oracle calls only
    expensive: bool = field(default=False, compare=False)

    @property
    def pass_fail(self) -> bool:
        """True for ``filters`` and ``alerts:``, which hold or not; False for a numeric bound."""
        return self.explain is not None

    def _excess(self, mol: Mol) -> float:
        """``value - bound`` for ``<=``, ``bound - value`` for ``>=``; inf when the property
        cannot be computed."""
        try:
            value = float(self.fn(mol))
        except Exception:  # a user function may raise anything: not shown to hold
            return math.inf
        if not math.isfinite(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def violation(self, mol: Mol) -> float:
        """0 when ``mol`` satisfies the constraint, else by how much it misses the bound (the
        property's units; ``filters``: 1). A property that cannot be computed misses: inf."""
        return max(0.0, self._excess(mol))

    def slack(self, mol: Mol) -> float:
        """Signed distance past the bound: <= 0 where ``mol`` satisfies the constraint, > 0 by
        how much it misses (the property's units; pass/fail: -0.5 holds, +0.5 misses), inf when
        the property cannot be computed. What a campaign's constraint GPs model (SCBO)."""
        excess = self._excess(mol)
        if self.pass_fail and math.isfinite(excess):
            return 0.5 if excess > 0 else -0.5
        return excess

    def __reduce__(self) -> tuple:
        return (parse_constraint, (self.spec,))


def _property(name: str) -> tuple[Callable[[Mol], float], bool]:
    """The property's function and whether it is an expensive objective."""
    if name in CONSTRAINT_PROPERTIES:
        return CONSTRAINT_PROPERTIES[name][0], False
    if name in PROPERTIES:
        return PROPERTIES[name], False
    try:
        objective = get_objective(name)
        return objective.fn, objective.expensive
    except ValueError as err:
        known = ", ".join([*CONSTRAINT_PROPERTIES, *PROPERTIES])
        raise ValueError(
            f"constraint property {name!r} is neither one of {known} nor an objective ({err})"
        ) from None


def parse_constraint(spec: str) -> Constraint:
    """``"sa<=4.5"``, ``"mw >= 250"``, ``"similarity:<SMILES> >= 0.4"``, ``"filters"`` or
    ``"alerts:brenk,pains"``;
    ``ValueError`` with one sentence for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a constraint must be a non-empty string, got {spec!r}")
    text = spec.strip()
    if text == "filters":
        return Constraint("filters", "filters", ">=", 1.0, _filters_value, lambda mol: "")
    if text.startswith("alerts:"):
        return _alert_constraint(text)
    # the last operator: a SMILES never holds "<=" or ">=", a user's module name might not either
    at, op = max((text.rfind(o), o) for o in OPERATORS)
    if at < 0:
        raise ValueError(
            f"constraint {spec!r} must read '<property> <= <value>', '<property> >= <value>' "
            "or 'filters' or 'alerts:<catalogs>'"
        )
    name, raw = text[:at].strip(), text[at + 2 :].strip()
    try:
        bound = float(raw)
    except ValueError:
        raise ValueError(f"constraint {spec!r}: the bound {raw!r} is not a number") from None
    if not name or not math.isfinite(bound):
        raise ValueError(f"constraint {spec!r} needs a property name and a finite bound")
    fn, expensive = _property(name)
    return Constraint(f"{name}{op}{raw}", name, op, bound, fn, expensive=expensive)


def parse_constraints(specs: Sequence[str] | None) -> tuple[Constraint, ...]:
    """Each spec parsed (see `parse_constraint`), duplicates dropped, order kept."""
    out: dict[str, Constraint] = {}
    for s in specs or ():
        c = parse_constraint(s)
        out.setdefault(c.spec, c)
    return tuple(out.values())


def cheap_constraints(constraints: Sequence[Constraint]) -> tuple[Constraint, ...]:
    """The constraints computed from the molecule alone: all but the `Constraint.expensive`
    ones, which only an oracle call checks."""
    return tuple(c for c in constraints if not c.expensive)


def constraint_slacks(smiles: Sequence[str], constraints: Sequence[Constraint]) -> np.ndarray:
    """``n x m`` `Constraint.slack` of each SMILES under each constraint; NaN rows for SMILES
    RDKit cannot parse."""
    out = np.full((len(smiles), len(constraints)), np.nan)
    for i, smi in enumerate(smiles):
        mol = parse(smi)
        if mol is not None:
            out[i] = [c.slack(mol) for c in constraints]
    return out


def violated(mol: Mol, constraints: Sequence[Constraint]) -> list[str]:
    """The specs ``mol`` misses, each with by how much (``"sa<=4.5 (+0.62)"``) or which alerts
    (``"alerts:brenk (peroxide)"``); [] if none."""
    out = []
    for c in constraints:
        v = c.violation(mol)
        if v > 0:
            why = c.explain(mol) if c.explain else f"{'+' if c.op == '<=' else '-'}{v:.3g}"
            out.append(f"{c.spec} ({why})" if why else c.spec)
    return out
