"""molvae.io: the atomic writer."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from molvae.io import write_json, write_text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_atomic_files_get_the_mode_open_would_give_them(tmp_path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    for path in (write_text(tmp_path / "a.txt", "x"), write_json(tmp_path / "b.json", {"a": 1})):
        assert stat.S_IMODE(path.stat().st_mode) == expected, oct(path.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]  # no temp left
