"""Docking objectives: ``dock:<TARGET>``, the negated AutoDock Vina score of a molecule docked to
one of dockstring's prepared protein targets (García-Ortegón et al. 2022).

dockstring prepares the ligand (RDKit embedding and force field, Open Babel protonation at pH 7.4
and PDBQT conversion) and runs the Vina binary shipped in its wheel on the target's search box.
Each docking runs in a child process (`molvae.chem.dock_child`) in a temporary directory of its
own; the child's whole process group, Open Babel and Vina included, is killed when the docking
outlives ``DockingScore.timeout``. dockstring and openbabel-wheel are an optional extra
(``pip install 'molvae[dock]'``); they are imported on first use, never at import time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import types
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdkit import Chem
from rdkit import __version__ as rdkit_version

if TYPE_CHECKING:
    from rdkit.Chem import Mol

INSTALL_HINT = "pip install 'molvae[dock]'"
TIMEOUT_ENV = "MOLVAE_DOCK_TIMEOUT"
# seconds: there to end a hung Vina, not a slow one (a docking cut short is lost work), so
# several times the 4.5 minutes the largest molecule measured took (docs/guides/docking.md)
DEFAULT_TIMEOUT = 1200.0
DOCK_SEED = 974528263  # dockstring's default seed (Target.dock)
# the child's own alarm fires this much after the parent's timeout, only if the parent is gone
ORPHAN_GRACE = 30.0
_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the molvae package


class DockingFailed(RuntimeError):
    """dockstring could not prepare or dock a molecule (the message says why)."""


def import_dockstring() -> types.ModuleType:
    """The ``dockstring`` module; ``ValueError`` naming the install command when it is absent."""
    try:
        import dockstring
    except ImportError as exc:
        raise ValueError(f"dock objectives need dockstring and Open Babel: {INSTALL_HINT}") from exc
    return dockstring


@lru_cache(maxsize=1)
def dock_targets() -> tuple[str, ...]:
    """The names of dockstring's prepared targets (``DRD2``, ``ESR1``, ...), sorted."""
    return tuple(sorted(import_dockstring().list_all_target_names()))


def check_target(target: str) -> str:
    """``target`` stripped, or a ``ValueError`` listing dockstring's targets."""
    target = target.strip()
    if target not in dock_targets():
        raise ValueError(
            f"unknown docking target {target!r}; choose one of {', '.join(dock_targets())}"
        )
    return target


def _obabel_wheel() -> Path | None:
    """openbabel-wheel's package folder (binaries in ``bin/``), or None when it is not installed;
    found without importing it, which would load its 40 MB extension."""
    spec = importlib.util.find_spec("openbabel")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / "bin" / "obabel").is_file() else None


def child_env() -> dict[str, str]:
    """The environment a docking child runs in: this one, with Open Babel and molvae findable."""
    env = dict(os.environ)
    path = [str(Path(sys.executable).parent), env.get("PATH", "")]
    if (wheel := _obabel_wheel()) is not None:
        # dockstring calls a bare `obabel`: the wheel's binary first on PATH, even outside an
        # activated venv, with the plugin and data folders the wheel's own wrapper would set
        path.insert(0, str(wheel / "bin"))
        for var, sub in (("BABEL_LIBDIR", "lib"), ("BABEL_DATADIR", "share")):
            env[var] = str(next(iter(sorted((wheel / sub / "openbabel").glob("*"))), ""))
    env["PATH"] = os.pathsep.join(path)
    # the child runs in its temporary directory, where a checkout on the parent's working
    # directory or PYTHONPATH=. is not importable; an installed molvae needs nothing
    installed = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    if str(_ROOT) not in installed:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    return env


@lru_cache(maxsize=1)
def tool_versions() -> str:
    """dockstring's, its Vina binary's, Open Babel's and RDKit's versions (RDKit embeds the
    ligand, so it moves scores too), in one line; ``ValueError`` when dockstring is missing or
    its Vina binary cannot run on this machine."""
    import_dockstring()
    from dockstring.utils import get_vina_path

    try:
        vina = get_vina_path()
        out = subprocess.run([vina, "--version"], capture_output=True, text=True, timeout=60)
    except Exception as exc:  # an unsupported OS, a 32-bit binary the kernel will not run
        raise ValueError(f"dockstring's AutoDock Vina cannot run on this machine ({exc})") from exc
    vina_version = " ".join(out.stdout.split()[:3]) or "AutoDock Vina (unknown version)"
    if _obabel_wheel() is not None:
        obabel = f"openbabel-wheel {importlib.metadata.version('openbabel-wheel')}"
    elif (found := shutil.which("obabel", path=child_env()["PATH"])) is not None:
        obabel = f"obabel at {found}"
    else:
        raise ValueError(f"dock objectives need Open Babel's obabel: {INSTALL_HINT}")
    dockstring = f"dockstring {importlib.metadata.version('dockstring')} ({vina_version})"
    return f"{dockstring}; {obabel}; RDKit {rdkit_version}"


def dock_version(target: str, seed: int = DOCK_SEED) -> str:
    """What decides a ``dock:<target>`` score besides the spec: the tools' versions (see
    `tool_versions`), the target and the seed."""
    return f"{tool_versions()}; target {check_target(target)}; seed {seed}"


def dock_description(target: str) -> str:
    """The registry's one-line description of ``dock:<target>``."""
    return f"-Vina score in kcal/mol, docked to {target} by dockstring (higher = binds better)"


def timeout_from_env() -> float:
    """``$MOLVAE_DOCK_TIMEOUT`` in seconds, or `DEFAULT_TIMEOUT` when it is unset."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    return check_timeout(raw, TIMEOUT_ENV) if raw else DEFAULT_TIMEOUT


def check_timeout(value: Any, what: str = "timeout") -> float:
    """``value`` as a positive finite number of seconds, else ``ValueError``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return seconds


def dock_smiles(
    smiles: str,
    target: str,
    timeout: float = DEFAULT_TIMEOUT,
    seed: int = DOCK_SEED,
    num_cpus: int = 1,
) -> float:
    """dockstring's Vina score of ``smiles`` docked to ``target`` (kcal/mol, lower = binds
    better), computed in a child process with its own temporary directory; ``seed`` is
    dockstring's (embedding and Vina), ``num_cpus`` Vina's ``--cpu``.

    Raises ``TimeoutError`` when it takes over ``timeout`` seconds (the child, Open Babel and
    Vina are killed) and `DockingFailed` with dockstring's reason when the molecule cannot be
    prepared or docked.
    """
    timeout = check_timeout(timeout)
    with tempfile.TemporaryDirectory(prefix="molvae-dock-", ignore_cleanup_errors=True) as work:
        result = Path(work) / "result.json"
        deadline = timeout + ORPHAN_GRACE
        cmd = [sys.executable, "-m", "molvae.chem.dock_child", target, smiles, str(seed),
               str(num_cpus), str(result), f"{deadline:.0f}"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=work, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise TimeoutError(f"docking took over {timeout:g} s ({TIMEOUT_ENV})") from None
        except BaseException:  # Ctrl-C reaches the parent only: the child has its own session
            _kill(proc)
            raise
        return _read_result(result, proc.returncode, err)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child is its group's leader
    proc.wait()


def _read_result(result: Path, returncode: int, err: str) -> float:
    try:
        payload = json.loads(result.read_text())
    except (OSError, ValueError):
        last = (err or "").strip().splitlines()[-1:] or [f"exit status {returncode}"]
        raise DockingFailed(f"the docking process died: {last[0][:160]}") from None
    if "error" in payload:
        raise DockingFailed(payload["error"])
    if payload.get("score") is None:
        raise DockingFailed("AutoDock Vina found no pose in the search box")
    return float(payload["score"])


@lru_cache(maxsize=4096)
def memo_dock(smiles: str, target: str, timeout: float, seed: int, num_cpus: int) -> float:
    """`dock_smiles`, remembered in this process (4,096 molecules)."""
    # an objective and a constraint on the same target in one process dock a molecule once;
    # failures are not cached (lru_cache does not keep exceptions), so a timeout can be retried
    return dock_smiles(smiles, target, timeout, seed, num_cpus)


class DockingScore:
    """Picklable callable: ``-`` dockstring's Vina score (kcal/mol) of a ``Mol`` docked to
    ``target``, so that higher is better.

    ``timeout``: seconds per docking (default ``$MOLVAE_DOCK_TIMEOUT``, else 1200);
    ``num_cpus``: Vina's ``--cpu`` (1: run several molecules side by side with scoring's
    ``n_jobs`` instead); ``seed``: dockstring's seed for embedding and Vina.
    """

    def __init__(
        self,
        target: str,
        timeout: float | None = None,
        num_cpus: int = 1,
        seed: int = DOCK_SEED,
    ):
        self.target = check_target(target)
        self.timeout = timeout_from_env() if timeout is None else check_timeout(timeout)
        self.num_cpus = int(num_cpus)
        self.seed = int(seed)

    def __call__(self, mol: Mol) -> float:
        smiles = Chem.MolToSmiles(mol)
        return -memo_dock(smiles, self.target, self.timeout, self.seed, self.num_cpus)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DockingScore, (self.target, self.timeout, self.num_cpus, self.seed))

    def __repr__(self) -> str:
        return f"DockingScore({self.target!r}, timeout={self.timeout:g})"
