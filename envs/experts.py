"""Scripted experts and a smooth random "play" policy for the tabletop suite.

Both read privileged state from ``env.unwrapped`` (so they work with any ``obs_mode``) and
keep a small phase memory that resets itself when a new episode starts (sim time goes back).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from vip_envs import metaworld
from vip_envs.tabletop import MAX_SPEED, TabletopEnv
from vip_envs.tasks import TASKS

Policy = Callable[[Any], np.ndarray]

SAFE_Z = 0.16  # tip height that clears every object
OPEN, CLOSE = -1.0, 1.0
FINGER_HALF_X_CLOSED = 0.024  # x half-extent of the closed finger pair
FINGER_HALF_Y = 0.012


def _unwrap(env: gym.Env) -> TabletopEnv:
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, TabletopEnv):
        raise TypeError(f"env must be a vip_envs tabletop env (TabletopEnv) or Meta-World env (MetaWorldEnv), got "
                        f"{type(inner).__name__}")
    return inner


def _is_metaworld(env: gym.Env) -> bool:
    return isinstance(getattr(env, "unwrapped", env), metaworld.MetaWorldEnv)


class _Scripted:
    """Phase-based expert; ``__call__(obs) -> float32 [4]``."""

    def __init__(self, env: TabletopEnv, noise: float, seed: int | None, task: str | None = None) -> None:
        self.env = env
        self.task = env.task if task is None else task
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.gain = 0.7 / (MAX_SPEED * env.dt)  # ~70% of the remaining error per step
        self.phase = 0
        self.counter = 0
        self.last_time = np.inf

    # -- helpers ---------------------------------------------------------------------------
    def _move(self, ee: np.ndarray, target: np.ndarray, grip: float, speed: float = 1.0) -> np.ndarray:
        action = np.empty(4)
        action[:3] = np.clip(self.gain * (np.asarray(target) - ee), -speed, speed)
        action[3] = grip
        return action

    def _goto(self, ee: np.ndarray, xy: np.ndarray, z: float, grip: float, tol: float = 0.012) -> tuple[np.ndarray, bool]:
        """Travel at SAFE_Z, then descend; returns (action, arrived)."""
        xy_err = np.linalg.norm(ee[:2] - xy)
        if self.phase == 0:
            if xy_err < tol:
                self.phase = 1
            else:
                height = SAFE_Z if xy_err > 0.04 or ee[2] > z else max(z, ee[2])
                return self._move(ee, [xy[0], xy[1], max(height, z)], grip), False
        if self.phase == 1:
            if abs(ee[2] - z) < 0.01:
                self.phase = 2
            else:
                return self._move(ee, [xy[0], xy[1], z], grip), False
        return self._move(ee, [xy[0], xy[1], z], grip), True

    # -- policy ------------------------------------------------------------------------------
    def __call__(self, obs: Any) -> np.ndarray:
        env = self.env
        if env.data.time < self.last_time or env.data.time == 0.0:
            self.phase, self.counter = 0, 0
        self.last_time = env.data.time
        qpos = env.data.qpos[None]
        ly = env.layout
        ee = ly.ee_pos(qpos)[0].copy()
        action = getattr(self, "_" + self.task)(ee, qpos, ly)
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=4)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _OpenDrawer(self, ee, qpos, ly):
        gap = ly.handle_gap(qpos)[0]
        z = 0.035
        action, arrived = self._goto(ee, gap[:2], z, CLOSE)
        if arrived:
            action = self._move(ee, [gap[0], gap[1] - 0.06, z], CLOSE)
        return action

    def _CloseDrawer(self, ee, qpos, ly):
        front = ly.handle_front(qpos)[0]
        z = 0.04
        action, arrived = self._goto(ee, np.array([front[0], front[1] - FINGER_HALF_Y - 0.02]), z, CLOSE)
        if arrived:
            action = self._move(ee, [front[0], front[1] + 0.05, z], CLOSE)
        return action

    def _SlideDoor(self, ee, qpos, ly):
        knob = ly.door_knob(qpos)[0]
        left = knob[0] - 0.014 - FINGER_HALF_X_CLOSED
        y, z = knob[1] - 0.012, 0.03
        action, arrived = self._goto(ee, np.array([left - 0.02, y]), z, CLOSE)
        if arrived:
            action = self._move(ee, [left + 0.05, y, z], CLOSE)
        return action

    def _PressButton(self, ee, qpos, ly):
        top = ly.button_top(qpos)[0]
        action, arrived = self._goto(ee, top[:2], top[2] + 0.01, CLOSE, tol=0.01)
        if arrived:
            action = self._move(ee, [top[0], top[1], ly.button_pos[2] + 0.015 - 0.03], CLOSE)
        return action

    def _FlipSwitch(self, ee, qpos, ly):
        knob = ly.lever_point(qpos, 0.085)[0]
        pivot = ly.lever_pos
        z = pivot[2] + 0.03
        start_y = min(knob[1], pivot[1]) - 0.018 - FINGER_HALF_Y - 0.015
        if self.phase < 2:
            action, _ = self._goto(ee, np.array([pivot[0], start_y]), z, CLOSE)
            return action
        return self._move(ee, [pivot[0], pivot[1] + 0.07, z], CLOSE)

    def _PushBlock(self, ee, qpos, ly):
        block = ly.block_pos(qpos)[0]
        target = qpos[0, ly.target]
        delta = target - block[:2]
        u = delta / max(np.linalg.norm(delta), 1e-6)
        perp = np.array([-u[1], u[0]])
        contact = 0.02 + FINGER_HALF_X_CLOSED * abs(u[0]) + FINGER_HALF_Y * abs(u[1])
        pre = block[:2] - u * (contact + 0.02)
        z = 0.01
        rel = ee[:2] - block[:2]
        if self.phase == 2:
            if abs(rel @ perp) > 0.02 or rel @ u > -contact + 0.01:
                self.phase = 0  # lost the block: lift and re-approach
            else:
                goal = target - u * (contact - 0.005) + perp * (perp @ (block[:2] - ee[:2]))
                speed = min(0.5, 0.15 + 4.0 * np.linalg.norm(target - block[:2]))  # slow down near the goal
                return self._move(ee, [goal[0], goal[1], z], CLOSE, speed=speed)
        if self.phase == 0 and np.linalg.norm(ee[:2] - pre) > 0.02:
            if ee[2] < 0.065:  # lift clear of the block before travelling
                return self._move(ee, [ee[0], ee[1], 0.09], CLOSE)
            return self._move(ee, [pre[0], pre[1], 0.09], CLOSE)
        self.phase = max(self.phase, 1)
        if ee[2] > z + 0.01:
            return self._move(ee, [pre[0], pre[1], z], CLOSE)
        self.phase = 2
        return self._move(ee, [pre[0], pre[1], z], CLOSE)

    def _PickPlace(self, ee, qpos, ly):
        block = ly.block_pos(qpos)[0]
        bin_xy = ly.bin_pos[:2]
        held = np.linalg.norm(block - (ee + [0.0, 0.0, 0.02])) < 0.03
        if self.phase >= 3 and not held and self.phase < 6:
            self.phase, self.counter = 0, 0
        if self.phase <= 1:
            xy_err = np.linalg.norm(ee[:2] - block[:2])
            if self.phase == 0:
                if xy_err < 0.008:
                    self.phase = 1
                else:
                    height = 0.12 if (ee[2] < 0.1 and xy_err > 0.03) or xy_err > 0.03 else ee[2]
                    return self._move(ee, [block[0], block[1], max(height, 0.06)], OPEN)
            if ee[2] > 0.012:
                return self._move(ee, [block[0], block[1], 0.006], OPEN)
            self.phase = 2
        if self.phase == 2:
            self.counter += 1
            if self.counter >= 5:
                self.phase = 3
            return self._move(ee, [block[0], block[1], 0.006], CLOSE)
        if self.phase == 3:
            if ee[2] > 0.1:
                self.phase = 4
            else:
                return self._move(ee, [ee[0], ee[1], 0.13], CLOSE)
        if self.phase == 4:
            if np.linalg.norm(ee[:2] - bin_xy) < 0.012:
                self.phase = 5
            else:
                return self._move(ee, [bin_xy[0], bin_xy[1], 0.13], CLOSE)
        if self.phase == 5:
            if ee[2] < 0.08:
                self.phase = 6
            else:
                return self._move(ee, [bin_xy[0], bin_xy[1], 0.07], CLOSE)
        return self._move(ee, [bin_xy[0], bin_xy[1], 0.1], OPEN)


def expert(env: gym.Env, noise: float = 0.0, seed: int | None = None, *, task: str | None = None) -> Policy:
    """Scripted expert for the env's task (or, with ``task``, for another task in the same scene).

    Meta-World envs (``vip_envs/MetaWorld-*``) get Meta-World's scripted policy of their task
    (:func:`vip_envs.metaworld.expert`).

    Args:
        env: a ``vip_envs`` env (wrapped or not); the expert reads ``env.unwrapped.data`` (Meta-World:
            ``env.unwrapped.observation()``).
        noise: standard deviation of Gaussian noise added to each action (then clipped to [-1, 1]).
        seed: seed of the noise generator.
        task: solve this suite task instead of the env's own (every scene holds every object), e.g. for
            the wrong-task demos of a multi-task dataset. Not for Meta-World envs (one task per scene).

    Returns:
        ``policy(obs) -> float32 [4]``; call it once per step, in order (it keeps a phase).

    Raises:
        ValueError: negative or non-finite ``noise``; a ``task`` for a Meta-World env.
        TypeError: ``env`` is not a vip_envs tabletop or Meta-World env.
    """
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
    if _is_metaworld(env):
        if task is not None:
            raise ValueError(f"task must be None for a Meta-World env (its scene holds one task's objects), "
                             f"got {task!r}")
        return metaworld.expert(env, noise=noise, seed=seed)
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be None or one of {list(TASKS)}, got {task!r}")
    return _Scripted(_unwrap(env), noise, seed, task=task)


class _Play:
    """Smooth random exploration: segments of scripted skills for random tasks, random
    pushes through object key points, and random wandering, all low-pass filtered."""

    def __init__(self, env: TabletopEnv, seed: int | None) -> None:
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.gain = 0.7 / (MAX_SPEED * env.dt)
        self.last_time = np.inf
        self._new_episode()

    def _new_episode(self) -> None:
        self.mode = "wander"
        self.skill: _Scripted | None = None
        self.steps_left = 0
        self.grip = 1.0
        self.prev = np.zeros(4)
        self.waypoints: list[np.ndarray] = []

    def _key_points(self, qpos: np.ndarray) -> np.ndarray:
        ly = self.env.layout
        return np.concatenate(
            [
                ly.handle_gap(qpos),
                ly.handle_front(qpos),
                ly.door_knob(qpos),
                ly.button_top(qpos),
                ly.lever_point(qpos),
                ly.block_pos(qpos),
                np.concatenate([qpos[:, ly.target], [[0.02]]], axis=1),
                ly.bin_pos[None] + [0.0, 0.0, 0.05],
            ]
        )

    def _new_segment(self, qpos: np.ndarray, ee: np.ndarray) -> None:
        rng = self.rng
        kind = rng.random()
        self.speed = float(rng.uniform(0.4, 1.0))
        if kind < 0.6:  # a scripted skill of a random task, cut short at a random length
            self.mode = "skill"
            task = str(rng.choice(TASKS))
            self.skill = _Scripted(self.env, noise=0.15, seed=int(rng.integers(2**31)), task=task)
            self.skill.last_time = self.env.data.time
            self.steps_left = int(rng.integers(25, 60))
            return
        points = self._key_points(qpos)
        point = points[rng.integers(len(points))]
        if kind < 0.85:  # push through a key point from a random side (or from above)
            self.mode = "push"
            if rng.random() < 0.25:
                pre, post = point + [0.0, 0.0, 0.08], point - [0.0, 0.0, 0.03]
            else:
                angle = rng.uniform(0.0, 2.0 * np.pi)
                direction = np.array([np.cos(angle), np.sin(angle), 0.0])
                point = point + [0.0, 0.0, rng.uniform(-0.03, 0.0)]
                pre, post = point - 0.08 * direction, point + 0.06 * direction
            above = np.array([pre[0], pre[1], max(SAFE_Z, pre[2])])
            self.waypoints = [above, pre, post]
            self.steps_left = 45
        else:  # wander to a random point near an object
            self.mode = "wander"
            offset = rng.normal(0.0, 0.05, size=3)
            offset[2] = rng.uniform(0.0, 0.12)
            self.waypoints = [point + offset]
            self.steps_left = int(rng.integers(8, 25))
        self.waypoints = [np.clip(w, [-0.38, -0.28, 0.005], [0.38, 0.28, 0.3]) for w in self.waypoints]
        if rng.random() < 0.5:
            self.grip = float(rng.choice([-1.0, 1.0]))

    def __call__(self, obs: Any) -> np.ndarray:
        env = self.env
        if env.data.time < self.last_time or env.data.time == 0.0:
            self._new_episode()
        self.last_time = env.data.time
        qpos = env.data.qpos[None]
        ee = env.layout.ee_pos(qpos)[0]
        if self.steps_left <= 0 or (self.mode != "skill" and not self.waypoints):
            self._new_segment(qpos, ee)
        for _ in range(8):  # drop waypoints already reached (a new segment may start here)
            if self.mode == "skill" or np.linalg.norm(self.waypoints[0] - ee) >= 0.015:
                break
            self.waypoints.pop(0)
            if not self.waypoints:
                self._new_segment(qpos, ee)
        self.steps_left -= 1
        if self.mode == "skill":
            raw = self.skill(obs).astype(np.float64)
        else:
            raw = np.empty(4)
            raw[:3] = np.clip(self.gain * (self.waypoints[0] - ee), -self.speed, self.speed)
            raw[:3] += self.rng.normal(0.0, 0.1, size=3)
            raw[3] = self.grip
        self.prev = 0.5 * self.prev + 0.5 * raw
        return np.clip(self.prev, -1.0, 1.0).astype(np.float32)


def play_policy(env: gym.Env, seed: int | None = None) -> Policy:
    """Smooth random exploration that visits and touches the objects (not the expert's path).

    Waypoints are drawn near random object key points (handle, door knob, button, lever,
    block, target, bin) and reached with a low-pass filtered P controller; the gripper
    toggles at random.

    Meta-World envs get :func:`vip_envs.metaworld.play_policy` (noisy-expert segments and random moves).

    Args:
        env: a ``vip_envs`` env (wrapped or not).
        seed: seed of the policy's own generator.

    Returns:
        ``policy(obs) -> float32 [4]``.
    """
    if _is_metaworld(env):
        return metaworld.play_policy(env, seed=seed)
    return _Play(_unwrap(env), seed)


__all__ = ["expert", "play_policy"]
