"""Tests for cnnconv.pdc: pixel-difference convolutions against a literal pixel-difference oracle."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnconv.pdc import PDC_TYPES, PixelDifferenceConv2d, pdc_equivalent_weight, reparameterize_pdc

D = torch.float64

# 3x3 ring positions (row, col) in clockwise order on screen, starting top-left.
RING = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
# the eight directions (dy, dx) in raster order
DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _rand(*shape, seed=0, dtype=D):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randn(*shape, seed=0, dtype=D):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _oracle(x, w, pdc, theta, stride, padding, dilation, groups, padding_mode="zeros"):
    """Pixel differences computed literally on unfolded windows, then weighted by ``w``."""
    b, c = x.shape[:2]
    o, _, kh, kw = w.shape
    win = (5, 5) if pdc == "rd" else (kh, kw)  # rd pairs pixels two and one steps out
    pad = padding + (dilation if pdc == "rd" else 0)
    xp = F.pad(x, (pad,) * 4, mode="constant" if padding_mode == "zeros" else padding_mode)
    hout = (xp.shape[-2] - dilation * (win[0] - 1) - 1) // stride + 1
    cols = F.unfold(xp, win, dilation=dilation, stride=stride)
    cols = cols.view(b, c, *win, cols.shape[-1])
    cy, cx = win[0] // 2, win[1] // 2
    centre = cols[:, :, cy, cx]
    diffs = torch.empty(b, c, kh * kw, cols.shape[-1], dtype=x.dtype)
    if pdc == "cv":
        diffs = cols.reshape(b, c, kh * kw, -1)
    elif pdc == "cd":
        for i in range(kh * kw):
            diffs[:, :, i] = cols[:, :, i // kw, i % kw] - theta * centre
    elif pdc == "ad":
        for j, (r, q) in enumerate(RING):
            nr, nq = RING[(j + 1) % 8]
            diffs[:, :, 3 * r + q] = cols[:, :, r, q] - theta * cols[:, :, nr, nq]
        diffs[:, :, 4] = centre - theta * centre
    else:
        for j, (dy, dx) in enumerate(DIRECTIONS):
            outer = cols[:, :, cy + 2 * dy, cx + 2 * dx]
            inner = cols[:, :, cy + dy, cx + dx]
            diffs[:, :, j + 1] = outer - theta * inner
        diffs[:, :, 0] = (1 - theta) * centre
    g = groups
    diffs = diffs.reshape(b, g, c // g, kh * kw, -1)
    y = torch.einsum("bgcil,goci->bgol", diffs, w.reshape(g, o // g, c // g, kh * kw))
    return y.reshape(b, o, hout, -1)


CASES = [
    # (stride, padding, dilation, groups, theta, padding_mode)
    (1, 1, 1, 1, 1.0, "zeros"),
    (2, 1, 1, 2, 1.0, "zeros"),
    (1, 2, 2, 1, 1.0, "zeros"),
    (2, 0, 2, 2, 0.6, "zeros"),
    (1, 1, 1, 4, 0.3, "reflect"),
    (3, 2, 1, 1, -0.5, "replicate"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("pdc", PDC_TYPES)
def test_forward_matches_literal_pixel_differences(pdc, case):
    stride, padding, dilation, groups, theta, mode = case
    layer = PixelDifferenceConv2d(
        4, 8, 3, stride, padding, dilation, groups, bias=False, pdc=pdc, theta=theta, padding_mode=mode, dtype=D
    )
    layer.weight.data = _randn(*layer.weight.shape, seed=1)
    x = _rand(2, 4, 13, 12, seed=2)
    y = layer(x)
    ref = _oracle(x, layer.weight.detach(), pdc, theta, stride, padding, dilation, groups, mode)
    assert y.shape == ref.shape
    # rd keeps the output grid of the 3x3 layer
    assert y.shape == F.conv2d(x, torch.zeros(8, 4 // groups, 3, 3, dtype=D), None, stride, padding, dilation, groups).shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_cd_with_larger_odd_kernel_and_bias():
    layer = PixelDifferenceConv2d(3, 2, 5, padding=2, bias=True, pdc="cd", theta=0.7, dtype=D)
    layer.weight.data = _randn(*layer.weight.shape, seed=3)
    layer.bias.data = _randn(2, seed=4)
    x = _rand(1, 3, 11, 10, seed=5)
    ref = _oracle(x, layer.weight.detach(), "cd", 0.7, 1, 2, 1, 1) + layer.bias.detach()[:, None, None]
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)


def test_cd_is_conv_minus_theta_centre_times_weight_sum():
    """PiDiNet's form: y = conv(x, W) - theta * x_c * sum(W) (padding = dilation)."""
    for dilation in (1, 2):
        layer = PixelDifferenceConv2d(3, 5, padding=dilation, dilation=dilation, stride=2, pdc="cd", theta=0.8, dtype=D)
        layer.weight.data = _randn(*layer.weight.shape, seed=6)
        w = layer.weight.detach()
        x = _rand(2, 3, 15, 14, seed=7)
        ref = F.conv2d(x, w, stride=2, padding=dilation, dilation=dilation)
        ref = ref - 0.8 * F.conv2d(x, w.sum(dim=(2, 3), keepdim=True), stride=2)
        torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)


def test_equivalent_kernels_known_values():
    w = torch.arange(1.0, 10.0, dtype=D).reshape(1, 1, 3, 3)  # raster values 1..9
    cd = pdc_equivalent_weight(w, "cd")[0, 0]
    torch.testing.assert_close(cd, w[0, 0] - 45.0 * F.pad(torch.ones(1, 1, dtype=D), (1, 1, 1, 1)), rtol=0, atol=0)
    # ad: each ring weight minus the weight one step counter-clockwise (which pairs it clockwise)
    ad = pdc_equivalent_weight(w, "ad")[0, 0]
    expected_ad = torch.tensor([[1 - 4, 2 - 1, 3 - 2], [4 - 7, 0, 6 - 3], [7 - 8, 8 - 9, 9 - 6]], dtype=D)
    torch.testing.assert_close(ad, expected_ad, rtol=0, atol=0)
    rd = pdc_equivalent_weight(w, "rd")[0, 0]
    expected_rd = torch.tensor(
        [
            [2, 0, 3, 0, 4],
            [0, -2, -3, -4, 0],
            [5, -5, 0, -6, 6],
            [0, -7, -8, -9, 0],
            [7, 0, 8, 0, 9],
        ],
        dtype=D,
    )
    torch.testing.assert_close(rd, expected_rd, rtol=0, atol=0)
    torch.testing.assert_close(pdc_equivalent_weight(w, "cv"), w, rtol=0, atol=0)
    # theta = 0: ad and cd are vanilla; rd puts w_0 at the centre of the 5x5
    torch.testing.assert_close(pdc_equivalent_weight(w, "ad", 0.0), w, rtol=0, atol=0)
    torch.testing.assert_close(pdc_equivalent_weight(w, "cd", 0), w, rtol=0, atol=0)
    assert pdc_equivalent_weight(w, "rd", 0.0)[0, 0, 2, 2].item() == 1.0


@pytest.mark.parametrize("pdc", ["cd", "ad", "rd"])
def test_pure_differences_ignore_constant_images(pdc):
    layer = PixelDifferenceConv2d(2, 3, pdc=pdc, dtype=D)
    layer.weight.data = _randn(*layer.weight.shape, seed=8)
    x = torch.full((1, 2, 12, 12), 3.7, dtype=D)
    y = layer(x)
    r = 2 if pdc == "rd" else 1  # away from the zero border
    assert y[..., r:-r, r:-r].abs().max().item() < 1e-12
    assert y.abs().max().item() > 1e-3  # the border does see the zero padding


def test_cd_from_a_hand_designed_weight():
    layer = PixelDifferenceConv2d(1, 1, pdc="cd", dtype=D)
    with torch.no_grad():
        layer.weight.copy_(torch.ones(1, 1, 3, 3))
    x = _rand(1, 1, 9, 9, seed=9)
    laplacian8 = torch.ones(1, 1, 3, 3, dtype=D)
    laplacian8[0, 0, 1, 1] = -8.0
    torch.testing.assert_close(layer(x), F.conv2d(x, laplacian8, padding=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pdc", PDC_TYPES)
def test_gradcheck(pdc):
    layer = PixelDifferenceConv2d(2, 4, stride=2, dilation=2, padding=2, groups=2, bias=True, pdc=pdc, theta=0.7, dtype=D)
    x = _rand(1, 2, 6, 5, seed=10, dtype=D).requires_grad_()
    w = _randn(*layer.weight.shape, seed=11).requires_grad_()
    b = _randn(4, seed=12).requires_grad_()

    def f(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b), fast_mode=True)


@pytest.mark.parametrize("pdc", PDC_TYPES)
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)]
)
def test_reparameterize_gives_identical_outputs(pdc, dtype, tol):
    for seed, (stride, padding, dilation, groups, mode) in enumerate(
        [(1, 1, 1, 1, "zeros"), (2, 2, 2, 2, "zeros"), (1, "same", 2, 3, "reflect"), (3, "valid", 1, 1, "circular")]
    ):
        layer = PixelDifferenceConv2d(
            6, 6, 3, stride, padding, dilation, groups, bias=True, pdc=pdc, theta=0.9, padding_mode=mode, dtype=dtype
        )
        layer.weight.data = _randn(*layer.weight.shape, seed=seed, dtype=dtype)
        conv = layer.reparameterize()
        assert type(conv) is nn.Conv2d
        assert conv.kernel_size == ((5, 5) if pdc == "rd" else (3, 3))
        x = _randn(2, 6, 17, 16, seed=20 + seed, dtype=dtype)
        y, yc = layer(x), conv(x)
        assert y.shape == yc.shape
        assert (y - yc).abs().max().item() <= tol
        # copies: training the new layer does not touch the PDC layer
        with torch.no_grad():
            conv.bias.add_(1.0)
        assert not torch.equal(conv.bias, layer.bias)


def test_reparameterize_pdc_replaces_layers_in_place():
    net = nn.Sequential(
        PixelDifferenceConv2d(3, 4, pdc="cd", dtype=D),
        nn.ReLU(),
        nn.Sequential(PixelDifferenceConv2d(4, 4, pdc="rd", dilation=2, padding=2, dtype=D), nn.Conv2d(4, 2, 1, dtype=D)),
        PixelDifferenceConv2d(2, 2, pdc="ad", groups=2, dtype=D),
    ).eval()
    x = _rand(1, 3, 16, 16, seed=13)
    before = net(x)
    out = reparameterize_pdc(net)
    assert out is net
    assert not any(isinstance(m, PixelDifferenceConv2d) for m in net.modules())
    assert not net[0].training
    torch.testing.assert_close(net(x), before, rtol=1e-12, atol=1e-12)
    single = PixelDifferenceConv2d(1, 1, pdc="ad", dtype=D)
    assert type(reparameterize_pdc(single)) is nn.Conv2d
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        reparameterize_pdc("net")


def test_state_dict_round_trip_and_plain_conv_keys():
    layer = PixelDifferenceConv2d(3, 4, bias=True, pdc="rd")
    state = layer.state_dict()
    assert set(state) == {"weight", "bias"}
    assert state["weight"].shape == (4, 3, 3, 3)
    other = PixelDifferenceConv2d(3, 4, bias=True, pdc="rd")
    other.load_state_dict(state)
    x = _rand(1, 3, 10, 10, seed=14, dtype=torch.float32)
    assert not torch.equal(PixelDifferenceConv2d(3, 4, bias=True, pdc="rd")(x), layer(x))
    torch.testing.assert_close(other(x), layer(x), rtol=0, atol=0)
    nn.Conv2d(3, 4, 3, bias=True).load_state_dict(state)  # same keys and shapes as the 3x3 conv


def test_same_and_valid_padding_for_rd():
    x = _rand(1, 2, 12, 11, seed=15)
    for dilation in (1, 2):
        same = PixelDifferenceConv2d(2, 3, padding="same", dilation=dilation, pdc="rd", dtype=D)
        explicit = PixelDifferenceConv2d(2, 3, padding=dilation, dilation=dilation, pdc="rd", dtype=D)
        explicit.load_state_dict(same.state_dict())
        assert same(x).shape[-2:] == x.shape[-2:]
        torch.testing.assert_close(same(x), explicit(x), rtol=0, atol=0)
        valid = PixelDifferenceConv2d(2, 3, padding="valid", dilation=dilation, pdc="rd", dtype=D)
        valid.load_state_dict(same.state_dict())
        torch.testing.assert_close(valid(x), explicit(x)[..., dilation:-dilation, dilation:-dilation], rtol=0, atol=0)


def test_extra_repr_and_dtype_device():
    layer = PixelDifferenceConv2d(2, 3, pdc="ad", theta=0.5)
    text = repr(layer)
    assert "pdc='ad'" in text and "theta=0.5" in text and "kernel_size=(3, 3)" in text
    w = pdc_equivalent_weight(torch.randn(2, 1, 3, 3, dtype=D), "rd")
    assert w.dtype == D and w.device.type == "cpu" and w.shape == (2, 1, 5, 5)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"pdc must be one of .*got 'xd'"):
        PixelDifferenceConv2d(1, 1, pdc="xd")
    for pdc in ("ad", "rd"):
        with pytest.raises(ValueError, match=rf"kernel_size must be 3 for pdc='{pdc}'.*\(5, 5\)"):
            PixelDifferenceConv2d(1, 1, 5, padding=2, pdc=pdc)
    with pytest.raises(ValueError, match=r"kernel_size must be odd for pdc='cd'.*\(4, 4\)"):
        PixelDifferenceConv2d(1, 1, 4, pdc="cd")
    for theta in (math.nan, math.inf):
        with pytest.raises(ValueError, match="theta must be finite"):
            PixelDifferenceConv2d(1, 1, theta=theta)
    with pytest.raises(TypeError, match="theta must be a number, got str"):
        PixelDifferenceConv2d(1, 1, theta="1")
    with pytest.raises(TypeError, match="theta must be a number, got bool"):
        pdc_equivalent_weight(torch.ones(1, 1, 3, 3), "cd", True)
    with pytest.raises(ValueError, match=r"weight must have shape \(out, in, kh, kw\), got torch.Size\(\[3, 3\]\)"):
        pdc_equivalent_weight(torch.ones(3, 3), "cd")
    with pytest.raises(ValueError, match=r"kernel_size must be 3 for pdc='ad'.*got \(5, 5\)"):
        pdc_equivalent_weight(torch.ones(1, 1, 5, 5), "ad")


# --------------------------------------------------------------------------- learnable like LearnableConv2d


def test_from_kernels_sets_the_equivalent_kernel_exactly():
    from cnnconv import kernels as K

    for pdc, names in (("cd", ["sobel_x", "sobel_y", "laplacian4"]), ("ad", ["sobel_x", "sobel_y"])):
        layer = PixelDifferenceConv2d.from_kernels(names, pdc=pdc, dtype=D, method="direct")
        eq = layer.equivalent_weight()[:, 0]
        for i, name in enumerate(names):
            assert torch.allclose(eq[i], K.get_kernel(name, dtype=D), atol=1e-12)
        assert layer.kernel_names == names and max(layer.init_residuals) < 1e-12
        x = _randn(2, 1, 12, 13, seed=5)
        # Oracle: the literal pixel differences of the solved raw weight equal the target convolution.
        ref = F.conv2d(x, K.sobel_x(dtype=D)[None, None], padding=1)
        assert torch.allclose(_oracle(x, layer.weight.detach(), pdc, 1.0, 1, 1, 1, 1)[:, :1], ref, atol=1e-12)
        assert torch.allclose(layer(x)[:, :1], ref, atol=1e-12)
    # ad with theta 1 leaves the centre at zero: the Laplacian is out of reach.
    with pytest.raises(ValueError, match=r"reachable by pdc='ad' .*kernel 'laplacian4' with relative residual"):
        PixelDifferenceConv2d.from_kernels(["laplacian4"], pdc="ad")
    # cd reaches only zero-sum kernels; with exact=False the least-squares weight is kept.
    with pytest.raises(ValueError, match=r"kernel 'gaussian' with relative residual"):
        PixelDifferenceConv2d.from_kernels([("gaussian", {"sigma": 1.0, "size": 3})], pdc="cd")
    # rd (theta 1): inner ring = -outer ring. Sobel (inner ring only) is reached halfway: the best
    # equivalent puts s/2 on the inner and -s/2 on the outer ring, relative residual 1/sqrt(2).
    layer = PixelDifferenceConv2d.from_kernels("sobel_x", pdc="rd", exact=False, dtype=D)
    assert layer.init_residuals[0] == pytest.approx(1 / math.sqrt(2), rel=1e-12)
    eq = layer.equivalent_weight()[0, 0]
    assert torch.allclose(eq[1:4, 1:4], K.sobel_x(dtype=D) / 2, atol=1e-12)
    assert torch.allclose(eq[::2, ::2], -K.sobel_x(dtype=D) / 2, atol=1e-12)
    with pytest.raises(ValueError, match=r"reachable by pdc='rd'"):
        PixelDifferenceConv2d.from_kernels("sobel_x", pdc="rd")


def test_from_kernels_conventions_follow_learnable():
    # channel_mode="mean": a grey image repeated over 3 channels gives the 1-channel response.
    layer3 = PixelDifferenceConv2d.from_kernels(["sobel_x"], in_channels=3, pdc="cd", dtype=D)
    layer1 = PixelDifferenceConv2d.from_kernels(["sobel_x"], in_channels=1, pdc="cd", dtype=D)
    x = _randn(1, 1, 9, 9, seed=2)
    assert torch.allclose(layer3(x.expand(-1, 3, -1, -1)), layer1(x), atol=1e-12)
    # A 5x5 cd layer from a 3x3 kernel (centred), and noise on the raw weight, reproducible.
    big = PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc="cd", kernel_size=5, dtype=D)
    assert big.weight.shape == (1, 1, 5, 5) and torch.allclose(big.equivalent_weight()[0, 0, 1:4, 1:4], layer1.equivalent_weight()[0, 0])
    a = PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc="ad", noise=0.1, generator=torch.Generator().manual_seed(1))
    b = PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc="ad", noise=0.1, generator=torch.Generator().manual_seed(1))
    c = PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc="ad")
    assert torch.equal(a.weight, b.weight) and not torch.allclose(a.weight, c.weight)
    with pytest.raises(ValueError, match=r"kernel_size must be 3 for pdc='rd'"):
        PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc="rd", kernel_size=5, exact=False)
    with pytest.raises(ValueError, match=r"noise must be a finite non-negative number, got -1"):
        PixelDifferenceConv2d.from_kernels(["sobel_x"], noise=-1)
    with pytest.raises(TypeError, match=r"exact must be a bool, got 1"):
        PixelDifferenceConv2d.from_kernels(["sobel_x"], exact=1)


@pytest.mark.parametrize("pdc", ["cd", "ad", "rd", "cv"])
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("padding, dilation, stride, padding_mode", [(1, 1, 1, "zeros"), (2, 2, 2, "zeros"), (1, 1, 1, "reflect"), (0, 1, 1, "zeros")])
def test_engines_match_the_pixel_difference_oracle(pdc, method, padding, dilation, stride, padding_mode):
    layer = PixelDifferenceConv2d(4, 6, padding=padding, dilation=dilation, stride=stride, groups=2, bias=True,
                                  pdc=pdc, theta=0.7, padding_mode=padding_mode, method=method, dtype=D)
    with torch.no_grad():
        layer.weight.copy_(_randn(*layer.weight.shape, seed=11))
        layer.bias.copy_(_randn(6, seed=12))
    x = _randn(2, 4, 17, 15, seed=13)
    ref = _oracle(x, layer.weight.detach(), pdc, 0.7, stride, padding, dilation, 2, padding_mode) + layer.bias.detach()[:, None, None]
    y = layer(x)
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-10)
    if method != "auto" and not (pdc == "rd" and padding_mode != "zeros"):
        assert layer.last_method == method


@pytest.mark.parametrize("pdc", ["cd", "ad", "rd"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding_matches_the_equivalent_convolution(pdc, padding):
    layer = PixelDifferenceConv2d(2, 3, padding=padding, dilation=2, pdc=pdc, method="fft", dtype=D)
    x = _randn(1, 2, 16, 16, seed=3)
    w = layer.equivalent_weight().detach()
    pad = {"same": w.shape[-1] // 2 * 2, "valid": 2 if pdc == "rd" else 0}[padding]
    ref = F.conv2d(x, w, padding=pad, dilation=2)
    assert torch.allclose(layer(x), ref, atol=1e-10)


def test_constraints_and_export_state_dict_on_pdc_layers():
    from cnnconv.constraints import constrain, export_state_dict, remove_constraints

    layer = PixelDifferenceConv2d(2, 3, pdc="ad", dtype=D, method="fft")
    with torch.no_grad():
        layer.weight.copy_(_randn(3, 2, 3, 3, seed=21))
    constrain(layer, "zero_sum")
    w = layer.weight.detach()
    assert torch.allclose(w.sum(dim=(-2, -1)), torch.zeros(3, 2, dtype=D), atol=1e-12)
    x = _randn(2, 2, 10, 11, seed=22)
    y = layer(x)
    assert torch.allclose(y, _oracle(x, w, "ad", 1.0, 1, 1, 1, 1), atol=1e-10)
    y.square().sum().backward()
    assert layer.parametrizations.weight.original.grad is not None
    net = nn.Sequential(layer)
    sd = export_state_dict(net)
    assert list(sd) == ["0.weight"]
    plain = nn.Sequential(PixelDifferenceConv2d(2, 3, pdc="ad", dtype=D))
    plain.load_state_dict(sd)  # strict
    assert torch.allclose(plain(x), y, atol=1e-10)
    remove_constraints(layer)
    assert torch.allclose(layer(x), y, atol=1e-10) and list(layer.state_dict()) == ["weight"]


def test_convert_back_leaves_pdc_layers_and_convert_skips_them():
    from cnnconv.conv import convert, convert_back

    net = nn.Sequential(PixelDifferenceConv2d(1, 2, pdc="cd"))
    x = _randn(1, 1, 8, 8, seed=1).float()
    y = net(x)
    assert type(convert_back(net)[0]) is PixelDifferenceConv2d and torch.allclose(net(x), y)
    assert type(convert(net, method="fft", min_kernel_size=1)[0]) is PixelDifferenceConv2d


@pytest.mark.parametrize("pdc, size", [("cd", 3), ("rd", 5)])
def test_inspection_reports_the_equivalent_kernel(pdc, size):
    from cnnconv.analysis import extract_kernels, match_kernel

    net = nn.Sequential(nn.Conv2d(1, 1, 3), PixelDifferenceConv2d.from_kernels(["sobel_x"], pdc=pdc, exact=False, dtype=D))
    rec = extract_kernels(net)[1]
    assert rec.shape == (1, 1, size, size) and rec.module_type == "PixelDifferenceConv2d"
    assert torch.equal(rec.weight, net[1].equivalent_weight().detach())
    assert f"equivalent vanilla kernel of a pdc={pdc!r} layer" in rec.note
    if pdc == "cd":
        best = match_kernel(rec.weight[0, 0])[0]
        assert (best.name, best.transform) == ("sobel_x", "identity") and best.similarity == pytest.approx(1.0)


@pytest.mark.parametrize("channel_mode", ["mean", "sum"])
def test_from_kernels_cv_builds_the_learnable_layer_of_the_same_arguments(channel_mode):
    from cnnconv.learnable import LearnableConv2d

    seed = int(torch.randint(0, 10_000, ()))
    specs = ["sobel_x", ("gaussian", {"sigma": 0.8, "size": 3}), torch.randn(3, 3, dtype=torch.float64)]
    args = dict(noise=0.1, kernel_size=5, channel_mode=channel_mode, padding=2, stride=2, dtype=torch.float64)
    a = LearnableConv2d.from_kernels(specs, 3, generator=torch.Generator().manual_seed(seed), **args)
    b = PixelDifferenceConv2d.from_kernels(specs, 3, pdc="cv", generator=torch.Generator().manual_seed(seed), **args)
    torch.testing.assert_close(b.weight, a.weight, rtol=1e-12, atol=1e-12)
    assert b.kernel_names == a.kernel_names == ["sobel_x", "gaussian", "tensor"]
    assert (b.stride, b.padding, b.kernel_size) == (a.stride, a.padding, a.kernel_size) == ((2, 2), (2, 2), (5, 5))
    assert max(b.init_residuals) < 1e-12
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour_mode'"):
        PixelDifferenceConv2d.from_kernels(specs, colour_mode="mean")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour_mode'"):
        LearnableConv2d.from_kernels(specs, colour_mode="mean")
