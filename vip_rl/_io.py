"""Atomic file writes: every file and folder the toolkit writes goes through here.

A write goes to a temporary file (or folder) in the destination's directory and is renamed over
the destination only when complete, so a crash or an exception never leaves a half-written file
(nor the temporary one) behind.

What lands on disk gets the permissions a plain ``open()`` / ``mkdir()`` would give under the
user's umask (``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders), never the ``0600`` /
``0700`` of ``tempfile.mkstemp`` / ``mkdtemp``, also when the writer itself creates the file ``0600``
(safetensors' ``save_file`` does).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_path(Path(folder) / "notes.txt") as tmp:
    ...         _ = tmp.write_text("done")          # written beside the target, then renamed onto it
    ...     print((Path(folder) / "notes.txt").read_text(), sorted(p.name for p in Path(folder).iterdir()))
    done ['notes.txt']
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_dir", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def _check_parent(path: Path, parents: bool) -> None:
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {str(path.parent)!r} of {str(path)!r} does not exist")


def _sibling(path: Path, kind: str) -> Path:
    # hidden, unique, and ending in the target's suffix: writers that pick a format from the
    # extension (imageio, matplotlib, h5py drivers) still work on the temporary name
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.{kind}{path.suffix}"


def _create_temp_file(path: Path) -> tuple[Path, int]:
    while True:
        tmp = _sibling(path, "tmp")
        try:
            # O_EXCL with mode 0o666: the kernel applies the umask, as for open(path, "w")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
        return tmp, mode


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file exists (empty) when the block starts; writers may overwrite or recreate it.
    Its name is hidden and keeps ``path``'s suffix, so writers that pick a format from the
    extension (imageio, matplotlib) still work. The result has the umask's usual permissions.

    Args:
        path: the destination file; an existing file there is replaced.
        parents: create missing parent folders (default); False raises instead.

    Raises:
        FileNotFoundError: ``parents=False`` and the destination's folder does not exist.

    Example:
        >>> with atomic_path("out/curve.png") as tmp:      # doctest: +SKIP
        ...     fig.savefig(tmp)
    """
    path = Path(path)
    _check_parent(path, parents)
    tmp, mode = _create_temp_file(path)
    try:
        yield tmp
        os.chmod(tmp, mode)  # some writers (safetensors) recreate the file 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, parents: bool = True) -> Iterator[Path]:
    """Yield a fresh empty folder beside ``path``; it replaces ``path`` if the block succeeds.

    An existing ``path`` (a folder with its contents, or a file) is moved aside and deleted only
    after the new folder is in place. On an exception the temporary folder is deleted and ``path``
    is left as it was. The folder gets the umask's usual permissions; files written into it keep
    the permissions their writer gives them (write them with :func:`atomic_path` to get the usual ones).

    Args:
        path: the destination folder.
        parents: create missing parent folders (default); False raises instead.

    Raises:
        FileNotFoundError: ``parents=False`` and the destination's parent folder does not exist.

    Example:
        >>> with atomic_dir("runs/x/encoder") as tmp:          # doctest: +SKIP
        ...     (tmp / "config.json").write_text("{}")
    """
    path = Path(path)
    _check_parent(path, parents)
    while True:
        tmp = _sibling(path, "tmp")
        try:
            os.mkdir(tmp, 0o777)  # the umask applies, unlike mkdtemp's 0700
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        if path.exists() or path.is_symlink():
            # rename() cannot replace a non-empty folder: move the old one aside first
            old = _sibling(path, "old")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(item) for item in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return _finite_json(_json_default(value))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (numpy/torch scalars and arrays, paths allowed).

    The file is valid JSON: non-finite floats (NaN, +-inf, which ``json`` would write as the bare
    tokens ``NaN`` / ``Infinity``) are written as ``null``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     print(atomic_write_json(Path(folder) / "r.json", {"steps": 0, "mean": float("nan")}).read_text())
        {
          "steps": 0,
          "mean": null
        }
        <BLANKLINE>
    """
    text = json.dumps(_finite_json(data), indent=indent, sort_keys=sort_keys, allow_nan=False)
    return atomic_write_text(path, text + "\n")
