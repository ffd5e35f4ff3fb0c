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


def test_mlp_readout_reads_a_curved_joint_the_linear_map_cannot(benchmark_module):
    """A joint laid on a circle arc (a kept but curved state): the MLP read-out recovers it, ridge regression does not."""
    import numpy as np

    shortcut = benchmark_module("shortcut")
    rng = np.random.default_rng(0)
    t_train, t_test = rng.uniform(0, 1, 800), rng.uniform(0, 1, 200)

    def features(t):
        return np.c_[np.cos(6 * t), np.sin(6 * t), rng.normal(0, 0.01, (len(t), 2))].astype(np.float32)

    x_train, x_test = features(t_train), features(t_test)
    y_train, y_test = t_train[:, None].astype(np.float32), t_test[:, None].astype(np.float32)
    linear = shortcut._r2(shortcut._ridge(x_train, y_train, x_test), y_test)
    mlp = shortcut._r2(shortcut._mlp_readout(x_train, y_train, x_test, seed=0, steps=600), y_test)
    assert mlp > 0.95 and mlp > linear + 0.2
