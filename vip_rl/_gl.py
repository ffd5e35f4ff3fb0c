"""The toolkit's one rule for the MuJoCo GL back end (``MUJOCO_GL``).

The rule: **a value the user set is never changed; when ``MUJOCO_GL`` is unset, Linux gets
``egl``** (headless, works with Mesa and with GPUs), written into ``os.environ`` so that MuJoCo,
Gymnasium's renderer and PyOpenGL all agree; other platforms keep MuJoCo's own default. If EGL is
missing, set ``MUJOCO_GL=osmesa`` (Debian package ``libosmesa6``), or ``glfw`` with a display.

Call :func:`default_mujoco_gl` where rendering starts, before ``mujoco`` is imported there:
``mujoco.Renderer`` (and ``mujoco.GLContext``) pick their back end when ``mujoco`` is first
imported, not when a renderer is created. The suite's own renderer (``vip_envs.rendering``) applies
the same rule when it is created, so it works whatever was imported first. ``vip_envs`` cannot import
this module (it is independent of ``vip_rl``), and this module cannot import ``vip_envs`` (that
imports ``mujoco``), so both spell the rule out; ``tests/test_envs.py::test_one_mujoco_gl_rule``
checks that they agree.

Gymnasium's MuJoCo envs (Pusher, Meta-World, Fetch, Kitchen) have a second GL hazard:
their viewer makes its context current only when it is created, and freeing *any* EGL context
(closing another env, a ``mujoco.Renderer``, the garbage collector dropping one) leaves none
current, after which ``env.render()`` returns black frames for good. :func:`render_frame` makes
the env's own context current first; the wrappers, the planner's recorders and expert goals read frames through it.

This module imports nothing heavy and does nothing when imported.

Example:
    >>> import os
    >>> from vip_rl._gl import default_mujoco_gl
    >>> backend = default_mujoco_gl()   # "egl" on a Linux machine where MUJOCO_GL was unset
    >>> backend == os.environ.get("MUJOCO_GL", backend)
    True
"""
from __future__ import annotations

import os
import sys
from typing import Any

#: The default back end on Linux when ``MUJOCO_GL`` is unset.
DEFAULT_LINUX_BACKEND = "egl"


def default_mujoco_gl() -> str | None:
    """Set ``MUJOCO_GL=egl`` on Linux when it is unset (idempotent); return the back end in effect.

    Returns:
        The lower-cased ``MUJOCO_GL`` value after the default is applied, or None on a non-Linux
        platform where it is unset (MuJoCo then uses its own default).
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", DEFAULT_LINUX_BACKEND)
    backend = os.environ.get("MUJOCO_GL")
    return None if backend is None else backend.lower().strip()


def make_render_context_current(env: Any) -> bool:
    """Make the GL context of ``env``'s gymnasium MuJoCo viewer current; True if there was one.

    ``env`` may be a (wrapped) MuJoCo env or a (wrapped) synchronous vector env (its first sub-env with a
    viewer: gymnasium's sub-envs all draw in whichever context is current). Envs without gymnasium's
    ``mujoco_renderer`` (the suite's own renderer makes its context current on every frame), async
    vector envs (they render in their own processes) and envs not rendered yet are left alone.
    """
    base = getattr(env, "unwrapped", env)  # a vector env's wrappers unwrap to the vector env, which holds .envs
    for candidate in [base, *(getattr(base, "envs", None) or [])]:
        unwrapped = getattr(candidate, "unwrapped", candidate)
        viewer = getattr(getattr(unwrapped, "mujoco_renderer", None), "viewer", None)
        if viewer is not None and hasattr(viewer, "make_context_current"):
            viewer.make_context_current()
            return True
    return False


def render_frame(env: Any) -> Any:
    """``env.render()`` with the env's own GL context current (:func:`make_render_context_current`)."""
    make_render_context_current(env)
    return env.render()


__all__ = ["DEFAULT_LINUX_BACKEND", "default_mujoco_gl", "make_render_context_current", "render_frame"]
