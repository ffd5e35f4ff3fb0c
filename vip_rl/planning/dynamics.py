"""Dynamics backends for :class:`~vip_rl.planning.mppi.MPPI`.

A backend maps ``state [E, ...]`` and sampled ``actions [E, K, T, A]`` to
:class:`Trajectories` (states after each step and, when a cost asks for them, rendered
frames), batched over the E environments and K samples:

- :class:`MujocoDynamics`: the real MuJoCo simulator of any Gymnasium MuJoCo env, all
  samples rolled out with ``mujoco.rollout`` on a private thread pool, rendering only the
  frames the cost needs in one batch; the real env is never touched.
- :class:`TorchDynamics`: a user function ``f(state [N, S], action [N, A]) -> [N, S]``
  running fully on the device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from vip_rl._gl import default_mujoco_gl

__all__ = ["Trajectories", "Dynamics", "MujocoDynamics", "TorchDynamics", "frame_steps_for"]

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
    as ``vip_envs.kitchen.KitchenEnv`` adds the planner hooks above the upstream env), else ``unwrapped``."""
    layer = env
    while layer is not None:
        if all(hasattr(layer, attr) for attr in ("model", "data", "frame_skip")):
            return _check_mujoco(env, layer)
        layer = getattr(layer, "env", None)
    return _check_mujoco(env, getattr(env, "unwrapped", env))


def _check_mujoco(env: Any, unwrapped: Any) -> Any:
    for attr in ("model", "data", "frame_skip"):
        if not hasattr(unwrapped, attr):
            name = getattr(getattr(env, "spec", None), "id", None) or type(unwrapped).__name__
            raise TypeError(
                f"MujocoDynamics needs a MuJoCo env exposing unwrapped.model/.data/.frame_skip; "
                f"env {name!r} has no {attr!r}"
            )
    import mujoco

    if not isinstance(unwrapped.model, mujoco.MjModel) or not isinstance(unwrapped.data, mujoco.MjData):
        raise TypeError(f"MujocoDynamics: env {type(unwrapped).__name__!r} .model/.data are not mujoco.MjModel/MjData")
    return unwrapped


class MujocoDynamics:
    """Roll sampled action sequences out in the MuJoCo simulator of a Gymnasium env.

    The start state is the env's full physics state plus the solver warm start, so each rollout
    reproduces ``env.step`` bit for bit. All ``E * K`` samples run in one ``mujoco.rollout`` call on
    ``nthread`` worker threads with MjData owned by this object; only the frames a cost needs are
    rendered (the final step by default, every ``render_every``-th step optionally), in one batch
    through the env's ``render_states`` hook when it has one (``vip_envs``), else through a private
    ``mujoco.Renderer``. The real env is only read, never stepped or reset.

    Args:
        env: a Gymnasium MuJoCo env, or a sequence of E such envs (one per planned environment,
            same model sizes) for batched planning.
        camera: camera name for rendering (None: the env's default camera), or a sequence of names
            (all are rendered; the first is ``Trajectories.frames``, all are in ``camera_frames``).
        render_every: render every k-th step as well as the final one (None: final only).
        image_size: side of rendered frames for the private renderer (None: the env's
            width/height, or 96); ``render_states`` hooks render at the env's own size.
        nthread: worker threads of the rollout pool (0 or 1: the calling thread).

    Raises:
        TypeError: if ``env`` is not a MuJoCo env.
        ValueError: bad ``render_every`` / ``nthread`` / ``image_size``.

    Example:
        >>> with MujocoDynamics(env, render_every=None) as dyn:           # doctest: +SKIP
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
        first = self.unwrapped[0]
        self.models = [u.model for u in self.unwrapped]
        for i, m in enumerate(self.models):
            if (m.nq, m.nv, m.nu, m.na) != (self.models[0].nq, self.models[0].nv, self.models[0].nu, self.models[0].na):
                raise ValueError(f"env[{i}] has a model of different size than env[0]; plan each task separately")
        self.model = self.models[0]
        self.frame_skip = int(first.frame_skip)
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
        self.nstate = self.full_size + self.nv  # our state: FULLPHYSICS then qacc_warmstart
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
        self._pool = mujoco.rollout.Rollout(nthread=nthread if nthread > 1 else 0)
        self._datas = [mujoco.MjData(self.model) for _ in range(max(1, nthread))]
        self._scratch = mujoco.MjData(self.model)  # private data for rendering / state conversion
        self._renderer: Any = None
        self._closed = False

    # -- state -----------------------------------------------------------------------------
    def get_state(self, index: int | None = None) -> np.ndarray:
        """The current full state of the real env(s): float64 ``[nstate]`` for ``index``, or
        ``[E, nstate]`` for all envs when ``index`` is None and there are several."""
        import mujoco

        def read(unwrapped: Any) -> np.ndarray:
            out = np.empty(self.nstate, dtype=np.float64)
            mujoco.mj_getState(unwrapped.model, unwrapped.data, out[: self.full_size], self.full_spec)
            out[self.full_size :] = unwrapped.data.qacc_warmstart
            return out

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
                "give the env an action_to_ctrl hook"
            )
        return ctrl

    def _rollout_state_controls(self, models: Any, init: np.ndarray, warm: np.ndarray, actions: np.ndarray) -> np.ndarray:
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
            ctrl = np.ascontiguousarray(np.broadcast_to(ctrl[:, None], (num, self.frame_skip, self.model.nu)))
            states, _ = self._pool.rollout(models, self._datas, current, ctrl, initial_warmstart=warm if t == 0 else None)
            current = out[:, t] = states[:, -1]
        return out

    def rollout(self, states: Any, actions: torch.Tensor, *, needs: frozenset[str] = frozenset({NEEDS_FRAMES})) -> Trajectories:
        """Roll ``actions [E, K, T, A]`` out from ``states [E, nstate]`` (see :meth:`get_state`).

        Returns:
            :class:`Trajectories` with ``states`` float64 ``[E, K, T, full_size]`` (FULLPHYSICS layout;
            :meth:`to_env_states` converts), ``frames`` when ``"frames"`` is in ``needs``.
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
        act_np = actions.detach().cpu().numpy().astype(np.float64)
        init = np.repeat(states_np[:, : self.full_size], num_k, axis=0)
        warm = np.repeat(states_np[:, self.full_size :], num_k, axis=0)
        models = self.model if len(self.models) == 1 else [m for m in self.models for _ in range(num_k)]
        if self.state_action_to_ctrl is not None:
            full = self._rollout_state_controls(models, init, warm, act_np.reshape(num_envs * num_k, horizon, -1))
            full = full.reshape(num_envs, num_k, horizon, self.full_size)
        else:
            ctrl = self.controls(act_np).reshape(num_envs * num_k, horizon, 1, -1)
            ctrl = np.ascontiguousarray(np.broadcast_to(ctrl, (num_envs * num_k, horizon, self.frame_skip, ctrl.shape[-1])))
            ctrl = ctrl.reshape(num_envs * num_k, horizon * self.frame_skip, -1)
            out, _ = self._pool.rollout(models, self._datas, init, ctrl, initial_warmstart=warm)
            full = out[:, self.frame_skip - 1 :: self.frame_skip].reshape(num_envs, num_k, horizon, self.full_size)
        bad = ~np.isfinite(full).all(axis=(2, 3))  # [E, K]
        if bad.any():  # diverged samples: keep the start state so render / evaluate hooks get finite input
            full = np.where(bad[:, :, None, None], states_np[:, None, None, : self.full_size], full)
        invalid = torch.from_numpy(bad)
        t2 = time.perf_counter()
        traj = Trajectories(actions=actions, states=full, invalid=invalid, start_states=states_np[:, : self.full_size],
                            evaluate_states=self.evaluate_states if self.evaluate_hook is not None else None)
        traj.timings["rollout"] = t2 - t0  # preparing the controls and simulating
        for camera in self.cameras:
            if NEEDS_FRAMES in needs:
                steps = frame_steps_for(horizon, self.render_every)
                frames = self.render(full[:, :, list(steps)], camera=camera)  # [E, K, F, H, W, 3]
                traj.frame_steps = steps
                traj.frames = frames if traj.frames is None else traj.frames
                if camera is not None:
                    traj.camera_frames[camera] = frames
            if NEEDS_INITIAL_FRAME in needs:
                initial = self.render(states_np[:, None, : self.full_size], camera=camera)[:, 0]
                traj.initial_frames = initial if traj.initial_frames is None else traj.initial_frames
                if camera is not None:
                    traj.camera_initial_frames[camera] = initial
        traj.timings["render"] = time.perf_counter() - t2
        return traj

    # -- rendering -------------------------------------------------------------------------
    def render(self, full_states: np.ndarray, camera: str | None = None) -> np.ndarray:
        """Render FULLPHYSICS states ``[E, ..., full_size]`` -> uint8 ``[E, ..., H, W, 3]`` in one batch
        per env, without touching the real env (``camera`` None: the first of ``self.cameras``)."""
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
            images = self._render_private(full_states.reshape(-1, self.full_size), camera)
        return images.reshape(*lead, *images.shape[-3:])

    def _call_render_hook(self, unwrapped: Any, states: np.ndarray, camera: str | None) -> np.ndarray:
        images = unwrapped.render_states(states, camera=camera) if camera is not None else unwrapped.render_states(states)
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"render_states must return uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
        return images

    def _render_private(self, states: np.ndarray, camera_name: str | None) -> np.ndarray:
        import mujoco

        if self._renderer is None:
            default_mujoco_gl()
            first = self.unwrapped[0]
            height = self.image_size or int(getattr(first, "height", 96) or 96)
            width = self.image_size or int(getattr(first, "width", 96) or 96)
            self._renderer = mujoco.Renderer(self.model, height, width)
        data = self._scratch
        images = np.empty((states.shape[0], self._renderer.height, self._renderer.width, 3), dtype=np.uint8)
        camera = -1 if camera_name is None else camera_name
        for i, state in enumerate(states):
            mujoco.mj_setState(self.model, data, state, self.full_spec)
            mujoco.mj_forward(self.model, data)
            self._renderer.update_scene(data, camera=camera)
            self._renderer.render(out=images[i])
        return images

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
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

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
