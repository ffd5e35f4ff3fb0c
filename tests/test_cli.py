"""The `vip-rl` dispatcher, the one device resolver, and the checks every command runs before writing
(the error boundary itself is tested command by command in test_cli_errors.py)."""
import os
from pathlib import Path

import pytest

from vip_rl.cli import ArgumentParser, UsageError, check_output_dir, check_output_file, main


def test_resolve_device() -> None:
    import torch

    from vip_rl.cli import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N, got 'gpu0'"):
        resolve_device("gpu0")


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vip-rl: error: unknown command 'nope'") and err.count("\n") == 1


def test_help_lists_the_commands_and_the_debug_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "reward-curve" in text and "--debug" in text and "VIP_RL_DEBUG" in text


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="vip-rl x")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit, match="^2$"):
        parser.parse_args(["--n", "many"])
    assert capsys.readouterr().err == "vip-rl x: error: argument --n: invalid int value: 'many'\n"


def test_output_checks(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created
    assert check_output_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    with pytest.raises(UsageError, match=r"--out '.*afile' is a file, expected a folder"):
        check_output_dir(tmp_path / "afile")
    with pytest.raises(UsageError, match=r"lies under '.*afile', which is a file, not a folder"):
        check_output_dir(tmp_path / "afile" / "run")
    with pytest.raises(UsageError, match=r"--video '.*' is a folder, expected a file path"):
        check_output_file(tmp_path, flag="--video")
    with pytest.raises(UsageError, match=r"its folder '.*missing' does not exist"):
        check_output_file(tmp_path / "missing" / "d.h5", parents=False)


def test_output_checks_refuse_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: tell it what a user would be told
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == folder else real_access(path, mode, **kw))
        with pytest.raises(UsageError, match=r"--out '.*ro/run/deeper': the folder '.*ro' is not writable"):
            check_output_dir(folder / "run" / "deeper")
    finally:
        os.chmod(folder, 0o755)
