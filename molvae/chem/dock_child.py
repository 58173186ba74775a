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
import threading
import time
from pathlib import Path

MAX_REASON = 160
PARENT_POLL_S = 1.0  # how often the child checks that the process that started it lives


def reason(exc: BaseException) -> str:
    """``"<Type>: <message>"`` on one line, short enough for a status column (VinaError's
    message holds Vina's whole output)."""
    text = " ".join(str(exc).split())
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _kill_group(signum: int = signal.SIGKILL, frame: object = None) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def watch_parent(interval: float = PARENT_POLL_S) -> threading.Thread:
    """Kill this process group (this process, Open Babel, Vina) as soon as the process that
    started it is gone (its parent changes: a killed campaign or Dask worker), instead of
    docking on for nobody until the deadline. A daemon thread; returns it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        _kill_group()

    thread = threading.Thread(target=watch, name="molvae-parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """Dock one SMILES and write the result file; 0 unless the arguments are wrong."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    target, smiles, seed, num_cpus, result, deadline = args
    # the parent kills the group at its timeout; these cover a parent that died first, so an
    # orphaned Vina does not run on: at once where the parent is seen gone, at the deadline
    # where it cannot be (a parent that keeps the same pid, e.g. a subreaper restarting)
    signal.signal(signal.SIGALRM, _kill_group)
    signal.alarm(max(1, math.ceil(float(deadline))))
    watch_parent()
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
