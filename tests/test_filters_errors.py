"""Bad input raises ValueError / TypeError naming the argument and the value received."""

import pytest
import torch

from cnnconv.engines import padding as P
from cnnconv import filters as L
from cnnconv import functional as CF
from cnnconv import kernels as K

X = torch.rand(2, 3, 8, 8)


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        # number of dimensions
        (lambda: CF.correlate2d(torch.rand(8), K.box(3)), ValueError, r"input must have shape \(H, W\), \(C, H, W\), \(B, C, H, W\), got \(8,\)"),
        (lambda: CF.correlate2d(torch.rand(1, 2, 3, 8, 8), K.box(3)), ValueError, r"got \(1, 2, 3, 8, 8\)"),
        (lambda: L.Sobel()(torch.rand(1, 1, 1, 4, 4)), ValueError, r"input must have shape .* got \(1, 1, 1, 4, 4\)"),
        (lambda: CF.correlate1d(torch.rand(1, 2, 3, 4), torch.ones(3)), ValueError, r"input must have shape \(L,\), \(C, L\), \(B, C, L\), got \(1, 2, 3, 4\)"),
        (lambda: CF.correlate2d(X, torch.ones(3)), ValueError, r"kernel must have shape \(kh, kw\) or \(C, kh, kw\), got \(3,\)"),
        (lambda: CF.correlate1d(torch.rand(9), torch.ones(2, 3)), ValueError, r"kernel has 2 per-channel kernels but the input has no channel dimension"),
        # dtypes
        (lambda: CF.correlate2d(torch.ones(8, 8, dtype=torch.int64), K.box(3)), TypeError, r"input must be a real floating point tensor, got dtype torch.int64"),
        (lambda: L.GaussianBlur(1.0)(torch.ones(8, 8, dtype=torch.uint8)), TypeError, r"got dtype torch.uint8"),
        (lambda: CF.sobel(torch.ones(8, 8, dtype=torch.complex64)), TypeError, r"input must be a real floating point tensor, got dtype torch.complex64"),
        (lambda: CF.correlate2d(X, torch.ones(3, 3, dtype=torch.complex64)), TypeError, r"kernel must be a real tensor, got dtype torch.complex64"),
        (lambda: CF.correlate2d(X.numpy(), K.box(3)), TypeError, r"input must be a torch.Tensor, got ndarray"),
        (lambda: CF.correlate2d(X, [[1.0]]), TypeError, r"kernel must be a torch.Tensor, got list"),
        (lambda: L.Filter2d(torch.ones(3, 3, dtype=torch.int32)), TypeError, r"kernel must be a real floating point tensor, got dtype torch.int32"),
        # kernel larger than the input in valid mode (filter2d; the scipy-named functions swap, as scipy.signal)
        (lambda: CF.filter2d(torch.rand(4, 5), K.box(6), "valid"), ValueError, r"kernel of size \(6, 6\) is larger than the input \(4, 5\) in valid mode"),
        (lambda: L.BoxBlur((3, 7), mode="valid")(torch.rand(1, 8, 6)), ValueError, r"kernel of size \(3, 7\) is larger than the input \(8, 6\) in valid mode"),
        # even sizes where odd are needed, non-positive sizes
        (lambda: L.GaussianBlur(1.0, kernel_size=4), ValueError, r"kernel_size must be odd and positive, got 4"),
        (lambda: CF.gaussian_blur2d(X, 1.0, kernel_size=(5, 6)), ValueError, r"kernel_size must be odd and positive, got \(5, 6\)"),
        (lambda: L.BoxBlur(0), ValueError, r"kernel_size must be positive, got 0"),
        (lambda: L.BoxBlur(2.5), TypeError, r"kernel_size must be an int or a pair of ints, got 2.5"),
        (lambda: L.Filter2d("sobel_x", size=4), ValueError, r"size must be 3 or 5, got 4"),
        # sigma
        (lambda: L.GaussianBlur(-1.0), ValueError, r"sigma must be positive and finite, got -1.0"),
        (lambda: L.GaussianBlur(0), ValueError, r"sigma must be positive and finite, got 0"),
        (lambda: CF.gaussian_blur2d(X, (1.0, -2.0)), ValueError, r"sigma must be positive and finite, got \(1.0, -2.0\)"),
        (lambda: CF.gaussian_blur2d(X, "big"), TypeError, r"sigma must be a number or a pair of numbers, got 'big'"),
        (lambda: L.GaussianBlur(1.0, truncate=0), ValueError, r"truncate must be a positive finite number, got 0"),
        # names
        (lambda: CF.correlate2d(X, K.box(3), border="mirror"), ValueError, r"border must be one of \['circular', 'reflect', 'replicate', 'symmetric', 'zeros'\], got 'mirror'"),
        (lambda: L.Sharpen(border="wrap"), ValueError, r"border must be one of .*, got 'wrap'"),
        (lambda: CF.correlate2d(X, K.box(3), mode="half"), ValueError, r"mode must be one of \['full', 'same', 'valid'\], got 'half'"),
        (lambda: L.Laplacian(mode="Same"), ValueError, r"mode must be one of .*, got 'Same'"),
        (lambda: CF.filter2d(X, K.box(3), method="winograd"), ValueError, r"method must be one of \['auto', 'direct', 'separable', 'fft', 'box'\], got 'winograd'"),
        (lambda: CF.correlate2d(X, K.box(3), anchor="left"), ValueError, r"anchor must be one of \['signal', 'ndimage'\], got 'left'"),
        (lambda: L.Sobel(output="angle"), ValueError, r"output must be one of \['x', 'y', 'xy', 'magnitude', 'direction'\], got 'angle'"),
        (lambda: CF.spatial_gradient(X, "roberts"), ValueError, r"operator must be one of .*, got 'roberts'"),
        (lambda: L.Laplacian(6), ValueError, r"neighbours must be 4 or 8, got 6"),
        (lambda: L.Sobel(eps=-1.0), ValueError, r"eps must be a non-negative number, got -1.0"),
        (lambda: P.output_padding(3, "same", anchor="left"), ValueError, r"anchor must be one of \['scipy', 'torch'\], got 'left'"),
        (lambda: P.pad(X, (1, -1, 0, 0), "zeros"), ValueError, r"pads must be non-negative, got \(1, -1, 0, 0\)"),
        (lambda: P.pad(X, (1, 1, 1, 1), 3), TypeError, r"border must be a string, got 3"),
        # channel mismatch
        (lambda: CF.correlate2d(X, torch.rand(4, 3, 3)), ValueError, r"kernel has 4 per-channel kernels but the input has 3 channels"),
        (lambda: L.Filter2d(torch.rand(2, 3, 3))(X), ValueError, r"kernel has 2 per-channel kernels but the input has 3 channels"),
        (lambda: CF.correlate2d(torch.rand(8, 8), torch.rand(2, 3, 3)), ValueError, r"kernel has 2 per-channel kernels but the input has 1 channels"),
        (lambda: CF.separable_correlate2d(X, torch.rand(2, 3), torch.rand(2, 3)), ValueError, r"factors\[0\] has 2 per-channel kernels but the input has 3 channels"),
        # method preconditions
        (lambda: CF.filter2d(X, K.laplacian(4), method="separable"), ValueError, r"method='separable' needs a rank-1 kernel or factors"),
        (lambda: CF.filter2d(X, K.sobel_x(), method="box"), ValueError, r"method='box' needs a constant kernel"),
        (lambda: CF.filter2d(X, None), TypeError, r"kernel must be a torch.Tensor when factors is not given, got None"),
        (lambda: CF.filter2d(X, None, factors=torch.ones(3)), TypeError, r"factors must be a pair \(ky, kx\), got Tensor"),
        (lambda: CF.filter2d(X, K.box(3), factors=(torch.ones(3), torch.ones(5))), ValueError, r"factors have lengths \(3, 5\) but the kernel is \(3, 3\)"),
        (lambda: L.Filter2d(torch.ones(3, 3), sigma=1.0), TypeError, r"kernel_kwargs are only used with a kernel name, got \['sigma'\]"),
        (lambda: L.Filter2d("sobelx"), ValueError, r"unknown kernel name, got 'sobelx'"),
        (lambda: L.Filter2d(torch.ones(0, 3)), ValueError, r"kernel must have shape \(kh, kw\) or \(C, kh, kw\), got \(0, 3\)"),
    ],
)
def test_bad_input_messages(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_empty_inputs_give_empty_outputs():
    for layer in (L.BoxBlur(31), L.GaussianBlur(2.0), L.Sobel("xy"), L.Sharpen(mode="full"), L.Filter2d(K.box(4), mode="valid")):
        y = layer(torch.rand(0, 3, 40, 41))
        assert y.numel() == 0
        assert y.shape[:2] == (0, 3)
    assert CF.correlate2d(torch.rand(0, 3, 10, 10), K.box(3), "full").shape == (0, 3, 12, 12)
    assert CF.correlate2d(torch.rand(2, 0, 10, 10), K.box(3), "valid").shape == (2, 0, 8, 8)
    assert CF.sobel(torch.rand(0, 2, 5, 5), "xy").shape == (0, 2, 2, 5, 5)


def test_nan_stays_local_in_direct_paths():
    x = torch.rand(1, 1, 20, 20)
    x[0, 0, 10, 10] = float("nan")
    for size, method in ((3, "direct"), (31, "box"), (31, "auto"), (5, "separable")):
        y = CF.box_blur2d(x, size, border="zeros", method=method)
        assert int(torch.isnan(y).sum()) == min(size, 20) ** 2 if size < 20 else int(torch.isnan(y).sum()) == 400
    x = torch.rand(1, 1, 60, 60)
    x[0, 0, 30, 30] = float("inf")
    y = CF.box_blur2d(x, 7)
    assert int(torch.isinf(y).sum()) == 49 and not bool(torch.isnan(y).any())
