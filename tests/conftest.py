"""Shared test setup: headless MuJoCo rendering before anything imports mujoco, and the import of benchmark scripts."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from vip_rl._gl import default_mujoco_gl

default_mujoco_gl()  # the toolkit's one rule (MUJOCO_GL=egl on Linux when unset), before any test imports mujoco

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def benchmark_module(monkeypatch):
    """``benchmark_module(name)`` imports ``benchmarks/<name>.py`` (its siblings ``_common``, ``_report``, ... resolve
    as the scripts import them); every module it brought in is dropped again after the test."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    before = set(sys.modules)
    yield importlib.import_module
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(BENCHMARKS)):
            sys.modules.pop(name, None)
