"""vip_envs: the MuJoCo tabletop manipulation suite.

Importing the package registers the Gymnasium ids ``vip_envs/<Task>-v0`` (max_episode_steps=100)
for every task in :data:`TASKS`: OpenDrawer, CloseDrawer, SlideDoor, PressButton, FlipSwitch,
PushBlock, PickPlace. All tasks share one scene (assets/tabletop_scene.xml); the task decides
which object matters, its initial-state distribution, success predicate and progress.

API:
    gym.make("vip_envs/<Task>-v0", render_mode=None | "rgb_array", obs_mode="state" | "pixels",
             cameras=("front",), image_size=96, embodiment="gripper" | "hand", ...)
        cameras from CAMERAS: front, left, right, close (fixed) and wrist (on the effector, behind the
        fingers, looking forward and down: the block's offset from the fingers, as few-shot policies need it)
    vip_envs.expert(env, noise=0.0, seed=None) -> policy(obs) -> float32 [4]
    vip_envs.play_policy(env, seed=None) -> policy(obs) -> float32 [4]
    vip_envs.instructions(task, split="train" | "heldout" | "all") -> list[str]
    env.unwrapped: get_state() / set_state(state) (mjSTATE_FULLPHYSICS, ``state_spec``),
        action_to_ctrl(actions [..., 4]) -> [..., nu], model, data, frame_skip,
        render_states(states [N, S], camera=None) -> uint8 [N, H, W, 3],
        evaluate_states(states [N, S]) -> dict(success, task_progress, reward, reward terms)
    vip_envs.kitchen: Gymnasium-Robotics FrankaKitchen-v1 behind the same hooks (extra ``kitchen``).
    vip_envs.metaworld: every Meta-World v3 MT1 task as ``vip_envs/MetaWorld-<task>`` (e.g.
        ``vip_envs/MetaWorld-drawer-open-v3``, max_episode_steps=150) behind the same hooks, with the scripted
        experts of ``metaworld.policies`` (extra ``metaworld``; metaworld is imported only when one is made).

Example:
    >>> import gymnasium as gym, vip_envs
    >>> env = gym.make("vip_envs/PickPlace-v0", obs_mode="pixels", cameras=("front", "left"))
    >>> obs, info = env.reset(seed=0)
    >>> policy = vip_envs.expert(env, noise=0.1, seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(policy(obs))
    >>> sorted(obs)
    ['pixels', 'pixels_left', 'state']
"""

from __future__ import annotations

import gymnasium as _gym

from vip_envs import metaworld as _metaworld
from vip_envs.experts import expert, play_policy
from vip_envs.tabletop import CAMERAS, EMBODIMENTS, OBS_MODES, STATE_LABELS, TabletopEnv
from vip_envs.tasks import TASKS, instructions

MAX_EPISODE_STEPS = 100


def env_id(task: str) -> str:
    """Gymnasium id of a task, e.g. ``env_id("OpenDrawer") == "vip_envs/OpenDrawer-v0"``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return f"vip_envs/{task}-v0"


#: Gymnasium ids of single-task FrankaKitchen envs (extra ``kitchen``; gymnasium-robotics is only
#: imported when one is made): ``vip_envs/KitchenMicrowave-v0`` -> ``kitchen.make_kitchen(("microwave",))``.
KITCHEN_IDS: dict[str, str] = {
    "vip_envs/Kitchen" + "".join(w.capitalize() for w in task.split()) + "-v0": task
    for task in ("microwave", "kettle", "light switch", "slide cabinet", "hinge cabinet", "bottom burner", "top burner")
}


#: Gymnasium ids of the Meta-World v3 MT1 tasks (extra ``metaworld``; metaworld is only imported when one is
#: made): ``vip_envs/MetaWorld-drawer-open-v3`` -> ``metaworld.make_metaworld("drawer-open-v3")``.
METAWORLD_IDS: dict[str, str] = {_metaworld.ID_PREFIX + task: task for task in _metaworld.METAWORLD_TASKS}


def _register() -> None:
    for task in TASKS:
        if env_id(task) not in _gym.registry:
            _gym.register(
                id=env_id(task),
                entry_point="vip_envs.tabletop:TabletopEnv",
                kwargs={"task": task},
                max_episode_steps=MAX_EPISODE_STEPS,
            )
    for kitchen_id, kitchen_task in KITCHEN_IDS.items():
        if kitchen_id not in _gym.registry:  # the step limit is upstream's (280), inside make_kitchen
            _gym.register(id=kitchen_id, entry_point="vip_envs.kitchen:make_kitchen", kwargs={"tasks": (kitchen_task,)})
    for metaworld_id, metaworld_task in METAWORLD_IDS.items():
        if metaworld_id not in _gym.registry:
            _gym.register(id=metaworld_id, entry_point="vip_envs.metaworld:make_metaworld",
                          kwargs={"task": metaworld_task}, max_episode_steps=_metaworld.MAX_EPISODE_STEPS)


_register()

__all__ = [
    "TASKS",
    "CAMERAS",
    "EMBODIMENTS",
    "OBS_MODES",
    "STATE_LABELS",
    "MAX_EPISODE_STEPS",
    "KITCHEN_IDS",
    "METAWORLD_IDS",
    "TabletopEnv",
    "env_id",
    "expert",
    "instructions",
    "play_policy",
]
