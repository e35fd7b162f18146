"""Fuzz tests: the public functions and layers against float64 references, with bad input mixed in.

Each example either raises a clear ``ValueError``/``TypeError`` (for bad arguments) or returns a
result equal to an independent float64 reference (``F.conv2d`` on an input padded by numpy's own
border modes), with NaN, +inf and -inf at exactly the reference's positions.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnconv.functional as CF
from cnnconv.engines import padding as _padding
from cnnconv import kernels as K
from cnnconv.conv import FFTConv2d
from cnnconv.fft import fft_conv1d, fft_conv2d

# cnnconv border name -> numpy.pad mode (an implementation independent of cnnconv's own padding)
NUMPY_BORDER = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap",
                "symmetric": "symmetric"}
BORDERS = sorted(b for b in _padding.BORDERS if b in NUMPY_BORDER)
EPS = {torch.float32: 1.2e-7, torch.float64: 2.3e-16}
BAD_CHOICES = ["bogus", "", 3, None, 2.5, ("same",)]


def _pads(k: int, mode: str) -> tuple[int, int]:
    """Padding before/after for scipy.signal sizes with scipy's anchor (element k // 2)."""
    return {"full": (k - 1, k - 1), "valid": (0, 0), "same": (k // 2, k - 1 - k // 2)}[mode]


def _finite(x: torch.Tensor) -> torch.Tensor:
    """float64 copy of ``x`` with non-finite values set to 0 (for error scales)."""
    x = x.detach().double()
    return torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype))


def _reference(x: torch.Tensor, kernel: torch.Tensor, mode: str, border: str):
    """float64 depthwise correlation of (B, C, H, W) with a (kh, kw) kernel; also |x| * |k|."""
    kh, kw = kernel.shape
    (pt, pb), (pl, pr) = _pads(kh, mode), _pads(kw, mode)
    xn = x.detach().double().cpu().numpy()
    width = ((0, 0), (0, 0), (pt, pb), (pl, pr))
    if border == "zeros" or mode == "valid":
        xp = np.pad(xn, width)
    elif border in ("reflect", "symmetric", "circular") and (x.shape[-2] < 2 or x.shape[-1] < 2):
        return None  # too small for numpy to define the border the same way
    else:
        # numpy pads wider-than-input reflections by repeating, like cnnconv
        xp = np.pad(xn, width, mode=NUMPY_BORDER[border])
    xp = torch.from_numpy(xp)
    c = x.shape[1]
    w = kernel.detach().double().cpu().expand(c, 1, kh, kw)
    ref = F.conv2d(xp, w, groups=c)
    finite = torch.where(torch.isfinite(xp), xp.abs(), torch.zeros(()).double())
    mag = F.conv2d(finite, w.abs(), groups=c)
    return ref, mag


def _assert_matches(y, ref, mag, dtype, local: bool, radius: int = 0, norms: float = 0.0, taps: int = 9):
    """Identical non-finite positions; finite values within a dtype-scaled bound.

    ``local``: each pixel's error is bounded by the magnitudes (``|x| * |k|``) within ``radius``
    pixels of it (direct, separable and block-sum engines); otherwise by the largest magnitude
    or ``norms`` (``||x|| * ||k||``, the FFT's error scale), whichever is larger. Rounding in a
    sum of ``taps`` terms grows like their square root (times a log factor for the FFT).
    """
    y = y.detach().double().cpu()
    assert y.shape == ref.shape, (y.shape, ref.shape)
    assert torch.equal(torch.isnan(y), torch.isnan(ref)), "NaN positions differ from F.conv2d"
    assert torch.equal(torch.isposinf(y), torch.isposinf(ref)), "+inf positions differ"
    assert torch.equal(torch.isneginf(y), torch.isneginf(ref)), "-inf positions differ"
    ok = torch.isfinite(ref)
    if not ok.any():
        return
    if local and radius:
        mag = F.max_pool2d(mag.flatten(0, -3).unsqueeze(1), 2 * radius + 1, 1, radius).view_as(mag)
    err = (y - ref).abs()[ok]
    scale = mag[ok] if local else torch.clamp(mag[ok].max(), min=norms).expand_as(mag[ok])
    bound = 16 * EPS[dtype] * scale * max(4.0, np.sqrt(taps)) * max(1.0, np.log2(ref.numel())) + 1e-30
    worst = float((err / bound).max())
    assert worst <= 1.0, f"error {float(err.max()):.3g} beyond the {'local' if local else 'global'} bound"


@st.composite
def images(draw, max_side=12):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    spikes = draw(st.sampled_from([None, 1e4, 1e6]))
    if spikes is not None:
        x.view(-1)[int(torch.randint(x.numel(), (1,), generator=g))] = spikes
    for value in draw(st.lists(st.sampled_from([float("nan"), float("inf"), -float("inf")]), max_size=3)):
        x.view(-1)[int(torch.randint(x.numel(), (1,), generator=g))] = value
    x = x.to(dtype)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided"]))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.cat([x, x], dim=-1)[..., ::2]  # the same values through a non-unit stride
    return x, g


@settings(max_examples=150)
@given(case=images(), kh=st.integers(1, 7), kw=st.integers(1, 7),
       mode=st.sampled_from(["full", "same", "valid"]), border=st.sampled_from(BORDERS),
       method=st.sampled_from(["auto", "direct", "fft", "separable", "box"]),
       kind=st.sampled_from(["random", "rank1", "box"]))
def test_filter2d_matches_float64_reference(case, kh, kw, mode, border, method, kind):
    x, g = case
    if kind == "random":
        kernel = torch.randn(kh, kw, generator=g, dtype=torch.float64)
    elif kind == "rank1":
        kernel = torch.outer(torch.randn(kh, generator=g, dtype=torch.float64), torch.randn(kw, generator=g, dtype=torch.float64))
    else:
        kernel = torch.full((kh, kw), 1.0 / (kh * kw), dtype=torch.float64)
    kernel = kernel.to(x.dtype)
    try:
        y = CF.filter2d(x, kernel, mode, border, method=method)
    except (ValueError, TypeError) as err:
        assert str(err), "an error must say what was wrong"
        return
    got = _reference(x, kernel, mode, border)
    if got is None:
        return
    ref, mag = got
    norms = float(_finite(x).norm() * kernel.double().norm())
    radius = 2 * max(kh, kw) if method == "box" else 0
    _assert_matches(y, ref, mag, x.dtype, method in ("direct", "separable", "box"), radius, norms, kh * kw)


@settings(max_examples=60)
@given(case=images(max_side=64), k=st.sampled_from([17, 21, 31]), border=st.sampled_from(BORDERS),
       method=st.sampled_from(["box", "direct"]))
def test_large_box_errors_stay_local(case, k, border, method):
    """Running sums over long rows: a spike or a huge value may not spoil pixels far from it."""
    x, _ = case
    y = CF.box_blur2d(x, k, border=border, method=method)
    got = _reference(x, torch.full((k, k), 1.0 / (k * k), dtype=torch.float64), "same", border)
    if got is None:
        return
    _assert_matches(y, *got, x.dtype, local=True, radius=2 * k, taps=k * k)


@settings(max_examples=80)
@given(case=images(), op=st.sampled_from(["sobel", "prewitt", "scharr"]),
       output=st.sampled_from(["x", "y", "magnitude"]), border=st.sampled_from(BORDERS),
       normalized=st.booleans())
def test_gradient_filters_match_reference(case, op, output, border, normalized):
    x, _ = case
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return
    kx = K.get_kernel(f"{op}_x", normalized=normalized, dtype=torch.float64)
    ky = K.get_kernel(f"{op}_y", normalized=normalized, dtype=torch.float64)
    gx = _reference(x, kx, "same", border)
    gy = _reference(x, ky, "same", border)
    if gx is None:
        return
    y = getattr(CF, op)(x, output=output, normalized=normalized, border=border)
    if output == "x":
        _assert_matches(y, *gx, x.dtype, local=True)
    elif output == "y":
        _assert_matches(y, *gy, x.dtype, local=True)
    else:
        ref = torch.sqrt(gx[0] ** 2 + gy[0] ** 2)
        _assert_matches(y, ref, gx[1] + gy[1], x.dtype, local=True)


@st.composite
def conv_args(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    stride = draw(st.sampled_from([1, 2, (1, 2)]))
    dilation = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from([0, 1, (2, 1), "valid"]))
    return groups, cin, cout, k, stride, dilation, padding


@settings(max_examples=120)
@given(case=images(max_side=20), args=conv_args(), bias=st.booleans())
def test_fft_conv2d_matches_conv2d(case, args, bias):
    x, g = case
    groups, cin, cout, k, stride, dilation, padding = args
    x = x[:, :1].expand(-1, cin, -1, -1)  # the drawn planes, as many channels as the layer needs
    w = torch.randn(cout, cin // groups, *k, generator=g, dtype=torch.float64).to(x.dtype)
    b = torch.randn(cout, generator=g, dtype=torch.float64).to(x.dtype) if bias else None
    try:
        ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation, groups)
    except RuntimeError:
        with pytest.raises((RuntimeError, ValueError)):
            fft_conv2d(x, w, b, stride, padding, dilation, groups)
        return
    y = fft_conv2d(x, w, b, stride, padding, dilation, groups)
    mag = F.conv2d(_finite(x).abs(), w.double().abs(), None if b is None else b.double().abs(), stride, padding, dilation, groups)
    norms = float(_finite(x).norm() * w.double().norm())
    _assert_matches(y, ref, mag, x.dtype, local=False, norms=norms)
    layer = FFTConv2d(cin, cout, k, stride, padding, dilation, groups, bias, dtype=x.dtype)
    plain = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias, dtype=x.dtype)
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        finite_x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        ref = plain.double()(finite_x.double())
        norms = float(finite_x.double().norm() * w.double().norm()) + float(layer.bias.abs().sum() if bias else 0)
        _assert_matches(layer(finite_x), ref, ref.abs(), x.dtype, local=False, norms=norms)


@settings(max_examples=60)
@given(n=st.integers(1, 40), k=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       padding=st.sampled_from([0, 3, "same", "valid"]), bad=st.sampled_from([None, "nan", "inf"]))
def test_fft_conv1d_non_finite(n, k, seed, padding, bad):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, n, generator=g, dtype=torch.float64)
    if bad:
        x[0, 1, int(torch.randint(n, (1,), generator=g))] = float(bad)
    w = torch.randn(4, 3, k, generator=g, dtype=torch.float64)
    try:
        ref = F.conv1d(x, w, padding=padding)
    except RuntimeError:
        with pytest.raises((RuntimeError, ValueError)):
            fft_conv1d(x, w, padding=padding)
        return
    y = fft_conv1d(x, w, padding=padding)
    mag = F.conv1d(_finite(x).abs(), w.abs(), padding=padding)
    norms = float(_finite(x).norm() * w.norm())
    _assert_matches(y.unsqueeze(-1), ref.unsqueeze(-1), mag.unsqueeze(-1), torch.float64, local=False, norms=norms)


GARBAGE = [None, "bogus", -1, 0, 2.5, float("nan"), float("inf"), (3,), (1, 2, 3), [], True, torch.ones(2)]


@settings(max_examples=200)
@given(fn=st.sampled_from(["box_blur2d", "gaussian_blur2d", "sobel", "laplacian", "sharpen", "filter2d", "correlate2d"]),
       arg=st.sampled_from(["size", "mode", "border", "method", "input"]),
       value=st.sampled_from(GARBAGE + BAD_CHOICES))
def test_bad_arguments_raise_clear_errors(fn, arg, value):
    """Garbage in any argument: a ValueError or TypeError with a message, or a valid result."""
    x = torch.rand(1, 2, 9, 9)
    kwargs = {}
    if arg == "input":
        x = value
    elif arg == "size":
        kwargs = {"box_blur2d": {"kernel_size": value}, "gaussian_blur2d": {"sigma": value}}.get(fn, {"kernel": value})
        if fn in ("sobel", "laplacian", "sharpen"):
            kwargs = {"eps": value} if fn == "sobel" else {"mode": value}
    else:
        kwargs = {arg: value}
    func = getattr(CF, fn)
    if fn == "gaussian_blur2d":
        kwargs.setdefault("sigma", 1.0)
    if fn in ("filter2d", "correlate2d"):
        kwargs.setdefault("kernel", torch.rand(3, 3))
    try:
        y = func(x, **kwargs)
    except (ValueError, TypeError) as err:
        assert len(str(err)) > 10
        return
    assert isinstance(y, torch.Tensor) and torch.isfinite(y).all()
