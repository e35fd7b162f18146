"""Tests for cnnconv.conv: FFTConv1d / FFTConv2d drop-ins, convert and convert_back."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv.conv import FFTConv1d, FFTConv2d, convert, convert_back


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("method", ["fft", "direct", "auto"])
@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=7, padding=3),
        dict(kernel_size=(5, 4), padding="same", padding_mode="reflect"),
        dict(kernel_size=3, stride=2, padding=1, dilation=2, groups=2),
        dict(kernel_size=9, padding=4, padding_mode="circular", bias=False),
        dict(kernel_size=4, padding=2, padding_mode="replicate"),
    ],
)
def test_fftconv2d_matches_nn_conv2d(method, kw):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, **kw)
    layer = FFTConv2d(4, 6, **kw, method=method)
    layer.load_state_dict(ref.state_dict())
    assert list(layer.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 4, 23, 19, requires_grad=True)
    y, r = layer(x), ref(x)
    assert y.shape == r.shape and _rel(y, r) < 1e-5
    gy = torch.randn_like(r)
    a = torch.autograd.grad(y, (x, layer.weight), gy)
    b = torch.autograd.grad(r, (x, ref.weight), gy)
    assert _rel(a[0], b[0]) < 1e-5 and _rel(a[1], b[1]) < 1e-5


def test_fftconv1d_matches_nn_conv1d():
    ref = nn.Conv1d(3, 5, 31, padding="same", padding_mode="reflect")
    layer = FFTConv1d(3, 5, 31, padding="same", padding_mode="reflect", method="fft")
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 200)
    assert _rel(layer(x), ref(x)) < 1e-5
    assert layer.last_method == "fft"


def test_same_initialisation_and_repr():
    torch.manual_seed(3)
    ref = nn.Conv2d(3, 8, 5, padding=2)
    torch.manual_seed(3)
    layer = FFTConv2d(3, 8, 5, padding=2)
    assert torch.equal(ref.weight, layer.weight) and torch.equal(ref.bias, layer.bias)
    assert repr(layer) == repr(ref).replace("Conv2d(", "FFTConv2d(")[:-1] + ", method='auto')"
    assert "method='fft'" in repr(FFTConv1d(1, 1, 3, method="fft"))


def test_bad_method():
    with pytest.raises(ValueError, match="method must be one of"):
        FFTConv2d(1, 1, 3, method="winograd")
    with pytest.raises(TypeError, match="method must be a str"):
        FFTConv2d(1, 1, 3, method=1)


def test_auto_picks_fft_for_large_kernels_and_direct_for_small():
    big = FFTConv2d(16, 16, 31, padding=15, method="auto")
    small = FFTConv2d(16, 16, 3, padding=1, method="auto")
    x = torch.randn(1, 16, 64, 64)
    with torch.no_grad():
        big(x)
        small(x)
    assert big.last_method == "fft" and small.last_method == "direct"


def test_eval_cache_reused_and_invalidated_by_optimizer_step():
    layer = FFTConv2d(2, 3, 9, padding=4, method="fft")
    x = torch.randn(1, 2, 32, 32)
    layer.eval()
    with torch.no_grad():
        layer(x)
        layer(x)
    assert layer._spectrum_cache.hits == 1
    layer.train()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).square().mean().backward()
    opt.step()
    layer.eval()
    with torch.no_grad():
        y = layer(x)
    assert _rel(y, F.conv2d(x, layer.weight, layer.bias, padding=4)) < 1e-5


def test_convert_and_convert_back_keep_weights_and_outputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 15, padding=7),
                        nn.Flatten(0, 1), nn.Conv1d(4, 2, 11))
    x = torch.randn(2, 3, 20, 20)
    ref = net[:3](x)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    out = convert(net, method="fft", min_kernel_size=5)
    assert out is net
    assert type(net[0]) is nn.Conv2d and type(net[2]) is FFTConv2d and type(net[4]) is FFTConv1d
    assert _rel(net[:3](x), ref) < 1e-5
    assert set(net.state_dict()) == set(sd)
    back = convert_back(net)
    assert type(back[2]) is nn.Conv2d and type(back[4]) is nn.Conv1d
    for k, v in back.state_dict().items():
        assert torch.equal(v, sd[k])
    single = convert(nn.Conv2d(1, 1, 7), method="direct")
    assert isinstance(single, FFTConv2d) and single.method == "direct"


def test_convert_bad_arguments():
    with pytest.raises(ValueError, match="min_kernel_size must be positive"):
        convert(nn.Conv2d(1, 1, 3), min_kernel_size=0)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        convert("net")
    with pytest.raises(ValueError, match="method must be one of"):
        convert(nn.Conv2d(1, 1, 3), method="fast")


def test_half_precision_layer():
    layer = FFTConv2d(2, 2, 7, padding=3, method="fft").to(torch.bfloat16)
    x = torch.randn(1, 2, 24, 24, dtype=torch.bfloat16)
    y = layer(x)
    assert y.dtype == torch.bfloat16
    ref = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), padding=3)
    assert _rel(y, ref) < 2e-2
