"""Dynamics backends for :class:`~vip_rl.planning.mppi.MPPI`.

A backend maps ``state [E, ...]`` and sampled ``actions [E, K, T, A]`` to
:class:`Trajectories` (states after each step and, when a cost asks for them, rendered
frames), batched over the E environments and K samples:

- :class:`MujocoDynamics`: the real MuJoCo simulator of any Gymnasium MuJoCo env. Actuator-driven
  envs (the suite, gymnasium's MuJoCo tasks, FrankaKitchen) and Meta-World's mocap arm roll out with
  ``mujoco.rollout`` on a private thread pool; any other env through copies of itself stepped on worker
  threads (``backend="step"``). Each is checked against ``env.step`` at construction, and frames are
  rendered exactly as ``env.render()`` draws them (checked too). The real env is never touched.
- :class:`TorchDynamics`: a user function ``f(state [N, S], action [N, A]) -> [N, S]``
  running fully on the device.
"""
from __future__ import annotations

import copy
import gc
import time
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from vip_rl._gl import default_mujoco_gl, make_render_context_current

__all__ = ["BACKENDS", "Trajectories", "Dynamics", "DynamicsCheck", "MujocoDynamics", "TorchDynamics", "frame_steps_for"]

NEEDS_FRAMES = "frames"
NEEDS_INITIAL_FRAME = "initial_frame"
NEEDS_STATES = "states"


@dataclass
class Trajectories:
    """Rolled-out samples handed to a cost: plain data, filled by a dynamics backend.

    ``states[e, k, t]`` is the state after executing ``actions[e, k, t]``; ``frames[e, k, f]`` is
    the image after step ``frame_steps[f]`` (0-based, the last is always ``T - 1``). Embedding the
    frames is the costs' business (:func:`vip_rl.planning.costs.frame_embeddings`); they share the
    result through :attr:`embeddings`.
    """

    actions: torch.Tensor
    """``[E, K, T, A]`` the executed (clipped) actions."""
    states: np.ndarray | torch.Tensor | None = None
    """``[E, K, T, S]`` states after each step (backend's state layout)."""
    frames: np.ndarray | None = None
    """uint8 ``[E, K, F, H, W, 3]`` rendered frames of the primary camera, or None when no cost needed them."""
    frame_steps: tuple[int, ...] = ()
    """The F step indices the frames were rendered at."""
    initial_frames: np.ndarray | None = None
    """uint8 ``[E, H, W, 3]`` frames of the start states (for progress / subgoal costs)."""
    invalid: torch.Tensor | None = None
    """bool ``[E, K]``: samples whose rollout produced non-finite states (cost -> +inf)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage for this batch: ``rollout`` (preparing and simulating), ``render``, and
    ``encode`` (added by the costs that embed the frames)."""
    evaluate_states: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    """The env's state evaluator when the backend has one (``vip_envs``' ``evaluate_states`` hook:
    states ``[E, ..., S]`` -> ``{"reward", "task_progress", "success"}`` of ``[E, ...]``), for oracle costs."""
    start_states: np.ndarray | torch.Tensor | None = None
    """``[E, S]`` the states the rollouts started from (same layout as ``states``)."""
    camera_frames: dict[str, np.ndarray] = field(default_factory=dict)
    """Frames of every rendered camera by name (the primary camera's are also ``frames``)."""
    camera_initial_frames: dict[str, np.ndarray] = field(default_factory=dict)
    """Start frames of every rendered camera by name."""
    rewards: np.ndarray | None = None
    """float64 ``[E, K, T]``: the reward ``env.step`` returned at each step, from backends that step the env itself
    (``MujocoDynamics``' step backend); None otherwise. The env-reward oracle of any env
    (:class:`~vip_rl.planning.costs.OracleCost` without an ``evaluate_states`` hook)."""
    mocap: np.ndarray | None = None
    """``[E, K, T, 7 * nmocap]`` mocap targets (positions, then quaternions) after each step, from backends
    whose rollouts move them (mocap envs); None when they stay at the start state's."""
    embeddings: dict[tuple[str, int, str | None], torch.Tensor] = field(default_factory=dict, repr=False)
    """Frame embeddings shared by the costs scoring this batch, keyed ``("frames" | "initial", id(encoder),
    camera)``: ``[E, K, F, D]`` / ``[E, D]``. A backend that embeds frames itself may fill it."""

    def frames_of(self, camera: str | None = None, *, initial: bool = False) -> np.ndarray:
        """The rendered frames (``initial``: the start frames) of ``camera`` (None: the primary camera).

        Raises:
            ValueError: the backend rendered none.
        """
        if camera is None:
            frames = self.initial_frames if initial else self.frames
        else:
            frames = (self.camera_initial_frames if initial else self.camera_frames).get(camera)
        if frames is None:
            what = "start frames" if initial else "rendered frames"
            extra = f" of camera {camera!r} (rendered: {sorted(self.camera_frames)})" if camera is not None else ""
            raise ValueError(f"this cost needs {what}{extra} but the dynamics backend rendered none")
        return frames


class Dynamics(Protocol):
    """What :class:`~vip_rl.planning.mppi.MPPI` needs from a backend."""

    state_ndim: int

    def rollout(self, states: Any, actions: torch.Tensor, *, needs: frozenset[str] = frozenset()) -> Trajectories:
        """``states [E, ...]``, ``actions [E, K, T, A]`` -> :class:`Trajectories`."""
        ...


def frame_steps_for(horizon: int, render_every: int | None) -> tuple[int, ...]:
    """Steps to render: the final one only (``None``) or every ``render_every``-th and the final."""
    if render_every is None:
        return (horizon - 1,)
    steps = set(range(render_every - 1, horizon, render_every))
    steps.add(horizon - 1)
    return tuple(sorted(steps))




def _state_bits(spec: int) -> list[int]:
    return [1 << i for i in range(spec.bit_length()) if spec & (1 << i)]


def _spec_converter(model: Any, src_spec: int, dst_spec: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column maps from a ``src_spec`` state to a ``dst_spec`` one.

    Returns ``(dst_cols_from_src, src_cols, dst_cols_const)``: destination columns that are copied
    from source columns, and the remaining destination columns (to fill from a template).
    """
    import mujoco

    def layout(spec: int) -> dict[int, tuple[int, int]]:
        out, offset = {}, 0
        for bit in _state_bits(spec):
            size = mujoco.mj_stateSize(model, bit)
            out[bit] = (offset, size)
            offset += size
        return out

    src, dst = layout(src_spec), layout(dst_spec)
    dst_cols, src_cols, const_cols = [], [], []
    for bit, (d_off, size) in dst.items():
        if bit in src:
            s_off = src[bit][0]
            dst_cols += range(d_off, d_off + size)
            src_cols += range(s_off, s_off + size)
        else:
            const_cols += range(d_off, d_off + size)
    return np.array(dst_cols, dtype=np.int64), np.array(src_cols, dtype=np.int64), np.array(const_cols, dtype=np.int64)


def _unwrap_mujoco(env: Any) -> Any:
    """The outermost layer of ``env``'s wrapper chain that exposes model/data/frame_skip (a wrapper such
    as ``vip_envs.kitchen.KitchenEnv`` adds the planner hooks above the upstream env), else ``unwrapped``
    (which may count its physics steps otherwise, e.g. gymnasium-robotics' ``n_substeps``: step backend)."""
    layer = env
    while layer is not None:
        if all(hasattr(layer, attr) for attr in ("model", "data", "frame_skip")):
            return _check_mujoco(env, layer)
        layer = getattr(layer, "env", None)
    return _check_mujoco(env, getattr(env, "unwrapped", env))


def _check_mujoco(env: Any, unwrapped: Any) -> Any:
    for attr in ("model", "data"):
        if not hasattr(unwrapped, attr):
            name = getattr(getattr(env, "spec", None), "id", None) or type(unwrapped).__name__
            raise TypeError(
                f"MujocoDynamics needs a MuJoCo env exposing unwrapped.model/.data; env {name!r} has no {attr!r}"
            )
    import mujoco

    if not isinstance(unwrapped.model, mujoco.MjModel) or not isinstance(unwrapped.data, mujoco.MjData):
        raise TypeError(f"MujocoDynamics: env {type(unwrapped).__name__!r} .model/.data are not mujoco.MjModel/MjData")
    return unwrapped


def _physics_steps(layer: Any) -> int:
    """Physics steps per ``env.step``: ``frame_skip`` (gymnasium's MujocoEnv, the suite, Meta-World), else 0 (unknown:
    only the step backend applies)."""
    value = getattr(layer, "frame_skip", None)
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else 0


# -- rendering with the env's own view ------------------------------------------------------------
@dataclass
class _RenderView:
    """How the private renderer draws a frame: the env's camera, size and visual options."""

    camera: Any
    """``mujoco.MjvCamera`` (a copy: the env's own camera object is never handed to our renderer)."""
    option: Any
    """``mujoco.MjvOption``."""
    scene_flags: np.ndarray | None
    """The env viewer's ``mjtRndFlag`` scene flags (None: MuJoCo's defaults)."""
    width: int
    height: int
    max_geom: int
    description: str


def _copy_camera(camera: Any) -> Any:
    import mujoco

    out = mujoco.MjvCamera()
    for name in ("type", "fixedcamid", "trackbodyid", "distance", "azimuth", "elevation", "orthographic"):
        setattr(out, name, getattr(camera, name))
    out.lookat[:] = camera.lookat
    return out


def _describe_camera(model: Any, camera: Any) -> str:
    import mujoco

    if camera.type == mujoco.mjtCamera.mjCAMERA_FIXED:
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, camera.fixedcamid)
        return f"camera {name!r} (id {camera.fixedcamid})"
    kind = {int(mujoco.mjtCamera.mjCAMERA_TRACKING): "tracking camera"}.get(int(camera.type), "free camera")
    return (f"{kind} (lookat {np.round(np.asarray(camera.lookat), 4).tolist()}, distance {camera.distance:.4g}, "
            f"azimuth {camera.azimuth:.4g}, elevation {camera.elevation:.4g})")


def _named_camera(model: Any, name: str) -> Any:
    import mujoco

    camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if camera_id < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"camera must name a camera of the model, got {name!r} (cameras: {names})")
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = camera_id
    return camera


def _env_view(layer: Any) -> _RenderView:
    """The camera, size and options of ``layer.render()``: gymnasium's ``MujocoRenderer`` (its live
    viewer's camera and options when it has rendered, else the same set-up rebuilt: a named camera,
    or the free camera with ``default_camera_config``), else MuJoCo's default free camera."""
    import mujoco

    model = layer.model
    renderer = getattr(layer, "mujoco_renderer", None)
    option, flags, max_geom = mujoco.MjvOption(), None, 10000
    if renderer is not None and hasattr(renderer, "camera_id"):  # gymnasium.envs.mujoco.MujocoRenderer
        width, height = int(renderer.width or 480), int(renderer.height or 480)
        max_geom = int(getattr(renderer, "max_geom", 1000))
        viewer = getattr(renderer, "_viewers", {}).get("rgb_array")
        if viewer is not None:
            option = copy.deepcopy(viewer.vopt)
            flags = np.array(viewer.scn.flags)
        else:
            for flag, value in (getattr(renderer, "_vopt", None) or {}).items():
                option.flags[flag] = value
        camera_id = renderer.camera_id
        if camera_id is not None and camera_id >= 0:
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            camera.fixedcamid = int(camera_id)
        elif viewer is not None:
            camera = _copy_camera(viewer.cam)
        else:  # what OffScreenViewer._init_camera + MujocoRenderer._set_cam_config will do
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            camera.fixedcamid = -1
            camera.lookat[:] = np.median(layer.data.geom_xpos, axis=0)
            camera.distance = model.stat.extent
            for key, value in (renderer.default_cam_config or {}).items():
                if isinstance(value, np.ndarray):
                    getattr(camera, key)[:] = value
                else:
                    setattr(camera, key, value)
        source = "the env's gymnasium MujocoRenderer"
    else:
        width = int(getattr(layer, "width", 0) or 0) or 96
        height = int(getattr(layer, "height", 0) or 0) or 96
        camera = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, camera)
        source = "MuJoCo's default free camera (the env has neither a MujocoRenderer nor a render_states hook)"
    description = f"{_describe_camera(model, camera)} at {height}x{width}, from {source}"
    return _RenderView(camera, option, flags, width, height, max_geom, description)


# -- cloning an env for the step backend and the construction check -------------------------------
_RENDER_WORDS = ("Renderer", "Viewer", "GLContext", "MjrContext", "MjvScene")


def _is_render_object(obj: Any) -> bool:
    cls = type(obj)
    return any(word in cls.__name__ for word in _RENDER_WORDS) or cls.__module__.split(".")[0] in ("OpenGL", "glfw")


def _walk(roots: Sequence[Any], depth: int = 5) -> list[Any]:
    """Objects reachable from ``roots`` through attributes and containers (``depth`` levels), without
    descending into arrays, MuJoCo structs or render objects."""
    import mujoco

    seen: dict[int, Any] = {}
    frontier = list(roots)
    for _ in range(depth):
        next_frontier = []
        for obj in frontier:
            if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, np.ndarray, np.generic)):
                continue
            seen[id(obj)] = obj
            if isinstance(obj, (mujoco.MjModel, mujoco.MjData, types.ModuleType)) or _is_render_object(obj):
                continue
            if isinstance(obj, dict):
                next_frontier += list(obj.values())
            elif isinstance(obj, (list, tuple, set, frozenset)):
                next_frontier += list(obj)
            elif hasattr(obj, "__dict__") and not isinstance(obj, type):
                next_frontier += list(vars(obj).values())
        frontier = next_frontier
    return list(seen.values())


class _EnvClone:
    """A private copy of an env's MuJoCo layer (and the wrappers below it) that steps its own MjData.

    Python attributes are deep-copied from the real env (render objects dropped, the MjModel shared:
    MuJoCo only reads it), the MjData is a copy of the real one (``mj_copyData``: state, controls,
    mocap, warm start, derived quantities). :meth:`reset` puts both back before each sample: the
    attributes as they were (rebound ones, arrays changed in place, numpy generators) and the data
    with the sample's start state.
    """

    def __init__(self, layer: Any, data: Any, start: Any) -> None:
        import mujoco

        self.model = layer.model
        self.data, self.start = data, start
        mujoco.mj_copyData(start, self.model, layer.data)
        mujoco.mj_copyData(data, self.model, layer.data)
        chain = [layer]  # the layer and the wrappers / envs below it, each copied attribute by attribute
        while hasattr(vars(chain[-1]).get("env"), "__dict__") and len(chain) < 64:
            chain.append(vars(chain[-1])["env"])
        memo: dict[int, Any] = {}
        for obj in _walk(chain):
            if isinstance(obj, (mujoco.MjModel, types.ModuleType)):
                memo[id(obj)] = obj  # shared: MuJoCo only reads the model; modules are not copied
            elif isinstance(obj, mujoco.MjData):
                memo[id(obj)] = data if obj is layer.data else mujoco.MjData(obj.model)
            elif _is_render_object(obj):
                memo[id(obj)] = None
        clones = [object.__new__(type(obj)) for obj in chain]
        for obj, new in zip(chain, clones):
            memo[id(obj)] = new
        for obj, new in zip(chain, clones):
            new.__dict__.update(copy.deepcopy(vars(obj), memo))
        self.layer = clones[0]
        self._snapshots = []
        for new in clones:
            attrs = dict(vars(new))
            arrays = {k: v.copy() for k, v in attrs.items() if isinstance(v, np.ndarray) and v.flags.writeable}
            generators = {k: copy.deepcopy(v.bit_generator.state) for k, v in attrs.items()
                          if isinstance(v, np.random.Generator)}
            self._snapshots.append((new, attrs, arrays, generators))

    def reset(self, state: np.ndarray, full_spec: int, full_size: int, nv: int, nmocap: int) -> None:
        """Attributes and data as at the copy, then the start ``state`` (our layout) into the data."""
        import mujoco

        for obj, attrs, arrays, generators in self._snapshots:
            vars(obj).clear()
            vars(obj).update(attrs)
            for key, saved in arrays.items():
                np.copyto(attrs[key], saved)
            for key, generator_state in generators.items():
                attrs[key].bit_generator.state = generator_state
        mujoco.mj_copyData(self.data, self.model, self.start)
        _set_state(self.model, self.data, state, full_spec, full_size, nv, nmocap)


def _set_state(model: Any, data: Any, state: np.ndarray, full_spec: int, full_size: int, nv: int, nmocap: int) -> None:
    import mujoco

    mujoco.mj_setState(model, data, state[:full_size], full_spec)
    data.qacc_warmstart[:] = state[full_size : full_size + nv]
    if nmocap:
        offset = full_size + nv
        data.mocap_pos[:] = state[offset : offset + 3 * nmocap].reshape(nmocap, 3)
        data.mocap_quat[:] = state[offset + 3 * nmocap : offset + 7 * nmocap].reshape(nmocap, 4)


def _read_state(model: Any, data: Any, full_spec: int, full_size: int, nv: int, nmocap: int) -> np.ndarray:
    import mujoco

    out = np.empty(full_size + nv + 7 * nmocap, dtype=np.float64)
    mujoco.mj_getState(model, data, out[:full_size], full_spec)
    out[full_size : full_size + nv] = data.qacc_warmstart
    if nmocap:
        out[full_size + nv : full_size + nv + 3 * nmocap] = data.mocap_pos.ravel()
        out[full_size + nv + 3 * nmocap :] = data.mocap_quat.ravel()
    return out


@dataclass(frozen=True)
class DynamicsCheck:
    """What :class:`MujocoDynamics` measured at construction (``dynamics.check``)."""

    backend: str
    """The backend in use: ``"actuator"``, ``"mocap"`` or ``"step"``."""
    max_qpos_diff: float | None
    """Max ``|qpos|`` difference between a ``check_steps`` rollout from the current state and ``env.step``
    with the same actions on a copy of the env (None: not checked, ``check_steps=0``)."""
    render_diff: float | None
    """Mean absolute pixel difference (0-255) between ``env.render()`` and the backend's frame of the
    current state (None: not checked; see :attr:`render_note`)."""
    render_view: str
    """How the backend renders (camera, size, source)."""
    render_note: str = ""
    """Why the render check did not run ("" when it ran)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Backends tried before :attr:`backend` (``backend="auto"``) and why each was refused."""


BACKENDS = ("auto", "actuator", "mocap", "step")
"""``MujocoDynamics(backend=...)`` values."""


class MujocoDynamics:
    """Roll sampled action sequences out in the MuJoCo simulator of a Gymnasium env.

    Three backends, picked by ``backend="auto"`` from how the env drives its arm:

    - ``"actuator"``: actions are controls (identity, or the env's ``action_to_ctrl`` hook; FrankaKitchen's
      ``state_action_to_ctrl`` goes one control step at a time). All ``E * K`` samples run in one
      ``mujoco.rollout`` call on ``nthread`` worker threads.
    - ``"mocap"``: Meta-World's ``set_xyz_action`` (action ``[:3]`` moves the mocap target by
      ``action_scale``, clipped to ``mocap_low``/``mocap_high``, quaternion fixed; ``[-1]`` drives the two
      finger actuators), the mocap targets handed to ``mujoco.rollout`` as controls of every substep.
    - ``"step"``: always correct, slower. Each worker thread steps private copies of the env (Python
      attributes deep-copied, render objects dropped, the MjModel shared read-only, an own MjData) with
      ``env.step``; the real env is only read. The copies take the MuJoCo state from ``states`` and everything
      else (episode counters, the task, random generators) from the real env at the time of the rollout.

    At construction the chosen backend rolls ``check_steps`` random actions out from the current state and
    compares qpos with ``env.step`` on a copy; ``"auto"`` falls back to ``"step"`` (with a warning) when the
    fast backend differs by more than ``qpos_tolerance``, an explicit backend raises. Frames are the env's
    own frames: the env's ``render_states`` hook (``vip_envs``), else a private renderer with exactly the
    camera, size and visual options of ``env.render()`` (gymnasium's ``MujocoRenderer``: the named camera, or
    the free camera with ``default_camera_config``). The construction renders the current state both ways
    and raises when they differ by more than ``pixel_tolerance``. Results are in :attr:`check`. Gymnasium's free
    camera looks at the median geom position of the state its viewer was created in (the env's first render, or
    this construction's); Meta-World's ``corner`` camera draws upside down, and so do the rollouts (flip goal
    images and rollout frames alike, or neither).

    The state is the full physics state plus the solver warm start and the mocap targets, so a rollout
    reproduces ``env.step`` to the last digit (1e-6 on qpos is checked). Only the frames a cost needs are
    rendered (the final step by default, every ``render_every``-th step optionally). The real env is
    never stepped, reset or written.

    Args:
        env: a Gymnasium MuJoCo env, or a sequence of E such envs (one per planned environment,
            same model sizes) for batched planning.
        camera: None (the camera of ``env.render()``), a camera name, or a sequence of names (all are
            rendered; the first is ``Trajectories.frames``, all are in ``camera_frames``); named cameras are
            drawn at the env's size with its options.
        render_every: render every k-th step as well as the final one (None: final only).
        image_size: render square frames of this side instead of the env's size (frames then differ from
            ``env.render()`` by design and the render check is skipped); ``render_states`` hooks render at the
            env's own size.
        nthread: worker threads of the rollout pool (0 or 1: the calling thread).
        backend: one of :data:`BACKENDS`.
        check_steps: steps of the construction rollout check (0: no check).
        qpos_tolerance: the largest qpos difference the check accepts.
        pixel_tolerance: the largest mean absolute pixel difference (0-255) the render check accepts.

    Raises:
        TypeError: if ``env`` is not a MuJoCo env, or the step backend cannot copy it.
        ValueError: bad arguments; the chosen backend's rollout differs from ``env.step`` (naming the
            backend and the qpos difference); the rollout frames differ from ``env.render()`` (naming the
            camera and size of both).

    Example:
        >>> with MujocoDynamics(env, render_every=None) as dyn:           # doctest: +SKIP
        ...     print(dyn.check.backend, dyn.check.max_qpos_diff, dyn.check.render_diff)
        ...     planner = MPPI(cfg, dyn, cost)
        ...     action = planner.command(dyn.get_state())
    """

    state_ndim = 1

    def __init__(
        self,
        env: Any,
        *,
        camera: str | Sequence[str] | None = None,
        render_every: int | None = None,
        image_size: int | None = None,
        nthread: int = 2,
        backend: str = "auto",
        check_steps: int = 5,
        qpos_tolerance: float = 1e-6,
        pixel_tolerance: float = 1.0,
    ) -> None:
        import mujoco
        import mujoco.rollout

        envs = list(env) if isinstance(env, (list, tuple)) else [env]
        if not envs:
            raise ValueError("env must be an env or a non-empty sequence of envs, got an empty sequence")
        self.envs = envs
        self.unwrapped = [_unwrap_mujoco(e) for e in envs]
        if render_every is not None and (isinstance(render_every, bool) or not isinstance(render_every, int) or render_every <= 0):
            raise ValueError(f"render_every must be None or a positive int, got {render_every!r}")
        if not isinstance(nthread, int) or nthread < 0:
            raise ValueError(f"nthread must be a non-negative int, got {nthread!r}")
        if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
            raise ValueError(f"image_size must be None or a positive int, got {image_size!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        if isinstance(check_steps, bool) or not isinstance(check_steps, int) or check_steps < 0:
            raise ValueError(f"check_steps must be a non-negative int, got {check_steps!r}")
        for name, value in (("qpos_tolerance", qpos_tolerance), ("pixel_tolerance", pixel_tolerance)):
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        first = self.unwrapped[0]
        self.models = [u.model for u in self.unwrapped]
        for i, m in enumerate(self.models):
            if (m.nq, m.nv, m.nu, m.na, m.nmocap) != (self.models[0].nq, self.models[0].nv, self.models[0].nu,
                                                      self.models[0].na, self.models[0].nmocap):
                raise ValueError(f"env[{i}] has a model of different size than env[0]; plan each task separately")
        self.model = self.models[0]
        self.frame_skip = _physics_steps(first)
        """Physics steps per env step (0: unknown, only the step backend applies)."""
        if camera is None or isinstance(camera, str):
            self.cameras: tuple[str | None, ...] = (camera,)
        else:
            self.cameras = tuple(camera)
            if not self.cameras or not all(isinstance(c, str) for c in self.cameras):
                raise ValueError(f"camera must be None, a name or a non-empty sequence of names, got {camera!r}")
        self.camera = self.cameras[0]
        self.render_every = render_every
        self.full_spec = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
        self.full_size = mujoco.mj_stateSize(self.model, self.full_spec)
        self.nv = self.model.nv
        self.nmocap = self.model.nmocap
        # our state: FULLPHYSICS, qacc_warmstart [nv], mocap_pos [3 * nmocap], mocap_quat [4 * nmocap]
        self.nstate = self.full_size + self.nv + 7 * self.nmocap
        self.env_spec = int(getattr(first, "state_spec", self.full_spec))
        self._to_env = _spec_converter(self.model, self.full_spec, self.env_spec)
        self.env_state_size = mujoco.mj_stateSize(self.model, self.env_spec)
        self.action_to_ctrl: Callable[[np.ndarray], np.ndarray] | None = getattr(first, "action_to_ctrl", None)
        # envs whose control target depends on the state (FrankaKitchen): controls per control step
        self.state_action_to_ctrl: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = (
            None if self.action_to_ctrl is not None else getattr(first, "state_action_to_ctrl", None))
        self.render_hook = getattr(first, "render_states", None)
        self.evaluate_hook = getattr(first, "evaluate_states", None)
        self.image_size = image_size
        self.nthread = nthread
        self._closed = True  # until the pools exist
        self._pool = mujoco.rollout.Rollout(nthread=nthread if nthread > 1 else 0)
        self._datas = [mujoco.MjData(self.model) for _ in range(max(1, nthread))]
        self._scratch = mujoco.MjData(self.model)  # private data for rendering / state conversion
        self._step_datas: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._renderer: Any = None
        self._closed = False
        self.backend = self._choose_backend(backend, check_steps, float(qpos_tolerance))
        reference = self._reference_frame(image_size)
        self._view: _RenderView | None = None if self.render_hook is not None else _env_view(first)
        if self._view is not None and image_size is not None:
            self._view.width = self._view.height = image_size
        if self._view is not None:
            for name in self.cameras:
                if name is not None:
                    try:
                        _named_camera(self.model, name)
                    except ValueError:
                        self.close()
                        raise
        self.check = self._check_render(reference, float(pixel_tolerance))

    # -- backend selection and the construction checks ----------------------------------------
    def detect_backend(self) -> str:
        """The backend ``"auto"`` tries first: ``"mocap"`` for Meta-World-style envs (``set_xyz_action`` and
        mocap bodies), ``"actuator"`` when the env has a control hook or its actions are as many as its
        actuators, else ``"step"``."""
        layer = self.unwrapped[0]
        if not self.frame_skip:
            return "step"
        if self.nmocap and all(hasattr(layer, a) for a in ("set_xyz_action", "action_scale", "mocap_low", "mocap_high")):
            return "mocap"
        action_dim = int(np.prod(getattr(self.envs[0].action_space, "shape", ()) or (0,)))
        if self.action_to_ctrl is not None or self.state_action_to_ctrl is not None or action_dim == self.model.nu:
            return "actuator"
        return "step"

    def _choose_backend(self, backend: str, check_steps: int, tolerance: float) -> str:
        self._rejected_backends: dict[str, str] = {}
        self.max_qpos_diff: float | None = None
        if backend != "auto":
            order = [backend]
        else:
            detected = self.detect_backend()
            order = [detected] if detected == "step" else [detected, "step"]
        if check_steps == 0:
            return order[0]
        actions = self._check_actions(check_steps, num_samples=2, seed=0)
        reference = self._reference_qpos(actions)
        for candidate in order:
            self.backend = candidate
            try:
                diff = self._qpos_error(actions, reference)
            except ValueError as err:  # e.g. actions that are not controls
                problem = str(err)
            else:
                if diff <= tolerance:
                    self.max_qpos_diff = diff
                    if self._rejected_backends:
                        warnings.warn(
                            f"MujocoDynamics: using the slower {candidate!r} backend; "
                            + "; ".join(f"{b!r}: {why}" for b, why in self._rejected_backends.items()),
                            stacklevel=3,
                        )
                    return candidate
                problem = (f"a {check_steps}-step rollout from the current state differs from env.step with the same "
                           f"actions by max |qpos| {diff:.3g} > qpos_tolerance {tolerance:g}")
            self._rejected_backends[candidate] = problem
        self.close()
        raise ValueError(
            "MujocoDynamics cannot reproduce this env's steps: "
            + "; ".join(f"backend {b!r}: {why}" for b, why in self._rejected_backends.items())
            + ". Give the env an action_to_ctrl hook, or check that env.step depends only on the MuJoCo state "
            "(check_steps=0 or a larger qpos_tolerance accepts the difference)"
        )

    def _check_actions(self, steps: int, *, num_samples: int, seed: int) -> np.ndarray:
        """Uniform random actions ``[1, num_samples, steps, A]`` in the action space (infinite bounds: +-1)."""
        space = self.envs[0].action_space
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        rng = np.random.default_rng(seed)
        return rng.uniform(low, high, (1, num_samples, steps, *space.shape)).astype(space.dtype or np.float32)

    def _reference_qpos(self, actions: np.ndarray) -> np.ndarray:
        """qpos ``[K, T, nq]`` after ``env.step`` with ``actions [1, K, T, A]`` on fresh copies of env[0].

        Raises:
            ValueError: a copy of the env cannot step (e.g. an env that needs a reset first).
        """
        import mujoco

        layer = self.unwrapped[0]
        num_samples, steps = actions.shape[1:3]
        out = np.empty((num_samples, steps, self.model.nq))
        for k in range(num_samples):
            try:
                reference = _EnvClone(layer, mujoco.MjData(layer.model), mujoco.MjData(layer.model))
                for t in range(steps):
                    reference.layer.step(actions[0, k, t])
                    out[k, t] = reference.data.qpos
            except Exception as err:  # noqa: BLE001 - any env error, reported with what to do
                self.close()
                raise ValueError(
                    f"env: {type(layer).__name__} could not be copied and stepped from the current state "
                    f"({type(err).__name__}: {err}); reset the env before building MujocoDynamics (an env that cannot "
                    "be deep-copied needs check_steps=0 and a mujoco.rollout backend)"
                ) from err
        return out

    def _qpos_error(self, actions: np.ndarray, reference: np.ndarray) -> float:
        full, _, _ = self._simulate(self.get_state(0)[None], actions)
        diff = np.abs(full[0, :, :, 1 : 1 + self.model.nq] - reference)
        return float(diff.max()) if np.isfinite(diff).all() else float("inf")

    def rollout_error(self, *, steps: int = 5, num_samples: int = 2, seed: int = 0) -> float:
        """Max ``|qpos|`` difference between this backend's rollout of ``num_samples`` random action sequences
        of ``steps`` steps from env[0]'s current state and ``env.step`` with the same actions on copies of
        the env (the real env is not touched): the construction check, callable at any time."""
        actions = self._check_actions(steps, num_samples=num_samples, seed=seed)
        return self._qpos_error(actions, self._reference_qpos(actions))

    def _reference_frame(self, image_size: int | None) -> tuple[np.ndarray | None, str]:
        """``env.render()`` now (the outer env, or the MuJoCo layer when the outer one wants a reset first)."""
        if image_size is not None and self.render_hook is None:
            return None, f"image_size={image_size} asks for another size than env.render()"
        # Freeing any EGL context (a dropped env's viewer, a closed renderer) calls eglReleaseThread, which
        # leaves no context current, and gymnasium's viewer then reads back a black frame. A dropped viewer
        # caught in a reference cycle is freed whenever the garbage collector next runs, which may be in the
        # middle of env.render() below: collect that garbage now, then make the env's context current.
        gc.collect()
        self._give_back_gl_context()
        for target in (self.envs[0], self.unwrapped[0]):
            if getattr(target, "render_mode", "rgb_array") != "rgb_array":
                return None, f"the env's render_mode is {getattr(target, 'render_mode', None)!r}, not 'rgb_array'"
            try:
                frame = target.render()
            except Exception as err:  # noqa: BLE001 - e.g. gymnasium's ResetNeeded: try the inner layer
                note = f"env.render() raised {type(err).__name__}: {err}"
                continue
            if frame is None:
                return None, "env.render() returned None"
            if not np.any(frame):  # all black: read back with no GL context current; once more with the env's
                self._give_back_gl_context()
                frame = target.render()
            return np.asarray(frame), ""
        return None, note

    def _check_render(self, reference: tuple[np.ndarray | None, str], tolerance: float) -> DynamicsCheck:
        frame, note = reference
        view = "the env's render_states hook" if self._view is None else self._view.description
        diff = None
        if frame is not None:
            state = self.get_state(0)
            ours = self.render(state[None, None, : self.full_size], camera=None, mocap=state[None, None, self.full_size + self.nv :])[0, 0]
            if ours.shape != frame.shape:
                self.close()
                raise ValueError(
                    f"rollout frames are {list(ours.shape)} but env.render() gives {list(frame.shape)}: size differs "
                    f"(rollouts render {view}); pass image_size=None or make the env render at the planner's size"
                )
            diff = float(np.abs(ours.astype(np.int16) - frame.astype(np.int16)).mean())
            if diff > tolerance:
                self.close()
                layer = self.unwrapped[0]
                env_camera = {k: getattr(layer, k) for k in ("camera_name", "camera_id", "cameras") if getattr(layer, k, None) is not None}
                if not np.any(frame) and np.any(ours):
                    raise ValueError(
                        f"env.render() gives an all-black {frame.shape[0]}x{frame.shape[1]} frame, twice, while rollouts "
                        f"render {view}: the env's renderer drew with no GL context current (freeing another "
                        "renderer's context releases the current one). Render the env once after closing other envs, "
                        "or pass pixel_tolerance=float('inf') to skip this check"
                    )
                raise ValueError(
                    f"rollout frames differ from env.render() by a mean of {diff:.2f}/255 (pixel_tolerance {tolerance:g}): "
                    f"rollouts render {view}; the env's render() uses {env_camera or 'a camera this backend cannot read'} "
                    f"at {frame.shape[0]}x{frame.shape[1]}. The camera or the render options differ: give the env a "
                    "render_states(states, camera=None) hook or render through gymnasium's MujocoRenderer"
                )
        return DynamicsCheck(backend=self.backend, max_qpos_diff=self.max_qpos_diff, render_diff=diff,
                             render_view=view, render_note=note, rejected=dict(self._rejected_backends))

    # -- state -----------------------------------------------------------------------------
    def get_state(self, index: int | None = None) -> np.ndarray:
        """The current full state of the real env(s): float64 ``[nstate]`` for ``index``, or
        ``[E, nstate]`` for all envs when ``index`` is None and there are several. Layout: FULLPHYSICS
        ``[full_size]``, ``qacc_warmstart [nv]``, ``mocap_pos [3 * nmocap]``, ``mocap_quat [4 * nmocap]``."""

        def read(unwrapped: Any) -> np.ndarray:
            return _read_state(unwrapped.model, unwrapped.data, self.full_spec, self.full_size, self.nv, self.nmocap)

        if index is None:
            if len(self.unwrapped) == 1:
                return read(self.unwrapped[0])
            return np.stack([read(u) for u in self.unwrapped])
        return read(self.unwrapped[index])

    def _env_template(self, env_index: int) -> np.ndarray:
        import mujoco

        unwrapped = self.unwrapped[env_index]
        out = np.empty(self.env_state_size, dtype=np.float64)
        mujoco.mj_getState(unwrapped.model, unwrapped.data, out, self.env_spec)
        return out

    def to_env_states(self, full_states: np.ndarray, env_index: int = 0) -> np.ndarray:
        """FULLPHYSICS states ``[..., full_size]`` -> the env's ``state_spec`` layout ``[..., nenv]``
        (components outside FULLPHYSICS, e.g. mocap, are taken from the real env now)."""
        dst_cols, src_cols, const_cols = self._to_env
        if self.env_spec == self.full_spec:
            return full_states[..., : self.full_size]
        out = np.empty((*full_states.shape[:-1], self.env_state_size), dtype=np.float64)
        out[..., dst_cols] = full_states[..., src_cols]
        if const_cols.size:
            out[..., const_cols] = self._env_template(env_index)[const_cols]
        return out

    # -- rollout ---------------------------------------------------------------------------
    def controls(self, actions: np.ndarray) -> np.ndarray:
        """Actions ``[..., A]`` -> MuJoCo controls ``[..., nu]`` (the env's ``action_to_ctrl`` or identity)."""
        ctrl = self.action_to_ctrl(actions) if self.action_to_ctrl is not None else actions
        ctrl = np.asarray(ctrl, dtype=np.float64)
        if ctrl.shape[-1] != self.model.nu:
            raise ValueError(
                f"actions map to controls of size {ctrl.shape[-1]}, but the model has nu={self.model.nu}; "
                "give the env an action_to_ctrl hook, or use backend='step'"
            )
        return ctrl

    def _with_mocap(self, ctrl: np.ndarray, mocap: np.ndarray) -> tuple[np.ndarray, int]:
        """Controls ``[N, S, nu]`` and mocap targets ``[N, S, 7 * nmocap]`` -> rollout controls and their spec."""
        import mujoco

        spec = int(mujoco.mjtState.mjSTATE_CTRL)
        if not self.nmocap:
            return np.ascontiguousarray(ctrl), spec
        spec |= int(mujoco.mjtState.mjSTATE_MOCAP_POS) | int(mujoco.mjtState.mjSTATE_MOCAP_QUAT)
        return np.ascontiguousarray(np.concatenate([ctrl, mocap], -1)), spec

    def _rollout_state_controls(self, models: Any, init: np.ndarray, warm: np.ndarray, mocap: np.ndarray,
                                actions: np.ndarray) -> np.ndarray:
        """Rollout for envs whose controls depend on the state: one ``mujoco.rollout`` call per control
        step (``frame_skip`` physics steps, all samples on the thread pool), controls from the env's
        ``state_action_to_ctrl`` at that step's start. The solver warm start is carried into the first
        control step only, so later steps can differ from ``env.step`` in the last digits.

        Returns:
            float64 ``[N, T, full_size]``.
        """
        num, horizon = actions.shape[:2]
        out = np.empty((num, horizon, self.full_size), dtype=np.float64)
        current = init
        for t in range(horizon):
            ctrl = np.asarray(self.state_action_to_ctrl(current, actions[:, t]), dtype=np.float64)
            if ctrl.shape != (num, self.model.nu):
                raise ValueError(f"state_action_to_ctrl must return [N={num}, nu={self.model.nu}], got {list(ctrl.shape)}")
            ctrl, spec = self._with_mocap(np.broadcast_to(ctrl[:, None], (num, self.frame_skip, self.model.nu)),
                                          np.broadcast_to(mocap[:, None], (num, self.frame_skip, mocap.shape[-1])))
            states, _ = self._pool.rollout(models, self._datas, current, ctrl, control_spec=spec,
                                           initial_warmstart=warm if t == 0 else None)
            current = out[:, t] = states[:, -1]
        return out

    def _mocap_targets(self, start_mocap: np.ndarray, actions: np.ndarray, env_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Meta-World's ``set_xyz_action`` and finger controls, step by step.

        Args:
            start_mocap: float64 ``[N, 7 * nmocap]`` the start states' mocap targets.
            actions: ``[N, T, A]`` in the dtype ``env.step`` receives (the arithmetic follows it bit for bit).
            env_index: int ``[N]`` the env of each sample (its ``action_scale`` and mocap bounds).

        Returns:
            ``ctrl [N, T, nu]`` and mocap targets ``[N, T, 7 * nmocap]`` after each step.
        """
        num, horizon = actions.shape[:2]
        nmocap = self.nmocap
        if self.model.nu != 2:
            raise ValueError(f"the mocap backend drives two finger actuators (Meta-World), but the model has nu={self.model.nu}")
        layers = self.unwrapped
        scale = np.array([layers[e].action_scale for e in range(len(layers))])[env_index]
        low = np.stack([np.asarray(layers[e].mocap_low, dtype=np.float64) for e in range(len(layers))])[env_index]
        high = np.stack([np.asarray(layers[e].mocap_high, dtype=np.float64) for e in range(len(layers))])[env_index]
        pos = start_mocap[:, : 3 * nmocap].reshape(num, nmocap, 3).copy()
        quat = np.broadcast_to(np.array([1.0, 0.0, 1.0, 0.0]), (num, horizon, nmocap, 4)).reshape(num, horizon, 4 * nmocap)
        mocap = np.empty((num, horizon, 7 * nmocap), dtype=np.float64)
        same_scale = bool(np.all(scale == scale[0]))
        for t in range(horizon):
            step = np.clip(actions[:, t, :3], -1, 1)
            delta = step * layers[0].action_scale if same_scale else step * scale[:, None].astype(step.dtype)
            pos = pos + delta[:, None, :]
            pos[:, 0] = np.clip(pos[:, 0], low, high)
            mocap[:, t, : 3 * nmocap] = pos.reshape(num, -1)
        mocap[:, :, 3 * nmocap :] = quat
        grip = np.asarray(actions[:, :, -1], dtype=np.float64)
        return np.stack([grip, -grip], -1), mocap

    def _simulate(self, states_np: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``states [E, nstate]``, ``actions [E, K, T, A]`` (the dtype ``env.step`` gets) -> FULLPHYSICS states
        ``[E, K, T, full_size]``, for mocap envs mocap targets ``[E, K, T, 7 * nmocap]``, and for the step backend
        the rewards ``env.step`` returned ``[E, K, T]`` (None for the others)."""
        num_envs, num_k, horizon = actions.shape[:3]
        if self.backend == "step":
            return self._rollout_step(states_np, actions)
        if not self.frame_skip:
            raise ValueError(f"the {self.backend} backend needs the env's physics steps per env step (frame_skip); "
                             f"{type(self.unwrapped[0]).__name__} has none: use backend='step'")
        flat = actions.reshape(num_envs * num_k, horizon, -1)
        init = np.repeat(states_np[:, : self.full_size], num_k, axis=0)
        warm = np.repeat(states_np[:, self.full_size : self.full_size + self.nv], num_k, axis=0)
        start_mocap = np.repeat(states_np[:, self.full_size + self.nv :], num_k, axis=0)
        models = self.model if len(self.models) == 1 else [m for m in self.models for _ in range(num_k)]
        mocap_out = None
        if self.backend == "mocap":
            ctrl, mocap_out = self._mocap_targets(start_mocap, flat, np.repeat(np.arange(num_envs), num_k))
        elif self.state_action_to_ctrl is not None:
            full = self._rollout_state_controls(models, init, warm, start_mocap, flat.astype(np.float64))
            return full.reshape(num_envs, num_k, horizon, self.full_size), None, None
        else:
            ctrl = self.controls(flat.astype(np.float64))
            mocap_out = np.broadcast_to(start_mocap[:, None], (*ctrl.shape[:2], start_mocap.shape[-1]))
        num = num_envs * num_k
        ctrl = np.broadcast_to(ctrl[:, :, None], (num, horizon, self.frame_skip, ctrl.shape[-1])).reshape(num, horizon * self.frame_skip, -1)
        mocap = np.broadcast_to(mocap_out[:, :, None], (num, horizon, self.frame_skip, mocap_out.shape[-1])).reshape(num, horizon * self.frame_skip, -1)
        ctrl, spec = self._with_mocap(ctrl, mocap)
        out, _ = self._pool.rollout(models, self._datas, init, ctrl, control_spec=spec, initial_warmstart=warm)
        full = out[:, self.frame_skip - 1 :: self.frame_skip].reshape(num_envs, num_k, horizon, self.full_size)
        if self.backend != "mocap":
            return full, None, None
        return full, mocap_out.reshape(num_envs, num_k, horizon, -1), None

    def _rollout_step(self, states_np: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The step backend: samples split over ``nthread`` workers, each stepping its own copies of the env.
        Also returns the rewards ``env.step`` gave, float64 ``[E, K, T]``."""
        import mujoco

        num_envs, num_k, horizon = actions.shape[:3]
        num = num_envs * num_k
        full = np.empty((num, horizon, self.full_size), dtype=np.float64)
        mocap = np.empty((num, horizon, 7 * self.nmocap), dtype=np.float64) if self.nmocap else None
        rewards = np.empty((num, horizon), dtype=np.float64)
        workers = max(1, min(self.nthread, num))
        spec = (self.full_spec, self.full_size, self.nv, self.nmocap)

        def work(worker: int, samples: np.ndarray) -> None:
            clones: dict[int, _EnvClone] = {}
            for i in samples:
                env_index = int(i) // num_k
                clone = clones.get(env_index)
                if clone is None:
                    key = (worker, env_index)
                    if key not in self._step_datas:
                        model = self.models[env_index]
                        self._step_datas[key] = (mujoco.MjData(model), mujoco.MjData(model))
                    clone = clones[env_index] = _EnvClone(self.unwrapped[env_index], *self._step_datas[key])
                clone.reset(states_np[env_index], *spec)
                for t in range(horizon):
                    rewards[i, t] = clone.layer.step(actions[env_index, int(i) % num_k, t])[1]
                    mujoco.mj_getState(clone.model, clone.data, full[i, t], self.full_spec)
                    if mocap is not None:
                        mocap[i, t, : 3 * self.nmocap] = clone.data.mocap_pos.ravel()
                        mocap[i, t, 3 * self.nmocap :] = clone.data.mocap_quat.ravel()

        chunks = np.array_split(np.arange(num), workers)
        if workers == 1:
            work(0, chunks[0])
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.nthread, thread_name_prefix="vip-rl-step")
            for future in [self._executor.submit(work, w, chunk) for w, chunk in enumerate(chunks)]:
                future.result()
        full = full.reshape(num_envs, num_k, horizon, self.full_size)
        mocap = None if mocap is None else mocap.reshape(num_envs, num_k, horizon, -1)
        return full, mocap, rewards.reshape(num_envs, num_k, horizon)

    def rollout(self, states: Any, actions: torch.Tensor, *, needs: frozenset[str] = frozenset({NEEDS_FRAMES})) -> Trajectories:
        """Roll ``actions [E, K, T, A]`` out from ``states [E, nstate]`` (see :meth:`get_state`).

        Returns:
            :class:`Trajectories` with ``states`` float64 ``[E, K, T, full_size]`` (FULLPHYSICS layout;
            :meth:`to_env_states` converts), ``mocap`` ``[E, K, T, 7 * nmocap]`` for the mocap and step
            backends of mocap envs, ``frames`` when ``"frames"`` is in ``needs``.
        """
        if self._closed:
            raise RuntimeError("MujocoDynamics is closed")
        t0 = time.perf_counter()
        states_np = states.detach().cpu().numpy() if isinstance(states, torch.Tensor) else np.asarray(states)
        states_np = np.asarray(states_np, dtype=np.float64)
        if states_np.ndim != 2 or states_np.shape[1] != self.nstate:
            raise ValueError(
                f"states must be float [E, {self.nstate}] (from MujocoDynamics.get_state), got shape {list(states_np.shape)}"
            )
        num_envs, (num_k, horizon, _) = states_np.shape[0], tuple(actions.shape[1:])
        if actions.shape[0] != num_envs:
            raise ValueError(f"actions must be [E={num_envs}, K, T, A], got {list(actions.shape)}")
        if len(self.models) not in (1, num_envs):
            raise ValueError(f"got {num_envs} states for {len(self.models)} envs")
        full, mocap, rewards = self._simulate(states_np, actions.detach().cpu().numpy())
        bad = ~np.isfinite(full).all(axis=(2, 3))  # [E, K]
        if bad.any():  # diverged samples: keep the start state so render / evaluate hooks get finite input
            full = np.where(bad[:, :, None, None], states_np[:, None, None, : self.full_size], full)
        invalid = torch.from_numpy(bad)
        t2 = time.perf_counter()
        traj = Trajectories(actions=actions, states=full, invalid=invalid, start_states=states_np[:, : self.full_size],
                            evaluate_states=self.evaluate_states if self.evaluate_hook is not None else None, mocap=mocap,
                            rewards=rewards)
        traj.timings["rollout"] = t2 - t0  # preparing the controls and simulating
        start_mocap = states_np[:, None, self.full_size + self.nv :]
        for camera in self.cameras:
            if NEEDS_FRAMES in needs:
                steps = frame_steps_for(horizon, self.render_every)
                frames_mocap = start_mocap[:, None] if mocap is None else mocap[:, :, list(steps)]
                frames = self.render(full[:, :, list(steps)], camera=camera, mocap=frames_mocap)  # [E, K, F, H, W, 3]
                traj.frame_steps = steps
                traj.frames = frames if traj.frames is None else traj.frames
                if camera is not None:
                    traj.camera_frames[camera] = frames
            if NEEDS_INITIAL_FRAME in needs:
                initial = self.render(states_np[:, None, : self.full_size], camera=camera, mocap=start_mocap)[:, 0]
                traj.initial_frames = initial if traj.initial_frames is None else traj.initial_frames
                if camera is not None:
                    traj.camera_initial_frames[camera] = initial
        traj.timings["render"] = time.perf_counter() - t2
        return traj

    # -- rendering -------------------------------------------------------------------------
    def render(self, full_states: np.ndarray, camera: str | None = None, *, mocap: np.ndarray | None = None) -> np.ndarray:
        """Render FULLPHYSICS states ``[E, ..., full_size]`` -> uint8 ``[E, ..., H, W, 3]`` in one batch
        per env, without touching the real env.

        Args:
            full_states: ``[E, ..., full_size]``.
            camera: a camera name (None: the first of ``self.cameras``, where None is ``env.render()``'s view).
            mocap: ``[E, ..., 7 * nmocap]`` mocap targets, broadcast against the states (None: the real env's now).
        """
        camera = self.camera if camera is None else camera
        num_envs = full_states.shape[0]
        lead = full_states.shape[:-1]
        if self.render_hook is not None:
            if len(self.unwrapped) == 1:
                flat = self.to_env_states(full_states.reshape(-1, self.full_size), 0)
                images = self._call_render_hook(self.unwrapped[0], flat, camera)
            else:
                per_env = []
                for e in range(num_envs):
                    flat = self.to_env_states(full_states[e].reshape(-1, self.full_size), e)
                    per_env.append(self._call_render_hook(self.unwrapped[e], flat, camera))
                images = np.concatenate(per_env, 0)
        else:
            flat_mocap = None
            if self.nmocap:
                if mocap is None:
                    mocap = np.stack([self.get_state(e)[self.full_size + self.nv :] for e in range(len(self.unwrapped))])
                    mocap = mocap.reshape(mocap.shape[:1] + (1,) * (len(lead) - 1) + mocap.shape[1:])
                flat_mocap = np.broadcast_to(mocap, (*lead, 7 * self.nmocap)).reshape(-1, 7 * self.nmocap)
            images = self._render_private(full_states.reshape(-1, self.full_size), camera, flat_mocap)
        return images.reshape(*lead, *images.shape[-3:])

    def _call_render_hook(self, unwrapped: Any, states: np.ndarray, camera: str | None) -> np.ndarray:
        images = unwrapped.render_states(states, camera=camera) if camera is not None else unwrapped.render_states(states)
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"render_states must return uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
        return images

    def _render_private(self, states: np.ndarray, camera_name: str | None, mocap: np.ndarray | None) -> np.ndarray:
        import mujoco

        view = self._view
        if self._renderer is None:
            default_mujoco_gl()
            self._renderer = mujoco.Renderer(self.model, view.height, view.width, max_geom=view.max_geom)
            if view.scene_flags is not None:
                self._renderer.scene.flags[:] = view.scene_flags
            self._named: dict[str, Any] = {}
        if camera_name is None:
            camera = view.camera
        else:
            camera = self._named.get(camera_name)
            if camera is None:
                camera = self._named[camera_name] = _named_camera(self.model, camera_name)
        data = self._scratch
        images = np.empty((states.shape[0], self._renderer.height, self._renderer.width, 3), dtype=np.uint8)
        for i, state in enumerate(states):
            mujoco.mj_setState(self.model, data, state, self.full_spec)
            if mocap is not None:
                data.mocap_pos[:] = mocap[i, : 3 * self.nmocap].reshape(-1, 3)
                data.mocap_quat[:] = mocap[i, 3 * self.nmocap :].reshape(-1, 4)
            mujoco.mj_forward(self.model, data)
            self._renderer.update_scene(data, camera=camera, scene_option=view.option)
            self._renderer.render(out=images[i])
        self._give_back_gl_context()
        return images

    def _give_back_gl_context(self) -> None:
        """Make the env's gymnasium viewer's GL context current again: that viewer renders into whichever
        context is current (it makes its own current only at creation), so after our renderer it would draw
        into ours and ``env.render()`` would return a wrong image."""
        for layer in self.unwrapped:
            make_render_context_current(layer)

    def evaluate_states(self, full_states: np.ndarray) -> dict[str, np.ndarray]:
        """The env's ``evaluate_states`` hook on FULLPHYSICS states ``[E, ..., full_size]`` -> dict of ``[E, ...]``.

        Raises:
            TypeError: if the env has no ``evaluate_states`` hook.
        """
        if self.evaluate_hook is None:
            raise TypeError(
                f"env {type(self.unwrapped[0]).__name__!r} has no evaluate_states hook; pass OracleCost(fn=...) instead"
            )
        lead = full_states.shape[:-1]
        results: dict[str, list[np.ndarray]] = {}
        groups = [(0, full_states)] if len(self.unwrapped) == 1 else [(e, full_states[e : e + 1]) for e in range(lead[0])]
        for e, group in groups:
            out = self.unwrapped[e].evaluate_states(self.to_env_states(group.reshape(-1, self.full_size), e))
            for key, value in out.items():
                results.setdefault(key, []).append(np.asarray(value))
        return {k: np.concatenate(v, 0).reshape(lead) for k, v in results.items()}

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads and free the renderer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._give_back_gl_context()
        self._step_datas.clear()

    def __enter__(self) -> "MujocoDynamics":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; explicit close() is the contract
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass


class TorchDynamics:
    """Dynamics given by a torch function ``f(state [N, S], action [N, A]) -> next state [N, S]``.

    Runs fully on the device (no simulator, no rendering). Samples whose states become
    non-finite are marked invalid and get cost +inf (MPPI warns once).

    Args:
        fn: the transition function, batched over its first dim.
        state_ndim: dims of one state (1 for ``[S]``).

    Example:
        >>> dyn = TorchDynamics(lambda s, a: s + 0.1 * a)
    """

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, state_ndim: int = 1) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable f(state, action) -> next_state, got {type(fn).__name__}")
        if not isinstance(state_ndim, int) or state_ndim < 1:
            raise ValueError(f"state_ndim must be a positive int, got {state_ndim!r}")
        self.fn = fn
        self.state_ndim = state_ndim

    def rollout(self, states: Any, actions: torch.Tensor, *, needs: frozenset[str] = frozenset()) -> Trajectories:
        """``states [E, *S]`` and ``actions [E, K, T, A]`` -> states ``[E, K, T, *S]``."""
        if NEEDS_FRAMES in needs or NEEDS_INITIAL_FRAME in needs:
            raise ValueError("TorchDynamics renders no frames; use a state cost or MujocoDynamics for image costs")
        start = time.perf_counter()
        states = torch.as_tensor(states, device=actions.device)
        num_envs, num_k, horizon = actions.shape[:3]
        state_shape = tuple(states.shape[1:])
        current = states[:, None].expand(num_envs, num_k, *state_shape).reshape(num_envs * num_k, *state_shape)
        flat_actions = actions.reshape(num_envs * num_k, horizon, -1)
        expected = (num_envs * num_k, *state_shape)
        fn = self.fn
        outputs = []
        for action in flat_actions.unbind(1):
            current = fn(current, action)
            outputs.append(current)
            if not isinstance(current, torch.Tensor):
                break  # reported below
        try:  # shapes are checked by the stack and once after it (the loop is the hot path)
            out = torch.stack(outputs, 1) if len(outputs) == horizon else None
        except (TypeError, RuntimeError):
            out = None
        if out is None or out.shape != (num_envs * num_k, horizon, *state_shape):
            for step, output in enumerate(outputs):
                if not isinstance(output, torch.Tensor) or output.shape != expected:
                    got = list(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                    raise ValueError(f"fn must return next states of shape {list(expected)}, got {got} at step {step}")
            raise ValueError(f"fn must return next states of shape {list(expected)}")  # pragma: no cover - unreachable
        out = out.view(num_envs, num_k, horizon, *state_shape)
        # one reduction instead of an elementwise isfinite: a sum is non-finite iff some entry is
        invalid = ~torch.isfinite(out.reshape(num_envs, num_k, -1).sum(-1))
        traj = Trajectories(actions=actions, states=out, invalid=invalid, start_states=states)
        traj.timings["rollout"] = time.perf_counter() - start
        return traj
