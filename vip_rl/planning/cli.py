"""``vip-rl mppi``: run MPPI toward an image or language goal on a MuJoCo task.

Example::

    vip-rl mppi --env vip_envs/OpenDrawer-v0 --goal expert --encoder td-sim --episodes 10 --out runs/mppi
    vip-rl mppi --env vip_envs/OpenDrawer-v0 --goal "open the drawer" --encoder liv-sim --out runs/mppi_text
    vip-rl mppi --env vip_envs/OpenDrawer-v0 --subgoals expert --encoder td-sim --out runs/mppi_subgoals

Writes ``<out>/episode_<i>.mp4`` and ``<out>/results.json`` (success, steps, seconds per command
and its split into rollout / render / encode / update per episode, and the success rate).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vip_rl._io import atomic_path, atomic_write_text
from vip_rl.cli import resolve_device
from vip_rl.planning.costs import ActionPenalty, Cost, DemoSubgoalCost, EmbeddingGoalCost, EmbeddingProgressCost, OracleCost
from vip_rl.planning.dynamics import MujocoDynamics
from vip_rl.planning.mppi import MPPI, MPPIConfig

__all__ = ["cli", "make_env", "make_encoder", "expert_goal", "expert_demo_frames", "load_demo_frames", "resolve_goal", "make_cost", "run_episode", "resolve_device"]

TIMING_KEYS = ("rollout", "render", "encode", "cost", "update", "total")


def make_env(env_id: str, *, render_mode: str | None = "rgb_array", **kwargs: Any) -> Any:
    """``gymnasium.make(env_id)``, importing ``vip_envs`` first for ``vip_envs/...`` ids.

    Raises:
        ValueError: unknown env id (lists the suite's tasks when it is a ``vip_envs`` id).
    """
    import gymnasium as gym

    suite: Any = None
    if env_id.startswith("vip_envs/"):
        try:
            import vip_envs as suite  # registers the ids
        except ImportError as err:
            raise ValueError(f"--env {env_id!r} needs the vip_envs suite, which failed to import: {err}") from err
    try:
        return gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.Error as err:
        known = "" if suite is None else "; suite tasks: " + ", ".join(f"vip_envs/{t}-v0" for t in suite.TASKS)
        raise ValueError(f"unknown env {env_id!r} ({err}){known}") from err


def make_encoder(name: str, *, device: torch.device, seed: int = 0, text: bool = False) -> Any:
    """``random`` -> a randomly initialised small CNN (with a text tower if ``text``); else ``load_encoder``."""
    from vip_rl import encoders

    if name == "random":
        return encoders.build_encoder("cnn", metric="l2", text="hashing" if text else None, seed=seed, device=device)
    return encoders.load_encoder(name, device=device)


def expert_goal(env_id: str, *, seed: int, max_steps: int = 100, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """The final frame of a scripted-expert run of a ``vip_envs`` task from ``seed`` (uint8 [H, W, 3])."""
    import vip_envs

    env = make_env(env_id, **(env_kwargs or {}))
    try:
        obs, _ = env.reset(seed=seed)
        policy = vip_envs.expert(env, noise=0.0, seed=seed)
        for _ in range(max_steps):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            if info.get("success", False) or terminated or truncated:
                break
        # a few more steps so the goal shows a settled scene
        return np.asarray(env.render())
    finally:
        env.close()


def expert_demo_frames(env_id: str, *, seed: int, max_steps: int = 100, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Frames uint8 ``[N, H, W, 3]`` of a scripted-expert run of a ``vip_envs`` task from ``seed`` (o_0 .. o_N)."""
    import vip_envs

    env = make_env(env_id, **(env_kwargs or {}))
    try:
        obs, _ = env.reset(seed=seed)
        policy = vip_envs.expert(env, noise=0.0, seed=seed)
        frames = [np.asarray(env.render())]
        for _ in range(max_steps):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            frames.append(np.asarray(env.render()))
            if info.get("success", False) or terminated or truncated:
                break
        return np.stack(frames)
    finally:
        env.close()


def load_demo_frames(path: str) -> np.ndarray:
    """Frames uint8 ``[N, H, W, 3]`` of the first video in ``path`` (any format ``vip_rl.data.load_videos`` reads)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"--subgoals demo {path!r} does not exist")
    from vip_rl.data import load_videos

    videos = load_videos(path)
    if not videos:
        raise ValueError(f"--subgoals demo {path!r} holds no video")
    return np.asarray(videos[0].frames)


def resolve_goal(goal: str) -> np.ndarray | str:
    """A path to an image file -> uint8 [H, W, 3]; anything else is an instruction string."""
    path = Path(goal)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy"):
        if not path.is_file():
            raise FileNotFoundError(f"--goal image {goal!r} does not exist")
        if path.suffix.lower() == ".npy":
            image = np.load(path, allow_pickle=False)
        else:
            import imageio.v3 as iio

            image = np.asarray(iio.imread(path))
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"--goal image must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
        return np.ascontiguousarray(image)
    return goal


def make_cost(
    encoder: Any | None,
    goal: Any,
    *,
    kind: str = "goal",
    when: str = "final",
    discount: float = 1.0,
    action_penalty: float = 0.0,
) -> Cost:
    """Cost for the CLI / benchmark: ``kind`` in ``goal | progress | oracle``, plus an action penalty."""
    if kind == "oracle":
        cost: Cost = OracleCost(key="reward", when="sum", discount=discount)
    elif kind == "progress":
        cost = EmbeddingProgressCost(encoder, goal, discount=discount)
    elif kind == "goal":
        cost = EmbeddingGoalCost(encoder, goal, when=when, discount=discount)
    else:
        raise ValueError(f"cost kind must be goal, progress or oracle, got {kind!r}")
    if action_penalty > 0:
        cost = cost + ActionPenalty(action_penalty)
    return cost


def run_episode(
    env: Any,
    planner: MPPI,
    dynamics: MujocoDynamics,
    *,
    seed: int,
    max_steps: int | None = None,
    record: bool = True,
    stop_on_success: bool = True,
) -> dict[str, Any]:
    """Run one MPPI episode on ``env`` (reset with ``seed``); returns a JSON-able dict (+ ``frames``)."""
    env.reset(seed=seed)
    planner.reset(seed=seed)
    limit = max_steps or getattr(getattr(env, "spec", None), "max_episode_steps", None) or 100
    frames = [np.asarray(env.render())] if record else []
    timings = {k: 0.0 for k in TIMING_KEYS}
    success, steps, info = False, 0, {}
    for steps in range(1, limit + 1):
        result = planner.plan(dynamics.get_state())
        for key in TIMING_KEYS:
            timings[key] += result.timings.get(key, 0.0)
        _, _, terminated, truncated, info = env.step(result.action.cpu().numpy().astype(np.float32))
        if record:
            frames.append(np.asarray(env.render()))
        success = success or bool(info.get("success", False))
        if (success and stop_on_success) or terminated or truncated:
            break
    out: dict[str, Any] = {
        "seed": seed,
        "success": success,
        "steps": steps,
        "task_progress": float(info.get("task_progress", float("nan"))),
        "seconds_per_command": timings["total"] / max(steps, 1),
        "split_per_command": {k: timings[k] / max(steps, 1) for k in TIMING_KEYS},
    }
    if record:
        out["frames"] = np.stack(frames)
    return out


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    # not atomic_write_json: keep this file's exact bytes (no trailing newline) and its TypeError on numpy values
    atomic_write_text(path, json.dumps(payload, indent=2))


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    try:
        from vip_rl.data import write_video
    except ImportError:
        write_video = None
    if write_video is not None:
        write_video(path, frames, fps=fps)
        return
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        imageio.mimwrite(str(tmp), list(frames), fps=fps)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vip-rl mppi", description="MPPI toward an image or language goal (simulator rollouts).")
    p.add_argument("--env", required=True, help="Gymnasium id, e.g. vip_envs/OpenDrawer-v0 (any MuJoCo env with an image goal)")
    p.add_argument("--goal", default=None,
                   help="goal image file (png/jpg/npy), an instruction, or 'expert' (final frame of an expert run from another "
                        "seed); optional with --subgoals")
    p.add_argument("--encoder", default="td-sim", help="td-sim (default) | vip-sim | liv-sim | random | oracle (true reward) | checkpoint path")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--samples", type=int, default=64, help="K")
    p.add_argument("--horizon", type=int, default=10, help="T")
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--sigma", type=float, default=0.5, help="noise sigma")
    p.add_argument("--temperature", type=float, default=0.05, help="lambda (in cost units; costs are min-shifted)")
    p.add_argument("--beta", type=float, default=0.5, help="autoregressive noise smoothing in [0, 1)")
    p.add_argument("--cost", default="goal", choices=["goal", "progress"], help="embedding cost kind")
    p.add_argument("--when", default="final", choices=["final", "sum"], help="goal cost at the final step or summed")
    p.add_argument("--discount", type=float, default=1.0)
    p.add_argument("--render-every", type=int, default=None, help="also render every k-th step (for --when sum)")
    p.add_argument("--action-penalty", type=float, default=0.0)
    p.add_argument("--subgoals", default=None,
                   help="track subgoals along a demo: 'expert' (expert run from another seed) or a video/dataset path")
    p.add_argument("--lookahead", type=int, default=10, help="demo steps ahead of the matched frame to aim for")
    p.add_argument("--final-weight", type=float, default=0.0, help="weight of the distance to the demo's final frame")
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (1 is fastest on a loaded CPU)")
    p.add_argument("--camera", default=None)
    p.add_argument("--image-size", type=int, default=None, help="render size for envs without a render_states hook")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--nthread", type=int, default=2)
    p.add_argument("--out", default="runs/mppi")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--fps", type=float, default=20.0)
    return p


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vip-rl mppi`` (returns the exit code)."""
    from tqdm import tqdm

    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    if args.goal is None and args.subgoals is None and args.encoder != "oracle":
        parser.error("give --goal (image, instruction or 'expert') or --subgoals (--encoder oracle needs neither)")
    if args.subgoals is not None and args.encoder == "oracle":
        parser.error("--subgoals needs an image encoder, not --encoder oracle")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    try:
        device = resolve_device(args.device)
        config = MPPIConfig(
            action_dim=1,  # replaced below once the env's action size is known
            num_samples=args.samples,
            horizon=args.horizon,
            iterations=args.iterations,
            noise_sigma=args.sigma,
            temperature=args.temperature,
            noise_beta=args.beta,
        )
        env = make_env(args.env)
    except ValueError as err:
        parser.error(str(err))
    space = env.action_space
    config = MPPIConfig(
        **{**config.__dict__, "action_dim": int(np.prod(space.shape)),
           "action_low": tuple(float(v) for v in np.ravel(space.low)), "action_high": tuple(float(v) for v in np.ravel(space.high))}
    )
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_oracle = args.encoder == "oracle"
    try:
        text_goal = args.goal not in (None, "expert") and isinstance(resolve_goal(args.goal), str)
        demo_file = load_demo_frames(args.subgoals) if args.subgoals not in (None, "expert") else None
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    try:
        encoder = None if is_oracle else make_encoder(args.encoder, device=device, seed=args.seed, text=text_goal)
        if text_goal and encoder is not None and not encoder.has_text:
            raise ValueError(f"--goal {args.goal!r} is an instruction but --encoder {args.encoder!r} has no text tower "
                             "(use liv-sim, or an image goal)")
    except (ValueError, FileNotFoundError) as err:
        env.close()
        parser.error(str(err))
    episodes = []
    dynamics = MujocoDynamics(env, camera=args.camera, render_every=args.render_every, image_size=args.image_size, nthread=args.nthread)
    try:
        for i in tqdm(range(args.episodes), desc=f"mppi {args.env}", unit="ep"):
            seed = args.seed + i
            if args.subgoals is not None:
                demo = demo_file if demo_file is not None else expert_demo_frames(args.env, seed=seed + 10_000)
                cost: Cost = DemoSubgoalCost(encoder, demo, lookahead=args.lookahead, when=args.when,
                                             discount=args.discount, final_weight=args.final_weight)
                if args.action_penalty > 0:
                    cost = cost + ActionPenalty(args.action_penalty)
            else:
                if args.goal is None:  # the oracle scores the env's own reward, no goal
                    goal: Any = None
                elif args.goal == "expert":
                    goal = expert_goal(args.env, seed=seed + 10_000)
                else:
                    goal = resolve_goal(args.goal)
                cost = make_cost(encoder, goal, kind="oracle" if is_oracle else args.cost, when=args.when,
                                 discount=args.discount, action_penalty=args.action_penalty)
            planner = MPPI(config, dynamics, cost, device=device, seed=seed)
            result = run_episode(env, planner, dynamics, seed=seed, max_steps=args.max_steps, record=not args.no_video)
            frames = result.pop("frames", None)
            if frames is not None:
                video = out_dir / f"episode_{i:03d}.mp4"
                _write_video(video, frames, args.fps)
                result["video"] = video.name
            episodes.append(result)
            tqdm.write(f"episode {i}: success={result['success']} steps={result['steps']} "
                       f"{1000 * result['seconds_per_command']:.0f} ms/command")
    finally:
        dynamics.close()
        env.close()
    summary = {
        "env": args.env,
        "goal": args.goal,
        "encoder": args.encoder,
        "config": {k: v for k, v in config.__dict__.items()},
        "args": vars(args),
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "seconds_per_command": float(np.mean([e["seconds_per_command"] for e in episodes])),
        "episodes": episodes,
    }
    _write_json(out_dir / "results.json", summary)
    print(f"success rate {summary['success_rate']:.2f} over {len(episodes)} episodes -> {out_dir / 'results.json'}")
    return 0
