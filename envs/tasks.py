"""Task definitions of the tabletop suite: names, instructions, initial-state ranges and metrics.

Every metric is a vectorised function of ``qpos`` (``[N, nq]``), so the same code scores a
live env step (``N = 1``) and a planner's batch of MuJoCo states (``evaluate_states``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

TASKS: tuple[str, ...] = (
    "OpenDrawer",
    "CloseDrawer",
    "SlideDoor",
    "PressButton",
    "FlipSwitch",
    "PushBlock",
    "PickPlace",
)
"""Task names; Gymnasium ids are ``vip_envs/<Task>-v0``."""

# Success thresholds (object joint units: metres for slides, radians for the switch).
DRAWER_OPEN = 0.09
DRAWER_CLOSED = 0.01
DRAWER_CLOSE_START = 0.12
DOOR_OPEN = 0.12
BUTTON_PRESSED = 0.016
SWITCH_OFF = -0.6
SWITCH_ON = 0.3
PUSH_RADIUS = 0.03
PUSH_SCALE = 0.2
BIN_HALF_X = 0.055
BIN_HALF_Y = 0.045
BIN_MAX_Z = 0.06
PICK_SCALE = 0.35

# Geometry offsets that mirror assets/tabletop_scene.xml (relative to each body's origin).
HANDLE_GAP_OFFSET = np.array([0.0, -0.0425, 0.012])  # between the drawer front and the handle bar
HANDLE_FRONT_OFFSET = np.array([0.0, -0.081, 0.012])  # outer face of the handle bar
DOOR_KNOB_OFFSET = np.array([-0.045, -0.03, 0.0])  # knob centre
DOOR_KNOB_HALF_X = 0.014
BUTTON_TOP_OFFSET = np.array([0.0, 0.0, 0.015])
LEVER_PUSH_HEIGHT = 0.06

_INSTRUCTIONS: dict[str, tuple[list[str], list[str]]] = {
    "OpenDrawer": (
        [
            "open the drawer",
            "pull the drawer open",
            "slide the drawer out",
            "grab the handle and pull the drawer toward you",
        ],
        ["open the wooden drawer", "pull out the drawer of the cabinet"],
    ),
    "CloseDrawer": (
        [
            "close the drawer",
            "push the drawer shut",
            "slide the drawer back in",
            "push the open drawer into the cabinet",
        ],
        ["shut the wooden drawer", "close the open drawer of the cabinet"],
    ),
    "SlideDoor": (
        [
            "slide the door open",
            "push the sliding door to the right",
            "open the sliding door",
            "move the teal door to the side",
        ],
        ["slide the panel door to the right", "open the door by sliding it sideways"],
    ),
    "PressButton": (
        [
            "press the button",
            "push the red button down",
            "press down on the red button",
            "hit the button",
        ],
        ["push the button", "press the red button on the table"],
    ),
    "FlipSwitch": (
        [
            "flip the switch",
            "toggle the lever",
            "push the switch backward",
            "turn the switch on",
        ],
        ["flip the lever to the back", "switch the toggle on"],
    ),
    "PushBlock": (
        [
            "push the block to the target",
            "slide the pink block onto the marker",
            "push the cube to the blue circle",
            "move the block onto the target by pushing it",
        ],
        ["shove the block onto the goal marker", "push the pink cube to the circle"],
    ),
    "PickPlace": (
        [
            "put the block in the bin",
            "pick up the block and place it in the bin",
            "place the pink cube into the green bin",
            "grasp the block and drop it in the bin",
        ],
        ["move the cube into the box", "lift the block and put it in the green container"],
    ),
}


def check_task(task: str) -> str:
    """Return ``task`` unchanged, or raise ``ValueError`` naming the valid tasks."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task


def instructions(task: str, split: str = "train") -> list[str]:
    """Natural-language instructions (paraphrases) for a task.

    Args:
        task: one of ``vip_envs.TASKS``.
        split: ``"train"`` (4 paraphrases), ``"heldout"`` (2 other paraphrases) or ``"all"``.

    Returns:
        A new list of strings.

    Raises:
        ValueError: unknown task or split.

    Example:
        >>> instructions("OpenDrawer", "heldout")
        ['open the wooden drawer', 'pull out the drawer of the cabinet']
    """
    check_task(task)
    train, heldout = _INSTRUCTIONS[task]
    if split == "train":
        return list(train)
    if split == "heldout":
        return list(heldout)
    if split == "all":
        return list(train) + list(heldout)
    raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")


@dataclass(frozen=True)
class SceneLayout:
    """Addresses into ``qpos`` and fixed body positions, read from the compiled model."""

    ee: np.ndarray  # [3] qpos addresses of ee_x, ee_y, ee_z
    fingers: np.ndarray  # [2]
    drawer: int
    door: int
    button: int
    switch: int
    target: np.ndarray  # [2]
    block: int  # first of 7 (pos, quat)
    drawer_pos: np.ndarray  # [3] drawer body origin at q = 0
    door_pos: np.ndarray
    button_pos: np.ndarray
    lever_pos: np.ndarray
    bin_pos: np.ndarray

    @classmethod
    def from_model(cls, model) -> "SceneLayout":  # noqa: ANN001 - mujoco.MjModel
        def adr(name: str) -> int:
            return int(model.joint(name).qposadr[0])

        return cls(
            ee=np.array([adr("ee_x"), adr("ee_y"), adr("ee_z")]),
            fingers=np.array([adr("finger_left"), adr("finger_right")]),
            drawer=adr("drawer"),
            door=adr("door"),
            button=adr("button"),
            switch=adr("switch"),
            target=np.array([adr("target_x"), adr("target_y")]),
            block=adr("block"),
            drawer_pos=np.array(model.body("drawer").pos, dtype=np.float64),
            door_pos=np.array(model.body("door").pos, dtype=np.float64),
            button_pos=np.array(model.body("button").pos, dtype=np.float64),
            lever_pos=np.array(model.body("lever").pos, dtype=np.float64),
            bin_pos=np.array(model.body("bin").pos, dtype=np.float64),
        )

    # Key points, vectorised over qpos [N, nq] -> [N, 3].
    def handle_gap(self, qpos: np.ndarray) -> np.ndarray:
        return (self.drawer_pos + HANDLE_GAP_OFFSET) + qpos[:, self.drawer, None] * _NEG_Y

    def handle_front(self, qpos: np.ndarray) -> np.ndarray:
        return (self.drawer_pos + HANDLE_FRONT_OFFSET) + qpos[:, self.drawer, None] * _NEG_Y

    def door_knob(self, qpos: np.ndarray) -> np.ndarray:
        return (self.door_pos + DOOR_KNOB_OFFSET) + qpos[:, self.door, None] * _POS_X

    def button_top(self, qpos: np.ndarray) -> np.ndarray:
        return (self.button_pos + BUTTON_TOP_OFFSET) + qpos[:, self.button, None] * _NEG_Z

    def lever_point(self, qpos: np.ndarray, height: float = LEVER_PUSH_HEIGHT) -> np.ndarray:
        theta = qpos[:, self.switch, None]
        return self.lever_pos + height * (np.sin(theta) * _POS_Y + np.cos(theta) * _POS_Z)

    def block_pos(self, qpos: np.ndarray) -> np.ndarray:
        return qpos[:, self.block : self.block + 3]

    def ee_pos(self, qpos: np.ndarray) -> np.ndarray:
        return qpos[:, self.ee]


_POS_X = np.array([1.0, 0.0, 0.0])
_POS_Y = np.array([0.0, 1.0, 0.0])
_POS_Z = np.array([0.0, 0.0, 1.0])
_NEG_Y = -_POS_Y
_NEG_Z = -_POS_Z


class _ScalarOps:
    """Math on Python floats: the per-step path (one configuration), ~20x cheaper than numpy."""

    sqrt = staticmethod(math.sqrt)
    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    tanh = staticmethod(math.tanh)

    @staticmethod
    def clip01(x: float) -> float:
        return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)

    @staticmethod
    def where(cond: bool, a: float, b: float) -> float:
        return a if cond else b


class _ArrayOps:
    """The same operations on numpy arrays ``[N]`` (batches of states)."""

    sqrt = staticmethod(np.sqrt)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    tanh = staticmethod(np.tanh)

    @staticmethod
    def clip01(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0)

    where = staticmethod(np.where)


SCALAR_OPS = _ScalarOps()
ARRAY_OPS = _ArrayOps()


def _dist(a: tuple, b: tuple, ops) -> Any:  # noqa: ANN001
    return ops.sqrt(sum((x - y) * (x - y) for x, y in zip(a, b)))


def task_metrics_generic(task: str, layout: SceneLayout, col: Callable[[int], Any], ops) -> tuple[Any, Any, Any]:  # noqa: ANN001
    """Success, progress and reach distance written once for floats and arrays.

    ``col(i)`` returns ``qpos[i]`` (a float with ``SCALAR_OPS``) or ``qpos[:, i]`` (``[N]`` with
    ``ARRAY_OPS``). Only arithmetic, comparisons, ``&``, ``abs`` and ``ops`` functions are used,
    so both paths compute the same float64 values.
    """
    ee = (col(layout.ee[0]), col(layout.ee[1]), col(layout.ee[2]))
    if task in ("OpenDrawer", "CloseDrawer"):
        d = col(layout.drawer)
        if task == "OpenDrawer":
            progress = ops.clip01(d / DRAWER_OPEN)
            success = d >= DRAWER_OPEN
            base = layout.drawer_pos + HANDLE_GAP_OFFSET
        else:
            progress = ops.clip01((DRAWER_CLOSE_START - d) / (DRAWER_CLOSE_START - DRAWER_CLOSED))
            success = d <= DRAWER_CLOSED
            base = layout.drawer_pos + HANDLE_FRONT_OFFSET
        point = (float(base[0]), float(base[1]) - d, float(base[2]))
    elif task == "SlideDoor":
        d = col(layout.door)
        progress = ops.clip01(d / DOOR_OPEN)
        success = d >= DOOR_OPEN
        base = layout.door_pos + DOOR_KNOB_OFFSET
        point = (float(base[0]) + d, float(base[1]), float(base[2]))
    elif task == "PressButton":
        d = col(layout.button)
        progress = ops.clip01(d / BUTTON_PRESSED)
        success = d >= BUTTON_PRESSED
        base = layout.button_pos + BUTTON_TOP_OFFSET
        point = (float(base[0]), float(base[1]), float(base[2]) - d)
    elif task == "FlipSwitch":
        theta = col(layout.switch)
        progress = ops.clip01((theta - SWITCH_OFF) / (SWITCH_ON - SWITCH_OFF))
        success = theta >= SWITCH_ON
        pivot = layout.lever_pos
        point = (
            float(pivot[0]),
            float(pivot[1]) + LEVER_PUSH_HEIGHT * ops.sin(theta),
            float(pivot[2]) + LEVER_PUSH_HEIGHT * ops.cos(theta),
        )
    elif task in ("PushBlock", "PickPlace"):
        point = (col(layout.block), col(layout.block + 1), col(layout.block + 2))
        if task == "PushBlock":
            dist = _dist(point[:2], (col(layout.target[0]), col(layout.target[1])), ops)
            progress = ops.clip01(1.0 - (dist - PUSH_RADIUS) / PUSH_SCALE)
            success = dist <= PUSH_RADIUS
        else:
            bin_xy = (float(layout.bin_pos[0]), float(layout.bin_pos[1]))
            dx, dy = point[0] - bin_xy[0], point[1] - bin_xy[1]
            success = (abs(dx) < BIN_HALF_X) & (abs(dy) < BIN_HALF_Y) & (point[2] < BIN_MAX_Z)
            progress = ops.where(success, 1.0, 0.9 * ops.clip01(1.0 - ops.sqrt(dx * dx + dy * dy) / PICK_SCALE))
    else:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return success, progress, _dist(ee, point, ops)


def task_metrics(task: str, layout: SceneLayout, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success, progress and end-effector-to-object distance for a batch of configurations.

    Args:
        task: one of ``TASKS``.
        layout: addresses from :meth:`SceneLayout.from_model`.
        qpos: ``[N, nq]`` float64.

    Returns:
        ``(success bool [N], task_progress float [N] in [0, 1], reach_distance float [N])``.
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    n = qpos.shape[0]
    success, progress, reach = task_metrics_generic(task, layout, lambda i: qpos[:, i], ARRAY_OPS)
    return (
        np.broadcast_to(np.asarray(success, dtype=bool), (n,)).copy(),
        np.broadcast_to(np.asarray(progress, dtype=np.float64), (n,)).copy(),
        np.asarray(reach, dtype=np.float64),
    )
