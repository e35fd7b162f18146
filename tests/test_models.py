"""Tests for cnnconv.models: EdgeDetector and SmallCNN."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnconv import kernels
from cnnconv.learnable import LearnableConv2d
from cnnconv.models import DEFAULT_BANK, EdgeDetector, SmallCNN

kornia = pytest.importorskip("kornia")

D = torch.float64


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_edge_detector_sobel_init_matches_kornia():
    x = _rand(2, 1, 18, 21, seed=1, dtype=D)
    det = EdgeDetector(3, init="sobel", dtype=D)
    ref = kornia.filters.spatial_gradient(x, mode="sobel", normalized=True)[:, 0]
    torch.testing.assert_close(det(x), ref)
    torch.testing.assert_close(det.magnitude(x), (ref.pow(2).sum(1, keepdim=True) + 1e-12).sqrt())
    torch.testing.assert_close(det.direction(x), torch.atan2(ref[:, 1:], ref[:, :1]))
    assert det.thin(x).shape == (2, 1, 18, 21)


def test_edge_detector_centres_hand_pair_and_constraints_hold():
    x = _rand(1, 1, 16, 16, seed=2, dtype=D)
    det = EdgeDetector(5, init="sobel", constraint=("zero_sum", "antisymmetric"), dtype=D)
    small = EdgeDetector(3, init="sobel", dtype=D)
    torch.testing.assert_close(det(x)[..., 2:-2, 2:-2], small(x)[..., 2:-2, 2:-2])
    w = det.weight.detach()
    assert torch.equal(torch.rot90(w, 2, dims=(-2, -1)), -w)
    with pytest.raises(ValueError, match="larger than kernel_size=3"):
        EdgeDetector(3, init=torch.randn(2, 5, 5))


def test_edge_detector_learns_sobel_from_random_start():
    """A single linear layer regressing Sobel responses has Sobel as its unique optimum."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, 24, 24, generator=g)
    target = EdgeDetector(3, init="sobel")(x).detach()[..., 3:-3, 3:-3]
    torch.manual_seed(4)
    det = EdgeDetector(5, init="random", constraint="zero_sum")
    opt = torch.optim.LBFGS(det.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(det(x)[..., 3:-3, 3:-3], target)
        loss.backward()
        return loss

    opt.step(closure)
    w = det.weight.detach()[:, 0]
    sobel = torch.stack([kernels.sobel_x(normalized=True), kernels.sobel_y(normalized=True)])
    torch.testing.assert_close(w[:, 1:-1, 1:-1], sobel, rtol=0, atol=1e-4)
    assert w[:, 0].abs().max() < 1e-4 and w[:, -1].abs().max() < 1e-4  # outer ring goes to 0
    assert w[:, :, 0].abs().max() < 1e-4 and w[:, :, -1].abs().max() < 1e-4


def test_edge_detector_colour_input_uses_channel_mean():
    x = _rand(2, 3, 12, 12, seed=5, dtype=D)
    det = EdgeDetector(3, init="scharr", in_channels=3, dtype=D)
    ref = EdgeDetector(3, init="scharr", dtype=D)(x.mean(1, keepdim=True))
    torch.testing.assert_close(det(x), ref)


def test_edge_detector_dog_init():
    x = _rand(1, 1, 20, 20, seed=6, dtype=D)
    det = EdgeDetector(9, init="dog", sigma=1.0, dtype=D, padding_mode="zeros")
    k = kernels.gaussian_derivative(1.0, 1, "x", 9, dtype=D)
    torch.testing.assert_close(det(x)[:, :1], F.conv2d(x, k[None, None], padding=4))


def test_edge_detector_errors():
    with pytest.raises(ValueError, match="kernel_size must be a positive integer, got 0"):
        EdgeDetector(0)
    with pytest.raises(ValueError, match="unknown constraint"):
        EdgeDetector(3, constraint="odd")
    with pytest.raises(TypeError, match="constraint must be a name or a sequence"):
        EdgeDetector(3, constraint=5)
    with pytest.raises(ValueError, match="kernel must be one of"):
        EdgeDetector(3, init="canny")


@pytest.mark.parametrize("mode", ["random", "hand", "learnable_hand"])
def test_small_cnn_first_layer_modes(mode):
    torch.manual_seed(7)
    net = SmallCNN(4, in_channels=1, first_layer=mode, width=8, kernel_size=5)
    assert isinstance(net.first, LearnableConv2d)
    assert dict(net.named_modules())["first"] is net.first
    x = _rand(6, 1, 16, 16, seed=8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    w0 = net.first.weight.detach().clone()
    if mode != "random":
        # the bank, centred in 5x5, reproduces the registry kernels
        sob = F.pad(kernels.sobel_x(), (1, 1, 1, 1))
        torch.testing.assert_close(w0[DEFAULT_BANK.index("sobel_x"), 0], sob)
        torch.testing.assert_close(net.first(x)[:, 2:3], F.conv2d(x, sob[None, None], padding=2))
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    changed = not torch.equal(net.first.weight, w0)
    assert changed == (mode != "hand")
    assert net.first.frozen == (mode == "hand")
    assert net(x).shape == (6, 4)


def test_small_cnn_learns_orientation_task():
    """Vertical vs horizontal stripes: a hand-designed first layer makes it easy."""
    g = torch.Generator().manual_seed(9)

    def batch(n):
        labels = torch.randint(0, 2, (n,), generator=g)
        freq = 0.5 + torch.rand(n, generator=g)
        phase = torch.rand(n, generator=g) * 2 * math.pi
        t = torch.arange(16.0)
        waves = torch.sin(freq[:, None] * t[None, :] + phase[:, None])  # (n, 16)
        img = torch.where(labels[:, None, None] == 0, waves[:, None, :].expand(n, 16, 16),
                          waves[:, :, None].expand(n, 16, 16))
        return (img + 0.3 * torch.randn(n, 16, 16, generator=g))[:, None], labels

    torch.manual_seed(10)
    net = SmallCNN(2, first_layer="learnable_hand", width=8)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        x, y = batch(32)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    x, y = batch(200)
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


def test_small_cnn_errors_and_repr():
    with pytest.raises(ValueError, match="first_layer must be one of random, hand, learnable_hand, got 'fixed'"):
        SmallCNN(10, first_layer="fixed")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        SmallCNN(0)
    assert "first_layer='hand'" in repr(SmallCNN(3, first_layer="hand"))
    rgb = SmallCNN(3, in_channels=3, first_layer="learnable_hand")
    assert rgb.first.weight.shape == (8, 3, 3, 3)


@pytest.mark.parametrize("pdc", ["cd", "ad", "rd"])
def test_pdc_edge_detector_reparameterize_keeps_outputs(pdc):
    from cnnconv.pdc import PixelDifferenceConv2d

    torch.manual_seed(3)
    det = EdgeDetector(3, pdc=pdc, padding_mode="reflect", dtype=D)
    with torch.no_grad():
        det.conv.weight.copy_(torch.randn_like(det.conv.weight))
    assert isinstance(det.conv, PixelDifferenceConv2d)
    x = _rand(2, 1, 17, 19, seed=4, dtype=D)
    before = det(x)
    # Oracle: float64 F.conv2d of the reflect-padded input with the equivalent kernels.
    w = det.weight.detach()
    p = w.shape[-1] // 2
    ref = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w)
    torch.testing.assert_close(before, ref, atol=1e-12, rtol=0)
    assert det.reparameterize() is det
    assert type(det.conv) is torch.nn.Conv2d
    torch.testing.assert_close(det(x), before, atol=1e-12, rtol=0)


@pytest.mark.parametrize("pdc", ["cd", "ad"])
def test_pdc_edge_detector_sobel_init_matches_kornia(pdc):
    det = EdgeDetector(3, init="sobel", pdc=pdc, dtype=D)
    x = _rand(1, 1, 12, 12, seed=5, dtype=D)
    ref = kornia.filters.spatial_gradient(x, mode="sobel", normalized=True)[:, 0]
    torch.testing.assert_close(det(x), ref, atol=1e-10, rtol=0)


def test_pdc_edge_detector_errors():
    with pytest.raises(ValueError, match="pdc must be None or one of cd, ad, rd, got 'xd'"):
        EdgeDetector(3, pdc="xd")
    with pytest.raises(ValueError, match="reachable by pdc='rd'"):
        EdgeDetector(3, init="sobel", pdc="rd")
