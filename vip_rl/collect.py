"""Collect demonstrations / play data from a `vip_envs` task into a suite HDF5 file (``vip-rl collect``).

Tasks: a suite task (``OpenDrawer``, ... ``vip_envs.TASKS``) or a Meta-World task ``MetaWorld-<task>`` (e.g.
``MetaWorld-drawer-open-v3``: ``vip_envs/MetaWorld-drawer-open-v3``, extra ``metaworld``). Meta-World tasks take
every policy below except wrong-task demos (``expert_task``, a ``wrong_task`` share in ``mix``: a Meta-World
scene holds one task's objects), record the adapter's camera (``corner``, upright) unless ``cameras`` says
otherwise, have no ``embodiment`` (stored as ``"sawyer"``) and one instruction per task
(``vip_envs.metaworld.instructions``); their step limit is the env's 150.

Policies (``policy=``):

- ``"expert"``: the scripted expert, ``noise`` 0 unless given.
- ``"noisy"``: the scripted expert with ``noise`` (default 0.3): mixed-quality demos.
- ``"play"``: ``vip_envs.play_policy``: smooth random exploration that touches objects.
- ``"mixed"``: per episode, drawn with the seeded rng using weights ``mix = (expert, noisy, failed)``
  (default 1/3 each) or ``(expert, noisy, failed, wrong_task)``: a clean expert demo, a noisy expert
  demo, a *failed* demo = a noisy expert rollout cut at a uniformly random step before its first
  success, or a *wrong-task* demo = the clean expert of another task (drawn from
  :func:`wrong_task_choices`) in this scene. The drawn kind is stored in the demo attr ``mixed_kind``.
  Used for BC-vs-RWR from mixed demos.

``expert_task`` (``policy="expert"`` or ``"noisy"`` only) runs the scripted expert of *another* suite task in
this task's scene (every scene holds every object): a "wrong-task" demo, the systematic off-task data of a
multi-task robot dataset. Such an episode ends at the first step where ``expert_task``'s own success
predicate turns true (the other task is done, as its demo would end), at this task's success (the env
terminates), or at the step limit; if ``expert_task`` already holds at reset (e.g. ``CloseDrawer`` in a
scene whose drawer starts closed) only the latter two apply. Attrs gain ``expert_task`` and
``expert_task_success``; ``success`` stays this task's success.

``early_stop_prob`` cuts any episode with that probability the same way (uniform step before the
first success, or anywhere when it never succeeds); cut episodes get ``early_stopped=True``.

Each demo stores frames of every camera for ``o_0..o_T`` (rendered from the recorded simulator states
with ``env.unwrapped.render_states``), state observations, true task progress, actions, env rewards,
dones, per-step success, the exact simulator states, and attrs: env_id, task, instruction (drawn from
the *train* split with the seeded rng), seed (the env reset seed; the policy uses the same seed),
success (``info["success"]`` after the last step), terminated, early_stopped, embodiment, policy, noise.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._gl import default_mujoco_gl
from .cli import ArgumentParser, check_output_dir, check_output_file, command
from .data.episode import Episode
from .data.hdf5 import DEFAULT_COMPRESSION, EpisodeFile, EpisodeWriter
from .data.video import write_video

__all__ = ["collect", "cli", "remove_stale_temp_files", "POLICIES", "DEFAULT_NOISY_NOISE", "METAWORLD_PREFIX",
           "wrong_task_choices"]

POLICIES = ("expert", "noisy", "play", "mixed")
DEFAULT_NOISY_NOISE = 0.3
_MIXED_KINDS = ("expert", "noisy", "failed", "wrong-task")
#: Meta-World tasks are named ``METAWORLD_PREFIX + <MT1 task>``, e.g. ``MetaWorld-drawer-open-v3``.
METAWORLD_PREFIX = "MetaWorld-"
#: The object each suite task acts on.
TASK_OBJECT = {"OpenDrawer": "drawer", "CloseDrawer": "drawer", "SlideDoor": "door", "PressButton": "button",
               "FlipSwitch": "switch", "PushBlock": "block", "PickPlace": "block"}


def wrong_task_choices(task: str) -> list[str]:
    """Tasks whose experts make wrong-task demos for ``task``: they act on another object and are not
    already done at reset in ``task``'s scene (the drawer starts closed, except in CloseDrawer's scene)."""
    if task not in TASK_OBJECT:
        raise ValueError(f"task must be one of {list(TASK_OBJECT)}, got {task!r}")
    done_at_reset = "OpenDrawer" if task == "CloseDrawer" else "CloseDrawer"
    return [t for t in TASK_OBJECT if TASK_OBJECT[t] != TASK_OBJECT[task] and t != done_at_reset]


def _check_metaworld_args(task: str, cameras: Sequence[str] | None, embodiment: str | None,
                          expert_task: str | None) -> tuple[str, list[str], list[str]]:
    """``(env_id, cameras, instructions)`` of a ``MetaWorld-<task>`` task, or ValueError naming the bad value."""
    import vip_envs  # noqa: F401 - registers the ids
    from vip_envs import metaworld

    name = task.removeprefix(METAWORLD_PREFIX)
    if name not in metaworld.METAWORLD_TASKS:
        raise ValueError(f"task must be {METAWORLD_PREFIX}<task> with <task> one of {list(metaworld.METAWORLD_TASKS)}, "
                         f"got {task!r}")
    if expert_task is not None:
        raise ValueError(f"expert_task must be None for a Meta-World task (its scene holds one task's objects), "
                         f"got {expert_task!r}")
    if embodiment is not None:
        raise ValueError(f"embodiment must be None for a Meta-World task (the Sawyer arm), got {embodiment!r}")
    if cameras is None:
        cameras = [metaworld.DEFAULT_CAMERA]
    cameras = [cameras] if isinstance(cameras, str) else list(cameras)
    for camera in cameras:
        if camera not in metaworld.CAMERAS:
            raise ValueError(f"camera must be one of {metaworld.CAMERAS}, got {camera!r}")
    return metaworld.ID_PREFIX + name, cameras, metaworld.instructions(name)


def _check_args(task: str, episodes: int, seed: int, policy: str, noise: float | None, cameras: Sequence[str] | None,
                image_size: int,
                embodiment: str | None, early_stop_prob: float, max_steps: int | None,
                mix: Sequence[float], out: str | os.PathLike,
                expert_task: str | None = None) -> tuple[str, list[str], np.ndarray, list[str]]:
    """``(env_id, cameras, mix weights, train instructions)``, or ValueError naming the bad value."""
    import gymnasium
    import vip_envs  # registers the tasks

    tasks = tuple(getattr(vip_envs, "TASKS", ()))
    is_metaworld = isinstance(task, str) and task.startswith(METAWORLD_PREFIX)
    env_id = f"vip_envs/{task}-v0"
    if is_metaworld:
        env_id, cameras, train_instructions = _check_metaworld_args(task, cameras, embodiment, expert_task)
    elif not isinstance(task, str) or env_id not in gymnasium.registry:
        raise ValueError(f"task must be one of {tasks}, got {task!r} (or {METAWORLD_PREFIX}<Meta-World task>, e.g. "
                         f"{METAWORLD_PREFIX}drawer-open-v3)")
    else:
        cameras = ["front"] if cameras is None else cameras
        embodiment = "gripper" if embodiment is None else embodiment
        train_instructions = list(vip_envs.instructions(task, split="train"))
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if expert_task is not None and not is_metaworld:
        if not isinstance(expert_task, str) or expert_task not in tasks:
            raise ValueError(f"expert_task must be None or one of {tasks}, got {expert_task!r}")
        if policy not in ("expert", "noisy"):
            raise ValueError(f"expert_task={expert_task!r} needs policy 'expert' or 'noisy', got policy={policy!r}")
    if noise is not None and not (isinstance(noise, (int, float)) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite float >= 0 or None, got {noise!r}")
    if isinstance(cameras, str):
        cameras = [cameras]
    cameras = list(cameras)
    known = tuple(getattr(vip_envs, "CAMERAS", ()))
    if not cameras or len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must be a non-empty list of unique camera names, got {cameras!r}")
    for camera in cameras:
        if known and camera not in known and not is_metaworld:
            raise ValueError(f"camera must be one of {known}, got {camera!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be an int >= 1, got {image_size!r}")
    if embodiment not in ("gripper", "hand") and not is_metaworld:
        raise ValueError(f"embodiment must be 'gripper' or 'hand', got {embodiment!r}")
    if not (isinstance(early_stop_prob, (int, float)) and 0.0 <= early_stop_prob <= 1.0):
        raise ValueError(f"early_stop_prob must be in [0, 1], got {early_stop_prob!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be None or an int >= 1, got {max_steps!r}")
    if Path(out).is_dir():
        raise ValueError(f"out must be a file path, got the directory {str(out)!r}")
    if not Path(out).parent.is_dir():
        raise FileNotFoundError(f"output directory {str(Path(out).parent)!r} of out={str(out)!r} does not exist")
    weights = np.asarray(mix, dtype=np.float64)
    if weights.shape not in ((3,), (4,)) or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"mix must be 3 or 4 non-negative weights (expert, noisy, failed[, wrong_task]) with a positive "
                         f"sum, got {mix!r}")
    if is_metaworld and weights.shape == (4,) and weights[3] > 0:
        raise ValueError(f"mix must give wrong_task demos no weight for a Meta-World task (its scene holds one task's "
                         f"objects), got {mix!r}")
    return env_id, cameras, weights / weights.sum(), train_instructions


def _task_done_fn(env: Any, expert_task: str) -> Callable[[], bool]:
    """``done() -> bool``: whether ``expert_task``'s success predicate holds in ``env``'s current physics state."""
    from vip_envs.tasks import task_metrics

    unwrapped = env.unwrapped
    return lambda: bool(task_metrics(expert_task, unwrapped.layout, unwrapped.data.qpos[None])[0][0])


def _rollout(env: Any, make_policy: Callable[[Any], Callable[[Any], np.ndarray]], *, env_seed: int,
             stop_on_success: bool, expert_task: str | None = None) -> dict[str, Any]:
    """Run one episode until terminated / truncated; returns per-step lists (states include o_0).

    With ``expert_task`` the episode also ends at the first step where that task's success turns true.
    """
    unwrapped = env.unwrapped
    obs, info = env.reset(seed=env_seed)
    policy_fn = make_policy(env)  # build the policy after reset: experts read the new scene
    task_done = _task_done_fn(env, expert_task) if expert_task is not None else None
    done_at_reset = task_done() if task_done is not None else False
    other_success = False
    states, sims = [np.asarray(obs, np.float32)], [np.asarray(unwrapped.get_state(), np.float64)]
    progress = [float(info["task_progress"]) if "task_progress" in info
                else float(unwrapped.evaluate_states(sims[0][None])["task_progress"][0])]
    actions, rewards, dones, successes = [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy_fn(obs), dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(float(reward))
        dones.append(bool(terminated or truncated))
        successes.append(bool(info.get("success", False)))
        states.append(np.asarray(obs, np.float32))
        sims.append(np.asarray(unwrapped.get_state(), np.float64))
        progress.append(float(info.get("task_progress", np.nan)))
        if stop_on_success and successes[-1] and not (terminated or truncated):
            truncated = True
            dones[-1] = True
        if task_done is not None and not done_at_reset and not other_success and task_done():
            other_success = True
            if not (terminated or truncated):
                truncated = True
                dones[-1] = True
    return {"states": states, "sims": sims, "progress": progress, "actions": actions, "rewards": rewards,
            "dones": dones, "successes": successes, "terminated": bool(terminated), "other_success": other_success}


def _cut_before_success(roll: dict[str, Any], rng: np.random.Generator) -> bool:
    """Truncate a rollout at a uniform step before its first success (anywhere if none); False if impossible."""
    num_steps = len(roll["actions"])
    if True in roll["successes"]:
        high = roll["successes"].index(True)  # keeping k <= first-success index steps ends unsuccessful
    else:
        high = num_steps - 1  # strictly shorter than the full rollout
    if high < 1:
        return False
    keep = int(rng.integers(1, high + 1))
    for key in ("actions", "rewards", "dones", "successes"):
        roll[key] = roll[key][:keep]
    for key in ("states", "sims", "progress"):
        roll[key] = roll[key][:keep + 1]
    roll["dones"][-1] = True
    roll["terminated"] = False
    return True


def _render(env: Any, sims: np.ndarray, cameras: list[str], image_size: int) -> dict[str, np.ndarray]:
    frames = {}
    for camera in cameras:
        images = np.asarray(env.unwrapped.render_states(sims, camera=camera))
        expected = (len(sims), image_size, image_size, 3)
        if images.dtype != np.uint8 or images.shape != expected:
            raise ValueError(f"render_states(camera={camera!r}) returned {images.dtype} {list(images.shape)}, "
                             f"expected uint8 {list(expected)}")
        frames[camera] = images
    return frames


def remove_stale_temp_files(out: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed runs (SIGKILL, power loss) left beside ``out``.

    An :class:`~vip_rl.data.hdf5.EpisodeWriter` writes ``.<name>.<id>.tmp.h5`` beside ``out`` and renames
    it onto ``out`` when done; a ``finally`` removes it on errors, Ctrl-C and SIGTERM, but nothing runs
    on SIGKILL. A temp file is stale when no process holds HDF5's lock on it (a live writer does; the
    kernel drops the lock of a killed one). Nothing is deleted when HDF5 file locking is turned off.

    Returns:
        The deleted files.
    """
    import fcntl

    if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE":
        return []
    out = Path(out)
    removed = []
    for tmp in out.parent.glob(f".{out.name}.*.tmp{out.suffix}"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live writer holds the file
        except OSError:
            continue
        else:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    return removed


def _write_previews(out: Path, preview: Path, cameras: list[str]) -> None:
    """One mp4 per episode of the committed dataset ``out`` (cameras side by side), read back from it."""
    with EpisodeFile(out) as file:
        for index in range(file.num_episodes):
            write_video(preview / f"demo_{index}.mp4",
                        np.concatenate([np.asarray(file.frames(index, camera)) for camera in cameras], axis=2))


def collect(task: str, *, episodes: int, policy: str = "expert", noise: float | None = None,
            cameras: Sequence[str] | None = None, image_size: int = 96, embodiment: str | None = None, seed: int = 0,
            out: str | os.PathLike, preview_dir: str | os.PathLike | None = None, early_stop_prob: float = 0.0,
            max_steps: int | None = None, progress: bool = True, mix: Sequence[float] = (1 / 3, 1 / 3, 1 / 3),
            stop_on_success: bool = False, compression: str | None = DEFAULT_COMPRESSION,
            d4rl_out: str | os.PathLike | None = None, expert_task: str | None = None) -> Path:
    """Roll out a policy on ``vip_envs/<task>-v0`` (Meta-World: ``vip_envs/MetaWorld-<task>``) and write the
    episodes to ``out`` (suite HDF5, atomic).

    Args:
        task: suite task name, e.g. ``"OpenDrawer"`` (``vip_envs.TASKS``), or ``"MetaWorld-<task>"`` with a
            Meta-World MT1 task, e.g. ``"MetaWorld-drawer-open-v3"`` (module docstring).
        episodes: number of episodes.
        policy: ``"expert" | "noisy" | "play" | "mixed"`` (module docstring).
        noise: expert action noise; None means 0 for ``expert`` and 0.3 for ``noisy`` / ``mixed``.
        cameras: cameras recorded as ``obs/<camera>`` (``vip_envs.CAMERAS``; Meta-World:
            ``vip_envs.metaworld.CAMERAS``); None: ``("front",)`` (Meta-World: ``("corner",)``).
        image_size: side of the square frames.
        embodiment: ``"gripper"`` or ``"hand"``; None: ``"gripper"`` (Meta-World: must be None).
        seed: seeds the rng that draws each episode's env/policy seed, instruction and early stops.
        out: destination ``.h5``; appears only when every episode is written.
        preview_dir: if given, an mp4 per episode (cameras side by side) ``<preview_dir>/demo_<i>.mp4``,
            written once the dataset is complete (an interrupted run leaves no preview of an episode that
            is in no dataset).
        early_stop_prob: probability of cutting an episode before its first success.
        max_steps: episode step limit (overrides the env's TimeLimit: 100 steps, Meta-World 150).
        progress: show a tqdm bar.
        mix: ``(expert, noisy, failed)`` or ``(expert, noisy, failed, wrong_task)`` weights for ``policy="mixed"``.
        stop_on_success: end an episode at its first successful step.
        compression: image compression of the HDF5 file.
        d4rl_out: also export D4RL's flat layout there (camera ``cameras[0]``).
        expert_task: run the scripted expert of this other suite task in ``task``'s scene (``policy``
            ``"expert"`` / ``"noisy"`` only): a wrong-task demo that ends when ``expert_task`` is done
            (module docstring). None (default): the expert of ``task``.

    Returns:
        ``Path(out)``.

    Raises:
        ValueError: unknown task / camera / policy / expert_task or bad arguments (before anything is written),
            e.g. wrong-task demos for a Meta-World task.

    Example:
        >>> collect("OpenDrawer", episodes=3, out="demos.h5", preview_dir="previews")   # doctest: +SKIP
    """
    default_mujoco_gl()
    env_id, cameras, weights, train_instructions = _check_args(task, episodes, seed, policy, noise, cameras, image_size,
                                                               embodiment, early_stop_prob, max_steps, mix, out,
                                                               expert_task)
    is_metaworld = task.startswith(METAWORLD_PREFIX)
    embodiment = "sawyer" if is_metaworld else ("gripper" if embodiment is None else embodiment)
    import gymnasium
    import vip_envs
    from tqdm.auto import tqdm

    out = Path(out)
    remove_stale_temp_files(out)
    rng = np.random.default_rng(seed)
    make_kwargs: dict[str, Any] = dict(render_mode="rgb_array", obs_mode="state", cameras=tuple(cameras),
                                       image_size=image_size)
    if not is_metaworld:
        make_kwargs["embodiment"] = embodiment
    if max_steps is not None:
        make_kwargs["max_episode_steps"] = max_steps
    env = gymnasium.make(env_id, **make_kwargs)
    preview = Path(preview_dir) if preview_dir is not None else None
    noisy_noise = DEFAULT_NOISY_NOISE if noise is None else float(noise)
    num_success = 0
    try:
        writer = EpisodeWriter(out, env_id=env_id, cameras=cameras, image_size=image_size, compression=compression,
                               attrs={"task": task, "embodiment": embodiment, "policy": policy, "seed": seed,
                                      "collector": "vip_rl.collect"})
        with writer, tqdm(total=episodes, desc=f"collect {task}", unit="ep", disable=not progress) as bar:
            for index in range(episodes):
                env_seed = int(rng.integers(0, 2**31 - 1))
                instruction = str(train_instructions[int(rng.integers(len(train_instructions)))])
                kind = _MIXED_KINDS[int(rng.choice(len(weights), p=weights))] if policy == "mixed" else policy
                draw = rng.random()  # drawn every episode so the stream does not depend on the kind
                episode_task = expert_task
                if kind == "wrong-task":
                    choices = wrong_task_choices(task)
                    episode_task = choices[int(rng.integers(len(choices)))]
                cut = kind == "failed" or bool(draw < early_stop_prob)
                if kind == "play":
                    used, used_noise = "play", 0.0
                    make_policy = lambda e, s=env_seed: vip_envs.play_policy(e, seed=s)  # noqa: E731
                else:
                    used = "expert" if kind in ("expert", "wrong-task") else "noisy"
                    if kind in ("expert", "wrong-task"):  # a mixed run's expert shares are always clean
                        used_noise = 0.0 if noise is None or policy == "mixed" else float(noise)
                    else:
                        used_noise = noisy_noise
                    if episode_task is not None:  # another task's expert in this scene
                        make_policy = lambda e, s=env_seed, n=used_noise, t=episode_task: vip_envs.expert(  # noqa: E731
                            e, noise=n, seed=s, task=t)
                    else:
                        make_policy = lambda e, s=env_seed, n=used_noise: vip_envs.expert(e, noise=n, seed=s)  # noqa: E731
                roll = _rollout(env, make_policy, env_seed=env_seed, stop_on_success=stop_on_success,
                                expert_task=episode_task)
                early_stopped = _cut_before_success(roll, rng) if cut else False
                sims = np.stack(roll["sims"])
                attrs = {"env_id": env_id, "task": task, "instruction": instruction, "seed": env_seed,
                         "success": bool(roll["successes"][-1]) if roll["successes"] else False,
                         "terminated": roll["terminated"], "early_stopped": early_stopped,
                         "embodiment": embodiment, "policy": used, "noise": used_noise}
                if policy == "mixed":
                    attrs["mixed_kind"] = kind
                if episode_task is not None:
                    attrs["expert_task"] = episode_task
                    attrs["expert_task_success"] = roll["other_success"]
                actions = np.stack(roll["actions"]) if roll["actions"] else np.zeros((0, 4), np.float32)
                episode = Episode(frames=_render(env, sims, cameras, image_size), states=np.stack(roll["states"]),
                                  task_progress=np.asarray(roll["progress"], np.float32), actions=actions,
                                  rewards=roll["rewards"], dones=roll["dones"], attrs=attrs, sim_states=sims,
                                  successes=roll["successes"])
                writer.append(episode)
                num_success += int(episode.success)
                bar.update(1)
                bar.set_postfix(success=f"{num_success / (index + 1):.0%}")
    finally:
        env.close()
    if preview is not None:
        _write_previews(out, preview, cameras)
    if d4rl_out is not None:
        from .data.d4rl import export_d4rl

        export_d4rl(out, d4rl_out, camera=cameras[0], compression=compression)
    return out


def _build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="vip-rl collect", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="suite task, e.g. OpenDrawer, or MetaWorld-<task>, e.g. MetaWorld-drawer-open-v3")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    parser.add_argument("--policy", choices=POLICIES, default="expert",
                        help="expert | noisy (expert + noise) | play (random exploration) | mixed "
                             "(expert / noisy / failed, see --mix)")
    parser.add_argument("--noise", type=float, default=None, help="expert noise (default 0 expert, 0.3 noisy/mixed)")
    parser.add_argument("--camera", action="append", dest="cameras", default=None,
                        help="camera to record; repeat for several (default front; Meta-World: corner)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    parser.add_argument("--embodiment", choices=("gripper", "hand"), default=None,
                        help="suite embodiment (default gripper; none for Meta-World)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output suite HDF5 file")
    parser.add_argument("--preview", default=None, metavar="DIR", help="write an mp4 per episode into DIR")
    parser.add_argument("--d4rl", default=None, metavar="PATH", help="also export D4RL's flat layout to PATH")
    parser.add_argument("--early-stop-prob", type=float, default=0.0,
                        help="probability of cutting an episode before its first success")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="episode step limit (default: the env's, 100; Meta-World 150)")
    parser.add_argument("--mix", type=float, nargs="+", default=(1 / 3, 1 / 3, 1 / 3), metavar="W",
                        help="weights for --policy mixed: EXPERT NOISY FAILED [WRONG_TASK] (wrong-task = the expert "
                             "of another task in this scene)")
    parser.add_argument("--stop-on-success", action="store_true", help="end episodes at their first success")
    parser.add_argument("--expert-task", default=None, metavar="TASK",
                        help="with --policy expert/noisy: run the scripted expert of this other task in TASK's scene "
                             "(wrong-task demos; each ends when that other task is done)")
    parser.add_argument("--compression", choices=("gzip", "lzf", "none"), default=DEFAULT_COMPRESSION)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@command("collect")
def cli(argv: list[str]) -> int:
    """``vip-rl collect <task> --episodes N --policy expert --out demos.h5 ...``; returns the exit code.

    The output paths are checked before the first episode; Ctrl-C or SIGTERM (under ``vip-rl``) removes
    the unfinished dataset, and a SIGKILLed run's temp file is removed by the next run (see
    :func:`remove_stale_temp_files`).
    """
    args = _build_parser().parse_args(argv)
    check_output_file(args.out, flag="--out", parents=False)
    if args.preview is not None:
        check_output_dir(args.preview, flag="--preview")
    if args.d4rl is not None:
        check_output_file(args.d4rl, flag="--d4rl")
    path = collect(args.task, episodes=args.episodes, policy=args.policy, noise=args.noise,
                   cameras=args.cameras, image_size=args.size, embodiment=args.embodiment,
                   seed=args.seed, out=args.out, preview_dir=args.preview, early_stop_prob=args.early_stop_prob,
                   max_steps=args.max_steps, progress=not args.no_progress, mix=args.mix,
                   stop_on_success=args.stop_on_success,
                   compression=None if args.compression == "none" else args.compression, d4rl_out=args.d4rl,
                   expert_task=args.expert_task)
    with EpisodeFile(path) as file:
        successes = [bool(file.episode_attrs(i).get("success", False)) for i in range(file.num_episodes)]
        steps = sum(file.num_steps(i) for i in range(file.num_episodes))
    rate = sum(successes) / max(1, len(successes))
    extra = f", d4rl: {args.d4rl}" if args.d4rl else ""
    print(f"collected {len(successes)} episodes ({steps} steps) of {args.task} with policy {args.policy}: "
          f"success rate {rate:.0%} -> {path}{extra}")
    return 0
