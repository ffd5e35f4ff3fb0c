"""Tests for vip_rl.objectives against naive, loop-based transcriptions of the official formulas."""
from __future__ import annotations

import math

import pytest
import torch

from vip_rl.objectives import cos_value, info_nce, l2_value, liv_loss, log_mean_exp, vip_loss

B, D = 5, 4


def _embeddings(seed: int = 0, scale: float = 1.0, n: int = 4, dtype=torch.float64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, D, generator=gen, dtype=dtype) * scale).requires_grad_(True) for _ in range(n)]


# --------------------------------------------------------------------------- naive references (python loops)


def _norm(a: list[float]) -> float:
    return math.sqrt(sum(x * x for x in a))


def _v_l2(a: list[float], g: list[float]) -> float:
    return -_norm([x - y for x, y in zip(a, g)])


def _v_cos(a: list[float], g: list[float], gamma: float) -> float:
    return sum(x * y for x, y in zip(a, g)) / (_norm(a) * _norm(g)) / (1 - gamma)


def _naive_vip(e0, eg, et, et1, *, gamma, rewards, perms, value) -> float:
    e0, eg, et, et1 = (t.tolist() for t in (e0, eg, et, et1))
    n = len(e0)
    first = (1 - gamma) * sum(-value(e0[i], eg[i]) for i in range(n)) / n
    second = math.log(sum(math.exp(-(rewards[i] + gamma * value(et1[i], eg[i]) - value(et[i], eg[i]))) for i in range(n)) / n)
    loss = first + second
    if perms:
        terms = [
            math.exp(-(-1.0 + gamma * value(et1[p[i]], eg[i]) - value(et[p[i]], eg[i])))
            for p in perms
            for i in range(n)
        ]
        loss += math.log(sum(terms) / len(terms))
    return loss


def _naive_clip(a, b, temperature, labels=None) -> float:
    a = [[x / _norm(r) for x in r] for r in a.tolist()]
    b = [[x / _norm(r) for x in r] for r in b.tolist()]
    n = len(a)
    labels = list(range(n)) if labels is None else labels.tolist()
    logits = [[sum(x * y for x, y in zip(a[i], b[j])) / temperature for j in range(n)] for i in range(n)]
    rows = cols = 0.0
    for i in range(n):
        pos = [j for j in range(n) if labels[j] == labels[i]]
        rows += -math.log(sum(math.exp(logits[i][j]) for j in pos) / sum(math.exp(logits[i][j]) for j in range(n)))
        cols += -math.log(sum(math.exp(logits[j][i]) for j in pos) / sum(math.exp(logits[j][i]) for j in range(n)))
    return 0.5 * (rows / n + cols / n)


# --------------------------------------------------------------------------- VIP


@pytest.mark.parametrize("gamma", [0.98, 0.9])
def test_vip_matches_naive(gamma: float) -> None:
    e0, eg, et, et1 = _embeddings(0)
    loss, metrics = vip_loss(e0, eg, et, et1, gamma=gamma)
    expected = _naive_vip(e0, eg, et, et1, gamma=gamma, rewards=[-1.0] * B, perms=[], value=_v_l2)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert set(metrics) >= {"vip_loss", "l1", "l2", "V_0", "V_t", "V_t1", "alignment", "loss"}
    assert "negatives_loss" not in metrics
    assert metrics["V_0"].item() == pytest.approx(l2_value(e0, eg).mean().item())
    assert not metrics["loss"].requires_grad


def test_vip_matches_official_expression() -> None:
    """Same value as the official `(1-g)*-V0.mean() + log(1e-8 + mean(exp(...)))` form."""
    e0, eg, et, et1 = _embeddings(1)
    gamma, r = 0.98, -torch.ones(B, dtype=torch.float64)
    v0, vs, vs1 = (-torch.linalg.norm(x - eg, dim=-1) for x in (e0, et, et1))
    official = (1 - gamma) * -v0.mean() + torch.log(1e-8 + torch.mean(torch.exp(-(r + gamma * vs1 - vs))))
    loss, _ = vip_loss(e0, eg, et, et1, gamma=gamma)
    assert loss.item() == pytest.approx(official.item(), abs=1e-7)


def test_vip_is_goal_reward() -> None:
    e0, eg, et, et1 = _embeddings(2)
    is_goal = torch.tensor([True, False, False, True, False])
    loss, _ = vip_loss(e0, eg, et, et1, is_goal=is_goal)
    rewards = [0.0 if g else -1.0 for g in is_goal.tolist()]
    assert loss.item() == pytest.approx(_naive_vip(e0, eg, et, et1, gamma=0.98, rewards=rewards, perms=[], value=_v_l2), rel=1e-10)
    with pytest.raises(ValueError, match=r"is_goal must be a bool tensor \[B\]=\[5\]"):
        vip_loss(e0, eg, et, et1, is_goal=torch.ones(3, dtype=torch.bool))


def test_vip_regulariser() -> None:
    e0, eg, et, et1 = _embeddings(3)
    base, _ = vip_loss(e0, eg, et, et1)
    loss, metrics = vip_loss(e0, eg, et, et1, l1_weight=0.3, l2_weight=0.7)
    rows = [row for t in (e0, eg, et, et1) for row in t.tolist()]
    l1 = sum(sum(abs(x) for x in r) for r in rows) / len(rows)
    l2 = sum(_norm(r) for r in rows) / len(rows)
    assert metrics["l1"].item() == pytest.approx(l1) and metrics["l2"].item() == pytest.approx(l2)
    assert loss.item() == pytest.approx(base.item() + 0.3 * l1 + 0.7 * l2, rel=1e-10)


def test_vip_negatives_with_generator() -> None:
    e0, eg, et, et1 = _embeddings(4)
    loss, metrics = vip_loss(e0, eg, et, et1, num_negatives=3, generator=torch.Generator().manual_seed(7))
    replay = torch.Generator().manual_seed(7)
    perms = [torch.randperm(B, generator=replay).tolist() for _ in range(3)]
    expected = _naive_vip(e0, eg, et, et1, gamma=0.98, rewards=[-1.0] * B, perms=perms, value=_v_l2)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert "negatives_loss" in metrics
    no_neg, _ = vip_loss(e0, eg, et, et1)
    assert loss.item() == pytest.approx(no_neg.item() + metrics["negatives_loss"].item(), rel=1e-10)
    again, _ = vip_loss(e0, eg, et, et1, num_negatives=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, loss)


def test_vip_negatives_without_generator_are_rolls() -> None:
    e0, eg, et, et1 = _embeddings(5)
    state = torch.get_rng_state()
    loss, _ = vip_loss(e0, eg, et, et1, num_negatives=2)
    assert torch.equal(torch.get_rng_state(), state)  # no global RNG
    perms = [[(i - k) % B for i in range(B)] for k in (1, 2)]
    expected = _naive_vip(e0, eg, et, et1, gamma=0.98, rewards=[-1.0] * B, perms=perms, value=_v_l2)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_negatives_pair_other_tuples_with_own_goal() -> None:
    """Negatives take o_t, o_t+1 from other tuples; a batch of one can only pair with itself."""
    e0, eg, et, et1 = (t[:1] for t in _embeddings(14))
    _, m = vip_loss(e0, eg, et, et1, num_negatives=3)
    v_t, v_t1 = l2_value(et, eg), l2_value(et1, eg)
    assert m["negatives_loss"].item() == pytest.approx((1.0 - 0.98 * v_t1 + v_t).item(), rel=1e-10)
    # the goal of tuple i only meets frames of other tuples: moving those frames changes the term
    e0, eg, et, et1 = _embeddings(15)
    loss, _ = vip_loss(e0, eg, et, et1, num_negatives=1)
    loss.backward()
    assert et.grad.abs().sum() > 0 and eg.grad.abs().sum() > 0


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e4, 1e8])
def test_vip_extreme_inputs_finite(scale: float) -> None:
    e0, eg, et, et1 = _embeddings(6, scale=scale, dtype=torch.float32)
    loss, _ = vip_loss(e0, eg, et, et1, num_negatives=2, l1_weight=1e-3, l2_weight=1e-3)
    loss.backward()
    assert torch.isfinite(loss)
    for t in (e0, eg, et, et1):
        assert torch.isfinite(t.grad).all()


def test_vip_identical_and_zero_embeddings() -> None:
    same = torch.ones(B, D, requires_grad=True)
    loss, m = vip_loss(same, same, same, same, num_negatives=1)
    loss.backward()
    assert loss.item() == pytest.approx(2.0)  # each log-mean-exp of exp(1); V_0 term is 0
    assert torch.isfinite(same.grad).all()
    zeros = [torch.zeros(B, D, requires_grad=True) for _ in range(4)]
    loss, _ = vip_loss(*zeros, l1_weight=1.0, l2_weight=1.0)
    loss.backward()
    assert all(torch.isfinite(z.grad).all() for z in zeros)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"gamma": 1.0}, ValueError, r"gamma must be a float in \(0, 1\)"),
        ({"num_negatives": -1}, ValueError, "num_negatives must be an int >= 0"),
    ],
)
def test_vip_argument_errors(kwargs, error, match) -> None:
    e0, eg, et, et1 = _embeddings(7)
    with pytest.raises(error, match=match):
        vip_loss(e0, eg, et, et1, **kwargs)


def test_vip_shape_errors() -> None:
    e0, eg, et, et1 = _embeddings(8)
    with pytest.raises(ValueError, match=r"et1 must have the shape of e0 \[5, 4\], got \[4, 4\]"):
        vip_loss(e0, eg, et, et1[:4])
    with pytest.raises(ValueError, match=r"e0 must be \[B, D\]"):
        vip_loss(e0[0], eg, et, et1)
    with pytest.raises(TypeError, match="floating"):
        vip_loss(e0.long(), eg.long(), et.long(), et1.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        vip_loss(e0.tolist(), eg, et, et1)


def test_log_mean_exp_stable() -> None:
    x = torch.tensor([1000.0, 1000.0])
    assert log_mean_exp(x).item() == pytest.approx(1000.0)
    assert log_mean_exp(torch.tensor([0.0, math.log(3.0)])).item() == pytest.approx(math.log(2.0))


# --------------------------------------------------------------------------- InfoNCE and LIV


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_info_nce_matches_naive(temperature: float) -> None:
    a, b = _embeddings(9, n=2)
    assert info_nce(a, b, temperature=temperature).item() == pytest.approx(_naive_clip(a, b, temperature), rel=1e-9)
    labels = torch.tensor([0, 1, 0, 2, 1])
    got = info_nce(a, b, temperature=temperature, labels=labels).item()
    assert got == pytest.approx(_naive_clip(a, b, temperature, labels), rel=1e-9)


def test_info_nce_errors_and_symmetry() -> None:
    a, b = _embeddings(10, n=2)
    assert info_nce(a, b, temperature=0.5).item() == pytest.approx(info_nce(b, a, temperature=0.5).item())
    with pytest.raises(ValueError, match="temperature must be > 0"):
        info_nce(a, b, temperature=0.0)
    with pytest.raises(ValueError, match="labels must be an int tensor"):
        info_nce(a, b, temperature=1.0, labels=torch.zeros(2))


def test_liv_matches_naive() -> None:
    e0, eg, et, et1, text, frame = _embeddings(11, n=6)
    gamma = 0.98
    loss, m = liv_loss(e0, eg, et, et1, text, e_text_frame=frame, vip_weight=0.5, text_weight=2.0, nce_weight=3.0, temperature=0.2)
    value = lambda a, g: _v_cos(a, g, gamma)  # noqa: E731
    image = _naive_vip(e0, eg, et, et1, gamma=gamma, rewards=[-1.0] * B, perms=[], value=value)
    lang = _naive_vip(e0, text, et, et1, gamma=gamma, rewards=[-1.0] * B, perms=[], value=value)
    nce = _naive_clip(frame, text, 0.2)
    assert m["vip_image"].item() == pytest.approx(image, rel=1e-9)
    assert m["vip_text"].item() == pytest.approx(lang, rel=1e-9)
    assert m["nce"].item() == pytest.approx(nce, rel=1e-9)
    assert loss.item() == pytest.approx(0.5 * image + 2.0 * lang + 3.0 * nce, rel=1e-9)
    assert 0.0 <= m["retrieval_top1"].item() <= 1.0
    assert m["V_0"].item() == pytest.approx(cos_value(e0, eg, gamma=gamma).mean().item())


def test_liv_defaults_and_weights() -> None:
    e0, eg, et, et1, text = _embeddings(12, n=5)
    loss, m = liv_loss(e0, eg, et, et1, text)  # e_text_frame defaults to eg, temperature 1 (official)
    assert m["nce"].item() == pytest.approx(_naive_clip(eg, text, 1.0), rel=1e-9)
    assert loss.item() == pytest.approx((m["vip_image"] + m["vip_text"] + m["nce"]).item(), rel=1e-9)
    only_nce, m2 = liv_loss(e0, eg, et, et1, text, vip_weight=0.0, text_weight=0.0)
    assert only_nce.item() == pytest.approx(m["nce"].item()) and "V_0" not in m2
    neg, m3 = liv_loss(e0, eg, et, et1, text, num_negatives=2, generator=torch.Generator().manual_seed(0))
    assert "negatives_loss" in m3 and "negatives_loss_text" in m3
    l2, _ = liv_loss(e0, eg, et, et1, text, metric="l2")
    assert torch.isfinite(l2)
    with pytest.raises(ValueError, match="metric must be 'cos' or 'l2'"):
        liv_loss(e0, eg, et, et1, text, metric="dot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="text must have the shape"):
        liv_loss(e0, eg, et, et1, text[:2])


def test_liv_retrieval_metric_perfect_pairs() -> None:
    gen = torch.Generator().manual_seed(3)
    text = torch.randn(B, 16, generator=gen)
    e = [torch.randn(B, 16, generator=gen) for _ in range(4)]
    _, m = liv_loss(*e, text, e_text_frame=text * 2.0)
    assert m["retrieval_top1"].item() == 1.0


@pytest.mark.parametrize("scale", [0.0, 1e-12, 1e6])
def test_liv_extreme_inputs_finite(scale: float) -> None:
    tensors = _embeddings(13, scale=scale, n=5, dtype=torch.float32)
    loss, _ = liv_loss(*tensors, num_negatives=1, temperature=0.01)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(t.grad).all() for t in tensors)
