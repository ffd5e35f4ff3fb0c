"""The `vip-rl` dispatcher and the one device resolver."""
import pytest

from vip_rl.cli import main


def test_resolve_device() -> None:
    import torch

    from vip_rl.cli import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N, got 'gpu0'"):
        resolve_device("gpu0")


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
