"""The MuJoCo tabletop environment shared by every task of the suite."""

from __future__ import annotations

import atexit
import weakref
from importlib import resources
from typing import Any, Sequence

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from vip_envs.rendering import OffscreenRenderer, pixel_observation, pixel_observation_space
from vip_envs.tasks import (
    ARRAY_OPS,
    DRAWER_CLOSE_START,
    SCALAR_OPS,
    TASKS,
    SceneLayout,
    check_task,
    task_metrics,
    task_metrics_generic,
)

CAMERAS: tuple[str, ...] = ("front", "left", "right", "close", "wrist")
EMBODIMENTS: tuple[str, ...] = ("gripper", "hand")
OBS_MODES: tuple[str, ...] = ("state", "pixels")

MAX_SPEED = 0.8
"""End-effector speed (m/s) commanded by an action component of +-1."""
FINGER_OPEN = 0.035
"""Finger travel (m) per finger when fully open (action[3] = -1)."""
STATE_BOUND = 10.0
"""Bound of every entry of the ``state`` observation space."""
STATE_SPEC = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
"""MuJoCo state spec of :meth:`TabletopEnv.get_state`; warmstart is disabled in the model, so this
spec (time, qpos, qvel, act) determines the next step together with ctrl."""

STATE_LABELS: tuple[str, ...] = (
    "ee_x", "ee_y", "ee_z", "ee_vx", "ee_vy", "ee_vz", "finger_left", "finger_right",
    "drawer", "door", "button", "switch",
    "block_x", "block_y", "block_z", "block_qw", "block_qx", "block_qy", "block_qz",
    "target_x", "target_y",
)  # fmt: skip
"""Names of the entries of the float32 ``state`` observation (21 values)."""


def _asset_path(embodiment: str) -> str:
    return str(resources.files("vip_envs").joinpath("assets", f"tabletop_{embodiment}.xml"))


_OPEN_RENDERERS: "weakref.WeakSet[TabletopEnv]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_open_renderers() -> None:
    # GL contexts must be freed before interpreter teardown unloads the GL library.
    for env in list(_OPEN_RENDERERS):
        env.close()


def _track_renderer(env: "TabletopEnv") -> None:
    global _ATEXIT_REGISTERED
    _OPEN_RENDERERS.add(env)
    if not _ATEXIT_REGISTERED:
        atexit.register(_close_open_renderers)
        _ATEXIT_REGISTERED = True


class TabletopEnv(gym.Env):
    """One tabletop scene, seven tasks, two embodiments.

    The end effector moves on x/y/z slide joints driven by velocity servos and has two
    position-servoed fingers. ``step`` sets ``data.ctrl = action_to_ctrl(action)`` and calls
    ``mj_step`` ``frame_skip`` times; nothing else touches the physics, so
    ``mujoco.rollout.rollout(model, data, env.get_state(), np.repeat(ctrls, frame_skip, axis=0))``
    reproduces env steps exactly.

    Args:
        task: one of ``vip_envs.TASKS``.
        render_mode: ``"rgb_array"`` or ``None``.
        obs_mode: ``"state"`` (Box float32 [21], see ``STATE_LABELS``) or ``"pixels"``
            (Dict with ``"pixels"`` uint8 [H, W, 3] from ``cameras[0]``, ``"pixels_<cam>"`` for
            the other cameras, and ``"state"``).
        cameras: camera names from ``vip_envs.CAMERAS``; the first is used by ``render()``.
        image_size: rendered height = width in pixels.
        embodiment: ``"gripper"`` (orange box palm, yellow fingers) or ``"hand"`` (blue round
            palm, light-blue rounded fingers); same action space and kinematics.
        frame_skip: physics steps (of 12.5 ms) per env step (dt = 25 ms by default).
        reach_reward_weight, progress_reward_weight, success_reward_weight: weights of the
            dense reward terms ``reward_reach = 1 - tanh(10 * reach_distance)``,
            ``reward_progress = task_progress`` and ``reward_success = success``.
        terminate_on_success: end the episode (``terminated=True``) on the first success.

    Example:
        >>> import gymnasium as gym, vip_envs
        >>> env = gym.make("vip_envs/OpenDrawer-v0")
        >>> obs, info = env.reset(seed=0)
        >>> policy = vip_envs.expert(env)
        >>> obs, reward, terminated, truncated, info = env.step(policy(obs))
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 40}

    def __init__(
        self,
        task: str = "OpenDrawer",
        render_mode: str | None = None,
        *,
        obs_mode: str = "state",
        cameras: Sequence[str] = ("front",),
        image_size: int = 96,
        embodiment: str = "gripper",
        frame_skip: int = 2,
        reach_reward_weight: float = 0.25,
        progress_reward_weight: float = 1.0,
        success_reward_weight: float = 1.0,
        terminate_on_success: bool = True,
    ) -> None:
        check_task(task)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {list(OBS_MODES)}, got {obs_mode!r}")
        if isinstance(cameras, str):
            cameras = (cameras,)
        cameras = tuple(cameras)
        if len(cameras) == 0:
            raise ValueError("cameras must name at least one camera, got ()")
        for cam in cameras:
            if cam not in CAMERAS:
                raise ValueError(f"camera must be one of {list(CAMERAS)}, got {cam!r}")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must not repeat, got {cameras!r}")
        if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or not 8 <= image_size <= 2048:
            raise ValueError(f"image_size must be an int in [8, 2048], got {image_size!r}")
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"embodiment must be one of {list(EMBODIMENTS)}, got {embodiment!r}")
        if not isinstance(frame_skip, (int, np.integer)) or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive int, got {frame_skip!r}")

        self.task = task
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.cameras = cameras
        self.image_size = int(image_size)
        self.embodiment = embodiment
        self.frame_skip = int(frame_skip)
        self.reach_reward_weight = float(reach_reward_weight)
        self.progress_reward_weight = float(progress_reward_weight)
        self.success_reward_weight = float(success_reward_weight)
        self.terminate_on_success = bool(terminate_on_success)

        self.model = mujoco.MjModel.from_xml_path(_asset_path(embodiment))
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.image_size)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.image_size)
        self.data = mujoco.MjData(self.model)
        self.layout = SceneLayout.from_model(self.model)
        self.state_spec = STATE_SPEC
        self.state_size = int(mujoco.mj_stateSize(self.model, STATE_SPEC))
        self.dt = float(self.model.opt.timestep * self.frame_skip)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}

        # Pure affine map action [.., 4] -> ctrl [.., nu]: ctrl = action @ _ctrl_matrix + _ctrl_offset.
        nu = self.model.nu
        matrix = np.zeros((4, nu))
        offset = np.zeros(nu)
        for i, name in enumerate(("ee_x", "ee_y", "ee_z")):
            matrix[i, self.model.actuator(name).id] = MAX_SPEED
        for name in ("finger_left", "finger_right"):
            aid = self.model.actuator(name).id
            matrix[3, aid] = -0.5 * FINGER_OPEN
            offset[aid] = 0.5 * FINGER_OPEN
        self._ctrl_matrix = matrix
        self._ctrl_offset = offset

        ly = self.layout
        self._qpos_obs_rest = np.concatenate(
            [ly.fingers, [ly.drawer, ly.door, ly.button, ly.switch], np.arange(ly.block, ly.block + 7), ly.target]
        )
        self._ee_dof = np.array([self.model.joint(n).dofadr[0] for n in ("ee_x", "ee_y", "ee_z")])
        self._qpos_slice = slice(1, 1 + self.model.nq)  # layout of mjSTATE_FULLPHYSICS: time, qpos, qvel, ...
        self._qvel_slice = slice(1 + self.model.nq, 1 + self.model.nq + self.model.nv)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        # Generous finite bounds (positions in m, velocities in m/s): nothing in the scene gets near them.
        state_space = spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(len(STATE_LABELS),), dtype=np.float32)
        if obs_mode == "state":
            self.observation_space = state_space
        else:
            self.observation_space = pixel_observation_space(state_space, cameras, self.image_size)

        self._renderer: OffscreenRenderer | None = None
        self._scratch: mujoco.MjData | None = None

    # ------------------------------------------------------------------ physics hooks
    def action_to_ctrl(self, actions: np.ndarray) -> np.ndarray:
        """Map actions ``[..., 4]`` in [-1, 1] to MuJoCo controls ``[..., nu]`` (pure, affine).

        ``ctrl[ee_x/y/z] = MAX_SPEED * action[0:3]`` (velocity-servo targets, m/s) and
        ``ctrl[finger_*] = FINGER_OPEN * (1 - action[3]) / 2`` (finger opening, m; +1 closes).
        Actions outside [-1, 1] are clipped first (a pure operation as well).
        """
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        if actions.shape[-1:] != (4,):
            raise ValueError(f"actions must have shape [..., 4], got {actions.shape}")
        return actions @ self._ctrl_matrix + self._ctrl_offset

    def get_state(self) -> np.ndarray:
        """Exact simulator state: float64 ``[state_size]`` (``mj_getState`` with ``state_spec``)."""
        state = np.empty(self.state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, self.state_spec)
        return state

    def _check_state(self, state: np.ndarray, name: str = "state") -> np.ndarray:
        state = np.asarray(state)
        if state.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a float array, got dtype {state.dtype}")
        if state.shape[-1:] != (self.state_size,):
            raise ValueError(
                f"{name} must have last dimension {self.state_size} (mjSTATE_FULLPHYSICS size), "
                f"got shape {state.shape}"
            )
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{name} must be finite, got NaN or inf")
        return np.ascontiguousarray(state, dtype=np.float64)

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`get_state` (float ``[state_size]``) bit-exactly."""
        state = self._check_state(state)
        if state.ndim != 1:
            raise ValueError(f"state must be 1-D [{self.state_size}], got shape {state.shape}")
        mujoco.mj_setState(self.model, self.data, state, self.state_spec)
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray | dict[str, np.ndarray], dict[str, Any]]:
        """Randomise object joints (drawer, door, switch, block pose, push target) and the
        effector start from ``self.np_random``; returns ``(obs, info)``. ``options`` is unused."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.data.qpos
        ly = self.layout
        rng = self.np_random
        u = rng.uniform
        qpos[ly.drawer] = u(0.0, 0.015)
        qpos[ly.door] = u(0.0, 0.02)
        qpos[ly.switch] = u(-0.6, -0.45)
        qpos[ly.target] = [u(-0.12, 0.05), u(-0.2, 0.0)]
        for _ in range(1000):  # block at least 10 cm from the push target (rejection sampling)
            block_xy = np.array([u(-0.12, 0.05), u(-0.18, -0.05)])
            if np.linalg.norm(block_xy - qpos[ly.target]) >= 0.1:
                break
        yaw = u(-0.3, 0.3)
        qpos[ly.block : ly.block + 7] = [block_xy[0], block_xy[1], 0.02, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        qpos[ly.ee] = [u(-0.1, 0.1), u(-0.25, -0.15), u(0.15, 0.25)]
        qpos[ly.fingers] = FINGER_OPEN * 0.5
        if self.task == "CloseDrawer":
            qpos[ly.drawer] = u(DRAWER_CLOSE_START - 0.02, DRAWER_CLOSE_START + 0.02)
        elif self.task == "FlipSwitch":
            qpos[ly.switch] = u(-0.6, -0.4)
        self.data.ctrl[:] = self.action_to_ctrl(np.zeros(4))
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), self._get_info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray | dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` float [4] in [-1, 1] (xyz velocity, gripper +1 close / -1 open).

        Returns ``(obs, reward, terminated, truncated, info)``; ``info`` holds ``success`` (bool),
        ``task_progress`` (float in [0, 1]), ``reward`` and its terms ``reward_reach``,
        ``reward_progress``, ``reward_success`` and ``reach_distance`` (m).

        Raises:
            ValueError: action of the wrong shape, non-numeric, NaN or inf.
        """
        action = np.asarray(action)
        if action.shape != (4,) or action.dtype.kind not in "fiu":
            raise ValueError(
                f"action must have shape (4,) and a numeric dtype, got shape {action.shape} dtype {action.dtype} "
                f"(value {action!r})"
            )
        if not np.isfinite(action).all():
            raise ValueError(f"action must be finite, got {action!r}")
        # Same arithmetic as action_to_ctrl (kept inline: this is the hot path).
        self.data.ctrl[:] = np.clip(action, -1.0, 1.0) @ self._ctrl_matrix + self._ctrl_offset
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        info = self._get_info()
        terminated = info["success"] and self.terminate_on_success
        return self._get_obs(), info["reward"], terminated, False, info

    def _state_obs(self) -> np.ndarray:
        qpos = self.data.qpos
        out = np.empty(len(STATE_LABELS), dtype=np.float32)
        out[0:3] = qpos[self.layout.ee]
        out[3:6] = self.data.qvel[self._ee_dof]
        out[6:] = qpos[self._qpos_obs_rest]
        return out

    def _get_obs(self):
        state = self._state_obs()
        if self.obs_mode == "state":
            return state
        self._sync_kinematics(self.data)
        return pixel_observation(state, self.cameras, lambda cam: self._render_camera(self.data, cam))

    def _scores(self, success, progress, reach, ops) -> dict[str, Any]:  # noqa: ANN001
        reward_reach = self.reach_reward_weight * (1.0 - ops.tanh(10.0 * reach))
        reward_progress = self.progress_reward_weight * progress
        reward_success = self.success_reward_weight * (success * 1.0)
        return {
            "success": success,
            "task_progress": progress,
            "reward": reward_reach + reward_progress + reward_success,
            "reward_reach": reward_reach,
            "reward_progress": reward_progress,
            "reward_success": reward_success,
            "reach_distance": reach,
        }

    def _get_info(self) -> dict[str, Any]:
        qpos = self.data.qpos.tolist()
        success, progress, reach = task_metrics_generic(self.task, self.layout, qpos.__getitem__, SCALAR_OPS)
        return self._scores(bool(success), progress, reach, SCALAR_OPS)

    def evaluate_states(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """Score a batch of states without touching the env.

        Args:
            states: float ``[N, state_size]`` (or ``[state_size]``) from :meth:`get_state` or
                ``mujoco.rollout``.

        Returns:
            ``{"success": bool [N], "task_progress": float [N], "reward": float [N]}`` plus the
            reward terms (``reward_reach``, ``reward_progress``, ``reward_success``,
            ``reach_distance``), each ``[N]``.
        """
        states = self._check_state(states, "states")
        flat = states.reshape(-1, self.state_size)
        success, progress, reach = task_metrics(self.task, self.layout, flat[:, self._qpos_slice])
        scores = self._scores(success, progress, reach, ARRAY_OPS)
        return {k: v.reshape(states.shape[:-1]) for k, v in scores.items()}

    # ------------------------------------------------------------------ rendering
    def _sync_kinematics(self, data: mujoco.MjData) -> None:
        # Positions only (no state is modified): after mj_step, xpos lags qpos by one substep.
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_camlight(self.model, data)

    def _get_renderer(self) -> OffscreenRenderer:
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.image_size, self.image_size)
            _track_renderer(self)
        return self._renderer

    def _render_camera(self, data: mujoco.MjData, camera: str, out: np.ndarray | None = None) -> np.ndarray:
        return self._get_renderer().render(data, camera, out=out)

    def render(self) -> np.ndarray | None:
        """Image of ``cameras[0]``: uint8 ``[H, W, 3]`` (``None`` when ``render_mode`` is None)."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        self._sync_kinematics(self.data)
        return self._render_camera(self.data, self.cameras[0])

    def render_states(self, states: np.ndarray, camera: str | None = None) -> np.ndarray:
        """Render a batch of states with a private MjData (the env's ``data`` is untouched).

        Args:
            states: float ``[N, state_size]``.
            camera: one of ``CAMERAS``; defaults to ``cameras[0]``.

        Returns:
            uint8 ``[N, H, W, 3]``.
        """
        camera = self.cameras[0] if camera is None else camera
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {list(CAMERAS)}, got {camera!r}")
        states = self._check_state(states, "states")
        if states.ndim != 2:
            raise ValueError(f"states must be 2-D [N, {self.state_size}], got shape {states.shape}")
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        scratch = self._scratch

        def prepare(i: int) -> mujoco.MjData:
            mujoco.mj_setState(self.model, scratch, states[i], self.state_spec)
            self._sync_kinematics(scratch)
            return scratch

        return self._get_renderer().render_many(states.shape[0], prepare, camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._scratch = None


__all__ = ["TabletopEnv", "CAMERAS", "EMBODIMENTS", "OBS_MODES", "STATE_LABELS", "TASKS"]
