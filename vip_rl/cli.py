"""The `vip-rl` command: one entry point, one subcommand per job.

Each subcommand lives in the module that owns the job and exposes ``cli(argv) -> int``;
this file only dispatches, importing the module lazily so that ``vip-rl --help`` is fast.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "collect": ("vip_rl.collect", "cli", "collect demos / play data from a vip_envs task into HDF5"),
    "pretrain": ("vip_rl.pretrain", "cli", "pretrain or fine-tune a VIP / LIV encoder on videos"),
    "reward-curve": ("vip_rl.diagnostics", "cli", "plot embedding distance / progress along a video"),
    "mppi": ("vip_rl.planning.cli", "cli", "run MPPI toward an image or language goal"),
    "train": ("vip_rl.policies.cli", "train_cli", "train a BC or RWR policy from demos"),
    "evaluate": ("vip_rl.policies.cli", "evaluate_cli", "evaluate a trained policy on a task"),
    "rl": ("vip_rl.rl", "cli", "train SB3 PPO/SAC on a task with the embedding reward"),
    "demo": ("vip_rl.demo", "cli", "the main job end to end, writing runs/demo/report.md"),
}


def resolve_device(device: str) -> "torch.device":
    """The one place ``"auto"`` is resolved: cuda when available, else cpu; other values go to ``torch.device``.

    Raises:
        ValueError: ``device`` is not auto, cpu, cuda or cuda:N (or another torch device string).
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from err


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: vip-rl <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run `vip-rl <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``vip-rl <command> ...`` to the owning module's ``cli``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vip-rl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
