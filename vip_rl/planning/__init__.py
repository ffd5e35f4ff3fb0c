"""MPPI planning toward image and language goals (see shared DESIGN.md).

- :class:`MPPI` / :class:`MPPIConfig` / :class:`PlanResult`: the batched torch core.
- Dynamics: :class:`MujocoDynamics` (simulator rollouts of any MuJoCo env: actuator, mocap or step backend,
  checked against ``env.step`` and ``env.render()`` at construction, :class:`DynamicsCheck`), :class:`TorchDynamics`.
- Costs: :class:`EmbeddingGoalCost`, :class:`EmbeddingProgressCost`, :class:`DemoSubgoalCost`,
  :class:`OracleCost`, :class:`ActionPenalty`, :class:`StateCost`, composable with ``+`` and ``*``.
- Latent planning: :func:`train_latent_dynamics` (z' = f(z, a) over frozen embeddings) + :func:`latent_goal_cost`.
- Episodes (:mod:`vip_rl.planning.episode`): :func:`make_env`, :func:`mppi_config_for`, :func:`make_cost`,
  :func:`run_episode`, what ``vip-rl mppi`` (:mod:`vip_rl.planning.cli`, flags only) and the benchmarks call.
- Subgoals from one demo video (:mod:`vip_rl.planning.decompose`, UVD's rule): :func:`decompose_demo`,
  :func:`decompose_embeddings`.
"""
from vip_rl.planning.costs import (
    ActionPenalty,
    Cost,
    EmbeddingGoalCost,
    EmbeddingProgressCost,
    OracleCost,
    DemoSubgoalCost,
    StateCost,
    SubgoalTracker,
    SumCost,
    frame_embeddings,
    goal_embedding,
)
from vip_rl.planning.decompose import decompose_demo, decompose_embeddings
from vip_rl.planning.dynamics import BACKENDS, Dynamics, DynamicsCheck, MujocoDynamics, TorchDynamics, Trajectories
from vip_rl.planning.episode import make_cost, make_env, mppi_config_for, run_episode
from vip_rl.planning.latent import LatentDynamics, LatentTrainConfig, latent_goal_cost, train_latent_dynamics
from vip_rl.planning.mppi import MPPI, MPPIConfig, PlanningError, PlanResult, safe_weights

__all__ = [
    "MPPI",
    "MPPIConfig",
    "PlanResult",
    "PlanningError",
    "safe_weights",
    "Dynamics",
    "DynamicsCheck",
    "BACKENDS",
    "MujocoDynamics",
    "TorchDynamics",
    "Trajectories",
    "Cost",
    "SumCost",
    "EmbeddingGoalCost",
    "EmbeddingProgressCost",
    "OracleCost",
    "ActionPenalty",
    "StateCost",
    "SubgoalTracker",
    "DemoSubgoalCost",
    "goal_embedding",
    "frame_embeddings",
    "decompose_demo",
    "decompose_embeddings",
    "make_env",
    "mppi_config_for",
    "make_cost",
    "run_episode",
    "LatentDynamics",
    "LatentTrainConfig",
    "train_latent_dynamics",
    "latent_goal_cost",
]
