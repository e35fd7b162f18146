"""cnnconv.kernels against OpenCV, scipy.ndimage, kornia and known properties."""

import math

import numpy as np
import pytest
import torch

from cnnconv import kernels as K
from cnnconv import functional as CF

cv2 = pytest.importorskip("cv2")
ndi = pytest.importorskip("scipy.ndimage")


def _ramp(h=9, w=9, axis="x", dtype=torch.float64):
    r = torch.arange(w if axis == "x" else h, dtype=dtype)
    return r.expand(h, w).clone() if axis == "x" else r[:, None].expand(h, w).clone()


@pytest.mark.parametrize("size, normalized", [(3, False), (3, True), (5, False)])
def test_sobel_matches_opencv_deriv_kernels(size, normalized):
    # (OpenCV's normalize=True for 5x5 scales by powers of two; cnnconv divides by the sum of
    # absolute values, which for 3x3 is the same thing.)
    kx_d, kx_s = cv2.getDerivKernels(1, 0, size, normalize=normalized, ktype=cv2.CV_64F)
    ref_x = np.outer(kx_s.ravel(), kx_d.ravel())  # rows smooth, columns derivative
    ours_x = K.sobel_x(size, normalized=normalized, dtype=torch.float64).numpy()
    np.testing.assert_allclose(ours_x, ref_x, atol=1e-12)
    np.testing.assert_allclose(K.sobel_y(size, normalized=normalized, dtype=torch.float64).numpy(), ref_x.T, atol=1e-12)


@pytest.mark.parametrize(
    "builder, axis",
    [(K.sobel_x, "x"), (K.sobel_y, "y"), (K.prewitt_x, "x"), (K.prewitt_y, "y"), (K.scharr_x, "x"), (K.scharr_y, "y")],
)
def test_derivative_orientation_positive_for_rising_ramp(builder, axis):
    k = builder(dtype=torch.float64)
    y = CF.correlate2d(_ramp(axis=axis), k, "valid")
    assert bool((y > 0).all())
    other = "y" if axis == "x" else "x"
    assert float(CF.correlate2d(_ramp(axis=other), k, "valid").abs().max()) == 0.0


def test_scharr_prewitt_coefficients_match_opencv_and_ndimage():
    d, s = cv2.getDerivKernels(1, 0, -1, ktype=cv2.CV_64F)  # ksize=-1 is Scharr
    np.testing.assert_allclose(K.scharr_x(dtype=torch.float64).numpy(), np.outer(s.ravel(), d.ravel()))
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1.0
    # ndimage.prewitt(axis=1) convolves (flips) the derivative: its impulse response is the
    # correlation kernel rotated by 180 degrees.
    np.testing.assert_allclose(ndi.prewitt(impulse, axis=1)[1:4, 1:4][::-1, ::-1], K.prewitt_x(dtype=torch.float64).numpy())


def test_normalized_divides_by_abs_sum():
    for builder in (K.sobel_x, K.prewitt_y, K.scharr_x, K.laplacian, lambda **kw: K.sobel_y(5, **kw)):
        k = builder(normalized=True, dtype=torch.float64)
        assert abs(float(k.abs().sum()) - 1.0) < 1e-12


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
def test_gaussian1d_matches_ndimage(sigma):
    k = K.gaussian1d(sigma, dtype=torch.float64).numpy()
    radius = int(round(4.0 * sigma))
    assert k.shape == (2 * radius + 1,)
    impulse = np.zeros(4 * radius + 3)
    impulse[2 * radius + 1] = 1.0
    ref = ndi.gaussian_filter1d(impulse, sigma, mode="constant", truncate=4.0)
    np.testing.assert_allclose(k, ref[radius + 1 : 3 * radius + 2], atol=1e-12)


@pytest.mark.parametrize("size", [11, 13, 21])  # OpenCV tabulates sizes <= 9
def test_gaussian_sigma_from_size_matches_opencv(size):
    ref = cv2.getGaussianKernel(size, 0, ktype=cv2.CV_64F).ravel()
    np.testing.assert_allclose(K.gaussian1d(size=size, dtype=torch.float64).numpy(), ref, atol=1e-12)
    assert K.gaussian_sigma_from_size(size) == pytest.approx(0.3 * ((size - 1) / 2 - 1) + 0.8)


def test_gaussian2d_is_outer_product_and_sums_to_one():
    k = K.gaussian((1.0, 2.0), dtype=torch.float64)
    assert k.shape == (9, 17)
    ref = np.outer(cv2.getGaussianKernel(9, 1.0, ktype=cv2.CV_64F), cv2.getGaussianKernel(17, 2.0, ktype=cv2.CV_64F))
    np.testing.assert_allclose(k.numpy(), ref, atol=1e-12)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    assert K.gaussian(1.0, size=(5, 7)).shape == (5, 7)


def test_gaussian_derivative1d_properties():
    x = torch.arange(15, dtype=torch.float64) - 7
    d1 = K.gaussian_derivative1d(1.5, 1, size=15, dtype=torch.float64)
    assert float((d1 * x).sum()) == pytest.approx(1.0, abs=1e-12)  # unit ramp -> slope 1
    assert float(d1.sum()) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(d1, -d1.flip(0))
    # proportional to scipy.ndimage's first-order kernel (up to the flip of convolution)
    impulse = np.zeros(15)
    impulse[7] = 1.0
    ref = ndi.gaussian_filter1d(impulse, 1.5, order=1, mode="constant", truncate=7 / 1.5)[::-1]
    ratio = d1.numpy() / np.where(ref == 0, 1, ref)
    np.testing.assert_allclose(ratio[ref != 0], ratio[ref != 0][0], rtol=1e-9)
    d2 = K.gaussian_derivative1d(1.5, 2, size=15, dtype=torch.float64)
    assert float(d2.sum()) == pytest.approx(0.0, abs=1e-12)
    assert float((d2 * x**2 / 2).sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(d2[7]) < 0


def test_gaussian_derivative2d_orientation():
    kx = K.gaussian_derivative(1.0, axis="x", dtype=torch.float64)
    ky = K.gaussian_derivative(1.0, axis="y", dtype=torch.float64)
    assert torch.allclose(kx.t(), ky)
    ramp = _ramp(20, 20, "x")
    assert torch.allclose(CF.correlate2d(ramp, kx, "valid"), torch.ones(12, 12, dtype=torch.float64))
    assert K.get_kernel("gaussian_dyy", sigma=1.0).shape == (9, 9)


def test_laplacians():
    lap4 = K.laplacian(4, dtype=torch.float64)
    lap8 = K.laplacian(8, dtype=torch.float64)
    import kornia

    np.testing.assert_allclose(lap8.numpy(), kornia.filters.get_laplacian_kernel2d(3).double().numpy())
    img = np.random.default_rng(0).random((12, 14))
    ref = cv2.Laplacian(img, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    ours = CF.correlate2d(torch.from_numpy(img), lap4, "same", border="reflect").numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    log = K.laplacian_of_gaussian(1.4, dtype=torch.float64)
    assert abs(float(log.sum())) < 1e-12 and float(log[log.shape[0] // 2, log.shape[1] // 2]) < 0
    impulse = np.zeros(log.shape)
    impulse[log.shape[0] // 2, log.shape[1] // 2] = 1.0
    ref = ndi.gaussian_laplace(impulse, 1.4, mode="constant")
    corr = np.corrcoef(log.numpy().ravel(), ref.ravel())[0, 1]
    assert corr > 0.999


def test_sharpen_unsharp_identity_box():
    ident = K.identity(3, dtype=torch.float64)
    assert torch.equal(K.sharpen(dtype=torch.float64), ident - K.laplacian(4, dtype=torch.float64))
    g = K.gaussian(1.0, dtype=torch.float64)
    u = K.unsharp(1.0, 0.7, dtype=torch.float64)
    centre = torch.zeros_like(g)
    centre[4, 4] = 1.0
    assert torch.allclose(u, 1.7 * centre - 0.7 * g)
    img = torch.rand(10, 11, dtype=torch.float64)
    assert torch.equal(CF.correlate2d(img, ident, "same"), img)
    assert torch.allclose(K.box((2, 3), dtype=torch.float64), torch.full((2, 3), 1 / 6, dtype=torch.float64))
    assert torch.equal(K.box(3, normalized=False), torch.ones(3, 3))


def test_dtype_device_keywords():
    assert K.sobel_x(dtype=torch.float64).dtype == torch.float64
    assert K.gaussian(1.0).dtype == torch.get_default_dtype()
    assert K.box(3, device="cpu").device.type == "cpu"
    with pytest.raises(TypeError, match="dtype must be a floating point dtype, got torch.int64"):
        K.box(3, dtype=torch.int64)


def test_registry_names_and_aliases():
    expected = {
        "box", "gaussian", "gaussian_dx", "gaussian_dy", "gaussian_dxx", "gaussian_dyy", "sobel_x", "sobel_y",
        "sobel5_x", "sobel5_y", "prewitt_x", "prewitt_y", "scharr_x", "scharr_y", "laplacian4", "laplacian8",
        "log", "sharpen", "unsharp", "identity",
    }
    assert expected <= set(K.list_kernels())
    assert torch.equal(K.get_kernel("sobel5_x"), K.sobel_x(5))
    assert torch.equal(K.get_kernel("laplacian8"), K.laplacian(8))
    assert torch.equal(K.get_kernel("mean", size=5), K.box(5))
    assert torch.equal(K.get_kernel("Gaussian", sigma=2.0), K.gaussian(2.0))
    assert K.get_kernel("log", sigma=1.0, dtype=torch.float64).dtype == torch.float64
    for name in expected - {"gaussian", "gaussian_dx", "gaussian_dy", "gaussian_dxx", "gaussian_dyy", "log"}:
        assert K.get_kernel(name).ndim == 2
    with pytest.raises(ValueError, match="unknown kernel name, got 'sobelx'"):
        K.get_kernel("sobelx")


def test_register_kernel_decorator():
    @K.register_kernel("test_cross_kernel")
    def cross(*, dtype=None, device=None):
        return K.laplacian(4, dtype=dtype, device=device).abs()

    assert torch.equal(K.get_kernel("test_cross_kernel"), K.laplacian(4).abs())
    with pytest.raises(ValueError, match="kernel name already registered, got 'sobel_x'"):
        K.register_kernel("sobel_x")(cross)


def test_separable_factors():
    torch.manual_seed(0)
    ky, kx = K.separable_factors(K.sobel_x())
    assert torch.equal(torch.outer(ky, kx), K.sobel_x())
    a, b = torch.randn(7, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    fy, fx = K.separable_factors(torch.outer(a, b))
    assert torch.allclose(torch.outer(fy, fx), torch.outer(a, b), atol=1e-14)
    assert K.separable_factors(K.laplacian(4)) is None
    assert K.separable_factors(torch.randn(5, 5)) is None
    per = torch.stack([K.gaussian(1.0), K.box(9), K.gaussian(2.0, size=9)])
    fy, fx = K.separable_factors(per)
    assert fy.shape == (3, 9) and torch.allclose(fy[:, :, None] * fx[:, None, :], per, atol=1e-7)
    assert K.separable_factors(torch.stack([K.gaussian(1.0, size=3), K.laplacian(4)])) is None


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: K.gaussian1d(-1.0), ValueError, r"sigma must be positive, got -1.0"),
        (lambda: K.gaussian(0.0), ValueError, r"sigma must be positive, got 0.0"),
        (lambda: K.gaussian1d(), ValueError, r"gaussian needs sigma or size, got neither"),
        (lambda: K.gaussian1d(size=0), ValueError, r"size must be positive, got 0"),
        (lambda: K.box(2.5), TypeError, r"size must be an int, got 2.5"),
        (lambda: K.sobel_x(4), ValueError, r"size must be 3 or 5, got 4"),
        (lambda: K.laplacian(6), ValueError, r"neighbours must be 4 or 8, got 6"),
        (lambda: K.gaussian_derivative1d(1.0, order=3), ValueError, r"order must be 1 or 2, got 3"),
        (lambda: K.gaussian_derivative(1.0, axis="z"), ValueError, r"axis must be 'x' or 'y', got 'z'"),
        (lambda: K.separable_factors(torch.ones(3)), ValueError, r"kernel must have shape \(kh, kw\) or \(C, kh, kw\), got \(3,\)"),
    ],
)
def test_kernel_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# --------------------------------------------------------------------------- bank additions


@pytest.mark.parametrize("sigma, theta, frequency, phase", [(2.0, 0.3, 0.2, 0.7), (1.3, 2.2, 0.11, 0.0), (3.0, -1.0, 0.05, 2.0)])
def test_gabor_matches_skimage(sigma, theta, frequency, phase):
    skf = pytest.importorskip("skimage.filters")
    ref = skf.gabor_kernel(frequency, theta=theta, sigma_x=sigma, sigma_y=sigma, offset=phase).real
    got = K.gabor(sigma, theta, frequency, phase, dtype=torch.float64).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)
    # An explicit size crops/extends the same function around the centre tap.
    big = K.gabor(sigma, theta, frequency, phase, size=ref.shape[0] + 4, dtype=torch.float64).numpy()
    np.testing.assert_allclose(big[2:-2, 2:-2], ref, rtol=0, atol=1e-15)
    assert torch.equal(K.get_kernel("gabor", sigma=sigma, theta=theta, frequency=frequency, phase=phase,
                                    dtype=torch.float64), torch.from_numpy(got))


def test_gabor_orientation_follows_theta():
    # theta = 0: the carrier runs along x (varies with the column only, for the odd phase the
    # kernel is antisymmetric in x and symmetric in y).
    k = K.gabor(2.0, 0.0, 0.15, math.pi / 2, dtype=torch.float64)
    assert torch.allclose(k, -k.flip(1), atol=1e-15) and torch.allclose(k, k.flip(0), atol=1e-15)
    k90 = K.gabor(2.0, math.pi / 2, 0.15, math.pi / 2, dtype=torch.float64)
    assert torch.allclose(k90, k.t(), atol=1e-15)


def test_roberts_match_skimage_weights():
    edges = pytest.importorskip("skimage.filters.edges")
    assert K.roberts_x(dtype=torch.float64).numpy().tolist() == edges.ROBERTS_PD_WEIGHTS.tolist()
    assert K.roberts_y(dtype=torch.float64).numpy().tolist() == edges.ROBERTS_ND_WEIGHTS.tolist()
    assert torch.equal(K.get_kernel("roberts_x"), K.roberts_x())


def test_kirsch_compass():
    n = K.kirsch("n", dtype=torch.float64)
    assert n.tolist() == [[5.0, 5.0, 5.0], [-3.0, 0.0, -3.0], [-3.0, -3.0, -3.0]]
    # Every 90 degrees clockwise is two compass steps; each kernel is zero-sum.
    for i, d in enumerate(K.KIRSCH_DIRECTIONS):
        k = K.get_kernel(f"kirsch_{d}", dtype=torch.float64)
        assert float(k.sum()) == 0.0 and torch.equal(k, K.kirsch(d, dtype=torch.float64))
        if i % 2 == 0:
            assert torch.equal(k, torch.rot90(n, -(i // 2)))
    assert K.kirsch("e").tolist() == [[-3.0, -3.0, 5.0], [-3.0, 0.0, 5.0], [-3.0, -3.0, 5.0]]
    # Upward growth (intensity larger at the top) gives the largest response for north.
    img = -_ramp(3, 3, "y")
    resp = {d: float((K.kirsch(d, dtype=torch.float64) * img).sum()) for d in K.KIRSCH_DIRECTIONS}
    assert max(resp, key=resp.get) == "n"
    with pytest.raises(ValueError, match=r"direction must be one of n, ne, .*got 'up'"):
        K.kirsch("up")


def test_gaussian_dxy_against_scipy_and_steering():
    sigma = 1.4
    k = K.gaussian_dxy(sigma, 11, dtype=torch.float64)
    # Correlating with x*y gives 1 (scale of gaussian_derivative1d on both axes).
    y, x = torch.meshgrid(torch.arange(11.0, dtype=torch.float64), torch.arange(11.0, dtype=torch.float64), indexing="ij")
    assert abs(float((k * x * y).sum()) - 1.0) < 1e-12
    # Shape: scipy's order-(1, 1) Gaussian derivative of an impulse (a convolution: flipped
    # correlation kernel, equal since the kernel is even under the 180 degree turn).
    imp = np.zeros((11, 11))
    imp[5, 5] = 1.0
    ref = ndi.gaussian_filter(imp, sigma, order=(1, 1), mode="constant", truncate=5 / sigma)
    kn = k.numpy()
    cos = (kn * ref).sum() / np.linalg.norm(kn) / np.linalg.norm(ref)
    assert cos > 1 - 1e-12
    # Second directional derivative of f = (x cos t + y sin t)^2 / 2 is 1 along t.
    t = 0.7
    dxx = K.get_kernel("gaussian_dxx", sigma=sigma, size=11, dtype=torch.float64)
    dyy = K.get_kernel("gaussian_dyy", sigma=sigma, size=11, dtype=torch.float64)
    steered = math.cos(t) ** 2 * dxx + 2 * math.cos(t) * math.sin(t) * k + math.sin(t) ** 2 * dyy
    f = (x * math.cos(t) + y * math.sin(t)) ** 2 / 2
    assert abs(float((steered * f).sum()) - 1.0) < 1e-9


def test_unregister_kernel_and_register_doctest_does_not_leak():
    import doctest

    from cnnconv.kernels import base, builders, gaussians, gradients, registry, separable

    before = K.list_kernels()
    for module in (K, base, builders, gaussians, gradients, registry, separable):
        result = doctest.testmod(module, verbose=False)
        assert result.failed == 0 and result.attempted > 0, module.__name__
    assert K.list_kernels() == before  # the register_kernel example removes what it adds

    @K.register_kernel("tmp_kernel")
    def tmp(*, dtype=None, device=None):
        return K.identity(dtype=dtype, device=device)

    assert "tmp_kernel" in K.list_kernels()
    K.unregister_kernel("tmp_kernel")
    assert "tmp_kernel" not in K.list_kernels()
    with pytest.raises(ValueError, match=r"unknown kernel name, got 'tmp_kernel'"):
        K.get_kernel("tmp_kernel")
    with pytest.raises(ValueError, match=r"kernel name is not registered, got 'tmp_kernel'"):
        K.unregister_kernel("tmp_kernel")


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: K.gabor(0.0, 0.0, 0.1), ValueError, r"sigma must be positive, got 0.0"),
        (lambda: K.gabor(1.0, "a", 0.1), TypeError, r"theta must be a number, got 'a'"),
        (lambda: K.gabor(1.0, 0.0, -0.1), ValueError, r"frequency must be non-negative, got -0.1"),
        (lambda: K.gabor(1.0, 0.0, 0.1, float("nan")), ValueError, r"phase must be finite, got nan"),
        (lambda: K.gabor(1.0, 0.0, 0.1, size=4), ValueError, r"size must be odd, got 4"),
    ],
)
def test_bank_kernel_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_tensor_sigma_kernels_match_number_sigma_and_are_differentiable(order):
    g = torch.Generator().manual_seed(order)
    sigma = (0.5 + 2.5 * torch.rand(2, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    size = 11
    if order == 0:
        build = lambda s: K.gaussian1d(s, size, dtype=torch.float64)  # noqa: E731
    elif order in (1, 2):
        build = lambda s: K.gaussian_derivative1d(s, order, size, dtype=torch.float64)  # noqa: E731
    else:
        build = lambda s: K.hermite_gaussian1d(s, size, order, dtype=torch.float64)  # noqa: E731
    out = build(sigma)
    assert out.shape == (2, 3, size) and out.dtype == torch.float64
    for idx in [(0, 0), (1, 2)]:
        ref = build(float(sigma[idx].detach()))
        torch.testing.assert_close(out[idx], ref, rtol=1e-12, atol=1e-15)
    # The gradient in sigma matches central differences of the number-sigma builder.
    w = torch.rand(size, generator=g, dtype=torch.float64)
    (out[1, 2] * w).sum().backward()
    s0, h = float(sigma[1, 2].detach()), 1e-6
    fd = float(((build(s0 + h) - build(s0 - h)) * w).sum()) / (2 * h)
    assert abs(float(sigma.grad[1, 2]) - fd) < 1e-6 * max(1.0, abs(fd))
    assert float(sigma.grad.abs().sum() - sigma.grad[1, 2].abs()) == 0.0


def test_hermite_gaussian_against_numpy_hermite():
    from numpy.polynomial import hermite_e

    sigma, size = 1.7, 13
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    for n in range(5):
        ref = hermite_e.hermeval(x / sigma, [0] * n + [1]) * g / sigma**n
        np.testing.assert_allclose(K.hermite_gaussian1d(sigma, size, n, dtype=torch.float64).numpy(), ref, atol=1e-14)


def test_gaussian_of_an_underflowed_sigma_tensor_is_a_delta():
    k = K.gaussian1d(torch.tensor([1e-30]), 5)
    assert k.tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0]]
    d = K.gaussian_derivative1d(torch.tensor(1e-30), 1, 5)
    assert bool(torch.isfinite(d).all())


def test_package_re_exports_every_public_name_of_its_modules():
    from cnnconv.kernels import base, builders, gaussians, gradients, registry, separable

    modules = (base, builders, gaussians, gradients, registry, separable)
    names = [n for m in modules for n in m.__all__]
    assert sorted(K.__all__) == sorted(names) and len(set(names)) == len(names)
    for m in modules:
        for n in m.__all__:
            assert getattr(K, n) is getattr(m, n), (m.__name__, n)
