"""Tests for cnnconv.parametric: learnable sigma / orientation and structured kernels."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnconv import kernels
from cnnconv.parametric import (
    LearnableGaussianBlur,
    LearnableGaussianDerivative,
    StructuredConv2d,
    gaussian_blur,
    gaussian_derivative_filter,
    gaussian_derivative_kernel1d,
    gaussian_kernel1d,
    hermite_gaussian1d,
)

ndimage = pytest.importorskip("scipy.ndimage")

D = torch.float64


def _rand(*shape, seed=0, dtype=D):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_kernels_match_registry_builders():
    for sigma, size in [(0.7, 5), (1.3, 9), (2.5, 21)]:
        s = torch.tensor(sigma, dtype=D)
        torch.testing.assert_close(gaussian_kernel1d(s, size), kernels.gaussian1d(sigma, size, dtype=D))
        torch.testing.assert_close(
            gaussian_derivative_kernel1d(s, size), kernels.gaussian_derivative1d(sigma, 1, size, dtype=D)
        )


def test_hermite_basis_matches_analytic_derivatives():
    sigma, size = 1.7, 15
    x = torch.arange(size, dtype=D) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    s = torch.tensor(sigma, dtype=D)
    # (-1)^n d^n/dx^n g, written out by hand
    torch.testing.assert_close(hermite_gaussian1d(s, size, 0), g)
    torch.testing.assert_close(hermite_gaussian1d(s, size, 1), x / sigma**2 * g)
    torch.testing.assert_close(hermite_gaussian1d(s, size, 2), (x**2 - sigma**2) / sigma**4 * g)
    torch.testing.assert_close(hermite_gaussian1d(s, size, 3), (x**3 - 3 * x * sigma**2) / sigma**6 * g)


def test_blur_matches_scipy_and_conv2d():
    x = _rand(2, 3, 30, 28, seed=1)
    blur = LearnableGaussianBlur(3, sigma=1.6, dtype=D)
    assert blur.kernel_size == 2 * round(4 * 1.6) + 1
    out = blur(x)
    ref = np.stack([[ndimage.gaussian_filter(c, 1.6, mode="mirror", truncate=4.0) for c in b] for b in x.numpy()])
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    k2 = kernels.gaussian(1.6, dtype=D)
    r = k2.shape[-1] // 2
    ref2 = F.conv2d(F.pad(x, (r,) * 4, mode="reflect"), k2.expand(3, 1, -1, -1), groups=3)
    torch.testing.assert_close(out, ref2)
    torch.testing.assert_close(gaussian_blur(x, 1.6, blur.kernel_size), out)


def test_per_channel_sigma():
    x = _rand(1, 2, 20, 20, seed=2)
    blur = LearnableGaussianBlur(2, sigma=torch.tensor([0.8, 2.0]), kernel_size=11, per_channel=True, dtype=D)
    for c, s in enumerate([0.8, 2.0]):
        ref = gaussian_blur(x[:, c : c + 1], s, 11)
        torch.testing.assert_close(blur(x)[:, c : c + 1], ref)


def test_gradcheck_blur_wrt_sigma():
    x = _rand(1, 2, 9, 8, seed=3)
    sigma = torch.tensor([1.2], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: gaussian_blur(x, s, 7), (sigma,))
    assert torch.autograd.gradgradcheck(lambda s: gaussian_blur(x, s, 7), (sigma,))
    blur = LearnableGaussianBlur(2, sigma=0.9, kernel_size=7, dtype=D)
    assert torch.autograd.gradcheck(lambda ls: gaussian_blur(x, ls.exp(), 7), (blur.log_sigma,))
    # gradient w.r.t. the input as well
    xi = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: blur(t), (xi,))


def test_gradcheck_derivative_wrt_sigma_and_orientation():
    x = _rand(1, 1, 9, 9, seed=4)
    sigma = torch.tensor([1.1], dtype=D, requires_grad=True)
    theta = torch.tensor([0.4], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, t: gaussian_derivative_filter(x, s, t, 7), (sigma, theta))


def test_gradcheck_structured_wrt_alpha_and_sigma():
    torch.manual_seed(5)
    conv = StructuredConv2d(2, 3, 5, sigma=1.0, order=2, learn_sigma=True, dtype=D)
    x = _rand(1, 2, 7, 7, seed=6)

    def f(alpha, log_sigma):
        w = torch.einsum("oib,bhw->oihw", alpha, _basis_via(conv, log_sigma))
        return F.conv2d(x, w, conv.bias, padding=2)

    alpha = conv.alpha.detach().clone().requires_grad_(True)
    ls = conv.log_sigma.detach().clone().requires_grad_(True)
    torch.testing.assert_close(conv(x), f(alpha, ls))
    assert torch.autograd.gradcheck(f, (alpha, ls))
    # the module's own backward reaches alpha and sigma
    conv(x).pow(2).sum().backward()
    assert conv.alpha.grad.abs().sum() > 0 and conv.log_sigma.grad.abs() > 0


def _basis_via(conv, log_sigma):
    s = log_sigma.exp()[0]
    h = [hermite_gaussian1d(s, conv.kernel_size, n) for n in range(conv.order + 1)]
    b = torch.stack([h[ny][:, None] * h[nx][None, :] for ny, nx in conv.orders])
    return b / b.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()


def test_learnable_sigma_recovers_2_5_from_1():
    """Acceptance: reproduce a sigma=2.5 blur (scipy oracle) from a sigma=1 start, within 1%."""
    rng = np.random.default_rng(7)
    imgs = rng.random((4, 1, 48, 48))
    target = np.stack([[ndimage.gaussian_filter(c, 2.5, mode="mirror", truncate=4.0) for c in b] for b in imgs])
    x = torch.from_numpy(imgs).float()
    y = torch.from_numpy(target).float()
    blur = LearnableGaussianBlur(1, sigma=1.0, kernel_size=21)
    opt = torch.optim.Adam(blur.parameters(), lr=0.05)
    for _ in range(150):
        loss = F.mse_loss(blur(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sigma = blur.sigma.item()
    assert abs(sigma - 2.5) / 2.5 < 0.01, sigma


def test_sigma_stays_positive_under_large_steps():
    blur = LearnableGaussianBlur(1, sigma=0.5, kernel_size=5)
    opt = torch.optim.SGD(blur.parameters(), lr=50.0)
    x = _rand(1, 1, 12, 12, seed=8, dtype=torch.float32)
    for _ in range(5):
        loss = -(blur(x) - x).pow(2).sum()  # pushes sigma hard in one direction
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert blur.sigma.item() > 0 and torch.isfinite(blur(x)).all()
    opt2 = torch.optim.SGD(blur.parameters(), lr=50.0)
    for _ in range(5):
        loss = (blur(x) - x).pow(2).sum()  # towards sigma -> 0 (identity)
        opt2.zero_grad()
        loss.backward()
        opt2.step()
        assert blur.sigma.item() > 0


def test_kernel_cache_in_eval_and_invalidation():
    blur = LearnableGaussianBlur(1, sigma=1.0, kernel_size=9)
    x = _rand(1, 1, 10, 10, seed=9, dtype=torch.float32)
    # training: rebuilt every call
    assert blur.kernel1d() is not blur.kernel1d()
    blur.eval()
    with torch.no_grad():
        k1 = blur.kernel1d()
        assert blur.kernel1d() is k1
        out1 = blur(x)
        blur.set_sigma(2.0)  # parameter changed: rebuilt
        k2 = blur.kernel1d()
        assert k2 is not k1
        torch.testing.assert_close(k2[0], kernels.gaussian1d(2.0, 9))
        assert not torch.allclose(blur(x), out1)
    # an optimizer step invalidates too
    blur.train()
    opt = torch.optim.SGD(blur.parameters(), lr=0.1)
    blur(x).pow(2).sum().backward()
    opt.step()
    blur.eval()
    with torch.no_grad():
        torch.testing.assert_close(blur.kernel1d()[0], kernels.gaussian1d(blur.sigma.item(), 9))
        k3 = blur.kernel1d()
        opt.zero_grad()
    blur.train()
    blur(x).pow(2).sum().backward()
    opt.step()
    blur.eval()
    with torch.no_grad():
        assert blur.kernel1d() is not k3
    # train() drops the cache
    with torch.no_grad():
        blur.kernel1d()
    blur.train()
    assert blur._cache is None
    # eval with gradients enabled still reaches sigma
    blur.eval()
    blur.zero_grad()
    blur(x).sum().backward()
    assert blur.log_sigma.grad is not None
    # dtype move rebuilds in the new dtype
    blur.double()
    with torch.no_grad():
        assert blur.kernel1d().dtype == D


def test_derivative_filter_matches_registry_and_ramp():
    x = _rand(2, 1, 25, 25, seed=10)
    dog = LearnableGaussianDerivative(sigma=1.5, orientation=0.0, dtype=D)
    k = kernels.gaussian_derivative(1.5, 1, "x", dtype=D)
    r = k.shape[-1] // 2
    xp = F.pad(x, (r,) * 4, mode="reflect")
    torch.testing.assert_close(dog(x), F.conv2d(xp, k[None, None]))
    grad = dog.gradient(x)
    ky = kernels.gaussian_derivative(1.5, 1, "y", dtype=D)
    torch.testing.assert_close(grad[:, 1:], F.conv2d(xp, ky[None, None]))
    # steering: the derivative along theta of a ramp a*x + b*y is a cos(theta) + b sin(theta)
    yy, xx = torch.meshgrid(torch.arange(40, dtype=D), torch.arange(40, dtype=D), indexing="ij")
    ramp = (0.7 * xx - 0.4 * yy)[None, None]
    for theta in [0.0, 0.5, 2.0, -1.2]:
        d = LearnableGaussianDerivative(sigma=1.2, orientation=theta, dtype=D)
        inner = d(ramp)[..., 10:-10, 10:-10]
        expect = 0.7 * math.cos(theta) - 0.4 * math.sin(theta)
        torch.testing.assert_close(inner, torch.full_like(inner, expect), rtol=0, atol=1e-10)


def test_learnable_orientation_and_sigma_recovered():
    x = _rand(4, 1, 32, 32, seed=11, dtype=torch.float32)
    target = gaussian_derivative_filter(x, 1.8, 1.0, 15)
    dog = LearnableGaussianDerivative(sigma=1.2, orientation=0.2, kernel_size=15)
    opt = torch.optim.Adam(dog.parameters(), lr=0.05)
    for _ in range(150):
        loss = F.mse_loss(dog(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(dog.orientation.item() - 1.0) < 5e-3
    assert abs(dog.sigma.item() - 1.8) < 1e-2


def test_structured_conv_basis_and_forward():
    torch.manual_seed(12)
    conv = StructuredConv2d(2, 3, 9, sigma=1.5, order=2, dtype=D)
    basis = conv.basis()
    assert basis.shape == (6, 9, 9)
    # (ny, nx) = (0, 1) is the x-derivative of Gaussian, (1, 0) the y-derivative (unit norm)
    kx = kernels.gaussian_derivative(1.5, 1, "x", 9, dtype=D)
    torch.testing.assert_close(basis[conv.orders.index((0, 1))], kx / kx.norm())
    ky = kernels.gaussian_derivative(1.5, 1, "y", 9, dtype=D)
    torch.testing.assert_close(basis[conv.orders.index((1, 0))], ky / ky.norm())
    g = kernels.gaussian(1.5, 9, dtype=D)
    torch.testing.assert_close(basis[0], g / g.norm())
    x = _rand(2, 2, 14, 13, seed=13)
    ref = F.conv2d(x, conv.weight, conv.bias, padding=4)
    torch.testing.assert_close(conv(x), ref)
    refl = StructuredConv2d(2, 3, 5, padding_mode="reflect", padding=1, stride=2, dtype=D)
    ref2 = F.conv2d(F.pad(x, (1,) * 4, mode="reflect"), refl.weight, refl.bias, stride=2)
    torch.testing.assert_close(refl(x), ref2)
    assert len(StructuredConv2d(1, 1, 5, order=3).orders) == 10


def test_structured_conv_learns_representable_filter():
    x = _rand(8, 1, 20, 20, seed=14, dtype=torch.float32)
    k = 0.5 * kernels.gaussian_derivative(1.2, 1, "x", 9) - 0.3 * kernels.gaussian_derivative(1.2, 2, "y", 9)
    y = F.conv2d(x, k[None, None], padding=4)
    torch.manual_seed(15)
    conv = StructuredConv2d(1, 1, 9, sigma=1.2, order=2, bias=False)
    opt = torch.optim.Adam(conv.parameters(), lr=0.05)
    first = F.mse_loss(conv(x), y).item()
    for _ in range(200):
        loss = F.mse_loss(conv(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert F.mse_loss(conv(x), y).item() < 1e-5 * first
    torch.testing.assert_close(conv.weight[0, 0].detach(), k, rtol=0, atol=1e-4)


def test_repr_and_errors():
    assert "sigma=1.5, kernel_size=13" in repr(LearnableGaussianBlur(1, 1.5))
    assert "orientation=[0.3]" in repr(LearnableGaussianDerivative(1, 1.0, 0.3))
    assert "order=2" in repr(StructuredConv2d(1, 2, 5))
    with pytest.raises(ValueError, match="sigma must be positive, got -1.0"):
        LearnableGaussianBlur(1, sigma=-1.0)
    with pytest.raises(TypeError, match="sigma must be a number"):
        LearnableGaussianBlur(1, sigma="big")
    with pytest.raises(ValueError, match="kernel_size must be odd and positive, got 4"):
        LearnableGaussianBlur(1, kernel_size=4)
    with pytest.raises(ValueError, match="border must be one of"):
        LearnableGaussianBlur(1, border="mirror")
    with pytest.raises(ValueError, match=r"input must have shape \(B, 2, H, W\), got \(1, 3, 8, 8\)"):
        LearnableGaussianBlur(2)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="channels must be a positive integer, got 0"):
        LearnableGaussianBlur(0)
    with pytest.raises(ValueError, match="order must be an integer from 0 to 4, got 5"):
        StructuredConv2d(1, 1, 5, order=5)
    with pytest.raises(ValueError, match="padding='same' needs stride=1"):
        StructuredConv2d(1, 1, 5, stride=2)
    with pytest.raises(ValueError, match="sigma must be positive"):
        LearnableGaussianBlur(1).set_sigma(0.0)
    with pytest.raises(TypeError, match="orientation must be a number"):
        LearnableGaussianDerivative(1, 1.0, "up")


def test_modules_follow_device_and_dtype_of_input():
    blur = LearnableGaussianBlur(1, 1.0, 5)
    x = _rand(1, 1, 8, 8, seed=16, dtype=D)
    assert blur(x).dtype == D
    assert blur(torch.empty(0, 1, 8, 8)).shape == (0, 1, 8, 8)


def test_derivative_multichannel_gradient_order_and_per_channel_parameters():
    x = _rand(2, 2, 16, 16, seed=17)
    dog = LearnableGaussianDerivative(
        2, sigma=torch.tensor([0.8, 1.6]), orientation=torch.tensor([0.0, 1.0]), kernel_size=11,
        per_channel=True, dtype=D,
    )
    grad = dog.gradient(x)
    assert grad.shape == (2, 4, 16, 16)
    for c, (s, t) in enumerate([(0.8, 0.0), (1.6, 1.0)]):
        xc = x[:, c : c + 1]
        torch.testing.assert_close(grad[:, 2 * c : 2 * c + 1], gaussian_derivative_filter(xc, s, 0.0, 11))
        torch.testing.assert_close(grad[:, 2 * c + 1 : 2 * c + 2], gaussian_derivative_filter(xc, s, math.pi / 2, 11))
        torch.testing.assert_close(dog(x)[:, c : c + 1], gaussian_derivative_filter(xc, s, t, 11))
    frozen = LearnableGaussianDerivative(1, 1.0, 0.0, learn_orientation=False)
    assert not frozen.orientation.requires_grad and frozen.log_sigma.requires_grad


# --------------------------------------------------------------------------- the former formulas
def _old_gauss(sigma, size):
    x = torch.arange(size, dtype=sigma.dtype) - (size - 1) / 2.0
    return torch.softmax(-(x * x) / (2 * (sigma * sigma).unsqueeze(-1)), dim=-1)


def _old_deriv(sigma, size):
    x = torch.arange(size, dtype=sigma.dtype) - (size - 1) / 2.0
    d = x * _old_gauss(sigma, size)
    return d / (d * x).sum(-1, keepdim=True)


def _old_conv(x, k, border):
    """Depthwise correlation of (B, C, H, W) with (C, kh, kw), border padded (the former path)."""
    from cnnconv.engines.padding import pad

    r = k.shape[-1] // 2
    return F.conv2d(pad(x, (r, r, r, r), border), k.unsqueeze(1), groups=x.shape[1])


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("border", ["reflect", "zeros", "circular"])
@pytest.mark.parametrize("training", [True, False])
def test_layers_match_the_former_formula_outputs_and_gradients(per_channel, border, training):
    g = torch.Generator().manual_seed(hash((per_channel, border, training)) % 1000)
    c, k = 3, 9
    sig0 = (0.8 + torch.rand(c if per_channel else 1, generator=g, dtype=D)).tolist()
    th0 = (3 * torch.rand(c if per_channel else 1, generator=g, dtype=D)).tolist()
    x = torch.rand(2, c, 13, 11, generator=g, dtype=D, requires_grad=True)
    w = torch.rand(2, c, 13, 11, generator=g, dtype=D)
    w2 = torch.rand(2, 2 * c, 13, 11, generator=g, dtype=D)

    blur = LearnableGaussianBlur(c, torch.tensor(sig0, dtype=D), k, border=border, per_channel=per_channel, dtype=D)
    dog = LearnableGaussianDerivative(c, torch.tensor(sig0, dtype=D), torch.tensor(th0, dtype=D), k, border=border,
                                      per_channel=per_channel, dtype=D)
    blur.train(training)
    dog.train(training)
    outs = [(blur(x) * w).sum(), (dog(x) * w).sum(), (dog.gradient(x) * w2).sum()]
    grads = torch.autograd.grad(sum(outs), [x, blur.log_sigma, dog.log_sigma, dog.orientation])

    xr = x.detach().clone().requires_grad_(True)
    ls_b = blur.log_sigma.detach().clone().requires_grad_(True)
    ls_d = dog.log_sigma.detach().clone().requires_grad_(True)
    th = dog.orientation.detach().clone().requires_grad_(True)
    gb = _old_gauss(ls_b.exp(), k).expand(c, -1)
    ref_blur = _old_conv(xr, gb[:, :, None] * gb[:, None, :], border)
    gd, dd = _old_gauss(ls_d.exp(), k).expand(c, -1), _old_deriv(ls_d.exp(), k).expand(c, -1)
    gx, gy = gd[:, :, None] * dd[:, None, :], dd[:, :, None] * gd[:, None, :]
    t = th.expand(c)[:, None, None]
    ref_dog = _old_conv(xr, torch.cos(t) * gx + torch.sin(t) * gy, border)
    ref_grad = torch.stack([_old_conv(xr, gx, border), _old_conv(xr, gy, border)], 2).flatten(1, 2)
    refs = [(ref_blur * w).sum(), (ref_dog * w).sum(), (ref_grad * w2).sum()]
    ref_grads = torch.autograd.grad(sum(refs), [xr, ls_b, ls_d, th])
    for a, b in zip(outs, refs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the cached (eval) or rebuilt (train) kernels give the same outputs
        torch.testing.assert_close(blur(x), ref_blur, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(dog.gradient(x), ref_grad, rtol=1e-12, atol=1e-12)


def test_functional_filters_match_the_former_formula():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 2, 10, 12, generator=g, dtype=D)
    s = torch.tensor([1.1, 1.7], dtype=D)
    gk = _old_gauss(s, 7)
    torch.testing.assert_close(gaussian_blur(x, s, 7), _old_conv(x, gk[:, :, None] * gk[:, None, :], "reflect"))
    dk = _old_deriv(torch.tensor(1.3, dtype=D), 7)
    gk = _old_gauss(torch.tensor(1.3, dtype=D), 7)
    k = (math.cos(0.4) * gk[:, None] * dk[None, :] + math.sin(0.4) * dk[:, None] * gk[None, :]).expand(2, -1, -1)
    torch.testing.assert_close(gaussian_derivative_filter(x, 1.3, 0.4, 7, "replicate"), _old_conv(x, k, "replicate"))


def test_learnable_filters_run_through_the_functional_dispatch(monkeypatch):
    from cnnconv import functional
    from cnnconv.parametric import gaussian as module

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("factors") is not None)
        return functional.filter2d(*args, **kwargs)

    monkeypatch.setattr(module, "filter2d", spy)
    x = _rand(1, 2, 12, 12)
    LearnableGaussianBlur(2, 1.0, 7, dtype=D)(x)
    LearnableGaussianDerivative(2, 1.0, 0.3, 7, dtype=D)(x)
    LearnableGaussianDerivative(2, 1.0, 0.3, 7, dtype=D).gradient(x)
    assert calls == [True, False, True, True]  # the blur and the x/y pair as separable factors
