"""The `vip-rl` command: one entry point, one subcommand per job, and one error boundary.

Each subcommand lives in the module that owns the job and exposes ``cli(argv) -> int``;
this file only dispatches, importing the module lazily so that ``vip-rl --help`` is fast.

Errors (README "Errors"): every failure ends the command with one line on stderr,
``vip-rl <command>: error: <what went wrong>``, and an exit code:

====  ==========================================================================================
0     done
1     a runtime failure: permission or disk errors while running, anything unexpected (its line
      ends with "run with --debug for the traceback")
2     bad input, refused before any work: flags, missing or corrupt files (video, HDF5, image),
      refused checkpoints, unknown env ids, an output folder that cannot be written
130   interrupted (Ctrl-C); 143: terminated (SIGTERM). Temporary files are removed on the way out.
====  ==========================================================================================

``--debug`` (anywhere on the command line) or ``VIP_RL_DEBUG=1`` prints the traceback first.
"""
from __future__ import annotations

import argparse
import contextvars
import functools
import importlib
import os
import pickle
import re
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

if TYPE_CHECKING:
    import torch

__all__ = [
    "COMMANDS", "ArgumentParser", "UsageError", "Terminated", "command", "main", "resolve_device",
    "check_output_dir", "check_output_file", "one_line",
]

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

DEBUG_FLAG = "--debug"
DEBUG_ENV = "VIP_RL_DEBUG"
EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


_DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("vip_rl_cli_debug", default=False)


class UsageError(Exception):
    """Bad input found before any work starts (exit code 2): a flag, a file, a checkpoint, an env id."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so ``finally`` blocks and atomic writes clean up as on Ctrl-C."""


_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_MAX_LINE = 2000


def one_line(text: Any) -> str:
    """``text`` as one printable line: ANSI escape codes dropped, newlines and runs of blanks made one space."""
    text = _ANSI.sub("", str(text))
    text = "".join(ch if ch.isprintable() or ch in "\n\t\r" else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 3] + "..."


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line: ``<prog>: error: <message>``, exit 2
    (argparse's own prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _debug_requested(argv: list[str]) -> tuple[list[str], bool]:
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    if DEBUG_FLAG in argv:
        argv = [a for a in argv if a != DEBUG_FLAG]
        debug = True
    return argv, debug


def _is_known(err: BaseException) -> bool:
    if isinstance(err, (UsageError, ValueError, TypeError, OSError, pickle.UnpicklingError)):
        return True
    if type(err).__module__.startswith(("vip_rl.", "vip_envs")):  # the library's own errors (PlanningError, ...)
        return True
    # gymnasium's errors (unknown env ids, bad spaces) without importing gymnasium here
    return any(cls.__module__.startswith("gymnasium.error") for cls in type(err).__mro__)


def _exit_code(err: BaseException) -> int:
    if isinstance(err, (UsageError, ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                        pickle.UnpicklingError)):
        return EXIT_USAGE
    if any(cls.__module__.startswith("gymnasium.error") for cls in type(err).__mro__):
        return EXIT_USAGE
    return EXIT_RUNTIME


def _message(err: BaseException) -> str:
    text = one_line(err)
    if isinstance(err, OSError) and isinstance(err.filename, (str, bytes, os.PathLike)) and err.strerror:
        text = one_line(f"{err.strerror}: {os.fsdecode(err.filename)!r}")  # "[Errno 13] ..." -> plain words
    if _is_known(err):
        return text or type(err).__name__
    return f"{type(err).__name__}{': ' + text if text else ''} (run with {DEBUG_FLAG} for the traceback)"


def _clear_progress_bars() -> None:
    """Erase the tqdm bars a failed command left open, so that its error line starts a clean line."""
    tqdm_std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tqdm_std, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.leave = False
            bar.close()
        except Exception:  # a half-built bar: nothing to erase
            pass


def _report_interrupt(prog: str, err: BaseException, debug: bool, *, terminated: bool) -> int:
    if _ACTIVE_INTERRUPTS is not None:
        _ACTIVE_INTERRUPTS.acknowledge()  # caught: the watchdog need not send it again
    _clear_progress_bars()
    if debug:
        traceback.print_exception(err)
    print(f"{prog}: {'terminated (SIGTERM)' if terminated else 'interrupted'}; temporary files removed", file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def command(name: str) -> Callable[[Callable[[list[str]], int]], Callable[[Sequence[str] | None], int]]:
    """Decorate a subcommand's ``cli(argv) -> int`` with the error boundary (module docstring).

    The wrapped function never raises for a failure: it prints one line ``vip-rl <name>: error: ...``
    to stderr and returns the exit code. ``SystemExit`` (``--help``, argparse usage errors) passes through.
    """
    prog = f"vip-rl {name}"

    def decorate(func: Callable[[list[str]], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(func)
        def wrapper(argv: Sequence[str] | None = None) -> int:
            args, debug = _debug_requested(list(sys.argv[1:] if argv is None else argv))
            debug = debug or _DEBUG.get()
            token = _DEBUG.set(debug)  # a boundary nested inside (the module's own) sees it too
            try:
                return int(func(args) or 0)
            except Exception as err:  # the boundary: every failure becomes one line
                interrupts = _ACTIVE_INTERRUPTS
                if interrupts is not None and interrupts.interrupted:
                    # a library turned the interrupt into another error (seen once under Ctrl-C): still an interrupt
                    terminated = interrupts.signum == getattr(signal, "SIGTERM", None)
                    return _report_interrupt(prog, err, debug, terminated=terminated)
                _clear_progress_bars()
                if debug:
                    traceback.print_exc()
                print(f"{prog}: error: {_message(err)}", file=sys.stderr)
                return _exit_code(err)
            except KeyboardInterrupt as err:
                return _report_interrupt(prog, err, debug, terminated=isinstance(err, Terminated))
            finally:
                _DEBUG.reset(token)

        wrapper.__vip_rl_boundary__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


# ------------------------------------------------------------------------------------------
# checks every command runs before it writes anything


def check_output_dir(path: str | os.PathLike[str], *, flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be created or written, before any work starts.

    The folder itself is not created: nothing is written until the inputs are known good.

    Raises:
        UsageError: ``path`` is a file, lies under a file, or its nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file, expected a folder")
    _check_writable_ancestor(path if path.exists() else path.parent, path, flag)
    return path


def check_output_file(path: str | os.PathLike[str], *, flag: str = "--out", parents: bool = True) -> Path:
    """Refuse an output file whose folder cannot be created or written (see :func:`check_output_dir`).

    Raises:
        UsageError: ``path`` is a folder, its folder lies under a file or is not writable, or
            (``parents=False``) its folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a folder, expected a file path")
    if not parents and not path.parent.is_dir():
        if path.parent.exists():
            raise UsageError(f"{flag} {str(path)!r} lies under {str(path.parent)!r}, which is a file, not a folder")
        raise UsageError(f"{flag} {str(path)!r}: its folder {str(path.parent)!r} does not exist")
    _check_writable_ancestor(path.parent, path, flag)
    return path


def _check_writable_ancestor(folder: Path, target: Path, flag: str) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:  # the nearest folder that exists
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {str(target)!r} lies under {str(probe)!r}, which is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {str(target)!r}: the folder {str(probe)!r} is not writable")
    import tempfile

    try:  # os.access trusts the mode bits; a read-only mount says no only when asked to write
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {str(target)!r}: the folder {str(probe)!r} is not writable ({err.strerror})") from err


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
    lines = ["usage: vip-rl [--debug] <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run `vip-rl <command> --help` for a command's options.",
              f"Errors are one line; {DEBUG_FLAG} (or {DEBUG_ENV}=1) shows the traceback."]
    return "\n".join(lines)


class _Interrupts:
    """Ctrl-C and SIGTERM while a command runs: raise in the main thread, and make sure the raise is not lost.

    Python runs a signal handler between two bytecodes of the main thread, wherever that is. An exception
    raised inside a ``__del__``, a weakref callback or Python code called from C that clears errors is
    dropped there, and the command would go on as if never interrupted (a stress run of ``collect`` lost
    about one interrupt in ten). So each raise arms a watchdog: unless the error boundary acknowledges the
    interrupt within half a second, the signal is sent again. A signal that arrives while an interrupt is
    already being handled (``finally`` blocks removing temporary files) is ignored, so clean-up finishes.
    """

    RESEND_AFTER_S = 0.5

    def __init__(self) -> None:
        self._acknowledged = threading.Event()
        self._timer: threading.Timer | None = None
        self.interrupted = False
        self.signum: int | None = None

    def handler(self, signum: int, frame: Any) -> None:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return  # an interrupt is already propagating through clean-up code: let it finish
        self.interrupted = True
        self.signum = signum
        self._acknowledged.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.RESEND_AFTER_S, self._resend, (signum,))
        self._timer.daemon = True
        self._timer.start()
        raise Terminated() if signum == getattr(signal, "SIGTERM", None) else KeyboardInterrupt()

    def _resend(self, signum: int) -> None:
        if not self._acknowledged.is_set():
            os.kill(os.getpid(), signum)

    def acknowledge(self) -> None:
        self._acknowledged.set()
        if self._timer is not None:
            self._timer.cancel()


_ACTIVE_INTERRUPTS: _Interrupts | None = None


def _quiet_interrupts(previous: Callable[[Any], None], interrupts: _Interrupts) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that does not print the interrupts Python drops in callbacks (the watchdog
    of :class:`_Interrupts` delivers them again), nor, once interrupted, the complaints of objects the
    interrupt cut short in their ``__init__`` (MuJoCo's ``GLContext.__del__``); the rest goes to ``previous``."""

    def hook(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) or interrupts.interrupted):
            previous(unraisable)

    return hook


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``vip-rl [--debug] <command> ...`` to the owning module's ``cli`` inside the error boundary.

    In the main thread SIGTERM is turned into :class:`Terminated` (a ``KeyboardInterrupt``) while the
    command runs, so temporary files are removed as on Ctrl-C; an interrupt Python drops (in a ``__del__``,
    a weakref callback) is delivered again (:class:`_Interrupts`).
    """
    is_entry_point = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == DEBUG_FLAG:
        argv = argv[1:] + [DEBUG_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vip-rl: error: unknown command {name!r}; expected one of {', '.join(COMMANDS)} (see vip-rl --help)",
              file=sys.stderr)
        return EXIT_USAGE
    module_name, func_name, _ = COMMANDS[name]

    def run(args: list[str]) -> int:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)

    global _ACTIVE_INTERRUPTS
    previous_handlers: dict[int, Any] = {}
    previous_hook = sys.unraisablehook
    installed = threading.current_thread() is threading.main_thread() and _ACTIVE_INTERRUPTS is None
    if installed:
        _ACTIVE_INTERRUPTS = _Interrupts()
        if hasattr(signal, "SIGTERM"):
            previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _ACTIVE_INTERRUPTS.handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored SIGINT (nohup, &) stays ignored
            previous_handlers[signal.SIGINT] = signal.signal(signal.SIGINT, _ACTIVE_INTERRUPTS.handler)
        sys.unraisablehook = _quiet_interrupts(previous_hook, _ACTIVE_INTERRUPTS)
    code = EXIT_RUNTIME
    try:
        code = command(name)(run)(rest)
        return code
    except SystemExit as exit_:  # --help, argparse usage errors (already printed as one line)
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_USAGE)
        return code
    finally:
        if installed and _ACTIVE_INTERRUPTS is not None:
            _ACTIVE_INTERRUPTS.acknowledge()
            _ACTIVE_INTERRUPTS = None
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            sys.unraisablehook = previous_hook
            if is_entry_point and code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                # the process ends now; objects an interrupt cut short in their __init__ may still complain
                # from __del__ at shutdown (MuJoCo's GLContext does): the one line stays the last word
                sys.unraisablehook = lambda unraisable: None


if __name__ == "__main__":
    # `python -m vip_rl.cli`: run the imported module's main, so that this file's classes and the debug
    # flag are the ones the command modules import (not copies living in __main__)
    from vip_rl.cli import main as _main

    sys.exit(_main())
