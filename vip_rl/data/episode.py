"""`Episode` (one recorded rollout) and `Video` (a clip of frames): the units the dataset readers return.

Both live here, below the format modules (``hdf5``, ``d4rl``, ``minari_io``, ``video``), so that every
reader can build them without importing another reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Episode", "Video"]


def _as_array(value: Any, name: str, dtype: Any, ndim: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"Episode.{name} must be array-like convertible to {np.dtype(dtype)}, "
                        f"got {type(value).__name__}") from err
    if array.ndim != ndim:
        raise ValueError(f"Episode.{name} must have {ndim} dimensions, got shape {list(array.shape)}")
    return array


@dataclass
class Episode:
    """One rollout of ``T`` steps: ``T + 1`` observations ``o_0..o_T`` and ``T`` actions.

    Attributes:
        frames: camera name -> uint8 ``[T+1, H, W, 3]`` (may be empty when images were not loaded).
        states: float32 ``[T+1, S]`` state observations (proprio + object state).
        task_progress: float32 ``[T+1]`` true task progress in [0, 1] of each observation
            (NaN where unknown, e.g. a foreign D4RL file).
        actions: float32 ``[T, A]``; ``actions[t]`` moves ``o_t`` to ``o_{t+1}``.
        rewards: float32 ``[T]`` environment rewards of each step.
        dones: bool ``[T]``; True on the step after which the episode ended.
        attrs: metadata (env_id, task, instruction, seed, success, embodiment, policy, noise, ...).
        sim_states: optional float64 ``[T+1, nstate]`` exact simulator states (``env.unwrapped.get_state()``).
        successes: optional bool ``[T]``: ``info["success"]`` returned by each step.

    Raises:
        TypeError / ValueError: on wrong dtypes or inconsistent lengths (checked in ``__post_init__``).

    Example:
        >>> ep = read_episodes("demos.h5")[0]                       # doctest: +SKIP
        >>> ep.frames["front"].shape, ep.actions.shape, ep.instruction  # doctest: +SKIP
        ((101, 96, 96, 3), (100, 4), 'open the drawer')
    """

    frames: dict[str, np.ndarray]
    states: np.ndarray
    task_progress: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    sim_states: np.ndarray | None = None
    successes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.actions = _as_array(self.actions, "actions", np.float32, 2)
        num_steps = self.actions.shape[0]
        self.states = _as_array(self.states, "states", np.float32, 2)
        self.task_progress = _as_array(self.task_progress, "task_progress", np.float32, 1)
        self.rewards = _as_array(self.rewards, "rewards", np.float32, 1)
        self.dones = _as_array(self.dones, "dones", bool, 1)
        for name, expected in (("states", num_steps + 1), ("task_progress", num_steps + 1),
                               ("rewards", num_steps), ("dones", num_steps)):
            got = getattr(self, name).shape[0]
            if got != expected:
                raise ValueError(f"Episode.{name} must have length {expected} (T={num_steps} actions), got {got}")
        if self.sim_states is not None:
            self.sim_states = _as_array(self.sim_states, "sim_states", np.float64, 2)
            if self.sim_states.shape[0] != num_steps + 1:
                raise ValueError(f"Episode.sim_states must have length {num_steps + 1} (T={num_steps} actions), "
                                 f"got {self.sim_states.shape[0]}")
        if self.successes is not None:
            self.successes = _as_array(self.successes, "successes", bool, 1)
            if self.successes.shape[0] != num_steps:
                raise ValueError(f"Episode.successes must have length {num_steps}, got {self.successes.shape[0]}")
        if not isinstance(self.frames, dict):
            raise TypeError(f"Episode.frames must be a dict camera -> uint8 [T+1, H, W, 3], "
                            f"got {type(self.frames).__name__}")
        for camera, images in self.frames.items():
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
                kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
                raise TypeError(f"Episode.frames[{camera!r}] must be a uint8 numpy array [T+1, H, W, 3], got {kind}")
            if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] != num_steps + 1:
                raise ValueError(f"Episode.frames[{camera!r}] must be uint8 [T+1={num_steps + 1}, H, W, 3], "
                                 f"got shape {list(images.shape)}")
        if not isinstance(self.attrs, dict):
            raise TypeError(f"Episode.attrs must be a dict, got {type(self.attrs).__name__}")

    @property
    def num_steps(self) -> int:
        """T, the number of actions (the episode has T + 1 observations)."""
        return int(self.actions.shape[0])

    def __len__(self) -> int:
        return self.num_steps

    @property
    def instruction(self) -> str | None:
        """The language instruction of the episode (``attrs["instruction"]``), None if absent or empty."""
        text = self.attrs.get("instruction")
        return str(text) if text else None

    @property
    def success(self) -> bool:
        """Whether the episode ended in success (``attrs["success"]``; False if absent)."""
        return bool(self.attrs.get("success", False))

    @property
    def task(self) -> str | None:
        """The task name (``attrs["task"]``), None if absent."""
        task = self.attrs.get("task")
        return str(task) if task else None

    @property
    def cameras(self) -> list[str]:
        """Cameras whose frames are loaded."""
        return list(self.frames)


@dataclass
class Video:
    """A clip of uint8 frames with optional text.

    Attributes:
        frames: uint8 ``[T, H, W, 3]``.
        text: the instruction / description, or None.
        source: where it came from (file, folder, ``file.h5:demo_3``, ``manifest.csv:row 4``).
    """

    frames: np.ndarray
    text: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.frames, np.ndarray) or self.frames.dtype != np.uint8:
            kind = self.frames.dtype if isinstance(self.frames, np.ndarray) else type(self.frames).__name__
            raise TypeError(f"Video.frames must be a uint8 numpy array [T, H, W, 3], got {kind} "
                            f"(source {self.source!r})")
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"Video.frames must be uint8 [T, H, W, 3], got shape {list(self.frames.shape)} "
                             f"(source {self.source!r})")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"Video.text must be a str or None, got {type(self.text).__name__} "
                            f"(source {self.source!r})")

    def __len__(self) -> int:
        return int(self.frames.shape[0])
