"""border="symmetric" (edge sample repeated: dcba|abcd|dcba) against scipy.ndimage mode="reflect"
and OpenCV BORDER_REFLECT, for every fixed filter, the layers and the padding helpers."""

import numpy as np
import pytest
import torch

from cnnconv import edges
from cnnconv import filters as L
from cnnconv import functional as CF
from cnnconv import kernels as K
from cnnconv.engines.padding import BORDERS, pad

cv2 = pytest.importorskip("cv2")
ndi = pytest.importorskip("scipy.ndimage")

D = torch.float64


def _ndi(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """scipy.ndimage correlation with mode="reflect" of every (H, W) plane, in float64."""
    planes = x.reshape(-1, *x.shape[-2:]).astype(np.float64)
    return np.stack([ndi.correlate(p, kernel.astype(np.float64), mode="reflect") for p in planes]).reshape(x.shape)


def _cv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D with BORDER_REFLECT (anchor at k // 2, as scipy.ndimage) of every plane."""
    planes = x.reshape(-1, *x.shape[-2:]).astype(np.float64)
    out = [cv2.filter2D(p, -1, kernel.astype(np.float64), borderType=cv2.BORDER_REFLECT) for p in planes]
    return np.stack(out).reshape(x.shape)


def test_symmetric_is_a_border():
    assert "symmetric" in BORDERS
    x = torch.arange(4.0).reshape(1, 4)
    assert pad(x, (0, 0, 3, 3), "symmetric").tolist() == [[2.0, 1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0]]


@pytest.mark.parametrize("pads", [(1, 2, 3, 0), (5, 4, 9, 13), (0, 0, 0, 20)])
def test_pad_matches_numpy_symmetric_also_wider_than_the_input(pads):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    top, bottom, left, right = pads
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="symmetric")
    np.testing.assert_array_equal(pad(x, pads, "symmetric").numpy(), ref)
    # OpenCV's BORDER_REFLECT is the same extension
    plane = x[0, 0].numpy()
    np.testing.assert_array_equal(cv2.copyMakeBorder(plane, top, bottom, left, right, cv2.BORDER_REFLECT), ref[0, 0])


FILTERS = [
    ("box", lambda x, **kw: CF.box_blur2d(x, (3, 4), **kw), lambda: K.box((3, 4), dtype=D)),
    ("box_large", lambda x, **kw: CF.box_blur2d(x, 19, **kw), lambda: K.box(19, dtype=D)),
    ("gaussian", lambda x, **kw: CF.gaussian_blur2d(x, 1.3, **kw), lambda: K.gaussian(1.3, dtype=D)),
    ("sobel_x", lambda x, **kw: CF.sobel(x, "x", **kw), lambda: K.sobel_x(dtype=D)),
    ("sobel_y", lambda x, **kw: CF.sobel(x, "y", **kw), lambda: K.sobel_y(dtype=D)),
    ("prewitt_x", lambda x, **kw: CF.prewitt(x, "x", **kw), lambda: K.prewitt_x(dtype=D)),
    ("scharr_y", lambda x, **kw: CF.scharr(x, "y", **kw), lambda: K.scharr_y(dtype=D)),
    ("laplacian", lambda x, **kw: CF.laplacian(x, 8, **kw), lambda: K.laplacian(8, dtype=D)),
    ("sharpen", lambda x, **kw: CF.sharpen(x, **kw), lambda: K.sharpen(dtype=D)),
    ("filter2d", lambda x, **kw: CF.filter2d(x, _RANDOM_KERNEL, **kw), lambda: _RANDOM_KERNEL),
    ("correlate2d", lambda x, **kw: CF.correlate2d(x, _RANDOM_KERNEL, "same", anchor="ndimage", **kw), lambda: _RANDOM_KERNEL),
]
_RANDOM_KERNEL = torch.randn(4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


@pytest.mark.parametrize("name, fn, kernel", FILTERS, ids=[f[0] for f in FILTERS])
@pytest.mark.parametrize("method", ["auto", "direct"])
def test_filters_match_scipy_and_opencv(name, fn, kernel, method):
    x = torch.randn(2, 3, 23, 29, dtype=torch.float64)
    k = kernel().to(torch.float64).numpy()
    y = fn(x, border="symmetric", method=method)
    np.testing.assert_allclose(y.numpy(), _ndi(x.numpy(), k), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(y.numpy(), _cv(x.numpy(), k), rtol=1e-9, atol=1e-9)
    # not the same as the other reflection
    assert not torch.allclose(y, fn(x, border="reflect", method=method))


@pytest.mark.parametrize("name, fn, kernel", FILTERS, ids=[f[0] for f in FILTERS])
def test_filters_match_scipy_when_the_kernel_is_wider_than_the_input(name, fn, kernel):
    k = kernel().to(torch.float64).numpy()
    x = torch.randn(1, 2, max(1, k.shape[0] // 3), max(1, k.shape[1] // 4 + 1), dtype=torch.float64)
    y = fn(x, border="symmetric")
    np.testing.assert_allclose(y.numpy(), _ndi(x.numpy(), k), rtol=1e-9, atol=1e-9)


def test_float32_banded_gradient_and_magnitude():
    x = torch.rand(3, 2, 37, 41)
    gx, gy = (torch.from_numpy(_ndi(x.numpy(), k.numpy())) for k in (K.sobel_x(dtype=torch.float64), K.sobel_y(dtype=torch.float64)))
    torch.testing.assert_close(CF.sobel(x, "xy", border="symmetric").double(), torch.stack((gx, gy), -3), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(CF.sobel(x, border="symmetric").double(), torch.hypot(gx, gy), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer, kernel",
    [
        (lambda: L.BoxBlur(5, border="symmetric"), lambda: K.box(5, dtype=D)),
        (lambda: L.GaussianBlur(0.9, border="symmetric"), lambda: K.gaussian(0.9, dtype=D)),
        (lambda: L.Sobel("x", border="symmetric"), lambda: K.sobel_x(dtype=D)),
        (lambda: L.Prewitt("y", border="symmetric"), lambda: K.prewitt_y(dtype=D)),
        (lambda: L.Scharr("x", border="symmetric"), lambda: K.scharr_x(dtype=D)),
        (lambda: L.Laplacian(4, border="symmetric"), lambda: K.laplacian(4, dtype=D)),
        (lambda: L.Sharpen(border="symmetric"), lambda: K.sharpen(dtype=D)),
        (lambda: L.Filter2d(_RANDOM_KERNEL, border="symmetric"), lambda: _RANDOM_KERNEL),
    ],
)
def test_layers(layer, kernel):
    x = torch.randn(2, 3, 17, 16, dtype=torch.float64)
    y = layer().double()(x)
    np.testing.assert_allclose(y.numpy(), _ndi(x.numpy(), kernel().double().numpy()), rtol=1e-6, atol=1e-6)  # float32-built kernels


def test_edges_gradient_filter_accepts_symmetric():
    f = edges.GradientFilter("sobel", border="symmetric")
    x = torch.rand(1, 1, 12, 13, dtype=torch.float64)
    y = f.double()(x)
    assert torch.isfinite(y).all()
    assert not torch.allclose(y, edges.GradientFilter("sobel", border="reflect").double()(x))
