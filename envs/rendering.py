"""A small offscreen MuJoCo renderer with fast settings and an explicit GL back end.

``mujoco.Renderer`` picks its GL back end when ``mujoco`` is first imported, so defaulting
``MUJOCO_GL`` later (where rendering starts, as the style guide asks) would have no effect. This
renderer chooses the back end when it is created, by the toolkit's one rule (:func:`default_mujoco_gl`,
the same as ``vip_rl._gl.default_mujoco_gl``, which ``vip_envs`` cannot import): a ``MUJOCO_GL`` the
user set is kept; when it is unset, Linux gets ``egl`` (written into ``os.environ``), and other
platforms use MuJoCo's own default context.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import mujoco
import numpy as np
from gymnasium import spaces

GL_BACKENDS: tuple[str, ...] = ("egl", "osmesa", "glfw")
#: The default back end on Linux when ``MUJOCO_GL`` is unset.
DEFAULT_LINUX_BACKEND = "egl"


def default_mujoco_gl() -> str | None:
    """Set ``MUJOCO_GL=egl`` on Linux when it is unset (idempotent); return the back end in effect.

    The same rule as ``vip_rl._gl.default_mujoco_gl`` (``tests/test_envs.py::test_one_mujoco_gl_rule`` checks they agree).

    Returns:
        The lower-cased ``MUJOCO_GL`` value after the default is applied, or None on a non-Linux
        platform where it is unset (MuJoCo's own default context is used then).
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", DEFAULT_LINUX_BACKEND)
    backend = os.environ.get("MUJOCO_GL")
    return None if backend is None else backend.lower().strip()


def _gl_context(width: int, height: int) -> Any:
    backend = default_mujoco_gl()
    if backend is not None and backend not in GL_BACKENDS:
        raise ValueError(f"MUJOCO_GL must be one of {list(GL_BACKENDS)} for rendering, got {backend!r}")
    try:
        if backend is None:
            GLContext = mujoco.GLContext  # noqa: N806  (MuJoCo's default for this platform)
        elif backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
        context = GLContext(width, height)
        context.make_current()
    except Exception as exc:  # GL back ends raise assorted types (ImportError, EGLError, GLError)
        raise RuntimeError(
            f"could not create an offscreen OpenGL context with MUJOCO_GL={backend!r} ({type(exc).__name__}: {exc}); "
            "try MUJOCO_GL=osmesa (needs the Debian package libosmesa6), or MUJOCO_GL=glfw with a display"
        ) from exc
    return context


class OffscreenRenderer:
    """Renders RGB images of an ``MjData`` from named cameras.

    Fast settings: no shadow, reflection, skybox or haze passes (the model itself should set
    ``<quality shadowsize="0" offsamples="0"/>``). One GL context per renderer; call
    :meth:`close` (or use ``with``) to free it.

    Args:
        model: the MjModel (its ``vis.global_.offwidth/offheight`` must cover the image).
        height, width: image size in pixels.
        max_geom: capacity of the visual scene.
    """

    def __init__(self, model: mujoco.MjModel, height: int, width: int, *, max_geom: int = 1000) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(
                f"image size {height}x{width} exceeds the model's offscreen buffer "
                f"{model.vis.global_.offheight}x{model.vis.global_.offwidth} (<visual><global offwidth/offheight>)"
            )
        self.model = model
        self.height, self.width = int(height), int(width)
        self._gl = _gl_context(self.width, self.height)
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self.scene = mujoco.MjvScene(model, maxgeom=max_geom)
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
            mujoco.mjtRndFlag.mjRND_HAZE,
        ):
            self.scene.flags[int(flag)] = 0
        self.option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._buffer = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._cameras: dict[str, mujoco.MjvCamera] = {}

    def camera(self, name: str) -> mujoco.MjvCamera:
        """A fixed ``MjvCamera`` for the model camera ``name`` (cached)."""
        if name not in self._cameras:
            camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if camera_id < 0:
                raise ValueError(f"camera {name!r} does not exist in the model")
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            camera.fixedcamid = camera_id
            self._cameras[name] = camera
        return self._cameras[name]

    def render(
        self,
        data: mujoco.MjData,
        camera: str | mujoco.MjvCamera,
        *,
        out: np.ndarray | None = None,
        scene_option: mujoco.MjvOption | None = None,
    ) -> np.ndarray:
        """Render ``data`` (its kinematics must be current) -> uint8 ``[H, W, 3]``.

        Args:
            data: MjData to draw.
            camera: a model camera name or an ``MjvCamera``.
            out: optional preallocated uint8 ``[H, W, 3]`` to write into.
            scene_option: visibility options (e.g. geom groups); defaults to ``self.option``.
        """
        if self._gl is None:
            raise RuntimeError("render() called after close()")
        cam = self.camera(camera) if isinstance(camera, str) else camera
        mujoco.mjv_updateScene(
            self.model,
            data,
            scene_option or self.option,
            self._perturb,
            cam,
            mujoco.mjtCatBit.mjCAT_ALL.value,
            self.scene,
        )
        self._gl.make_current()
        mujoco.mjr_render(self._rect, self.scene, self._context)
        mujoco.mjr_readPixels(self._buffer, None, self._rect, self._context)
        if out is None:
            out = np.empty_like(self._buffer)
        np.copyto(out, self._buffer[::-1])  # OpenGL rows run bottom-up
        return out

    def render_many(
        self,
        count: int,
        prepare: Callable[[int], mujoco.MjData],
        camera: str | mujoco.MjvCamera,
        *,
        out: np.ndarray | None = None,
        scene_option: mujoco.MjvOption | None = None,
    ) -> np.ndarray:
        """Render ``count`` frames, tiled into the offscreen buffer and read back once per tile sheet.

        Frame ``i`` is the MjData returned by ``prepare(i)`` (kinematics current; it may be the same
        scratch object every time: its scene is captured before the next call). The GL pipeline is
        flushed and read back once per sheet of ``(offwidth // W) * (offheight // H)`` frames instead
        of once per frame, about 1.6x faster with Mesa's software rasteriser. The images equal
        :meth:`render`'s one at a time except for rasterisation ties: measured on the suite, at most
        a few edge pixels of a frame (well under 0.1% of them) come out differently.

        Returns:
            uint8 ``[count, H, W, 3]`` (``out`` if given).
        """
        if self._gl is None:
            raise RuntimeError("render_many() called after close()")
        height, width = self.height, self.width
        if out is None:
            out = np.empty((count, height, width, 3), dtype=np.uint8)
        elif out.shape != (count, height, width, 3) or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 {[count, height, width, 3]}, got {out.dtype} {list(out.shape)}")
        cols = int(self.model.vis.global_.offwidth) // width
        rows = int(self.model.vis.global_.offheight) // height
        if cols * rows < 2:
            for i in range(count):
                self.render(prepare(i), camera, out=out[i], scene_option=scene_option)
            return out
        cam = self.camera(camera) if isinstance(camera, str) else camera
        per_sheet = cols * rows
        for first in range(0, count, per_sheet):
            n = min(per_sheet, count - first)
            self._gl.make_current()
            for j in range(n):
                mujoco.mjv_updateScene(self.model, prepare(first + j), scene_option or self.option, self._perturb, cam,
                                       mujoco.mjtCatBit.mjCAT_ALL.value, self.scene)
                viewport = mujoco.MjrRect((j % cols) * width, (j // cols) * height, width, height)
                mujoco.mjr_render(viewport, self.scene, self._context)
            used_rows = (n + cols - 1) // cols
            sheet = np.empty((used_rows * height, cols * width, 3), dtype=np.uint8)
            mujoco.mjr_readPixels(sheet, None, mujoco.MjrRect(0, 0, cols * width, used_rows * height), self._context)
            for j in range(n):  # OpenGL rows run bottom-up: tile row r starts r * height rows from the bottom
                top = (j // cols) * height
                left = (j % cols) * width
                np.copyto(out[first + j], sheet[top : top + height, left : left + width][::-1])
        return out

    def close(self) -> None:
        """Free the GL resources (idempotent)."""
        if self._gl is not None:
            self._gl.make_current()
            self._context.free()
            self._gl.free()
            self._gl = None

    def __enter__(self) -> "OffscreenRenderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def apply_fast_render_settings(model: mujoco.MjModel) -> None:
    """Turn off the shadow map, multisampling, reflections and shadow-casting lights of ``model`` in place (call it
    before the first render: a GL context sizes its shadow map when it is made). Software GL renders a shadowed,
    multisampled scene tens of times slower (Pusher-v5 at 64 px: 36 ms a frame, 1.4 ms with these settings)."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    model.mat_reflectance[:] = 0.0
    model.light_castshadow[:] = 0


def pixel_observation_space(state_space: spaces.Box, cameras: Sequence[str], image_size: int) -> spaces.Dict:
    """The ``obs_mode="pixels"`` space of the vip_envs envs: ``"pixels"`` (``cameras[0]``), ``"pixels_<camera>"`` for
    each further camera (uint8 ``[image_size, image_size, 3]``) and ``"state"``."""
    image = spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8)
    parts: dict[str, spaces.Space] = {"pixels": image}
    for name in cameras[1:]:
        parts[f"pixels_{name}"] = image
    parts["state"] = state_space
    return spaces.Dict(parts)


def pixel_observation(state: np.ndarray, cameras: Sequence[str], render: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """An observation of :func:`pixel_observation_space`: ``render(camera) -> uint8 [H, W, 3]`` for each camera."""
    obs = {"pixels": render(cameras[0])}
    for name in cameras[1:]:
        obs[f"pixels_{name}"] = render(name)
    obs["state"] = state
    return obs


__all__ = ["DEFAULT_LINUX_BACKEND", "GL_BACKENDS", "OffscreenRenderer", "apply_fast_render_settings", "default_mujoco_gl",
           "pixel_observation", "pixel_observation_space"]
