"""One default border for every fixed filter ("reflect": OpenCV's BORDER_REFLECT_101, kornia's
default), and scipy.signal's defaults for the scipy-named functions."""

import numpy as np
import pytest
import torch

from cnnconv import edges as E
from cnnconv import filters as L
from cnnconv import filters3d as L3
from cnnconv import functional as CF
from cnnconv import functional3d as CF3
from cnnconv import kernels as K
from cnnconv import parametric as P

ndi = pytest.importorskip("scipy.ndimage")
sps = pytest.importorskip("scipy.signal")

KERNEL = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [1.0, 3.0, -2.0]])
KERNEL3 = torch.rand(3, 3, 3) - 0.5

# name -> (default call, call with an explicit border); images (2, 3, 11, 12), volumes (2, 9, 10, 11)
FILTERS_2D = {
    "filter2d": (lambda x: CF.filter2d(x, KERNEL), lambda x, b: CF.filter2d(x, KERNEL, border=b)),
    "Filter2d": (lambda x: L.Filter2d(KERNEL)(x), lambda x, b: L.Filter2d(KERNEL, border=b)(x)),
    "box_blur2d": (lambda x: CF.box_blur2d(x, 5), lambda x, b: CF.box_blur2d(x, 5, border=b)),
    "BoxBlur": (lambda x: L.BoxBlur(5)(x), lambda x, b: L.BoxBlur(5, border=b)(x)),
    "gaussian_blur2d": (lambda x: CF.gaussian_blur2d(x, 1.3), lambda x, b: CF.gaussian_blur2d(x, 1.3, border=b)),
    "GaussianBlur": (lambda x: L.GaussianBlur(1.3)(x), lambda x, b: L.GaussianBlur(1.3, border=b)(x)),
    "sobel": (lambda x: CF.sobel(x, "xy"), lambda x, b: CF.sobel(x, "xy", border=b)),
    "prewitt": (lambda x: CF.prewitt(x), lambda x, b: CF.prewitt(x, border=b)),
    "scharr": (lambda x: CF.scharr(x, "x"), lambda x, b: CF.scharr(x, "x", border=b)),
    "Sobel": (lambda x: L.Sobel("xy")(x), lambda x, b: L.Sobel("xy", border=b)(x)),
    "laplacian": (lambda x: CF.laplacian(x), lambda x, b: CF.laplacian(x, border=b)),
    "Laplacian": (lambda x: L.Laplacian()(x), lambda x, b: L.Laplacian(border=b)(x)),
    "sharpen": (lambda x: CF.sharpen(x), lambda x, b: CF.sharpen(x, border=b)),
    "Sharpen": (lambda x: L.Sharpen()(x), lambda x, b: L.Sharpen(border=b)(x)),
    "spatial_gradient": (lambda x: CF.spatial_gradient(x), lambda x, b: CF.spatial_gradient(x, border=b)),
    "GradientFilter": (lambda x: E.GradientFilter(in_channels=3)(x), lambda x, b: E.GradientFilter(in_channels=3, border=b)(x)),
    "LearnableGaussianBlur": (lambda x: P.LearnableGaussianBlur(3, 1.2, 7)(x), lambda x, b: P.LearnableGaussianBlur(3, 1.2, 7, border=b)(x)),
    "LearnableGaussianDerivative": (lambda x: P.LearnableGaussianDerivative(3, 1.2)(x), lambda x, b: P.LearnableGaussianDerivative(3, 1.2, border=b)(x)),
    "gaussian_blur": (lambda x: P.gaussian_blur(x, 1.2, 7), lambda x, b: P.gaussian_blur(x, 1.2, 7, border=b)),
}

FILTERS_3D = {
    "filter3d": (lambda x: CF3.filter3d(x, KERNEL3), lambda x, b: CF3.filter3d(x, KERNEL3, border=b)),
    "Filter3d": (lambda x: L3.Filter3d(KERNEL3)(x), lambda x, b: L3.Filter3d(KERNEL3, border=b)(x)),
    "box_blur3d": (lambda x: CF3.box_blur3d(x, 3), lambda x, b: CF3.box_blur3d(x, 3, border=b)),
    "BoxBlur3d": (lambda x: L3.BoxBlur3d(3)(x), lambda x, b: L3.BoxBlur3d(3, border=b)(x)),
    "gaussian_blur3d": (lambda x: CF3.gaussian_blur3d(x, 1.0), lambda x, b: CF3.gaussian_blur3d(x, 1.0, border=b)),
    "sobel3d": (lambda x: CF3.sobel3d(x), lambda x, b: CF3.sobel3d(x, border=b)),
    "Sobel3d": (lambda x: L3.Sobel3d()(x), lambda x, b: L3.Sobel3d(border=b)(x)),
    "spatial_gradient3d": (lambda x: CF3.spatial_gradient3d(x), lambda x, b: CF3.spatial_gradient3d(x, border=b)),
    "laplacian3d": (lambda x: CF3.laplacian3d(x), lambda x, b: CF3.laplacian3d(x, border=b)),
    "Laplacian3d": (lambda x: L3.Laplacian3d()(x), lambda x, b: L3.Laplacian3d(border=b)(x)),
}


def _check_default_is_reflect(default, explicit, x):
    y = default(x)
    torch.testing.assert_close(y, explicit(x, "reflect"))
    for other in ("zeros", "replicate"):  # the border shows in the result
        assert not torch.allclose(y, explicit(x, other), atol=1e-4), other


@pytest.mark.parametrize("name", sorted(FILTERS_2D))
def test_2d_filters_default_to_reflect(name):
    with torch.no_grad():
        _check_default_is_reflect(*FILTERS_2D[name], torch.randn(2, 3, 11, 12))


@pytest.mark.parametrize("name", sorted(FILTERS_3D))
def test_3d_filters_default_to_reflect(name):
    _check_default_is_reflect(*FILTERS_3D[name], torch.randn(2, 9, 10, 11))


def test_default_border_is_opencv_and_scipy_mirror():
    """The shared default against independent libraries: scipy.ndimage ``mirror`` and OpenCV's
    default border (BORDER_REFLECT_101)."""
    cv2 = pytest.importorskip("cv2")
    x = np.random.default_rng(3).standard_normal((17, 19))
    t = torch.from_numpy(x)
    k = KERNEL.double()
    np.testing.assert_allclose(CF.filter2d(t, k).numpy(), ndi.correlate(x, k.numpy(), mode="mirror"), atol=1e-10)
    np.testing.assert_allclose(L.Filter2d(k)(t).numpy(), cv2.filter2D(x, -1, k.numpy()), atol=1e-10)
    np.testing.assert_allclose(CF.box_blur2d(t, 5).numpy(), cv2.blur(x, (5, 5)), atol=1e-10)
    np.testing.assert_allclose(CF.sobel(t, "x").numpy(), cv2.Sobel(x, cv2.CV_64F, 1, 0, ksize=3), atol=1e-10)
    gx = ndi.correlate(x, K.sobel_x(dtype=torch.float64).numpy() / 8, mode="mirror")
    np.testing.assert_allclose(CF.spatial_gradient(t)[0].numpy(), gx, atol=1e-10)


def test_scipy_named_2d_functions_take_scipy_signal_defaults():
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal((9, 11)), rng.standard_normal((4, 3))
    t, tk = torch.from_numpy(x), torch.from_numpy(k)
    np.testing.assert_allclose(CF.correlate2d(t, tk).numpy(), sps.correlate2d(x, k), atol=1e-10)
    np.testing.assert_allclose(CF.convolve2d(t, tk).numpy(), sps.convolve2d(x, k), atol=1e-10)


def test_scipy_named_1d_functions_take_scipy_signal_defaults():
    rng = np.random.default_rng(5)
    x, k = rng.standard_normal(13), rng.standard_normal(4)
    t, tk = torch.from_numpy(x), torch.from_numpy(k)
    np.testing.assert_allclose(CF.correlate1d(t, tk).numpy(), sps.correlate(x, k), atol=1e-10)
    np.testing.assert_allclose(CF.convolve1d(t, tk).numpy(), sps.convolve(x, k), atol=1e-10)


def test_scipy_named_3d_functions_take_scipy_signal_defaults():
    rng = np.random.default_rng(6)
    x, k = rng.standard_normal((5, 6, 7)), rng.standard_normal((2, 3, 4))
    t, tk = torch.from_numpy(x), torch.from_numpy(k)
    np.testing.assert_allclose(CF3.correlate3d(t, tk).numpy(), sps.correlate(x, k), atol=1e-10)
    np.testing.assert_allclose(CF3.convolve3d(t, tk).numpy(), sps.convolve(x, k), atol=1e-10)
