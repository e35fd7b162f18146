"""padding="causal" of fft_conv1d / FFTConv1d: left padding dilation*(k-1), none on the right."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv.conv import FFTConv1d, convert_back
from cnnconv.fft import fft_conv1d, fft_conv2d


def _causal_ref(x, w, b=None, stride=1, dilation=1, groups=1):
    left = dilation * (w.shape[-1] - 1)
    return F.conv1d(F.pad(x, (left, 0)), w, b, stride, 0, dilation, groups)


@pytest.mark.parametrize("k,dilation,groups,stride", [
    (1, 1, 1, 1), (5, 1, 1, 1), (7, 3, 2, 1), (64, 1, 4, 1), (4, 2, 1, 3), (33, 1, 4, 2),
])
def test_fft_conv1d_causal_equals_left_padded_conv1d(k, dilation, groups, stride):
    x = torch.randn(2, 4, 300, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 4 // groups, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64)
    y = fft_conv1d(x, w, b, stride=stride, padding="causal", dilation=dilation, groups=groups)
    r = _causal_ref(x, w, b, stride, dilation, groups)
    assert y.shape == r.shape == (2, 8, -(-300 // stride))
    assert (y - r).abs().max().item() < 1e-11
    gy = torch.randn_like(r)
    a = torch.autograd.grad(y, (x, w), gy)
    c = torch.autograd.grad(r, (x, w), gy)
    assert (a[0] - c[0]).abs().max().item() < 1e-11
    assert (a[1] - c[1]).abs().max().item() < 1e-10


@pytest.mark.parametrize("method", ["fft", "direct", "auto"])
@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
def test_fftconv1d_causal_layer(method, padding_mode):
    layer = FFTConv1d(4, 6, 9, padding="causal", dilation=2, groups=2, method=method,
                      padding_mode=padding_mode, dtype=torch.float64)
    ref = nn.Conv1d(4, 6, 9, dilation=2, groups=2, dtype=torch.float64)
    assert list(layer.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(3, 4, 100, dtype=torch.float64)
    y = layer(x)
    mode = "constant" if padding_mode == "zeros" else padding_mode
    r = ref(F.pad(x, (16, 0), mode=mode))
    assert y.shape == (3, 6, 100)
    assert (y - r).abs().max().item() < 1e-11
    assert layer.last_method in ("fft", "direct")
    if method != "auto":
        assert layer.last_method == method
    assert "padding=causal" in repr(layer)


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_causal_outputs_never_depend_on_the_future(method):
    layer = FFTConv1d(3, 3, 50, padding="causal", groups=3, bias=False, method=method,
                      dtype=torch.float64)
    x = torch.randn(2, 3, 400, dtype=torch.float64)
    y = layer(x)
    for t in (0, 1, 137, 399):
        x2 = x.clone()
        x2[..., t:] += torch.randn_like(x2[..., t:]) * 10
        y2 = layer(x2)
        past = (y2[..., :t] - y[..., :t]).abs().max().item() if t else 0.0
        future = (y2[..., t:] - y[..., t:]).abs().min().item()
        # The direct method is exact; the transforms mix in rounding only (a real dependence
        # on the perturbation, 10x the signal, would be of order 1).
        assert past == 0.0 if method == "direct" else past < 1e-12
        assert future > 1e-9


def test_causal_refusals():
    x, w = torch.randn(1, 2, 50), torch.randn(2, 2, 5)
    for mode in ("reflect", "circular"):
        with pytest.raises(ValueError, match="causal.*" + mode):
            fft_conv1d(x, w, padding="causal", padding_mode=mode)
        with pytest.raises(ValueError, match="causal.*" + mode):
            FFTConv1d(2, 2, 5, padding="causal", padding_mode=mode)
    with pytest.raises(ValueError, match="causal"):
        fft_conv2d(torch.randn(1, 2, 9, 9), torch.randn(2, 2, 3, 3), padding="causal")
    with pytest.raises(ValueError, match="padding"):
        FFTConv1d(2, 2, 5, padding="causall")


def test_convert_back_refuses_causal_layers():
    net = nn.Sequential(nn.Conv1d(2, 2, 3), FFTConv1d(2, 2, 5, padding="causal"))
    with pytest.raises(ValueError, match=r"'1'.*causal"):
        convert_back(net)
    assert type(net[1]) is FFTConv1d and type(net[0]) is nn.Conv1d  # nothing replaced
    plain = FFTConv1d(2, 2, 5, padding=2, method="fft")
    assert type(convert_back(plain)) is nn.Conv1d
