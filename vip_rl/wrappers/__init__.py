"""Gymnasium wrappers that turn an embedding space into rewards and observations.

Classes (one behaviour each):

- :class:`GoalReward`: single env; reward from the embedding distance to an image or text goal.
- :class:`GoalRewardVector`: its twin for a Gymnasium ``VectorEnv`` (sync or async); one batched
  encoder forward per step for all sub-envs, correct under every autoreset mode.
- :class:`VecGoalReward`: its twin for a Stable-Baselines3 ``VecEnv`` (a ``VecEnvWrapper``).
- :class:`EmbeddingObservation`: adds the frame's embedding to a Dict observation.
- :class:`EmbeddingObservationVector`: its twin for a Gymnasium ``VectorEnv`` (one batched forward per step).
- :class:`FinalFrameInfo`: puts ``render()`` of the last frame of an episode into ``info``; the vector
  forms need it when they read frames from ``render()`` and the vector env resets in the same step
  (Gymnasium ``SAME_STEP`` autoreset, every SB3 ``VecEnv``).

Modules (one concern each): ``scorer`` (goal embeddings per env, the per-mode reward and the
success-threshold calibration), ``frames`` (where frames come from, :class:`FinalFrameInfo` and the
vector autoreset helpers), ``goal_reward`` (:class:`GoalReward`), ``vector``
(:class:`GoalRewardVector` and the batched core the SB3 twin shares), ``sb3`` (:class:`VecGoalReward`)
and ``embedding`` (the embedding observations). Goals are parsed and embedded by :mod:`vip_rl.goals`.

Frames come either from the env's ``render()`` (``render_mode="rgb_array"``) or from an image in the
observation (``obs["pixels"]``, a given ``pixel_key``, or an image ``Box`` observation); each frame is
read once and embedded once per step, and goal embeddings are cached.

Example (wrap your own env):
    >>> import gymnasium as gym
    >>> from vip_rl.encoders import load_encoder                 # doctest: +SKIP
    >>> env = gym.make("Pusher-v5", render_mode="rgb_array", width=96, height=96)
    >>> env = GoalReward(env, load_encoder("td-sim"), goal_image)  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                            # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())  # doctest: +SKIP
    >>> info["env_reward"], info["goal_distance"], info["vip_reward"]  # doctest: +SKIP
"""
from vip_rl.goals import final_frame
from vip_rl.wrappers.embedding import EmbeddingObservation, EmbeddingObservationVector
from vip_rl.wrappers.frames import FinalFrameInfo
from vip_rl.wrappers.goal_reward import GoalReward
from vip_rl.wrappers.sb3 import VecGoalReward
from vip_rl.wrappers.scorer import (
    CALIBRATION_COPIES,
    CALIBRATION_MULTIPLE,
    CALIBRATION_SEED,
    MODE_INFO_KEYS,
    GoalReduce,
    Mode,
)
from vip_rl.wrappers.vector import GoalRewardVector

__all__ = [
    "CALIBRATION_COPIES",
    "CALIBRATION_MULTIPLE",
    "CALIBRATION_SEED",
    "EmbeddingObservation",
    "EmbeddingObservationVector",
    "FinalFrameInfo",
    "GoalReduce",
    "GoalReward",
    "GoalRewardVector",
    "MODE_INFO_KEYS",
    "Mode",
    "VecGoalReward",
    "final_frame",
]
