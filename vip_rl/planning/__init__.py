"""MPPI planning toward image and language goals (see shared DESIGN.md).

- :class:`MPPI` / :class:`MPPIConfig` / :class:`PlanResult`: the batched torch core.
- Dynamics: :class:`MujocoDynamics` (simulator rollouts of any MuJoCo env), :class:`TorchDynamics`.
- Costs: :class:`EmbeddingGoalCost`, :class:`EmbeddingProgressCost`, :class:`DemoSubgoalCost`,
  :class:`OracleCost`, :class:`ActionPenalty`, :class:`StateCost`, composable with ``+`` and ``*``.
- Latent planning: :func:`train_latent_dynamics` (z' = f(z, a) over frozen embeddings) + :func:`latent_goal_cost`.
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
    goal_embedding,
)
from vip_rl.planning.dynamics import Dynamics, MujocoDynamics, TorchDynamics, Trajectories
from vip_rl.planning.latent import LatentDynamics, LatentTrainConfig, latent_goal_cost, train_latent_dynamics
from vip_rl.planning.mppi import MPPI, MPPIConfig, PlanningError, PlanResult, safe_weights

__all__ = [
    "MPPI",
    "MPPIConfig",
    "PlanResult",
    "PlanningError",
    "safe_weights",
    "Dynamics",
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
    "LatentDynamics",
    "LatentTrainConfig",
    "train_latent_dynamics",
    "latent_goal_cost",
]
