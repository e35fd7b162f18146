"""The banded gradient engine (cnnconv.engines.banded) against float64 scipy references and the
convolution engines, across bands, borders, modes and input layouts."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.engines import banded as _banded
from cnnconv import functional as CF
from cnnconv.functional.gradients import derivative_factors
from cnnconv import kernels as K

from test_functional import BORDERS, MODES, oracle


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few rows, so every image is cut into several bands and a short last one."""
    monkeypatch.setattr(_banded, "_BAND_ELEMENTS", 97)


def _gradient_oracle(x, smooth, diff, mode, border):
    kx = np.outer(smooth, diff)
    return oracle(x, kx, mode, border), oracle(x, kx.T, mode, border)


@settings(max_examples=200, deadline=None)
@given(
    terms=st.lists(st.integers(-3, 3), min_size=1, max_size=9),
    symmetric=st.sampled_from([None, "even", "odd"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_taps_equal_weighted_sum(terms, symmetric, seed):
    """Pair folding (equal and opposite weights) reproduces the plain weighted sum."""
    coeffs = [float(c) for c in terms]
    if symmetric:
        sign = 1.0 if symmetric == "even" else -1.0
        coeffs = coeffs + [sign * c for c in reversed(coeffs)]
    rng = np.random.default_rng(seed)
    xs = torch.from_numpy(rng.standard_normal((len(coeffs), 5, 7)))
    out = torch.empty(5, 7, dtype=torch.float64)
    _banded._taps(lambda i: xs[i], _banded._terms(coeffs), out)
    expected = sum(c * xs[i] for i, c in enumerate(coeffs))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("operator", ["sobel", "prewitt", "scharr"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("border", BORDERS)
def test_gradient_bands_match_scipy(operator, mode, border, small_bands, rng):
    x = rng.standard_normal((2, 3, 11, 9))
    s, d = derivative_factors(operator, False, torch.float64, "cpu")
    gx_ref, gy_ref = _gradient_oracle(x, s.numpy(), d.numpy(), mode, border)
    xt = torch.from_numpy(x)
    op = getattr(CF, operator)
    xy = op(xt, "xy", border=border, mode=mode)
    assert xy.shape == (2, 3, 2, *gx_ref.shape[-2:])
    np.testing.assert_allclose(xy[:, :, 0].numpy(), gx_ref, atol=1e-12)
    np.testing.assert_allclose(xy[:, :, 1].numpy(), gy_ref, atol=1e-12)
    np.testing.assert_allclose(op(xt, "x", border=border, mode=mode).numpy(), gx_ref, atol=1e-12)
    np.testing.assert_allclose(op(xt, "y", border=border, mode=mode).numpy(), gy_ref, atol=1e-12)
    np.testing.assert_allclose(op(xt, border=border, mode=mode).numpy(), np.hypot(gx_ref, gy_ref), atol=1e-12)
    np.testing.assert_allclose(
        op(xt, border=border, mode=mode, eps=0.25).numpy(), np.sqrt(gx_ref**2 + gy_ref**2 + 0.25), atol=1e-12
    )
    direction = op(xt, "direction", border=border, mode=mode).numpy()
    steep = np.hypot(gx_ref, gy_ref) > 1e-6  # atan2 of two rounding residues is arbitrary
    wrapped = np.angle(np.exp(1j * (direction - np.arctan2(gy_ref, gx_ref))))  # -pi and pi are one angle
    np.testing.assert_allclose(wrapped[steep], 0.0, atol=1e-10)


@pytest.mark.parametrize(
    "smooth, diff", [([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]), ([1.0, 4.0, 6.0, 4.0, 1.0], [-1.0, -2.0, 0.0, 2.0, 1.0])]
)
def test_float32_matches_the_convolution_engine_and_scipy(smooth, diff, small_bands):
    torch.manual_seed(0)
    x = torch.rand(3, 2, 37, 23)
    s, d = torch.tensor(smooth), torch.tensor(diff)
    ours = CF.apply_gradient(x, s, d, "xy", "reflect")
    conv = CF.apply_gradient(x, s, d, "xy", "reflect", method="direct")
    torch.testing.assert_close(ours, conv, rtol=1e-5, atol=1e-5)
    gx_ref, gy_ref = _gradient_oracle(x.double().numpy(), smooth, diff, "same", "reflect")
    np.testing.assert_allclose(ours[:, :, 0].numpy(), gx_ref, atol=1e-5)
    np.testing.assert_allclose(ours[:, :, 1].numpy(), gy_ref, atol=1e-5)
    if len(smooth) == 5:
        torch.testing.assert_close(torch.outer(s, d), K.sobel_x(5))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed", "sliced"])
def test_gradient_any_input_layout(layout, small_bands):
    torch.manual_seed(1)
    base = torch.randn(2, 3, 14, 14, dtype=torch.float64)
    x = {
        "contiguous": base,
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "transposed": base.transpose(-1, -2),
        "sliced": base[:, :, 1:12:2, ::3],
    }[layout]
    ref = CF.sobel(x.contiguous(), "xy", border="replicate", method="direct")
    out = CF.sobel(x, "xy", border="replicate")
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1), (1, 5), (4, 2, 2)])
@pytest.mark.parametrize("border", BORDERS)
def test_gradient_tiny_planes(shape, border):
    x = torch.randn(shape, dtype=torch.float64)
    for mode in ("same", "full"):
        gx_ref, gy_ref = _gradient_oracle(x.numpy(), [1.0, 2.0, 1.0], [-1.0, 0.0, 1.0], mode, border)
        out = CF.sobel(x, "xy", border=border, mode=mode)
        np.testing.assert_allclose(out.select(-3, 0).numpy(), gx_ref, atol=1e-12)
        np.testing.assert_allclose(out.select(-3, 1).numpy(), gy_ref, atol=1e-12)


def test_auto_uses_bands_only_without_autograd(monkeypatch):
    calls = []
    real = _banded.gradient

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(_banded, "gradient", spy)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    y = CF.sobel(x, "xy", border="reflect")
    assert calls == [x.shape]
    xg = x.clone().requires_grad_(True)
    yg = CF.sobel(xg, "xy", border="reflect")
    assert len(calls) == 1  # autograd input: the convolution engines
    torch.testing.assert_close(yg.detach(), y, rtol=0, atol=1e-12)
    CF.sobel(x, "xy", border="reflect", method="direct")
    CF.apply_gradient(x, torch.ones(9, dtype=torch.float64), torch.linspace(-1, 1, 9, dtype=torch.float64))
    assert len(calls) == 1  # an explicit method, and 9-tap factors: not banded
