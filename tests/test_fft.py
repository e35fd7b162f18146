"""Unit tests for cnnconv.fft: semantics, autograd, dtypes, non-finite input, caching, tiling."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnconv import fft
from cnnconv.fft import SpectrumCache, fft_conv1d, fft_conv2d, next_fast_len
from cnnconv.fft.plan import plan_for


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def test_next_fast_len_matches_scipy():
    import scipy.fft as scipy_fft
    for n in list(range(1, 400)) + [1039, 99999, 199999, 262145]:
        assert next_fast_len(n) == scipy_fft.next_fast_len(n, real=True)


def test_full_1d_correlation_matches_scipy_fftconvolve():
    from scipy import signal
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5000), rng.standard_normal(3000)
    ref = signal.fftconvolve(a, b[::-1])  # correlation = convolution with the flipped kernel
    out = fft_conv1d(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], padding=2999)
    assert out.shape == (1, 1, 7999)
    np.testing.assert_allclose(out[0, 0].numpy(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_unbatched_and_noncontiguous_and_channels_last():
    x = torch.randn(3, 4, 30, 27)
    w = torch.randn(5, 4, 7, 6)
    ref = F.conv2d(x.double(), w.double(), padding=3)
    assert _rel(fft_conv2d(x[0], w, padding=3), ref[0]) < 1e-6
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous view
    assert _rel(fft_conv2d(xt, w, padding=3), ref) < 1e-6
    xc = x.contiguous(memory_format=torch.channels_last)
    assert _rel(fft_conv2d(xc, w, padding=3), ref) < 1e-6


def test_empty_batch():
    x = torch.randn(0, 2, 16, 16)
    w = torch.randn(3, 2, 5, 5)
    assert fft_conv2d(x, w, padding=2).shape == F.conv2d(x, w, padding=2).shape


def test_gradcheck_and_gradgradcheck_float64():
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return fft_conv2d(x, w, b, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b), fast_mode=True)
    x1 = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    w1 = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    f1 = lambda a, c: fft_conv1d(a, c, padding="same", groups=3)  # noqa: E731
    assert torch.autograd.gradgradcheck(f1, (x1, w1), fast_mode=True)


def test_gradgradcheck_with_padding_mode():
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    f = lambda a, c: fft_conv2d(a, c, padding=1, padding_mode="reflect")  # noqa: E731
    assert torch.autograd.gradgradcheck(f, (x, w))
    # the tiled path too
    x = torch.randn(1, 1, 70, 66, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    g = lambda a, c: fft_conv2d(a, c, padding=1, memory_budget=75000)  # noqa: E731
    assert plan_for(x, w, padding=1, memory_budget=75000)["tiled"]
    assert torch.autograd.gradgradcheck(g, (x, w), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    x = torch.randn(2, 3, 40, 40).to(dtype)
    w = (torch.randn(3, 3, 9, 9) / 9).to(dtype)
    y = fft_conv2d(x, w, padding="same")
    assert y.dtype == dtype
    ref = F.conv2d(x.double(), w.double(), padding="same")
    assert _rel(y, ref) < (1e-2 if dtype == torch.bfloat16 else 2e-3)


def test_float64_stays_float64():
    x = torch.randn(1, 2, 20, 20, dtype=torch.float64)
    w = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    y = fft_conv2d(x, w)
    assert y.dtype == torch.float64
    assert _rel(y, F.conv2d(x, w)) < 1e-13


def test_nonfinite_input_falls_back_to_direct():
    x = torch.randn(2, 2, 40, 40)
    x[0, 1, 10, 12] = float("nan")
    x[1, 0, 30, 5] = float("inf")
    w = torch.randn(3, 2, 5, 5)
    y = fft_conv2d(x, w, padding=2)
    ref = F.conv2d(x, w, padding=2)
    # The spoiled region is exactly the direct convolution's, not the whole output.
    assert torch.equal(torch.isfinite(y), torch.isfinite(ref))
    assert torch.isfinite(y).float().mean() > 0.9
    good = torch.isfinite(ref)
    assert torch.allclose(y[good], ref[good], atol=1e-4)
    with pytest.raises(ValueError, match="NaN or inf"):
        fft_conv2d(x, w, padding=2, nonfinite="raise")


def test_large_finite_values_do_not_trigger_fallback_errors():
    x = torch.full((1, 1, 8, 8), 3e37) * torch.rand(1, 1, 8, 8)
    w = torch.rand(1, 1, 3, 3) * 1e-3
    y = fft_conv2d(x, w, padding=1, nonfinite="raise")  # plane sums overflow; input is finite
    assert _rel(y, F.conv2d(x.double(), w.double(), padding=1)) < 1e-5


def test_nonfinite_weight_falls_back():
    x = torch.randn(1, 1, 12, 12)
    w = torch.randn(1, 1, 3, 3)
    w[0, 0, 1, 1] = float("nan")
    assert torch.isnan(fft_conv2d(x, w)).all() == torch.isnan(F.conv2d(x, w)).all()


def test_spectrum_cache_hits_and_invalidates():
    cache = SpectrumCache()
    x = torch.randn(2, 3, 32, 32)
    w = torch.randn(4, 3, 7, 7)
    with torch.no_grad():
        y1 = fft_conv2d(x, w, padding=3, cache=cache)
        y2 = fft_conv2d(x, w, padding=3, cache=cache)
        assert cache.hits == 1 and torch.equal(y1, y2)
        w.mul_(2.0)  # bumps _version
        y3 = fft_conv2d(x, w, padding=3, cache=cache)
        assert cache.misses == 2
        assert _rel(y3, F.conv2d(x, w, padding=3)) < 1e-6
        fft_conv2d(torch.randn(2, 3, 48, 32), w, padding=3, cache=cache)  # new size
        assert cache.misses == 3
    # With gradients needed the cache is not consulted.
    wg = w.clone().requires_grad_()
    fft_conv2d(x, wg, padding=3, cache=cache).sum().backward()
    assert cache.misses == 3 and wg.grad is not None


def test_tiling_is_used_and_correct():
    x = torch.randn(2, 4, 120, 100, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4, 11, 11, dtype=torch.float64, requires_grad=True)
    assert plan_for(x[:, :, :30, :30], w[:, :, :5, :5], padding=2)["tiled"] is False
    # One large image through a dense layer: kernel spectra at tile size are far cheaper.
    big = plan_for(torch.empty(1, 16, 512, 512), torch.empty(16, 16, 31, 31), padding=15)
    assert big["tiled"] is True
    small = plan_for(x, w, padding=5, memory_budget=300_000)
    assert small["tiled"] is True and small["n"][0] < 120
    y = fft_conv2d(x, w, padding=5, memory_budget=300_000)
    ref = F.conv2d(x, w, padding=5)
    assert _rel(y, ref) < 1e-12
    gy = torch.randn_like(ref)
    a = torch.autograd.grad(y, (x, w), gy)
    b = torch.autograd.grad(ref, (x, w), gy)
    assert _rel(a[0], b[0]) < 1e-12 and _rel(a[1], b[1]) < 1e-12


def test_torch_backend_agrees_with_default():
    x = torch.randn(2, 3, 33, 40)
    w = torch.randn(6, 3, 8, 5)
    y = fft_conv2d(x, w, padding=(3, 4))
    fft.set_fft_backend("torch")
    try:
        y2 = fft_conv2d(x, w, padding=(3, 4))
    finally:
        fft.set_fft_backend("auto")
    assert _rel(y, y2) < 1e-6
    with pytest.raises(ValueError, match="backend must be one of"):
        fft.set_fft_backend("mkl")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(padding="full"), ValueError, "padding must be 'same', 'valid'"),
        (dict(padding=-1), ValueError, "padding must be non-negative"),
        (dict(stride=2, padding="same"), ValueError, "not supported for strided"),
        (dict(stride=0), ValueError, "stride must be positive"),
        (dict(dilation=0), ValueError, "dilation must be positive"),
        (dict(groups=0), ValueError, "groups must be positive"),
        (dict(groups=2.0), TypeError, "groups must be an int"),
        (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (dict(nonfinite="ignore"), ValueError, "nonfinite must be one of"),
        (dict(stride=(1, 2, 3)), TypeError, "stride must be an int or a tuple of 2"),
        (dict(memory_budget=-5), ValueError, "memory_budget must be positive"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    x = torch.randn(1, 2, 10, 10)
    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(exc, match=match):
        fft_conv2d(x, w, **kwargs)


def test_bad_shapes_and_types():
    x = torch.randn(1, 4, 10, 10)
    with pytest.raises(ValueError, match="input has 4 channels"):
        fft_conv2d(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        fft_conv2d(x, torch.randn(3, 2, 3, 3), groups=2)
    with pytest.raises(TypeError, match="weight dtype must match"):
        fft_conv2d(x, torch.randn(2, 4, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating point"):
        fft_conv2d(torch.ones(1, 4, 10, 10, dtype=torch.int64), torch.ones(2, 4, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="larger than the padded input"):
        fft_conv2d(x, torch.randn(2, 4, 13, 3))
    with pytest.raises(ValueError, match="bias must have shape"):
        fft_conv2d(x, torch.randn(2, 4, 3, 3), torch.randn(3))
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        fft_conv2d(np.ones((1, 4, 10, 10)), torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="expects input of 3"):
        fft_conv2d(torch.randn(10, 10), torch.randn(2, 4, 3, 3))


def test_even_kernel_same_follows_pytorch():
    x = torch.randn(1, 1, 12, 15, dtype=torch.float64)
    w = torch.randn(1, 1, 4, 6, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.conv2d(x, w, padding="same")
    assert _rel(fft_conv2d(x, w, padding="same"), ref) < 1e-12


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_device_follows_input(device):
    x = torch.randn(2, 3, 64, 64, device=device)
    w = torch.randn(4, 3, 15, 15, device=device, requires_grad=True)
    y = fft_conv2d(x, w, padding="same")
    assert y.device == x.device
    assert _rel(y, F.conv2d(x, w, padding="same")) < 1e-5
    y.sum().backward()
    assert w.grad.device == x.device
