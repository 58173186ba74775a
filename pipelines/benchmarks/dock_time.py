"""Seconds per ``dock:<TARGET>`` docking (dockstring, AutoDock Vina on one core); prints a table.

    python pipelines/benchmarks/dock_time.py                  # 5 DRD2 ligands, 11-43 heavy atoms
    python pipelines/benchmarks/dock_time.py --target ESR1    # the same molecules, another target
    python pipelines/benchmarks/dock_time.py --smoke          # one small molecule (~10 s)

Each molecule is docked once through the objective's own path (`molvae.chem.dock_smiles`: a
child process, Open Babel, Vina with ``--cpu`` ``--cpus``), so the times include the child's
start-up (about 0.5 s). ``cpu_seconds`` is the CPU time of the child and its programs, which
other load on the machine moves less than the wall time. Needs ``pip install 'molvae[dock]'``.
Writes ``results.csv`` and ``results.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import pandas as pd
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors

from molvae.chem import dock_smiles, get_objective
from molvae.io import markdown_table, write_text

# DRD2 ligands from small to large (dopamine is DRD2's own agonist; the rest are antipsychotics
# and an ergoline agonist)
MOLECULES = {
    "dopamine": "NCCc1ccc(O)c(O)c1",
    "haloperidol": "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1",
    "risperidone": "Cc1nc2n(c(=O)c1CCN1CCC(c3noc4cc(F)ccc34)CC1)CCCC2",
    "aripiprazole": "O=C1CCc2ccc(OCCCCN3CCN(c4cccc(Cl)c4Cl)CC3)cc2N1",
    "bromocriptine": "CC(C)CC1N2C(=O)C(C(C)C)(NC(=O)C3C=C4c5cccc6[nH]c(Br)c(c56)CC4N(C)C3)"
    "OC2(O)C2CCCN2C1=O",
}


def time_dockings(molecules: dict[str, str], target: str, cpus: int) -> pd.DataFrame:
    """One docking per molecule: heavy atoms, rotatable bonds, -Vina score, wall seconds and
    CPU seconds (of the child, Open Babel and Vina: less moved by other load than the wall)."""
    rows = []
    for name, smiles in molecules.items():
        mol = Chem.MolFromSmiles(smiles)
        t0, cpu0 = time.perf_counter(), _children_cpu()
        try:
            value, status = -dock_smiles(smiles, target, num_cpus=cpus), "ok"
        except Exception as exc:  # report it in the table, time the rest
            value, status = float("nan"), f"{type(exc).__name__}: {exc}"
        rows.append({
            "molecule": name,
            "heavy_atoms": mol.GetNumHeavyAtoms(),
            "rot_bonds": rdMolDescriptors.CalcNumRotatableBonds(mol),
            "neg_vina_kcal_mol": value,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": _children_cpu() - cpu0,
            "status": status,
        })  # fmt: skip
        print(f"{name}: {rows[-1]['seconds']:.1f} s, {value:.2f}", flush=True)
    return pd.DataFrame(rows)


def _children_cpu() -> float:
    # the docking child waits for Open Babel and Vina, so their time is in its own
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", default="DRD2")
    p.add_argument("--cpus", type=int, default=1, help="Vina's --cpu (default 1)")
    p.add_argument("--smoke", action="store_true", help="dopamine only")
    p.add_argument("--out", default="runs/benchmarks/dock_time")
    a = p.parse_args(argv)
    objective = get_objective(f"dock:{a.target}")  # not installed, unknown target: one line
    molecules = {"dopamine": MOLECULES["dopamine"]} if a.smoke else MOLECULES
    df = time_dockings(molecules, a.target, a.cpus)
    cpu = _cpu_name()
    head = (f"# Seconds per docking to {a.target}\n\n{objective.version}; Vina --cpu {a.cpus}; "
            f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs.\n\n")  # fmt: skip
    table = head + markdown_table(df) + "\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    write_text(out / "results.md", table)
    print(table)
    return 0


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


if __name__ == "__main__":
    sys.exit(main())
