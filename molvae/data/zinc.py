"""ZINC beyond the bundled subset: the MOSES splits, fetched once into the cache.

MOSES ZINC Clean Leads ships inside the ``molsets`` wheel; see DESIGN.md ("ZINC data"). The
bundled names (``zinc``, ``zinc-test``) are `molvae.resources.BUNDLED_DATA`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from molvae.data.errors import DataError
from molvae.io import atomic_write
from molvae.resources import cache_dir

# MOSES ZINC Clean Leads ships inside this wheel; see DESIGN.md ("ZINC data").
MOSES_WHEEL = "molsets==0.3.1"
MOSES_WHEEL_FILE = "molsets-0.3.1-py3-none-any.whl"
MOSES_WHEEL_SHA256 = "7f4450e3ebecebe79c3a2a55950c93daddee071120daf64a163d03481e811d34"
MOSES_SPLITS = {"train": 1_584_663, "test": 176_074, "test_scaffolds": 176_225}

# Names usable wherever a data path is expected, and the MOSES split each one fetches.
FETCHED = {
    "zinc-full": "train",
    "moses-train": "train",
    "moses-test": "test",
    "moses-test-scaffolds": "test_scaffolds",
}


def fetch_moses_wheel(directory: Path) -> Path:
    """The sha256-verified ``molsets==0.3.1`` wheel in ``directory`` (pip-downloaded if absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / MOSES_WHEEL_FILE
    if not wheel.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(directory)]
        run = subprocess.run([*cmd, MOSES_WHEEL], capture_output=True, text=True)
        if run.returncode != 0 or not wheel.exists():
            last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"could not download {MOSES_WHEEL} with pip: {last[0]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != MOSES_WHEEL_SHA256:
        raise DataError(f"{wheel} has sha256 {digest}, expected {MOSES_WHEEL_SHA256}")
    return wheel


def fetch_moses(target: Path | None = None, quiet: bool = True) -> dict[str, Path]:
    """Fetch the MOSES ZINC splits (train/test/test_scaffolds csv.gz) into the cache, once.

    The `molsets==0.3.1` wheel is downloaded with ``pip download --no-deps`` (installing it fails on
    current Python), checked against its sha256, and only its data files are extracted.
    """
    target = Path(target) if target else cache_dir() / "moses"
    paths = {split: target / f"{split}.csv.gz" for split in MOSES_SPLITS}
    if all(p.exists() for p in paths.values()):
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_moses_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for split, dest in paths.items():
                with (
                    zf.open(f"moses/dataset/data/{split}.csv.gz") as src,
                    atomic_write(dest, "wb") as out,
                ):
                    shutil.copyfileobj(src, out)
    if not quiet:
        print(f"MOSES ZINC splits cached in {target}", file=sys.stderr)
    return paths
