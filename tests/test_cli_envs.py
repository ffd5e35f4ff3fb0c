"""Issue #13 (items 4, 5): the command line takes any env, its kwargs, any goal form, and decomposed subgoals.

Each bad input runs through the real command (``vip_rl.cli.main``) and must end in one line
``vip-rl <command>: error: ...`` with exit code 2 and nothing written; the good ones run a tiny MPPI
episode on gymnasium's ``Pusher-v5`` (and, marked slow, on Meta-World and a decomposed suite demo).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vip_rl.cli import main

SUITE_IDS = "vip_envs/OpenDrawer-v0, vip_envs/CloseDrawer-v0"  # the start of the list of envs with an expert


def one_error_line(err: str, command: str = "mppi") -> str:
    lines = [line.split("\r")[-1].rstrip() for line in err.split("\n") if line.split("\r")[-1].strip()]
    lines = [line for line in lines if "WARN" not in line and "warn(" not in line]  # gymnasium's own warnings
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith(f"vip-rl {command}: error: ") and "Traceback" not in err, lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    from vip_rl.data import write_video

    folder = tmp_path_factory.mktemp("goals")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "goal.png")
    rng = np.random.default_rng(0)
    write_video(folder / "demo.mp4", rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), fps=10)
    np.save(folder / "goal.npy", np.full((32, 32, 3), 90, np.uint8))
    (folder / "frames").mkdir()
    return folder


def _mppi(env: str, *extra: str) -> list[str]:
    return ["mppi", "--env", env, "--encoder", "random", "--episodes", "1", "--num-samples", "4", "--horizon", "2",
            "--max-steps", "2", "--no-video", "--device", "cpu", *extra]


BAD = [
    # (id, argv after the common flags, a substring of the one line)
    ("unknown-namespace-hint", _mppi("Fake-NS/Foo-v0", "--goal", "{f}/goal.png"),
     "unknown env 'Fake-NS/Foo-v0' (Namespace Fake-NS not found. Have you installed the proper package for Fake-NS?); "
     "Fake-NS/... ids need `import fake_ns_pkg` (not installed: pip install fake-ns-pkg): use 'fake_ns_pkg:Fake-NS/Foo-v0'"),
    ("unknown-namespace", _mppi("Nobody/Foo-v0", "--goal", "{f}/goal.png"),
     "no package registered the namespace 'Nobody': name the module that does, '<module>:Nobody/Foo-v0'"),
    ("unknown-name", _mppi("NoSuchEnv-v9", "--goal", "{f}/goal.png"),
     "unknown env 'NoSuchEnv-v9' (Environment `NoSuchEnv` doesn't exist.); if a package registers it"),
    ("unknown-suite-task", _mppi("vip_envs/Nope-v0", "--goal", "{f}/goal.png"), "suite ids: vip_envs/OpenDrawer-v0"),
    ("missing-module", _mppi("nosuchmod:Foo-v0", "--goal", "{f}/goal.png"),
     "env 'nosuchmod:Foo-v0': cannot import module 'nosuchmod' (No module named 'nosuchmod')"),
    ("module-without-the-id", _mppi("vip_envs:Foo-v0", "--goal", "{f}/goal.png"),
     "module 'vip_envs' was imported but does not register 'Foo-v0'"),
    ("two-colons", _mppi("a:b:c", "--goal", "{f}/goal.png"), "env id 'a:b:c' must be 'Id' or 'module:Id'"),
    ("discrete-actions", _mppi("CartPole-v1", "--goal", "{f}/goal.png"),
     "env 'CartPole-v1' must have a Box action space (MPPI samples continuous actions), got Discrete(2)"),
    ("not-mujoco", _mppi("Pendulum-v1", "--goal", "{f}/goal.png"), "MujocoDynamics needs a MuJoCo env"),
    ("kwargs-not-json", _mppi("Pusher-v5", "--goal", "{f}/goal.png", "--env-kwargs", "{bad"),
     "--env-kwargs must be a JSON object such as '{\"camera_name\": \"corner\"}', got '{bad' (Expecting property name"),
    ("kwargs-not-an-object", _mppi("Pusher-v5", "--goal", "{f}/goal.png", "--env-kwargs", "[1, 2]"),
     "--env-kwargs must be a JSON object such as '{\"camera_name\": \"corner\"}', got an array: '[1, 2]'"),
    ("kwargs-render-mode", _mppi("Pusher-v5", "--goal", "{f}/goal.png", "--env-kwargs", '{"render_mode": "human"}'),
     "--env-kwargs must not set 'render_mode' (the command sets it)"),
    ("kwargs-refused", _mppi("Pusher-v5", "--goal", "{f}/goal.png", "--env-kwargs", '{"bogus": 1}'),
     "--env-kwargs {\"bogus\": 1}: env 'Pusher-v5' refused the kwargs {'bogus': 1}: MujocoEnv.__init__() got an "
     "unexpected keyword argument 'bogus'"),
    ("goal-expert-without-expert", _mppi("Pusher-v5", "--goal", "expert"),
     f"--goal expert: env 'Pusher-v5' has no scripted expert (envs with one: {SUITE_IDS}"),
    ("subgoals-expert-without-expert", _mppi("Pusher-v5", "--subgoals", "expert"),
     "--subgoals expert: env 'Pusher-v5' has no scripted expert (envs with one: vip_envs/OpenDrawer-v0"),
    ("goal-folder", _mppi("Pusher-v5", "--goal", "{f}/frames"), "--goal '{f}/frames' is a folder; expected a goal file"),
    ("goal-path-like-missing", _mppi("Pusher-v5", "--goal", "{f}/nothing/here"), "--goal file '{f}/nothing/here' does not exist"),
    ("goal-other-suffix", _mppi("Pusher-v5", "--goal", "{f}/goal.tiff"), "--goal file '{f}/goal.tiff' does not exist"),
    ("subgoals-image", _mppi("Pusher-v5", "--subgoals", "{f}/goal.png"), "--subgoals demo: unsupported video path"),
    ("decompose-without-subgoals", _mppi("Pusher-v5", "--goal", "{f}/goal.png", "--decompose"),
     "--decompose needs --subgoals (the demo to split into subgoals)"),
    ("decompose-option-without-decompose", _mppi("Pusher-v5", "--subgoals", "{f}/demo.mp4", "--decompose-smooth", "2"),
     "--decompose-smooth needs --decompose"),
    ("decompose-bad-interval", _mppi("Pusher-v5", "--subgoals", "{f}/demo.mp4", "--decompose", "--decompose-min-interval", "0"),
     "--decompose-min-interval must be a positive int, got 0"),
    ("train-kwargs-without-env", ["train", "bc", "--data", "{f}/missing.h5", "--encoder", "random", "--env-kwargs", "{}"],
     "--env-kwargs needs --env"),
    ("train-missing-module", ["train", "bc", "--data", "{f}/missing.h5", "--encoder", "random", "--env", "nosuchmod:Foo-v0"],
     "cannot import module 'nosuchmod'"),
    ("train-kwargs-refused", ["train", "bc", "--data", "{f}/missing.h5", "--encoder", "random", "--env", "Pusher-v5",
                              "--env-kwargs", '{"bogus": 1}'], "env 'Pusher-v5' refused the kwargs {'bogus': 1}"),
    ("evaluate-kwargs-not-an-object", ["evaluate", "{f}/no_policy", "--env", "Pusher-v5", "--env-kwargs", "[1]"],
     "--env-kwargs must be a JSON object such as '{\"camera_name\": \"corner\"}', got an array: '[1]'"),
]


@pytest.mark.parametrize("argv, match", [pytest.param(argv, match, id=id_) for id_, argv, match in BAD])
def test_bad_env_goal_or_flag_is_one_usage_line(argv: list[str], match: str, files: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from vip_rl.planning import episode

    monkeypatch.setitem(episode.NAMESPACE_PACKAGES, "Fake-NS", "fake_ns_pkg")
    out = tmp_path / "out"
    command = [a.replace("{f}", str(files)) for a in argv] + ["--out", str(out)]
    code = main(command)
    line = one_error_line(capfd.readouterr().err, argv[0])
    assert code == 2, line
    assert match.replace("{f}", str(files)) in line, line
    assert not out.exists(), "a refused command wrote its output folder"


def test_an_unimported_meta_world_id_names_the_module_to_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    import gymnasium as gym

    for key in [k for k in gym.registry if k.startswith("Meta-World/")]:  # as if metaworld were not imported yet
        monkeypatch.delitem(gym.registry, key)
    code = main(_mppi("Meta-World/MT1", "--goal", "a red cup", "--out", str(tmp_path / "m")))
    line = one_error_line(capfd.readouterr().err)
    assert code == 2 and "Meta-World/... ids need `import metaworld`" in line and "'metaworld:Meta-World/MT1'" in line, line


@pytest.mark.slow
@pytest.mark.parametrize("goal", ["goal.png", "demo.mp4", "goal.npy", "push the puck"])
def test_mppi_runs_on_pusher_with_any_goal_form(goal: str, files: Path, tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """vip-rl mppi --env Pusher-v5 --goal <image | video: its last frame | .npy | text> --encoder random ..."""
    goal_arg = str(files / goal) if "." in goal else goal
    code = main(_mppi("Pusher-v5", "--goal", goal_arg, "--out", str(tmp_path / "m")))
    assert code == 0, capfd.readouterr().err
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["env"] == "Pusher-v5" and results["env_kwargs"] == {} and results["episodes"][0]["steps"] == 2


@pytest.mark.slow
def test_mppi_passes_env_kwargs(files: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    kwargs = {"width": 40, "height": 40, "reward_dist_weight": 2.0}
    code = main(_mppi("Pusher-v5", "--goal", str(files / "goal.png"), "--env-kwargs", json.dumps(kwargs),
                      "--out", str(tmp_path / "m")))
    assert code == 0, capfd.readouterr().err
    assert json.loads((tmp_path / "m" / "results.json").read_text())["env_kwargs"] == kwargs


@pytest.mark.slow  # Meta-World's import and first env: ~10 s
def test_mppi_runs_on_meta_world(files: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("metaworld")
    kwargs = {"env_name": "drawer-open-v3", "camera_name": "corner"}
    code = main(_mppi("metaworld:Meta-World/MT1", "--goal", str(files / "goal.png"), "--env-kwargs", json.dumps(kwargs),
                      "--out", str(tmp_path / "m")))
    assert code == 0, capfd.readouterr().err
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["env"] == "metaworld:Meta-World/MT1" and results["env_kwargs"] == kwargs


def test_mppi_decomposed_expert_subgoals_are_recorded(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = main(_mppi("vip_envs/OpenDrawer-v0", "--subgoals", "expert", "--decompose", "--episodes", "2",
                      "--env-kwargs", '{"image_size": 32}', "--out", str(tmp_path / "m")))
    assert code == 0, capfd.readouterr().err
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["lookahead"] == 1 and results["decompose"] == {"min_interval": 5, "smooth": 3}
    for episode in results["episodes"]:  # each episode's own expert demo (another seed): ascending frame indices
        subgoals = episode["subgoals"]
        assert subgoals == sorted(set(subgoals)) and subgoals[-1] >= 5 and all(isinstance(i, int) for i in subgoals)


@pytest.mark.slow
def test_mppi_decomposed_demo_file(files: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = main(_mppi("Pusher-v5", "--subgoals", str(files / "demo.mp4"), "--decompose", "--decompose-min-interval", "2",
                      "--lookahead", "2", "--out", str(tmp_path / "m")))
    assert code == 0, capfd.readouterr().err
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["lookahead"] == 2 and results["decompose"] == {"min_interval": 2, "smooth": 3}
    assert results["episodes"][0]["subgoals"][-1] == 5  # the demo's last frame (6 frames)


# ------------------------------------------------------------------------------ the library under the flags


def test_make_cost_decompose_aims_at_the_decomposed_subgoals() -> None:
    from vip_rl.goals import resolve_encoder
    from vip_rl.planning import DemoSubgoalCost
    from vip_rl.planning.decompose import decompose_demo
    from vip_rl.planning.episode import demo_subgoals, make_cost

    encoder = resolve_encoder("random", seed=0)
    rng = np.random.default_rng(0)
    demo = rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    cost = make_cost(encoder, demo, kind="subgoals", decompose=True, min_interval=3, action_penalty=0.1)
    expected = decompose_demo(encoder, demo, min_interval=3).tolist()
    assert demo_subgoals(cost) == expected and expected[-1] == 23
    tracker = next(term for _, term in cost.terms if isinstance(term, DemoSubgoalCost)).tracker
    assert tracker.lookahead == 1 and tracker.demo.shape[0] == 24  # matched over every frame, aims at the next subgoal
    assert demo_subgoals(make_cost(encoder, demo, kind="subgoals")) == list(range(24))  # no decompose: every frame
    assert make_cost(encoder, demo, kind="subgoals").tracker.lookahead == 10
    assert demo_subgoals(make_cost(encoder, demo[0])) is None
    with pytest.raises(ValueError, match="decompose needs kind='subgoals' \\(a demo to split\\), got kind='goal'"):
        make_cost(encoder, demo[0], decompose=True)


@pytest.mark.parametrize("text, match", [
    ("{", "must be a JSON object such as .*got '\\{' \\(Expecting property name"),
    ('"corner"', "got a string: '\"corner\"'"),
    ("3", "got a number: '3'"),
    ("null", "got null: 'null'"),
    ('{"render_mode": "rgb_array"}', "must not set 'render_mode'"),
])
def test_parse_env_kwargs_errors(text: str, match: str) -> None:
    from vip_rl.planning.episode import parse_env_kwargs

    with pytest.raises(ValueError, match=f"^--env-kwargs .*{match}"):
        parse_env_kwargs(text)
    assert parse_env_kwargs(None) == {} and parse_env_kwargs('{"a": [1, 2]}') == {"a": [1, 2]}


def test_make_env_accepts_module_colon_id() -> None:
    from vip_rl.planning.episode import EnvKwargsError, make_env

    env = make_env("vip_envs:vip_envs/PressButton-v0", image_size=24)
    try:
        assert env.unwrapped.task == "PressButton" and env.spec.id == "vip_envs/PressButton-v0"
    finally:
        env.close()
    with pytest.raises(EnvKwargsError, match="env 'Pusher-v5' refused the kwargs \\{'bogus': 1\\}"):
        make_env("Pusher-v5", bogus=1)
    with pytest.raises(ValueError, match="env id must be a Gymnasium id such as 'Pusher-v5' or 'module:Id', got ''"):
        make_env("")
