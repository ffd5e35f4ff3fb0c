"""Meta-World v3 tasks behind the vip_envs interface (extra ``metaworld``).

``metaworld`` is imported lazily, only when an env is built (``import vip_envs`` registers the ids without
it); a missing install raises ``ImportError`` naming ``pip install vip-rl[metaworld]``.

Ids: ``vip_envs/MetaWorld-<task>`` for every MT1 task name of Meta-World 3.0 (:data:`METAWORLD_TASKS`, e.g.
``vip_envs/MetaWorld-drawer-open-v3``), ``max_episode_steps=150`` (:data:`MAX_EPISODE_STEPS`; Meta-World's
own limit is 500). The noise-free scripted experts, measured on reset seeds 0-19: drawer-open succeeds 20/20 at
steps 87-92, button-press 20/20 at steps 57-64, door-open 19/20 at steps 72-115 (seed 11 never succeeds: the
expert gets stuck); with action noise 0.3 the same rates at steps 83-105, 58-69 and 74-117.

:class:`MetaWorldEnv` builds the task's Meta-World env class directly (the env ``gym.make("Meta-World/MT1",
env_name=...)`` wraps; not MT1 itself, whose 50 goals come from NumPy's global generator at make time and whose
task choice at ``reset`` is made before the reset seed is applied) and adds:

* seeding: ``reset(seed=s)`` draws the task's random vector (object and goal positions, what an MT1 task
  fixes) from ``self.np_random`` with Meta-World's own sampler (``seeded_rand_vec``), so a seed always gives
  the same episode; ``reset()`` without a seed continues the stream (a new task vector each episode). The
  goal is part of the observation (``partially_observable=False``, as in MT1);
* what :class:`vip_rl.planning.MujocoDynamics` reads at this layer: ``model``, ``data``, ``frame_skip`` and the
  mocap controller (``set_xyz_action``, ``action_scale``, ``mocap_low``, ``mocap_high``), so it rolls the arm
  out with its bit-exact ``"mocap"`` backend;
* fast rendering: one lazily created :class:`vip_envs.rendering.OffscreenRenderer` at ``image_size`` (no
  shadows, reflections or multisampling) from a model camera, default ``corner``. Meta-World's ``corner``,
  ``corner2`` and ``corner3`` cameras are rolled upside down in its XML (their image "up" points to the floor);
  frames of every camera whose up vector points down are rotated by 180 degrees (a rotation, not a mirror), so
  all frames are upright. ``render()`` is ``render_states([get_state()])[0]``: the same pixels by construction;
* ``get_state()`` / ``set_state()``: MuJoCo's state ``state_spec`` (:data:`STATE_SPEC`: FULLPHYSICS, solver warm
  start, controls and the mocap target) followed by the 18 previous-frame entries of the observation, so a
  restore continues bit-identically, observations included, within the episode (the task vector, goal and
  object placement of the current episode stay as they are: restore states of the current episode);
* ``info["success"]`` (bool), ``info["task_progress"]`` in [0, 1] and :meth:`MetaWorldEnv.evaluate_states`
  (success, task_progress, reward from Meta-World's ``evaluate_state`` on the observation of each state),
  plus :meth:`MetaWorldEnv.render_states`; neither leaves the env changed;
* ``obs_mode="pixels"``: ``{"pixels": uint8 [H, W, 3], "pixels_<camera>": ..., "state": float64 [39]}`` as the
  suite does (what ``vip-rl evaluate`` asks for), else Meta-World's float64 ``[39]`` observation.

``task_progress`` is ``clip(1 - d / d0, 0, 1)`` with ``d0`` the value of ``d`` at reset. ``d`` is Meta-World's
``info["obj_to_target"]`` for tasks that report one (non-zero at reset: drawer-open, button-press, ...), else
(door-open reports 0) the distance between the main object's observed position ``obs[4:7]`` and the task's
target ``_target_pos``. It is 1 only at an exact goal: Meta-World's success thresholds are met earlier
(at a progress of about 0.85 on drawer-open and door-open, 0.8 on button-press).

Scripted experts: :func:`expert` runs Meta-World's ``metaworld.policies`` expert of the task
(``vip_envs.expert`` dispatches here), :func:`play_policy` a smooth random exploration.

Example:
    >>> import gymnasium as gym, vip_envs
    >>> env = gym.make("vip_envs/MetaWorld-drawer-open-v3", render_mode="rgb_array")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
    >>> policy = vip_envs.expert(env, noise=0.1, seed=0)  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(policy(obs))  # doctest: +SKIP
    >>> env.unwrapped.render_states(env.unwrapped.get_state()[None]).shape  # doctest: +SKIP
    (1, 96, 96, 3)
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Any, Callable, Sequence

import gymnasium as gym
import mujoco
import numpy as np

from vip_envs.rendering import OffscreenRenderer, apply_fast_render_settings, pixel_observation, pixel_observation_space

#: The MT1 task names of Meta-World 3.0 (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``).
METAWORLD_TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3",
    "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3", "faucet-close-v3",
    "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3",
    "stick-push-v3", "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3",
    "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)
#: Gymnasium ids are ``ID_PREFIX + task``, e.g. ``vip_envs/MetaWorld-drawer-open-v3``.
ID_PREFIX = "vip_envs/MetaWorld-"
#: Episode step limit of the registered ids (the experts need up to ~115 steps, see the module docstring).
MAX_EPISODE_STEPS = 150
DEFAULT_CAMERA = "corner"
#: The cameras of Meta-World's scenes (every v3 task has these six).
CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV")
OBS_MODES: tuple[str, ...] = ("state", "pixels")
INSTALL_HINT = "Meta-World tasks need metaworld: pip install vip-rl[metaworld]"
#: MuJoCo state components of :meth:`MetaWorldEnv.get_state` (before the 18 previous-frame observation entries).
STATE_SPEC = int(
    mujoco.mjtState.mjSTATE_FULLPHYSICS
    | mujoco.mjtState.mjSTATE_WARMSTART
    | mujoco.mjtState.mjSTATE_CTRL
    | mujoco.mjtState.mjSTATE_MOCAP_POS
    | mujoco.mjtState.mjSTATE_MOCAP_QUAT
)
#: Observation layout: ``[0:18]`` hand xyz, gripper opening, object poses (now), ``[18:36]`` the same one
#: step earlier, ``[36:39]`` the goal position.
FRAME_SIZE = 18
OBS_SIZE = 39
_INSTRUCTIONS = {
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "button-press-v3": "press the button",
    "door-open-v3": "open the door",
    "door-close-v3": "close the door",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
    "reach-v3": "reach the goal",
    "push-v3": "push the puck to the goal",
    "pick-place-v3": "pick up the puck and place it at the goal",
}

Policy = Callable[[Any], np.ndarray]


def env_id(task: str) -> str:
    """Gymnasium id of a Meta-World task, e.g. ``env_id("drawer-open-v3") == "vip_envs/MetaWorld-drawer-open-v3"``.

    Raises:
        ValueError: ``task`` is not one of :data:`METAWORLD_TASKS`.
    """
    check_task(task)
    return ID_PREFIX + task


def check_task(task: str) -> str:
    """Return ``task`` if it is a Meta-World MT1 task name.

    Raises:
        ValueError: naming the bad value and the known tasks.
    """
    if not isinstance(task, str) or task not in METAWORLD_TASKS:
        raise ValueError(f"task must be a Meta-World MT1 task name, one of {list(METAWORLD_TASKS)}, got {task!r}")
    return task


def instructions(task: str) -> list[str]:
    """Language instructions of a Meta-World task (one per task: a phrase, else the task name in words)."""
    check_task(task)
    return [_INSTRUCTIONS.get(task, task.removesuffix("-v3").replace("-", " "))]


def is_available() -> bool:
    """True when ``metaworld`` can be imported (without importing it)."""
    return importlib.util.find_spec("metaworld") is not None


def _import(module: str) -> Any:  # noqa: ANN401 - a module object
    """``metaworld.<module>``, or ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc


def _live_views(owner: Any, data: mujoco.MjData) -> dict[str, tuple[str, int]]:
    """Attributes of ``owner`` that are rows of ``data``'s arrays (``attr -> (field, row)``).

    Meta-World keeps some positions as views into its MjData instead of copies (``init_left_pad`` /
    ``init_right_pad`` = ``data.body("leftpad").xpos``, some ``_target_pos``), so its rewards read the *current*
    pad positions through them; scoring another MjData must read that one's rows instead.
    """
    fields = {name: getattr(data, name) for name in dir(data)
              if not name.startswith("_") and isinstance(getattr(data, name, None), np.ndarray)}
    views = {}
    for key, value in vars(owner).items():
        if not isinstance(value, np.ndarray) or value.base is None:
            continue
        for name, field in fields.items():
            if field.ndim < 1 or field.size == 0 or not np.may_share_memory(value, field):
                continue
            offset = value.ctypes.data - field.ctypes.data
            if value.shape == field.shape[1:] and value.strides == field.strides[1:] and offset % field.strides[0] == 0:
                views[key] = (name, offset // field.strides[0])
                break
    return views


def _upright_flips(model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, bool]:
    """Per model camera: whether its image "up" axis points downwards in the world (rendered rotated by 180
    degrees). Meta-World's cameras are fixed or position-tracking, so their orientation never changes."""
    flips = {}
    for cam in range(model.ncam):
        up = np.asarray(data.cam_xmat[cam]).reshape(3, 3)[:, 1]
        flips[mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)] = bool(up[2] < 0.0)
    return flips


class MetaWorldEnv(gym.Env):
    """A Meta-World v3 task with seeded task sampling, exact state save/restore, fast upright frames and the
    vip_envs planner hooks (module docstring).

    ``env.unwrapped`` is this adapter (as the suite's ``TabletopEnv``); the Meta-World env it drives is
    :attr:`env`.

    Args:
        task: a Meta-World MT1 task name (:data:`METAWORLD_TASKS`), e.g. ``"drawer-open-v3"``.
        render_mode: None or ``"rgb_array"``.
        obs_mode: ``"state"`` (Meta-World's float64 ``[39]``) or ``"pixels"`` (dict, module docstring).
        camera: the camera of ``render()`` and ``render_states(camera=None)``; a model camera (``corner``
            (default), ``corner2``, ``corner3``, ``topview``, ``behindGripper``, ``gripperPOV``).
        cameras: suite-style alternative: the cameras of ``obs_mode="pixels"``, the first is ``camera``.
        image_size: side of the square frames.
        fast_render: no shadow map, multisampling or reflections (``rendering.apply_fast_render_settings``).
        terminate_on_success: end episodes at the first success (Meta-World's default: never terminate).
        reward_function_version: Meta-World's ``"v2"`` (default) or ``"v1"`` reward.

    Raises:
        ImportError: metaworld missing (``pip install vip-rl[metaworld]``).
        ValueError: an unknown task, camera, render or observation mode, or a bad image size.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str,
        *,
        render_mode: str | None = None,
        obs_mode: str = "state",
        camera: str | None = None,
        cameras: Sequence[str] | None = None,
        image_size: int = 96,
        fast_render: bool = True,
        terminate_on_success: bool = False,
        reward_function_version: str = "v2",
    ) -> None:
        check_task(task)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {list(OBS_MODES)}, got {obs_mode!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if reward_function_version not in ("v1", "v2"):
            raise ValueError(f"reward_function_version must be 'v1' or 'v2', got {reward_function_version!r}")
        if cameras is None:
            cameras = (DEFAULT_CAMERA if camera is None else camera,)
        elif isinstance(cameras, str):
            raise TypeError(f"cameras must be a sequence of camera names, got the string {cameras!r}")
        cameras = tuple(cameras)
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be a non-empty sequence of unique camera names, got {cameras!r}")
        if camera is not None and camera != cameras[0]:
            raise ValueError(f"camera={camera!r} contradicts cameras={cameras!r} (whose first is render()'s camera)")

        env_dict = _import("metaworld.env_dict")
        base = env_dict.ALL_V3_ENVIRONMENTS[task](reward_function_version=reward_function_version)
        self.env = base
        """The Meta-World env this adapter drives."""
        self.task = task
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.image_size = int(image_size)
        self.fast_render = bool(fast_render)
        self.terminate_on_success = bool(terminate_on_success)

        # MT1's settings (goal observed, task set), with the task vector drawn from np_random at each reset
        base._partially_observable = False
        vars(base).pop("sawyer_observation_space", None)  # a cached_property: recomputed with the goal's bounds
        base.observation_space = base.sawyer_observation_space
        base._set_task_called = True
        base._freeze_rand_vec = False
        base.seeded_rand_vec = True
        base.max_path_length = np.iinfo(np.int64).max  # the step limit is the TimeLimit's, not Meta-World's 500

        self.model: mujoco.MjModel = base.model
        self.data: mujoco.MjData = base.data
        self.frame_skip = int(base.frame_skip)
        self.dt = float(base.dt)
        self.state_spec = STATE_SPEC
        self._spec_size = int(mujoco.mj_stateSize(self.model, STATE_SPEC))
        self.state_size = self._spec_size + FRAME_SIZE
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}
        if self.fast_render:
            apply_fast_render_settings(self.model)
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.image_size)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.image_size)
        mujoco.mj_forward(self.model, self.data)
        self._flips = _upright_flips(self.model, self.data)
        for name in cameras:
            self._check_camera(name)
        self.cameras = cameras
        self.camera = cameras[0]

        self.action_space = base.action_space
        state_space = base.sawyer_observation_space
        self._obs_low, self._obs_high = state_space.low, state_space.high
        if obs_mode == "state":
            self.observation_space = state_space
        else:
            self.observation_space = pixel_observation_space(state_space, cameras, self.image_size)

        self._renderer: OffscreenRenderer | None = None
        self._scratch: mujoco.MjData | None = None
        self._last_obs: np.ndarray | None = None
        self._initial_distance = 1.0
        self._reported_distance = True
        self._views: dict[str, tuple[str, int]] = {}
        self.episode_index = -1
        """Number of resets so far minus one (policies use it to notice a new episode)."""

    # ---------------------------------------------------------------- MujocoDynamics' mocap controller
    @property
    def action_scale(self) -> float:
        """Metres the mocap target moves per unit of ``action[:3]`` (Meta-World's ``action_scale``)."""
        return self.env.action_scale

    @property
    def mocap_low(self) -> np.ndarray:
        """float ``[3]`` lower bound of the mocap target."""
        return self.env.mocap_low

    @property
    def mocap_high(self) -> np.ndarray:
        """float ``[3]`` upper bound of the mocap target."""
        return self.env.mocap_high

    def set_xyz_action(self, action: np.ndarray) -> None:
        """Meta-World's ``set_xyz_action``: move the mocap target by ``clip(action [3], -1, 1) * action_scale``."""
        self.env.set_xyz_action(action)

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw the task vector (object and goal placement) from ``self.np_random`` and reset the arm.

        ``options`` is unused. Returns ``(obs, info)`` with ``info["success"]`` and ``info["task_progress"]``.
        """
        super().reset(seed=seed)
        self.env.np_random = self.np_random  # Meta-World's sampler draws from our generator
        obs, _ = self.env.reset()
        self._last_obs = np.array(obs, dtype=np.float64)
        self.episode_index += 1
        self._views = _live_views(self.env, self.data)
        _, success, reported, distance = self._raw_scores(self.get_state()[None])
        self._reported_distance = bool(abs(reported[0]) > 1e-9)
        chosen = reported if self._reported_distance else distance
        self._initial_distance = max(float(chosen[0]), 1e-9)
        info = {"success": bool(success[0]), "task_progress": float(self._progress(chosen)[0])}
        return self._observe(), info

    def step(self, action: np.ndarray):
        """Apply ``action`` float ``[4]`` in [-1, 1]: xyz displacement of the hand (times ``action_scale``) and
        the gripper effort (+1 closes).

        Returns ``(obs, reward, terminated, truncated, info)``: Meta-World's reward and info, with
        ``info["success"]`` a bool and ``info["task_progress"]`` added. ``truncated`` is the TimeLimit's business.

        Raises:
            RuntimeError: ``reset()`` was never called.
            ValueError: an action of the wrong shape, non-numeric or not finite.
        """
        self._check_reset("step()")
        array = np.asarray(action)
        if array.shape != (4,) or array.dtype.kind not in "fiu":
            raise ValueError(f"action must have shape (4,) and a numeric dtype, got shape {array.shape} "
                             f"dtype {array.dtype}")
        if not np.isfinite(array).all():
            raise ValueError(f"action must be finite, got {array!r}")
        obs, reward, _, _, info = self.env.step(array)  # the dtype it gets decides the mocap arithmetic
        self._last_obs = np.array(obs, dtype=np.float64)
        info = dict(info)
        success = bool(info["success"])
        info["success"] = success
        distance = float(info["obj_to_target"]) if self._reported_distance else self._object_distance(self._last_obs)
        info["task_progress"] = float(self._progress(np.array([distance]))[0])
        terminated = success and self.terminate_on_success
        return self._observe(), float(reward), terminated, False, info

    def observation(self) -> np.ndarray:
        """Meta-World's float64 ``[39]`` observation of the current state (what the last reset/step returned,
        or the restored one after :meth:`set_state`)."""
        self._check_reset("observation()")
        return self._last_obs.copy()

    def _observe(self) -> np.ndarray | dict[str, np.ndarray]:
        state = self._last_obs.copy()
        if self.obs_mode == "state":
            return state
        current = self.get_state()[None]
        return pixel_observation(state, self.cameras, lambda name: self.render_states(current, camera=name)[0])

    def _check_reset(self, what: str) -> None:
        if self._last_obs is None:
            raise RuntimeError(f"{what} needs a reset() first: Meta-World sets up the task at reset")

    # ---------------------------------------------------------------- state
    def get_state(self) -> np.ndarray:
        """float64 ``[state_size]``: ``mj_getState`` with :data:`STATE_SPEC`, then the previous frame of the
        observation (``obs[18:36]``, 18 entries)."""
        self._check_reset("get_state()")
        state = np.empty(self.state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state[: self._spec_size], STATE_SPEC)
        state[self._spec_size :] = self._last_obs[FRAME_SIZE : 2 * FRAME_SIZE]
        return state

    def _check_states(self, states: np.ndarray, name: str = "states") -> np.ndarray:
        """Float states with last dimension ``state_size`` or ``state_size - 18`` (:data:`STATE_SPEC` only, what
        ``MujocoDynamics`` hands to the hooks), finite, as contiguous float64."""
        states = np.asarray(states)
        if states.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a float array, got dtype {states.dtype}")
        if states.ndim == 0 or states.shape[-1] not in (self.state_size, self._spec_size):
            raise ValueError(f"{name} must have last dimension {self.state_size} (get_state) or {self._spec_size} "
                             f"(state_spec only), got shape {states.shape}")
        if not np.isfinite(states).all():
            raise ValueError(f"{name} must be finite, got NaN or inf")
        return np.ascontiguousarray(states, dtype=np.float64)

    def set_state(self, state: np.ndarray) -> None:
        """Restore a :meth:`get_state` of the current episode bit-exactly (physics and observation).

        Raises:
            ValueError: a state of the wrong shape or not finite.
        """
        self._check_reset("set_state()")
        state = self._check_states(state, "state")
        if state.shape != (self.state_size,):
            raise ValueError(f"state must be 1-D [{self.state_size}] (from get_state), got shape {state.shape}")
        mujoco.mj_setState(self.model, self.data, state[: self._spec_size], STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        base = self.env
        current = base._get_curr_obs_combined_no_goal()
        base._prev_obs = current  # what Meta-World's step stacks as the previous frame next
        obs = np.hstack((current, state[self._spec_size :], base._get_pos_goal()))
        self._last_obs = np.clip(obs, self._obs_low, self._obs_high)

    # ---------------------------------------------------------------- scores
    def _scratch_data(self) -> mujoco.MjData:
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        return self._scratch

    def _object_distance(self, obs: np.ndarray) -> float | np.ndarray:
        """Distance between the observed main object ``obs[..., 4:7]`` and the task's target position."""
        return np.linalg.norm(obs[..., 4:7] - np.asarray(self.env._target_pos), axis=-1)

    def _progress(self, distance: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - np.asarray(distance, dtype=np.float64) / self._initial_distance, 0.0, 1.0)

    def _raw_scores(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Meta-World's ``evaluate_state`` on the observation of each state ``[N, S]`` (S: state_size or state_spec
        size), with a private MjData standing in for the env's (and for the attributes that are views into it,
        :func:`_live_views`); the gripper effort of the action it scores is the state's finger control (the last
        action's). Every attribute the scoring rebinds is put back.

        Returns:
            ``reward [N]``, ``success`` bool ``[N]``, Meta-World's ``obj_to_target [N]`` and the object-to-target
            distance ``[N]``.
        """
        base = self.env
        scratch = self._scratch_data()
        count = flat.shape[0]
        reward, success = np.empty(count), np.empty(count, dtype=bool)
        reported, distance = np.empty(count), np.empty(count)
        action = np.zeros(4, dtype=self.action_space.dtype)  # float32, as env.step gets it (some rewards follow it)
        saved = dict(vars(base))
        try:
            base.data = scratch  # Meta-World's scoring reads self.data (positions, contacts)
            for key, (field, row) in self._views.items():
                setattr(base, key, getattr(scratch, field)[row])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Meta-World's asserts / deprecations in its reward helpers
                for i in range(count):
                    mujoco.mj_setState(self.model, scratch, flat[i, : self._spec_size], STATE_SPEC)
                    mujoco.mj_forward(self.model, scratch)
                    current = base._get_curr_obs_combined_no_goal()
                    previous = flat[i, self._spec_size :] if flat.shape[1] == self.state_size else current
                    obs = np.clip(np.hstack((current, previous, base._get_pos_goal())), self._obs_low, self._obs_high)
                    action[-1] = scratch.ctrl[0]
                    value, info = base.evaluate_state(obs, action)
                    reward[i], success[i] = float(value), bool(info["success"])
                    reported[i] = float(info.get("obj_to_target", 0.0))
                    distance[i] = float(self._object_distance(obs))
        finally:
            vars(base).clear()
            vars(base).update(saved)
        return reward, success, reported, distance

    def evaluate_states(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """Score states without changing the env.

        Args:
            states: float ``[..., state_size]`` (:meth:`get_state`) or ``[..., state_size - 18]`` (the
                ``state_spec`` part, e.g. from ``MujocoDynamics``; the previous frame is then taken equal to the
                current one, which no Meta-World reward reads).

        Returns:
            ``{"success": bool [...], "task_progress": float [...], "reward": float [...]}``: Meta-World's reward
            and success from ``evaluate_state`` on the observation of each state (gripper effort: the state's
            finger control, i.e. the last action's; ``MujocoDynamics`` fills it from the real env), and the
            progress of the module docstring.
        """
        self._check_reset("evaluate_states()")
        states = self._check_states(states)
        flat = states.reshape(-1, states.shape[-1])
        reward, success, reported, distance = self._raw_scores(flat)
        progress = self._progress(reported if self._reported_distance else distance)
        lead = states.shape[:-1]
        return {"success": success.reshape(lead), "task_progress": progress.reshape(lead),
                "reward": reward.reshape(lead)}

    # ---------------------------------------------------------------- rendering
    def _check_camera(self, camera: str) -> str:
        if camera not in self._flips:
            raise ValueError(f"camera must be one of {list(self._flips)}, got {camera!r}")
        return camera

    def _get_renderer(self) -> OffscreenRenderer:
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.image_size, self.image_size)
        return self._renderer

    def render(self) -> np.ndarray | None:
        """uint8 ``[H, W, 3]`` upright frame of ``camera`` (None, with a warning, when ``render_mode`` is None)."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        return self.render_states(self.get_state()[None])[0]

    def render_states(self, states: np.ndarray, camera: str | None = None) -> np.ndarray:
        """Render states with a private MjData (the env's data is untouched), one frame at a time (tiling
        frames into one buffer changes a few edge pixels; these frames equal :meth:`render`'s exactly).

        Args:
            states: float ``[N, state_size]`` or ``[N, state_size - 18]`` (module docstring).
            camera: a model camera; None is ``camera``.

        Returns:
            uint8 ``[N, H, W, 3]``, upright (see the module docstring).
        """
        camera = self._check_camera(self.camera if camera is None else camera)
        states = self._check_states(states)
        if states.ndim != 2:
            raise ValueError(f"states must be 2-D [N, {self.state_size}], got shape {states.shape}")
        renderer = self._get_renderer()
        scratch = self._scratch_data()
        images = np.empty((states.shape[0], self.image_size, self.image_size, 3), dtype=np.uint8)
        for i, state in enumerate(states):
            mujoco.mj_setState(self.model, scratch, state[: self._spec_size], STATE_SPEC)
            mujoco.mj_kinematics(self.model, scratch)
            mujoco.mj_camlight(self.model, scratch)
            renderer.render(scratch, camera, out=images[i])
        if self._flips[camera]:
            images = np.ascontiguousarray(images[:, ::-1, ::-1])
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._scratch = None
        self.env.close()


def make_metaworld(task: str, **kwargs: Any) -> MetaWorldEnv:
    """``MetaWorldEnv(task, **kwargs)``: the entry point of the ``vip_envs/MetaWorld-<task>`` ids.

    Raises:
        ImportError: metaworld missing (``pip install vip-rl[metaworld]``).
        ValueError: unknown task or bad arguments (see :class:`MetaWorldEnv`).
    """
    return MetaWorldEnv(task, **kwargs)


# ---------------------------------------------------------------- policies
def _unwrap(env: gym.Env) -> MetaWorldEnv:
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, MetaWorldEnv):
        raise TypeError(f"env must be a vip_envs Meta-World env (MetaWorldEnv), got {type(inner).__name__}")
    return inner


def _check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating)):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
    return float(noise)


class _Expert:
    """Meta-World's scripted policy of the task plus seeded Gaussian action noise; ``__call__(obs) -> float32 [4]``."""

    def __init__(self, env: MetaWorldEnv, noise: float, seed: int | None) -> None:
        policies = _import("metaworld.policies")
        self.env = env
        self.policy = policies.ENV_POLICY_MAP[env.task]()
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.low, self.high = env.action_space.low, env.action_space.high

    def __call__(self, obs: Any) -> np.ndarray:
        with warnings.catch_warnings():  # "Constant(s) may be too high": the env clips, as the policies expect
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self.policy.get_action(self.env.observation()), dtype=np.float64)
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, self.low, self.high).astype(np.float32)


def expert(env: gym.Env, noise: float = 0.0, seed: int | None = None) -> Policy:
    """Meta-World's scripted expert (``metaworld.policies.ENV_POLICY_MAP[task]``) for the env's task.

    It reads the env's current Meta-World observation (``env.unwrapped.observation()``), so it works in any
    ``obs_mode``; its argument is ignored.

    Args:
        env: a ``vip_envs/MetaWorld-*`` env (wrapped or not), reset.
        noise: standard deviation of Gaussian noise added to each action (then clipped to the action space).
        seed: seed of the noise generator.

    Returns:
        ``policy(obs) -> float32 [4]``.

    Raises:
        TypeError: ``env`` is not a vip_envs Meta-World env.
        ValueError: negative or non-finite ``noise``.
    """
    return _Expert(_unwrap(env), _check_noise(noise), seed)


class _Play:
    """Smooth random exploration: segments of the noisy expert cut short, and low-pass filtered moves to
    random points near the object or anywhere in the hand's workspace, with a random gripper."""

    GAIN = 50.0  # action per metre of error (the mocap target moves action * 1 cm per step)

    def __init__(self, env: MetaWorldEnv, seed: int | None) -> None:
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.episode = None
        self._new_episode()

    def _new_episode(self) -> None:
        self.episode = self.env.episode_index
        self.mode, self.steps_left, self.skill = "move", 0, None
        self.target, self.grip, self.speed = np.zeros(3), -1.0, 1.0
        self.prev = np.zeros(4)

    def _new_segment(self, obs: np.ndarray) -> None:
        rng = self.rng
        self.speed = float(rng.uniform(0.4, 1.0))
        if rng.random() < 0.5:
            self.mode = "skill"
            self.skill = _Expert(self.env, noise=0.3, seed=int(rng.integers(2**31)))
            self.steps_left = int(rng.integers(15, 50))
            return
        self.mode = "move"
        if rng.random() < 0.6:  # near the object
            self.target = obs[4:7] + rng.normal(0.0, 0.05, size=3)
        else:
            self.target = rng.uniform(self.env.mocap_low, self.env.mocap_high)
        self.target = np.clip(self.target, self.env.mocap_low, self.env.mocap_high)
        self.steps_left = int(rng.integers(10, 30))
        if rng.random() < 0.5:
            self.grip = float(rng.choice([-1.0, 1.0]))

    def __call__(self, obs: Any) -> np.ndarray:
        if self.env.episode_index != self.episode:
            self._new_episode()
        state = self.env.observation()
        if self.steps_left <= 0:
            self._new_segment(state)
        self.steps_left -= 1
        if self.mode == "skill":
            raw = self.skill(obs).astype(np.float64)
        else:
            raw = np.empty(4)
            raw[:3] = np.clip(self.GAIN * (self.target - state[:3]), -self.speed, self.speed)
            raw[:3] += self.rng.normal(0.0, 0.1, size=3)
            raw[3] = self.grip
        self.prev = 0.5 * self.prev + 0.5 * raw
        return np.clip(self.prev, -1.0, 1.0).astype(np.float32)


def play_policy(env: gym.Env, seed: int | None = None) -> Policy:
    """Smooth random exploration of a Meta-World task (not the expert's path): segments of the noisy expert
    (noise 0.3) cut at a random length, and moves to random points near the object or in the workspace.

    Args:
        env: a ``vip_envs/MetaWorld-*`` env (wrapped or not).
        seed: seed of the policy's own generator.

    Returns:
        ``policy(obs) -> float32 [4]``.

    Raises:
        TypeError: ``env`` is not a vip_envs Meta-World env.
    """
    return _Play(_unwrap(env), seed)


__all__ = [
    "CAMERAS",
    "DEFAULT_CAMERA",
    "ID_PREFIX",
    "INSTALL_HINT",
    "MAX_EPISODE_STEPS",
    "METAWORLD_TASKS",
    "OBS_MODES",
    "STATE_SPEC",
    "MetaWorldEnv",
    "check_task",
    "env_id",
    "expert",
    "instructions",
    "is_available",
    "make_metaworld",
    "play_policy",
]
