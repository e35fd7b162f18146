"""cnnconv.filters layers: module == functional, references, buffers, dtypes, layouts, compile."""

import numpy as np
import pytest
import torch

from cnnconv import filters as L
from cnnconv import functional as CF
from cnnconv import kernels as K

cv2 = pytest.importorskip("cv2")
ndi = pytest.importorskip("scipy.ndimage")

LAYERS = [
    (lambda: L.Filter2d(K.laplacian(8), border="reflect"), lambda x: CF.correlate2d(x, K.laplacian(8, dtype=x.dtype), "same", border="reflect")),
    (lambda: L.BoxBlur(5), lambda x: CF.box_blur2d(x, 5)),
    (lambda: L.GaussianBlur(1.2, border="replicate"), lambda x: CF.gaussian_blur2d(x, 1.2, border="replicate")),
    (lambda: L.Sobel("xy"), lambda x: CF.sobel(x, "xy")),
    (lambda: L.Prewitt("x", normalized=True), lambda x: CF.prewitt(x, "x", normalized=True)),
    (lambda: L.Scharr("magnitude", border="circular"), lambda x: CF.scharr(x, border="circular")),
    (lambda: L.Laplacian(4), lambda x: CF.laplacian(x, 4)),
    (lambda: L.Sharpen(mode="valid"), lambda x: CF.sharpen(x, mode="valid")),
]


@pytest.mark.parametrize("make, functional", LAYERS)
def test_module_equals_functional_float32_and_float64(make, functional):
    layer = make()
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(2, 3, 13, 12, dtype=dtype)
        y = layer(x)
        assert y.dtype == dtype
        torch.testing.assert_close(y, functional(x))


@pytest.mark.parametrize("make, functional", LAYERS)
def test_grayscale_colour_layouts_and_empty(make, functional):
    layer = make()
    x = torch.rand(2, 3, 12, 14)
    ref = functional(x)
    torch.testing.assert_close(layer(x.contiguous(memory_format=torch.channels_last)), ref)
    noncontig = torch.rand(2, 14, 3, 12).permute(0, 2, 3, 1)  # (2, 3, 12, 14), not contiguous
    assert not noncontig.is_contiguous()
    torch.testing.assert_close(layer(noncontig), functional(noncontig.contiguous()))
    torch.testing.assert_close(layer(x[0, 0]), functional(x[0, 0]))  # (H, W)
    torch.testing.assert_close(layer(x[1]), functional(x[1]))  # (C, H, W)
    empty = layer(torch.rand(0, 3, 12, 14))
    assert empty.shape == (0, *ref.shape[1:])


@pytest.mark.parametrize("make, functional", LAYERS)
def test_buffers_not_persistent_and_follow_to(make, functional):
    layer = make()
    assert len(layer.state_dict()) == 0
    assert len(list(layer.parameters())) == 0
    bufs = list(layer.buffers())
    assert bufs and all(b.dtype == torch.get_default_dtype() for b in bufs)
    layer = layer.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in layer.buffers())
    x = torch.rand(1, 2, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), functional(x))


@pytest.mark.parametrize("make, functional", LAYERS)
def test_autograd_through_input(make, functional):
    layer = make()
    x = torch.rand(1, 2, 8, 9, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(layer, (x,), fast_mode=True)


def test_reprs_list_every_argument():
    assert repr(L.BoxBlur(5)) == "BoxBlur(kernel_size=(5, 5), normalized=True, border='reflect', mode='same', method='auto')"
    assert repr(L.GaussianBlur((1.0, 2.0), (7, 9), "zeros", "valid", truncate=3.0, method="separable")) == (
        "GaussianBlur(sigma=(1.0, 2.0), kernel_size=(7, 9), truncate=3.0, border='zeros', mode='valid', method='separable')"
    )
    assert repr(L.Sobel("direction", True, "replicate", "full", eps=1e-6)) == (
        "Sobel(output='direction', normalized=True, eps=1e-06, border='replicate', mode='full', method='auto')"
    )
    assert repr(L.Prewitt()) == "Prewitt(output='magnitude', normalized=False, eps=0.0, border='reflect', mode='same', method='auto')"
    assert repr(L.Scharr("x")) == "Scharr(output='x', normalized=False, eps=0.0, border='reflect', mode='same', method='auto')"
    assert repr(L.Laplacian(8, True)) == "Laplacian(neighbours=8, normalized=True, border='reflect', mode='same', method='auto')"
    assert repr(L.Sharpen("circular")) == "Sharpen(border='circular', mode='same', method='auto')"
    assert repr(L.Filter2d("gaussian", sigma=1.0)) == (
        "Filter2d(kernel='gaussian', kernel_shape=(9, 9), sigma=1.0, border='reflect', mode='same', method='auto')"
    )
    assert repr(L.Filter2d(torch.ones(2, 3, 3), "valid", "reflect", method="direct")) == (
        "Filter2d(kernel=tensor, kernel_shape=(2, 3, 3), border='reflect', mode='valid', method='direct')"
    )


def test_layers_match_libraries():
    rng = np.random.default_rng(3)
    x = rng.random((2, 3, 30, 28)).astype(np.float32)
    xt = torch.from_numpy(x)
    planes = x.reshape(-1, 30, 28)
    ref = np.stack([cv2.blur(p, (7, 7)) for p in planes]).reshape(x.shape)
    np.testing.assert_allclose(L.BoxBlur(7)(xt).numpy(), ref, rtol=1e-5, atol=2e-6)
    ref = ndi.gaussian_filter(x.astype(np.float64), (0, 0, 1.5, 1.5), mode="mirror")
    np.testing.assert_allclose(L.GaussianBlur(1.5)(xt).numpy(), ref, rtol=1e-5, atol=2e-6)
    gx = np.stack([cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3) for p in planes]).reshape(x.shape)
    gy = np.stack([cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3) for p in planes]).reshape(x.shape)
    np.testing.assert_allclose(L.Sobel()(xt).numpy(), np.hypot(gx, gy), rtol=1e-5, atol=1e-5)
    ksh = K.sharpen().numpy()
    ref = np.stack([cv2.filter2D(p, -1, ksh) for p in planes]).reshape(x.shape)
    np.testing.assert_allclose(L.Sharpen()(xt).numpy(), ref, rtol=1e-5, atol=1e-5)
    per_channel = torch.stack([K.gaussian(1.0, size=5), torch.randn(5, 5), K.identity(5)])
    ref = np.stack([ndi.correlate(x[:, c].astype(np.float64), per_channel[c].double().numpy()[None], mode="mirror") for c in range(3)], axis=1)
    np.testing.assert_allclose(L.Filter2d(per_channel, border="reflect")(xt).numpy(), ref, rtol=1e-5, atol=2e-6)


def test_filter2d_layer_methods_agree():
    x = torch.rand(2, 3, 24, 25, dtype=torch.float64)
    k = K.gaussian(2.0, size=9, dtype=torch.float64)
    ref = L.Filter2d(k, border="reflect", method="direct")(x)
    for method in ("auto", "separable", "fft"):
        torch.testing.assert_close(L.Filter2d(k, border="reflect", method=method)(x), ref)
    torch.testing.assert_close(L.Filter2d(K.box(6), method="box")(x), L.Filter2d(K.box(6), method="direct")(x))


def test_torch_compile():
    model = torch.nn.Sequential(L.GaussianBlur(1.0), L.BoxBlur(5), L.Sobel())
    x = torch.rand(1, 3, 16, 16)
    compiled = torch.compile(model, backend="eager")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
