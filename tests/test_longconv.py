"""Long causal convolutions against a float64 direct reference, causality, caching and errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.longconv import LongConv1d, long_conv1d


def _reference(x, k, skip=None):
    """float64 direct causal convolution: y[t] = sum_s k[s] x[t - s] (+ skip * x)."""
    x, k = x.double(), k.double()
    length = x.shape[-1]
    k = k[:, :length]
    c = x.shape[-2]
    xb = x if x.ndim == 3 else x[None]
    y = F.conv1d(F.pad(xb, (k.shape[-1] - 1, 0)), k.flip(-1)[:, None], groups=c)
    if skip is not None:
        y = y + skip.double()[:, None] * xb
    return y if x.ndim == 3 else y[0]


@settings(max_examples=60)
@given(b=st.integers(1, 3), c=st.integers(1, 4), length=st.integers(1, 300), klen=st.integers(1, 400),
       skip=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31 - 1))
def test_matches_direct_reference(b, c, length, klen, skip, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, length, generator=g, dtype=dtype)
    k = torch.randn(c, klen, generator=g, dtype=dtype)
    d = torch.randn(c, generator=g, dtype=dtype) if skip else None
    y = long_conv1d(x, k, d)
    ref = _reference(x, k, d)
    assert y.shape == x.shape and y.dtype == dtype and y.is_contiguous()
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    scale = float(x.double().norm(dim=-1).max() * k.double().norm(dim=-1).max()) + 1
    assert float((y.double() - ref).abs().max()) <= tol * scale


def test_outputs_never_depend_on_the_future():
    torch.manual_seed(0)
    layer = LongConv1d(4, 512, decay=2.0).double()
    x = torch.randn(2, 4, 512, dtype=torch.float64)
    for t0 in (0, 1, 100, 511):
        x2 = x.clone()
        x2[..., t0:] += torch.randn_like(x2[..., t0:]) * 10
        y, y2 = layer(x), layer(x2)
        past = (y2[..., :t0] - y[..., :t0]).abs().max() if t0 else torch.tensor(0.0)
        assert past <= 1e-12 * float(x2.norm() * layer.kernel().detach().norm())
        assert (y2[..., t0:] - y[..., t0:]).abs().max() > 1e-3
    # and the gradient of an output with respect to later inputs is zero to rounding
    xg = x.clone().requires_grad_(True)
    layer(xg)[..., 200].sum().backward()
    assert xg.grad[..., 201:].abs().max() <= 1e-12
    assert xg.grad[..., :201].abs().max() > 1e-3


def test_gradcheck_float64():
    torch.manual_seed(1)
    layer = LongConv1d(2, 16, decay=[1.0, 4.0]).double()
    x = torch.randn(2, 2, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    k = torch.randn(2, 20, dtype=torch.float64, requires_grad=True)
    d = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: long_conv1d(a, b, c), (x, k, d))


def test_decay_window_and_layer_equal_functional():
    torch.manual_seed(2)
    layer = LongConv1d(3, 64, decay=5.0)
    t = torch.arange(64, dtype=torch.float64) / 64
    torch.testing.assert_close(layer.kernel().double(), layer.weight.double() * torch.exp(-5.0 * t), rtol=1e-6, atol=0)
    x = torch.randn(2, 3, 50)
    torch.testing.assert_close(layer(x), long_conv1d(x, layer.kernel(), layer.skip), rtol=0, atol=0)
    assert "decay=5.0" in repr(layer) and "skip=True" in repr(layer)


@pytest.mark.parametrize("write", ["data_mul", "data_assign", "numpy", "copy_", "optimizer"])
def test_eval_cache_follows_every_weight_write(write):
    torch.manual_seed(3)
    layer = LongConv1d(4, 128).eval()
    x = torch.randn(2, 4, 128)
    with torch.no_grad():
        layer(x)  # fills the cache
        if write == "data_mul":
            layer.weight.data.mul_(2)
        elif write == "data_assign":
            layer.weight.data = torch.randn(4, 128)
        elif write == "numpy":
            layer.weight.detach().numpy()[:, :5] = np.random.default_rng(0).normal(size=(4, 5))
        elif write == "copy_":
            layer.weight.copy_(torch.randn(4, 128))
    if write == "optimizer":
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer(x).square().sum().backward()  # grad enabled and kernel requires grad: no cache
        opt.step()
    with torch.no_grad():
        y = layer(x)
    torch.testing.assert_close(y.double(), _reference(x, layer.kernel().detach(), layer.skip.detach()), rtol=1e-5, atol=1e-4)


def test_inference_mode_weights_and_low_precision():
    with torch.inference_mode():
        torch.manual_seed(4)
        layer = LongConv1d(3, 64).eval()
        x = torch.randn(1, 3, 64)
        y1, y2 = layer(x), layer(x)
    assert torch.equal(y1, y2)
    torch.testing.assert_close(y1.double(), _reference(x, layer.kernel(), layer.skip), rtol=0, atol=1e-4)
    xb = x.clone().to(torch.bfloat16)
    yb = LongConv1d(3, 64)(xb)
    assert yb.dtype == torch.bfloat16


@pytest.mark.parametrize("bad, match", [
    (lambda: long_conv1d(torch.randn(2, 3), torch.randn(4, 5)), "one row per input channel"),
    (lambda: long_conv1d(torch.randn(2, 3, 4), torch.randn(3, 5, 1)), "kernel must be"),
    (lambda: long_conv1d(torch.ones(2, 3, 4, dtype=torch.int64), torch.randn(3, 5)), "floating point"),
    (lambda: long_conv1d(torch.randn(2, 3, 4), torch.randn(3, 5), torch.randn(2)), "skip must have shape"),
    (lambda: LongConv1d(0, 10), "channels must be positive"),
    (lambda: LongConv1d(2, 10, decay=-1.0), "decay must be"),
    (lambda: LongConv1d(2, 10, decay=float("nan")), "decay must be"),
    (lambda: LongConv1d(2, 10, decay=[1.0, 2.0, 3.0]), "decay must be"),
    (lambda: LongConv1d(2, 10)(torch.randn(1, 3, 10)), r"input must be \(B, 2, L\)"),
])
def test_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()
