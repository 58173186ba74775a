"""One docking in a process of its own: `molvae.chem.docking` starts it and kills its process
group (this process, Open Babel and AutoDock Vina) when the docking outlives its timeout.

``python -m molvae.chem.dock_child TARGET SMILES SEED NUM_CPUS RESULT_JSON DEADLINE_S`` runs
dockstring's ``Target.dock`` with the result file's directory as its working directory and writes
``{"score": <Vina score or null>}`` or ``{"error": "<Type>: <reason>"}`` to ``RESULT_JSON``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

MAX_REASON = 160


def reason(exc: BaseException) -> str:
    """``"<Type>: <message>"`` on one line, short enough for a status column (VinaError's
    message holds Vina's whole output)."""
    text = " ".join(str(exc).split())
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _kill_group(signum: int, frame: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Dock one SMILES and write the result file; 0 unless the arguments are wrong."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    target, smiles, seed, num_cpus, result, deadline = args
    # the parent kills the group at its timeout; this covers a parent that died first, so an
    # orphaned Vina does not run on for hours
    signal.signal(signal.SIGALRM, _kill_group)
    signal.alarm(max(1, math.ceil(float(deadline))))
    out = Path(result)
    try:
        import dockstring

        docked = dockstring.load_target(target, working_dir=out.parent)
        score, _ = docked.dock(smiles, num_cpus=int(num_cpus), seed=int(seed))
        payload: dict[str, object] = {"score": score}
    except Exception as exc:  # dockstring's own errors and whatever RDKit raises
        payload = {"error": reason(exc)}
    out.write_text(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
