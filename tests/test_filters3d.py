"""3-D fixed filtering (cnnconv.functional3d, cnnconv.filters3d) against independent references:
scipy.ndimage / scipy.signal, float64 ``F.conv3d`` on a volume padded by ``numpy.pad``, kornia."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.engines import padding as _padding
from cnnconv import filters3d as L
from cnnconv import functional3d as F3

ndi = pytest.importorskip("scipy.ndimage")
sps = pytest.importorskip("scipy.signal")

# cnnconv border -> numpy.pad mode / scipy.ndimage mode (the borders either library can express)
NUMPY_BORDER = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap", "symmetric": "symmetric"}
NDIMAGE_BORDER = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap", "symmetric": "reflect"}
BORDERS = sorted(b for b in _padding.BORDERS if b in NUMPY_BORDER)
MODES = ["full", "same", "valid"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pads(k: int, mode: str) -> tuple[int, int]:
    """Padding before/after for scipy.signal sizes with scipy.ndimage's anchor (element k // 2)."""
    return {"full": (k - 1, k - 1), "valid": (0, 0), "same": (k // 2, k - 1 - k // 2)}[mode]


def _reference(x: torch.Tensor, kernel: torch.Tensor, mode: str = "same", border: str = "zeros") -> torch.Tensor:
    """float64 depthwise ``F.conv3d`` of ``(B, C, D, H, W)`` padded by numpy; kernel ``(kd, kh, kw)``
    or ``(C, kd, kh, kw)``."""
    xn = x.detach().double().cpu().numpy()
    width = ((0, 0), (0, 0)) + tuple(_pads(k, mode) for k in kernel.shape[-3:])
    xp = torch.from_numpy(np.pad(xn, width, mode=NUMPY_BORDER[border]))
    c = x.shape[1]
    w = kernel.detach().double().cpu().expand(c, *kernel.shape[-3:]).unsqueeze(1)
    return F.conv3d(xp, w, groups=c)


def _rank1(*sizes, dtype=torch.float64, channels=None):
    """Random rank-1 kernel and its factors (entries away from 0)."""
    lead = () if channels is None else (channels,)
    fs = [(torch.rand(*lead, k, dtype=dtype) + 0.5) * torch.where(torch.rand(*lead, k) < 0.3, -1.0, 1.0).to(dtype) for k in sizes]
    return fs[0][..., :, None, None] * fs[1][..., None, :, None] * fs[2][..., None, None, :], fs


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("border", BORDERS)
def test_pad3d_matches_numpy_including_wide_margins(border):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    for pads in [(1, 2, 0, 3, 2, 1), (0, 0, 1, 1, 0, 0), (5, 7, 6, 9, 4, 11)]:
        y = F3.pad3d(x, pads, border)
        ref = np.pad(x.numpy(), ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (pads[4], pads[5])), mode=NUMPY_BORDER[border])
        np.testing.assert_array_equal(y.numpy(), ref)


def test_pad3d_rejects_bad_pads_and_border():
    x = torch.rand(3, 3, 3)
    with pytest.raises(ValueError, match=r"pads must be six non-negative ints.*\(1, 1, 1, 1\)"):
        F3.pad3d(x, (1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"pads must be six.*-1"):
        F3.pad3d(x, (1, -1, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="border must be one of"):
        F3.pad3d(x, (1,) * 6, "mirror")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        F3.pad3d(torch.rand(3, 3), (1,) * 6)


# --------------------------------------------------------------------------- rank-1 structure


def test_separable_factors3d_recovers_rank1_and_rejects_others():
    k, _ = _rank1(3, 4, 5)
    kz, ky, kx = F3.separable_factors3d(k)
    torch.testing.assert_close(kz[:, None, None] * ky[:, None] * kx, k, rtol=1e-12, atol=0)
    kc, _ = _rank1(2, 3, 4, channels=3)
    kz, ky, kx = F3.separable_factors3d(kc.float())
    assert kz.shape == (3, 2) and ky.shape == (3, 3) and kx.shape == (3, 4) and kz.dtype == torch.float32
    torch.testing.assert_close(kz[..., :, None, None] * ky[..., None, :, None] * kx[..., None, None, :], kc.float())
    k2, _ = _rank1(3, 3, 3)
    assert F3.separable_factors3d(k + _rank1(3, 4, 5)[0]) is None  # rank 2
    # rank 1 between depth and plane, but the plane is not rank 1
    plane = torch.rand(4, 5, dtype=torch.float64)
    assert F3.separable_factors3d(torch.rand(3, 1, 1, dtype=torch.float64) * plane) is None
    # one channel of several not rank 1
    kc[1] = torch.rand(2, 3, 4, dtype=torch.float64)
    assert F3.separable_factors3d(kc) is None
    for bad in (float("nan"), float("inf")):
        kb = k2.clone()
        kb[1, 1, 1] = bad
        assert F3.separable_factors3d(kb) is None


def test_separable_factors3d_of_an_integer_kernel_are_floating_point():
    # sobel z kernel: [-1, 0, 1] x [1, 2, 1] x [1, 2, 1]; balancing the factors needs fractions
    s, d = torch.tensor([1, 2, 1]), torch.tensor([-1, 0, 1])
    k = d[:, None, None] * s[:, None] * s
    kz, ky, kx = F3.separable_factors3d(k)
    assert kz.dtype == ky.dtype == kx.dtype == torch.get_default_dtype()
    torch.testing.assert_close(kz[:, None, None] * ky[:, None] * kx, k.to(kz.dtype), rtol=0, atol=0)
    x = torch.randn(1, 1, 5, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(F3.filter3d(x, k, border="zeros", method="separable"), _reference(x, k.double()))


def test_non_finite_kernel_is_never_separable():
    k = torch.ones(3, 3, 3)
    k[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="rank-1 kernel"):
        F3.filter3d(torch.rand(1, 5, 5, 5), k, method="separable")
    with pytest.raises(ValueError, match="rank-1 kernel"):
        L.Filter3d(k, method="separable")


# --------------------------------------------------------------------------- correlate / convolve


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("size", [(3, 3, 3), (2, 4, 3), (1, 5, 2)])
def test_correlate_convolve3d_match_ndimage(border, size):
    x = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    k = torch.randn(*size, dtype=torch.float64)
    kn = k.numpy()[None, None]
    mode = NDIMAGE_BORDER[border]
    for method in ("direct", "auto"):
        y = F3.correlate3d(x, k, "same", border=border, anchor="ndimage", method=method)
        np.testing.assert_allclose(y.numpy(), ndi.correlate(x.numpy(), kn, mode=mode), rtol=1e-12, atol=1e-12)
        y = F3.convolve3d(x, k, "same", border=border, anchor="ndimage", method=method)
        np.testing.assert_allclose(y.numpy(), ndi.convolve(x.numpy(), kn, mode=mode), rtol=1e-12, atol=1e-12)
    # per-channel kernels
    kc = torch.randn(3, *size, dtype=torch.float64)
    y = F3.correlate3d(x, kc, "same", border=border, anchor="ndimage")
    for ch in range(3):
        np.testing.assert_allclose(y[:, ch].numpy(), ndi.correlate(x[:, ch].numpy(), kc[ch].numpy()[None], mode=mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(3, 3, 3), (2, 4, 3), (4, 1, 2)])
def test_correlate_convolve3d_match_scipy_signal(mode, size):
    x = torch.randn(5, 6, 7, dtype=torch.float64)
    k = torch.randn(*size, dtype=torch.float64)
    y = F3.correlate3d(x, k, mode)
    np.testing.assert_allclose(y.numpy(), sps.correlate(x.numpy(), k.numpy(), mode, method="direct"), rtol=1e-12, atol=1e-12)
    y = F3.convolve3d(x, k, mode)
    np.testing.assert_allclose(y.numpy(), sps.convolve(x.numpy(), k.numpy(), mode, method="direct"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_filter3d_methods_match_float64_conv3d(device, border, mode):
    k, factors = _rank1(3, 5, 4)
    x = torch.randn(2, 3, 7, 9, 8)
    ref = _reference(x, k, mode, border)
    for method in ("direct", "separable", "auto"):
        y = F3.filter3d(x.to(device), k.float().to(device), mode, border, method=method)
        assert y.dtype == torch.float32 and y.device.type == device and y.is_contiguous()
        torch.testing.assert_close(y.double().cpu(), ref, rtol=1e-5, atol=1e-5)
    y = F3.filter3d(x.to(device), None, mode, border, method="separable", factors=[f.to(device) for f in factors])
    torch.testing.assert_close(y.double().cpu(), ref, rtol=1e-5, atol=1e-5)
    # per-channel rank-1 kernels, float64
    kc, fc = _rank1(2, 3, 3, channels=3)
    ref = _reference(x, kc, mode, border)
    for method in ("direct", "separable"):
        y = F3.filter3d(x.double().to(device), kc.to(device), mode, border, method=method)
        torch.testing.assert_close(y.cpu(), ref, rtol=1e-12, atol=1e-12)


def test_kornia_filter3d_agrees_for_odd_kernels():
    kornia = pytest.importorskip("kornia")
    x = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    k = torch.randn(3, 5, 3, dtype=torch.float64)
    for border, kb in [("zeros", "constant"), ("reflect", "reflect"), ("replicate", "replicate"), ("circular", "circular")]:
        ref = kornia.filters.filter3d(x, k[None], border_type=kb)
        torch.testing.assert_close(F3.filter3d(x, k, border=border), ref)
        ref = kornia.filters.filter3d(x, k[None], border_type=kb, behaviour="conv")
        torch.testing.assert_close(F3.convolve3d(x, k, "same", border=border), ref)
    # even kernels: kornia anchors element (k - 1) // 2 on the output voxel
    k = torch.randn(2, 4, 3, dtype=torch.float64)
    ref = kornia.filters.filter3d(x, k[None], border_type="reflect")
    torch.testing.assert_close(F3.filter3d(x, k, border="reflect", anchor="torch"), ref)
    assert not torch.allclose(F3.filter3d(x, k, border="reflect"), ref)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize("border", BORDERS)
def test_box_blur3d_matches_uniform_filter(border):
    x = torch.randn(2, 7, 8, 9, dtype=torch.float64)
    for size in (3, (2, 5, 4), (6, 1, 7)):
        sizes = (size,) * 3 if isinstance(size, int) else size
        ref = ndi.uniform_filter(x.numpy(), (1, *sizes), mode=NDIMAGE_BORDER[border])
        for method in ("auto", "direct", "separable"):
            np.testing.assert_allclose(F3.box_blur3d(x, size, border, method=method).numpy(), ref, rtol=1e-10, atol=1e-12)
        window = float(np.prod(sizes))
        np.testing.assert_allclose(F3.box_blur3d(x, size, border, normalized=False).numpy(), ref * window, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("border", BORDERS)
def test_gaussian_blur3d_matches_gaussian_filter(border):
    x = torch.randn(2, 9, 10, 11, dtype=torch.float64)
    mode = NDIMAGE_BORDER[border]
    for sigma, truncate in [(0.8, 4.0), ((0.6, 1.3, 1.1), 4.0), ((1.7, 0.7, 1.2), 2.0)]:
        s = (sigma,) * 3 if isinstance(sigma, float) else sigma
        ref = ndi.gaussian_filter(x.numpy(), (0, *s), mode=mode, truncate=truncate)
        for method in ("auto", "direct"):
            y = F3.gaussian_blur3d(x, sigma, border=border, truncate=truncate, method=method)
            np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_gaussian_blur3d_never_builds_the_3d_kernel(monkeypatch):
    def fail(*args):
        raise AssertionError("the 3-D kernel was built")

    monkeypatch.setattr("cnnconv.functional.volume.outer3", fail)
    x = torch.rand(1, 2, 6, 7, 8)
    y = F3.gaussian_blur3d(x, 1.0, kernel_size=3)  # 27 taps: would be direct under filter3d's rule
    assert y.shape == x.shape
    L.GaussianBlur3d(1.0, kernel_size=3)(x)


@pytest.mark.parametrize("border", BORDERS)
def test_sobel3d_matches_ndimage_sobel(border):
    x = torch.randn(2, 6, 7, 8, dtype=torch.float64)
    mode = NDIMAGE_BORDER[border]
    # per volume: ndimage.sobel smooths along every other axis, the batch axis included
    refs = [np.stack([ndi.sobel(v, axis=a, mode=mode) for v in x.numpy()]) for a in (-1, -2, -3)]
    for method in ("auto", "direct", "separable"):
        for name, ref in zip("xyz", refs):
            np.testing.assert_allclose(F3.sobel3d(x, name, border=border, method=method).numpy(), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F3.sobel3d(x, "xyz", border=border).numpy(), np.stack(refs, axis=-4), rtol=1e-10, atol=1e-10)
    mag = np.sqrt(sum(r * r for r in refs))
    np.testing.assert_allclose(F3.sobel3d(x, border=border).numpy(), mag, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F3.sobel3d(x, border=border, eps=0.5).numpy(), np.sqrt(mag**2 + 0.5), rtol=1e-10)
    np.testing.assert_allclose(F3.sobel3d(x, "y", normalized=True, border=border).numpy(), refs[1] / 32, rtol=1e-10, atol=1e-12)


def test_sobel3d_sign_and_axes():
    ramp = torch.arange(5.0, dtype=torch.float64)
    for axis, name in [(-1, "x"), (-2, "y"), (-3, "z")]:
        shape = [1, 1, 1]
        shape[axis] = 5
        x = ramp.reshape(shape).expand(5, 5, 5)
        g = F3.sobel3d(x, "xyz", border="replicate")
        expected = torch.zeros(3)
        expected["xyz".index(name)] = 32.0  # slope 2 over [-1, 0, 1], smoothing weight 16
        torch.testing.assert_close(g[:, 2, 2, 2], expected.double())


def test_spatial_gradient3d_matches_kornia():
    kornia = pytest.importorskip("kornia")
    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(F3.spatial_gradient3d(x, border="replicate"), kornia.filters.spatial_gradient3d(x))
    torch.testing.assert_close(F3.spatial_gradient3d(x.float(), border="replicate", method="direct"), kornia.filters.spatial_gradient3d(x.float()))


def test_spatial_gradient3d_operators_match_ndimage():
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    g = F3.spatial_gradient3d(x, "sobel", normalized=False, border="reflect")
    assert g.shape == (3, 4, 5, 6)
    for i, axis in enumerate((-1, -2, -3)):
        np.testing.assert_allclose(g[i].numpy(), ndi.sobel(x.numpy(), axis=axis, mode="mirror"), rtol=1e-10, atol=1e-10)
    g = F3.spatial_gradient3d(x, "prewitt", normalized=True, border="replicate")
    np.testing.assert_allclose(g[1].numpy(), ndi.prewitt(x.numpy(), axis=-2, mode="nearest") / 18, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("border", BORDERS)
def test_laplacian3d_matches_ndimage(border):
    x = torch.randn(2, 6, 7, 8, dtype=torch.float64)
    mode = NDIMAGE_BORDER[border]
    ref6 = ndi.laplace(x.numpy(), mode=mode)
    ref6 = ref6 - ndi.correlate1d(x.numpy(), [1.0, -2.0, 1.0], axis=0, mode=mode)  # no Laplacian across the batch
    np.testing.assert_allclose(F3.laplacian3d(x, border=border).numpy(), ref6, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F3.laplacian3d(x, 6, normalized=True, border=border).numpy(), ref6 / 12, rtol=1e-10, atol=1e-12)
    # 26 neighbours: the 3x3x3 window sum minus 27 times the centre
    ref26 = 27 * ndi.uniform_filter(x.numpy(), (1, 3, 3, 3), mode=mode) - 27 * x.numpy()
    np.testing.assert_allclose(F3.laplacian3d(x, 26, border=border).numpy(), ref26, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- non-finite values


def test_separable_path_spreads_non_finite_values_like_the_full_kernel():
    # rank 1 within rtol, but one tap is exactly 0 where the factors' product is not:
    # F.conv3d gives 0 * inf = NaN there, three 1-D passes would give +-inf.
    _, (kz, ky, kx) = _rank1(3, 3, 3)
    kz[0] = 1e-7
    k = kz[:, None, None] * ky[:, None] * kx
    k_zero = k.clone()
    k_zero[0, 0, 0] = 0.0
    assert F3.separable_factors3d(k_zero) is not None
    x = torch.randn(1, 2, 6, 6, 6, dtype=torch.float64)
    x[0, 0, 3, 3, 3] = float("inf")
    x[0, 1, 1, 4, 2] = float("nan")
    x[0, 1, 4, 1, 3] = -float("inf")
    for kernel in (k_zero, k):
        ref = _reference(x, kernel, "same", "reflect")
        for method in ("separable", "auto"):
            y = F3.filter3d(x, kernel, border="reflect", method=method)
            assert torch.equal(torch.isnan(y), torch.isnan(ref))
            assert torch.equal(torch.isposinf(y), torch.isposinf(ref))
            assert torch.equal(torch.isneginf(y), torch.isneginf(ref))
            fin = torch.isfinite(ref)
            torch.testing.assert_close(y[fin], ref[fin])
    # given factors (Gaussian): the same positions as F.conv3d with the full kernel
    x = torch.randn(1, 1, 7, 7, 7, dtype=torch.float64)
    x[0, 0, 2, 3, 3] = float("inf")
    x[0, 0, 3, 3, 4] = -float("inf")
    g = F3.gaussian_blur3d(x, 0.6, kernel_size=3, border="zeros")
    g1 = torch.tensor([np.exp(-0.5 / 0.36), 1.0, np.exp(-0.5 / 0.36)], dtype=torch.float64)
    g1 = g1 / g1.sum()
    ref = _reference(x, g1[:, None, None] * g1[:, None] * g1, "same", "zeros")
    assert torch.equal(torch.isnan(g), torch.isnan(ref)) and torch.equal(torch.isinf(g), torch.isinf(ref))
    assert bool(torch.isnan(g).any()) and bool(torch.isinf(g).any())


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    size=st.tuples(*[st.integers(1, 6)] * 3),
    ksize=st.tuples(*[st.integers(1, 4)] * 3),
    lead=st.sampled_from([(), (2,), (1, 2), (2, 1)]),
    mode=st.sampled_from(MODES),
    border=st.sampled_from(BORDERS),
    method=st.sampled_from(["auto", "direct", "separable"]),
    per_channel=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_hypothesis_filter3d_against_float64_reference(data, size, ksize, lead, mode, border, method, per_channel, dtype):
    per_channel = per_channel and len(lead) > 0
    channels = lead[-1] if lead else 1
    x = torch.randn(*lead, *size, dtype=dtype)
    n_bad = data.draw(st.integers(0, 3))
    for _ in range(n_bad):
        idx = tuple(data.draw(st.integers(0, s - 1)) for s in x.shape)
        x[idx] = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    if method == "separable" or data.draw(st.booleans()):
        k, _ = _rank1(*ksize, dtype=dtype, channels=channels if per_channel else None)
    else:
        k = torch.randn(*((channels,) if per_channel else ()), *ksize, dtype=dtype)
    too_big = mode == "valid" and any(kk > n for kk, n in zip(ksize, size))
    if too_big:
        with pytest.raises(ValueError, match="larger than the input"):
            F3.filter3d(x, k, mode, border, method=method)
        return
    small = any(n < 2 for n in size)
    if small and border in ("reflect", "symmetric", "circular") and mode != "valid":
        return  # numpy defines these borders differently on a single sample
    y = F3.filter3d(x, k, mode, border, method=method)
    x5 = x.reshape((1,) * (5 - x.ndim) + tuple(x.shape))
    ref = _reference(x5, k, mode, border).reshape(*lead, *[n + sum(_pads(kk, mode)) - kk + 1 for n, kk in zip(size, ksize)])
    assert y.shape == ref.shape and y.dtype == dtype and y.is_contiguous()
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.equal(torch.isposinf(y), torch.isposinf(ref))
    assert torch.equal(torch.isneginf(y), torch.isneginf(ref))
    fin = torch.isfinite(ref)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    scale = float(_reference(torch.where(torch.isfinite(x5), x5, 0).abs(), k.abs(), mode, border).max()) + 1.0
    torch.testing.assert_close(y.double()[fin], ref[fin], rtol=tol, atol=tol * scale)


# --------------------------------------------------------------------------- gradients


def test_gradcheck_functional3d():
    x = torch.rand(1, 2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    k, _ = _rank1(2, 3, 2)
    for mode in MODES:
        for method in ("direct", "separable"):
            torch.autograd.gradcheck(lambda t: F3.filter3d(t, k, mode, "reflect", method=method), (x,), fast_mode=True)
    kg = torch.rand(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t, w: F3.correlate3d(t, w, "full", "circular"), (x, kg), fast_mode=True)
    torch.autograd.gradcheck(lambda t: F3.gaussian_blur3d(t, 0.8, border="replicate"), (x,), fast_mode=True)
    torch.autograd.gradcheck(lambda t: F3.box_blur3d(t, 2), (x,), fast_mode=True)
    torch.autograd.gradcheck(lambda t: F3.sobel3d(t, "magnitude", border="circular"), (x,), fast_mode=True)
    torch.autograd.gradcheck(lambda t: F3.laplacian3d(t, 26), (x,), fast_mode=True)
    # flat regions: the magnitude has a zero subgradient there, not NaN
    flat = torch.ones(1, 5, 5, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F3.sobel3d(flat).sum(), flat)
    assert bool(torch.isfinite(g).all())
    # varying along z only: gx = gy = 0 everywhere, the magnitude is |gz|
    ramp = (torch.arange(5.0, dtype=torch.float64) ** 2).reshape(5, 1, 1).expand(5, 4, 4).clone().requires_grad_()
    torch.testing.assert_close(F3.sobel3d(ramp), F3.sobel3d(ramp, "z").abs())
    torch.autograd.gradcheck(lambda t: F3.sobel3d(t, border="replicate"), (ramp,), fast_mode=True)


def test_separable_with_a_kernel_that_requires_grad_says_so():
    k = torch.ones(3, 3, 3, requires_grad=True)
    with pytest.raises(ValueError, match="kernel that requires grad.*factors or method='direct'"):
        F3.filter3d(torch.rand(1, 5, 5, 5), k, method="separable")
    y = F3.filter3d(torch.rand(1, 5, 5, 5), k)  # auto: direct, the gradient reaches the kernel
    y.sum().backward()
    assert k.grad is not None and bool((k.grad > 0).all())


def test_learned_factors_receive_gradients():
    x = torch.rand(1, 1, 5, 6, 7, dtype=torch.float64)
    fs = [torch.rand(3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    y = F3.filter3d(x, None, "same", "reflect", factors=fs)
    ref = _reference(x, fs[0][:, None, None] * fs[1][:, None] * fs[2], "same", "reflect")
    torch.testing.assert_close(y, ref)
    y.sum().backward()
    assert all(f.grad is not None and bool(f.grad.abs().sum() > 0) for f in fs)


# --------------------------------------------------------------------------- layers


# A Filter3d layer finds the factors of its kernel once, in the buffer's dtype: compared with the
# float64 reference (None); the other layers with their functional twin, exactly.
LAYERS = [
    (lambda: L.Filter3d(_rank1(3, 4, 3, dtype=torch.float32)[0], border="reflect"), None),
    (lambda: L.Filter3d(torch.randn(2, 3, 2, 3), "full", "circular", method="direct"), None),
    (lambda: L.BoxBlur3d((3, 2, 5)), lambda x: F3.box_blur3d(x, (3, 2, 5))),
    (lambda: L.GaussianBlur3d((0.7, 1.0, 1.2), border="replicate"), lambda x: F3.gaussian_blur3d(x, (0.7, 1.0, 1.2), border="replicate")),
    (lambda: L.Sobel3d("xyz"), lambda x: F3.sobel3d(x, "xyz")),
    (lambda: L.Sobel3d("magnitude", normalized=True, mode="valid", eps=1e-6), lambda x: F3.sobel3d(x, normalized=True, mode="valid", eps=1e-6)),
    (lambda: L.Laplacian3d(26, border="zeros"), lambda x: F3.laplacian3d(x, 26, border="zeros")),
    (lambda: L.Laplacian3d(normalized=True), lambda x: F3.laplacian3d(x, normalized=True)),
]


def _check_layer(layer, make_functional, x, exact=True):
    """``exact``: the layer's buffers were built in the input's dtype (else: float32 rounding)."""
    y = layer(x)
    assert y.dtype == x.dtype and y.is_contiguous()
    if make_functional is not None:
        tol = 0.0 if exact and all(b.dtype == x.dtype for b in layer.buffers()) else 1e-6
        torch.testing.assert_close(y, make_functional(x), rtol=tol, atol=tol)
        return y
    x5 = x.reshape((1,) * (5 - x.ndim) + tuple(x.shape))
    ref = _reference(x5, layer.kernel, layer.mode, layer.border).to(x.dtype).reshape(y.shape)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    return y


@pytest.mark.parametrize("make, functional", LAYERS)
def test_module_equals_functional_shapes_layouts_and_empty(make, functional):
    layer = make()
    for dtype in (torch.float32, torch.float64):
        _check_layer(layer, functional, torch.randn(2, 2, 6, 7, 8, dtype=dtype))
    x = torch.randn(2, 2, 6, 7, 8)
    ref = _check_layer(layer, functional, x)
    y = layer(x.contiguous(memory_format=torch.channels_last_3d))
    assert y.is_contiguous()
    torch.testing.assert_close(y, ref)
    noncontig = torch.randn(2, 7, 8, 2, 6).permute(0, 3, 4, 1, 2)
    assert not noncontig.is_contiguous()
    torch.testing.assert_close(layer(noncontig), layer(noncontig.contiguous()))
    _check_layer(layer, functional, noncontig)
    _check_layer(layer, functional, x[1])  # (C, D, H, W)
    if layer.kernel.ndim == 3 or isinstance(layer, L.Sobel3d):
        _check_layer(layer, functional, x[0, 0])  # (D, H, W)
    empty = layer(torch.rand(0, 2, 6, 7, 8))
    assert empty.shape == (0, *ref.shape[1:])


@pytest.mark.parametrize("make, functional", LAYERS)
def test_layer_buffers_not_persistent_and_follow_to(make, functional):
    layer = make()
    assert len(layer.state_dict()) == 0 and len(list(layer.parameters())) == 0
    bufs = list(layer.buffers())
    assert bufs and all(b.dtype == torch.float32 for b in bufs)
    layer = layer.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in layer.buffers())
    x = torch.rand(1, 2, 5, 6, 7, dtype=torch.float64)
    _check_layer(layer, functional, x, exact=False)


def test_layer_kernels_and_repr():
    g = L.GaussianBlur3d((0.7, 1.0, 1.2), kernel_size=(3, 5, 7), mode="valid")
    assert g.kernel.shape == (3, 5, 7) and abs(float(g.kernel.sum()) - 1) < 1e-6
    assert repr(g) == "GaussianBlur3d(sigma=(0.7, 1.0, 1.2), kernel_size=(3, 5, 7), truncate=4.0, border='reflect', mode='valid', method='auto')"
    b = L.BoxBlur3d(2, normalized=False)
    torch.testing.assert_close(b.kernel, torch.ones(2, 2, 2))
    assert repr(b) == "BoxBlur3d(kernel_size=(2, 2, 2), normalized=False, border='reflect', mode='same', method='auto')"
    s = L.Sobel3d("z", border="zeros", method="separable")
    assert s.kernel.shape == (3, 3, 3, 3)
    sm, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(s.kernel[2], d[:, None, None] * sm[:, None] * sm, rtol=0, atol=0)
    torch.testing.assert_close(s.kernel[0], sm[:, None, None] * sm[:, None] * d, rtol=0, atol=0)
    assert repr(s) == "Sobel3d(output='z', normalized=False, eps=0.0, border='zeros', mode='same', method='separable')"
    lap = L.Laplacian3d()
    assert float(lap.kernel.sum()) == 0.0 and float(lap.kernel[1, 1, 1]) == -6.0 and int((lap.kernel != 0).sum()) == 7
    assert repr(lap) == "Laplacian3d(neighbours=6, normalized=False, border='reflect', mode='same', method='auto')"
    f = L.Filter3d(torch.rand(2, 3, 4))
    assert repr(f) == "Filter3d(kernel_shape=(2, 3, 4), border='reflect', mode='same', method='auto')"


def test_filter3d_layer_detects_structure_once():
    k, _ = _rank1(4, 4, 4, dtype=torch.float32)
    layer = L.Filter3d(k, border="replicate")
    assert layer._filter_plan.method == "separable" and layer.kz is not None
    x = torch.randn(1, 2, 6, 7, 8)
    torch.testing.assert_close(layer(x), _reference(x, k, "same", "replicate").float(), rtol=1e-5, atol=1e-5)
    assert L.Filter3d(torch.rand(4, 4, 4))._filter_plan.method == "direct"
    assert L.Filter3d(k, method="direct").kz is None


# --------------------------------------------------------------------------- validation


BAD_CALLS = [
    (lambda: F3.filter3d(torch.rand(5, 5), torch.rand(3, 3, 3)), ValueError, r"input must have shape \(D, H, W\).*\(5, 5\)"),
    (lambda: F3.filter3d(torch.rand(1, 1, 1, 5, 5, 5), torch.rand(3, 3, 3)), ValueError, r"input must have shape.*\(1, 1, 1, 5, 5, 5\)"),
    (lambda: F3.filter3d(np.ones((5, 5, 5)), torch.rand(3, 3, 3)), TypeError, "input must be a torch.Tensor, got ndarray"),
    (lambda: F3.filter3d(torch.ones(5, 5, 5, dtype=torch.int64), torch.rand(3, 3, 3)), TypeError, "input must be a real floating point tensor, got dtype torch.int64"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3)), ValueError, r"kernel must have shape \(kd, kh, kw\).*\(3, 3\)"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), [[[1.0]]]), TypeError, "kernel must be a torch.Tensor, got list"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(0, 3, 3)), ValueError, "kernel must not be empty"),
    (lambda: F3.filter3d(torch.rand(2, 5, 5, 5), torch.rand(3, 3, 3, 3)), ValueError, "kernel has 3 per-channel kernels but the input has 2 channels"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3, 3), "valid", method="fft"), ValueError, r"method must be one of \['auto', 'direct', 'separable'\], got 'fft'"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3, 3), "middle"), ValueError, "mode must be one of.*'middle'"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3, 3), border="wrap"), ValueError, "border must be one of.*'wrap'"),
    (lambda: F3.filter3d(torch.rand(2, 5, 5), torch.rand(3, 3, 3), "valid"), ValueError, r"kernel of size \(3, 3, 3\) is larger than the input \(2, 5, 5\)"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3, 3) + torch.eye(3), method="separable"), ValueError, "needs a rank-1 kernel"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), None), TypeError, "kernel must be a torch.Tensor when factors is not given"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), None, factors=(torch.ones(3), torch.ones(3))), TypeError, "factors must be a triple .*, got 2 factors"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), None, factors=torch.ones(3)), TypeError, "factors must be a triple .*, got Tensor"),
    (lambda: F3.filter3d(torch.rand(5, 5, 5), torch.rand(3, 3, 3), factors=(torch.ones(3), torch.ones(3), torch.ones(2))), ValueError, r"factors have lengths \(3, 3, 2\) but the kernel is \(3, 3, 3\)"),
    (lambda: F3.filter3d(torch.rand(2, 5, 5, 5), None, factors=(torch.ones(2, 3), torch.ones(3), torch.ones(3))), ValueError, "factors must all be shared or all per-channel"),
    (lambda: F3.correlate3d(torch.rand(5, 5, 5), torch.rand(2, 2, 2), anchor="scipy"), ValueError, r"anchor must be one of \['signal', 'ndimage'\], got 'scipy'"),
    (lambda: F3.box_blur3d(torch.rand(5, 5, 5), (3, 3)), ValueError, r"kernel_size must be an int or a triple, got \(3, 3\)"),
    (lambda: F3.box_blur3d(torch.rand(5, 5, 5), 0), ValueError, "kernel_size must be positive, got 0"),
    (lambda: F3.box_blur3d(torch.rand(5, 5, 5), 2.5), TypeError, "kernel_size must be an int or a triple of ints, got 2.5"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), float("nan")), ValueError, "sigma must be positive and finite, got nan"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), (1.0, float("inf"), 1.0)), ValueError, "sigma must be positive and finite"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), -1.0), ValueError, "sigma must be positive and finite, got -1.0"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), (1.0, 1.0)), ValueError, "sigma must be a number or a triple"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), "1"), TypeError, "sigma must be a number or a triple of numbers, got '1'"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), 1.0, 4), ValueError, "kernel_size must be odd and positive, got 4"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), 1.0, truncate=0.0), ValueError, "truncate must be a positive finite number, got 0.0"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), 1.0, 3, truncate=float("nan")), ValueError, "truncate must be a positive finite number, got nan"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), 1.0, truncate=float("inf")), ValueError, "truncate must be a positive finite number, got inf"),
    (lambda: F3.gaussian_blur3d(torch.rand(5, 5, 5), 1.0, method="box"), ValueError, "method must be one of.*'box'"),
    (lambda: F3.sobel3d(torch.rand(5, 5, 5), "direction"), ValueError, "output must be one of.*'direction'"),
    (lambda: F3.sobel3d(torch.rand(5, 5, 5), eps=-1.0), ValueError, "eps must be a non-negative number, got -1.0"),
    (lambda: F3.spatial_gradient3d(torch.rand(5, 5, 5), "roberts"), ValueError, "operator must be one of.*'roberts'"),
    (lambda: F3.laplacian3d(torch.rand(5, 5, 5), 8), ValueError, "neighbours must be 6 or 26, got 8"),
    (lambda: F3.laplacian3d(torch.rand(5, 5, 5), method="separable"), ValueError, "needs a rank-1 kernel"),
    (lambda: L.Filter3d(torch.rand(3, 3)), ValueError, r"kernel must have shape \(kd, kh, kw\)"),
    (lambda: L.Filter3d(torch.ones(3, 3, 3, dtype=torch.int32)), TypeError, "kernel must be a real floating point tensor"),
    (lambda: L.Filter3d(torch.rand(3, 3, 3), method="fft"), ValueError, r"method must be one of \['auto', 'direct', 'separable'\]"),
    (lambda: L.BoxBlur3d(3, border="mirror"), ValueError, "border must be one of.*'mirror'"),
    (lambda: L.GaussianBlur3d(0.0), ValueError, "sigma must be positive and finite, got 0.0"),
    (lambda: L.GaussianBlur3d(1.0, truncate=-2), ValueError, "truncate must be a positive finite number, got -2"),
    (lambda: L.Sobel3d(mode="middle"), ValueError, "mode must be one of"),
    (lambda: L.Laplacian3d(4), ValueError, "neighbours must be 6 or 26, got 4"),
    (lambda: L.Laplacian3d(method="separable"), ValueError, "needs a rank-1 kernel"),
]


@pytest.mark.parametrize("call, exc, match", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "layer, attributes",
    [
        (lambda: L.GaussianBlur3d(1.0), {"sigma": 2.0, "kernel_size": 7, "truncate": 2.0, "border": "zeros", "mode": "valid", "method": "direct"}),
        (lambda: L.BoxBlur3d(3), {"kernel_size": 5, "normalized": False, "border": "zeros"}),
        (lambda: L.Sobel3d(), {"output": "x", "normalized": True, "eps": 1.0, "border": "zeros"}),
        (lambda: L.Laplacian3d(), {"neighbours": 26, "normalized": True}),
        (lambda: L.Filter3d(torch.rand(3, 3, 3)), {"mode": "valid", "method": "direct"}),
    ],
)
def test_constructor_attributes_are_read_only(layer, attributes):
    """A 3-D layer's buffers are built from its arguments: assigning one raises instead of
    leaving the old kernel in use, and the output stays that of the constructed layer."""
    f = layer()
    x = torch.rand(1, 2, 9, 9, 9)
    before = f(x)
    for name, value in attributes.items():
        old = getattr(f, name)
        with pytest.raises(AttributeError, match="new"):
            setattr(f, name, value)
        assert getattr(f, name) == old
    torch.testing.assert_close(f(x), before)
