"""Shared test setup: headless MuJoCo rendering before anything imports mujoco."""
from vip_rl._gl import default_mujoco_gl

default_mujoco_gl()  # the toolkit's one rule (MUJOCO_GL=egl on Linux when unset), before any test imports mujoco
