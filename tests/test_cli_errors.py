"""Issue #14: every bad input to the `vip-rl` command gets one clear line.

Each row of ``CASES`` runs one bad input through the real command (``vip_rl.cli.main``, the function
the ``vip-rl`` entry point calls) and checks the exit code, that stderr is exactly one line
``vip-rl <command>: error: ...`` with no traceback, and that nothing new appeared on disk: no output
folder, no ``encoder/``, no temporary file. A few cases run as subprocesses to prove the entry point
itself and the signals (SIGTERM, Ctrl-C, SIGKILL then a rerun).

Rows are tagged with what the issue found: ``traceback`` (printed a traceback), ``silent`` (succeeded
on bad input), ``half`` (left half-written output), ``rule`` (the goal-image rule, the ffmpeg noise).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vip_rl.cli import main, one_line

ROOT = Path(__file__).resolve().parents[1]
MIN_SIDE = 8  # vip_rl.goals.MIN_GOAL_SIDE


# ------------------------------------------------------------------------------------ inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny bad (and a few good) inputs, built once: videos, HDF5, images, an evil pickle, a file, a read-only folder."""
    import torch
    from PIL import Image

    from vip_rl.collect import collect
    from vip_rl.data import write_video

    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    write_video(folder / "ok.mp4", rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), fps=10)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + rng.bytes(2000))
    collect("OpenDrawer", episodes=2, max_steps=4, image_size=32, out=folder / "demos.h5", progress=False)  # no success
    data = (folder / "demos.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(data[: len(data) // 2])
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(folder / "png16.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "tiny.png")
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(folder / "grey.png")
    Image.fromarray(np.full((32, 32, 4), 90, np.uint8)).save(folder / "rgba.png")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "goal.png")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {folder / 'PWNED'}",))

    torch.save({"model": Evil()}, folder / "evil.pt")
    (folder / "afile").write_text("a file, not a folder")
    (folder / "readonly").mkdir()
    os.chmod(folder / "readonly", 0o555)
    yield folder
    os.chmod(folder / "readonly", 0o755)
    assert not (folder / "PWNED").exists(), "an evil pickle ran"


@pytest.fixture
def readonly(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the user cannot write to. Root writes anywhere, so there ``os.access`` is told the truth for users."""
    folder = inputs / "readonly"
    if os.access(folder, os.W_OK):
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == folder and mode & os.W_OK
                            else real_access(path, mode, **kw))
    return folder


def _tree(*folders: Path) -> set[str]:
    """Every path (hidden ones included) under ``folders``."""
    return {str(p) for folder in folders for p in folder.rglob("*")}


def visible_lines(text: str) -> list[str]:
    """The non-blank lines a terminal shows for ``text``: a carriage return (progress bars) rewrites its line."""
    return [line.split("\r")[-1].rstrip() for line in text.split("\n") if line.split("\r")[-1].strip()]


def check_one_line(err: str, command: str) -> str:
    lines = visible_lines(err)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith(f"vip-rl {command}: error: "), lines[0]
    assert "Traceback" not in err and "\x1b" not in err
    return lines[0]


# ------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # traceback | silent | half | rule
    argv: tuple[str, ...]  # {in} = the inputs folder, {out} = a fresh work folder, {ro} = a read-only one,
    # {cache} = an embedding cache outside both (a cache is not output)
    code: int
    match: str  # a substring of the one line
    slow: bool = False


def _mppi(*extra: str) -> tuple[str, ...]:
    return ("mppi", "--env", "vip_envs/OpenDrawer-v0", "--encoder", "random", "--episodes", "1", "--num-samples", "4",
            "--horizon", "2", "--max-steps", "1", "--no-video", "--device", "cpu", *extra)


def _train(*extra: str) -> tuple[str, ...]:
    return ("train", "bc", "--data", "{in}/demos.h5", "--encoder", "random", "--steps", "2", "--cache-dir", "{cache}", *extra)


def _pretrain(*extra: str) -> tuple[str, ...]:
    return ("pretrain", "--steps", "2", "--batch-size", "2", "--image-size", "32", "--no-progress", *extra)


CASES = [
    # -- tracebacks before (#14: 16 of 63) --
    Case("reward-curve-corrupt-mp4", "traceback", ("reward-curve", "{in}/corrupt.mp4", "--encoder", "random", "--out", "{out}/c.png"),
         2, "cannot read video"),
    Case("reward-curve-missing-mp4", "traceback", ("reward-curve", "{in}/missing.mp4", "--encoder", "random", "--out", "{out}/c.png"),
         2, "does not exist"),
    Case("reward-curve-truncated-h5", "traceback", ("reward-curve", "{in}/truncated.h5", "--encoder", "random", "--out", "{out}/c.png"),
         2, "corrupt or truncated"),
    Case("pretrain-corrupt-mp4", "traceback", _pretrain("--data", "{in}/corrupt.mp4", "--out", "{out}/run"), 2, "cannot read video"),
    Case("pretrain-missing-mp4", "traceback", _pretrain("--data", "{in}/missing.mp4", "--out", "{out}/run"), 2, "does not exist"),
    Case("pretrain-truncated-h5", "traceback", _pretrain("--data", "{in}/truncated.h5", "--out", "{out}/run"), 2, "corrupt or truncated"),
    Case("reward-curve-garbage-png-goal", "traceback", ("reward-curve", "{in}/ok.mp4", "--goal", "{in}/garbage.png", "--encoder", "random",
                                                       "--out", "{out}/c.png"), 2, "is unreadable"),
    Case("reward-curve-16bit-png-goal", "traceback", ("reward-curve", "{in}/ok.mp4", "--goal", "{in}/png16.png", "--encoder", "random",
                                                     "--out", "{out}/c.png"), 2, "must be an 8-bit grey, RGB or RGBA image, got uint16"),
    Case("mppi-16bit-png-goal", "traceback", _mppi("--goal", "{in}/png16.png", "--out", "{out}/m"), 2, "must be an 8-bit"),
    Case("train-garbage-png-goal", "traceback", _train("--goal", "{in}/garbage.png", "--out", "{out}/t"), 2, "is unreadable"),
    Case("train-out-readonly", "traceback", _train("--out", "{ro}/t"), 2, "is not writable"),
    Case("pretrain-out-readonly", "traceback", _pretrain("--data", "{in}/ok.mp4", "--out", "{ro}/run"), 2, "is not writable"),
    Case("mppi-out-readonly", "traceback", _mppi("--goal", "{in}/goal.png", "--out", "{ro}/m"), 2, "is not writable"),
    Case("reward-curve-out-readonly", "traceback", ("reward-curve", "{in}/ok.mp4", "--encoder", "random", "--out", "{ro}/c.png"),
         2, "is not writable"),
    Case("train-out-under-a-file", "traceback", _train("--out", "{in}/afile/t"), 2, "which is a file"),
    Case("pretrain-out-under-a-file", "traceback", _pretrain("--data", "{in}/ok.mp4", "--out", "{in}/afile/run"), 2, "which is a file"),
    Case("mppi-out-under-a-file", "traceback", _mppi("--goal", "{in}/goal.png", "--out", "{in}/afile/m"), 2, "which is a file"),
    Case("reward-curve-out-under-a-file", "traceback", ("reward-curve", "{in}/ok.mp4", "--encoder", "random", "--out", "{in}/afile/c.png"),
         2, "which is a file"),
    Case("rl-out-under-a-file", "traceback", ("rl", "--encoder", "random", "--total-steps", "8", "--out", "{in}/afile/r"), 2, "which is a file"),
    Case("collect-preview-under-a-file", "traceback", ("collect", "OpenDrawer", "--episodes", "1", "--out", "{out}/d.h5",
                                                      "--preview", "{in}/afile/p"), 2, "which is a file"),
    Case("train-unknown-env", "traceback", _train("--env", "NoSuchEnv-v9", "--out", "{out}/t"), 2, "unknown env 'NoSuchEnv-v9'"),
    Case("reward-curve-evil-encoder", "traceback", ("reward-curve", "{in}/ok.mp4", "--encoder", "{in}/evil.pt", "--out", "{out}/c.png"),
         2, "refused to load"),
    Case("pretrain-evil-init-from", "traceback", _pretrain("--data", "{in}/ok.mp4", "--init-from", "{in}/evil.pt", "--out", "{out}/run"),
         2, "refused to load"),
    Case("pretrain-evil-resume", "traceback", _pretrain("--data", "{in}/ok.mp4", "--out", "{out}/evil_run"), 2, "refused to load"),
    Case("mppi-evil-encoder", "traceback", _mppi("--goal", "{in}/goal.png", "--encoder", "{in}/evil.pt", "--out", "{out}/m"),
         2, "refused to load"),
    Case("train-evil-encoder", "traceback", _train("--encoder", "{in}/evil.pt", "--out", "{out}/t"), 2, "refused to load"),
    Case("rl-evil-encoder", "traceback", ("rl", "--encoder", "{in}/evil.pt", "--total-steps", "8", "--out", "{out}/r"),
         2, "refused to load"),
    Case("argparse-bad-int", "traceback", _mppi("--goal", "{in}/goal.png", "--episodes", "many", "--out", "{out}/m"),
         2, "argument --episodes: invalid int value: 'many'"),
    # -- silent success before --
    Case("reward-curve-missing-goal-path", "silent", ("reward-curve", "{in}/ok.mp4", "--goal", "{in}/missing/goal.png", "--encoder", "random",
                                                     "--out", "{out}/c.png"), 2, "goal.png' does not exist"),
    Case("mppi-negative-max-steps", "silent", _mppi("--goal", "{in}/goal.png", "--max-steps", "-1", "--out", "{out}/m"),
         2, "--max-steps must be a positive int, got -1"),
    Case("reward-curve-1x1-goal", "silent", ("reward-curve", "{in}/ok.mp4", "--goal", "{in}/tiny.png", "--encoder", "random",
                                            "--out", "{out}/c.png"), 2, f"at least {MIN_SIDE}x{MIN_SIDE} pixels"),
    Case("mppi-1x1-goal", "silent", _mppi("--goal", "{in}/tiny.png", "--out", "{out}/m"), 2, f"at least {MIN_SIDE}x{MIN_SIDE} pixels"),
    Case("train-rwr-1x1-goal", "silent", ("train", "rwr", *_train("--goal", "{in}/tiny.png", "--out", "{out}/t")[2:]),
         2, f"at least {MIN_SIDE}x{MIN_SIDE} pixels"),
    # -- half-written output before --
    Case("train-truncated-h5-no-encoder-dir", "half", ("train", "bc", "--data", "{in}/truncated.h5", "--encoder", "random",
                                                      "--out", "{out}/t"), 2, "corrupt or truncated"),
    Case("train-data-refused-no-encoder-dir", "half", _train("--out", "{out}/t"), 2, "no episode has attrs['success'] = True"),
    Case("mppi-bad-goal-no-out", "half", _mppi("--goal", "{in}/garbage.png", "--out", "{out}/m"), 2, "is unreadable"),
    Case("mppi-bad-encoder-no-out", "half", _mppi("--goal", "{in}/goal.png", "--encoder", "no-such-encoder", "--out", "{out}/m"),
         2, "unknown encoder name 'no-such-encoder'"),
    Case("mppi-expert-goal-without-expert-no-out", "half",
         ("mppi", "--env", "Pusher-v5", "--goal", "expert", "--encoder", "random", "--episodes", "1", "--out", "{out}/m"),
         2, "vip_envs"),
    # -- the goal rule and the reader's noise --
    Case("mppi-corrupt-subgoals-no-ffmpeg-banner", "rule", _mppi("--subgoals", "{in}/corrupt.mp4", "--out", "{out}/m"),
         2, "cannot read video"),
]


def _format(argv: tuple[str, ...], inputs: Path, out: Path, readonly: Path) -> list[str]:
    return [a.replace("{in}", str(inputs)).replace("{out}", str(out)).replace("{ro}", str(readonly))
            .replace("{cache}", str(out.parent / "cache")) for a in argv]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CASES])
def test_bad_input_gets_one_line_and_leaves_nothing(case: Case, inputs: Path, readonly: Path, tmp_path: Path,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "work"
    out.mkdir()
    if case.id == "pretrain-evil-resume":  # a run folder holding an evil checkpoint.pt to resume from
        (out / "evil_run").mkdir()
        (out / "evil_run" / "checkpoint.pt").write_bytes((inputs / "evil.pt").read_bytes())
    before = _tree(out, inputs)
    code = main(_format(case.argv, inputs, out, readonly))
    captured = capfd.readouterr()
    line = check_one_line(captured.err, case.argv[0])
    assert code == case.code, line
    assert case.match in line, line
    assert _tree(out, inputs) == before, "the failed command left files behind"
    if case.kind == "rule":
        assert "ffmpeg version" not in captured.err + captured.out and "configuration:" not in line


# ------------------------------------------------------------------------------------ rules and the boundary


@pytest.mark.parametrize("name", ["grey.png", "rgba.png"])
def test_grey_and_rgba_goal_files_follow_one_rule(name: str, inputs: Path, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    from vip_rl.goals import goal_from_arg

    assert goal_from_arg(str(inputs / name)).shape == (32, 32, 3)  # what reward-curve, mppi and train all call
    np.testing.assert_array_equal(goal_from_arg(str(inputs / name)), goal_from_arg(str(inputs / "goal.png")))
    if name != "grey.png":
        return  # one command run proves the path
    code = main(["reward-curve", str(inputs / "ok.mp4"), "--goal", str(inputs / name), "--encoder", "random",
                 "--out", str(tmp_path / "c.png")])
    assert code == 0 and capfd.readouterr().out.startswith("VOC ") and (tmp_path / "c.png").is_file()


def test_tiny_goal_arrays_are_refused_where_they_are_embedded() -> None:
    from vip_rl.goals import embed_goal, resolve_encoder

    encoder = resolve_encoder("random", seed=0)  # what GoalReward, the planning costs and the datasets embed through
    with pytest.raises(ValueError, match=rf"goal image must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got shape \[1, 1, 1, 3\]"):
        embed_goal(encoder, np.zeros((1, 1, 3), np.uint8))
    assert embed_goal(encoder, np.zeros((MIN_SIDE, MIN_SIDE, 3), np.uint8)).shape == (1, encoder.embed_dim)


def test_mppi_results_are_valid_json(inputs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    def refuse(token: str) -> None:
        raise AssertionError(f"results.json holds the bare token {token}")

    code = main(list(_mppi("--goal", str(inputs / "goal.png"), "--out", str(tmp_path / "m"))))
    assert code == 0, capfd.readouterr().err
    results = json.loads((tmp_path / "m" / "results.json").read_text(), parse_constant=refuse)
    assert results["episodes"][0]["steps"] == 1


def test_train_exports_the_encoder_with_the_users_umask(inputs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o022)
    try:
        code = main(_format(_train("--goal", "final", "--out", "{out}/t"), inputs, tmp_path, tmp_path))
    finally:
        os.umask(old)
    assert code == 0, capfd.readouterr().err
    encoder = tmp_path / "t" / "encoder"
    assert (encoder.stat().st_mode & 0o777, (encoder / "model.safetensors").stat().st_mode & 0o777) == (0o755, 0o644)


def test_json_writer_writes_null_for_nan(tmp_path: Path) -> None:
    from vip_rl._io import atomic_write_json

    path = atomic_write_json(tmp_path / "r.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.5], "c": 3}


def test_debug_shows_the_traceback(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capfd: pytest.CaptureFixture[str]) -> None:
    argv = ["reward-curve", str(inputs / "ok.mp4"), "--goal", str(inputs / "tiny.png"), "--encoder", "random",
            "--out", str(tmp_path / "c.png")]
    for args, env in (([*argv, "--debug"], None), (["--debug", *argv], None), (argv, "1")):
        if env is None:
            monkeypatch.delenv("VIP_RL_DEBUG", raising=False)
        else:
            monkeypatch.setenv("VIP_RL_DEBUG", env)
        assert main(args) == 2
        err = capfd.readouterr().err
        assert "Traceback" in err and visible_lines(err)[-1].startswith("vip-rl reward-curve: error: --goal image")


def _planning_error() -> Exception:
    from vip_rl.planning.mppi import PlanningError

    return PlanningError("every sampled sequence has a non-finite cost: check the cost EmbeddingGoalCost")


@pytest.mark.parametrize("error, code, line", [
    (lambda: RuntimeError("\x1b[31mboom\x1b[0m\nsecond line"), 1,
     "RuntimeError: boom second line (run with --debug for the traceback)"),  # unknown: a hint, ANSI and newlines gone
    (lambda: PermissionError(13, "Permission denied", "/x/out"), 1, "Permission denied: '/x/out'"),  # runtime
    (lambda: ValueError("bad value"), 2, "bad value"),  # the library's bad-input error
    (_planning_error, 1, "every sampled sequence has a non-finite cost: check the cost EmbeddingGoalCost"),
])
def test_every_error_is_one_line_with_its_exit_code(error, code: int, line: str, monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    import vip_rl.diagnostics

    def fails(argv: list[str]) -> int:
        raise error()

    monkeypatch.setitem(vip_rl.cli.COMMANDS, "reward-curve", ("vip_rl.diagnostics", "fails", ""))
    monkeypatch.setattr(vip_rl.diagnostics, "fails", fails, raising=False)
    monkeypatch.delenv("VIP_RL_DEBUG", raising=False)
    assert main(["reward-curve"]) == code
    assert check_one_line(capfd.readouterr().err, "reward-curve") == f"vip-rl reward-curve: error: {line}"


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    import vip_rl.diagnostics

    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(vip_rl.cli.COMMANDS, "reward-curve", ("vip_rl.diagnostics", "interrupted", ""))
    monkeypatch.setattr(vip_rl.diagnostics, "interrupted", interrupted, raising=False)
    assert main(["reward-curve"]) == 130
    assert capfd.readouterr().err == "vip-rl reward-curve: interrupted; temporary files removed\n"


@pytest.mark.parametrize("text, line", [("a\x1b[1;31mb\x1b[0m\n\n  c\td", "ab c d"), ("", ""), ("x" * 3000, "x" * 1997 + "...")])
def test_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


# ------------------------------------------------------------------------------------ the real entry point and signals


def _vip_rl(*argv: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VIP_RL_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "vip_rl.cli", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_entry_point_prints_one_line_without_the_ffmpeg_banner(inputs: Path, tmp_path: Path) -> None:
    process = _vip_rl("reward-curve", str(inputs / "corrupt.mp4"), "--encoder", "random", "--out", "c.png", cwd=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    line = check_one_line(err, "reward-curve")
    assert "cannot read video" in line and "ffmpeg version" not in err and not out
    assert list(tmp_path.iterdir()) == []


def _collect_until_writing(folder: Path) -> subprocess.Popen:
    """A long collect (with previews) into ``folder``, returned once its temporary HDF5 file exists."""
    # SIGINT back to its default in the child: a test run started as a background job of a non-interactive shell
    # (`make test &`) passes on SIGINT ignored, and an ignored Ctrl-C rightly does not stop a collect
    process = _vip_rl("collect", "OpenDrawer", "--episodes", "500", "--size", "32", "--out", "d.h5", "--preview", "previews",
                      "--no-progress", cwd=folder, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(folder.glob(".d.h5.*.tmp.h5")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.05)
    time.sleep(0.3)  # a few episodes in
    return process


@pytest.mark.parametrize("signum, code, word", [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),
    pytest.param(signal.SIGINT, 130, "interrupted", marks=pytest.mark.slow),  # Ctrl-C: the same path as SIGTERM
])
@pytest.mark.slow
def test_signals_end_collect_cleanly(signum: int, code: int, word: str, tmp_path: Path) -> None:
    process = _collect_until_writing(tmp_path)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert err == f"vip-rl collect: {word}; temporary files removed\n"
    assert list(tmp_path.iterdir()) == []  # no dataset, no temp file, no preview of an episode in no dataset


@pytest.mark.slow  # two collect runs
def test_a_killed_collect_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    process = _collect_until_writing(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp.h5")], "SIGKILL should leave the temp file"
    assert not (tmp_path / "previews").exists()  # previews are written only once the dataset is committed
    rerun = _vip_rl("collect", "OpenDrawer", "--episodes", "1", "--max-steps", "2", "--size", "32", "--out", "d.h5",
                    "--no-progress", cwd=tmp_path)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_stale_temp_files_only(tmp_path: Path) -> None:
    """A temp file some live writer holds is kept; a stale one is removed."""
    import h5py

    from vip_rl.collect import remove_stale_temp_files

    live, stale = tmp_path / ".d.h5.aaaa.tmp.h5", tmp_path / ".d.h5.bbbb.tmp.h5"
    stale.write_bytes(b"half an HDF5 file")
    (tmp_path / ".other.h5.cccc.tmp.h5").write_bytes(b"another target's")
    with h5py.File(live, "w"):
        assert remove_stale_temp_files(tmp_path / "d.h5") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.h5.aaaa.tmp.h5", ".other.h5.cccc.tmp.h5"]


def test_an_interrupt_python_drops_is_sent_again() -> None:
    """An exception raised in ``__del__``, a weakref callback or C code that clears errors is dropped; a Ctrl-C
    or SIGTERM landing there would be lost (a flaky SIGTERM test found one in a WeakValueDictionary callback).
    Unless the boundary acknowledges the interrupt, the signal is sent again; during clean-up it is ignored."""
    from vip_rl.cli import Terminated, _Interrupts

    interrupts = _Interrupts()
    interrupts.RESEND_AFTER_S = 0.05
    resent: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: resent.append(signum))
    try:
        with pytest.raises(Terminated, match="^$"):
            interrupts.handler(signal.SIGTERM, None)  # the raise a __del__ would drop: nobody acknowledges
        deadline = time.monotonic() + 10
        while not resent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert resent == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt, match="^$"):
            interrupts.handler(signal.SIGINT, None)
        interrupts.acknowledge()  # the boundary caught it: nothing is sent again
        time.sleep(0.2)
        assert resent == [signal.SIGTERM]
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # clean-up of an interrupt in progress: a second signal is ignored
            assert interrupts.handler(signal.SIGTERM, None) is None
    finally:
        interrupts.acknowledge()
        signal.signal(signal.SIGTERM, old)
