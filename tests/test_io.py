"""Atomic writes leave either the complete new file or the old one, never a partial or temp file."""
import os
from pathlib import Path

import numpy as np
import pytest

from vip_rl._io import atomic_path, atomic_write_json, atomic_write_text


def test_write_and_replace(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failure_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".png" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_json_numpy_values(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "r.json", {"x": np.float32(1.5), "a": np.arange(3), "p": tmp_path})
    assert '"x": 1.5' in path.read_text() and "[\n    0," in path.read_text()
    with pytest.raises(TypeError, match="not JSON serialisable"):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()

