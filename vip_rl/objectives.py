"""VIP, LIV and temporal-distance objectives: pure tensor functions (no I/O, no global RNG).

``vip_loss`` and ``liv_loss`` match the official trainers term by term; ``temporal_distance_loss`` is HILP's
expectile TD on a metric value (see its docstring), the objective of the bundled ``td-sim`` encoder.

Notation (batch of B tuples sampled from videos, see ``vip_rl.data``): ``e0 = phi(o_0)`` the start frame,
``eg = phi(g)`` the goal frame, ``et = phi(o_t)``, ``et1 = phi(o_{t+1})``; all ``[B, D]``.

VIP (Ma et al. 2023, ``facebookresearch/vip``, ``vip/trainer.py``)::

    V(a, g) = -||a - g||_2
    r_t     = 0 if o_t is the goal else -1          (the official sampler never picks o_t = g: r = -1)
    L_VIP   = (1 - gamma) * mean_B(-V(e0, eg)) + log mean_B exp(-(r_t + gamma * V(et1, eg) - V(et, eg)))

With ``num_negatives = K > 0`` the official trainer draws K permutations ``p_k`` of the batch, pairs the
shuffled ``(et[p_k], et1[p_k])`` with the *unshuffled* goals ``eg``, concatenates the K*B terms and adds a
**second** log-mean-exp term (reward -1)::

    L_VIP += log mean_{k, i} exp(-(-1 + gamma * V(et1[p_k(i)], eg_i) - V(et[p_k(i)], eg_i)))

The official ``log(1e-8 + mean(exp(x)))`` is computed here as ``logsumexp(x) - log(N)`` (exact up to the 1e-8,
finite for any input). Optional regulariser (official ``l1weight``/``l2weight``): ``l1_weight * mean ||e||_1 +
l2_weight * mean ||e||_2`` over all 4B embeddings.

LIV (Ma et al. 2023, ``penn-pal-lab/LIV``, ``liv/trainer.py``): the same VIP form with the cosine value
``V(a, g) = cos(a, g) / (1 - gamma)`` (so values are in units of discounted steps, reward stays -1),
applied once with image goals ``eg`` and once with the instruction embedding as the goal, plus the
symmetric CLIP InfoNCE between goal-frame embeddings and their instruction embeddings::

    L_LIV = vip_weight * L_VIP(eg) + text_weight * L_VIP(text) + nce_weight * InfoNCE(e_goal_frame, text)

The official LIV InfoNCE has no logit scale (``temperature = 1``), which is this module's default.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
ValueFn = Callable[[Tensor, Tensor], Tensor]


def _check_embeddings(**named: Tensor) -> tuple[int, int]:
    shape: tuple[int, ...] = ()
    first = ""
    for name, value in named.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor [B, D], got {type(value).__name__}")
        if value.ndim != 2:
            raise ValueError(f"{name} must be [B, D], got shape {list(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {value.dtype}")
        if not first:
            shape = tuple(value.shape)
            first = name
        elif tuple(value.shape) != shape:
            raise ValueError(f"{name} must have the shape of {first} {list(shape)}, got {list(value.shape)}")
    if shape[0] == 0:
        raise ValueError(f"embeddings must have a non-empty batch, got shape {list(shape)}")
    return shape[0], shape[1]


def _check_gamma(gamma: float) -> float:
    if not isinstance(gamma, (int, float)) or not 0.0 < float(gamma) < 1.0:
        raise ValueError(f"gamma must be a float in (0, 1), got {gamma!r}")
    return float(gamma)


def l2_value(a: Tensor, g: Tensor) -> Tensor:
    """VIP value ``V(a, g) = -||a - g||_2``: ``[..., D] x [..., D] -> [...]``.

    The gradient at ``a == g`` is 0 (torch's norm subgradient), so identical embeddings stay finite.
    """
    return -torch.linalg.vector_norm(a - g, dim=-1)


def cos_value(a: Tensor, g: Tensor, *, gamma: float = 0.98) -> Tensor:
    """LIV value ``V(a, g) = cos(a, g) / (1 - gamma)``: ``[..., D] x [..., D] -> [...]`` in ``[-1, 1] / (1 - gamma)``.

    Zero vectors give cosine 0 (eps-guarded) instead of NaN.
    """
    return F.cosine_similarity(a, g, dim=-1, eps=1e-8) / (1.0 - gamma)


def log_mean_exp(x: Tensor) -> Tensor:
    """``log(mean(exp(x)))`` over all elements, computed stably as ``logsumexp(x) - log(N)``."""
    flat = x.reshape(-1)
    return torch.logsumexp(flat, dim=0) - math.log(flat.numel())


def _negative_indices(batch: int, num_negatives: int, generator: torch.Generator | None, device: torch.device) -> list[Tensor]:
    if generator is None:
        # Deterministic without touching the global RNG: roll by 1..K (each o_t comes from another tuple when K < B).
        base = torch.arange(batch, device=device)
        return [torch.roll(base, shifts=k) for k in range(1, num_negatives + 1)]
    return [torch.randperm(batch, generator=generator, device=generator.device).to(device) for _ in range(num_negatives)]


def _vip_objective(
    e0: Tensor, eg: Tensor, et: Tensor, et1: Tensor, *, value_fn: ValueFn, gamma: float, reward: Tensor,
    num_negatives: int, generator: torch.Generator | None,
) -> tuple[Tensor, dict[str, Tensor]]:
    v0 = value_fn(e0, eg)  # [B]
    vt = value_fn(et, eg)
    vt1 = value_fn(et1, eg)
    main = (1.0 - gamma) * (-v0).mean() + log_mean_exp(-(reward + gamma * vt1 - vt))
    metrics = {
        "V_0": v0.mean().detach(),
        "V_t": vt.mean().detach(),
        "V_t1": vt1.mean().detach(),
        # share of tuples whose next frame is already valued higher (closer to the goal) than o_t
        "alignment": (vt1 > vt).float().mean().detach(),
    }
    if num_negatives > 0:
        indices = _negative_indices(e0.shape[0], num_negatives, generator, e0.device)
        vt_neg = torch.cat([value_fn(et[idx], eg) for idx in indices])  # [K*B]
        vt1_neg = torch.cat([value_fn(et1[idx], eg) for idx in indices])
        neg = log_mean_exp(-(-1.0 + gamma * vt1_neg - vt_neg))
        metrics["negatives_loss"] = neg.detach()
        metrics["V_t_neg"] = vt_neg.mean().detach()
        main = main + neg
    return main, metrics


def _reward(is_goal: Tensor | None, batch: int, like: Tensor) -> Tensor:
    if is_goal is None:
        return torch.full((batch,), -1.0, dtype=like.dtype, device=like.device)
    if not isinstance(is_goal, torch.Tensor) or is_goal.shape != (batch,):
        got = list(is_goal.shape) if isinstance(is_goal, torch.Tensor) else type(is_goal).__name__
        raise ValueError(f"is_goal must be a bool tensor [B]=[{batch}], got {got}")
    return is_goal.to(device=like.device, dtype=like.dtype) - 1.0


def _check_negatives(num_negatives: int) -> int:
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 0:
        raise ValueError(f"num_negatives must be an int >= 0, got {num_negatives!r}")
    return num_negatives


def vip_loss(
    e0: Tensor,
    eg: Tensor,
    et: Tensor,
    et1: Tensor,
    *,
    gamma: float = 0.98,
    is_goal: Tensor | None = None,
    num_negatives: int = 0,
    generator: torch.Generator | None = None,
    l1_weight: float = 0.0,
    l2_weight: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The official VIP loss, term by term (see the module docstring).

    Args:
        e0, eg, et, et1: embeddings of ``o_0``, the goal, ``o_t``, ``o_{t+1}``: ``[B, D]`` each.
        gamma: discount in (0, 1).
        is_goal: optional bool ``[B]``: ``o_t`` is the goal -> reward 0 (else -1; the official sampler
            never sets it, so ``None`` means all -1).
        num_negatives: K extra shuffled pairings (official ``num_negatives``): ``o_t, o_{t+1}`` of other
            tuples against this tuple's goal, in a second log-mean-exp term with reward -1.
        generator: draws the K permutations (official: ``torch.randperm``). ``None`` -> deterministic
            rolls of the batch by 1..K (no global RNG).
        l1_weight, l2_weight: official ``l1weight``/``l2weight`` regulariser on the 4B embeddings.

    Returns:
        ``(loss, metrics)``: scalar loss (differentiable) and detached 0-d tensors ``vip_loss``,
        ``l1``, ``l2``, ``V_0``, ``V_t``, ``V_t1``, ``alignment`` (+ ``negatives_loss``, ``V_t_neg``);
        call ``float()`` when logging.

    Raises:
        TypeError / ValueError: non-float or mismatched ``[B, D]`` inputs, bad gamma / is_goal / num_negatives.
    """
    batch, _ = _check_embeddings(e0=e0, eg=eg, et=et, et1=et1)
    gamma = _check_gamma(gamma)
    num_negatives = _check_negatives(num_negatives)
    reward = _reward(is_goal, batch, e0)
    main, metrics = _vip_objective(e0, eg, et, et1, value_fn=l2_value, gamma=gamma, reward=reward, num_negatives=num_negatives, generator=generator)
    everything = torch.cat([e0, eg, et, et1])
    l1 = torch.linalg.vector_norm(everything, ord=1, dim=-1).mean()
    l2 = torch.linalg.vector_norm(everything, ord=2, dim=-1).mean()
    loss = main
    if l1_weight:
        loss = loss + l1_weight * l1
    if l2_weight:
        loss = loss + l2_weight * l2
    metrics.update(vip_loss=main.detach(), l1=l1.detach(), l2=l2.detach(), loss=loss.detach())
    return loss, metrics


def info_nce(
    a: Tensor, b: Tensor, *, temperature: float, labels: Tensor | None = None, normalize: bool = True
) -> Tensor:
    """Symmetric InfoNCE (CLIP loss) between paired rows of ``a`` and ``b``: ``[B, D] x [B, D] -> scalar``.

    ``logits = a_n @ b_n.T / temperature`` (``a_n``, ``b_n`` L2-normalised when ``normalize``);
    loss = mean of the row-wise (a->b) and column-wise (b->a) cross-entropies with the diagonal as target.

    Args:
        temperature: > 0 (official LIV: 1.0; CLIP learns ~0.01).
        labels: optional int ``[B]``; rows with equal labels (e.g. the same instruction) all count as
            positives (multi-positive log-likelihood), so duplicates in a batch are not pushed apart.
        normalize: L2-normalise first (cosine logits).
    """
    _check_embeddings(a=a, b=b)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if normalize:
        a = F.normalize(a, dim=-1, eps=1e-8)
        b = F.normalize(b, dim=-1, eps=1e-8)
    logits = a @ b.t() / temperature  # [B, B]
    if labels is None:
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    if not isinstance(labels, torch.Tensor) or labels.shape != (a.shape[0],):
        raise ValueError(f"labels must be an int tensor [B]=[{a.shape[0]}], got {labels!r}")
    positive = labels.view(-1, 1).to(a.device) == labels.view(1, -1).to(a.device)  # [B, B], symmetric
    masked = logits.masked_fill(~positive, float("-inf"))
    rows = (torch.logsumexp(logits, 1) - torch.logsumexp(masked, 1)).mean()
    cols = (torch.logsumexp(logits, 0) - torch.logsumexp(masked, 0)).mean()
    return 0.5 * (rows + cols)


def liv_loss(
    e0: Tensor,
    eg: Tensor,
    et: Tensor,
    et1: Tensor,
    text: Tensor,
    *,
    e_text_frame: Tensor | None = None,
    gamma: float = 0.98,
    is_goal: Tensor | None = None,
    num_negatives: int = 0,
    generator: torch.Generator | None = None,
    vip_weight: float = 1.0,
    text_weight: float = 1.0,
    nce_weight: float = 1.0,
    temperature: float = 1.0,
    labels: Tensor | None = None,
    metric: Literal["cos", "l2"] = "cos",
) -> tuple[Tensor, dict[str, Tensor]]:
    """The official LIV loss (see the module docstring).

    Args:
        e0, eg, et, et1: image embeddings ``[B, D]`` (start, goal, o_t, o_{t+1}).
        text: instruction embeddings ``[B, D]`` (goal of the language VIP term).
        e_text_frame: image embeddings ``[B, D]`` paired with ``text`` in InfoNCE (official: a frame
            from the last 5% of the video); default ``eg``.
        gamma, is_goal, num_negatives, generator: as in :func:`vip_loss`.
        vip_weight, text_weight, nce_weight: official ``visionweight``, ``langweight``, ``clipweight``.
        temperature: InfoNCE temperature (official 1.0).
        labels: optional int ``[B]`` instruction ids for multi-positive InfoNCE (see :func:`info_nce`).
        metric: ``"cos"`` (official LIV: ``cos / (1 - gamma)``) or ``"l2"`` (``-||a - g|| / (1 - gamma)``).

    Returns:
        ``(loss, metrics)`` with detached ``vip_image``, ``vip_text``, ``nce``, ``retrieval_top1``
        (image->text, label-aware), ``V_0``, ``V_t``, ``V_t1``, ``alignment``, ``V_0_text``, ``loss``.
    """
    _check_embeddings(e0=e0, eg=eg, et=et, et1=et1, text=text)
    if e_text_frame is None:
        e_text_frame = eg
    else:
        _check_embeddings(e0=e0, e_text_frame=e_text_frame)
    gamma = _check_gamma(gamma)
    num_negatives = _check_negatives(num_negatives)
    if metric == "cos":
        def value_fn(a: Tensor, g: Tensor) -> Tensor:
            return cos_value(a, g, gamma=gamma)
    elif metric == "l2":
        def value_fn(a: Tensor, g: Tensor) -> Tensor:
            return l2_value(a, g) / (1.0 - gamma)
    else:
        raise ValueError(f"metric must be 'cos' or 'l2', got {metric!r}")
    reward = _reward(is_goal, e0.shape[0], e0)
    zero = e0.new_zeros(())
    metrics: dict[str, Tensor] = {}
    loss = zero
    vip_image = vip_text = nce = zero
    if vip_weight:
        vip_image, image_metrics = _vip_objective(e0, eg, et, et1, value_fn=value_fn, gamma=gamma, reward=reward, num_negatives=num_negatives, generator=generator)
        metrics.update(image_metrics)
        loss = loss + vip_weight * vip_image
    if text_weight:
        vip_text, text_metrics = _vip_objective(e0, text, et, et1, value_fn=value_fn, gamma=gamma, reward=reward, num_negatives=num_negatives, generator=generator)
        metrics.update({f"{k}_text": v for k, v in text_metrics.items()})
        loss = loss + text_weight * vip_text
    if nce_weight:
        nce = info_nce(e_text_frame, text, temperature=temperature, labels=labels)
        loss = loss + nce_weight * nce
    with torch.no_grad():
        sims = F.normalize(e_text_frame, dim=-1, eps=1e-8) @ F.normalize(text, dim=-1, eps=1e-8).t()
        best = sims.argmax(1)
        ids = torch.arange(e0.shape[0], device=e0.device) if labels is None else labels.to(e0.device)
        metrics["retrieval_top1"] = (ids[best] == ids).float().mean()
    metrics.update(vip_image=vip_image.detach(), vip_text=vip_text.detach(), nce=nce.detach(), loss=loss.detach())
    return loss, metrics


# --------------------------------------------------------------------------------------------
# temporal distance (HILP-style expectile TD on a metric value)
# --------------------------------------------------------------------------------------------
def head_distances(a: Tensor, g: Tensor, *, heads: int) -> Tensor:
    """Per-head distances of the temporal-distance value: ``[B, H*D] x [B, H*D] -> [H, B]``.

    The embedding is ``H`` equal slices; head ``h``'s distance is ``sqrt(H) * ||a_h - g_h||``, so the
    full-vector L2 distance an :class:`~vip_rl.encoders.Encoder` reports is the root mean square of the
    heads' distances (``||a - g||^2 = sum_h ||a_h - g_h||^2 = mean_h d_h^2``): it stays in units of steps.
    """
    batch, dim = a.shape
    if dim % heads:
        raise ValueError(f"embedding dimension {dim} must be divisible by heads={heads}")
    diff = (a - g).view(batch, heads, dim // heads)
    return math.sqrt(heads) * torch.linalg.vector_norm(diff, dim=-1).t()


def expectile_weight(advantage: Tensor, expectile: float) -> Tensor:
    """IQL/HILP expectile weight: ``expectile`` where ``advantage >= 0``, else ``1 - expectile``."""
    # tensors of advantage's dtype: python scalars in torch.where would give float32 weights for float64 inputs
    return torch.where(advantage >= 0, advantage.new_tensor(expectile), advantage.new_tensor(1.0 - expectile))


def temporal_distance_loss(
    es: Tensor,
    eg: Tensor,
    target_s: Tensor,
    target_s1: Tensor,
    target_g: Tensor,
    *,
    gamma: float = 0.99,
    expectile: float = 0.7,
    heads: int = 2,
    is_goal: Tensor | None = None,
    next_is_goal: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Expectile TD loss of a metric goal-conditioned value (HILP: Park, Kreiman, Levine, ICML 2024).

    ``V_h(s, g) = -d_h(s, g)`` with ``d_h`` from :func:`head_distances` (``H`` heads sharing the trunk).
    With reward ``r = -1`` (``0`` and no bootstrap when ``s`` is the goal, ``is_goal``; no bootstrap when ``s'`` reaches
    the goal, ``next_is_goal``: an extension for goals that stand for an outcome, e.g. another successful episode's
    final frame, where ``V(s', g) = 0`` is not implied by ``s' == g``)::

        next_h = V^target_h(s', g)                          target network, no gradient
        q_h    = r + gamma * mask * next_h                  per-head TD target
        adv    = r + gamma * mask * min_h next_h - mean_h V^target_h(s, g)
        L      = sum_h mean_B |expectile - 1[adv < 0]| * (q_h - V_h(s, g))^2

    The expectile (> 0.5) weighs targets above the current value more, so ``-V`` tends to the *shortest*
    number of (discounted) steps through the data, not the data policy's; its fixed point for a state ``k``
    steps from the goal is ``(1 - gamma^k) / (1 - gamma)``. Goals from other videos (the sampler's random
    goals) push unrelated states apart.

    Args:
        es, eg: online embeddings of ``s`` and ``g``: ``[B, H*D]`` (gradients flow here).
        target_s, target_s1, target_g: target-network embeddings of ``s``, ``s'`` and ``g``: ``[B, H*D]``
            (detached inside).
        gamma: discount in (0, 1) (HILP: 0.99).
        expectile: in [0.5, 1) (HILP: 0.7 on pixels, 0.95 on states; 0.5 = plain TD).
        heads: H >= 1 value heads (HILP: 2).
        is_goal: optional bool ``[B]``: ``s`` is the goal (reward 0, no bootstrap).
        next_is_goal: optional bool ``[B]``: ``s'`` reaches the goal (reward -1, no bootstrap).

    Returns:
        ``(loss, metrics)`` with detached ``td_loss``, ``distance`` (mean online ``-V``), ``target_distance``,
        ``advantage_pos`` (share of ``adv >= 0``) and ``loss``.

    Raises:
        TypeError / ValueError: non-float or mismatched ``[B, D]`` inputs, bad gamma / expectile / heads.
    """
    batch, dim = _check_embeddings(es=es, eg=eg, target_s=target_s, target_s1=target_s1, target_g=target_g)
    gamma = _check_gamma(gamma)
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or dim % heads:
        raise ValueError(f"heads must be a positive int dividing the embedding dimension {dim}, got {heads!r}")
    if not isinstance(expectile, (int, float)) or not 0.5 <= float(expectile) < 1.0:
        raise ValueError(f"expectile must be a float in [0.5, 1), got {expectile!r}")
    reward = _reward(is_goal, batch, es)
    mask = -reward  # 1 unless s is the goal
    if next_is_goal is not None:
        mask = mask * _reward(next_is_goal, batch, es).neg()  # 0 where s' reaches the goal
    with torch.no_grad():
        next_v = -head_distances(target_s1.detach(), target_g.detach(), heads=heads)  # [H, B]
        now_v = -head_distances(target_s.detach(), target_g.detach(), heads=heads)
        q = reward + gamma * mask * next_v
        advantage = reward + gamma * mask * next_v.min(0).values - now_v.mean(0)
        weight = expectile_weight(advantage, float(expectile))
    v = -head_distances(es, eg, heads=heads)
    td = (weight * (q - v) ** 2).mean(1).sum()
    metrics = {
        "td_loss": td.detach(),
        "distance": (-v).mean().detach(),
        "target_distance": (-q).mean().detach(),
        "advantage_pos": (advantage >= 0).float().mean(),
        "loss": td.detach(),
    }
    return td, metrics
