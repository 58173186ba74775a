"""The training data's domain: what molecules a model has seen, and why another one is unlike them.

A model trained on MOSES ZINC has seen only some elements, no formal charges, strings of at
most so many tokens and molecular weights between 250 and 350 Da; asked to encode a molecule
outside that, it returns some other molecule without complaint. `compute_domain` records the
element set, the formal charges, the longest token string and the range of a few properties
(`PROPERTIES`) of the training SMILES; `TrainingDomain.check` names every way a molecule falls
outside, e.g. ``"charge_outside_training:+1"`` or ``"mw_above_training_max:512.3 > 350.0"``.
Stored in the checkpoint under "domain" as plain lists, numbers and strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors

from molvae.chem import parse
from molvae.data.tokens import tokenize

if TYPE_CHECKING:
    from rdkit.Chem import Mol


def _max_ring(mol: Mol) -> int:
    return max((len(r) for r in mol.GetRingInfo().AtomRings()), default=0)


# name -> (function of a Mol, decimals shown in a reason; 0 = an integer count)
PROPERTIES: dict[str, tuple[Callable[[Mol], float], int]] = {
    "heavy_atoms": (lambda m: m.GetNumHeavyAtoms(), 0),
    "mw": (Descriptors.MolWt, 1),
    "logp": (Crippen.MolLogP, 2),
    "rings": (rdMolDescriptors.CalcNumRings, 0),
    "max_ring_size": (_max_ring, 0),
    "rotatable_bonds": (rdMolDescriptors.CalcNumRotatableBonds, 0),
}


@dataclass
class TrainingDomain:
    """Elements, formal charges, token count and property ranges of a training set."""

    elements: list[str]
    charges: list[int]
    max_tokens: int
    ranges: dict[str, list[float]]  # property name -> [min, max]
    n_molecules: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # provenance (data name, ...)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, numbers and strings, for the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingDomain:
        """Inverse of `to_dict`; a malformed entry raises ``ValueError``."""
        try:
            return cls(
                elements=[str(e) for e in d["elements"]],
                charges=[int(c) for c in d["charges"]],
                max_tokens=int(d["max_tokens"]),
                ranges={str(k): [float(v[0]), float(v[1])] for k, v in d["ranges"].items()},
                n_molecules=int(d.get("n_molecules", 0)),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ValueError(f"malformed training domain entry: {e!r}") from None

    def check(self, smiles: str) -> str:
        """ "" when ``smiles`` lies inside the domain, else its reasons joined by ";".

        A string RDKit cannot parse gives ``"unparsable"``.
        """
        mol = parse(smiles)
        if mol is None:
            return "unparsable"
        return ";".join(self.reasons(mol, len(tokenize(smiles))))

    def reasons(self, mol: Mol, n_tokens: int) -> list[str]:
        """Every way ``mol`` (written in ``n_tokens`` tokens) differs from the training data."""
        out: list[str] = []
        elements, charges = _atoms(mol)
        unseen = sorted(elements - set(self.elements))
        if unseen:
            out.append("atom_outside_training:" + ",".join(unseen))
        odd = sorted(charges - set(self.charges))
        if odd:
            out.append("charge_outside_training:" + ",".join(f"{c:+d}" for c in odd))
        if n_tokens > self.max_tokens:
            out.append(f"tokens_above_training_max:{n_tokens} > {self.max_tokens}")
        for name, (lo, hi) in self.ranges.items():
            if name not in PROPERTIES:
                continue
            fn, dec = PROPERTIES[name]
            v = float(fn(mol))
            if v > hi:
                out.append(f"{name}_above_training_max:{v:.{dec}f} > {hi:.{dec}f}")
            elif v < lo:
                out.append(f"{name}_below_training_min:{v:.{dec}f} < {lo:.{dec}f}")
        return out


def _atoms(mol: Mol) -> tuple[set[str], set[int]]:
    atoms = list(mol.GetAtoms())
    return {a.GetSymbol() for a in atoms}, {a.GetFormalCharge() for a in atoms}


def compute_domain(
    smiles: Iterable[str], extra: dict[str, Any] | None = None, n_jobs: int = 1
) -> TrainingDomain:
    """The domain of a training set; strings RDKit cannot parse are skipped.

    About 1 ms per molecule on one core (Crippen logP is most of it); ``n_jobs`` processes
    share the work in chunks.
    """
    smiles = list(smiles)
    if n_jobs > 1 and len(smiles) >= 2 * n_jobs:
        from concurrent.futures import ProcessPoolExecutor

        size = -(-len(smiles) // (4 * n_jobs))
        chunks = [smiles[i : i + size] for i in range(0, len(smiles), size)]
        with ProcessPoolExecutor(n_jobs) as pool:
            parts = list(pool.map(_partial, chunks))
    else:
        parts = [_partial(smiles)]
    n = sum(p[4] for p in parts)
    if n == 0:
        raise ValueError("no parsable molecule to compute a training domain from")
    ranges = {
        name: [min(p[3][name][0] for p in parts), max(p[3][name][1] for p in parts)]
        for name in PROPERTIES
    }
    elements = sorted(set().union(*(p[0] for p in parts)))
    charges = sorted(set().union(*(p[1] for p in parts)))
    return TrainingDomain(elements, charges, max(p[2] for p in parts), ranges, n, extra or {})


def _partial(smiles: list[str]) -> tuple[set[str], set[int], int, dict[str, list[float]], int]:
    """Elements, charges, max tokens, [min, max] per property, and count of one chunk."""
    elements: set[str] = set()
    charges: set[int] = set()
    max_tokens, n = 0, 0
    ranges = {name: [float("inf"), float("-inf")] for name in PROPERTIES}
    for s in smiles:
        mol = parse(s)
        if mol is None:
            continue
        n += 1
        e, c = _atoms(mol)
        elements |= e
        charges |= c
        max_tokens = max(max_tokens, len(tokenize(s)))
        for name, (fn, _) in PROPERTIES.items():
            v, r = float(fn(mol)), ranges[name]
            r[0], r[1] = min(r[0], v), max(r[1], v)
    return elements, charges, max_tokens, ranges, n


def domain_summary(statuses: list[str]) -> str:
    """One line: how many molecules lie outside the domain, and the commonest reasons.

    ``statuses`` holds one domain status per molecule ("" inside); "" when all are inside.
    """
    outside = [s for s in statuses if s and s != "unparsable"]
    if not outside:
        return ""
    counts: dict[str, int] = {}
    for s in outside:
        for reason in s.split(";"):
            key = reason.split(":", 1)[0]
            counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    what = ", ".join(f"{k} ({v})" for k, v in top)
    return f"{len(outside)} of {len(statuses)} molecules lie outside the training domain: {what}"
