"""Tests for cnnconv.learnable.LearnableConv2d."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnconv import kernels
from cnnconv.learnable import LearnableConv2d


def _image(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


@pytest.mark.parametrize(
    "name, kw",
    [("sobel_x", {}), ("sobel_y", {}), ("scharr_x", {}), ("laplacian8", {}), ("gaussian", {"sigma": 1.5})],
)
def test_from_kernels_reproduces_registry_filter_exactly(name, kw):
    x = _image(2, 1, 20, 23)
    layer = LearnableConv2d.from_kernels([(name, kw) if kw else name], in_channels=1, method="direct")
    k = kernels.get_kernel(name, **kw)
    ref = F.conv2d(x, k[None, None], padding="same")
    out = layer(x)
    assert out.shape == ref.shape
    assert torch.equal(out, ref)


def test_from_kernels_several_kernels_and_reflect_border():
    x = _image(3, 1, 17, 19, seed=1)
    layer = LearnableConv2d.from_kernels(["sobel_x", "sobel_y"], padding_mode="reflect", method="direct")
    kx, ky = kernels.sobel_x(), kernels.sobel_y()
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    ref = torch.cat([F.conv2d(xp, kx[None, None]), F.conv2d(xp, ky[None, None])], dim=1)
    assert torch.equal(layer(x), ref)
    assert layer.kernel_names == ["sobel_x", "sobel_y"]


def test_from_kernels_multichannel_is_kernel_on_channel_mean():
    x = _image(2, 3, 16, 16, seed=2, dtype=torch.float64)
    layer = LearnableConv2d.from_kernels(
        ["sobel_x", ("gaussian", {"sigma": 1.0})], in_channels=3, dtype=torch.float64
    )
    ks = [kernels.sobel_x(dtype=torch.float64), kernels.gaussian(1.0, dtype=torch.float64)]
    size = ks[1].shape[-1]
    ks[0] = F.pad(ks[0], ((size - 3) // 2,) * 4)
    ref = F.conv2d(x.mean(1, keepdim=True), torch.stack(ks)[:, None], padding="same")
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)
    # a grey image repeated over the channels gives the single-channel response
    grey = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(layer(grey), F.conv2d(x[:, :1], torch.stack(ks)[:, None], padding="same"))
    # "sum" mode: kernel on the channel sum
    layer_sum = LearnableConv2d.from_kernels(["sobel_x"], in_channels=3, channel_mode="sum", dtype=torch.float64)
    ref_sum = F.conv2d(x.sum(1, keepdim=True), kernels.sobel_x(dtype=torch.float64)[None, None], padding="same")
    torch.testing.assert_close(layer_sum(x), ref_sum)


def test_from_kernels_tensors_pairs_and_centre_padding():
    x = _image(1, 1, 15, 15, seed=3)
    t = torch.randn(3, 3, generator=torch.Generator().manual_seed(4))
    layer = LearnableConv2d.from_kernels([t, ("gaussian", {"sigma": 1.0, "size": 5})], kernel_size=7)
    assert layer.weight.shape == (2, 1, 7, 7)
    ref_t = F.conv2d(x, t[None, None], padding="same")
    ref_g = F.conv2d(x, kernels.gaussian(1.0, 5)[None, None], padding="same")
    torch.testing.assert_close(layer(x)[:, :1], ref_t, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer(x)[:, 1:], ref_g, rtol=0, atol=1e-6)
    stacked = LearnableConv2d.from_kernels(torch.stack([t, t.T]))
    assert stacked.out_channels == 2 and stacked.kernel_names == ["tensor", "tensor"]


def test_from_kernels_noise_is_relative_and_reproducible():
    names = ["sobel_x"] * 64
    a = LearnableConv2d.from_kernels(names, noise=0.1, generator=torch.Generator().manual_seed(5))
    b = LearnableConv2d.from_kernels(names, noise=0.1, generator=torch.Generator().manual_seed(5))
    c = LearnableConv2d.from_kernels(names, noise=0.1, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    k = kernels.sobel_x()
    rms = k.pow(2).mean().sqrt()
    rel = ((a.weight[:, 0] - k) / rms).std().item()
    assert 0.085 < rel < 0.115  # 576 samples of std 0.1
    # scale free: the normalised Sobel gets the same relative noise
    n = LearnableConv2d.from_kernels(
        [("sobel_x", {"normalized": True})] * 64, noise=0.1, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(n.weight * 8, a.weight, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trips_through_plain_conv2d():
    x = _image(2, 3, 12, 12, seed=7)
    layer = LearnableConv2d.from_kernels(["sobel_x", "sobel_y", "laplacian4"], in_channels=3, bias=True, noise=0.2)
    with torch.no_grad():
        layer.bias.normal_()
    plain = nn.Conv2d(3, 3, 3, padding="same", bias=True)
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(plain(x), layer(x))
    back = LearnableConv2d(3, 3, 3, padding="same", method="direct")
    torch.manual_seed(8)
    other = nn.Conv2d(3, 3, 3, padding="same")
    back.load_state_dict(other.state_dict())
    assert torch.equal(back(x), other(x))
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_freeze_and_unfreeze():
    layer = LearnableConv2d.from_kernels(["sobel_x"], bias=True)
    before = layer.weight.detach().clone()
    assert layer.freeze() is layer and layer.frozen
    opt = torch.optim.SGD([p for p in layer.parameters()], lr=1.0)
    x = _image(1, 1, 8, 8, seed=9)
    out = layer(x)
    assert not out.requires_grad
    opt.step()
    assert torch.equal(layer.weight, before)
    layer.unfreeze()
    assert not layer.frozen
    layer(x).pow(2).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_gradients_match_plain_conv2d():
    torch.manual_seed(10)
    ref = nn.Conv2d(2, 4, 3, stride=2, padding=1, dtype=torch.float64)
    layer = LearnableConv2d(2, 4, 3, stride=2, padding=1, dtype=torch.float64, method="direct")
    layer.load_state_dict(ref.state_dict())
    x = _image(2, 2, 11, 9, seed=11, dtype=torch.float64)
    ref(x).sin().sum().backward()
    layer(x).sin().sum().backward()
    torch.testing.assert_close(layer.weight.grad, ref.weight.grad)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_methods_agree_with_conv2d(method):
    x = _image(2, 3, 24, 20, seed=12, dtype=torch.float64)
    torch.manual_seed(13)
    ref = nn.Conv2d(3, 4, 7, padding=3, dtype=torch.float64)
    layer = LearnableConv2d(3, 4, 7, padding=3, dtype=torch.float64, method=method)
    layer.load_state_dict(ref.state_dict())
    torch.testing.assert_close(layer(x), ref(x), rtol=1e-10, atol=1e-10)
    for mode in ["reflect", "circular"]:
        ref_m = nn.Conv2d(3, 4, 5, padding="same", padding_mode=mode, dtype=torch.float64)
        layer_m = LearnableConv2d(3, 4, 5, padding="same", padding_mode=mode, dtype=torch.float64, method=method)
        layer_m.load_state_dict(ref_m.state_dict())
        torch.testing.assert_close(layer_m(x), ref_m(x), rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    stride=st.integers(1, 3),
    padding=st.sampled_from([0, 1, 2, "same", "valid"]),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    k=st.integers(1, 5),
    bias=st.booleans(),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
)
def test_drop_in_for_conv2d(stride, padding, dilation, groups, k, bias, padding_mode):
    if padding == "same" and stride != 1:
        stride = 1  # nn.Conv2d refuses it too
    args = (4, 6, k)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode)
    torch.manual_seed(14)
    ref = nn.Conv2d(*args, **kw)
    layer = LearnableConv2d(*args, **kw, method="direct")
    layer.load_state_dict(ref.state_dict())
    x = _image(2, 4, 13, 12, seed=15)
    assert torch.equal(layer(x), ref(x))


def test_extra_repr_and_errors():
    assert "method='fft'" in repr(LearnableConv2d(1, 2, 3, method="fft"))
    assert "method='auto'" in repr(LearnableConv2d.from_kernels(["sobel_x"]))
    with pytest.raises(ValueError, match="method must be one of.*got 'fast'"):
        LearnableConv2d(1, 2, 3, method="fast")
    with pytest.raises(TypeError, match="method must be a string"):
        LearnableConv2d(1, 2, 3, method=1)
    with pytest.raises(ValueError, match="noise must be a finite non-negative number, got -0.1"):
        LearnableConv2d.from_kernels(["sobel_x"], noise=-0.1)
    with pytest.raises(ValueError, match="unknown kernel name"):
        LearnableConv2d.from_kernels(["sobelx"])
    with pytest.raises(ValueError, match="kernel tensors must be 2-D"):
        LearnableConv2d.from_kernels([torch.ones(3)])
    with pytest.raises(TypeError, match="kernels must be registry names"):
        LearnableConv2d.from_kernels([3])
    with pytest.raises(ValueError, match="kernels must be a non-empty sequence"):
        LearnableConv2d.from_kernels([])
    with pytest.raises(ValueError, match="in_channels must be a positive integer, got 0"):
        LearnableConv2d.from_kernels(["sobel_x"], in_channels=0)
    with pytest.raises(ValueError, match="cannot centre a 3x3 kernel in a 4x4 one"):
        LearnableConv2d.from_kernels(["sobel_x"], kernel_size=4)
    with pytest.raises(ValueError, match="channel_mode must be 'mean' or 'sum', got 'max'"):
        LearnableConv2d.from_kernels(["sobel_x"], channel_mode="max")


def test_channels_last_and_empty_batch():
    layer = LearnableConv2d.from_kernels(["sobel_x", "sobel_y"], in_channels=2, method="direct")
    x = _image(2, 2, 10, 10, seed=16)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), layer(x))
    assert layer(torch.empty(0, 2, 10, 10)).shape == (0, 2, 10, 10)


def test_auto_runs_fft_for_large_kernels_and_gradients_agree():
    from cnnconv.planner import choose_method

    x = _image(1, 1, 64, 64, seed=17, dtype=torch.float64).requires_grad_(True)
    layer = LearnableConv2d.from_kernels(
        [("gaussian", {"sigma": 3.0, "size": 21}), ("gaussian_dx", {"sigma": 3.0, "size": 21})],
        dtype=torch.float64, noise=0.1, generator=torch.Generator().manual_seed(18),
    )
    assert layer.method == "auto"
    choice = choose_method(
        tuple(x.shape), tuple(layer.weight.shape), groups=1, stride=layer.stride,
        dilation=layer.dilation, dtype=x.dtype, device=x.device,
    )
    assert choice == "fft"  # so this test covers the FFT route
    out = layer(x)
    ref = F.conv2d(x, layer.weight, padding="same")
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-11)
    gx, gw = torch.autograd.grad(out.pow(2).sum(), (x, layer.weight))
    rx, rw = torch.autograd.grad(ref.pow(2).sum(), (x, layer.weight))
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gw, rw, rtol=1e-9, atol=1e-8)


def test_is_an_fft_layer_that_convert_back_keeps():
    from torch import nn

    from cnnconv.conv import FFTConv2d, convert_back

    torch.manual_seed(3)
    layer = LearnableConv2d.from_kernels(["sobel_x", ("gaussian", {"size": 3})], in_channels=2, padding_mode="reflect", method="fft")
    assert isinstance(layer, FFTConv2d) and isinstance(layer, nn.Conv2d)
    net = nn.Sequential(layer, nn.ReLU())
    assert convert_back(net)[0] is layer and layer.kernel_names == ["sobel_x", "gaussian"]
    x = torch.randn(2, 2, 40, 40, dtype=torch.float64)
    layer = layer.double().eval()
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), layer.weight)
    with torch.no_grad():
        first, second = layer(x), layer(x)  # the second call reuses the cached spectrum
    assert layer.last_method == "fft"
    torch.testing.assert_close(first, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    with torch.no_grad():
        layer.weight.mul_(2.0)  # a changed weight must not reuse the old spectrum
        torch.testing.assert_close(layer(x), 2 * ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kernel_size=(3,)), r"kernel_size must be an int or a pair of positive ints, got \(3,\)"),
        (dict(kernel_size=(3, 0)), r"kernel_size must be an int or a pair of positive ints, got \(3, 0\)"),
        (dict(kernel_size=2.5), r"kernel_size must be an int or a pair of positive ints, got 2.5"),
        (dict(noise=float("inf")), "noise must be a finite non-negative number, got inf"),
        (dict(noise=float("nan")), "noise must be a finite non-negative number, got nan"),
        (dict(noise=-1.0), "noise must be a finite non-negative number, got -1.0"),
    ],
)
def test_from_kernels_rejects_bad_kernel_size_and_noise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LearnableConv2d.from_kernels(["sobel_x"], **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_from_kernels_rejects_non_finite_kernels(bad):
    k = torch.randn(3, 3)
    k[1, 2] = bad
    with pytest.raises(ValueError, match=rf"kernels must be finite, got {bad} in kernel 1 \(tensor\)"):
        LearnableConv2d.from_kernels([torch.randn(3, 3), k])
    with pytest.raises(ValueError, match=rf"kernels must be finite, got {bad} in kernel 0"):
        LearnableConv2d.from_kernels(torch.stack([k, k]))
