"""Costs for :class:`~vip_rl.planning.mppi.MPPI`: map rolled-out
:class:`~vip_rl.planning.dynamics.Trajectories` to ``[E, K]`` (lower is better).

Costs compose: ``EmbeddingGoalCost(enc, goal) + ActionPenalty(0.01)`` or ``2.0 * cost``.
Each cost declares what it reads from a rollout in ``needs`` so the backend renders
only what is used.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from vip_rl.goals import embed_goal
from vip_rl.planning.dynamics import NEEDS_FRAMES, NEEDS_INITIAL_FRAME, NEEDS_STATES, Trajectories

__all__ = [
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
]

When = Literal["final", "sum"]


class Cost:
    """Base class: ``cost(traj) -> [E, K]``; supports ``+`` and scalar ``*``."""

    needs: frozenset[str] = frozenset()

    def __call__(self, traj: Trajectories) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Clear per-episode state (stateful costs such as :class:`DemoSubgoalCost`); no-op here."""

    def __add__(self, other: "Cost") -> "SumCost":
        if not isinstance(other, Cost):
            return NotImplemented
        return SumCost([(1.0, self), (1.0, other)])

    def __mul__(self, weight: float) -> "SumCost":
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            return NotImplemented
        return SumCost([(float(weight), self)])

    __rmul__ = __mul__


class SumCost(Cost):
    """Weighted sum of costs: ``sum_i w_i * cost_i(traj)``.

    Args:
        terms: ``[(weight, cost), ...]``.
    """

    def __init__(self, terms: Sequence[tuple[float, Cost]]) -> None:
        flat: list[tuple[float, Cost]] = []
        for weight, cost in terms:
            if not isinstance(cost, Cost):
                raise TypeError(f"terms must hold Cost objects, got {type(cost).__name__}")
            if isinstance(cost, SumCost):
                flat += [(weight * w, c) for w, c in cost.terms]
            else:
                flat.append((float(weight), cost))
        if not flat:
            raise ValueError("SumCost needs at least one term")
        self.terms = flat
        self.needs = frozenset().union(*(c.needs for _, c in flat))

    def reset(self) -> None:
        for _, cost in self.terms:
            cost.reset()

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        total = None
        for weight, cost in self.terms:
            value = cost(traj) if weight == 1.0 else weight * cost(traj)
            total = value if total is None else total + value
        return total


def _check_when(when: str, discount: float) -> None:
    if when not in ("final", "sum"):
        raise ValueError(f"when must be 'final' or 'sum', got {when!r}")
    if not (0.0 < discount <= 1.0):
        raise ValueError(f"discount must be in (0, 1], got {discount!r}")


def goal_embedding(encoder: Any, goal: Any) -> torch.Tensor:
    """Embed a goal -> ``[G, D]`` (see :func:`vip_rl.goals.embed_goal`): a uint8 image ``[H, W, 3]`` /
    ``[G, H, W, 3]``, a string / list of strings (text tower), a precomputed float embedding ``[D]`` /
    ``[G, D]``, a Video (its final frame) or a goal file path.

    Raises:
        TypeError / ValueError: a goal of the wrong type, dtype or shape (the message names it).
    """
    return embed_goal(encoder, goal)


def frame_embeddings(traj: Trajectories, encoder: Any, camera: str | None = None, *, initial: bool = False) -> torch.Tensor:
    """Embed a rollout's rendered frames (of ``camera``, default the primary one) in one batched forward:
    ``[E, K, F, D]``, or the start frames ``[E, D]`` with ``initial``.

    The result is kept in ``traj.embeddings`` so that every cost of a sum that uses the same encoder and
    camera embeds the frames once; the time spent is added to ``traj.timings["encode"]``.

    Raises:
        ValueError: the backend rendered no such frames.
    """
    key = ("initial" if initial else "frames", id(encoder), camera)
    if key not in traj.embeddings:
        frames = traj.frames_of(camera, initial=initial)
        start = time.perf_counter()
        if initial:
            embedding = encoder.encode_images(frames)
        else:
            shape = frames.shape
            embedding = encoder.encode_images(frames.reshape(-1, *shape[-3:])).reshape(*shape[:3], -1)
        traj.embeddings[key] = embedding
        traj.timings["encode"] = traj.timings.get("encode", 0.0) + time.perf_counter() - start
    return traj.embeddings[key]


def _weights_over_steps(steps: Sequence[int], when: str, discount: float, device: torch.device) -> torch.Tensor:
    """``[F]`` weights of the rendered steps: one-hot on the last for 'final', discount**t for 'sum'."""
    if when == "final":
        w = torch.zeros(len(steps))
        w[-1] = 1.0
    else:
        w = torch.tensor([discount**t for t in steps], dtype=torch.float32)
    return w.to(device)


class EmbeddingGoalCost(Cost):
    """Embedding distance to a goal image or instruction: ``d(phi(o_t), phi(g))``.

    ``when="final"``: distance at the final step of each rollout (the VIP evaluation's score);
    ``"sum"``: ``sum_f discount**t_f * d_f`` over all rendered steps (render_every of the backend).
    All rendered frames of all samples are encoded in one batched forward.

    Args:
        encoder: an :class:`~vip_rl.encoders.base.Encoder`.
        goal: uint8 image ``[H, W, 3]`` (or ``[E, H, W, 3]``, one per env), a string / list of E strings
            (needs a text tower), a precomputed embedding ``[D]`` / ``[E, D]``, or any other goal
            :func:`vip_rl.goals.parse_goal` reads (a Video: its final frame; a goal file ``Path``).
        when: ``"final"`` or ``"sum"``.
        discount: per-step discount for ``"sum"``, in (0, 1].
        camera: which rendered camera to score (None: the backend's primary camera); sum several
            costs with different cameras (and goals) for a multi-view cost.

    Raises:
        TypeError / ValueError: bad goal (e.g. ``TypeError: goal must be uint8 [H, W, 3] or [K, H, W, 3] images
            or a float embedding [D] / [K, D], got float32 [3, 224, 224]``).
    """

    needs = frozenset({NEEDS_FRAMES})

    def __init__(self, encoder: Any, goal: Any, *, when: When = "final", discount: float = 1.0,
                 camera: str | None = None) -> None:
        _check_when(when, discount)
        self.encoder = encoder
        self.when = when
        self.discount = float(discount)
        self.camera = camera
        self.goal = goal_embedding(encoder, goal)  # [G, D]

    def distances(self, traj: Trajectories) -> torch.Tensor:
        """``[E, K, F]`` distances of every rendered frame to the goal."""
        z = frame_embeddings(traj, self.encoder, self.camera)  # [E, K, F, D]
        goal = self.goal[:, None, None, :].to(z.device)
        if goal.shape[0] not in (1, z.shape[0]):
            raise ValueError(f"got {goal.shape[0]} goals for {z.shape[0]} envs; give 1 or one per env")
        return self.encoder.distance(z, goal)

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        d = self.distances(traj)
        return (d * _weights_over_steps(traj.frame_steps, self.when, self.discount, d.device)).sum(-1)


class EmbeddingProgressCost(Cost):
    """Negative discounted embedding progress toward the goal (the VIP reward summed):
    ``-sum_f discount**t_f * (d_{f-1} - d_f)`` with ``d_{-1}`` the distance of the current frame.

    With discount 1 this telescopes to ``d_final - d_now`` (same ranking as the final-step goal
    cost); discount < 1 prefers samples that make progress early.

    Args:
        encoder, goal, camera: as :class:`EmbeddingGoalCost`.
        discount: in (0, 1].
    """

    needs = frozenset({NEEDS_FRAMES, NEEDS_INITIAL_FRAME})

    def __init__(self, encoder: Any, goal: Any, *, discount: float = 1.0, camera: str | None = None) -> None:
        _check_when("sum", discount)
        self.encoder = encoder
        self.discount = float(discount)
        self.camera = camera
        self.goal = goal_embedding(encoder, goal)

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        z = frame_embeddings(traj, self.encoder, self.camera)  # [E, K, F, D]
        z0 = frame_embeddings(traj, self.encoder, self.camera, initial=True)  # [E, D]
        goal = self.goal.to(z.device)
        d = self.encoder.distance(z, goal[:, None, None, :])  # [E, K, F]
        d0 = self.encoder.distance(z0, goal)[:, None, None].expand(-1, d.shape[1], 1)  # [E, K, 1]
        prev = torch.cat([d0, d[..., :-1]], -1)
        w = _weights_over_steps(traj.frame_steps, "sum", self.discount, d.device)
        return -((prev - d) * w).sum(-1)


class OracleCost(Cost):
    """The env's true reward / progress / success on the rolled-out states (for comparison).

    Uses ``fn(states [N, S]) -> [N]`` when given, else the dynamics backend's
    ``evaluate_states`` (the ``vip_envs`` hook) and its entry ``key``, else, for ``key="reward"``, the rewards
    ``env.step`` returned during the rollout (``MujocoDynamics(env, backend="step")``: the env-reward oracle of
    any env, e.g. gymnasium's Pusher-v5).
    cost = ``-sum_t discount**t * value_t`` (``when="sum"``) or ``-value_T`` (``"final"``).

    Args:
        key: entry of ``evaluate_states``: ``"reward"``, ``"task_progress"`` or ``"success"``.
        when, discount: as :class:`EmbeddingGoalCost`.
        fn: optional value function of states (then ``key`` is unused).
        success_bonus: added to the value where ``evaluate_states`` reports success (0: off).
    """

    needs = frozenset({NEEDS_STATES})

    def __init__(
        self,
        *,
        key: str = "reward",
        when: When = "sum",
        discount: float = 1.0,
        fn: Callable[[np.ndarray], np.ndarray] | None = None,
        success_bonus: float = 0.0,
    ) -> None:
        _check_when(when, discount)
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
        self.key = key
        self.when = when
        self.discount = float(discount)
        self.fn = fn
        self.success_bonus = float(success_bonus)

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        states = traj.states
        if states is None:
            raise ValueError("OracleCost needs rolled-out states")
        states = states.detach().cpu().numpy() if isinstance(states, torch.Tensor) else np.asarray(states)
        horizon = states.shape[2]
        steps = [horizon - 1] if self.when == "final" else list(range(horizon))
        sel = states[:, :, steps]  # [E, K, T', S]
        if self.fn is not None:
            value = np.asarray(self.fn(sel.reshape(-1, sel.shape[-1])), dtype=np.float64).reshape(sel.shape[:3])
        elif traj.evaluate_states is None:
            if self.key != "reward" or traj.rewards is None:
                raise TypeError(
                    f"OracleCost(key={self.key!r}) without fn needs a dynamics backend with evaluate_states (vip_envs "
                    "tasks) or, for key='reward', one that records env.step's rewards (MujocoDynamics(env, backend='step'))"
                )
            value = np.asarray(traj.rewards, dtype=np.float64)[:, :, steps]
        else:
            out = traj.evaluate_states(sel)
            if self.key not in out:
                raise ValueError(f"key {self.key!r} not in evaluate_states output {sorted(out)}")
            value = np.asarray(out[self.key], dtype=np.float64)
            if self.success_bonus:
                value = value + self.success_bonus * np.asarray(out["success"], dtype=np.float64)
        w = np.array([self.discount**t for t in steps])
        return torch.from_numpy(-(value * w).sum(-1)).float().to(traj.actions.device)


class ActionPenalty(Cost):
    """``weight * sum_t ||a_t||^2`` over the horizon (discourages large, jerky actions).

    Args:
        weight: >= 0.
    """

    def __init__(self, weight: float = 0.01) -> None:
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
        self.weight = float(weight)

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        return self.weight * traj.actions.square().sum((-1, -2))


class StateCost(Cost):
    """A torch cost on rolled-out states (for :class:`~vip_rl.planning.dynamics.TorchDynamics`).

    Args:
        fn: ``states [E, K, T, S] -> [E, K, T]`` per-step cost (summed with ``discount``) when
            ``when="sum"``, applied to the final step only when ``when="final"``.
        terminal_weight: extra weight on the final step's cost.

    Example:
        >>> cost = StateCost(lambda s: s.square().sum(-1))
    """

    needs = frozenset({NEEDS_STATES})

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        when: When = "sum",
        discount: float = 1.0,
        terminal_weight: float = 0.0,
    ) -> None:
        _check_when(when, discount)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.when = when
        self.discount = float(discount)
        self.terminal_weight = float(terminal_weight)
        self._weights: dict[tuple[int, str], torch.Tensor] = {}

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        states = traj.states if isinstance(traj.states, torch.Tensor) else torch.as_tensor(traj.states)
        per_step = self.fn(states)  # [E, K, T]
        horizon = per_step.shape[-1]
        key = (horizon, str(per_step.device))
        if key not in self._weights:
            w = _weights_over_steps(range(horizon), self.when, self.discount, per_step.device).clone()
            w[-1] += self.terminal_weight
            self._weights[key] = w
        return per_step @ self._weights[key]


class SubgoalTracker:
    """Progress along a demonstration in some feature space (embeddings or states).

    Keeps, per environment, the index of the demo step the current observation is closest to
    (never moving backwards when ``monotonic``) and returns the index of the subgoal to aim for,
    ``lookahead`` demo steps further (clamped to the last step). With ``subgoals`` (demo step indices, such
    as :func:`~vip_rl.planning.decompose.decompose_demo`'s), the match is still over every demo step and
    ``lookahead`` counts subgoals: 1 aims at the first subgoal after the matched step.

    Args:
        demo: float ``[N, D]`` features of the demo's N steps.
        lookahead: demo steps (or subgoals) ahead of the current match to aim for (>= 1).
        monotonic: never go back along the demo.
        subgoals: ascending demo step indices ``[M]`` to aim at (None: every step).

    Example:
        >>> tracker = SubgoalTracker(torch.arange(10.0)[:, None], lookahead=1, subgoals=[4, 9])
        >>> tracker.subgoal_index(torch.tensor([[1.0], [4.0]]), lambda a, b: (a - b).abs().sum(-1)).tolist()
        [4, 9]
    """

    def __init__(self, demo: torch.Tensor, *, lookahead: int = 10, monotonic: bool = True,
                 subgoals: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        if demo.ndim != 2 or demo.shape[0] < 1:
            raise ValueError(f"demo features must be [N, D] with N >= 1, got {list(demo.shape)}")
        if not isinstance(lookahead, int) or lookahead < 1:
            raise ValueError(f"lookahead must be an int >= 1, got {lookahead!r}")
        steps = torch.arange(demo.shape[0]) if subgoals is None else torch.as_tensor(np.asarray(subgoals))
        if (steps.ndim != 1 or steps.numel() < 1 or steps.is_floating_point() or steps.dtype == torch.bool
                or steps.min() < 0 or steps.max() >= demo.shape[0] or (steps.diff() <= 0).any()):
            raise ValueError(f"subgoals must be ascending int demo step indices in [0, {demo.shape[0] - 1}], "
                             f"got {np.asarray(subgoals).tolist()}")
        self.demo = demo
        self.lookahead = lookahead
        self.monotonic = monotonic
        self.subgoals = steps.long()  # [M]
        self.matched: torch.Tensor | None = None  # [E] long

    def reset(self) -> None:
        """Forget the progress (call at the start of each episode)."""
        self.matched = None

    def subgoal_index(self, current: torch.Tensor, distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``current [E, D]`` features -> subgoal indices ``[E]`` (demo steps; updates the match)."""
        d = distance(current[:, None, :], self.demo[None].to(current.device))  # [E, N]
        if self.monotonic and self.matched is not None and self.matched.shape[0] == d.shape[0]:
            # only matches at or after the previous one count
            steps = torch.arange(d.shape[1], device=d.device)
            d = d.masked_fill(steps[None] < self.matched[:, None], math.inf)
        self.matched = d.argmin(-1)
        subgoals = self.subgoals.to(self.matched.device)
        ahead = torch.searchsorted(subgoals, self.matched, right=True) + (self.lookahead - 1)  # [E]
        return subgoals[ahead.clamp(max=subgoals.shape[0] - 1)]


class DemoSubgoalCost(Cost):
    """Embedding distance to a moving subgoal taken from a demonstration video.

    Each command, the current frame is matched to the closest demo frame (monotonically), and the
    rollouts are scored by their distance to the demo frame ``lookahead`` steps later (with ``subgoals``:
    the ``lookahead``-th subgoal frame after the match)
    (``when="final"``: final rendered step; ``"sum"``: discounted sum over rendered steps), plus
    ``final_weight`` times the distance to the demo's last frame (the goal). Stateful: call
    :meth:`reset` at the start of each episode.

    Args:
        encoder: an :class:`~vip_rl.encoders.base.Encoder`.
        demo_frames: uint8 ``[N, H, W, 3]`` frames of one demonstration (or float embeddings ``[N, D]``).
        lookahead, monotonic, subgoals: see :class:`SubgoalTracker` (``subgoals``: e.g. the frames
            :func:`~vip_rl.planning.decompose.decompose_demo` picks, with ``lookahead=1``).
        when, discount, camera: as :class:`EmbeddingGoalCost`.
        final_weight: weight of the distance to the final demo frame.
    """

    needs = frozenset({NEEDS_FRAMES, NEEDS_INITIAL_FRAME})

    def __init__(
        self,
        encoder: Any,
        demo_frames: Any,
        *,
        lookahead: int = 10,
        monotonic: bool = True,
        when: When = "final",
        discount: float = 1.0,
        final_weight: float = 0.0,
        camera: str | None = None,
        subgoals: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    ) -> None:
        _check_when(when, discount)
        if isinstance(demo_frames, (np.ndarray, torch.Tensor)) and demo_frames.ndim == 4:
            demo = goal_embedding(encoder, demo_frames)
        elif isinstance(demo_frames, (np.ndarray, torch.Tensor)) and demo_frames.ndim == 2:
            demo = goal_embedding(encoder, demo_frames)
        else:
            raise ValueError(
                f"demo_frames must be uint8 [N, H, W, 3] or float [N, D], got {getattr(demo_frames, 'shape', type(demo_frames).__name__)}"
            )
        self.encoder = encoder
        self.tracker = SubgoalTracker(demo, lookahead=lookahead, monotonic=monotonic, subgoals=subgoals)
        self.when = when
        self.discount = float(discount)
        self.final_weight = float(final_weight)
        self.camera = camera

    def reset(self) -> None:
        self.tracker.reset()

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        z = frame_embeddings(traj, self.encoder, self.camera)  # [E, K, F, D]
        z0 = frame_embeddings(traj, self.encoder, self.camera, initial=True)  # [E, D]
        index = self.tracker.subgoal_index(z0, self.encoder.distance)  # [E]
        demo = self.tracker.demo.to(z.device)
        sub = demo[index]  # [E, D]
        d = self.encoder.distance(z, sub[:, None, None, :])  # [E, K, F]
        w = _weights_over_steps(traj.frame_steps, self.when, self.discount, d.device)
        cost = (d * w).sum(-1)
        if self.final_weight:
            cost = cost + self.final_weight * (self.encoder.distance(z, demo[-1]) * w).sum(-1)
        return cost
