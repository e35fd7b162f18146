"""3-D FFT convolution: fft_conv3d / FFTConv3d against float64 F.conv3d, convert of nn.Conv3d.

The grids of the first two tests are the 3-D cases of fft-conv-pytorch's test suite
(tests/test_functional.py and tests/test_module.py, with its tolerances: mean absolute error
< 1e-5, largest < 1e-4), run in float32 and float64 with the input gradient checked too.
"""

import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv import planner
from cnnconv.conv import FFTConv3d, convert, convert_back
from cnnconv.fft import ConvArgumentError, ConvDtypeError, SpectrumCache, fft_conv3d
from cnnconv.fft.plan import plan_for


def _close(a, b, mean=1e-5, largest=1e-4):
    err = (a.detach().double() - b.detach().double()).abs()
    assert err.mean().item() < mean and err.max().item() < largest, (
        err.mean().item(), err.max().item())


def _tol(dtype):
    # fft-conv-pytorch's tolerances in float32; float64 is held to 1e-12.
    if dtype == torch.float32:
        return dict(mean=1e-5, largest=1e-4)
    return dict(mean=1e-13, largest=1e-12)


def _oracle(x, w, b, **kw):
    """float64 F.conv3d output and gradients of ``sum(y * gy)`` for x, w, b."""
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = None if b is None else b.detach().double().requires_grad_()
    y = F.conv3d(x64, w64, b64, **kw)
    return y, x64, w64, b64


def _grid(**axes):
    keys = list(axes)
    for values in itertools.product(*axes.values()):
        yield dict(zip(keys, values))


def _check_grid_case(y, r, grads, dtype, case, failures):
    """Record ``case`` in ``failures`` when an output or a gradient is off tolerance."""
    pairs = [(y, r)] + grads
    errs = [(a.detach().double() - b.detach().double()).abs() for a, b in pairs]
    tol = _tol(dtype)
    bad = [(e.mean().item(), e.max().item()) for e in errs
           if not (e.mean().item() < tol["mean"] and e.max().item() < tol["largest"])]
    if y.shape != r.shape or y.dtype != dtype or bad:
        failures.append((case, bad))


# Each test runs a slice of the grid (one pytest item per slice keeps collection fast).
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("out_channels", [1, 2, 3])
@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_fft_conv_pytorch_functional_3d(in_channels, out_channels, dtype):
    failures = []
    for case in _grid(groups=[1, 2, 3], kernel_size=[1, 2, 3], padding=[0, 1], stride=[1, 2, 3],
                      dilation=[1, 2, 3], bias=[True, False], input_size=[7, 8]):
        groups = math.gcd(in_channels, math.gcd(out_channels, case["groups"]))
        size = [case["input_size"]] * 3
        x = torch.randn(2, in_channels, *size, dtype=dtype, requires_grad=True)
        w = torch.randn(out_channels, in_channels // groups, *[case["kernel_size"]] * 3,
                        dtype=dtype, requires_grad=True)
        b = torch.randn(out_channels, dtype=dtype, requires_grad=True) if case["bias"] else None
        kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=groups)
        y = fft_conv3d(x, w, b, **kw)
        r, x64, w64, b64 = _oracle(x, w, b, **kw)
        y.sum().backward()
        r.sum().backward()
        grads = [(w.grad, w64.grad), (x.grad, x64.grad)]
        if b is not None:
            grads.append((b.grad, b64.grad))
        _check_grid_case(y, r, grads, dtype, case, failures)
    assert not failures, failures[:5]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_conv_pytorch_module_3d(dtype):
    failures = []
    for case in _grid(in_channels=[2, 3], out_channels=[2, 3], groups=[1, 2, 3],
                      kernel_size=[2, 3], padding=[0, 1], stride=[1, 2], dilation=[1, 2],
                      input_size=[7, 8]):
        cin, cout = case["in_channels"], case["out_channels"]
        groups = math.gcd(cin, math.gcd(cout, case["groups"]))
        kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=groups)
        layer = FFTConv3d(cin, cout, case["kernel_size"], **kw, method="fft", dtype=dtype)
        x = torch.randn(2, cin, *[case["input_size"]] * 3, dtype=dtype)
        y = layer(x)
        r, _, w64, b64 = _oracle(x, layer.weight, layer.bias, **kw)
        assert layer.last_method == "fft"
        y.sum().backward()
        r.sum().backward()
        grads = [(layer.weight.grad, w64.grad), (layer.bias.grad, b64.grad)]
        _check_grid_case(y, r, grads, dtype, case, failures)
    assert not failures, failures[:5]


@settings(max_examples=60)
@given(
    batch=st.integers(1, 2),
    cin_g=st.integers(1, 3),
    cout_g=st.integers(1, 3),
    groups=st.integers(1, 2),
    k=st.tuples(*[st.integers(1, 6)] * 3),
    extra=st.tuples(*[st.integers(0, 7)] * 3),
    stride=st.tuples(*[st.integers(1, 3)] * 3),
    dilation=st.tuples(*[st.integers(1, 2)] * 3),
    padding=st.one_of(st.tuples(*[st.integers(0, 3)] * 3), st.sampled_from(["same", "valid"])),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_fftconv3d_hypothesis_float64(batch, cin_g, cout_g, groups, k, extra, stride, dilation,
                                      padding, padding_mode, bias, seed):
    if padding == "same":
        stride = (1, 1, 1)
    kd = [d * (kk - 1) + 1 for kk, d in zip(k, dilation)]
    size = [kk + e for kk, e in zip(kd, extra)]
    if padding_mode == "reflect" and not isinstance(padding, str) and any(
            p >= s for p, s in zip(padding, size)):
        padding_mode = "zeros"  # reflect needs padding < size
    g = torch.Generator().manual_seed(seed)
    layer = FFTConv3d(cin_g * groups, cout_g * groups, k, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                      method="fft", dtype=torch.float64)
    ref = nn.Conv3d(cin_g * groups, cout_g * groups, k, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                    dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))
        ref.weight.copy_(layer.weight)
        if bias:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=torch.float64))
            ref.bias.copy_(layer.bias)
    x = torch.randn(batch, cin_g * groups, *size, generator=g, dtype=torch.float64,
                    requires_grad=True)
    y, r = layer(x), ref(x)
    assert y.shape == r.shape
    assert (y - r).abs().max().item() <= 1e-12
    gy = torch.randn(r.shape, generator=g, dtype=torch.float64)
    a = torch.autograd.grad(y, (x, layer.weight), gy)
    b = torch.autograd.grad(r, (x, ref.weight), gy)
    assert (a[0] - b[0]).abs().max().item() <= 1e-12
    assert (a[1] - b[1]).abs().max().item() <= 1e-12


def test_tiled_3d_matches_conv3d_forward_and_backward():
    x = torch.randn(2, 2, 40, 36, 44, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    budget = 1 << 19
    plan = plan_for(x, w, padding=2, memory_budget=budget)
    assert plan["tiled"]
    y = fft_conv3d(x, w, padding=2, memory_budget=budget)
    r = F.conv3d(x, w, padding=2)
    assert (y - r).abs().max().item() < 1e-11
    gy = torch.randn_like(r)
    a = torch.autograd.grad(y, (x, w), gy)
    b = torch.autograd.grad(r, (x, w), gy)
    assert (a[0] - b[0]).abs().max().item() < 1e-11
    assert (a[1] - b[1]).abs().max().item() < 1e-10


def test_unbatched_channels_last_3d_and_contiguous_outputs():
    x = torch.randn(2, 3, 9, 10, 11)
    w = torch.randn(4, 3, 3, 3, 3)
    r = F.conv3d(x, w, padding=1)
    y = fft_conv3d(x, w, padding=1)
    assert y.is_contiguous()
    _close(y, r)
    xc = x.to(memory_format=torch.channels_last_3d)
    yc, rc = fft_conv3d(xc, w, padding=1), F.conv3d(xc, w, padding=1)
    assert yc.is_contiguous(memory_format=torch.channels_last_3d) and not yc.is_contiguous()
    assert rc.is_contiguous(memory_format=torch.channels_last_3d)
    _close(yc, r)
    _close(fft_conv3d(x[0], w, padding=1), r[0])


def test_autocast_meta_and_vmap_3d():
    x, w = torch.randn(1, 2, 8, 8, 8), torch.randn(3, 2, 3, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fft_conv3d(x, w)
        r = F.conv3d(x, w)
    assert y.dtype == r.dtype == torch.bfloat16
    _close(y.float(), F.conv3d(x, w), mean=0.1, largest=0.5)
    m = fft_conv3d(torch.empty(1, 2, 8, 8, 8, device="meta"), torch.empty(3, 2, 3, 3, 3,
                                                                         device="meta"))
    assert m.device.type == "meta" and m.shape == (1, 3, 6, 6, 6)
    xs = torch.randn(4, 2, 8, 8, 8)
    v = torch.func.vmap(lambda t: fft_conv3d(t, w))(xs)
    _close(v, F.conv3d(xs, w))


def test_exact_zeros_and_nonfinite_3d():
    x = torch.randn(1, 1, 20, 20, 20)
    x[..., :10, :, :] = 0
    w = torch.randn(2, 1, 3, 3, 3) * 100
    y = fft_conv3d(x, w)
    assert torch.equal(y[..., :8, :, :], torch.zeros_like(y[..., :8, :, :]))
    x[0, 0, 15, 15, 15] = float("nan")
    y = fft_conv3d(x, w)
    r = F.conv3d(x, w)
    assert torch.equal(y.isnan(), r.isnan()) and y.isnan().sum() == 27 * 2
    with pytest.raises(ValueError, match="nonfinite"):
        fft_conv3d(x, w, nonfinite="raise")


def test_errors_3d():
    x, w = torch.randn(1, 2, 8, 8, 8), torch.randn(3, 2, 3, 3, 3)
    with pytest.raises(ConvArgumentError, match="conv3d"):
        fft_conv3d(torch.randn(2, 8, 8), w)
    with pytest.raises(RuntimeError):
        fft_conv3d(x, torch.randn(3, 3, 3, 3, 3))
    with pytest.raises(ConvDtypeError):
        fft_conv3d(x, w.double())
    with pytest.raises(TypeError, match="stride"):
        fft_conv3d(x, w, stride=(1, 2))


def test_eval_cache_3d():
    layer = FFTConv3d(2, 2, 5, padding="same", method="fft").eval()
    x = torch.randn(1, 2, 12, 12, 12)
    with torch.no_grad():
        y1 = layer(x)
        y2 = layer(x)
    assert layer._spectrum_cache.hits == 1
    assert torch.equal(y1, y2)
    cache = SpectrumCache()
    w = torch.randn(2, 2, 3, 3, 3)
    with torch.no_grad():
        fft_conv3d(x, w, cache=cache)
        fft_conv3d(x, w, cache=cache)
    assert cache.hits == 1


def test_planner_3d_choices():
    big = ((1, 8, 64, 64, 64), (8, 8, 15, 15, 15))
    small = ((1, 8, 32, 32, 32), (8, 8, 3, 3, 3))
    assert planner.choose_method(*big) == "fft"
    assert planner.choose_method(*small) == "direct"
    costs = planner.estimate_costs(*big)
    assert costs["fft"] * 10 < costs["direct"]
    layer = FFTConv3d(8, 8, 3, padding=1)
    layer(torch.randn(1, 8, 10, 10, 10))
    assert layer.last_method == "direct"


def test_convert_and_convert_back_conv3d():
    net = nn.Sequential(nn.Conv3d(2, 3, 9, padding=4), nn.ReLU(), nn.Conv3d(3, 3, 3))
    x = torch.randn(1, 2, 12, 12, 12)
    ref = net(x)
    keys = list(net.state_dict())
    net, rep = convert(net, method="fft", report=True)
    assert isinstance(net[0], FFTConv3d) and type(net[2]) is nn.Conv3d
    assert rep.converted == ["0"] and "2" in rep.skipped
    assert list(net.state_dict()) == keys
    _close(net(x), ref)
    assert net[0].last_method == "fft"
    net = convert_back(net)
    assert type(net[0]) is nn.Conv3d
    _close(net(x), ref)
