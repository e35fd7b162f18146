"""Tests for cnnconv.constraints: constraints hold after training, and training converges."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnconv import kernels
from cnnconv.constraints import RankOne, ZeroSum, constrain, constraint_names, remove_constraints
from cnnconv.learnable import LearnableConv2d

EPS32 = torch.finfo(torch.float32).eps


# Independent checks (rot90, numpy SVD), not the parametrizations' own formulas.
def _zero_sum_ok(w):
    s = w.double().sum(dim=(-2, -1)).abs()
    return bool((s <= 16 * EPS32 * w.double().abs().sum(dim=(-2, -1))).all())


def _antisymmetric_ok(w):
    return torch.equal(torch.rot90(w, 2, dims=(-2, -1)), -w)


def _symmetric_ok(w):
    return torch.equal(torch.rot90(w, 2, dims=(-2, -1)), w)


def _unit_norm_ok(w):
    n = w.double().pow(2).sum(dim=(1, 2, 3)).sqrt()
    return bool(((n - 1).abs() <= 8 * EPS32).all())


def _rank_one_ok(w):
    s = np.linalg.svd(w.detach().double().numpy(), compute_uv=False)
    return bool((s[..., 1] <= 8 * EPS32 * s[..., 0]).all())


CHECKS = {
    "zero_sum": _zero_sum_ok,
    "antisymmetric": _antisymmetric_ok,
    "symmetric": _symmetric_ok,
    "unit_norm": _unit_norm_ok,
    "rank_one": _rank_one_ok,
}

COMBINATIONS = [
    ("zero_sum",),
    ("antisymmetric",),
    ("symmetric",),
    ("unit_norm",),
    ("rank_one",),
    ("zero_sum", "antisymmetric"),
    ("zero_sum", "unit_norm"),
    ("unit_norm", "zero_sum"),
    ("symmetric", "zero_sum"),
    ("antisymmetric", "unit_norm"),
    ("symmetric", "zero_sum", "unit_norm"),
    ("rank_one", "unit_norm"),
    ("rank_one", "zero_sum"),
    ("rank_one", "zero_sum", "unit_norm"),
]


@pytest.mark.parametrize("names", COMBINATIONS)
def test_constraints_hold_after_100_optimizer_steps(names):
    torch.manual_seed(0)
    layer = constrain(LearnableConv2d(3, 4, 5, padding=2, method="direct"), *names)
    for n in names:
        assert CHECKS[n](layer.weight.detach()), f"{n} fails at start"
    start = layer.weight.detach().clone()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        x = torch.randn(4, 3, 12, 12, generator=g)
        target = torch.randn(4, 4, 12, 12, generator=g)
        loss = F.mse_loss(layer(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = layer.weight.detach()
    assert (w - start).abs().max() > 1e-2, "training did not move the weight"
    for n in names:
        assert CHECKS[n](w), f"{n} violated after 100 steps with {names}"


def _targets():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64)
    rot = torch.rot90(r, 2, dims=(-2, -1))
    a = torch.randn(2, 1, 5, 1, generator=g, dtype=torch.float64)
    b = torch.randn(2, 1, 1, 5, generator=g, dtype=torch.float64)
    return {
        ("zero_sum",): r - r.mean(dim=(-2, -1), keepdim=True),
        ("antisymmetric",): r - rot,
        ("symmetric",): r + rot,
        ("unit_norm",): r / r.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt(),
        ("rank_one",): a * b,
        ("rank_one", "zero_sum"): (a - a.mean(dim=-2, keepdim=True)) * b,
        ("zero_sum", "unit_norm"): (lambda z: z / z.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt())(
            r - r.mean(dim=(-2, -1), keepdim=True)
        ),
    }


@pytest.mark.parametrize("names", list(_targets()))
def test_training_through_constrained_layer_converges(names):
    """Regress a target filter that satisfies the constraint, from a random constrained start."""
    target_w = _targets()[names]
    torch.manual_seed(3)
    if names == ("rank_one", "zero_sum"):
        # The zero-mean factor is chosen at registration: start from a kernel with the target's
        # structure (derivative along the columns, like Sobel y), perturbed.
        layer = LearnableConv2d.from_kernels(
            ["sobel_y"] * 2, kernel_size=5, noise=0.3, dtype=torch.float64, method="direct",
            generator=torch.Generator().manual_seed(3),
        )
        constrain(layer, *names)
    else:
        layer = LearnableConv2d(1, 2, 5, padding=2, bias=False, dtype=torch.float64, method="direct")
        constrain(layer, *names)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 1, 16, 16, generator=g, dtype=torch.float64)
    y = F.conv2d(x, target_w, padding=2)
    opt = torch.optim.Adam(layer.parameters(), lr=0.03)
    first = F.mse_loss(layer(x), y).item()
    for _ in range(400):
        loss = F.mse_loss(layer(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = F.mse_loss(layer(x), y).item()
    assert final < 1e-4 * first, (first, final)
    torch.testing.assert_close(layer.weight.detach(), target_w, rtol=0, atol=1e-2)


def test_constraints_keep_hand_designed_kernels():
    sobel = LearnableConv2d.from_kernels(["sobel_x", "sobel_y"])
    w0 = sobel.weight.detach().clone()
    constrain(sobel, "antisymmetric", "zero_sum")
    assert torch.equal(sobel.weight, w0)
    sep = constrain(LearnableConv2d.from_kernels(["sobel_x", "sobel_y"]), "rank_one", "zero_sum")
    torch.testing.assert_close(sep.weight, w0, rtol=0, atol=1e-6)
    lap = constrain(LearnableConv2d.from_kernels(["laplacian8"]), "symmetric", "zero_sum")
    assert torch.equal(lap.weight, kernels.laplacian(8)[None, None])


def test_rank_one_takes_best_rank_one_approximation():
    torch.manual_seed(5)
    layer = LearnableConv2d(2, 3, (5, 4), dtype=torch.float64)
    w = layer.weight.detach().clone().numpy()
    constrain(layer, "rank_one")
    U, S, Vt = np.linalg.svd(w)
    best = S[..., :1, None] * U[..., :, :1] @ Vt[..., :1, :]
    np.testing.assert_allclose(layer.weight.detach().numpy(), best, rtol=1e-10, atol=1e-12)
    u = layer.parametrizations.weight.original0
    v = layer.parametrizations.weight.original1
    assert u.shape == (3, 2, 5) and v.shape == (3, 2, 4)


def test_constraint_projection_on_registration_matches_independent_formula():
    torch.manual_seed(6)
    conv = nn.Conv2d(2, 3, 3)
    w = conv.weight.detach().clone()
    constrain(conv, "unit_norm", "zero_sum")
    z = w - w.mean(dim=(-2, -1), keepdim=True)
    ref = z / z.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(conv.weight, ref)
    assert constraint_names(conv) == ["zero_sum", "unit_norm"]
    odd = constrain(nn.Conv2d(1, 2, 3), "antisymmetric", "zero_sum")
    assert constraint_names(odd) == ["zero_sum", "antisymmetric"]


def test_remove_constraints_gives_plain_conv2d_state_dict():
    layer = constrain(LearnableConv2d(2, 3, 3, padding=1, method="direct"), "rank_one", "zero_sum")
    assert "parametrizations.weight.original0" in layer.state_dict()
    x = torch.rand(1, 2, 9, 9, generator=torch.Generator().manual_seed(7))
    out = layer(x).detach()
    remove_constraints(layer)
    assert set(layer.state_dict()) == {"weight", "bias"}
    plain = nn.Conv2d(2, 3, 3, padding=1)
    plain.load_state_dict(layer.state_dict())
    torch.testing.assert_close(plain(x), out)
    assert constraint_names(layer) == []


def test_constrained_state_dict_round_trip_between_constrained_layers():
    a = constrain(LearnableConv2d(1, 2, 3, method="direct"), "rank_one", "zero_sum")
    torch.manual_seed(8)
    b = constrain(LearnableConv2d(1, 2, 3, method="direct"), "rank_one", "zero_sum")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.weight, b.weight)


def test_freeze_covers_constraint_originals():
    layer = constrain(LearnableConv2d(1, 2, 3), "zero_sum").freeze()
    assert not layer.parametrizations.weight.original.requires_grad


def test_parametrizations_work_with_plain_register():
    from torch.nn.utils import parametrize

    conv = nn.Conv2d(1, 2, 3)
    parametrize.register_parametrization(conv, "weight", ZeroSum())
    assert _zero_sum_ok(conv.weight.detach())
    conv2 = nn.Conv2d(1, 2, 3)
    parametrize.register_parametrization(conv2, "weight", RankOne())
    assert _rank_one_ok(conv2.weight.detach())


def test_constrain_errors():
    with pytest.raises(ValueError, match="symmetric and antisymmetric together"):
        constrain(nn.Conv2d(1, 1, 3), "symmetric", "antisymmetric")
    with pytest.raises(ValueError, match="unknown constraint, got 'odd'"):
        constrain(nn.Conv2d(1, 1, 3), "odd")
    with pytest.raises(ValueError, match="rank_one cannot be combined"):
        constrain(nn.Conv2d(1, 1, 3), "rank_one", "symmetric")
    with pytest.raises(ValueError, match="needs at least one constraint"):
        constrain(nn.Conv2d(1, 1, 3))
    with pytest.raises(TypeError, match="constraint names must be strings"):
        constrain(nn.Conv2d(1, 1, 3), 3)
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        constrain("conv", "zero_sum")
    c = constrain(nn.Conv2d(1, 1, 3), "zero_sum")
    with pytest.raises(ValueError, match="already has constraints"):
        constrain(c, "unit_norm")
    with pytest.raises(ValueError, match="must be a 4-D conv weight, got shape"):
        constrain(nn.Linear(3, 3), "zero_sum")
    with pytest.raises(ValueError, match="has no constraints to remove"):
        remove_constraints(nn.Conv2d(1, 1, 3))


def test_constrained_layer_with_fft_engine():
    x = torch.rand(2, 2, 20, 20, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.manual_seed(10)
    fft = constrain(LearnableConv2d(2, 3, 9, padding=4, dtype=torch.float64, method="fft"), "zero_sum", "unit_norm")
    out = fft(x)
    torch.testing.assert_close(out, F.conv2d(x, fft.weight, fft.bias, padding=4), rtol=1e-9, atol=1e-11)
    out.pow(2).sum().backward()
    assert fft.parametrizations.weight.original.grad is not None
