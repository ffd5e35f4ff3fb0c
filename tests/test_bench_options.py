"""Tests for the benchmarks' one NAME=VALUE option parser (``_report.name_value_pairs``) and the usage errors it gives
the scripts that take such options (refused before anything is measured or written)."""
from __future__ import annotations

import re

import pytest


def test_pairs_parse_in_order(benchmark_module) -> None:
    report = benchmark_module("_report")
    assert report.name_value_pairs(["a=x", "b=y=z@front"], "--opt") == {"a": "x", "b": "y=z@front"}
    assert report.name_value_pairs([], "--opt") == {}
    assert report.name_value_pairs(["s=--k 1"], "--opt", names=("s", "t")) == {"s": "--k 1"}


def test_results_name_the_cpu(benchmark_module, monkeypatch) -> None:
    """Every results file's machine names the CPU model (one seed's training run came out otherwise on another CPU) and
    torch's vectorised kernels; a file measured before they were recorded reads as before."""
    import torch

    report = benchmark_module("_report")
    from vip_rl import _provenance

    monkeypatch.setattr(_provenance, "cpu_model", lambda: "Some CPU 9000")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    info = report.machine()
    assert info["cpu_model"] == "Some CPU 9000" and info["cpu_capability"] == "AVX512"
    assert report.describe_machine(info).startswith("Some CPU 9000, ")
    old = {"cpu_count": 2, "torch": "2.13.0+cpu", "torch_threads": 1, "device": "cpu"}
    assert report.describe_machine(old) == "2 CPU cores, torch 2.13.0+cpu, 1 torch thread(s), cpu"


@pytest.mark.parametrize(("items", "names", "message"), [
    (["a"], None, "--opt: expected NAME=VALUE, got 'a'"),
    (["=x"], None, "--opt: expected NAME=VALUE, got '=x'"),
    (["a="], None, "--opt: expected NAME=VALUE, got 'a='"),
    (["a=x", "a=y"], None, "--opt: the NAME 'a' is given twice"),
    (["c=x"], ("a", "b"), "--opt: unknown NAME 'c' in 'c=x'; known: \\['a', 'b'\\]"),
])
def test_bad_pairs_are_named(benchmark_module, items, names, message) -> None:
    report = benchmark_module("_report")
    with pytest.raises(ValueError, match=message):
        report.name_value_pairs(items, "--opt", names=names)


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("mppi_success", ["--extra-encoders", "td"], "--extra-encoders: expected NAME=PATH\\[@CAMERA\\], got 'td'"),
    ("mppi_success", ["--extra-encoders", "a=td-sim,a=vip-sim"], "--extra-encoders: the NAME 'a' is given twice"),
    ("mppi_ablations", ["--extra-encoders", "x=no/such/encoder.safetensors"], "encoder checkpoint not found: no/such/encoder.safetensors"),
    ("representation", ["--train-log", "run"], "--train-log: expected NAME=LOG_CSV, got 'run'"),
    ("representation", ["--train-log", "run=no/such/log.csv"], "--train-log: no such file 'no/such/log.csv'"),
    ("run_all", ["--area-args", "nope=--quick"], "--area-args: unknown NAME 'nope'"),
    ("run_all", ["--area-args", "shortcut=--keep", "--area-args", "shortcut=--quick"], "--area-args: the NAME 'shortcut' is given twice"),
])
def test_scripts_refuse_bad_pairs(benchmark_module, capsys, tmp_path, script, argv, message) -> None:
    module = benchmark_module(script)
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage-error exit status
        module.main([*argv, *(["--out", str(tmp_path / "out")] if script != "run_all" else [])])
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow  # over a second (~3 s): make test runs it, make test-fast skips it
def test_extra_encoder_text_column_only_with_a_text_tower(benchmark_module, capsys, tmp_path) -> None:
    """``<name> text`` is a column for an extra encoder with a text tower (td-sim), not for one without (vip-sim)."""
    module = benchmark_module("mppi_success")
    with pytest.raises(SystemExit, match="^2$"):
        module.main(["--extra-encoders", "a=td-sim,b=vip-sim", "--methods", "b text", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "--methods: unknown ['b text']" in err and "'a text'" in err and "'b image'" in err
    assert not list(tmp_path.iterdir())
