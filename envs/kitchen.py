"""Gymnasium-Robotics FrankaKitchen-v1 behind the vip_envs interface (extra ``kitchen``).

``gymnasium_robotics`` is imported lazily, only when an env is built; a missing install raises
``ImportError`` naming ``pip install vip-rl[kitchen]``. mujoco must stay ``<3.12`` for it.

What the wrapper adds to FrankaKitchen-v1:

* fast offscreen rendering (no shadow map, ``offsamples=0``, no reflections, lights without
  shadows) through one lazily created :class:`vip_envs.rendering.OffscreenRenderer` at ``image_size``; ``fast_render=False``
  keeps the upstream settings (for the throughput benchmark's "default" row);
* ``get_state()`` / ``set_state()``: MuJoCo ``mjSTATE_FULLPHYSICS`` state plus the 9 robot joint
  positions the upstream controller remembers from its last observation (the action -> ctrl map
  depends on them), so a restore continues exactly when the upstream observation noise is off
  (``robot_noise_ratio=0, object_noise_ratio=0``; with noise, the noise generator's state is
  not part of the saved state);
* ``info["success"]`` (every requested task within the upstream threshold), ``info["task_progress"]``
  (mean over tasks of ``1 - distance / initial distance``, clipped) and ``info["task_success"]``
  (per task), plus ``evaluate_states`` and ``render_states`` over batches of states.

* ``state_action_to_ctrl(states, actions)``: the upstream action -> ctrl map (joint velocity
  command -> position target from the robot's joint positions) over batches, for planners that
  roll the simulator out themselves (``vip_rl.planning.MujocoDynamics``). There is no plain
  ``action_to_ctrl``: the control target depends on the state, not on the action alone.

Not provided: the ``embodiment`` switch and the ``instructions``/``expert`` helpers of the tabletop suite.

Example:
    >>> from vip_envs import kitchen
    >>> env = kitchen.make_kitchen(("microwave", "kettle"), render_mode="rgb_array")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Sequence

import gymnasium as gym
import mujoco
import numpy as np

from vip_envs.rendering import OffscreenRenderer, apply_fast_render_settings

KITCHEN_TASKS: tuple[str, ...] = (
    "microwave",
    "kettle",
    "light switch",
    "slide cabinet",
    "hinge cabinet",
    "bottom burner",
    "top burner",
)
INSTALL_HINT = "FrankaKitchen needs gymnasium-robotics: pip install vip-rl[kitchen]"
STATE_SPEC = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
DEFAULT_CAMERA = {"distance": 2.2, "azimuth": 70.0, "elevation": -35.0, "lookat": (-0.2, 0.5, 2.0)}


def is_available() -> bool:
    """True when ``gymnasium_robotics`` can be imported (without importing it)."""
    return importlib.util.find_spec("gymnasium_robotics") is not None


def _import_robotics():  # noqa: ANN202 - module object
    try:
        module = importlib.import_module("gymnasium_robotics")
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    if hasattr(gym, "register_envs"):
        gym.register_envs(module)
    return module



def _fresh(obs: Any) -> Any:
    """A copy of an observation (nested dicts of arrays): gymnasium-robotics' Kitchen returns the same
    arrays from consecutive calls, so a stored observation would change under the caller."""
    if isinstance(obs, dict):
        return {key: _fresh(value) for key, value in obs.items()}
    return np.array(obs, copy=True) if isinstance(obs, np.ndarray) else obs

class KitchenEnv(gym.Wrapper):
    """FrankaKitchen-v1 with exact state save/restore, batched hooks and per-task success.

    Args:
        env: a ``gym.make("FrankaKitchen-v1", ...)`` env.
        tasks: the tasks it was made with (subset of ``KITCHEN_TASKS``).
        image_size: side of rendered frames.
        fast_render: apply :func:`apply_fast_render_settings` and render with a private renderer.
        success_threshold: upstream ``BONUS_THRESH`` (joint-space distance to the goal).
    """

    def __init__(
        self,
        env: gym.Env,
        tasks: Sequence[str],
        *,
        image_size: int = 96,
        fast_render: bool = True,
        success_threshold: float = 0.3,
    ) -> None:
        super().__init__(env)
        robotics_kitchen = importlib.import_module("gymnasium_robotics.envs.franka_kitchen.kitchen_env")
        base = env.unwrapped
        self.tasks = tuple(tasks)
        self.image_size = int(image_size)
        self.fast_render = bool(fast_render)
        self.success_threshold = float(success_threshold)
        self.robot_env = base.robot_env
        self.model: mujoco.MjModel = base.model
        self.data: mujoco.MjData = base.data
        self.frame_skip = int(self.robot_env.frame_skip)
        self.state_spec = STATE_SPEC
        self._physics_size = int(mujoco.mj_stateSize(self.model, STATE_SPEC))
        self.state_size = self._physics_size + 9
        self._indices = [np.asarray(robotics_kitchen.OBS_ELEMENT_INDICES[t]) for t in self.tasks]
        self._goals = [np.asarray(robotics_kitchen.OBS_ELEMENT_GOALS[t], dtype=np.float64) for t in self.tasks]
        init_qpos = np.asarray(self.robot_env.init_qpos, dtype=np.float64)
        self._initial_distance = np.array(
            [max(np.linalg.norm(init_qpos[i] - g), 1e-6) for i, g in zip(self._indices, self._goals)]
        )
        if self.fast_render:
            apply_fast_render_settings(self.model)
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.image_size)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.image_size)
        robot_joints = [n for n in self.robot_env.model_names.joint_names if n.startswith("robot:")][:9]
        self._robot_qpos_adr = np.array([self.model.jnt_qposadr[self.model.joint(n).id] for n in robot_joints])
        self._renderer: OffscreenRenderer | None = None
        self._scratch: mujoco.MjData | None = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.distance = DEFAULT_CAMERA["distance"]
        self._camera.azimuth = DEFAULT_CAMERA["azimuth"]
        self._camera.elevation = DEFAULT_CAMERA["elevation"]
        self._camera.lookat[:] = DEFAULT_CAMERA["lookat"]

    # ---------------------------------------------------------------- scores
    def _metrics(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        distances = np.stack([np.linalg.norm(qpos[:, i] - g, axis=1) for i, g in zip(self._indices, self._goals)], 1)
        per_task = distances < self.success_threshold
        progress = np.clip(1.0 - distances / self._initial_distance, 0.0, 1.0).mean(1)
        return {
            "success": per_task.all(1),
            "task_progress": progress,
            "reward": per_task.sum(1).astype(np.float64),
            "task_success": per_task,
        }

    def _add_info(self, info: dict[str, Any]) -> dict[str, Any]:
        scores = self._metrics(np.asarray(self.data.qpos)[None])
        info = dict(info)
        info["success"] = bool(scores["success"][0])
        info["task_progress"] = float(scores["task_progress"][0])
        info["task_success"] = {t: bool(s) for t, s in zip(self.tasks, scores["task_success"][0])}
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return _fresh(obs), self._add_info(info)

    def step(self, action):
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action!r}")
        obs, reward, terminated, truncated, info = self.env.step(action)
        return _fresh(obs), reward, terminated, truncated, self._add_info(info)

    def evaluate_states(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """``{"success" [N], "task_progress" [N], "reward" [N], "task_success" [N, tasks]}``."""
        states = self._check(states, physics_ok=True)
        qpos = states.reshape(-1, states.shape[-1])[:, 1 : 1 + self.model.nq]
        out = self._metrics(qpos)
        return {k: v.reshape(states.shape[:-1] + v.shape[1:]) for k, v in out.items()}

    def state_action_to_ctrl(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Upstream's control map over a batch: ``clip(qpos_robot + clip(a * rng + mid, vel) * dt, pos)``.

        Args:
            states: float ``[N, S]`` whose first ``1 + nq`` entries are MuJoCo's FULLPHYSICS time and
                qpos (a :meth:`get_state` or a FULLPHYSICS state: the robot joint positions are read there).
            actions: ``[N, 9]`` in [-1, 1] (clipped like upstream).

        Returns:
            float64 ``[N, nu]`` actuator position targets. Upstream uses its last *observed* joint
            positions, which carry observation noise unless ``robot_noise_ratio=0``; the planner's
            model is noise-free.
        """
        robot = self.robot_env
        states = np.asarray(states, dtype=np.float64)
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        if states.ndim != 2 or actions.ndim != 2 or actions.shape != (states.shape[0], 9):
            raise ValueError(f"states must be [N, S] and actions [N, 9], got {list(states.shape)} and {list(actions.shape)}")
        qpos = states[:, 1 + self._robot_qpos_adr]
        velocity = np.clip(robot.act_mid + actions * robot.act_rng, robot.robot_vel_bound[:9, 0], robot.robot_vel_bound[:9, 1])
        return np.clip(qpos + velocity * robot.dt, robot.robot_pos_bound[:9, 0], robot.robot_pos_bound[:9, 1])

    # ---------------------------------------------------------------- state
    def get_state(self) -> np.ndarray:
        """float64 ``[state_size]``: FULLPHYSICS state + the controller's last robot qpos (9)."""
        state = np.empty(self.state_size)
        mujoco.mj_getState(self.model, self.data, state[: self._physics_size], STATE_SPEC)
        state[self._physics_size :] = self.robot_env._last_robot_qpos
        return state

    def _check(self, state: np.ndarray, *, physics_ok: bool = False) -> np.ndarray:
        """``physics_ok``: also accept bare FULLPHYSICS states (what a planner rolls out), last dim
        ``state_size - 9``; the hooks that only read the physics (render, evaluate) allow it."""
        state = np.asarray(state, dtype=np.float64)
        sizes = (self.state_size, self._physics_size) if physics_ok else (self.state_size,)
        if state.ndim == 0 or state.shape[-1] not in sizes:
            raise ValueError(f"state must have last dimension {' or '.join(map(str, sizes))}, got shape {state.shape}")
        return np.ascontiguousarray(state)

    def set_state(self, state: np.ndarray) -> None:
        """Restore :meth:`get_state` output exactly."""
        state = self._check(state)
        if state.ndim != 1:
            raise ValueError(f"state must be 1-D [{self.state_size}], got shape {state.shape}")
        mujoco.mj_setState(self.model, self.data, state[: self._physics_size], STATE_SPEC)
        self.robot_env._last_robot_qpos = state[self._physics_size :].copy()
        mujoco.mj_forward(self.model, self.data)

    # ---------------------------------------------------------------- rendering
    def _get_renderer(self) -> OffscreenRenderer:
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.image_size, self.image_size)
        return self._renderer

    def _render_data(self, data: mujoco.MjData, out: np.ndarray | None = None) -> np.ndarray:
        return self._get_renderer().render(data, self._camera, out=out)

    def render(self) -> np.ndarray | None:
        """uint8 ``[H, W, 3]``: the fast private renderer, or upstream ``render()`` if not fast."""
        if not self.fast_render:
            return self.env.render()
        return self._render_data(self.data)

    def render_states(self, states: np.ndarray, camera: str | None = None) -> np.ndarray:
        """Render ``[N, state_size]`` (or FULLPHYSICS ``[N, state_size - 9]``) states with a private MjData
        -> uint8 ``[N, H, W, 3]``."""
        if camera is not None:
            raise ValueError(f"camera must be None (the kitchen has one free camera), got {camera!r}")
        states = self._check(states, physics_ok=True)
        if states.ndim != 2:
            raise ValueError(f"states must be 2-D [N, S], got shape {states.shape}")
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        scratch = self._scratch

        def prepare(i: int) -> mujoco.MjData:
            mujoco.mj_setState(self.model, scratch, states[i, : self._physics_size], STATE_SPEC)
            mujoco.mj_forward(self.model, scratch)
            return scratch

        return self._get_renderer().render_many(len(states), prepare, self._camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


def make_kitchen(
    tasks: Sequence[str] = ("microwave",),
    *,
    render_mode: str | None = None,
    image_size: int = 96,
    fast_render: bool = True,
    max_episode_steps: int = 280,
    **kwargs: Any,
) -> KitchenEnv:
    """Build FrankaKitchen-v1 for ``tasks`` wrapped in :class:`KitchenEnv`.

    Args:
        tasks: subset of ``KITCHEN_TASKS``.
        render_mode: ``"rgb_array"`` or None.
        image_size: side of rendered frames (also passed as upstream width/height).
        fast_render: fast render settings (see module docstring).
        max_episode_steps: upstream default 280.
        **kwargs: passed to ``gym.make`` (e.g. ``robot_noise_ratio``, ``object_noise_ratio``).

    Raises:
        ImportError: gymnasium-robotics missing (``pip install vip-rl[kitchen]``).
        ValueError: unknown task or render mode.
    """
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks:
        raise ValueError("tasks must name at least one kitchen task, got ()")
    for task in tasks:
        if task not in KITCHEN_TASKS:
            raise ValueError(f"task must be one of {list(KITCHEN_TASKS)}, got {task!r}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    _import_robotics()
    # the inner env's passive checker would warn that consecutive observations share arrays: they do
    # upstream, and KitchenEnv returns copies, so the warning would be about an object nobody sees
    kwargs.setdefault("disable_env_checker", True)
    env = gym.make(
        "FrankaKitchen-v1",
        tasks_to_complete=list(tasks),
        render_mode=render_mode,
        width=image_size,
        height=image_size,
        max_episode_steps=max_episode_steps,
        **kwargs,
    )
    return KitchenEnv(env, tasks, image_size=image_size, fast_render=fast_render)


__all__ = ["KITCHEN_TASKS", "KitchenEnv", "apply_fast_render_settings", "is_available", "make_kitchen"]
