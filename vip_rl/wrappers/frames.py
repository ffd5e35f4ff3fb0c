"""Where a wrapper's frames come from, and the terminal frames of vector envs that reset themselves.

Frames are read from an image in the observation (``obs["pixels"]``, a given ``pixel_key``, a suite
``camera``'s ``pixels_<camera>``, or an image ``Box`` observation) or from ``render()``
(:func:`resolve_frames` decides once, at construction). A vector env that resets a finished sub-env
within the step (Gymnasium ``SAME_STEP`` autoreset, every SB3 ``VecEnv``) shows the new episode
afterwards; :class:`FinalFrameInfo` and the ``vector_*`` helpers recover the true terminal frame.
"""
from __future__ import annotations

from typing import Any, Sequence, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from vip_rl._gl import default_mujoco_gl, render_frame

__all__ = [
    "FinalFrameInfo", "check_pixel_space", "env_frame", "pick", "resolve_frames", "vector_autoreset_mode",
    "vector_final_frames", "vector_frames",
]


def check_pixel_space(space: gym.Space, where: str) -> None:
    if not (
        isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3
    ):
        raise ValueError(f"{where} must be a uint8 Box [H, W, 3] image space, got {space}")


def resolve_frames(
    observation_space: gym.Space,
    render_mode: str | None,
    *,
    camera: str | None,
    pixel_key: str | None,
    cameras: Sequence[str] | None,
) -> tuple[str, str | None]:
    """Decide where frames come from -> ``("obs", key | None)`` (None: the whole obs) or ``("render", None)``.

    Order when nothing is given: ``obs["pixels"]``, an image ``Box`` observation, then ``render()``.
    """
    if camera is not None and pixel_key is not None:
        raise ValueError(f"give camera or pixel_key, not both (camera={camera!r}, pixel_key={pixel_key!r})")
    is_dict = isinstance(observation_space, spaces.Dict)
    keys = list(observation_space.spaces) if is_dict else []
    if camera is not None:
        candidates = [f"pixels_{camera}"] + (["pixels"] if cameras and cameras[0] == camera else [])
        for key in candidates:
            if key in keys:
                check_pixel_space(observation_space[key], f"observation_space[{key!r}]")
                return "obs", key
        if render_mode == "rgb_array" and cameras and cameras[0] == camera:
            return "render", None
        raise ValueError(
            f"camera={camera!r} is not available: no observation key in {candidates} "
            f"(observation keys: {keys}) and render() shows camera {cameras[0] if cameras else None!r}"
        )
    if pixel_key is not None:
        if pixel_key not in keys:
            raise ValueError(f"pixel_key={pixel_key!r} is not a key of the Dict observation (keys: {keys or None})")
        check_pixel_space(observation_space[pixel_key], f"observation_space[{pixel_key!r}]")
        return "obs", pixel_key
    if "pixels" in keys:
        check_pixel_space(observation_space["pixels"], "observation_space['pixels']")
        return "obs", "pixels"
    if (
        isinstance(observation_space, spaces.Box)
        and observation_space.dtype == np.uint8
        and len(observation_space.shape) == 3
        and observation_space.shape[-1] == 3
    ):
        return "obs", None
    if render_mode == "rgb_array":
        default_mujoco_gl()
        return "render", None
    raise ValueError(
        f"env has neither rgb_array rendering (render_mode={render_mode!r}) nor an image observation "
        f"(observation_space={observation_space}); make it with render_mode='rgb_array' or pass pixel_key="
    )


def pick(obs: Any, key: str | None) -> Any:
    return obs if key is None else obs[key]


class FinalFrameInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """On the step that ends an episode, add ``info[key] = env.render()`` (uint8 ``[H, W, 3]``).

    A vector env that resets a finished sub-env within the same step (Gymnasium
    ``autoreset_mode=SAME_STEP``, every Stable-Baselines3 ``VecEnv``) renders the *new* episode
    afterwards, so :class:`GoalRewardVector` / :class:`VecGoalReward` reading frames from ``render()``
    take the terminal frame from this info key instead. Wrap each sub-env with it (it renders once
    per episode; other steps are untouched). Not needed when frames come from the observation.

    Example:
        >>> import gymnasium as gym
        >>> env = FinalFrameInfo(gym.make("Pusher-v5", render_mode="rgb_array", width=64, height=64,
        ...                               max_episode_steps=1))
        >>> _ = env.reset(seed=0)
        >>> info = env.step(env.action_space.sample())[-1]
        >>> info["final_frame"].shape
        (64, 64, 3)
        >>> env.close()
    """

    def __init__(self, env: gym.Env, *, key: str = "final_frame") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, key=key)
        gym.Wrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"FinalFrameInfo needs render_mode='rgb_array', got render_mode={env.render_mode!r}")
        self.final_frame_key = key

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = dict(info)
            info[self.final_frame_key] = np.asarray(render_frame(self.env))
        return obs, reward, terminated, truncated, info


def vector_autoreset_mode(env: VectorEnv, source: str, final_frame_key: str) -> AutoresetMode:
    """The vector env's autoreset mode; SAME_STEP with frames from ``render()`` needs every sub-env to put
    its terminal frame in ``info[final_frame_key]`` (:class:`FinalFrameInfo`), else ``ValueError``."""
    mode_value = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    mode = mode_value if isinstance(mode_value, AutoresetMode) else AutoresetMode(mode_value)
    if source == "render" and mode == AutoresetMode.SAME_STEP:
        try:
            keys = env.get_attr("final_frame_key")
        except AttributeError:
            keys = None
        if keys is None or any(key != final_frame_key for key in keys):
            raise ValueError(
                "autoreset_mode=SAME_STEP with frames from render(): render() after the step shows the "
                "new episode, so the terminal frame must come from info; wrap each sub-env in "
                f"vip_rl.wrappers.FinalFrameInfo(env, key={final_frame_key!r}) or use image observations"
            )
    return mode


def env_frame(env: gym.Env, source: str, key: str | None, obs: Any) -> np.ndarray:
    """uint8 ``[H, W, 3]``: the current frame of a single env, from ``render()`` (with the env's GL context
    current: :func:`vip_rl._gl.render_frame`) or the observation."""
    return np.asarray(render_frame(env) if source == "render" else pick(obs, key))


def vector_frames(env: VectorEnv, source: str, key: str | None, obs: Any) -> np.ndarray:
    """uint8 ``[N, H, W, 3]``: the current frames of a Gymnasium vector env, from ``render()`` or the observation."""
    if source == "render":
        return np.stack(render_frame(env))
    return np.asarray(pick(obs, key))


def vector_final_frames(
    source: str, key: str | None, final_frame_key: str, ended: np.ndarray, infos: dict[str, Any]
) -> np.ndarray:
    """uint8 ``[k, H, W, 3]`` true terminal frames of the ``k`` envs in ``ended`` (Gymnasium SAME_STEP infos)."""
    indices = np.flatnonzero(ended)
    if source == "obs":
        final_obs = infos["final_obs"]
        return np.stack([np.asarray(pick(final_obs[i], key)) for i in indices])
    final_info = infos.get("final_info", {})
    if final_frame_key not in final_info or not final_info[f"_{final_frame_key}"][indices].all():
        raise RuntimeError(
            f"sub-envs {indices.tolist()} ended but info['final_info'][{final_frame_key!r}] is missing; "
            "wrap each sub-env in vip_rl.wrappers.FinalFrameInfo"
        )
    return final_info[final_frame_key][indices]
