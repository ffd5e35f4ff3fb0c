"""Which code trained a weight file: a digest of the sources, and the git commit when there is one.

The package version (``vip_rl.__version__``) does not change between commits, so it cannot tell two trainings
apart. The bundled td-sim showed why that matters: its first four stages were trained by code that has changed
since, and nothing in its JSON said by which. :func:`code_version` is what ``pretrain`` and
``weights_recipe`` now record beside each stage. :func:`arrays_digest` names the data side the same way: a digest of
named arrays (a weight file's tensors, a benchmark's training arrays), so that two runs can tell whether their inputs
were equal. :func:`cpu_model` names the machine's CPU: one seed's training run has come out otherwise on another CPU
(``benchmarks/notes/weights_reproduce.md``, sessions 35-36).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import subprocess
from pathlib import Path
from typing import Any, Sequence

#: the packages whose sources decide a training run: the library and the task suite (its XML scenes make the data)
PACKAGES = ("vip_rl", "vip_envs")
SUFFIXES = (".py", ".xml")


def package_dirs(packages: Sequence[str] = PACKAGES) -> list[Path]:
    """The directories of the installed ``packages`` (found without importing them; a missing one is skipped)."""
    dirs = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(next(iter(spec.submodule_search_locations))).resolve())
    return dirs


def source_digest(roots: Sequence[Path], *, suffixes: Sequence[str] = SUFFIXES) -> str:
    """sha256 (first 16 hex digits) over every ``suffixes`` file under ``roots``: each file's path relative to the
    root's parent (so ``vip_rl/pretrain.py``) and its bytes, in sorted order. Caches (``__pycache__``) are left out."""
    files = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"source_digest: {root} is not a directory")
        files += [(path.relative_to(root.parent).as_posix(), path) for path in root.rglob("*")
                  if path.suffix in suffixes and path.is_file() and "__pycache__" not in path.parts]
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def git_state(directory: Path, paths: Sequence[Path] = ()) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding ``directory`` (dirty: under ``paths``, or anywhere when none
    are given, a tracked file differs from the commit or a file git does not ignore is untracked);
    ``(None, None)`` outside a checkout or without git."""
    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = run("status", "--porcelain", "--untracked-files=normal", "--", *(str(p) for p in paths))
    return commit, None if status is None else bool(status)


def cpu_model() -> str | None:
    """The CPU's model name as ``/proc/cpuinfo`` gives it (Linux; e.g. ``"Intel(R) Xeon(R) Processor"``), else None."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """What a training record stores about the code that ran it (computed once per process)::

        {"sources_sha256": "…16 hex…", "git_commit": "…40 hex…" or None, "git_dirty": bool or None}

    ``git_dirty`` True means the commit alone does not describe the code: ``sources_sha256`` still does.
    """
    dirs = package_dirs()
    commit, dirty = git_state(dirs[0], dirs) if dirs else (None, None)
    return {"sources_sha256": source_digest(dirs) if dirs else None, "git_commit": commit, "git_dirty": dirty}


def arrays_digest(arrays: Any) -> str:
    """SHA-256 (hex) of named arrays (a mapping of name -> array): each name, dtype, shape and little-endian bytes, in
    name order. Equal arrays give equal digests whatever else a file holds (metadata, timings); a renamed, recast,
    reshaped or changed array gives another."""
    import numpy as np

    digest = hashlib.sha256()
    for key, value in sorted(arrays.items()):
        value = np.ascontiguousarray(value)
        digest.update(f"{key}|{value.dtype.newbyteorder('<').str}|{value.shape}|".encode())
        digest.update(value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()
