"""Tests for cnnconv.edges: gradients, NMS and hysteresis against kornia, OpenCV, scipy, skimage."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv import kernels
from cnnconv.edges import (
    GradientFilter,
    gradient_direction,
    gradient_kernels,
    gradient_magnitude,
    non_max_suppression,
    thin_edges,
)
from cnnconv.evaluation.edges import edge_map, hysteresis

cv2 = pytest.importorskip("cv2")
kornia = pytest.importorskip("kornia")
ndi = pytest.importorskip("scipy.ndimage")
canny = pytest.importorskip("skimage.feature").canny
_preprocess = pytest.importorskip("skimage.feature._canny")._preprocess
_nonmaximum_suppression_bilinear = pytest.importorskip("skimage.feature._canny_cy")._nonmaximum_suppression_bilinear
apply_hysteresis_threshold = pytest.importorskip("skimage.filters").apply_hysteresis_threshold

D = torch.float64


def _rand(*shape, seed=0, dtype=D):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _smooth_noise(h, w, seed, sigma=2.0):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random((h, w)), sigma)


def test_sobel_matches_kornia():
    x = _rand(2, 1, 20, 17, seed=1)
    g = GradientFilter("sobel", border="replicate", dtype=D)(x)
    ref = kornia.filters.spatial_gradient(x, mode="sobel", normalized=True)[:, 0]
    torch.testing.assert_close(g, ref)


def test_scharr_matches_opencv_and_prewitt_matches_conv2d():
    img = _smooth_noise(19, 23, seed=2, sigma=1.0)
    x = torch.from_numpy(img)[None, None]
    g = GradientFilter("scharr", normalized=False, border="replicate", dtype=D)(x)[0]
    gx = cv2.Scharr(img, cv2.CV_64F, 1, 0, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Scharr(img, cv2.CV_64F, 0, 1, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(g[0].numpy(), gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g[1].numpy(), gy, rtol=1e-12, atol=1e-12)
    p = GradientFilter("prewitt", normalized=False, border="reflect", dtype=D)(x)
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    k = torch.stack([kernels.prewitt_x(dtype=D), kernels.prewitt_y(dtype=D)])[:, None]
    torch.testing.assert_close(p, F.conv2d(xp, k))


def test_dog_matches_scipy_up_to_ramp_normalisation():
    img = _smooth_noise(30, 30, seed=3, sigma=0.5)
    x = torch.from_numpy(img)[None, None]
    sigma = 1.5
    g = GradientFilter("dog", sigma=sigma, border="replicate", dtype=D)(x)[0].numpy()
    sx = ndi.gaussian_filter(img, sigma, order=(0, 1), mode="nearest", truncate=4.0)
    sy = ndi.gaussian_filter(img, sigma, order=(1, 0), mode="nearest", truncate=4.0)
    # scipy's derivative has gain sum(x^2 phi)/sigma^2 on a ramp; ours has gain 1
    r = round(4 * sigma)
    t = np.arange(-r, r + 1.0)
    phi = np.exp(-(t**2) / (2 * sigma**2))
    phi /= phi.sum()
    c = sigma**2 / (t**2 * phi).sum()
    np.testing.assert_allclose(g[0], c * sx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g[1], c * sy, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel, size", [("sobel", 3), ("sobel", 5), ("scharr", None), ("prewitt", None), ("dog", None)])
def test_normalised_kernels_have_unit_ramp_gain(kernel, size):
    yy, xx = torch.meshgrid(torch.arange(30, dtype=D), torch.arange(30, dtype=D), indexing="ij")
    ramp = (0.3 * xx - 0.2 * yy)[None, None]
    f = GradientFilter(kernel, kernel_size=size, dtype=D)
    g = f(ramp)[..., 6:-6, 6:-6]
    torch.testing.assert_close(g[:, 0], torch.full_like(g[:, 0], 0.3))
    torch.testing.assert_close(g[:, 1], torch.full_like(g[:, 1], -0.2))
    if size == 3:  # 3x3: the same as OpenCV's / kornia's sum-of-absolute-values normalisation
        torch.testing.assert_close(f.weight[0, 0], kernels.sobel_x(normalized=True, dtype=D))
    d = gradient_direction(f(ramp))[..., 6:-6, 6:-6]
    torch.testing.assert_close(d, torch.full_like(d, math.atan2(-0.2, 0.3)))


def test_magnitude_and_direction_against_numpy():
    g = torch.randn(2, 2, 9, 8, generator=torch.Generator().manual_seed(4), dtype=D)
    m = gradient_magnitude(g, eps=0.0).numpy()
    np.testing.assert_allclose(m[:, 0], np.hypot(g[:, 0].numpy(), g[:, 1].numpy()), rtol=1e-14)
    d = gradient_direction(g).numpy()
    np.testing.assert_allclose(d[:, 0], np.arctan2(g[:, 1].numpy(), g[:, 0].numpy()), rtol=1e-14)
    # intensity growing downwards points at +pi/2 (rows grow downwards)
    x = torch.arange(10, dtype=D).reshape(1, 1, 10, 1).expand(1, 1, 10, 10)
    assert torch.allclose(GradientFilter(dtype=D).direction(x)[..., 3:-3, 3:-3], torch.tensor(math.pi / 2, dtype=D))


def test_magnitude_is_differentiable_at_zero():
    g = torch.zeros(1, 2, 3, 3, dtype=D, requires_grad=True)
    gradient_magnitude(g).sum().backward()
    assert torch.isfinite(g.grad).all() and (g.grad == 0).all()
    g2 = torch.randn(1, 2, 4, 4, dtype=D, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    assert torch.autograd.gradcheck(gradient_magnitude, (g2,))


def test_colour_modes():
    x = _rand(2, 3, 12, 11, seed=6)
    per = torch.stack([GradientFilter(dtype=D)(x[:, c : c + 1]) for c in range(3)], 1)  # (B,3,2,H,W)
    gsum = GradientFilter(in_channels=3, color="sum", dtype=D)(x)
    torch.testing.assert_close(gsum, GradientFilter(dtype=D)(x.sum(1, keepdim=True)))
    torch.testing.assert_close(GradientFilter(in_channels=3, color="mean", dtype=D)(x), per.mean(1))
    gmax = GradientFilter(in_channels=3, color="max", dtype=D)(x).numpy()
    p = per.numpy()
    mag = (p**2).sum(2)
    for b in range(2):
        for i in range(12):
            for j in range(11):
                c = int(np.argmax(mag[b, :, i, j]))
                np.testing.assert_array_equal(gmax[b, :, i, j], p[b, c, :, i, j])


def test_learnable_and_fixed_storage():
    fixed = GradientFilter("sobel")
    assert "weight" not in fixed.state_dict() and len(list(fixed.parameters())) == 0
    assert fixed.double().weight.dtype == D
    learn = GradientFilter("sobel", learnable=True)
    assert isinstance(learn.weight, torch.nn.Parameter)
    learn.magnitude(_rand(1, 1, 8, 8, seed=7, dtype=torch.float32)).sum().backward()
    assert learn.weight.grad is not None and learn.weight.grad.abs().sum() > 0
    pair = (torch.randn(5, 5), torch.randn(5, 5))
    tf = GradientFilter(pair)
    torch.testing.assert_close(tf.weight[:, 0], torch.stack(pair))
    assert "kernel='tensor'" in repr(tf) and "learnable=False" in repr(fixed)


def _skimage_inputs(img, sigma):
    smoothed, eroded = _preprocess(img, None, sigma, "constant", 0.0)
    isobel = ndi.sobel(smoothed, axis=0)
    jsobel = ndi.sobel(smoothed, axis=1)
    mag = np.hypot(isobel, jsobel)
    return smoothed, isobel, jsobel, mag, eroded


@pytest.mark.parametrize("seed", [8, 9])
def test_nms_matches_skimage_internal(seed):
    img = _smooth_noise(64, 72, seed, sigma=0.0)
    _, isobel, jsobel, mag, eroded = _skimage_inputs(img, 2.0)
    ref = _nonmaximum_suppression_bilinear(isobel, jsobel, mag, eroded.astype(np.uint8), 0.0)
    m = torch.from_numpy(mag)[None, None]
    d = torch.from_numpy(np.arctan2(isobel, jsobel))[None, None]
    ours = non_max_suppression(m, d, keep_ties=True)[0, 0].numpy()
    inner = (slice(1, -1), slice(1, -1))
    mismatch = ((ours[inner] > 0) != (ref[inner] > 0)).sum()
    assert mismatch == 0, mismatch
    assert (ref[inner] > 0).sum() > 200  # the test image has many edge pixels
    # the default (ties broken) keeps a subset
    strict = non_max_suppression(m, d)[0, 0].numpy()
    assert ((strict > 0) & ~(ours > 0)).sum() == 0


def test_nms_and_hysteresis_reproduce_skimage_canny():
    img = _smooth_noise(80, 80, seed=10, sigma=1.0)
    img[20:60, 25:55] += 0.5
    sigma, low, high = 1.5, 0.02, 0.06
    expected = canny(img, sigma=sigma, low_threshold=low, high_threshold=high)
    _, isobel, jsobel, mag, eroded = _skimage_inputs(img, sigma)
    m = torch.from_numpy(mag)[None, None]
    d = torch.from_numpy(np.arctan2(isobel, jsobel))[None, None]
    nms = non_max_suppression(m, d, keep_ties=True) * torch.from_numpy(eroded)  # skimage skips the border
    ours = hysteresis(nms, low, high, connectivity=8)[0, 0].numpy()
    assert expected.sum() > 100
    np.testing.assert_array_equal(ours, expected)


def test_step_edge_is_one_pixel_thin_at_the_boundary():
    x = torch.zeros(1, 1, 24, 30, dtype=D)
    x[..., 13:] = 1.0  # boundary between columns 12 and 13
    nms = GradientFilter(dtype=D).thin(x.transpose(-1, -2))  # horizontal boundary too
    for img in (x, x.transpose(-1, -2)):
        e = GradientFilter(dtype=D).thin(img)[0, 0] > 0.1
        rows_or_cols = e.sum(1) if img is x else e.sum(0)
        assert (rows_or_cols == 1).all()
    e = GradientFilter(dtype=D).thin(x)[0, 0] > 0.1
    assert set(e.nonzero()[:, 1].tolist()) == {13}
    assert nms.shape == (1, 1, 30, 24)
    # scikit-image keeps both pixels of the exact tie
    g = GradientFilter(dtype=D)(x)
    both = non_max_suppression(gradient_magnitude(g), gradient_direction(g), keep_ties=True)[0, 0] > 0.1
    assert set(both.nonzero()[:, 1].tolist()) == {12, 13}


def test_disc_edges_are_thin_and_on_the_circle():
    h = w = 64
    cy, cx, r = 31.3, 32.6, 18.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # anti-aliased disc (8x supersampling), then a light blur
    sub = np.zeros((h, w))
    for dy in (np.arange(8) + 0.5) / 8 - 0.5:
        for dx in (np.arange(8) + 0.5) / 8 - 0.5:
            sub += np.hypot(yy + dy - cy, xx + dx - cx) < r
    img = torch.from_numpy(sub / 64)[None, None]
    f = GradientFilter("dog", sigma=1.0, dtype=D)
    grad = f(img)
    nms = thin_edges(grad)[0, 0]
    edge = (nms > 0.2 * nms.max()).numpy()
    ys, xs = np.nonzero(edge)
    dist = np.hypot(ys - cy, xs - cx)
    assert np.abs(dist - r).max() <= 1.0  # located at the true boundary
    # every direction around the circle is covered
    ang = np.arctan2(ys - cy, xs - cx)
    assert len(np.unique(np.floor((ang + np.pi) / (2 * np.pi) * 72))) == 72
    # one pixel thin: no 2x2 block of edge pixels (a two-pixel-wide ring has them everywhere),
    # and fewer pixels than a 4-connected ring (8r); an 8-connected ring has 4 sqrt(2) r.
    blocks = edge[:-1, :-1] & edge[1:, :-1] & edge[:-1, 1:] & edge[1:, 1:]
    assert blocks.sum() == 0
    assert 4 * math.sqrt(2) * r <= edge.sum() <= 8 * r
    # about as many pixels as scikit-image's Canny finds on the same disc
    ref = canny(sub / 64, sigma=1.0, low_threshold=0.05, high_threshold=0.1)
    assert abs(int(edge.sum()) - int(ref.sum())) <= 0.1 * ref.sum()


@pytest.mark.parametrize("seed", [11, 12])
def test_hysteresis_matches_skimage(seed):
    img = _smooth_noise(50, 60, seed, sigma=1.5)
    lo, hi = np.quantile(img, [0.5, 0.8])
    t = torch.from_numpy(img)[None, None]
    ref4 = apply_hysteresis_threshold(img, lo, hi)
    np.testing.assert_array_equal(hysteresis(t, lo, hi, connectivity=4)[0, 0].numpy(), ref4)
    # 8-connectivity oracle with scipy labels
    labels, _ = ndi.label(img > lo, np.ones((3, 3)))
    good = np.unique(labels[img > hi])
    ref8 = np.isin(labels, good[good > 0])
    np.testing.assert_array_equal(hysteresis(t, lo, hi)[0, 0].numpy(), ref8)
    assert ref8.sum() != ref4.sum() or ref8.sum() > 0


def test_hysteresis_batch_with_per_image_thresholds_and_long_snake():
    a = torch.from_numpy(_smooth_noise(40, 40, 13, 1.5))
    b = torch.from_numpy(_smooth_noise(40, 40, 14, 1.5))
    x = torch.stack([a, b])[:, None]
    lo = torch.tensor([float(a.quantile(0.4)), float(b.quantile(0.6))], dtype=D)
    hi = torch.tensor([float(a.quantile(0.9)), float(b.quantile(0.95))], dtype=D)
    out = hysteresis(x, lo, hi)
    for i, img in enumerate((a, b)):
        labels, _ = ndi.label(img.numpy() > lo[i].item(), np.ones((3, 3)))
        good = np.unique(labels[img.numpy() > hi[i].item()])
        np.testing.assert_array_equal(out[i, 0].numpy(), np.isin(labels, good[good > 0]))
    # a serpentine path: one strong pixel at the far end lights up the whole snake
    s = torch.zeros(1, 1, 21, 21, dtype=D)
    for r in range(0, 21, 2):
        s[0, 0, r, :] = 0.5
        s[0, 0, r + 1 if r + 1 < 21 else r, (0 if (r // 2) % 2 else 20)] = 0.5
    s[0, 0, 20, 0] = 1.0
    lab, _ = ndi.label(s[0, 0].numpy() > 0.2, np.ones((3, 3)))
    np.testing.assert_array_equal(hysteresis(s, 0.2, 0.8)[0, 0].numpy(), lab == lab[20, 0])


def test_edge_map_square_and_batch_independence():
    x = torch.zeros(2, 1, 32, 32)
    x[0, :, 8:24, 8:24] = 1.0
    x[1] = _rand(1, 32, 32, seed=15, dtype=torch.float32)
    e = edge_map(x, sigma=1.0, low=0.2, high=0.5)
    assert e.dtype == torch.bool and e.shape == (2, 1, 32, 32)
    alone = edge_map(x[:1], sigma=1.0, low=0.2, high=0.5)
    assert torch.equal(e[:1], alone)
    ys, xs = e[0, 0].nonzero().T
    on_border = ((ys - 7.5).abs() <= 1) | ((ys - 23.5).abs() <= 1) | ((xs - 7.5).abs() <= 1) | ((xs - 23.5).abs() <= 1)
    assert on_border.all() and len(ys) >= 4 * 14
    no_hyst = edge_map(x[:1], sigma=1.0, high=0.5, use_hysteresis=False)
    assert (no_hyst & ~alone).sum() == 0
    colour = edge_map(x[:1].expand(1, 3, -1, -1), sigma=1.0, low=0.2, high=0.5)
    assert torch.equal(colour, alone)


def test_nms_passes_gradient_to_kept_pixels():
    m = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(16), dtype=D).requires_grad_(True)
    d = torch.zeros(1, 1, 8, 8, dtype=D)
    out = non_max_suppression(m, d)
    out.sum().backward()
    assert torch.equal(m.grad, (out > 0).to(D))


def test_errors():
    with pytest.raises(ValueError, match="kernel must be one of sobel, scharr, prewitt, dog or a tensor pair, got 'canny'"):
        GradientFilter("canny")
    with pytest.raises(TypeError, match="kernel must be a name or a pair"):
        GradientFilter(3)
    with pytest.raises(ValueError, match=r"a kernel tensor must have shape \(2, kh, kw\)"):
        gradient_kernels(torch.ones(3, 3, 3))
    with pytest.raises(ValueError, match="color must be one of max, sum, mean, got 'min'"):
        GradientFilter(color="min")
    with pytest.raises(ValueError, match=r"input must have shape \(B, 1, H, W\), got \(1, 3, 4, 4\)"):
        GradientFilter()(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"magnitude must have shape \(B, 1, H, W\)"):
        non_max_suppression(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="low must not exceed high"):
        hysteresis(torch.rand(1, 1, 4, 4), 0.5, 0.2)
    with pytest.raises(ValueError, match="connectivity must be 4 or 8, got 6"):
        hysteresis(torch.rand(1, 1, 4, 4), 0.2, 0.5, connectivity=6)
    with pytest.raises(ValueError, match=r"grad must have shape \(B, 2, H, W\)"):
        gradient_magnitude(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="sigma must be positive, got -1.0"):
        edge_map(torch.rand(1, 1, 8, 8), sigma=-1.0)
    with pytest.raises(ValueError, match="scharr kernels are 3x3, got kernel_size=5"):
        GradientFilter("scharr", kernel_size=5)


def test_empty_batch_and_channels_last():
    f = GradientFilter()
    assert f(torch.empty(0, 1, 8, 8)).shape == (0, 2, 8, 8)
    assert non_max_suppression(torch.empty(0, 1, 8, 8), torch.empty(0, 1, 8, 8)).shape == (0, 1, 8, 8)
    assert hysteresis(torch.empty(0, 1, 8, 8), 0.1, 0.2).shape == (0, 1, 8, 8)
    assert hysteresis(torch.rand(2, 1, 0, 5), 0.1, 0.2).shape == (2, 1, 0, 5)
    x = _rand(2, 1, 9, 9, seed=17, dtype=torch.float32)
    torch.testing.assert_close(f(x.to(memory_format=torch.channels_last)), f(x))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    density=st.floats(0.2, 0.8),
    connectivity=st.sampled_from([4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_hysteresis_random_masks_match_scipy_labels(h, w, density, connectivity, seed):
    rng = np.random.default_rng(seed)
    img = rng.random((2, h, w))
    lo, hi = 1 - density, 1 - density / 4
    out = hysteresis(torch.from_numpy(img)[:, None], lo, hi, connectivity=connectivity)
    structure = np.ones((3, 3)) if connectivity == 8 else None
    for b in range(2):
        labels, _ = ndi.label(img[b] > lo, structure)
        good = np.unique(labels[img[b] > hi])
        np.testing.assert_array_equal(out[b, 0].numpy(), np.isin(labels, good[good > 0]))


def test_edge_map_of_flat_image_is_empty():
    assert not edge_map(torch.full((2, 3, 16, 16), 0.7)).any()
    assert not edge_map(torch.full((1, 1, 16, 16), 0.7), sigma=1.5).any()
