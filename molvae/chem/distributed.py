"""Objective calls on a Dask cluster: `connect` to a running scheduler and score through its
workers (`molvae.chem.score_smiles(..., executor=cluster.executor)`).

Start the cluster by hand (``dask scheduler`` on one machine, ``dask worker tcp://HOST:8786``
on each of the others, every worker in an environment with molvae installed) or on a batch
system with ``dask-jobqueue`` (docs/guides/cluster.md). Dask reruns the task of a worker that
dies mid-call on another worker, so a lost machine costs its molecules' time, not the batch.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from molvae.version import __version__


def _worker_version() -> str:
    """What a worker reports on `connect`: the molvae it imports (or why it cannot)."""
    try:
        from molvae.version import __version__ as version
    except Exception as exc:  # a worker without molvae: say so instead of failing each task
        return f"no molvae ({type(exc).__name__}: {exc})"
    return version


@dataclass
class Cluster:
    """A connection to a Dask scheduler; ``executor`` runs objective calls on its workers."""

    address: str
    client: Any  # distributed.Client
    executor: Executor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = self.client.get_executor()

    def n_workers(self) -> int:
        """Workers connected now (Dask queues tasks until one joins)."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def n_threads(self) -> int:
        """Worker threads connected now: how many objective calls run at once."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return sum(int(w.get("nthreads", 1)) for w in workers.values())

    def close(self) -> None:
        """Disconnect; the scheduler and its workers go on for other clients."""
        self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str, timeout: float = 30.0) -> Cluster:
    """Connect to the Dask scheduler at ``address`` (``tcp://HOST:PORT``) and check that every
    connected worker imports this molvae version. One-sentence ``ValueError`` when dask's
    ``distributed`` is missing, the scheduler cannot be reached in ``timeout`` seconds, or a
    worker has no or another molvae (its objectives could differ from this process's)."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("a Dask scheduler needs dask's distributed package "
                         "(pip install 'dask[distributed]')") from None  # fmt: skip
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r} ({exc})") from None
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker that cannot unpickle molvae's function has no molvae
        client.close()
        raise ValueError(f"Dask workers at {address!r} cannot run molvae ({exc}); "
                         "install molvae in every worker's environment") from None  # fmt: skip
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        client.close()
        raise ValueError(f"Dask workers without molvae {__version__}: {wrong}")
    return Cluster(address, client)
