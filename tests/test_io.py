"""Atomic writes leave either the complete new file or the old one, never a partial or temp file."""
import os
from pathlib import Path

import numpy as np
import pytest

from vip_rl._io import atomic_dir, atomic_path, atomic_write_json, atomic_write_text


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



def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writer_that_makes_0600_files_gets_umask_permissions(tmp_path: Path) -> None:
    # safetensors' save_file creates its file 0600: the result must still be 0666 & ~umask
    from safetensors.torch import save_file
    import torch

    target = tmp_path / "w.safetensors"
    with atomic_path(target) as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_atomic_dir_permissions_replace_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "run" / "encoder"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".encoder.")
        (tmp / "a.txt").write_text("one")
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's 0700
    with atomic_dir(target) as tmp:  # an existing folder is replaced whole
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(target) as tmp:
            (tmp / "c.txt").write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["encoder"]  # no temp or old folder left


def test_parents_false_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="output directory .*missing.* does not exist"):
        with atomic_path(tmp_path / "missing" / "a.h5", parents=False):
            pass
    with pytest.raises(FileNotFoundError, match="output directory"):
        with atomic_dir(tmp_path / "missing" / "enc", parents=False):
            pass
    assert list(tmp_path.iterdir()) == []


def test_exported_encoder_has_umask_permissions(tmp_path: Path) -> None:
    from vip_rl.encoders import build_encoder, save_encoder

    out = save_encoder(build_encoder("cnn", embed_dim=8, image_size=32), tmp_path / "encoder")
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    for name in ("model.safetensors", "config.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~_umask()
