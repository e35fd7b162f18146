"""The helpers that the 1-D, 2-D and 3-D functions and layers share."""

import inspect
import random

import pytest
import scipy.signal
import torch

import cnnconv.functional as F
import cnnconv.functional3d as F3
from cnnconv.filters import GaussianBlur, Sobel
from cnnconv.filters3d import GaussianBlur3d, Laplacian3d
from cnnconv.functional.blur import gaussian_factors, gaussian_settings

SIGNAL_FUNCTIONS = [
    (F.correlate1d, "cnnconv.functional.correlation"),
    (F.convolve1d, "cnnconv.functional.correlation"),
    (F.correlate2d, "cnnconv.functional.correlation"),
    (F.convolve2d, "cnnconv.functional.correlation"),
    (F3.correlate3d, "cnnconv.functional3d"),
    (F3.convolve3d, "cnnconv.functional3d"),
]


@pytest.mark.parametrize("fn, module", SIGNAL_FUNCTIONS)
def test_signal_functions_keep_their_names_signature_and_docstring(fn, module):
    assert fn.__module__ == module
    params = inspect.signature(fn).parameters
    assert list(params) == ["input", "kernel", "mode", "border", "method", "anchor"]
    assert [p.default for p in params.values()][2:] == ["full", "zeros", "auto", "signal"]
    assert params["method"].kind is inspect.Parameter.KEYWORD_ONLY
    doc = inspect.getdoc(fn)
    assert "{args}" not in doc and "Args:" in doc and "Example:" in doc


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_signal_functions_match_scipy(mode):
    g = torch.Generator().manual_seed(random.randrange(2**31))
    x = torch.rand(9, 7, 8, dtype=torch.float64, generator=g)
    k = torch.rand(3, 2, 4, dtype=torch.float64, generator=g)
    for fn, ref, xs, ks in [
        (F.correlate1d, scipy.signal.correlate, x[0, 0], k[0, 0]),
        (F.convolve1d, scipy.signal.convolve, x[0, 0], k[0, 0]),
        (F.correlate2d, scipy.signal.correlate2d, x[0], k[0]),
        (F.convolve2d, scipy.signal.convolve2d, x[0], k[0]),
        (F3.correlate3d, scipy.signal.correlate, x, k),
        (F3.convolve3d, scipy.signal.convolve, x, k),
    ]:
        expected = torch.from_numpy(ref(xs.numpy(), ks.numpy(), mode=mode))
        torch.testing.assert_close(fn(xs, ks, mode), expected, msg=fn.__name__)


def test_gaussian_settings_follow_scipy_sizes():
    for n in (2, 3):
        sigma = tuple(random.uniform(0.2, 5.0) for _ in range(n))
        truncate = random.uniform(1.0, 4.0)
        got_sigma, got_truncate, size = gaussian_settings(sigma, None, truncate, n)
        assert got_sigma == sigma and got_truncate == truncate
        assert size == tuple(2 * int(truncate * s + 0.5) + 1 for s in sigma)
        assert gaussian_settings(sigma[0], 7, truncate, n)[::2] == ((sigma[0],) * n, (7,) * n)
    with pytest.raises(ValueError, match="odd"):
        gaussian_settings(1.0, 4, 4.0, 2)


def test_gaussian_factors_are_normalised_gaussians():
    sigma, size = (random.uniform(0.5, 3.0), random.uniform(0.5, 3.0)), (9, 11)
    for f, s, k in zip(gaussian_factors(sigma, size, torch.float64, None), sigma, size):
        t = torch.arange(k, dtype=torch.float64) - k // 2
        expected = torch.exp(-0.5 * (t / s) ** 2)
        torch.testing.assert_close(f, expected / expected.sum())


@pytest.mark.parametrize(
    "make", [lambda: GaussianBlur(1.0), lambda: Sobel(), lambda: GaussianBlur3d(1.0), lambda: Laplacian3d()]
)
def test_refilled_buffers_keep_the_dtype_the_layer_was_moved_to(make):
    layer = make().double()
    layer.reset_parameters()
    assert all(b.dtype == torch.float64 for b in layer.buffers())
    x = torch.rand(1, 2, *([6] * (3 if "3d" in type(layer).__name__ else 2)), dtype=torch.float64)
    assert layer(x).dtype == torch.float64
