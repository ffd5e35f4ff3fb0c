"""Tests for benchmarks/shortcut.py's command line (refused before any data is read)."""
from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("specs", "message"), [
    (["foo"], "--extra-encoder: expected NAME=PATH, got 'foo'"),
    (["=x"], "--extra-encoder: expected NAME=PATH, got '=x'"),
    (["a="], "--extra-encoder: expected NAME=PATH, got 'a='"),
    (["a=x", "a=y"], "--extra-encoder: the NAME 'a' is given twice"),
])
def test_bad_extra_encoder_is_a_usage_error(benchmark_module, capsys, tmp_path, specs, message):
    shortcut = benchmark_module("shortcut")
    argv = [a for spec in specs for a in ("--extra-encoder", spec)] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage-error exit status
        shortcut.main(argv)
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # nothing written
