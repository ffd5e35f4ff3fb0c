"""vip-rl: VIP and LIV value representations as rewards, planners and policies."""

from vip_rl._gl import default_mujoco_gl as _default_mujoco_gl

# The one environment default we touch: MuJoCo reads MUJOCO_GL at import time (see _gl.py).
_default_mujoco_gl()

__version__ = "0.1.0"
