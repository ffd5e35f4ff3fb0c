"""Batched MPPI (model predictive path integral control) in torch.

One planner is built once and asked for an action every control step, like
``pytorch_mppi``; unlike it, every option is a field of a checked frozen
:class:`MPPIConfig`, noise comes from the planner's own ``torch.Generator``,
results are returned (:class:`PlanResult`) instead of stored, and the planner is
batched over several environments at once (``state [E, ...] -> action [E, A]``).

Per iteration (``config.iterations`` per command)::

    eps   [E, K, T, A] = sigma * (smoothing filter @ N(0, 1))   # precomputed filter, no loop
    V     [E, K, T, A] = clip(U + eps, low, high)                # U: the warm-start plan [E, T, A]
    cost  [E, K]       = cost(dynamics.rollout(state, V))         # NaN -> +inf (warned once)
    w     [E, K]       = softmax(-(cost - min cost) / lambda)     # all non-finite -> PlanningError
    U                  = U + sum_k w_k (V_k - U)

then the first action of ``U`` is returned and ``U`` is shifted one step (warm start).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from vip_rl.planning.costs import Cost
    from vip_rl.planning.dynamics import Dynamics

__all__ = ["MPPIConfig", "MPPI", "PlanResult", "PlanningError", "safe_weights"]


class PlanningError(RuntimeError):
    """MPPI cannot choose an action: every sampled sequence of some environment has a non-finite
    cost. The message names the culprit: the dynamics (non-finite rolled-out states) or the cost."""


def _as_float_tuple(value: float | Sequence[float], name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        out = tuple(float(v) for v in value)
    except TypeError as err:
        raise TypeError(f"{name} must be a float or a sequence of floats, got {value!r}") from err
    if not out:
        raise ValueError(f"{name} must not be empty, got {value!r}")
    return out


@dataclass(frozen=True)
class MPPIConfig:
    """Options of :class:`MPPI` (checked on construction).

    ``vip-rl mppi`` plans with K=32, H=10 by default (``vip_rl.planning.cli.DEFAULT_NUM_SAMPLES`` /
    ``DEFAULT_HORIZON``, measured on the suite); the field defaults below are the generic ones.

    Example:
        >>> cfg = MPPIConfig(action_dim=4, num_samples=64, horizon=10)
    """

    action_dim: int
    """A: size of one action."""
    num_samples: int = 64
    """K: sampled action sequences per iteration (per environment)."""
    horizon: int = 10
    """T: planning horizon in control steps."""
    noise_sigma: float | tuple[float, ...] = 0.5
    """Standard deviation of the sampling noise: one float or one per action dimension."""
    temperature: float = 0.1
    """lambda of the softmax over costs; costs are shifted by their minimum first, so this is
    in the units of the cost (small = greedy, large = plain average)."""
    action_low: float | tuple[float, ...] = -1.0
    """Lower action bound(s), one float or one per action dimension (use -inf for none)."""
    action_high: float | tuple[float, ...] = 1.0
    """Upper action bound(s)."""
    iterations: int = 1
    """Sample / weight / update rounds per command (each with fresh noise)."""
    noise_beta: float = 0.0
    """Autoregressive smoothing of the noise over time, in [0, 1): ``n_t = beta * n_{t-1} +
    sqrt(1 - beta^2) * w_t`` (stationary variance sigma^2), as the VIP evaluation's filtered
    noise; 0 = white noise."""
    warm_start: bool = True
    """Keep the plan between commands, shifted by one step; False restarts from ``action_init``."""
    action_init: float = 0.0
    """Value of a fresh plan and of the step appended when shifting."""
    num_elites: int | None = None
    """If set, only the ``num_elites`` cheapest samples get weight (CEM-like MPPI); None = all."""
    include_plan: bool = True
    """Evaluate the current plan itself as sample 0 (noise 0), so an iteration never loses it."""
    sigma_decay: float = 1.0
    """Noise scale multiplier applied per extra iteration within one command (1 = constant)."""

    def __post_init__(self) -> None:
        for name in ("action_dim", "num_samples", "horizon", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        sigma = _as_float_tuple(self.noise_sigma, "noise_sigma")
        low = _as_float_tuple(self.action_low, "action_low")
        high = _as_float_tuple(self.action_high, "action_high")
        for name, values in (("noise_sigma", sigma), ("action_low", low), ("action_high", high)):
            if len(values) not in (1, self.action_dim):
                raise ValueError(f"{name} must have 1 or action_dim={self.action_dim} entries, got {len(values)}")
            if any(math.isnan(v) for v in values):
                raise ValueError(f"{name} must not contain NaN, got {values}")
        if any(not (s > 0 and math.isfinite(s)) for s in sigma):
            raise ValueError(f"noise_sigma must be positive and finite, got {self.noise_sigma!r}")
        lo = np.broadcast_to(np.array(low), (self.action_dim,))
        hi = np.broadcast_to(np.array(high), (self.action_dim,))
        if np.any(lo >= hi):
            raise ValueError(f"action_low must be < action_high elementwise, got {low} and {high}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive and finite, got {self.temperature!r}")
        if not (0.0 <= self.noise_beta < 1.0):
            raise ValueError(f"noise_beta must be in [0, 1), got {self.noise_beta!r}")
        if not math.isfinite(self.action_init):
            raise ValueError(f"action_init must be finite, got {self.action_init!r}")
        if self.num_elites is not None and not (isinstance(self.num_elites, int) and 0 < self.num_elites <= self.num_samples):
            raise ValueError(f"num_elites must be None or an int in [1, num_samples={self.num_samples}], got {self.num_elites!r}")
        if not (0.0 < self.sigma_decay <= 1.0):
            raise ValueError(f"sigma_decay must be in (0, 1], got {self.sigma_decay!r}")
        if not isinstance(self.warm_start, bool) or not isinstance(self.include_plan, bool):
            raise TypeError("warm_start and include_plan must be bool")


@dataclass
class PlanResult:
    """What one :meth:`MPPI.plan` call computed (tensors on the planner's device).

    Shapes are batched ``[E, ...]`` when the state was batched, else without the E dim.
    """

    action: torch.Tensor
    """``[E, A]``: the action to execute now."""
    plan: torch.Tensor
    """``[E, T, A]``: the updated plan (before the warm-start shift)."""
    costs: torch.Tensor
    """``[E, K]``: costs of the samples of the last iteration (+inf where invalid)."""
    weights: torch.Tensor
    """``[E, K]``: their softmax weights (sum to 1)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage summed over iterations: rollout, render, encode, cost, update, total."""


def safe_weights(costs: torch.Tensor, temperature: float, num_elites: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable softmax of ``-costs / temperature`` over the last dim, safe for NaN and inf.

    NaN and -inf are treated as +inf; +inf costs get weight 0; a row whose costs are all +inf
    gets uniform weights and ``valid=False`` (:class:`MPPI` then raises :class:`PlanningError`).
    Costs are shifted by their row minimum first, so no exp overflows.

    Args:
        costs: ``[..., K]``.
        temperature: lambda > 0.
        num_elites: keep only the cheapest ``num_elites`` per row.

    Returns:
        ``(weights [..., K], valid [..., 1] bool)``.
    """
    weights, valid, _ = _weights_and_clean_costs(costs, temperature, num_elites)
    return weights, valid


def _weights_and_clean_costs(costs: torch.Tensor, temperature: float, num_elites: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`safe_weights` plus the costs with NaN and -inf replaced by +inf."""
    costs = torch.nan_to_num(costs, nan=math.inf, posinf=math.inf, neginf=math.inf)
    cmin = costs.amin(dim=-1, keepdim=True)
    valid = cmin < math.inf
    # valid rows: (c - min) >= 0, +inf where c is +inf (-> weight 0); invalid rows (all +inf): shift by 0,
    # all logits -inf; their weights are set uniform below
    logits = (costs - cmin.masked_fill(~valid, 0.0)).mul_(-1.0 / temperature)
    if num_elites is not None and num_elites < costs.shape[-1]:
        kth = torch.topk(logits, num_elites, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    weights = torch.softmax(logits.masked_fill_(~valid, 0.0), dim=-1)
    return weights, valid, costs


class MPPI:
    """MPPI planner over a :class:`~vip_rl.planning.dynamics.Dynamics` and a
    :class:`~vip_rl.planning.costs.Cost`, batched over samples and environments.

    Args:
        config: the :class:`MPPIConfig`.
        dynamics: rolls ``actions [E, K, T, A]`` out from ``state [E, ...]`` (``.rollout``).
        cost: maps the rolled-out :class:`~vip_rl.planning.dynamics.Trajectories` to ``[E, K]``.
        device: where sampling and the update run.
        seed: seeds the planner's own ``torch.Generator`` (no global RNG).

    Example:
        >>> import torch
        >>> from vip_rl.planning import StateCost, TorchDynamics
        >>> dyn = TorchDynamics(lambda s, a: s + a)
        >>> cost = StateCost(lambda s: (s ** 2).sum(-1))
        >>> mppi = MPPI(MPPIConfig(action_dim=2), dyn, cost, seed=0)
        >>> action = mppi.command(torch.ones(2))
        >>> action.shape
        torch.Size([2])
    """

    def __init__(
        self,
        config: MPPIConfig,
        dynamics: "Dynamics",
        cost: "Cost",
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(config, MPPIConfig):
            raise TypeError(f"config must be an MPPIConfig, got {type(config).__name__}")
        if not hasattr(dynamics, "rollout"):
            raise TypeError(f"dynamics must have a .rollout(state, actions) method, got {type(dynamics).__name__}")
        if not callable(cost):
            raise TypeError(f"cost must be callable (a Cost), got {type(cost).__name__}")
        self.config = config
        self.dynamics = dynamics
        self.cost = cost
        self.device = torch.device(device)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        dims = config.action_dim
        self.noise_sigma = torch.tensor(config.noise_sigma, dtype=torch.float32, device=self.device).expand(dims).clone()
        self.action_low = torch.tensor(config.action_low, dtype=torch.float32, device=self.device).expand(dims).clone()
        self.action_high = torch.tensor(config.action_high, dtype=torch.float32, device=self.device).expand(dims).clone()
        self.noise_filter = self._noise_filter(config.horizon, config.noise_beta).to(self.device)
        bounds_equal = len(set(_as_float_tuple(config.action_low, "action_low"))) == 1 and len(
            set(_as_float_tuple(config.action_high, "action_high"))) == 1
        # scalar bounds clamp in place without broadcasting tensors (settled here, not per call)
        self._scalar_bounds = (
            (float(self.action_low[0]), float(self.action_high[0])) if bounds_equal else None
        )
        sigmas = set(_as_float_tuple(config.noise_sigma, "noise_sigma"))
        self._scalar_sigma = next(iter(sigmas)) if len(sigmas) == 1 else None
        self._init_step = torch.clamp(torch.full((1, 1, dims), config.action_init, device=self.device), self.action_low, self.action_high)
        # the plan to warm start from: [E, T, A]; the only result kept between calls
        self.plan_buffer: torch.Tensor | None = None
        self._nan_warned = False
        self.state_ndim = int(getattr(dynamics, "state_ndim", 1))
        # what the cost reads from a rollout ("frames", "initial_frame", "states"): settled once
        self.needs: frozenset[str] = frozenset(getattr(cost, "needs", frozenset()))

    @staticmethod
    def _noise_filter(horizon: int, beta: float) -> torch.Tensor:
        """``[T, T]`` lower-triangular L with ``n = L w`` the AR(1) noise of coefficient beta."""
        steps = torch.arange(horizon, dtype=torch.float64)
        lag = steps[:, None] - steps[None, :]
        filt = torch.where(lag >= 0, beta ** lag.clamp(min=0), torch.zeros_like(lag)) * math.sqrt(1.0 - beta**2)
        filt[:, 0] = beta ** steps  # stationary start: n_0 = w_0
        return filt.float()

    def reset(self, *, seed: int | None = None) -> None:
        """Forget the warm-start plan and the cost's per-episode state (call at the start of each
        episode); optionally reseed the generator."""
        self.plan_buffer = None
        reset_cost = getattr(self.cost, "reset", None)
        if callable(reset_cost):
            reset_cost()
        if seed is not None:
            self.seed = int(seed)
            self.generator.manual_seed(self.seed)

    def _fresh_plan(self, num_envs: int) -> torch.Tensor:
        plan = torch.full((num_envs, self.config.horizon, self.config.action_dim), self.config.action_init, device=self.device)
        return torch.clamp(plan, self.action_low, self.action_high)

    def _sample_actions(self, plan: torch.Tensor, scale: float) -> torch.Tensor:
        """``clip(U + sigma * smoothed N(0, 1))``: ``[E, K, T, A]`` from the planner's generator.

        Four in-place passes over one ``[E, K, T, A]`` tensor (randn, mul_, add_, clamp_).
        """
        cfg = self.config
        num_envs = plan.shape[0]
        noise = torch.randn(
            (num_envs, cfg.num_samples, cfg.horizon, cfg.action_dim), generator=self.generator, device=self.device
        )
        if cfg.noise_beta > 0:
            noise = torch.einsum("ts,eksa->ekta", self.noise_filter, noise)
        # in place on the fresh noise: addcmul with a broadcast [A] sigma is ~4x slower on CPU
        if self._scalar_sigma is not None:
            actions = noise.mul_(self._scalar_sigma * scale)
        else:
            actions = noise.mul_(self.noise_sigma if scale == 1.0 else self.noise_sigma * scale)
        actions = actions.add_(plan[:, None])
        if self._scalar_bounds is not None:
            actions = actions.clamp_(*self._scalar_bounds)
        else:
            actions = torch.clamp(actions, self.action_low, self.action_high)
        if cfg.include_plan:
            actions[:, 0] = plan
        return actions

    @torch.inference_mode()
    def plan(self, state: Any) -> PlanResult:
        """Run ``config.iterations`` MPPI rounds from ``state`` and return the result.

        Args:
            state: one state (``state_ndim`` dims, e.g. ``[S]``) or a batch ``[E, ...]``; numpy or tensor,
                whatever the dynamics backend accepts.

        Returns:
            :class:`PlanResult`; updates only the warm-start plan.

        Raises:
            ValueError: ``state`` has the wrong number of dims or non-finite values.
            TypeError / ValueError: the cost returned something that is not a float tensor ``[E, K]``.
            PlanningError: every sample of an environment got a non-finite cost (NaN, +-inf), because
                the dynamics diverged on all of them or because the cost did; a few such samples only
                warn (once) and get weight 0.
        """
        cfg = self.config
        batched = _ndim(state) == self.state_ndim + 1
        if not batched and _ndim(state) != self.state_ndim:
            raise ValueError(
                f"state must have {self.state_ndim} dims (one env) or {self.state_ndim + 1} (a batch of envs), "
                f"got shape {list(getattr(state, 'shape', []))}"
            )
        states = state if batched else state[None]
        num_envs = int(states.shape[0])
        if not _all_finite(states):  # one host sync per command (the state is small)
            raise ValueError("state must be finite, got NaN or inf in the state given to MPPI.plan/command")
        start = time.perf_counter()
        timings: dict[str, float] = {"rollout": 0.0, "render": 0.0, "encode": 0.0, "cost": 0.0, "update": 0.0}
        plan = self.plan_buffer
        if plan is None or plan.shape[0] != num_envs:
            plan = self._fresh_plan(num_envs)
        nan_seen: torch.Tensor | None = None
        costs = weights = None
        scale = 1.0
        for _ in range(cfg.iterations):
            t0 = time.perf_counter()
            actions = self._sample_actions(plan, scale)  # [E, K, T, A]
            traj = self.dynamics.rollout(states, actions, needs=self.needs)
            costs = self._checked_costs(self.cost(traj), num_envs)
            t1 = time.perf_counter()
            for key in ("rollout", "render", "encode"):
                timings[key] += traj.timings.get(key, 0.0)
            if traj.invalid is not None:  # diverged rollouts count as NaN (warned once, then +inf)
                costs = costs.masked_fill(traj.invalid.to(self.device), math.nan)
            if not self._nan_warned:  # checked until the first warning
                flag = torch.isnan(costs).any()
                nan_seen = flag if nan_seen is None else nan_seen | flag
            weights, valid, costs = _weights_and_clean_costs(costs, cfg.temperature, cfg.num_elites)
            if not bool(valid.all()):  # one host sync per iteration: the action is read by the caller anyway
                self._raise_no_valid(~valid[:, 0], traj.invalid)
            # U + sum_k w_k (V_k - U) = sum_k w_k V_k (weights sum to 1): one [E, 1, K] @ [E, K, T*A]
            mean = torch.matmul(weights[:, None, :], actions.flatten(2)).view_as(plan)
            plan = torch.where(valid[..., None], mean, plan)
            timings["update"] += time.perf_counter() - t1
            timings["cost"] += t1 - t0
            scale *= cfg.sigma_decay
        # cost = its own time minus the stages the dynamics/encoder reported
        timings["cost"] = max(0.0, timings["cost"] - timings["rollout"] - timings["render"] - timings["encode"])
        if nan_seen is not None and bool(nan_seen):  # one host sync per command, only until warned
            self._nan_warned = True
            warnings.warn(
                "MPPI: some sample costs or rolled-out states were NaN (e.g. the dynamics diverged); they are treated as +inf cost",
                RuntimeWarning,
                stacklevel=2,
            )
        action = plan[:, 0].clone()
        if cfg.warm_start:
            self.plan_buffer = torch.cat([plan[:, 1:], self._init_step.expand(num_envs, 1, -1)], dim=1)
        else:
            self.plan_buffer = None
        timings["total"] = time.perf_counter() - start
        if not batched:
            return PlanResult(action[0], plan[0], costs[0], weights[0], timings)
        return PlanResult(action, plan, costs, weights, timings)

    def command(self, state: Any) -> torch.Tensor:
        """The action to execute from ``state``: ``[S] -> [A]`` or ``[E, S] -> [E, A]``.

        Raises as :meth:`plan` does."""
        return self.plan(state).action

    def _checked_costs(self, costs: Any, num_envs: int) -> torch.Tensor:
        """The cost's output as float32 ``[E, K]`` on the planner's device, or a clear error naming the cost."""
        name = f"cost {type(self.cost).__name__}"
        expected = [num_envs, self.config.num_samples]
        if not isinstance(costs, torch.Tensor):
            raise TypeError(f"{name} must return a torch.Tensor of shape {expected}, got {type(costs).__name__}")
        if not (costs.is_floating_point() or costs.dtype in _INT_DTYPES):
            raise TypeError(f"{name} must return a real-valued tensor of shape {expected}, got dtype {costs.dtype}")
        if list(costs.shape) != expected:
            raise ValueError(f"{name} must return costs of shape [E, K] = {expected}, got {list(costs.shape)}")
        return costs.to(self.device, torch.float32)

    def _raise_no_valid(self, no_valid: torch.Tensor, invalid: torch.Tensor | None) -> None:
        """``no_valid [E]``: envs without a finite cost; ``invalid [E, K]``: the rollouts the dynamics marked diverged."""
        envs = torch.nonzero(no_valid).flatten().tolist()
        blame_dynamics = invalid is not None and bool(invalid.to(no_valid.device)[no_valid].all())
        if blame_dynamics:
            raise PlanningError(
                f"MPPI: the dynamics {type(self.dynamics).__name__} produced non-finite states for every one of the "
                f"{self.config.num_samples} sampled action sequences (env {envs}); check the model, the start state "
                "and the action bounds")
        raise PlanningError(
            f"MPPI: the cost {type(self.cost).__name__} is non-finite (NaN or inf) for every one of the "
            f"{self.config.num_samples} sampled action sequences (env {envs}); no action can be chosen")


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _all_finite(state: Any) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, np.ndarray):
        return not np.issubdtype(state.dtype, np.floating) or bool(np.isfinite(state).all())
    return True


def _ndim(state: Any) -> int:
    if isinstance(state, (torch.Tensor, np.ndarray)):
        return state.ndim
    raise TypeError(f"state must be a numpy array or torch tensor, got {type(state).__name__}")
