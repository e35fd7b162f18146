"""cnnconv.functional and cnnconv.engines.padding against scipy.signal, scipy.ndimage, OpenCV, kornia,
torchvision, numpy and F.conv2d."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.engines import padding as P
from cnnconv import functional as CF
from cnnconv import kernels as K

cv2 = pytest.importorskip("cv2")
ndi = pytest.importorskip("scipy.ndimage")
ss = pytest.importorskip("scipy.signal")

NP_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
NDI_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap"}
CV_BORDER = {"zeros": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}
BORDERS = ["zeros", "reflect", "replicate", "circular"]
MODES = ["full", "same", "valid"]


def oracle(x, k, mode, border, before_rule="ndimage"):
    """float64 reference: numpy padding + scipy.signal.correlate2d(valid), one plane at a time.

    ``before_rule``: samples before the first output in ``same`` mode, ``k // 2`` ("ndimage")
    or ``(k - 1) // 2`` ("signal").
    """
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    kh, kw = k.shape[-2:]

    def pads(n):
        if mode == "valid":
            return (0, 0)
        if mode == "full":
            return (n - 1, n - 1)
        b = n // 2 if before_rule == "ndimage" else (n - 1) // 2
        return (b, n - 1 - b)

    lead = x.shape[:-2]
    planes = x.reshape(-1, *x.shape[-2:])
    chans = x.shape[-3] if x.ndim >= 3 else 1
    out = []
    for i, p in enumerate(planes):
        kk = k if k.ndim == 2 else k[i % chans]
        padded = np.pad(p, (pads(kh), pads(kw)), mode=NP_PAD[border])
        out.append(ss.correlate2d(padded, kk, "valid"))
    out = np.stack(out)
    return out.reshape(*lead, *out.shape[-2:])


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("border", BORDERS)
def test_pad_matches_numpy_even_when_wider_than_input(border):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    for pads in [(1, 2, 0, 3), (6, 9, 11, 7), (0, 0, 0, 0)]:
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), pads[:2], pads[2:]), mode=NP_PAD[border])
        np.testing.assert_array_equal(P.pad(x, pads, border).numpy(), ref)
    y = torch.randn(1, 6, dtype=torch.float64)  # a single row reflects onto itself
    np.testing.assert_array_equal(P.pad(y, (2, 2, 1, 1), border).numpy(), np.pad(y.numpy(), ((2, 2), (1, 1)), mode=NP_PAD[border]))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_output_padding_modes_and_anchors():
    assert P.output_padding(5, "same") == (2, 2, 2, 2)
    assert P.output_padding((4, 1), "same") == (2, 1, 0, 0)
    assert P.output_padding((4, 6), "same", anchor="torch") == (1, 2, 2, 3)
    assert P.output_padding((3, 4), "full") == (2, 2, 3, 3)
    assert P.output_padding((3, 4), "valid") == (0, 0, 0, 0)
    # torch anchor == F.conv2d(padding="same")
    x, w = torch.randn(1, 1, 9, 9), torch.randn(1, 1, 4, 2)
    t, b, l, r = P.output_padding((4, 2), "same", anchor="torch")
    torch.testing.assert_close(F.conv2d(F.pad(x, (l, r, t, b)), w), F.conv2d(x, w, padding="same"))


# --------------------------------------------------------------------------- scipy.signal


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ksize", [(3, 3), (4, 4), (2, 5), (1, 4), (5, 1)])
def test_correlate_convolve_match_scipy_signal(mode, ksize, rng):
    x = rng.standard_normal((13, 11))
    k = rng.standard_normal(ksize)
    xt, kt = torch.from_numpy(x), torch.from_numpy(k)
    np.testing.assert_allclose(CF.correlate2d(xt, kt, mode).numpy(), ss.correlate2d(x, k, mode), atol=1e-12)
    np.testing.assert_allclose(CF.convolve2d(xt, kt, mode).numpy(), ss.convolve2d(x, k, mode), atol=1e-12)
    # float32 agrees to float32 rounding
    y32 = CF.correlate2d(xt.float(), kt.float(), mode).double().numpy()
    np.testing.assert_allclose(y32, ss.correlate2d(x, k, mode), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["direct", "separable", "fft", "box"])
@pytest.mark.parametrize("mode", MODES)
def test_every_method_matches_scipy_signal(method, mode, rng):
    x = rng.standard_normal((2, 3, 17, 15))
    if method == "box":
        k = np.full((4, 5), 0.37)
    elif method == "separable":
        k = np.outer(rng.standard_normal(4), rng.standard_normal(5))
    else:
        k = rng.standard_normal((4, 5))
    y = CF.correlate2d(torch.from_numpy(x), torch.from_numpy(k), mode, method=method).numpy()
    ref = np.stack([[ss.correlate2d(p, k, mode) for p in b] for b in x])
    np.testing.assert_allclose(y, ref, atol=1e-10)
    y = CF.convolve2d(torch.from_numpy(x), torch.from_numpy(k), mode, method=method).numpy()
    ref = np.stack([[ss.convolve2d(p, k, mode) for p in b] for b in x])
    np.testing.assert_allclose(y, ref, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [3, 4])
def test_1d_matches_numpy_and_scipy(mode, k, rng):
    x = rng.standard_normal(20)
    w = rng.standard_normal(k)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    np.testing.assert_allclose(CF.convolve1d(xt, wt, mode).numpy(), np.convolve(x, w, mode), atol=1e-12)
    np.testing.assert_allclose(CF.correlate1d(xt, wt, mode).numpy(), ss.correlate(x, w, mode), atol=1e-12)
    # batched, per channel
    xb = rng.standard_normal((2, 3, 20))
    wb = rng.standard_normal((3, k))
    yb = CF.correlate1d(torch.from_numpy(xb), torch.from_numpy(wb), mode).numpy()
    ref = np.stack([[ss.correlate(xb[b, c], wb[c], mode) for c in range(3)] for b in range(2)])
    np.testing.assert_allclose(yb, ref, atol=1e-12)


@pytest.mark.parametrize("border", BORDERS)
def test_1d_borders_match_ndimage(border, rng):
    x = rng.standard_normal((3, 25))
    w = rng.standard_normal(4)
    y = CF.correlate1d(torch.from_numpy(x), torch.from_numpy(w), "same", border=border, anchor="ndimage").numpy()
    np.testing.assert_allclose(y, ndi.correlate1d(x, w, axis=-1, mode=NDI_MODE[border]), atol=1e-12)
    y = CF.convolve1d(torch.from_numpy(x), torch.from_numpy(w), "same", border=border, anchor="ndimage").numpy()
    np.testing.assert_allclose(y, ndi.convolve1d(x, w, axis=-1, mode=NDI_MODE[border]), atol=1e-12)


# --------------------------------------------------------------------------- borders


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("ksize", [(3, 3), (5, 3), (4, 4), (2, 3)])
def test_borders_match_ndimage(border, ksize, rng):
    x = rng.standard_normal((2, 3, 12, 14))
    k = rng.standard_normal(ksize)
    xt, kt = torch.from_numpy(x), torch.from_numpy(k)
    corr = CF.correlate2d(xt, kt, "same", border=border, anchor="ndimage").numpy()
    conv = CF.convolve2d(xt, kt, "same", border=border, anchor="ndimage").numpy()
    np.testing.assert_allclose(corr, ndi.correlate(x, k[None, None], mode=NDI_MODE[border]), atol=1e-12)
    np.testing.assert_allclose(conv, ndi.convolve(x, k[None, None], mode=NDI_MODE[border]), atol=1e-12)


@pytest.mark.parametrize("border", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("ksize", [(3, 3), (4, 4), (5, 2)])
def test_borders_match_opencv_filter2d(border, ksize, rng):
    x = rng.standard_normal((16, 13)).astype(np.float32)
    k = rng.standard_normal(ksize).astype(np.float32)
    ref = cv2.filter2D(x, -1, k, borderType=CV_BORDER[border])
    ours = CF.filter2d(torch.from_numpy(x), torch.from_numpy(k), border=border).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("border", BORDERS)
def test_every_mode_and_border_matches_padded_oracle(mode, border, rng):
    x = rng.standard_normal((2, 3, 9, 10))
    k = rng.standard_normal((3, 4, 3))  # per channel, even height
    y = CF.correlate2d(torch.from_numpy(x), torch.from_numpy(k), mode, border, anchor="ndimage").numpy()
    np.testing.assert_allclose(y, oracle(x, k, mode, border), atol=1e-12)


def test_shapes_grayscale_colour_and_per_channel(rng):
    x = rng.standard_normal((2, 3, 10, 12))
    k = rng.standard_normal((3, 3))
    for inp in (x[0, 0], x[0], x):
        y = CF.correlate2d(torch.from_numpy(inp), torch.from_numpy(k), "same")
        assert y.shape == inp.shape
        np.testing.assert_allclose(y.numpy(), oracle(inp, k, "same", "zeros"), atol=1e-12)
    kc = rng.standard_normal((3, 5, 3))
    y = CF.correlate2d(torch.from_numpy(x), torch.from_numpy(kc), "full")
    assert y.shape == (2, 3, 14, 14)
    np.testing.assert_allclose(y.numpy(), oracle(x, kc, "full", "zeros"), atol=1e-12)
    y = CF.correlate2d(torch.from_numpy(x[1]), torch.from_numpy(kc), "valid")
    assert y.shape == (3, 6, 10)


def test_separable_correlate_per_channel_and_given_factors(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 15, 16)))
    ky, kx = torch.from_numpy(rng.standard_normal((3, 5))), torch.from_numpy(rng.standard_normal((3, 4)))
    k2 = ky[:, :, None] * kx[:, None, :]
    for border in BORDERS:
        y = CF.separable_correlate2d(x, ky, kx, "same", border)
        torch.testing.assert_close(y, CF.filter2d(x, k2, "same", border, method="direct"))
    y = CF.separable_correlate2d(x, ky[0], kx[0], "full", "reflect")
    np.testing.assert_allclose(y.numpy(), oracle(x.numpy(), np.outer(ky[0], kx[0]), "full", "reflect"), atol=1e-12)


def test_auto_detects_structure_and_keeps_kernel_gradients(rng):
    x = torch.from_numpy(rng.standard_normal((1, 2, 20, 20)))
    for k in (K.box(7, dtype=torch.float64), K.gaussian(1.0, dtype=torch.float64), torch.from_numpy(rng.standard_normal((5, 5)))):
        torch.testing.assert_close(CF.filter2d(x, k, border="reflect"), CF.filter2d(x, k, border="reflect", method="direct"))
    k = torch.from_numpy(np.outer(rng.standard_normal(3), rng.standard_normal(3))).requires_grad_()
    CF.correlate2d(x, k, "same").sum().backward()
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1)), k.detach().expand(2, 1, 3, 3), groups=2)
    assert k.grad is not None and k.grad.shape == (3, 3)
    kk = k.detach().clone().requires_grad_()
    F.conv2d(F.pad(x, (1, 1, 1, 1)), kk.expand(2, 1, 3, 3), groups=2).sum().backward()
    torch.testing.assert_close(k.grad, kk.grad)
    assert ref.shape == (1, 2, 20, 20)


def test_box_long_windows_keep_float32_accuracy():
    x = torch.rand(1, 1, 700, 900) + 100.0  # large offset: an integral image would lose digits
    y = CF.box_blur2d(x, 101, border="reflect")
    ref = ndi.uniform_filter(x.double().numpy(), size=(1, 1, 101, 101), mode="mirror")
    np.testing.assert_allclose(y.double().numpy(), ref, rtol=2e-6, atol=0)


# --------------------------------------------------------------------------- filters vs libraries


@pytest.mark.parametrize("border", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("size", [(5, 5), (4, 6), (31, 31)])
def test_box_blur_matches_opencv_and_ndimage(border, size, rng):
    x = rng.random((2, 3, 40, 37)).astype(np.float32)
    y = CF.box_blur2d(torch.from_numpy(x), size, border=border).numpy()
    ref = np.stack([[cv2.blur(p, size[::-1], borderType=CV_BORDER[border]) for p in b] for b in x])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=2e-6)
    ref = ndi.uniform_filter(x.astype(np.float64), size=(1, 1, *size), mode=NDI_MODE[border])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=2e-6)
    s = CF.box_blur2d(torch.from_numpy(x), size, border=border, normalized=False).numpy()
    np.testing.assert_allclose(s, ref * size[0] * size[1], rtol=1e-5, atol=1e-4)


def test_box_blur_circular_matches_ndimage_wrap(rng):
    x = rng.random((3, 20, 25))
    y = CF.box_blur2d(torch.from_numpy(x), (7, 4), border="circular").numpy()
    np.testing.assert_allclose(y, ndi.uniform_filter(x, size=(1, 7, 4), mode="wrap"), atol=1e-12)


@pytest.mark.parametrize("border", BORDERS)
def test_gaussian_blur_matches_ndimage(border, rng):
    x = rng.random((2, 3, 30, 33))
    for sigma in (1.0, (0.8, 2.5)):
        y = CF.gaussian_blur2d(torch.from_numpy(x), sigma, border=border).numpy()
        s = sigma if isinstance(sigma, tuple) else (sigma, sigma)
        ref = ndi.gaussian_filter(x, sigma=(0, 0, *s), mode=NDI_MODE[border], truncate=4.0)
        np.testing.assert_allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("border", ["reflect", "replicate", "zeros"])
def test_gaussian_blur_matches_opencv_kornia_torchvision(border, rng):
    import kornia
    import torchvision.transforms.functional as TF

    x = rng.random((2, 3, 40, 45)).astype(np.float32)
    xt = torch.from_numpy(x)
    y = CF.gaussian_blur2d(xt, 2.0, kernel_size=13, border=border)
    ref = np.stack([[cv2.GaussianBlur(p, (13, 13), 2.0, borderType=CV_BORDER[border]) for p in b] for b in x])
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=2e-6)
    kb = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}[border]
    ref = kornia.filters.gaussian_blur2d(xt, (13, 9), (2.0, 1.5), border_type=kb)
    torch.testing.assert_close(CF.gaussian_blur2d(xt, (2.0, 1.5), (13, 9), border=border), ref, rtol=1e-5, atol=2e-6)
    if border == "reflect":  # torchvision pads with reflect and takes sizes as (x, y)
        ref = TF.gaussian_blur(xt, kernel_size=[9, 13], sigma=[1.5, 2.0])
        torch.testing.assert_close(CF.gaussian_blur2d(xt, (2.0, 1.5), (13, 9)), ref, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("border", ["zeros", "reflect", "replicate"])
def test_sobel_scharr_laplacian_sharpen_match_opencv(border, rng):
    x = rng.random((2, 3, 24, 21)).astype(np.float32)
    xt = torch.from_numpy(x)
    bt = CV_BORDER[border]
    planes = [p for b in x for p in b]

    def stack(fn):
        return np.stack([fn(p) for p in planes]).reshape(x.shape)

    gx = stack(lambda p: cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3, borderType=bt))
    gy = stack(lambda p: cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3, borderType=bt))
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(CF.sobel(xt, "x", border=border).numpy(), gx, **tol)
    np.testing.assert_allclose(CF.sobel(xt, "y", border=border).numpy(), gy, **tol)
    np.testing.assert_allclose(CF.sobel(xt, border=border).numpy(), np.hypot(gx, gy), **tol)
    np.testing.assert_allclose(CF.sobel(xt, "xy", border=border).numpy(), np.stack([gx, gy], axis=-3), **tol)
    d = CF.sobel(xt, "direction", border=border).numpy()
    defined = np.hypot(gx, gy) > 1e-3  # atan2(+-0, +-0) depends on the sign of zero
    np.testing.assert_allclose(np.cos(d)[defined], np.cos(np.arctan2(gy, gx))[defined], atol=1e-4)
    np.testing.assert_allclose(np.sin(d)[defined], np.sin(np.arctan2(gy, gx))[defined], atol=1e-4)
    sx = stack(lambda p: cv2.Scharr(p, cv2.CV_32F, 1, 0, borderType=bt))
    np.testing.assert_allclose(CF.scharr(xt, "x", border=border).numpy(), sx, rtol=1e-5, atol=1e-4)
    lap = stack(lambda p: cv2.Laplacian(p, cv2.CV_32F, ksize=1, borderType=bt))
    np.testing.assert_allclose(CF.laplacian(xt, 4, border=border).numpy(), lap, **tol)
    ksh = K.sharpen(dtype=torch.float32).numpy()
    sh = stack(lambda p: cv2.filter2D(p, -1, ksh, borderType=bt))
    np.testing.assert_allclose(CF.sharpen(xt, border=border).numpy(), sh, **tol)


@pytest.mark.parametrize("border", BORDERS)
def test_prewitt_matches_ndimage(border, rng):
    x = rng.random((3, 15, 16))
    # ndimage.prewitt(axis=-1) is the same x-derivative (it convolves a flipped [-1, 0, 1])
    ref = ndi.prewitt(x, axis=-1, mode=NDI_MODE[border])
    # ndimage.prewitt smooths along every other axis, including channels: filter planes alone
    ref = np.stack([ndi.prewitt(p, axis=-1, mode=NDI_MODE[border]) for p in x])
    np.testing.assert_allclose(CF.prewitt(torch.from_numpy(x), "x", border=border).numpy(), ref, atol=1e-12)
    ref = np.stack([ndi.prewitt(p, axis=0, mode=NDI_MODE[border]) for p in x])
    np.testing.assert_allclose(CF.prewitt(torch.from_numpy(x), "y", border=border).numpy(), ref, atol=1e-12)


def test_gradients_and_laplacian_match_kornia(rng):
    import kornia

    x = torch.from_numpy(rng.random((2, 3, 20, 22)).astype(np.float32))
    for normalized in (False, True):
        ref = kornia.filters.sobel(x, normalized=normalized, eps=1e-6)
        ours = CF.sobel(x, normalized=normalized, border="replicate", eps=1e-6)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    ref = kornia.filters.spatial_gradient(x, mode="sobel", normalized=True)
    torch.testing.assert_close(CF.spatial_gradient(x, border="replicate"), ref, rtol=1e-5, atol=1e-6)
    for normalized in (False, True):
        ref = kornia.filters.spatial_gradient(x, mode="diff", normalized=normalized)
        torch.testing.assert_close(CF.spatial_gradient(x, "diff", normalized, "replicate"), ref, rtol=1e-5, atol=1e-6)
    ref = kornia.filters.laplacian(x, 3, border_type="reflect", normalized=False)
    torch.testing.assert_close(CF.laplacian(x, 8), ref, rtol=1e-5, atol=1e-5)
    ref = kornia.filters.box_blur(x, (5, 7), border_type="reflect")
    torch.testing.assert_close(CF.box_blur2d(x, (5, 7)), ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- autograd


@pytest.mark.parametrize("method", ["direct", "separable", "box", "fft"])
def test_gradcheck_filter2d_methods(method):
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    if method == "box":
        k = torch.full((3, 2), 0.3, dtype=torch.float64)
    else:
        k = torch.outer(torch.rand(3, dtype=torch.float64), torch.rand(2, dtype=torch.float64))
    cases = [(mode, "zeros") for mode in MODES] + [("same", b) for b in BORDERS[1:]] + [("full", "reflect")]
    for mode, border in cases:
        torch.autograd.gradcheck(lambda t: CF.filter2d(t, k, mode, border, method=method), (x,), fast_mode=True)


def test_gradcheck_filters_and_kernel():
    x = torch.rand(2, 6, 7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: CF.sobel(t, "magnitude", border="circular"), (x,))
    torch.autograd.gradcheck(lambda t: CF.sobel(t, "direction", border="circular"), (x,))
    # corners under reflect have gx = gy = 0: a zero subgradient, not NaN
    g = torch.autograd.grad(CF.sobel(x, "magnitude").sum(), x)[0]
    assert bool(torch.isfinite(g).all())
    g = torch.autograd.grad(CF.sobel(x, "direction").sum(), x)[0]
    assert bool(torch.isfinite(g).all())
    torch.autograd.gradcheck(lambda t: CF.gaussian_blur2d(t, 1.0), (x,))
    torch.autograd.gradcheck(lambda t: CF.box_blur2d(t, 3), (x,))
    k = torch.rand(2, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t, w: CF.correlate2d(t, w, "full", "reflect"), (x, k))


# --------------------------------------------------------------------------- property-based


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.integers(1, 5),
    kw=st.integers(1, 5),
    channels=st.integers(1, 3),
    mode=st.sampled_from(MODES),
    border=st.sampled_from(BORDERS),
    kind=st.sampled_from(["dense", "rank1", "box"]),
    per_channel=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_hypothesis_shapes_modes_borders(h, w, kh, kw, channels, mode, border, kind, per_channel, seed):
    if mode == "valid" and (kh > h or kw > w):
        kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, h, w))
    kshape = (channels, kh, kw) if per_channel else (kh, kw)
    if kind == "dense":
        k = rng.standard_normal(kshape)
    elif kind == "rank1":
        k = rng.standard_normal(kshape[:-1])[..., None] * rng.standard_normal(kshape[:-2] + (kw,))[..., None, :]
    else:
        k = np.ones(kshape) * rng.standard_normal()
    y = CF.correlate2d(torch.from_numpy(x), torch.from_numpy(k), mode, border, anchor="ndimage")
    np.testing.assert_allclose(y.numpy(), oracle(x, k, mode, border), atol=1e-10)


# --------------------------------------------------------------------------- reusable workspace


def test_workspace_reuse_leaves_earlier_results_and_kernel_gradients_intact():
    torch.manual_seed(4)
    k = torch.randn(3, 3, dtype=torch.float64)
    x1, x2 = torch.randn(2, 2, 3, 20, 20, dtype=torch.float64)
    y1 = CF.filter2d(x1, k, border="reflect", method="direct")
    y2 = CF.filter2d(x2, k, border="reflect", method="direct")  # same shape: same buffer
    np.testing.assert_allclose(y1.numpy(), oracle(x1.numpy(), k.numpy(), "same", "reflect"), atol=1e-12)
    np.testing.assert_allclose(y2.numpy(), oracle(x2.numpy(), k.numpy(), "same", "reflect"), atol=1e-12)
    # A kernel being learned: autograd keeps the padded input of each call for the weight
    # gradient, so a later call must not overwrite it.
    kg = k.clone().requires_grad_(True)
    first = CF.filter2d(x1, kg, border="reflect", method="direct")
    CF.filter2d(x2, kg, border="reflect", method="direct")
    (grad,) = torch.autograd.grad(first.sum(), kg)
    xp = F.pad(x1.reshape(1, -1, 20, 20), (1, 1, 1, 1), mode="reflect")
    expected = torch.stack([xp[0, :, i : i + 20, j : j + 20].sum() for i in range(3) for j in range(3)]).reshape(3, 3)
    torch.testing.assert_close(grad, expected)


def test_workspace_is_per_thread():
    import threading

    torch.manual_seed(5)
    k = torch.randn(3, 3, dtype=torch.float64)
    xs = torch.randn(4, 2, 3, 64, 64, dtype=torch.float64)
    refs = [oracle(x.numpy(), k.numpy(), "same", "replicate") for x in xs]
    errors = []

    def work(i):
        for _ in range(20):
            y = CF.filter2d(xs[i], k, border="replicate", method="direct")
            errors.append(float(np.abs(y.numpy() - refs[i]).max()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 80 and max(errors) < 1e-12
    CF.clear_workspace()
    np.testing.assert_allclose(CF.filter2d(xs[0], k, border="replicate", method="direct").numpy(), refs[0], atol=1e-12)
