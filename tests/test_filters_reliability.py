"""Fixed filters under hostile input: spikes and huge values in the running-sum box engine,
NaN/inf propagation, non-finite and in-place-changed kernels, huge Gaussians, scipy.signal's
valid-mode swap and contiguous outputs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnconv import filters as L
from cnnconv import functional as CF
from cnnconv import kernels as K

ss = pytest.importorskip("scipy.signal")


def _conv_ref(x: torch.Tensor, kernel: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Same-mode depthwise correlation by float64 F.conv2d of the padded input (kernel anchored at k // 2)."""
    from cnnconv.engines.padding import output_padding, pad

    b, c, h, w = x.shape
    xp = pad(x.double(), output_padding(kernel.shape[-2:], "same"), border)
    weight = kernel.double().expand(c, 1, *kernel.shape[-2:])
    return F.conv2d(xp, weight, groups=c)


# --------------------------------------------------------------------------- 1. running sums


@pytest.mark.parametrize("k", [17, 31, 101])
@pytest.mark.parametrize("base", ["ones", "uniform"])
def test_box_spike_error_stays_near_the_spike(k, base):
    x = torch.ones(1, 1, 3, 4000) if base == "ones" else torch.rand(1, 1, 3, 4000)
    x[..., 50] = 1e8
    y = CF.box_blur2d(x, (1, k), border="replicate")
    ref = _conv_ref(x, K.box((1, k), dtype=torch.float64), "replicate")
    err = (y.double() - ref).abs()[0, 0]
    far = torch.ones(4000, dtype=torch.bool)
    far[: 50 + 2 * k] = False
    assert err[:, far].max() < 1e-6, err[:, far].max()


def test_box_spike_on_unit_data_2d():
    x = torch.rand(2, 3, 300, 300)
    x[1, 2, 40, 60] = 1e6
    y = CF.box_blur2d(x, 31)
    ref = _conv_ref(x, K.box(31, dtype=torch.float64))
    err = (y.double() - ref).abs()
    err[1, 2, : 40 + 2 * 31, : 60 + 2 * 31] = 0  # near the spike: the float32 rounding of 1e6
    assert err.max() < 1e-6, err.max()


@pytest.mark.parametrize("value", [3e38, -3e38, 1e37])
def test_box_huge_constant_stays_finite_and_exact(value):
    x = torch.full((2, 2, 40, 50), value)
    for size in (17, (33, 19), 41):
        y = CF.box_blur2d(x, size)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y, x, rtol=1e-5, atol=0)


def test_box_huge_values_random_against_float64():
    x = (torch.rand(1, 2, 64, 70) * 2 - 1) * 3e38
    y = CF.box_blur2d(x, 21, border="replicate")
    ref = _conv_ref(x, K.box(21, dtype=torch.float64), "replicate")
    assert torch.isfinite(y).all()
    assert ((y.double() - ref).abs() <= 1e-6 * 3e38).all()


def test_box_sum_window_gradient_still_flows():
    x = torch.rand(1, 1, 20, 30, dtype=torch.float64, requires_grad=True)
    y = CF.box_blur2d(x, 19, method="box")
    torch.testing.assert_close(y, _conv_ref(x.detach(), K.box(19, dtype=torch.float64)))
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- 2. non-finite values


def _nonfinite_input(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    flat = x.view(-1)
    idx = torch.randperm(flat.numel(), generator=g)[:3]
    flat[idx[0]] = float("nan")
    flat[idx[1]] = float("inf")
    flat[idx[2]] = float("-inf")
    return x


def _same_nonfinite(y: torch.Tensor, ref: torch.Tensor):
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.equal(y == float("inf"), ref == float("inf"))
    assert torch.equal(y == float("-inf"), ref == float("-inf"))


@pytest.mark.parametrize("op, smooth, diff", [("sobel", [1, 2, 1], [-1, 0, 1]), ("prewitt", [1, 1, 1], [-1, 0, 1]), ("scharr", [3, 10, 3], [-1, 0, 1])])
@pytest.mark.parametrize("border", ["reflect", "zeros", "replicate"])
@pytest.mark.parametrize("seed", range(4))
def test_gradients_spread_nan_and_inf_like_conv2d(op, smooth, diff, border, seed):
    x = _nonfinite_input((2, 3, 9, 11), seed)
    kx = torch.outer(torch.tensor(smooth, dtype=torch.float64), torch.tensor(diff, dtype=torch.float64))
    gx, gy = _conv_ref(x, kx, border), _conv_ref(x, kx.T, border)
    fn = getattr(CF, op)
    _same_nonfinite(fn(x, "x", border=border), gx)
    _same_nonfinite(fn(x, "y", border=border), gy)
    _same_nonfinite(fn(x, "xy", border=border), torch.stack((gx, gy), -3))


def test_single_nan_gives_nine_nan_outputs():
    x = torch.rand(1, 1, 8, 8)
    x[0, 0, 4, 4] = float("nan")
    assert int(torch.isnan(CF.sobel(x, "x")).sum()) == 9
    assert int(torch.isnan(CF.sobel(x, "y")).sum()) == 9


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "name, run, kernel",
    [
        ("box_running_sums", lambda x: CF.box_blur2d(x, 17), lambda: K.box(17)),
        ("box_separable", lambda x: CF.box_blur2d(x, 5), lambda: K.box(5)),
        ("separable_sobel", lambda x: CF.filter2d(x, K.sobel_x(), border="reflect", method="separable"), K.sobel_x),
        ("gaussian", lambda x: CF.gaussian_blur2d(x, 1.0), lambda: K.gaussian(1.0)),
    ],
)
def test_separable_and_box_engines_spread_nan_and_inf_like_conv2d(seed, name, run, kernel):
    x = _nonfinite_input((2, 3, 30, 33), seed)
    _same_nonfinite(run(x), _conv_ref(x, kernel()))


# --------------------------------------------------------------------------- 3. kernels that change


def test_separable_factors_rejects_non_finite_kernels():
    for bad in (float("inf"), float("-inf"), float("nan")):
        k = torch.ones(3, 3)
        k[1, 1] = bad
        assert K.separable_factors(k) is None
    k = torch.ones(5, 5)
    k[0, 0] = float("inf")
    x = torch.rand(1, 1, 12, 12)
    _same_nonfinite(CF.filter2d(x, k, border="reflect"), _conv_ref(x, k))


def _numpy_write(k):
    k.numpy()[...] *= 2  # a write no version counter sees


def _data_assign(layer):
    layer.kernel.data = layer.kernel.data * 2  # may even land at the freed address


@pytest.mark.parametrize("change", [lambda k: k.mul_(2), lambda k: k.copy_(torch.randn_like(k)), lambda k: k[0].fill_(3.0), _numpy_write])
@pytest.mark.parametrize("make", [lambda: L.Filter2d(K.gaussian(1.0), border="reflect"), lambda: L.Filter2d(K.box(19), border="reflect"), lambda: L.Filter2d(torch.randn(3, 3), border="reflect")])
def test_filter2d_layer_follows_in_place_kernel_changes(change, make):
    layer = make()
    x = torch.rand(1, 2, 24, 24, dtype=torch.float64)
    layer(x.float())
    change(layer.kernel)
    torch.testing.assert_close(layer(x.float()).double(), _conv_ref(x, layer.kernel), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make", [lambda: L.Filter2d(K.gaussian(1.0), border="reflect"), lambda: L.BoxBlur(21)])
def test_fixed_layers_follow_data_assignment(make):
    layer = make()
    x = torch.rand(1, 2, 30, 30)
    layer(x)
    _data_assign(layer)
    torch.testing.assert_close(layer(x).double(), _conv_ref(x, layer.kernel), rtol=1e-4, atol=1e-4)


def test_box_layer_follows_in_place_kernel_changes():
    layer = L.BoxBlur(5)
    x = torch.rand(1, 2, 20, 20)
    layer.kernel.mul_(2)
    torch.testing.assert_close(layer(x).double(), _conv_ref(x, layer.kernel), rtol=1e-5, atol=1e-5)
    layer.kernel.copy_(torch.randn(5, 5))
    torch.testing.assert_close(layer(x).double(), _conv_ref(x, layer.kernel), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer, attributes",
    [
        (lambda: L.GaussianBlur(1.0), {"sigma": 2.0, "kernel_size": 7, "truncate": 2.0, "border": "zeros", "mode": "valid", "method": "direct"}),
        (lambda: L.BoxBlur(3), {"kernel_size": 5, "normalized": False, "border": "zeros"}),
        (lambda: L.Sobel(), {"output": "x", "normalized": True, "eps": 1.0, "border": "zeros"}),
        (lambda: L.Laplacian(), {"neighbours": 8, "normalized": True}),
        (lambda: L.Sharpen(), {"border": "zeros", "mode": "full"}),
        (lambda: L.Filter2d("gaussian", sigma=1.0), {"kernel_name": "box", "kernel_kwargs": {}, "mode": "valid"}),
    ],
)
def test_constructor_attributes_are_read_only(layer, attributes):
    f = layer()
    x = torch.rand(1, 1, 16, 16)
    before = f(x)
    for name, value in attributes.items():
        old = getattr(f, name)
        with pytest.raises(AttributeError, match="new"):
            setattr(f, name, value)
        assert getattr(f, name) == old
    torch.testing.assert_close(f(x), before)


def test_filter2d_kernel_kwargs_stay_read_only_in_copies():
    """The builder arguments of a named kernel are a read-only mapping, in the layer and in its
    ``copy.deepcopy`` / ``pickle`` copies, and the copies filter with the same kernel."""
    import copy
    import pickle

    sigma = float(torch.empty(()).uniform_(0.5, 2.0))
    f = L.Filter2d("gaussian", sigma=sigma)
    x = torch.rand(1, 2, 12, 12)
    for layer in (f, copy.deepcopy(f), pickle.loads(pickle.dumps(f))):
        assert dict(layer.kernel_kwargs) == {"sigma": sigma}
        with pytest.raises(TypeError):
            layer.kernel_kwargs["sigma"] = 3.0
        assert layer.kernel_kwargs["sigma"] == sigma
        torch.testing.assert_close(layer.kernel, K.get_kernel("gaussian", sigma=sigma))
        torch.testing.assert_close(layer(x), f(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- 4. huge Gaussians


def test_huge_sigma_is_exact_and_does_not_allocate_the_2d_kernel():
    x = torch.rand(1, 2, 9, 11, dtype=torch.float64)
    for border in ("zeros", "replicate", "circular", "symmetric", "reflect"):
        y = CF.gaussian_blur2d(x, 1e5, border=border)
        assert y.shape == x.shape and torch.isfinite(y).all()
        if border in ("circular", "symmetric"):
            # nearly flat over many periods of the extension: every output is the plane's mean
            torch.testing.assert_close(y, x.mean((-2, -1), keepdim=True).expand_as(x), rtol=1e-6, atol=0)
        if border == "zeros":  # the few taps that meet the image are all ~ the peak (truncation at 4 sigma: 1e-4)
            peak = 1 / (2 * math.pi * 1e10)
            torch.testing.assert_close(y, x.sum((-2, -1), keepdim=True).expand_as(x) * peak, rtol=2e-4, atol=0)
    layer = L.GaussianBlur(1e5, border="replicate")
    assert layer(x.float()).shape == x.shape


@pytest.mark.parametrize("border", ["zeros", "replicate", "circular", "symmetric", "reflect"])
@pytest.mark.parametrize("mode", ["same", "full"])
def test_long_factors_equal_the_untruncated_result(border, mode):
    # factors much longer than the image: the exact reduction must give the direct result
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 5, 4, dtype=torch.float64, generator=g)
    ky = torch.rand(23, dtype=torch.float64, generator=g)
    kx = torch.rand(31, dtype=torch.float64, generator=g)
    y = CF.filter2d(x, None, mode, border, factors=(ky, kx))
    ref = CF.filter2d(x, torch.outer(ky, kx), mode, border, method="direct")
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_gaussian_size_limits():
    with pytest.raises(ValueError, match="taps"):
        CF.gaussian_blur2d(torch.rand(8, 8), 1e7)
    with pytest.raises(ValueError, match="taps"):
        K.gaussian1d(1e7)
    for bad in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="truncate"):
            CF.gaussian_blur2d(torch.rand(8, 8), 1.0, truncate=bad)
        with pytest.raises(ValueError, match="truncate"):
            L.GaussianBlur(1.0, truncate=bad)
        with pytest.raises(ValueError, match="truncate"):
            K.gaussian1d(1.0, truncate=bad)
    for bad in (float("inf"), float("nan"), 0.0, -2.0):
        with pytest.raises(ValueError, match="sigma"):
            CF.gaussian_blur2d(torch.rand(8, 8), bad)
        with pytest.raises(ValueError, match="sigma"):
            L.GaussianBlur(bad)


# --------------------------------------------------------------------------- 6. valid-mode swap


@pytest.mark.parametrize("xs, ks", [((3, 4), (6, 7)), ((1, 1), (4, 5)), ((5, 5), (5, 8)), ((2, 6), (2, 6))])
def test_valid_mode_swaps_like_scipy_2d(xs, ks):
    rng = np.random.default_rng(sum(xs + ks))
    a, b = rng.standard_normal(xs), rng.standard_normal(ks)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(CF.correlate2d(ta, tb, "valid").numpy(), ss.correlate2d(a, b, "valid"), atol=1e-12)
    np.testing.assert_allclose(CF.convolve2d(ta, tb, "valid").numpy(), ss.convolve2d(a, b, "valid"), atol=1e-12)
    # batched and per-channel: each plane like scipy
    x = torch.from_numpy(rng.standard_normal((2, 3, *xs)))
    k = torch.from_numpy(rng.standard_normal((3, *ks)))
    y = CF.correlate2d(x, k, "valid")
    for i in range(2):
        for c in range(3):
            np.testing.assert_allclose(y[i, c].numpy(), ss.correlate2d(x[i, c].numpy(), k[c].numpy(), "valid"), atol=1e-12)


def test_valid_mode_raises_when_neither_is_larger_like_scipy():
    a, b = np.ones((3, 6)), np.ones((5, 4))
    with pytest.raises(ValueError):
        ss.correlate2d(a, b, "valid")
    with pytest.raises(ValueError, match="valid"):
        CF.correlate2d(torch.from_numpy(a), torch.from_numpy(b), "valid")
    with pytest.raises(ValueError, match="valid"):
        CF.convolve2d(torch.from_numpy(a), torch.from_numpy(b), "valid")


@pytest.mark.parametrize("n, k", [(3, 8), (1, 5), (4, 4), (6, 2)])
def test_valid_mode_swaps_like_scipy_1d(n, k):
    rng = np.random.default_rng(n * 10 + k)
    a, b = rng.standard_normal(n), rng.standard_normal(k)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(CF.correlate1d(ta, tb, "valid").numpy(), ss.correlate(a, b, "valid"), atol=1e-12)
    np.testing.assert_allclose(CF.convolve1d(ta, tb, "valid").numpy(), ss.convolve(a, b, "valid"), atol=1e-12)
    x = torch.from_numpy(rng.standard_normal((2, 3, n)))
    y = CF.correlate1d(x, tb, "valid")
    np.testing.assert_allclose(y[1, 2].numpy(), ss.correlate(x[1, 2].numpy(), b, "valid"), atol=1e-12)


# --------------------------------------------------------------------------- 7. contiguous outputs


_ALL = [
    ("filter2d", lambda x: CF.filter2d(x, torch.randn(4, 4), border="reflect")),
    ("filter2d_direct", lambda x: CF.filter2d(x, torch.randn(3, 3), method="direct")),
    ("correlate2d", lambda x: CF.correlate2d(x, torch.randn(5, 5))),
    ("convolve2d", lambda x: CF.convolve2d(x, torch.randn(5, 5), "full")),
    ("separable", lambda x: CF.separable_correlate2d(x, torch.rand(5), torch.rand(3))),
    ("box", lambda x: CF.box_blur2d(x, 5)),
    ("box_large", lambda x: CF.box_blur2d(x, 17)),
    ("box_valid", lambda x: CF.box_blur2d(x, (18, 3), mode="valid")),
    ("gaussian", lambda x: CF.gaussian_blur2d(x, 2.0)),
    ("gaussian_fft", lambda x: CF.gaussian_blur2d(x, 2.0, method="fft")),
    ("sobel", lambda x: CF.sobel(x)),
    ("sobel_x_direct", lambda x: CF.sobel(x, "x", method="direct")),
    ("prewitt_xy", lambda x: CF.prewitt(x, "xy")),
    ("scharr_direction", lambda x: CF.scharr(x, "direction", method="direct")),
    ("spatial_gradient", lambda x: CF.spatial_gradient(x)),
    ("laplacian", lambda x: CF.laplacian(x)),
    ("sharpen", lambda x: CF.sharpen(x, mode="valid")),
    ("layer_gaussian", lambda x: L.GaussianBlur(1.5)(x)),
    ("layer_box", lambda x: L.BoxBlur(21)(x)),
    ("layer_filter2d", lambda x: L.Filter2d("log", sigma=1.0)(x)),
    ("layer_sobel", lambda x: L.Sobel("xy", method="separable")(x)),
    ("layer_laplacian", lambda x: L.Laplacian()(x)),
    ("layer_sharpen", lambda x: L.Sharpen()(x)),
]


@pytest.mark.parametrize("name, fn", _ALL, ids=[a[0] for a in _ALL])
@pytest.mark.parametrize("shape", [(4, 3, 40, 40), (1, 1, 40, 41), (3, 40, 40)])
def test_outputs_are_contiguous(name, fn, shape):
    x = torch.rand(shape)
    y = fn(x)
    assert y.is_contiguous(), y.stride()
    y.view(y.shape[0], -1)


def test_separable_factors_still_found_for_finite_kernels():
    ky, kx = K.separable_factors(K.gaussian(1.0))
    torch.testing.assert_close(torch.outer(ky, kx), K.gaussian(1.0))


@pytest.mark.parametrize("k", [2, 3, 5, 17])
def test_box_engine_every_length_and_partial_block(k):
    for n in range(k, 3 * k + 3):
        x = torch.randn(2, 3, n, n + 1, dtype=torch.float64)
        for mode in ("valid", "same"):
            y = CF.box_blur2d(x, (k, k), border="replicate", mode=mode, method="box", normalized=False)
            ref = CF.box_blur2d(x, (k, k), border="replicate", mode=mode, method="direct", normalized=False)
            torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
            assert y.is_contiguous()


@pytest.mark.parametrize("fn", [lambda x: CF.sharpen(x), lambda x: CF.box_blur2d(x, 19), lambda x: CF.sobel(x), lambda x: CF.gaussian_blur2d(x, 1.0)])
def test_channels_last_batches_stay_channels_last_like_conv2d(fn):
    x = torch.rand(2, 3, 20, 21).contiguous(memory_format=torch.channels_last)
    y = fn(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, fn(x.contiguous()))


def test_box_layer_moved_to_float64_keeps_its_plan():
    layer = L.BoxBlur(19).double()
    x = torch.rand(1, 2, 30, 30, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _conv_ref(x, layer.kernel))
    assert layer._filter_plan.method == "box" and layer._filter_plan.kernel.dtype == torch.float64
