"""Roll a trained policy out in a ``vip_envs`` task and measure success.

Episodes run in lockstep batches (``num_envs`` envs at a time) so that each step costs one batched
encoder forward and one policy forward for the whole batch; each env renders its frame once per step.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vip_rl._gl import default_mujoco_gl
from vip_rl.data.video import write_video

from .dataset import encoder_fingerprint
from .networks import AnyPolicy


def _make_env(env_id: str, policy: AnyPolicy, env_kwargs: dict[str, Any]) -> Any:
    import gymnasium as gym

    default_mujoco_gl()
    if env_id.startswith("vip_envs/"):
        import vip_envs  # noqa: F401  (registers the tasks)
    cfg = policy.config
    kwargs = {"render_mode": "rgb_array", "obs_mode": "pixels", "cameras": cfg.cameras, "image_size": cfg.image_size}
    for key, value in env_kwargs.items():
        if key == "cameras" and isinstance(value, str):
            value = (value,)
        conflict = (not set(cfg.cameras) <= set(value) or tuple(value)[:1] != (cfg.camera,)) if key == "cameras" \
            else key in ("image_size", "obs_mode") and value != kwargs[key]
        if conflict:
            seen = f"camera {cfg.camera!r}" if not cfg.extra_cameras else f"cameras {list(cfg.cameras)}"
            raise ValueError(
                f"env_kwargs[{key!r}]={value!r} conflicts with the policy, trained on {seen} at "
                f"{cfg.image_size}x{cfg.image_size} pixels"
            )
        kwargs[key] = value
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, TypeError) as exc:
        raise ValueError(
            f"env_id={env_id!r} could not be made with {kwargs} (evaluation needs a vip_envs-style env taking "
            f"render_mode/obs_mode/cameras/image_size and returning Dict(pixels, state) observations): {exc}"
        ) from exc


def evaluate_policy(
    policy: AnyPolicy,
    env_id: str,
    *,
    episodes: int,
    seed: int = 0,
    encoder: Any | None = None,
    video_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    num_envs: int = 10,
    deterministic: bool = True,
    max_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    fps: int = 20,
) -> dict[str, Any]:
    """Roll ``policy`` out for ``episodes`` episodes with reset seeds ``seed, seed+1, ...``.

    Args:
        policy: a trained :class:`Policy` or :class:`PolicyEnsemble` (``arch="mlp"`` needs ``encoder``; ``"cnn"``
            reads pixels).
        env_id: Gymnasium id, e.g. ``"vip_envs/PressButton-v0"`` (made with ``obs_mode="pixels"``, the
            policy's camera and image size, ``render_mode="rgb_array"``).
        episodes: number of episodes (>= 1).
        seed: first reset seed; also seeds the Gaussian head's sampling when ``deterministic=False``.
        encoder: the frozen encoder the policy was trained on (checked against the policy's fingerprint).
        video_dir: if given, one ``<task>_seed<k>.mp4`` per episode is written there (atomically).
        device: where the policy and encoder run.
        num_envs: episodes run in lockstep per batch.
        deterministic: use the mean action (Gaussian head: sample when False).
        max_steps: cap on steps per episode (default: the env's time limit).
        env_kwargs: extra ``gymnasium.make`` kwargs (e.g. ``embodiment="hand"``).
        progress: tqdm bar over episodes.
        fps: video frame rate.

    Returns:
        ``{"env_id", "episodes", "success_rate", "mean_return", "returns": [..], "per_episode": [{"seed",
        "success", "return", "length", "final_task_progress", "max_task_progress", "video"}]}``.

    Raises:
        ValueError: the env's action or state size does not match the policy, a missing/mismatched encoder,
            bad arguments.
    """
    from tqdm.auto import tqdm

    if not isinstance(policy, AnyPolicy):
        raise TypeError(f"policy must be a Policy or PolicyEnsemble, got {type(policy).__name__}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    cfg = policy.config
    needs_encoder = cfg.arch == "mlp" and cfg.embed_dim > 0
    if needs_encoder:
        if encoder is None:
            raise ValueError(f"this policy consumes {cfg.embed_dim}-d embeddings of encoder {cfg.encoder!r}: pass encoder=")
        if encoder.embed_dim * len(cfg.cameras) != cfg.embed_dim:
            per_view = f" ({len(cfg.cameras)} cameras {list(cfg.cameras)})" if cfg.extra_cameras else ""
            raise ValueError(f"encoder.embed_dim={encoder.embed_dim} but the policy expects {cfg.embed_dim}{per_view}")
        if cfg.encoder_fingerprint is not None and encoder_fingerprint(encoder) != cfg.encoder_fingerprint:
            raise ValueError(
                f"encoder fingerprint {encoder_fingerprint(encoder)} differs from the one the policy was trained on "
                f"({cfg.encoder_fingerprint}, encoder {cfg.encoder!r})"
            )
    device = torch.device(device)
    policy = policy.to(device).eval()
    if encoder is not None:
        encoder = encoder.to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    video_path = Path(video_dir) if video_dir is not None else None
    task_name = env_id.split("/")[-1].removesuffix("-v0")

    envs = [_make_env(env_id, policy, dict(env_kwargs or {})) for _ in range(min(num_envs, episodes))]
    try:
        action_shape = envs[0].action_space.shape
        if action_shape != (cfg.action_dim,):
            raise ValueError(f"env {env_id!r} has action shape {action_shape}, but the policy outputs action_dim={cfg.action_dim}")
        limit = max_steps if max_steps is not None else (envs[0].spec.max_episode_steps if envs[0].spec else None) or 1000
        per_episode: list[dict[str, Any]] = []
        bar = tqdm(total=episodes, desc=f"eval {task_name}", unit="ep", disable=not progress, leave=False)
        for first in range(0, episodes, len(envs)):
            batch_seeds = list(range(seed + first, seed + min(first + len(envs), episodes)))
            active_envs = envs[: len(batch_seeds)]
            observations = [env.reset(seed=s)[0] for env, s in zip(active_envs, batch_seeds)]
            missing = [cam for cam in cfg.extra_cameras if f"pixels_{cam}" not in observations[0]]
            if missing:
                raise ValueError(f"env {env_id!r} returns no {[f'pixels_{cam}' for cam in missing]} observation, but the policy sees "
                                 f"cameras {list(cfg.cameras)} (an env taking cameras= returns pixels_<camera> for all but the first)")
            state_shape = np.asarray(observations[0]["state"]).shape
            if cfg.state_dim and state_shape != (cfg.state_dim,):
                raise ValueError(f"env {env_id!r} has state shape {state_shape}, but the policy expects state_dim={cfg.state_dim}")
            records = [
                {"seed": s, "success": False, "return": 0.0, "length": 0, "final_task_progress": 0.0, "max_task_progress": 0.0}
                for s in batch_seeds
            ]
            videos: list[list[np.ndarray]] = [[np.asarray(o["pixels"])] for o in observations] if video_path else []
            running = list(range(len(active_envs)))
            for _ in range(limit):
                if not running:
                    break
                pixels = np.stack([np.asarray(observations[i]["pixels"]) for i in running])
                if pixels.shape[1:] != (cfg.image_size, cfg.image_size, 3):
                    raise ValueError(f"env frames are {list(pixels.shape[1:])}, the policy expects [{cfg.image_size}, {cfg.image_size}, 3]")
                state = torch.from_numpy(np.stack([np.asarray(observations[i]["state"], np.float32) for i in running])).to(device)
                with torch.no_grad():
                    embedding = encoder.encode_images(pixels).float() if needs_encoder else None
                    if needs_encoder and cfg.extra_cameras:  # the other views' embeddings follow, in the training order
                        embedding = torch.cat([embedding] + [
                            encoder.encode_images(np.stack([np.asarray(observations[i][f"pixels_{cam}"]) for i in running])).float()
                            for cam in cfg.extra_cameras], dim=1)
                    actions = policy.act(
                        state if cfg.state_dim else None,
                        embedding=embedding,
                        pixels=torch.from_numpy(pixels).to(device) if cfg.arch == "cnn" else None,
                        deterministic=deterministic,
                        generator=generator,
                    ).cpu().numpy()
                still_running = []
                for row, i in enumerate(running):
                    obs, reward, terminated, truncated, info = active_envs[i].step(actions[row].astype(np.float32))
                    observations[i] = obs
                    rec = records[i]
                    rec["return"] += float(reward)
                    rec["length"] += 1
                    rec["success"] = rec["success"] or bool(info.get("success", False))
                    progress_value = float(info.get("task_progress", 0.0))
                    rec["final_task_progress"] = progress_value
                    rec["max_task_progress"] = max(rec["max_task_progress"], progress_value)
                    if video_path:
                        videos[i].append(np.asarray(obs["pixels"]))
                    if not (terminated or truncated):
                        still_running.append(i)
                running = still_running
            for i, rec in enumerate(records):
                if video_path:
                    file = video_path / f"{task_name}_seed{rec['seed']}.mp4"
                    write_video(file, videos[i], fps=fps)
                    rec["video"] = str(file)
                per_episode.append(rec)
            bar.update(len(records))
        bar.close()
    finally:
        for env in envs:
            env.close()
    returns = [rec["return"] for rec in per_episode]
    return {
        "env_id": env_id,
        "episodes": episodes,
        "seed": seed,
        "success_rate": float(np.mean([rec["success"] for rec in per_episode])),
        "mean_return": float(np.mean(returns)),
        "returns": returns,
        "per_episode": per_episode,
    }
