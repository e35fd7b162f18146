"""Fixed-kernel filtering of volumes: the 3-D counterpart of :mod:`cnnconv.functional`.

Conventions (those of :mod:`cnnconv.functional`, with one more axis):

* Input ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``; the output has the input's
  number of dimensions. Filtering is depthwise: a kernel ``(kd, kh, kw)`` is shared by all
  channels, a kernel ``(C, kd, kh, kw)`` gives one kernel per channel.
* ``mode="full"|"same"|"valid"`` with scipy.signal's output sizes; :func:`filter3d` and the
  filters put kernel element ``k // 2`` on the output voxel (scipy.ndimage).
* ``border``: any name :func:`cnnconv.engines.padding.check_border` accepts, applied to each axis in
  turn (scipy.ndimage ``constant``/``mirror``/``nearest``/``wrap`` for
  ``zeros``/``reflect``/``replicate``/``circular``). Every filter and layer defaults to
  ``"reflect"``, as in 2-D; :func:`correlate3d` / :func:`convolve3d` take scipy.signal's
  defaults (``mode="full"``, zeros).
* Derivative outputs are ordered x (W, last axis), y (H), z (D), as in kornia's
  ``spatial_gradient3d``.

:func:`filter3d` is the one function that decides how a filter is computed: ``"direct"``
(depthwise ``F.conv3d``) or ``"separable"`` (three 1-D passes for a rank-1 kernel).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from . import functional as CF
from . import kernels as K
from cnnconv.engines.padding import check_border, check_mode, output_padding, pad

__all__ = [
    "METHODS3D",
    "SOBEL3D_OUTPUTS",
    "pad3d",
    "separable_factors3d",
    "filter3d",
    "correlate3d",
    "convolve3d",
    "box_blur3d",
    "gaussian_blur3d",
    "apply_gradient3d",
    "sobel3d",
    "spatial_gradient3d",
    "laplacian3d",
]

METHODS3D = ("auto", "direct", "separable")
SOBEL3D_OUTPUTS = ("x", "y", "z", "xyz", "magnitude")

# Rank-1 kernels with more taps than this (3x3x3) are computed as three 1-D passes by "auto".
_SEPARABLE_MIN_TAPS = 27


# --------------------------------------------------------------------------- validation


def _check_input3d(input) -> torch.Tensor:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.is_complex() or not input.is_floating_point():
        raise TypeError(f"input must be a real floating point tensor, got dtype {input.dtype}")
    if not 3 <= input.ndim <= 5:
        raise ValueError(f"input must have shape (D, H, W), (C, D, H, W) or (B, C, D, H, W), got {tuple(input.shape)}")
    return input


def _check_method3d(method) -> str:
    if method not in METHODS3D:
        raise ValueError(f"method must be one of {list(METHODS3D)}, got {method!r}")
    return method


def _check_kernel3d(kernel, x5: torch.Tensor) -> torch.Tensor:
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.is_complex() or not (kernel.is_floating_point() or kernel.dtype in CF._INT_DTYPES):
        raise TypeError(f"kernel must be a real tensor, got dtype {kernel.dtype}")
    if kernel.ndim not in (3, 4):
        raise ValueError(f"kernel must have shape (kd, kh, kw) or (C, kd, kh, kw), got {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise ValueError(f"kernel must not be empty, got shape {tuple(kernel.shape)}")
    if kernel.ndim == 4 and kernel.shape[0] != x5.shape[1]:
        raise ValueError(
            f"kernel has {kernel.shape[0]} per-channel kernels but the input has {x5.shape[1]} "
            f"channels (kernel shape {tuple(kernel.shape)}, input shape {tuple(x5.shape)})"
        )
    return kernel.to(device=x5.device, dtype=x5.dtype)


def _triple(value, name: str, odd: bool = False) -> tuple[int, int, int]:
    """An int or ``(kd, kh, kw)`` of positive (and, with ``odd``, odd) ints."""
    sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
    if len(sizes) != 3:
        raise ValueError(f"{name} must be an int or a triple, got {value!r}")
    for v in sizes:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a triple of ints, got {value!r}")
        if v < 1 or (odd and v % 2 == 0):
            raise ValueError(f"{name} must be {'odd and ' if odd else ''}positive, got {value!r}")
    return tuple(int(v) for v in sizes)


def _sigma_triple(sigma) -> tuple[float, float, float]:
    sigmas = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma,) * 3
    if len(sigmas) != 3:
        raise ValueError(f"sigma must be a number or a triple (sigma_z, sigma_y, sigma_x), got {sigma!r}")
    out = []
    for s in sigmas:
        if isinstance(s, torch.Tensor) and s.numel() == 1:
            s = float(s)
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"sigma must be a number or a triple of numbers, got {sigma!r}")
        if not (s > 0) or not math.isfinite(s):
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        out.append(float(s))
    return out[0], out[1], out[2]


def _check_truncate(truncate) -> float:
    if isinstance(truncate, bool) or not isinstance(truncate, numbers.Real) or not (truncate > 0) or not math.isfinite(truncate):
        raise ValueError(f"truncate must be a positive finite number, got {truncate!r}")
    return float(truncate)


# --------------------------------------------------------------------------- padding and structure


def pad3d(x: torch.Tensor, pads, border: str = "zeros") -> torch.Tensor:
    """Pad the last three dimensions of ``x`` with a border mode.

    Each axis is padded on its own with :func:`cnnconv.engines.padding.pad` (depth through a
    transposed view), so every border it supports works here, wide margins included.

    Args:
        x: tensor with at least three dimensions ``(..., D, H, W)``.
        pads: ``(front, back, top, bottom, left, right)``, non-negative.
        border: a border name of :func:`cnnconv.engines.padding.check_border`.

    Returns:
        Tensor ``(..., D + front + back, H + top + bottom, W + left + right)``.

    Example:
        >>> pad3d(torch.arange(2.0).reshape(2, 1, 1), (1, 2, 0, 0, 0, 0), "circular").flatten().tolist()
        [1.0, 0.0, 1.0, 0.0, 1.0]
    """
    check_border(border)
    pads = tuple(pads)
    if len(pads) != 6 or any(isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0 for p in pads):
        raise ValueError(f"pads must be six non-negative ints (front, back, top, bottom, left, right), got {pads!r}")
    if x.ndim < 3:
        raise ValueError(f"input must have at least 3 dimensions, got shape {tuple(x.shape)}")
    front, back = pads[:2]
    if front or back:
        x = pad(x.transpose(-3, -2), (front, back, 0, 0), border).transpose(-3, -2)
    return pad(x, pads[2:], border)


def separable_factors3d(kernel: torch.Tensor, rtol: float = 1e-5):
    """Factor a rank-1 3-D kernel into three vectors, or return ``None``.

    The kernel is split as depth x plane, then the plane as column x row (both with
    :func:`cnnconv.kernels.separable_factors`), and the product of the three factors is checked
    against the kernel: accepted when ``max|kernel - kz x ky x kx| <= rtol * max|kernel|``.
    Kernels with a NaN or inf are never separable.

    Args:
        kernel: ``(kd, kh, kw)``, or ``(C, kd, kh, kw)`` (separable only when every channel is).
        rtol: tolerance relative to the largest entry.

    Returns:
        ``(kz, ky, kx)`` with shapes ``(kd,)``, ``(kh,)``, ``(kw,)`` (or ``(C, k)`` each), in the
        kernel's dtype (the default dtype for integer kernels) and device; ``None`` when the
        kernel is not rank 1.

    Example:
        >>> k = torch.ones(3, 3, 3)
        >>> kz, ky, kx = separable_factors3d(k)
        >>> torch.equal(kz[:, None, None] * ky[:, None] * kx, k)
        True
        >>> separable_factors3d(torch.eye(3).expand(3, 3, 3)) is None
        True
    """
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (3, 4):
        raise ValueError(f"kernel must have shape (kd, kh, kw) or (C, kd, kh, kw), got {tuple(kernel.shape)}")
    k = kernel.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        return None
    kd, kh, kw = k.shape[-3:]
    depth = K.separable_factors(k.reshape(*k.shape[:-3], kd, kh * kw), rtol)
    if depth is None:
        return None
    kz, plane = depth
    rows = K.separable_factors(plane.reshape(*plane.shape[:-1], kh, kw), rtol)
    if rows is None:
        return None
    ky, kx = rows
    err = (k - _outer3(kz, ky, kx)).abs().flatten(-3).amax(-1)
    if bool((err > rtol * k.abs().flatten(-3).amax(-1)).any()):
        return None
    dtype = kernel.dtype if kernel.is_floating_point() else torch.get_default_dtype()
    return tuple(f.to(dtype=dtype) for f in (kz, ky, kx))


def _outer3(kz: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """``(kd, kh, kw)`` (or per channel ``(C, kd, kh, kw)``) kernel from its three factors."""
    return kz[..., :, None, None] * ky[..., None, :, None] * kx[..., None, None, :]


# --------------------------------------------------------------------------- engines
# Both engines take a padded batch (B, C, Dp, Hp, Wp) and return the valid correlation.


def _direct_valid3d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    weight = kernel.expand(c, *kernel.shape) if kernel.ndim == 3 else kernel
    return F.conv3d(x, weight.unsqueeze(1).contiguous(), groups=c)


def _axis_pass(planes: torch.Tensor, f: torch.Tensor, axis: int) -> torch.Tensor:
    """Valid correlation of ``planes (N, D, H, W)`` along ``axis`` (1, 2 or 3) with ``f``,
    ``(k,)`` shared or ``(N, k)`` per plane."""
    n = planes.shape[0]
    if f.shape[-1] == 1:  # a scale
        return planes * (f.reshape(n, 1, 1, 1) if f.ndim == 2 else f)
    moved = planes.movedim(axis, 1)
    rest = moved.shape[2:]
    y = CF._vertical_pass(moved.reshape(n, moved.shape[1], -1), f)
    return y.reshape(n, y.shape[1], *rest).movedim(1, axis)


def _separable_valid3d(x: torch.Tensor, kz: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    if kz.ndim == 2:  # per-channel factors -> per-plane factors
        kz, ky, kx = kz.repeat(b, 1), ky.repeat(b, 1), kx.repeat(b, 1)
    y = x.reshape(b * c, *x.shape[2:])
    for axis, f in ((1, kz), (2, ky), (3, kx)):
        y = _axis_pass(y, f, axis)
    return y.reshape(b, c, *y.shape[1:])


# --------------------------------------------------------------------------- dispatch


def filter3d(
    input: torch.Tensor,
    kernel: torch.Tensor | None,
    mode: str = "same",
    border: str = "reflect",
    *,
    method: str = "auto",
    factors=None,
    anchor: str = "scipy",
) -> torch.Tensor:
    """Depthwise 3-D correlation with a border mode: the dispatch every 3-D filter goes through.

    Methods: ``"direct"`` (depthwise ``F.conv3d``), ``"separable"`` (three 1-D passes; needs a
    rank-1 kernel, see :func:`separable_factors3d`, or ``factors``) or ``"auto"``: separable
    for rank-1 kernels of more than 27 taps, direct otherwise. Kernels that require grad are
    applied directly so the gradient reaches them. An input holding a NaN or inf is filtered
    directly, so non-finite values spread exactly as through ``F.conv3d`` with the full kernel.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)`` floating point tensor.
        kernel: ``(kd, kh, kw)`` shared by all channels or ``(C, kd, kh, kw)`` per channel. May
            be ``None`` when ``factors`` is given (the 3-D kernel is then only built for the
            direct method).
        mode: ``"full"``, ``"same"`` or ``"valid"`` (scipy.signal output sizes).
        border: ``"reflect"`` (default), ``"zeros"``, ``"replicate"``, ``"circular"`` or any
            other name :func:`cnnconv.engines.padding.check_border` accepts.
        method: ``"auto"``, ``"direct"`` or ``"separable"``.
        factors: optional ``(kz, ky, kx)`` with ``kernel = kz x ky x kx``: ``(kd,)``, ``(kh,)``,
            ``(kw,)`` or per channel ``(C, k)`` each.
        anchor: where an even kernel sits in ``same`` mode: ``"scipy"`` (element ``k // 2`` on
            the output voxel) or ``"torch"`` (``(k - 1) // 2``). See :mod:`cnnconv.engines.padding`.

    Returns:
        Contiguous tensor with the input's number of dimensions; each spatial size is
        ``n + k - 1`` (full), ``n`` (same) or ``n - k + 1`` (valid).

    Example:
        >>> x = torch.rand(2, 3, 8, 16, 16)
        >>> filter3d(x, torch.ones(3, 3, 3) / 27, border="reflect").shape
        torch.Size([2, 3, 8, 16, 16])
    """
    x = _check_input3d(input)
    ndim = x.ndim
    x5 = x.reshape((1,) * (5 - ndim) + tuple(x.shape))
    check_mode(mode)
    check_border(border)
    _check_method3d(method)
    if kernel is not None:
        kernel = _check_kernel3d(kernel, x5)
        size = tuple(kernel.shape[-3:])
    if factors is not None:
        if not isinstance(factors, (tuple, list)) or len(factors) != 3:
            got = f"{len(factors)} factors" if isinstance(factors, (tuple, list)) else type(factors).__name__
            raise TypeError(f"factors must be a triple (kz, ky, kx), got {got}")
        factors = tuple(CF._check_kernel(f, x5, f"factors[{i}]", ndims=(1, 2)) for i, f in enumerate(factors))
        if len({f.ndim for f in factors}) != 1:
            raise ValueError(f"factors must all be shared or all per-channel, got shapes {[tuple(f.shape) for f in factors]}")
        lengths = tuple(f.shape[-1] for f in factors)
        if kernel is not None and lengths != size:
            raise ValueError(f"factors have lengths {lengths} but the kernel is {size}")
        size = lengths
    elif kernel is None:
        raise TypeError("kernel must be a torch.Tensor when factors is not given, got None")
    b, c = x5.shape[:2]
    if mode == "valid" and any(k > n for k, n in zip(size, x5.shape[2:])):
        raise ValueError(f"kernel of size {size} is larger than the input {tuple(x5.shape[2:])} in valid mode")
    kd, kh, kw = size
    pads = output_padding((kd, kh), mode, anchor=anchor) + output_padding((1, kw), mode, anchor=anchor)[2:]
    out_size = [n + pads[2 * i] + pads[2 * i + 1] - k + 1 for i, (n, k) in enumerate(zip(x5.shape[2:], size))]
    if x5.numel() == 0:
        return CF._from_batch(x5.new_zeros(b, c, *(max(n, 0) for n in out_size)), ndim)

    learn = (kernel is not None and kernel.requires_grad) or (factors is not None and any(f.requires_grad for f in factors))
    compiling = torch.compiler.is_compiling()
    if factors is None and not learn and not compiling and method in ("auto", "separable"):
        factors = separable_factors3d(kernel)
    if method == "separable" and factors is None:
        if learn:
            raise ValueError("method='separable' cannot pass gradients to a kernel that requires grad: give its factors or method='direct'")
        raise ValueError("method='separable' needs a rank-1 kernel or factors, got a kernel of higher rank")
    if method == "auto":
        method = "separable" if factors is not None and not learn and kd * kh * kw > _SEPARABLE_MIN_TAPS else "direct"
    if method == "separable" and not compiling and not bool(torch.isfinite(x5.detach().sum())):
        method = "direct"  # NaN/inf spread as through the full kernel
    xp = pad3d(x5, pads, border)
    if method == "separable":
        out = _separable_valid3d(xp, *factors)
    else:
        out = _direct_valid3d(xp, _outer3(*factors) if kernel is None else kernel)
    return CF._from_batch(out.contiguous(), ndim)


# --------------------------------------------------------------------------- correlate / convolve


def correlate3d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """3-D correlation (no kernel flip, PyTorch's convention) of every channel.

    Agrees with ``scipy.signal.correlate`` on volumes (``border="zeros"``) in every mode, with
    its defaults (``mode="full"``, zeros), and with ``scipy.ndimage.correlate`` for each border
    in ``same`` mode.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        kernel: ``(kd, kh, kw)`` shared or ``(C, kd, kh, kw)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: see :func:`filter3d`.
        method: see :func:`filter3d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"``
            (``scipy.signal.correlate``) or ``"ndimage"`` (``scipy.ndimage.correlate``); both
            put kernel element ``k // 2`` on the output voxel.

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> x = torch.arange(27.0).reshape(3, 3, 3)
        >>> k = torch.zeros(3, 3, 3); k[2, 1, 1] = 1.0
        >>> correlate3d(x, k, "same")[0, 1, 1].item()
        13.0
    """
    return filter3d(input, kernel, mode, border, method=method, anchor=CF._padding_anchor(anchor, False, two_d=False))


def convolve3d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """3-D convolution: correlation with the kernel flipped in all three axes.

    Agrees with ``scipy.signal.convolve`` on volumes (``border="zeros"``) in every mode, and
    with ``scipy.ndimage.convolve`` for each border in ``same`` mode.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        kernel: ``(kd, kh, kw)`` shared or ``(C, kd, kh, kw)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: see :func:`filter3d`.
        method: see :func:`filter3d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"``
            (``scipy.signal.convolve``) or ``"ndimage"`` (``scipy.ndimage.convolve``).

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> x = torch.arange(27.0).reshape(3, 3, 3)
        >>> k = torch.zeros(3, 3, 3); k[2, 1, 1] = 1.0
        >>> convolve3d(x, k, "same")[1, 1, 1].item()
        4.0
    """
    if isinstance(kernel, torch.Tensor) and kernel.ndim >= 3:
        kernel = kernel.flip(-3, -2, -1)
    return filter3d(input, kernel, mode, border, method=method, anchor=CF._padding_anchor(anchor, True, two_d=False))


# --------------------------------------------------------------------------- filters


def _box_factors(size, normalized: bool, dtype, device):
    """``(kz, ky, kx)`` of a box window: the scale rides on the depth factor."""
    kd, kh, kw = size
    scale = 1.0 / (kd * kh * kw) if normalized else 1.0
    opts = dict(dtype=dtype, device=device)
    return torch.full((kd,), scale, **opts), torch.ones(kh, **opts), torch.ones(kw, **opts)


def box_blur3d(
    input: torch.Tensor,
    kernel_size=3,
    border: str = "reflect",
    mode: str = "same",
    *,
    normalized: bool = True,
    method: str = "auto",
) -> torch.Tensor:
    """Box (mean) filter of volumes; ``scipy.ndimage.uniform_filter`` under the matching border.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        kernel_size: int or ``(kd, kh, kw)``; even sizes are anchored at ``k // 2``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or sum (False) over the window.
        method: see :func:`filter3d`.

    Returns:
        Filtered tensor with the input's number of dimensions.

    Example:
        >>> box_blur3d(torch.ones(1, 6, 6, 6), 5).allclose(torch.ones(1, 6, 6, 6))
        True
    """
    _check_input3d(input)
    factors = _box_factors(_triple(kernel_size, "kernel_size"), normalized, input.dtype, input.device)
    return filter3d(input, None, mode, border, method=method, factors=factors)


def _gaussian_factors(sigma, size, dtype, device):
    return tuple(K.gaussian1d(s, k, dtype=dtype, device=device) for s, k in zip(sigma, size))


def _gaussian_size(sigma, kernel_size, truncate) -> tuple[int, int, int]:
    if kernel_size is None:
        return tuple(K.gaussian_size_from_sigma(s, truncate) for s in sigma)
    return _triple(kernel_size, "kernel_size", odd=True)


def gaussian_blur3d(
    input: torch.Tensor,
    sigma,
    kernel_size=None,
    border: str = "reflect",
    mode: str = "same",
    *,
    truncate: float = 4.0,
    method: str = "auto",
) -> torch.Tensor:
    """Gaussian blur of volumes as three 1-D passes (the 3-D kernel is never built).

    The kernel size defaults to ``2 * round(truncate * sigma) + 1`` per axis, as
    ``scipy.ndimage.gaussian_filter``.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        sigma: positive float or ``(sigma_z, sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kd, kh, kw)``; default from sigma and ``truncate``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: ``"auto"`` (three 1-D passes), ``"separable"`` or ``"direct"``.

    Returns:
        Blurred tensor with the input's number of dimensions.

    Example:
        >>> gaussian_blur3d(torch.rand(1, 2, 8, 16, 16), (1.0, 2.0, 2.0)).shape
        torch.Size([1, 2, 8, 16, 16])
    """
    _check_input3d(input)
    sigma = _sigma_triple(sigma)
    truncate = _check_truncate(truncate)
    factors = _gaussian_factors(sigma, _gaussian_size(sigma, kernel_size, truncate), input.dtype, input.device)
    method = "separable" if _check_method3d(method) == "auto" else method
    return filter3d(input, None, mode, border, method=method, factors=factors)


def _gradient_factors3d(operator: str, normalized: bool, dtype, device):
    """``(smooth, diff)`` with the x kernel ``smooth x smooth x diff`` (depth, rows, columns)."""
    CF._check_choice(operator, "operator", tuple(CF._DERIVATIVE_FACTORS))
    s, d = CF._derivative_factors(operator, False, dtype, device)
    if normalized:
        d = d / (s.abs().sum() ** 2 * d.abs().sum())
    return s, d


def apply_gradient3d(input, smooth, diff, output="magnitude", border="reflect", mode="same", *, eps=0.0, method="auto"):
    """Gradient filter of volumes from 1-D factors: derivative ``diff`` along one axis,
    ``smooth`` along the two others.

    The common engine of :func:`sobel3d`, :func:`spatial_gradient3d` and the 3-D gradient layers.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        smooth: smoothing factor ``(k,)``.
        diff: derivative factor ``(k,)``, positive towards +x / +y / +z under correlation.
        output: ``"x"``, ``"y"``, ``"z"``, ``"xyz"`` (stacked at dim -4) or ``"magnitude"``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude ``sqrt(gx^2 + gy^2 + gz^2 + eps)``; 0 computes the Euclidean norm
            (gradient 0 where all three derivatives vanish).
        method: see :func:`filter3d`.

    Returns:
        Tensor with the input's number of dimensions (``"xyz"`` adds a dimension of size 3 at -4).

    Example:
        >>> s, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> apply_gradient3d(torch.rand(2, 6, 6, 6), s, d, "xyz").shape
        torch.Size([2, 3, 6, 6, 6])
    """
    _check_input3d(input)
    CF._check_choice(output, "output", SOBEL3D_OUTPUTS)
    eps = CF._check_eps(eps)
    factors = {"x": (smooth, smooth, diff), "y": (smooth, diff, smooth), "z": (diff, smooth, smooth)}
    names = "xyz" if output in ("xyz", "magnitude") else output
    grads = [filter3d(input, None, mode, border, method=method, factors=factors[n]) for n in names]
    if output in ("x", "y", "z"):
        return grads[0]
    if output == "xyz":
        return torch.stack(grads, dim=-4)
    gx, gy, gz = grads
    sq = gx * gx + gy * gy + gz * gz  # torch.linalg.vector_norm over the stacked dim is ~40x slower
    if eps > 0:
        return torch.sqrt(sq + eps)
    if torch.is_grad_enabled() and sq.requires_grad:
        # sqrt has no derivative at 0 (flat regions): give them the zero subgradient, not NaN
        flat = sq == 0
        return torch.where(flat, torch.zeros_like(sq), torch.sqrt(torch.where(flat, torch.ones_like(sq), sq)))
    return sq.sqrt_()


def sobel3d(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    """3-D Sobel gradient: ``[-1, 0, 1]`` along one axis, ``[1, 2, 1]`` along the two others.

    ``scipy.ndimage.sobel(x, axis)`` per axis (x: last axis, y: rows, z: depth), positive where
    intensity grows along the axis.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        output: ``"x"``, ``"y"``, ``"z"``, ``"xyz"`` (stacked at dim -4:
            ``(..., C, 3, D, H, W)``) or ``"magnitude"``.
        normalized: divide the kernels by the sum of their absolute values (32).
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: the magnitude is ``sqrt(gx^2 + gy^2 + gz^2 + eps)``; 0 the Euclidean norm.
        method: see :func:`filter3d`.

    Returns:
        Tensor with the input's number of dimensions (one more for ``"xyz"``).

    Example:
        >>> x = torch.arange(4.0).expand(4, 4, 4)
        >>> sobel3d(x, "x", border="replicate")[1, 1, 1].item()
        32.0
    """
    _check_input3d(input)
    s, d = _gradient_factors3d("sobel", normalized, input.dtype, input.device)
    return apply_gradient3d(input, s, d, output, border, mode, eps=eps, method=method)


def spatial_gradient3d(
    input: torch.Tensor,
    operator: str = "diff",
    normalized: bool = True,
    border: str = "reflect",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """First derivatives stacked as ``(..., C, 3, D, H, W)`` (x, y, z), like kornia's.

    With ``border="replicate"`` it equals ``kornia.filters.spatial_gradient3d(input)``
    (central differences ``0.5 * (x[i+1] - x[i-1])``); the default border is ``"reflect"``,
    that of every fixed filter.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        operator: ``"diff"`` (``[-1, 0, 1]``, no smoothing), ``"sobel"``, ``"prewitt"`` or
            ``"scharr"`` (their smoothing factor along the two other axes).
        normalized: divide the kernels by the sum of their absolute values.
        border: see :func:`filter3d`.
        method: see :func:`filter3d`.

    Returns:
        Tensor ``(..., C, 3, D, H, W)``.

    Example:
        >>> spatial_gradient3d(torch.rand(1, 2, 4, 8, 8)).shape
        torch.Size([1, 2, 3, 4, 8, 8])
    """
    _check_input3d(input)
    s, d = _gradient_factors3d(operator, normalized, input.dtype, input.device)
    return apply_gradient3d(input, s, d, "xyz", border, "same", method=method)


def _laplacian_kernel3d(neighbours: int, normalized: bool, dtype, device) -> torch.Tensor:
    """3x3x3 Laplacian: 6 face neighbours or all 26 neighbours weighted 1, centre minus their count."""
    if neighbours == 6:
        k = torch.zeros(3, 3, 3, dtype=torch.float64)
        k[1, 1, :] = k[1, :, 1] = k[:, 1, 1] = 1.0
    elif neighbours == 26:
        k = torch.ones(3, 3, 3, dtype=torch.float64)
    else:
        raise ValueError(f"neighbours must be 6 or 26, got {neighbours!r}")
    k[1, 1, 1] = -float(neighbours)
    if normalized:
        k = k / k.abs().sum()
    return k.to(dtype=dtype, device=device)


def laplacian3d(
    input: torch.Tensor,
    neighbours: int = 6,
    normalized: bool = False,
    border: str = "reflect",
    mode: str = "same",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """3x3x3 discrete Laplacian of volumes.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        neighbours: 6 (face neighbours, centre -6: ``scipy.ndimage.laplace``) or 26 (all
            neighbours, centre -26).
        normalized: divide the kernel by the sum of its absolute values.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`filter3d` (the kernel is not rank 1: ``"direct"``).

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> laplacian3d(torch.ones(4, 4, 4), border="replicate").abs().max().item()
        0.0
    """
    _check_input3d(input)
    k = _laplacian_kernel3d(neighbours, normalized, input.dtype, input.device)
    return filter3d(input, k, mode, border, method="direct" if _check_method3d(method) == "auto" else method)
