"""Goals: the one place that turns what a user calls a goal into images, text or an embedding.

A goal reaches the library in one of these forms, and :func:`parse_goal` reads every one of them
the same way for the wrappers, the planning costs, the diagnostics and the policy datasets:

=====================================  ==============================================================
``str``                                an instruction (embedded by the encoder's text tower)
list / tuple of ``str``                several instructions (``K`` texts)
uint8 ``[H, W, 3]``                    one goal image (numpy array or torch tensor)
uint8 ``[K, H, W, 3]``                 ``K`` goal images (what ``K`` means is the consumer's: the
                                       wrappers reward the nearest, a policy dataset their mean, a
                                       planning cost one per env)
a ``Video`` (anything with ``.frames``)  its final frame
float ``[D]`` / ``[K, D]``             precomputed goal embedding(s)
``pathlib.Path`` (any ``os.PathLike``)  a goal file, read by :func:`load_goal`
=====================================  ==============================================================

A plain ``str`` is always text; command lines turn their ``--goal`` argument into a path or text
with :func:`goal_from_arg` (a string that names a file or folder, ends in a goal-file suffix, or looks
like a path: no blank and a ``/`` or a ``.ext`` suffix, is a path; a missing one is an error, never an
instruction, and so is a folder).

Goal files (:func:`load_goal`, one rule everywhere): an image file (``.png .jpg .jpeg .bmp .webp``;
8-bit only, grey is repeated to RGB, alpha dropped), a video file (``.mp4 .gif .avi .mov .mkv .webm``:
its last frame) or a ``.npy`` holding uint8 ``[H, W, 3]`` (an image) or ``[T, H, W, 3]`` (a video: its
last frame). Every command line (``reward-curve``, ``mppi``, ``train``) and every ``Path`` goal of the
library (``GoalReward``, the planning costs, the policy datasets) reads goal files through it. Arrays
passed in memory are declared, not guessed: uint8 ``[..., H, W, 3]`` only. Goal images of either kind
must be at least :data:`MIN_GOAL_SIDE` pixels high and wide (files when read, arrays when embedded).

The module also owns the two other things every entry point needs before it can score a goal:
:func:`resolve_encoder` (a bundled name, a checkpoint path or ``"random"``) and the scripted-expert
goal of a ``vip_envs`` task (:func:`expert_goal`, :func:`expert_rollout`).

Example:
    >>> import numpy as np
    >>> parse_goal("open the drawer")
    Goal(kind='text', value=('open the drawer',))
    >>> parse_goal(np.zeros((8, 8, 3), np.uint8)).value.shape
    (1, 8, 8, 3)
    >>> encoder = resolve_encoder("random", seed=0)
    >>> embed_goal(encoder, np.zeros((2, 8, 8, 3), np.uint8)).shape
    torch.Size([2, 128])
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "GOAL_FILE_EXTENSIONS",
    "MIN_GOAL_SIDE",
    "Goal",
    "ExpertRollout",
    "embed_goal",
    "expert_demo_frames",
    "expert_goal",
    "expert_rollout",
    "final_frame",
    "goal_from_arg",
    "load_demo_frames",
    "load_goal",
    "parse_goal",
    "resolve_encoder",
]

GoalKind = Literal["text", "images", "embedding"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_VIDEO_SUFFIXES = (".mp4", ".gif", ".avi", ".mov", ".mkv", ".webm")
#: File suffixes :func:`load_goal` reads (images, videos: their last frame, ``.npy`` uint8 arrays).
GOAL_FILE_EXTENSIONS: tuple[str, ...] = (*_IMAGE_SUFFIXES, *_VIDEO_SUFFIXES, ".npy")
#: The smallest goal image side (height and width) :func:`parse_goal` and :func:`load_goal` accept: a
#: smaller image (a 1x1 file, a thumbnail) carries no scene to reach, and encoders would only blow it up.
MIN_GOAL_SIDE = 8

_FORMS = (
    "an instruction string, a uint8 image [H, W, 3], uint8 images [K, H, W, 3], a Video (its final frame), "
    "a float embedding [D] or [K, D], or a goal file path"
)


@dataclass(frozen=True)
class Goal:
    """A parsed goal (see :func:`parse_goal`)."""

    kind: GoalKind
    """``"text"``, ``"images"`` or ``"embedding"``."""
    value: Any
    """``tuple[str, ...]`` of ``K`` instructions, uint8 ``[K, H, W, 3]`` images, or float32 ``[K, D]``."""

    def __len__(self) -> int:
        return len(self.value)


# --------------------------------------------------------------------------------------------
# parsing


def final_frame(video: Any) -> np.ndarray:
    """The final frame of a demo video, to use as an image goal.

    Args:
        video: a ``vip_rl.data.Video``-like object (anything with a ``.frames`` uint8 ``[T, H, W, 3]``
            array) or a uint8 ``[T, H, W, 3]`` array / tensor.

    Returns:
        uint8 ``[H, W, 3]``.

    Raises:
        TypeError: frames are not a uint8 array. ValueError: not ``[T, H, W, 3]`` with ``T >= 1``.

    Example:
        >>> import numpy as np
        >>> final_frame(np.zeros((5, 8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """
    frames = video.frames if hasattr(video, "frames") and not isinstance(video, np.ndarray) else video
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"video must be a Video (with .frames) or a uint8 [T, H, W, 3] array, got {type(video).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"video frames must be uint8 [T, H, W, 3] with T >= 1, got shape {list(frames.shape)}")
    return frames[-1]


def parse_goal(goal: Any, *, name: str = "goal") -> Goal:
    """Read a goal in any accepted form (see the module docstring) without embedding it.

    Args:
        goal: the goal.
        name: the argument name used in error messages.

    Returns:
        :class:`Goal` with ``K >= 1`` entries; images are uint8 ``[K, H, W, 3]`` (the caller's array,
        not copied), embeddings float32 ``[K, D]``.

    Raises:
        TypeError: a goal of another type, or an array that is neither uint8 (images) nor floating
            (embeddings).
        ValueError: an empty instruction, images not ``[H, W, 3]`` / ``[K, H, W, 3]``, embeddings not
            ``[D]`` / ``[K, D]``, or an unreadable goal file.
        FileNotFoundError: a goal path that does not exist.

    Example:
        >>> import numpy as np
        >>> parse_goal(np.zeros((3, 8, 8, 3), np.uint8)).kind
        'images'
        >>> parse_goal(np.zeros(16, np.float32)).value.shape
        (1, 16)
        >>> parse_goal(np.zeros((8, 8, 3), np.float32))
        Traceback (most recent call last):
        ...
        TypeError: goal must be uint8 [H, W, 3] or [K, H, W, 3] images or a float embedding [D] / [K, D], got float32 [8, 8, 3]
    """
    if isinstance(goal, Goal):
        return goal
    if isinstance(goal, str):
        if not goal.strip():
            raise ValueError(f"{name} text must be a non-empty instruction, got {goal!r}")
        return Goal("text", (goal,))
    if isinstance(goal, (list, tuple)) and goal and all(isinstance(g, str) for g in goal):
        empty = [g for g in goal if not g.strip()]
        if empty:
            raise ValueError(f"{name} texts must be non-empty instructions, got {list(goal)!r}")
        return Goal("text", tuple(goal))
    if isinstance(goal, os.PathLike):
        return Goal("images", load_goal(goal, name=name)[None])
    if hasattr(goal, "frames") and not isinstance(goal, (np.ndarray, torch.Tensor)):
        return Goal("images", final_frame(goal)[None])
    if isinstance(goal, torch.Tensor):
        goal = goal.detach().cpu().numpy()
    if not isinstance(goal, np.ndarray):
        raise TypeError(f"{name} must be {_FORMS}, got {type(goal).__name__}")
    if goal.dtype == np.uint8:
        images = goal[None] if goal.ndim == 3 else goal
        if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1 or 0 in images.shape:
            raise ValueError(
                f"{name} image must be uint8 [H, W, 3] or [K, H, W, 3] (channels last, K >= 1), got shape {list(goal.shape)}"
            )
        return Goal("images", images)
    if np.issubdtype(goal.dtype, np.floating) and goal.ndim in (1, 2):
        embedding = goal[None] if goal.ndim == 1 else goal
        if embedding.shape[0] < 1 or embedding.shape[1] < 1:
            raise ValueError(f"{name} embedding must be float [D] or [K, D] with K, D >= 1, got shape {list(goal.shape)}")
        if not np.all(np.isfinite(embedding)):
            raise ValueError(f"{name} embedding must be finite, got non-finite values in shape {list(goal.shape)}")
        return Goal("embedding", embedding.astype(np.float32, copy=False))
    raise TypeError(
        f"{name} must be uint8 [H, W, 3] or [K, H, W, 3] images or a float embedding [D] / [K, D], "
        f"got {goal.dtype} {list(goal.shape)}"
    )


def embed_goal(encoder: Any, goal: Any, *, name: str = "goal") -> torch.Tensor:
    """Embed a goal in any accepted form -> float ``[K, D]`` on the encoder's device (no grad).

    Texts go through ``encoder.encode_text`` (one batched call), images through
    ``encoder.encode_images`` (resized inside the encoder, so any size works), embeddings are checked
    against ``encoder.embed_dim`` and moved to the encoder's device.

    Args:
        encoder: a :class:`vip_rl.encoders.Encoder`.
        goal: a raw goal (see :func:`parse_goal`) or a parsed :class:`Goal`.
        name: the argument name used in error messages.

    Raises:
        ValueError: a text goal for an encoder without a text tower; goal images smaller than
            :data:`MIN_GOAL_SIDE` on a side (or than ``encoder.image_size``, if that is smaller); an
            embedding whose size is not ``encoder.embed_dim``; everything :func:`parse_goal` raises.

    Example:
        >>> import numpy as np
        >>> embed_goal(resolve_encoder("random"), np.zeros((8, 8, 3), np.uint8)).shape
        torch.Size([1, 128])
    """
    parsed = parse_goal(goal, name=name)
    if parsed.kind == "text":
        if not encoder.has_text:
            raise ValueError(
                f"{name} is an instruction ({parsed.value[0]!r}) but encoder "
                f"{encoder.config.get('name', '<unnamed>')!r} has no text tower; "
                "use an image goal or a language encoder such as 'td-sim' or 'liv-sim'"
            )
        embedding = encoder.encode_text(list(parsed.value))
    elif parsed.kind == "images":
        # an encoder built for smaller frames than MIN_GOAL_SIDE (a toy one) may take goals that small
        minimum = min(MIN_GOAL_SIDE, int(getattr(encoder, "image_size", MIN_GOAL_SIDE) or MIN_GOAL_SIDE))
        _check_goal_size(parsed.value.shape[1:3], name, f"shape {list(parsed.value.shape)}", minimum=minimum)
        embedding = encoder.encode_images(parsed.value)
    else:
        if parsed.value.shape[1] != encoder.embed_dim:
            raise ValueError(
                f"{name} embedding must be float [{encoder.embed_dim}] or [K, {encoder.embed_dim}] "
                f"(the encoder's embed_dim), got shape {list(parsed.value.shape)}"
            )
        embedding = torch.as_tensor(parsed.value, device=encoder.device)
    return embedding.detach().float()


# --------------------------------------------------------------------------------------------
# goal files


def _check_goal_size(height_width: tuple[int, ...], name: str, what: str, *, minimum: int = MIN_GOAL_SIDE) -> None:
    if min(height_width) < minimum:
        raise ValueError(
            f"{name} image must be at least {minimum}x{minimum} pixels, got {what} "
            f"({height_width[0]}x{height_width[1]})"
        )


def load_goal(path: str | os.PathLike[str], *, name: str = "goal") -> np.ndarray:
    """Read a goal file -> uint8 ``[H, W, 3]`` (the rule is in the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unsupported suffix, an unreadable file, contents that are not 8-bit grey / RGB /
            RGBA (``.npy``: not uint8 ``[H, W, 3]`` / ``[T, H, W, 3]``), or an image smaller than
            :data:`MIN_GOAL_SIDE` on a side.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
    if suffix not in GOAL_FILE_EXTENSIONS:
        raise ValueError(
            f"{name} file {str(path)!r} has suffix {suffix!r}; expected an image, a video or a .npy "
            f"({' '.join(GOAL_FILE_EXTENSIONS)})"
        )
    if suffix in _VIDEO_SUFFIXES:
        from vip_rl.data import read_video_file

        frames = read_video_file(path)
        if frames.shape[0] < 1:
            raise ValueError(f"{name} video {str(path)!r} holds no frame")
        _check_goal_size(frames.shape[1:3], name, f"video {str(path)!r}")
        return np.ascontiguousarray(frames[-1])
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{name} file {str(path)!r} is not a readable .npy array: {err}") from err
        if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3 or 0 in array.shape:
            raise ValueError(
                f"{name} file {str(path)!r} must hold uint8 [H, W, 3] (an image) or [T, H, W, 3] (a video: its "
                f"last frame), got {array.dtype} {list(array.shape)}"
            )
        _check_goal_size(array.shape[-3:-1], name, f"file {str(path)!r}")
        return np.ascontiguousarray(array[-1] if array.ndim == 4 else array)
    import imageio.v3 as iio

    try:
        image = np.asarray(iio.imread(path, plugin="pillow"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{name} image {str(path)!r} is unreadable: {err}") from err
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise ValueError(f"{name} image {str(path)!r} must be an 8-bit grey, RGB or RGBA image, got {image.dtype} "
                         f"{list(image.shape)}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 2:  # grey + alpha
        image = np.repeat(image[..., :1], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"{name} image {str(path)!r} must be an 8-bit grey, RGB or RGBA image, got {image.dtype} "
                         f"{list(image.shape)}")
    _check_goal_size(image.shape[:2], name, f"image {str(path)!r}")
    return np.ascontiguousarray(image[..., :3])


_PATH_LIKE = re.compile(r"\S*(/|\\|\.[A-Za-z][A-Za-z0-9]{0,4})\S*")


def goal_from_arg(arg: str, *, name: str = "--goal") -> np.ndarray | str:
    """A command line's goal argument -> uint8 ``[H, W, 3]`` (a goal file) or the instruction string.

    The argument is a path when it names an existing file or folder, ends in one of
    :data:`GOAL_FILE_EXTENSIONS`, or looks like a path (no blank, and a ``/`` or a file suffix such as
    ``.tiff``); a path that does not exist is an error, never an instruction, and so is a folder.

    Raises:
        FileNotFoundError: a goal path that does not exist.
        ValueError: an empty argument, a folder, or an unreadable goal file (see :func:`load_goal`).

    Example:
        >>> goal_from_arg("open the drawer")
        'open the drawer'
        >>> goal_from_arg("missing.png")
        Traceback (most recent call last):
        ...
        FileNotFoundError: --goal file 'missing.png' does not exist
    """
    if not isinstance(arg, str) or not arg.strip():
        raise ValueError(f"{name} must be a goal file or a non-empty instruction, got {arg!r}")
    path = Path(arg)
    if path.is_dir():
        raise ValueError(f"{name} {arg!r} is a folder; expected a goal file (an image, a video: its last frame, or a "
                         f".npy: {' '.join(GOAL_FILE_EXTENSIONS)}) or an instruction")
    if path.suffix.lower() in GOAL_FILE_EXTENSIONS or path.is_file() or _PATH_LIKE.fullmatch(arg):
        return load_goal(path, name=name)
    return arg


def load_demo_frames(path: str | os.PathLike[str], *, name: str = "--subgoals") -> np.ndarray:
    """Frames uint8 ``[N, H, W, 3]`` of the first video in ``path``: a video file (``.mp4 .gif ...``), a
    ``.npy``/``.npz``, a frame folder, or a dataset (suite / D4RL HDF5, a folder of videos, a LIV manifest): any
    layout ``vip_rl.data.load_videos`` reads.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: it holds no video, or cannot be read (the
            message starts with ``name``).
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"{name} demo {str(path)!r} does not exist")
    from vip_rl.data import load_videos

    try:
        videos = load_videos(path)
    except ValueError as err:
        raise ValueError(f"{name} demo: {err}") from err
    if not videos:
        raise ValueError(f"{name} demo {str(path)!r} holds no video")
    return np.asarray(videos[0].frames)


# --------------------------------------------------------------------------------------------
# encoders


def resolve_encoder(
    spec: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    text: bool = False,
    metric: Literal["l2", "cos"] = "l2",
) -> Any:
    """The encoder named by ``spec``: a bundled name (``vip_rl.encoders.BUNDLED_ENCODERS``), a checkpoint
    path, or ``"random"`` (a randomly initialised small CNN: the anchor every figure stands beside).

    Args:
        spec: ``"td-sim"``, ``"vip-sim"``, ``"liv-sim"``, a checkpoint directory / ``.safetensors`` /
            ``.pt`` / ``.pth`` path, or ``"random"``.
        device: where the encoder lives.
        seed: initialisation seed of ``"random"`` (unused otherwise).
        text: the goal is an instruction: ``"random"`` gets the dependency-free hashing text tower, and
            a loaded encoder without a text tower is refused.
        metric: the metric of ``"random"`` (``"l2"`` or ``"cos"``; a loaded encoder keeps its own).

    Returns:
        A :class:`vip_rl.encoders.Encoder` in eval mode; ``config["name"]`` is the name, the path or ``"random"``.

    Raises:
        ValueError: an unknown name (lists the bundled ones), a corrupt checkpoint, or ``text=True``
            with an encoder that has no text tower.
        FileNotFoundError: a checkpoint path that does not exist, or bundled weights not built yet.
        TypeError: ``spec`` is not a string or path.

    Example:
        >>> resolve_encoder("random", seed=0, text=True).has_text
        True
    """
    from vip_rl import encoders

    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"encoder must be a bundled name, a checkpoint path or 'random', got {type(spec).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if spec == "random":
        return encoders.build_encoder("cnn", metric=metric, text="hashing" if text else None, seed=seed, device=device,
                                      name="random")
    try:
        encoder = encoders.load_encoder(spec, device=device)
    except ValueError as err:
        if "unknown encoder name" in str(err):
            raise ValueError(
                f"unknown encoder name {os.fspath(spec)!r}: expected one of {sorted(encoders.BUNDLED_ENCODERS)}, "
                "a checkpoint path or 'random'"
            ) from err
        raise
    if text and not encoder.has_text:
        raise ValueError(
            f"encoder {os.fspath(spec)!r} has no text tower, but the goal is an instruction; "
            "use td-sim or liv-sim, or an image goal"
        )
    return encoder


# --------------------------------------------------------------------------------------------
# scripted-expert goals


@dataclass
class ExpertRollout:
    """One scripted-expert run of a ``vip_envs`` task (see :func:`expert_rollout`)."""

    final_frame: np.ndarray
    """uint8 ``[H, W, 3]``: ``render()`` after the last step."""
    success: bool
    """Whether the last step reported ``info["success"]``."""
    steps: int
    """Env steps taken."""
    frames: np.ndarray | None = None
    """uint8 ``[steps + 1, H, W, 3]`` (``o_0 .. o_N``) when recorded."""
    states: np.ndarray | None = None
    """float64 ``[steps + 1, S]`` (``env.unwrapped.get_state()``) when recorded."""


def expert_rollout(
    env_id: str,
    *,
    seed: int,
    max_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    record_frames: bool = False,
    record_states: bool = False,
) -> ExpertRollout:
    """Run a ``vip_envs`` task's noise-free scripted expert from ``seed`` until it succeeds, the episode
    ends, or ``max_steps`` steps (None: the env's ``max_episode_steps``, else 100).

    The env is ``gymnasium.make(env_id, render_mode="rgb_array", **env_kwargs)`` (``module:Id`` ids too), reset
    with ``seed``; the expert is ``vip_envs.expert(env, noise=0.0, seed=seed)``.

    Raises:
        ValueError: ``env_id`` is not a registered env, it refuses ``env_kwargs``, it has no scripted expert
            (the message lists the envs that have one), or ``max_steps < 1``.
    """
    import gymnasium as gym

    from vip_rl._gl import default_mujoco_gl, render_frame

    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be None or a positive int, got {max_steps!r}")
    default_mujoco_gl()
    import vip_envs

    known = ", ".join(vip_envs.env_id(task) for task in vip_envs.TASKS)
    if getattr(vip_envs, "METAWORLD_IDS", None):
        known += f" and the Meta-World tasks vip_envs/MetaWorld-<task> (e.g. {next(iter(vip_envs.METAWORLD_IDS))})"
    try:
        env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    except (gym.error.Error, ImportError) as err:
        raise ValueError(f"env_id must be a vip_envs task with a scripted expert ({known}), got {env_id!r}: {err}") from err
    except TypeError as err:  # gymnasium appends "was raised from the environment creator for <id> with kwargs (...)"
        reason = str(err).split(" was raised from the environment creator")[0]
        raise ValueError(f"env {env_id!r} refused the env_kwargs {dict(env_kwargs or {})}: {reason}") from err
    try:
        obs, _ = env.reset(seed=seed)
        try:
            policy = vip_envs.expert(env, noise=0.0, seed=seed)
        except TypeError as err:
            raise ValueError(f"env {env_id!r} has no scripted expert (envs with one: {known})") from err
        frames = [np.asarray(render_frame(env))] if record_frames else []
        states = [env.unwrapped.get_state()] if record_states else []
        success, steps = False, 0
        limit = max_steps or getattr(getattr(env, "spec", None), "max_episode_steps", None) or 100
        for steps in range(1, limit + 1):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            if record_frames:
                frames.append(np.asarray(render_frame(env)))
            if record_states:
                states.append(env.unwrapped.get_state())
            success = bool(info.get("success", False))
            if success or terminated or truncated:
                break
        last = frames[-1] if record_frames else np.asarray(render_frame(env))
        return ExpertRollout(
            final_frame=last,
            success=success,
            steps=steps,
            frames=np.stack(frames) if record_frames else None,
            states=np.stack(states) if record_states else None,
        )
    finally:
        env.close()


def expert_goal(env_id: str, *, seed: int, max_steps: int | None = None, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """The final frame uint8 ``[H, W, 3]`` of a scripted-expert run of a ``vip_envs`` task from ``seed``
    (see :func:`expert_rollout`): the image goal of ``vip-rl mppi --goal expert``, ``vip-rl rl`` and the benchmarks.

    Example:
        >>> expert_goal("vip_envs/OpenDrawer-v0", seed=10_000).shape     # doctest: +SKIP
        (96, 96, 3)
    """
    return expert_rollout(env_id, seed=seed, max_steps=max_steps, env_kwargs=env_kwargs).final_frame


def expert_demo_frames(env_id: str, *, seed: int, max_steps: int | None = None,
                       env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Frames uint8 ``[N, H, W, 3]`` (``o_0 .. o_N``) of the scripted-expert run :func:`expert_goal` ends with."""
    return expert_rollout(env_id, seed=seed, max_steps=max_steps, env_kwargs=env_kwargs, record_frames=True).frames
