"""Default the MuJoCo GL backend before anything imports ``mujoco``.

MuJoCo picks its OpenGL platform when ``mujoco`` is first imported (not when a renderer is
created), so the default must be in place by then. On Linux we default ``MUJOCO_GL`` to
``egl`` (headless, works with Mesa); a value the user set is never changed. If EGL is not
available, set ``MUJOCO_GL=osmesa`` (Debian package ``libosmesa6``) or ``glfw`` with a display.
"""
import os
import sys


def default_mujoco_gl() -> None:
    """Set ``MUJOCO_GL=egl`` on Linux when it is unset (idempotent)."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")
