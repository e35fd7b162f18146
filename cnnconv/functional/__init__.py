"""The public functional API: apply kernels to images.

Conventions:

* Input ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; the output has the input's number of
  dimensions. Each channel is filtered on its own (depthwise): a kernel ``(kh, kw)`` is shared
  by all channels, a kernel ``(C, kh, kw)`` gives one kernel per channel.
* ``correlate*`` slide the kernel as given (PyTorch's ``F.conv2d`` convention); ``convolve*``
  flip it first (the mathematical definition, ``scipy.signal.convolve2d``).
* ``mode="full"|"same"|"valid"`` with scipy.signal's output sizes. Even kernels in ``same``
  mode: :func:`correlate2d` / :func:`convolve2d` follow scipy.signal by default
  (``anchor="signal"``) or scipy.ndimage (``anchor="ndimage"``); the filters (box, Gaussian,
  Sobel...) and :func:`filter2d` put kernel element ``k // 2`` on the output pixel, as
  scipy.ndimage and OpenCV do (see :mod:`cnnconv.engines.padding`).
* ``border="zeros"|"reflect"|"replicate"|"circular"|"symmetric"``: how the input is extended
  beyond its edges (scipy.ndimage ``constant``/``mirror``/``nearest``/``wrap``/``reflect``;
  OpenCV ``BORDER_CONSTANT``/``BORDER_REFLECT_101``/``BORDER_REPLICATE``/``BORDER_WRAP``/
  ``BORDER_REFLECT``).
* One default border, ``"reflect"``, for every filter (:func:`filter2d`, the blurs, the
  gradients, :func:`laplacian`, :func:`sharpen`, :func:`spatial_gradient`) and every layer: it
  is OpenCV's default (``BORDER_REFLECT_101``) and kornia's, it invents no edge at the image
  border (zeros darken it and a gradient then sees a step there) and, unlike ``replicate``,
  keeps the border pixel's neighbourhood as varied as the interior's. The scipy-named
  functions (:func:`correlate2d`, :func:`convolve2d`, :func:`correlate1d`,
  :func:`convolve1d`) take scipy.signal's defaults instead: ``mode="full"``, zeros.

:func:`filter2d` is the one function that decides how a filter is computed; every public
function and every layer of :mod:`cnnconv.filters` goes through it.
"""

from __future__ import annotations

import math
import numbers
import threading

import torch
import torch.nn.functional as F

from cnnconv.engines import banded as _banded
from .. import kernels as K
from cnnconv.engines.padding import check_border, check_mode, fill_border, fills_from_interior, output_padding, pad, tracing

__all__ = [
    "METHODS",
    "filter2d",
    "correlate2d",
    "convolve2d",
    "correlate1d",
    "convolve1d",
    "separable_correlate2d",
    "box_blur2d",
    "gaussian_blur2d",
    "sobel",
    "prewitt",
    "scharr",
    "laplacian",
    "sharpen",
    "spatial_gradient",
    "apply_gradient",
    "fft_conv1d",
    "fft_conv2d",
]

METHODS = ("auto", "direct", "separable", "fft", "box")
GRADIENT_OUTPUTS = ("x", "y", "xy", "magnitude", "direction")

# Own fallback rule when the planner is unavailable: non-separable kernels with more taps than
# this use the FFT engine.
_FFT_MIN_TAPS = 17 * 17


# --------------------------------------------------------------------------- validation


def _check_input(input, name: str = "input", min_ndim: int = 2, max_ndim: int = 4) -> torch.Tensor:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if input.is_complex() or not input.is_floating_point():
        raise TypeError(f"{name} must be a real floating point tensor, got dtype {input.dtype}")
    if not min_ndim <= input.ndim <= max_ndim:
        shapes = {2: "(H, W)", 3: "(C, H, W)", 4: "(B, C, H, W)"}
        if min_ndim == 1:
            shapes = {1: "(L,)", 2: "(C, L)", 3: "(B, C, L)"}
        expected = ", ".join(shapes[i] for i in range(min_ndim, max_ndim + 1))
        raise ValueError(f"{name} must have shape {expected}, got {tuple(input.shape)}")
    return input


def _standard_layout(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` in the memory layout ``nn.Conv2d`` gives for input ``x``: channels_last for a
    channels_last batch, contiguous otherwise. The channels_last engines fold the planes of
    the batch innermost; putting them back costs one copy of the output."""
    if y.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return y.contiguous(memory_format=torch.channels_last)
    return y.contiguous()


def _to_batch(x: torch.Tensor) -> torch.Tensor:
    while x.ndim < 4:
        x = x.unsqueeze(0)
    return x


def _from_batch(y: torch.Tensor, ndim: int) -> torch.Tensor:
    while y.ndim > ndim:
        y = y.squeeze(0)
    return y


def _check_kernel(kernel, x4: torch.Tensor, name: str = "kernel", ndims=(2, 3)) -> torch.Tensor:
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.is_complex() or not (kernel.is_floating_point() or kernel.dtype in _INT_DTYPES):
        raise TypeError(f"{name} must be a real tensor, got dtype {kernel.dtype}")
    if kernel.ndim not in ndims:
        shapes = " or ".join({1: "(k,)", 2: "(kh, kw)", 3: "(C, kh, kw)"}.get(d, "") for d in ndims)
        if ndims == (1, 2):
            shapes = "(k,) or (C, k)"
        raise ValueError(f"{name} must have shape {shapes}, got {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(kernel.shape)}")
    if kernel.ndim == max(ndims) and kernel.shape[0] != x4.shape[1]:
        raise ValueError(
            f"{name} has {kernel.shape[0]} per-channel kernels but the input has "
            f"{x4.shape[1]} channels (kernel shape {tuple(kernel.shape)}, input shape "
            f"{tuple(x4.shape)})"
        )
    return kernel.to(device=x4.device, dtype=x4.dtype)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return method


def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


# --------------------------------------------------------------------------- engines
# Every engine takes an already padded batch ``(B, C, Hp, Wp)`` and returns the valid
# correlation ``(B, C, Hp - kh + 1, Wp - kw + 1)``.


def _depthwise_weight(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """``(kh, kw)`` or ``(C, kh, kw)`` -> ``(C, 1, kh, kw)`` contiguous."""
    if kernel.ndim == 2:
        kernel = kernel.expand(channels, -1, -1)
    return kernel.unsqueeze(1).contiguous()


# With fewer planes than this, the separable engine views the columns of each plane as
# channels instead (see _vertical_pass).
_FOLD_MIN_PLANES = 4


def _fold(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(1, B*C, H, W)`` in channels_last.

    oneDNN's depthwise convolution is far faster in channels_last than in NCHW on the CPU, and
    vectorises over channels: a 3-channel image leaves most vector lanes empty, every plane of
    the batch as a channel fills them.
    """
    b, c, h, w = x.shape
    y = x.reshape(1, b * c, h, w)
    if y.stride(1) == 1 and y.stride(3) == b * c and y.stride(2) == w * b * c:
        return y.as_strided(y.shape, (h * w * b * c, 1, w * b * c, b * c))  # already folded
    return y.contiguous(memory_format=torch.channels_last)


# The padded, folded copy that the direct and separable engines make of their input is written
# into a buffer kept per thread and reused by the next call of the same shape (CPU only, at
# most this many bytes). A fresh full-size buffer per call costs a page fault per 4 KiB page
# whenever the C allocator has handed the previous one back to the system, which it does or
# not depending on the process's allocation history (measured: sharpen on 4x3x512x512 took
# 15-20 ms in a fresh process, 4-5 ms in a busy one).
_WORKSPACE_MAX_BYTES = 64 << 20
_workspace = threading.local()


def clear_workspace() -> None:
    """Release this thread's reusable padding buffer (see ``_WORKSPACE_MAX_BYTES``)."""
    _workspace.fold = None


def _fold_buffer(shape, dtype, device, reuse: bool) -> torch.Tensor:
    if reuse and device.type == "cpu":
        buf = getattr(_workspace, "fold", None)
        if buf is not None and buf.shape == shape and buf.dtype == dtype:
            return buf
    buf = torch.empty(shape, dtype=dtype, device=device, memory_format=torch.channels_last)
    if reuse and device.type == "cpu" and buf.numel() * buf.element_size() <= _WORKSPACE_MAX_BYTES:
        _workspace.fold = buf
    return buf


def _fold_pad(x: torch.Tensor, pads, border: str, reuse: bool = False) -> torch.Tensor:
    """``_fold(pad(x, pads, border))`` in one copy: the planes are written straight into the
    interior of a channels_last buffer whose margins are then filled from it.

    ``reuse``: the buffer may be this thread's reusable workspace. Only for callers whose
    result holds no reference to it (no autograd graph saves it, nothing returns a view).
    """
    b, c, h, w = x.shape
    top, bottom, left, right = pads
    small = fills_from_interior(border, top, bottom, h) and fills_from_interior(border, left, right, w)
    if not small or (torch.is_grad_enabled() and x.requires_grad) or x.numel() == 0:
        return _fold(pad(x, pads, border))
    buf = _fold_buffer((1, b * c, h + top + bottom, w + left + right), x.dtype, x.device, reuse)
    buf[:, :, top : top + h, left : left + w].copy_(x.reshape(1, b * c, h, w))
    fill_border(buf.narrow(2, top, h), 3, left, right, w, border)  # columns of the interior rows
    fill_border(buf, 2, top, bottom, h, border)  # then whole rows, corners included
    return buf


def _plane_weight(kernel: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(kh, kw)`` shared or ``(C, kh, kw)`` per channel -> ``(B*C, 1, kh, kw)``."""
    if kernel.ndim == 2:
        return kernel.expand(b * c, *kernel.shape).unsqueeze(1).contiguous()
    return kernel.repeat(b, 1, 1).unsqueeze(1)


def _unfold(y: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(1, B*C, H, W)`` channels_last -> ``(B, C, H, W)`` as a view (no copy)."""
    return y[0].view(b, c, *y.shape[-2:])


def _direct_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    y = F.conv2d(_fold(x), _plane_weight(kernel, b, c), groups=b * c)
    return _unfold(y, b, c)


def _lane_channels(width: int) -> int:
    """Largest of 16, 8, 4, 2, 1 dividing ``width`` (channel count of the column view)."""
    for c in (16, 8, 4, 2):
        if width % c == 0:
            return c
    return 1


def _vertical_pass(x: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """Valid correlation of every column of ``x (N, Hp, W)`` with ``ky (k,)`` or ``(N, k)``.

    The NCHW rows are viewed as a channels_last tensor whose channels are groups of adjacent
    columns, so oneDNN's depthwise kernel runs with full vector lanes and no copy.
    """
    n, hp, w = x.shape
    k = ky.shape[-1]
    x = x.contiguous()
    if ky.ndim == 1:
        c = _lane_channels(w)
        view = x.view(n, hp, w // c, c).permute(0, 3, 1, 2)  # channels_last (n, c, hp, w/c)
        weight = ky.reshape(1, 1, k, 1).expand(c, 1, k, 1).contiguous()
        y = F.conv2d(view, weight, groups=c)
        return y.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(n, hp - k + 1, w)
    # one kernel per plane: the planes are the channels
    view = x.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    return F.conv2d(view, ky.reshape(n, 1, k, 1), groups=n)[0]


def _separable_valid(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    b, c, hp, wp = x.shape
    kh, kw = ky.shape[-1], kx.shape[-1]
    # A length-1 factor is a scale: fold it into the other factor.
    if kh == 1:
        kx, ky = kx * ky, torch.ones_like(ky)
    elif kw == 1:
        ky, kx = ky * kx, torch.ones_like(kx)
    if kh == 1 and kw == 1:
        scale = kx.reshape(1, -1, 1, 1) if kx.ndim == 2 else kx
        return x * scale
    if b * c >= _FOLD_MIN_PLANES:
        y = _fold(x)
        if kh > 1:
            y = F.conv2d(y, _plane_weight(ky.unsqueeze(-1), b, c), groups=b * c)
        if kw > 1:
            y = F.conv2d(y, _plane_weight(kx.unsqueeze(-2), b, c), groups=b * c)
        return _unfold(y, b, c)
    if ky.ndim == 2:  # per-channel factors -> per-plane factors
        ky = ky.repeat(b, 1)
        kx = kx.repeat(b, 1)
    planes = x.reshape(b * c, hp, wp)
    if kh > 1:
        planes = _vertical_pass(planes, ky)
    if kw > 1:
        planes = _vertical_pass(planes.transpose(1, 2), kx).transpose(1, 2)
    return planes.reshape(b, c, hp - kh + 1, wp - kw + 1)


def _all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds no NaN or inf, from one sum (about 100x cheaper than
    ``isfinite(x).all()`` on the CPU). A sum that overflows says no: callers then take their
    exact path, which is only slower. Eager only (it reads a value)."""
    return bool(torch.isfinite(x.sum()))


def _window_sums(y: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Valid sums of ``k`` consecutive entries along ``dim``, as a contiguous tensor.

    Sliding differences restarted every ``k`` windows: the first window of each block of
    ``k`` windows is summed directly, the next ``k - 1`` follow from the cumulative sum of
    ``y[i + k - 1] - y[i - 1]`` within the block. A window reads only entries within ``k`` of
    its own, so a large value spoils no window more than ``2k`` entries away (running sums
    along the whole axis would carry its rounding error to every later window).
    """
    dim = dim % y.ndim
    n = y.shape[dim]
    no = n - k + 1
    nb = -(-no // k)  # blocks of windows, the last one possibly partial; nb * k <= n
    firsts = y.narrow(dim, 0, nb * k).unflatten(dim, (nb, k)).sum(dim + 1)
    if torch.is_grad_enabled() and y.requires_grad:  # the same sums, out of place
        diff = y.narrow(dim, k, no - 1) - y.narrow(dim, 0, no - 1)
        shape = list(diff.shape)
        shape[dim] = nb * k - no
        diff = torch.cat((y.new_zeros(shape[:dim] + [1] + shape[dim + 1 :]), diff, y.new_zeros(shape)), dim)
        blocks = diff.unflatten(dim, (nb, k)).narrow(dim + 1, 1, k - 1)
        out = torch.cat((firsts.unsqueeze(dim + 1), blocks), dim + 1).cumsum(dim + 1)
        return out.flatten(dim, dim + 1).narrow(dim, 0, no).contiguous()
    shape = list(y.shape)
    shape[dim] = no
    out = y.new_empty(shape)
    torch.sub(y.narrow(dim, k, no - 1), y.narrow(dim, 0, no - 1), out=out.narrow(dim, 1, no - 1))
    out[(slice(None),) * dim + (slice(None, None, k),)] = firsts  # entries 0, k, 2k, ...
    _block_cumsum_(out, k, dim)
    return out


def _block_cumsum_(t: torch.Tensor, k: int, dim: int) -> None:
    """In-place cumulative sums along ``dim``, restarted every ``k`` entries: one ``cumsum_``
    over ``(blocks, k)`` and one over the partial last block."""
    n = t.shape[dim]
    whole = n // k * k
    t.narrow(dim, 0, whole).unflatten(dim, (-1, k)).cumsum_(dim + 1)
    if n > whole:
        t.narrow(dim, whole, n - whole).cumsum_(dim)


def _box_valid(x: torch.Tensor, kh: int, kw: int, scale: torch.Tensor, own: bool = False) -> torch.Tensor:
    """Valid box sums times ``scale`` by blockwise running sums (cost independent of the
    window, see :func:`_window_sums`). ``own``: ``x`` is a buffer of ours, free to overwrite.

    ``scale`` is applied first, so a mean of values near the float limit stays finite. A NaN
    or inf would spread through its blocks: such inputs take the separable path, where a bad
    value only spoils its own windows.
    """
    scale = scale.to(dtype=x.dtype)
    scale = scale.reshape(1, -1, 1, 1) if scale.ndim == 1 else scale
    if not _all_finite(x) or kh == kw == 1:
        ones_y = torch.ones(kh, dtype=x.dtype, device=x.device)
        ones_x = torch.ones(kw, dtype=x.dtype, device=x.device)
        return _separable_valid(x * scale, ones_y, ones_x).contiguous()
    y = x.mul_(scale) if own else x * scale  # first: a mean of values near the float limit stays finite
    if kh > 1:
        y = _window_sums(y, kh, -2)
    return _window_sums(y, kw, -1) if kw > 1 else y


def _fft_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    from ..fft import fft_conv2d as _fft_conv2d

    c = x.shape[1]
    return _fft_conv2d(x, _depthwise_weight(kernel, c), groups=c)


def _box_scale(kernel: torch.Tensor):
    """Per-channel constant of a constant kernel, or ``None`` when the kernel is not a box."""
    flat = kernel.detach().reshape(-1, kernel.shape[-2] * kernel.shape[-1]) if kernel.ndim == 3 else kernel.detach().reshape(1, -1)
    first = flat[:, :1]
    if not bool((flat == first).all()):
        return None
    return kernel.detach().reshape(flat.shape)[:, 0] if kernel.ndim == 3 else kernel.detach().reshape(-1)[0]


# Kernels with at most this many taps are computed directly (or separably), whatever the
# planner's cost model says.
_SMALL_TAPS = 25

# Rank-1 kernels up to this length per axis always use two 1-D passes: measured faster than
# the FFT for depthwise filtering of 512x512 planes up to k = 64.
_SEPARABLE_MAX_LENGTH = 64

# Box windows at least this long (on either axis) use running sums; shorter ones are cheaper
# as two 1-D convolutions.
_BOX_MIN_LENGTH = 17


def _use_box(kh: int, kw: int) -> bool:
    return max(kh, kw) >= _BOX_MIN_LENGTH


def _fold_taps(k: torch.Tensor, n: int, before: int, after: int, no: int, border: str):
    """An equivalent shorter 1-D factor for an axis of ``n`` samples padded by ``before`` /
    ``after`` and ``no`` outputs: ``(k', before', after')`` with the same valid correlation.

    Periodic borders (circular, reflect, symmetric; period ``n``, ``2(n - 1)``, ``2n``): taps
    one period apart read the same samples, so the factor folds onto one period. Zeros and
    replicate: taps that only ever read outside the image are dropped (zeros) or added to the
    outermost tap that reads the edge sample (replicate).
    """
    length = k.shape[-1]
    period = {"circular": n, "symmetric": 2 * n, "reflect": 2 * (n - 1)}.get(border)
    if period:  # reflect with n = 1 is constant: replicate's rule
        if length <= period:
            return k, before, after
        start = period // 2
        index, size = torch.remainder(torch.arange(length, device=k.device) - (before - start), period), period
    else:
        lo, hi = max(before - (no - 1), 0), min(before + n - 1, length - 1)
        if hi - lo + 1 >= length:
            return k, before, after
        start, size = before - lo, hi - lo + 1
        if border == "zeros":
            return k[..., lo : hi + 1], start, no - 1 + size - n - start
        index = torch.arange(length, device=k.device).clamp(lo, hi) - lo
    folded = k.new_zeros((*k.shape[:-1], size), dtype=torch.float64).index_add(-1, index, k.double())
    return folded.to(k.dtype), start, no - 1 + size - n - start


def _own_rule(kh: int, kw: int, box: bool, separable: bool) -> str:
    if box and _use_box(kh, kw):
        return "box"
    if separable and kh > 1 and kw > 1 and kh * kw > 9:  # 3x3: one 9-tap pass beats two
        return "separable"
    if kh * kw >= _FFT_MIN_TAPS:
        try:
            from .. import fft  # noqa: F401
        except ImportError:
            return "direct"
        return "fft"
    return "direct"


def _choose(x4, kernel_shape, channels, box, separable, mode) -> str:
    kh, kw = kernel_shape
    if box and _use_box(kh, kw):
        return "box"
    if kh * kw <= _SMALL_TAPS:  # a transform never pays off for a handful of taps
        return "separable" if separable and min(kh, kw) > 1 and kh * kw > 9 else "direct"
    if separable and max(kh, kw) <= _SEPARABLE_MAX_LENGTH:
        return "separable"
    try:
        from ..planner import choose_method
    except ImportError:
        return _own_rule(kh, kw, box, separable)
    try:
        method = choose_method(
            tuple(x4.shape),
            (channels, 1, kh, kw),
            groups=channels,
            dtype=x4.dtype,
            device=x4.device,
            separable=separable,
            full=mode == "full",
        )
    except Exception:  # a planner failure must not break filtering
        return _own_rule(kh, kw, box, separable)
    if method == "separable" and not separable:
        return "direct"
    return method if method in ("direct", "separable", "fft") else _own_rule(kh, kw, box, separable)


def _graph_valid(x: torch.Tensor, kernel, factors, method: str) -> torch.Tensor:
    """Valid correlation of a padded batch in plain graph ops, for a graph being captured (see
    :func:`cnnconv.engines.padding.tracing`): the two 1-D depthwise convolutions of ``factors`` (for
    ``method="box"`` without them: the kernel's first column and a row of ones, trusting the
    kernel to be constant), or one depthwise convolution with the kernel."""
    c = int(x.shape[1])  # a constant of the graph: ONNX's Conv needs the weight's shape
    if factors is None and method == "box":
        factors = (kernel[..., :, 0], torch.ones_like(kernel[..., 0, :]))
    if factors is None or (kernel is not None and method in ("direct", "fft")):
        return F.conv2d(x, _depthwise_weight(kernel, c), groups=c)
    ky, kx = factors
    y = F.conv2d(x, _depthwise_weight(ky.unsqueeze(-1), c), groups=c)
    return F.conv2d(y, _depthwise_weight(kx.unsqueeze(-2), c), groups=c)


# --------------------------------------------------------------------------- dispatch


def filter2d(
    input: torch.Tensor,
    kernel: torch.Tensor | None,
    mode: str = "same",
    border: str = "reflect",
    *,
    method: str = "auto",
    factors=None,
    anchor: str = "scipy",
) -> torch.Tensor:
    """Depthwise 2-D correlation with a border mode: the dispatch every filter goes through.

    Methods: ``"direct"`` (depthwise ``F.conv2d`` over every plane of the batch as one
    channels_last image), ``"separable"`` (two 1-D passes; needs a rank-1 kernel or
    ``factors``), ``"box"`` (running sums, cost independent of the window; needs a constant
    kernel), ``"fft"`` (:func:`cnnconv.fft.fft_conv2d` on the border-padded input), or
    ``"auto"``: box for constant kernels at least 17 taps long, direct (or separable) for
    kernels of at most 25 taps, separable for rank-1 kernels up to 64 taps per axis, otherwise
    the planner's choice (:func:`cnnconv.planner.choose_method`, told whether the kernel is
    rank 1) or, without the planner, separable for rank-1 kernels, direct for small and FFT
    for large ones. Kernels
    that require grad are applied as given (direct or FFT) so the gradient reaches them.

    While a graph is captured (``torch.compile``, ``torch.export``, ONNX export,
    ``torch.jit.trace``) every method is computed in plain ops: the border padding, then two
    1-D depthwise ``F.conv2d`` for ``factors`` (or a box kernel), else one with the kernel.
    The result is the same filter up to float rounding; layers pass their factors, so the
    graph holds the separable pair.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` floating point tensor.
        kernel: ``(kh, kw)`` shared by all channels or ``(C, kh, kw)`` per channel. May be
            ``None`` when ``factors`` is given.
        mode: ``"full"``, ``"same"`` or ``"valid"`` (scipy.signal output sizes).
        border: ``"reflect"`` (default, see the module notes), ``"zeros"``, ``"replicate"``,
            ``"circular"`` or ``"symmetric"``.
        method: ``"auto"``, ``"direct"``, ``"separable"``, ``"fft"`` or ``"box"``.
        factors: optional ``(ky, kx)`` with ``kernel = outer(ky, kx)``: ``(kh,)``, ``(kw,)`` or
            per channel ``(C, kh)``, ``(C, kw)``.
        anchor: where an even kernel sits in ``same`` mode: ``"scipy"`` (kernel element
            ``k // 2`` on the output pixel, as scipy.ndimage and OpenCV) or ``"torch"``
            (``(k - 1) // 2``, as ``F.conv2d(padding="same")``). See :mod:`cnnconv.engines.padding`.

    Returns:
        Tensor with the input's number of dimensions; spatial size ``H + kh - 1`` (full),
        ``H`` (same) or ``H - kh + 1`` (valid), likewise for W. Memory layout as
        ``nn.Conv2d`` gives it: contiguous, or channels_last for a channels_last batch.

    Shape:
        - input: ``(*, C, H, W)`` with 0 to 1 leading batch dimensions (or ``(H, W)``).
        - output: ``(*, C, H_out, W_out)``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> filter2d(x, K.box(5), border="reflect").shape
        torch.Size([2, 3, 16, 16])
    """
    x = _check_input(input)
    ndim = x.ndim
    x4 = _to_batch(x)
    check_mode(mode)
    check_border(border)
    _check_method(method)
    b, c, h, w = x4.shape
    if factors is not None:
        if not isinstance(factors, (tuple, list)) or len(factors) != 2:
            raise TypeError(f"factors must be a pair (ky, kx), got {type(factors).__name__}")
        ky = _check_kernel(factors[0], x4, "factors[0]", ndims=(1, 2))
        kx = _check_kernel(factors[1], x4, "factors[1]", ndims=(1, 2))
        if ky.ndim != kx.ndim:
            raise ValueError(f"factors must both be shared or both per-channel, got shapes {tuple(ky.shape)} and {tuple(kx.shape)}")
        kh, kw = int(ky.shape[-1]), int(kx.shape[-1])
    elif kernel is None:
        raise TypeError("kernel must be a torch.Tensor when factors is not given, got None")
    if kernel is not None:
        kernel = _check_kernel(kernel, x4)
        if factors is not None and (kh, kw) != tuple(kernel.shape[-2:]):
            raise ValueError(f"factors have lengths {(kh, kw)} but the kernel is {tuple(kernel.shape[-2:])}")
        kh, kw = int(kernel.shape[-2]), int(kernel.shape[-1])
    if mode == "valid" and (kh > h or kw > w):
        raise ValueError(
            f"kernel of size {(kh, kw)} is larger than the input {(h, w)} in valid mode"
        )
    pads = output_padding((kh, kw), mode, anchor=anchor)
    ho = h + pads[0] + pads[1] - kh + 1
    wo = w + pads[2] + pads[3] - kw + 1
    if x4.numel() == 0:
        out = x4.new_zeros(b, c, max(ho, 0), max(wo, 0))
        return _from_batch(out, ndim)
    if tracing():
        out = _graph_valid(pad(x4, pads, border), kernel, None if factors is None else (ky, kx), method)
        return _from_batch(_standard_layout(out, x4), ndim)
    learn = any(t is not None and t.requires_grad for t in (kernel, *(factors or ())))
    if kernel is None:
        # Factors only (the 2-D kernel is built only for an engine that needs it): taps that
        # can only meet the border are folded into the others, which bounds the work for
        # factors far longer than the image (a Gaussian of sigma 1e5) without changing it.
        ky, top, bottom = _fold_taps(ky, h, pads[0], pads[1], ho, border)
        kx, left, right = _fold_taps(kx, w, pads[2], pads[3], wo, border)
        pads, (kh, kw), factors = (top, bottom, left, right), (ky.shape[-1], kx.shape[-1]), (ky, kx)
        if method == "box":
            kernel = ky[..., :, None] * kx[..., None, :]

    # Structure detection reads the kernel's values: skipped for kernels being learned.
    detect = not learn
    box_scale = None
    if method == "box" or (method == "auto" and detect and factors is None):
        box_scale = _box_scale(kernel)
    if method == "box" and box_scale is None:
        raise ValueError("method='box' needs a constant kernel, got a kernel with differing entries")
    if factors is None and (method == "separable" or (method == "auto" and detect)):
        factors = K.separable_factors(kernel)
        if factors is not None:
            ky, kx = factors
    if method == "separable" and factors is None:
        raise ValueError("method='separable' needs a rank-1 kernel or factors, got a kernel of higher rank")
    if method == "auto":
        if learn:
            method = "fft" if _own_rule(kh, kw, False, False) == "fft" else "direct"
        else:
            method = _choose(x4, (kh, kw), c, box_scale is not None, factors is not None, mode)
    if kernel is None and method in ("direct", "fft"):
        kernel = ky[..., :, None] * kx[..., None, :]

    if method == "direct" or (method == "separable" and b * c >= _FOLD_MIN_PLANES):
        # The engines return fresh tensors; only a graph that keeps the kernel's gradient would
        # hold on to the padded input.
        reuse = not (torch.is_grad_enabled() and (learn or x4.requires_grad))
        xp = _unfold(_fold_pad(x4, pads, border, reuse=reuse), b, c)
    else:
        xp = pad(x4, pads, border)
    if method == "box":
        out = _box_valid(xp, kh, kw, box_scale, own=xp is not x4 and not (torch.is_grad_enabled() and xp.requires_grad))
    elif method == "separable":
        out = _separable_valid(xp, ky, kx)
    elif method == "fft":
        out = _fft_valid(xp, kernel)
    else:
        out = _direct_valid(xp, kernel)
    return _from_batch(_standard_layout(out, x4), ndim)


# --------------------------------------------------------------------------- correlate / convolve


_ANCHORS = ("signal", "ndimage")


def _padding_anchor(anchor, flipped: bool, two_d: bool = True) -> str:
    """Map the public ``anchor`` names to :func:`cnnconv.engines.padding.output_padding`'s.

    For even kernels in ``same`` mode: ``scipy.signal.correlate2d`` puts kernel element
    ``(k-1)//2`` on the output pixel; ``scipy.signal.correlate`` / ``numpy.correlate``,
    scipy.ndimage and OpenCV put element ``k//2`` there. ``scipy.signal.convolve2d`` /
    ``numpy.convolve`` equal a correlation with the flipped kernel anchored at ``k//2``;
    ``scipy.ndimage.convolve`` anchors the flipped kernel at ``(k-1)//2``.
    """
    _check_choice(anchor, "anchor", _ANCHORS)
    if anchor == "signal":
        return "torch" if (two_d and not flipped) else "scipy"
    return "torch" if flipped else "scipy"


def correlate2d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """2-D correlation (no kernel flip, PyTorch's convention) of every channel.

    Agrees with ``scipy.signal.correlate2d`` (``border="zeros"``) in every mode, with its
    defaults (``mode="full"``, zeros), and with ``scipy.ndimage.correlate`` /
    ``cv2.filter2D`` for each border in ``same`` mode. In
    ``valid`` mode a kernel at least as large as the input in both dimensions swaps the roles
    of the two, as in scipy.signal (output ``(kh - H + 1, kw - W + 1)``); this also holds for
    :func:`convolve2d`, :func:`correlate1d` and :func:`convolve1d`.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        kernel: ``(kh, kw)`` shared or ``(C, kh, kw)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"`` (like
            ``scipy.signal.correlate2d``: kernel element ``(k-1)//2`` on the output pixel) or
            ``"ndimage"`` (like ``scipy.ndimage.correlate`` and ``cv2.filter2D``: element
            ``k//2``).

    Returns:
        Tensor with the input's number of dimensions.

    Shape:
        ``(*, H, W) -> (*, H_out, W_out)``.

    Example:
        >>> x = torch.arange(9.0).reshape(3, 3)
        >>> correlate2d(x, K.sobel_x(), "same", border="replicate")[1, 1].item()
        8.0
    """
    return _signal_filter(input, kernel, mode, border, method, _padding_anchor(anchor, False))


def convolve2d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """2-D convolution: correlation with the kernel flipped in both axes.

    Agrees with ``scipy.signal.convolve2d`` (``border="zeros"``) in every mode, with its
    defaults (``mode="full"``, zeros), and with ``scipy.ndimage.convolve`` for each border in
    ``same`` mode.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        kernel: ``(kh, kw)`` shared or ``(C, kh, kw)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"`` (like
            ``scipy.signal.convolve2d``) or ``"ndimage"`` (like ``scipy.ndimage.convolve``).

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> x = torch.arange(9.0).reshape(3, 3)
        >>> convolve2d(x, K.sobel_x(), "same", border="replicate")[1, 1].item()
        -8.0
    """
    if isinstance(kernel, torch.Tensor) and kernel.ndim >= 2:
        kernel = kernel.flip(-2, -1)
    return _signal_filter(input, kernel, mode, border, method, _padding_anchor(anchor, True))


def _signal_filter(input, kernel, mode, border, method, anchor):
    """:func:`filter2d` with scipy.signal's ``valid`` rule: a kernel at least as large as the
    input in both dimensions (and larger in one) swaps the roles, the output being the
    correlation at the shifts where the input lies within the kernel; neither at least as
    large as the other in both dimensions is an error."""
    if mode != "valid" or not all(isinstance(t, torch.Tensor) and t.ndim >= 2 for t in (input, kernel)):
        return filter2d(input, kernel, mode, border, method=method, anchor=anchor)
    (h, w), (kh, kw) = input.shape[-2:], kernel.shape[-2:]
    if kh <= h and kw <= w:
        return filter2d(input, kernel, mode, border, method=method, anchor=anchor)
    if kh < h or kw < w:
        raise ValueError(
            f"in valid mode the input or the kernel must be at least as large as the other in "
            f"every dimension (as in scipy.signal), got input {(h, w)} and kernel {(kh, kw)}"
        )
    check_border(border)
    full = filter2d(input, kernel, "full", "zeros", method=method)  # only the input's own samples count
    return full[..., h - 1 : kh, w - 1 : kw].contiguous()


def _filter1d(input, kernel, mode, border, method, anchor, flip):
    x = _check_input(input, min_ndim=1, max_ndim=3)
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (1, 2):
        raise ValueError(f"kernel must have shape (k,) or (C, k), got {tuple(kernel.shape)}")
    if kernel.ndim == 2 and x.ndim == 1:
        raise ValueError(
            f"kernel has {kernel.shape[0]} per-channel kernels but the input has no channel "
            f"dimension (input shape {tuple(x.shape)})"
        )
    pad_anchor = _padding_anchor(anchor, flip, two_d=False)
    if flip:
        kernel = kernel.flip(-1)
    # A signal of length L is an image of height 1: (L,) -> (1, L), (C, L) -> (C, 1, L).
    y = _signal_filter(x.unsqueeze(-2), kernel.unsqueeze(-2), mode, border, method, pad_anchor)
    return y.squeeze(-2)


def correlate1d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """1-D correlation along the last axis (``numpy.correlate`` / ``scipy.signal.correlate``,
    whose defaults it takes: ``mode="full"``, zeros).

    Args:
        input: ``(L,)``, ``(C, L)`` or ``(B, C, L)``.
        kernel: ``(k,)`` shared or ``(C, k)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"``
            (``scipy.signal.correlate`` and ``numpy.correlate``) or ``"ndimage"``
            (``scipy.ndimage.correlate1d``); both put kernel element ``k // 2`` on the output
            sample.

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> correlate1d(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]), "full").tolist()
        [1.0, 3.0, 5.0, 3.0, 0.0]
    """
    return _filter1d(input, kernel, mode, border, method, anchor, flip=False)


def convolve1d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    mode: str = "full",
    border: str = "zeros",
    *,
    method: str = "auto",
    anchor: str = "signal",
) -> torch.Tensor:
    """1-D convolution (kernel flipped) along the last axis; matches ``numpy.convolve`` and
    ``scipy.signal.convolve`` (whose defaults it takes: ``mode="full"``, zeros).

    Args:
        input: ``(L,)``, ``(C, L)`` or ``(B, C, L)``.
        kernel: ``(k,)`` shared or ``(C, k)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.
        anchor: only matters for even kernels in ``same`` mode: ``"signal"``
            (``numpy.convolve``, ``scipy.signal.convolve``) or ``"ndimage"``
            (``scipy.ndimage.convolve1d``).

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> convolve1d(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]), "full").tolist()
        [0.0, 1.0, 3.0, 5.0, 3.0]
    """
    return _filter1d(input, kernel, mode, border, method, anchor, flip=True)


def separable_correlate2d(
    input: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, mode: str = "same", border: str = "zeros"
) -> torch.Tensor:
    """Correlation with the rank-1 kernel ``outer(ky, kx)`` as two 1-D passes.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        ky: column factor ``(kh,)`` or per channel ``(C, kh)``.
        kx: row factor ``(kw,)`` or per channel ``(C, kw)``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.

    Returns:
        Same as ``correlate2d(input, outer(ky, kx), mode, border)``.

    Example:
        >>> x = torch.rand(3, 20, 20)
        >>> y = separable_correlate2d(x, K.gaussian1d(1.0), K.gaussian1d(1.0))
        >>> torch.allclose(y, correlate2d(x, K.gaussian(1.0), "same", method="direct"), atol=1e-6)
        True
    """
    return filter2d(input, None, mode, border, method="separable", factors=(ky, kx))


# --------------------------------------------------------------------------- filters


def _odd_size(value, name: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {value!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if v < 1 or v % 2 == 0:
            raise ValueError(f"{name} must be odd and positive, got {value!r}")
    return int(pair[0]), int(pair[1])


def _positive_size(value, name: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {value!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if v < 1:
            raise ValueError(f"{name} must be positive, got {value!r}")
    return int(pair[0]), int(pair[1])


def _sigma_pair(sigma) -> tuple[float, float]:
    pair = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(pair) != 2:
        raise ValueError(f"sigma must be a number or a pair (sigma_y, sigma_x), got {sigma!r}")
    out = []
    for s in pair:
        if isinstance(s, torch.Tensor) and s.numel() == 1:
            s = float(s)
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"sigma must be a number or a pair of numbers, got {sigma!r}")
        if not (s > 0) or not math.isfinite(s):
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        out.append(float(s))
    return out[0], out[1]


def box_blur2d(
    input: torch.Tensor,
    kernel_size=3,
    border: str = "reflect",
    mode: str = "same",
    *,
    normalized: bool = True,
    method: str = "auto",
) -> torch.Tensor:
    """Box (mean) filter; computed with cumulative sums for large windows.

    Equivalent to ``cv2.blur`` / ``cv2.boxFilter``, ``scipy.ndimage.uniform_filter`` and
    ``kornia.filters.box_blur`` under the matching border.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        kernel_size: int or ``(kh, kw)``; even sizes are anchored at ``k // 2``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or sum (False) over the window.
        method: see :func:`filter2d`.

    Returns:
        Filtered tensor with the input's number of dimensions.

    Example:
        >>> box_blur2d(torch.ones(1, 8, 8), 5).allclose(torch.ones(1, 8, 8))
        True
    """
    _check_input(input)
    kh, kw = _positive_size(kernel_size, "kernel_size")
    k = K.box((kh, kw), normalized=normalized, dtype=input.dtype, device=input.device)
    method, factors = _box_plan(k, normalized, method)
    return filter2d(input, k, mode, border, method=method, factors=factors)


def _box_plan(kernel: torch.Tensor, normalized: bool, method: str):
    """``(method, factors)`` for a box kernel: what ``auto`` would pick, decided from the size
    alone (running sums for long windows, two 1-D passes otherwise)."""
    _check_method(method)
    kh, kw = kernel.shape[-2:]
    if method == "auto":
        method = "box" if _use_box(kh, kw) else "separable"
    if method != "separable":
        return method, None
    scale = 1.0 / (kh * kw) if normalized else 1.0
    ky = torch.full((kh,), scale, dtype=kernel.dtype, device=kernel.device)
    return method, (ky, torch.ones(kw, dtype=kernel.dtype, device=kernel.device))


def gaussian_blur2d(
    input: torch.Tensor,
    sigma,
    kernel_size=None,
    border: str = "reflect",
    mode: str = "same",
    *,
    truncate: float = 4.0,
    method: str = "auto",
) -> torch.Tensor:
    """Gaussian blur as two 1-D passes.

    The kernel size defaults to ``2 * round(truncate * sigma) + 1`` (scipy.ndimage's
    ``gaussian_filter``); give ``kernel_size`` to match OpenCV, kornia or torchvision.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        sigma: positive float or ``(sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kh, kw)``; default from sigma and ``truncate``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: see :func:`filter2d`.

    Returns:
        Blurred tensor with the input's number of dimensions.

    Example:
        >>> gaussian_blur2d(torch.rand(2, 3, 32, 32), 2.0).shape
        torch.Size([2, 3, 32, 32])
    """
    _check_input(input)
    sy, sx = _sigma_pair(sigma)
    truncate = K._check_truncate(truncate)
    if kernel_size is None:
        kh, kw = K.gaussian_size_from_sigma(sy, truncate), K.gaussian_size_from_sigma(sx, truncate)
    else:
        kh, kw = _odd_size(kernel_size, "kernel_size")
    opts = dict(dtype=input.dtype, device=input.device)
    ky = K.gaussian1d(sy, kh, **opts)
    kx = K.gaussian1d(sx, kw, **opts)
    return filter2d(input, None, mode, border, method=method, factors=(ky, kx))


_DERIVATIVE_FACTORS = {
    "sobel": ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]),
    "prewitt": ([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]),
    "scharr": ([3.0, 10.0, 3.0], [-1.0, 0.0, 1.0]),
    "diff": ([0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]),
}


def _derivative_factors(operator, normalized, dtype, device):
    """``(smooth, diff)`` 1-D factors of a 3x3 derivative operator (x kernel = outer(smooth, diff))."""
    smooth, diff = _DERIVATIVE_FACTORS[operator]
    s = torch.tensor(smooth, dtype=dtype, device=device)
    d = torch.tensor(diff, dtype=dtype, device=device)
    if normalized:
        s = s / (s.abs().sum() * d.abs().sum())
    return s, d


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    return float(eps)


def apply_gradient(input, smooth, diff, output="magnitude", border="reflect", mode="same", *, eps=0.0, method="auto"):
    """Gradient filter from 1-D factors: x kernel ``outer(smooth, diff)``, y its transpose.

    The common engine of :func:`sobel`, :func:`prewitt`, :func:`scharr` and the gradient layers.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        smooth: smoothing factor ``(k,)``.
        diff: derivative factor ``(k,)``, positive towards +x / +y under correlation.
        output: ``"x"``, ``"y"``, ``"xy"``, ``"magnitude"`` or ``"direction"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude is ``sqrt(gx^2 + gy^2 + eps)``; 0 uses ``hypot``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions (``"xy"`` adds a dimension of size 2 at -3).

    Example:
        >>> s, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> apply_gradient(torch.rand(3, 8, 8), s, d, "xy").shape
        torch.Size([3, 2, 8, 8])
    """
    _check_input(input)
    _check_choice(output, "output", GRADIENT_OUTPUTS)
    eps = _check_eps(eps)
    _check_method(method)
    gx = gy = None
    fresh = False
    # A graph being captured gets the two filter2d calls (plain convolutions, nothing in place).
    small = not tracing() and _small_pair_ok(input, smooth, diff, mode, border, _banded.MAX_TAPS)
    x4 = _to_batch(input)
    # The banded engine skips zero taps, so a NaN or inf would not reach every output that a
    # convolution gives it to: inputs with one take the convolution paths.
    if small and method == "auto" and _banded.usable(x4) and _all_finite(x4):
        pads = output_padding(smooth.shape[0], mode, anchor="scipy")
        y = _banded.gradient(x4, smooth, diff, pads, border, output, eps)
        return _from_batch(_standard_layout(y, x4), input.ndim + (output == "xy"))
    if output not in ("x", "y") and method in ("auto", "direct") and small and smooth.shape[0] <= _PAIR_MAX_TAPS:
        gx, gy = _direct_pair(input, smooth, diff, mode, border)
        fresh = not (torch.is_grad_enabled() and input.requires_grad)
    else:
        if output != "y":
            gx = filter2d(input, None, mode, border, method=method, factors=(smooth, diff))
        if output != "x":
            gy = filter2d(input, None, mode, border, method=method, factors=(diff, smooth))
    return _standard_layout(_combine(gx, gy, output, eps, fresh), x4)


def _combine(gx, gy, output: str, eps: float, fresh: bool) -> torch.Tensor:
    """The requested ``output`` of :func:`apply_gradient` from the two gradients (``fresh``:
    they are ours to overwrite)."""
    if output == "x":
        return gx
    if output == "y":
        return gy
    if output == "xy":
        return torch.stack((gx, gy), dim=-3)
    if output == "magnitude" and eps > 0:
        return torch.sqrt(gx * gx + gy * gy + eps)
    if torch.is_grad_enabled() and (gx.requires_grad or gy.requires_grad):
        # hypot and atan2 have no derivative where gx = gy = 0 (flat regions, corners under
        # reflect): give them the zero subgradient there instead of NaN.
        flat = (gx == 0) & (gy == 0)
        gx = torch.where(flat, torch.ones_like(gx), gx)
        value = torch.hypot(gx, gy) if output == "magnitude" else torch.atan2(gy, gx)
        return torch.where(flat, torch.zeros_like(value), value)
    if output == "magnitude":
        if tracing():  # ONNX has no hypot
            return torch.sqrt(gx * gx + gy * gy)
        if fresh:  # no autograd, gx and gy are ours: sqrt(gx^2 + gy^2) in place, no allocation
            return gx.square_().addcmul_(gy, gy).sqrt_()
        return torch.hypot(gx, gy)
    return torch.atan2(gy, gx)


# Gradient factors up to this length share one padded copy in the two-convolution path.
_PAIR_MAX_TAPS = 5


def _small_pair_ok(input, smooth, diff, mode, border, max_taps: int) -> bool:
    """Whether both gradients can share one padded copy of the input (factors of at most
    ``max_taps`` taps, no gradient wanted for them)."""
    if not (isinstance(smooth, torch.Tensor) and isinstance(diff, torch.Tensor)):
        return False
    if smooth.ndim != 1 or diff.ndim != 1 or smooth.shape != diff.shape or smooth.shape[0] > max_taps:
        return False
    if smooth.requires_grad or diff.requires_grad:
        return False
    check_mode(mode)
    check_border(border)
    k = smooth.shape[0]
    h, w = input.shape[-2:]
    return input.numel() > 0 and not (mode == "valid" and (k > h or k > w))


def _direct_pair(input, smooth, diff, mode, border):
    """x and y gradients from one padded channels_last copy: two depthwise convolutions."""
    x4 = _to_batch(input)
    b, c = x4.shape[:2]
    smooth = smooth.to(dtype=x4.dtype, device=x4.device)
    diff = diff.to(dtype=x4.dtype, device=x4.device)
    k = smooth.shape[0]
    # The factors need no gradient (_small_pair_ok) and an input that does is not padded into
    # the workspace (_fold_pad), so no graph can hold the buffer.
    folded = _fold_pad(x4, output_padding(k, mode, anchor="scipy"), border, reuse=True)
    outs = []
    for kernel in (torch.outer(smooth, diff), torch.outer(diff, smooth)):
        y = F.conv2d(folded, _plane_weight(kernel, b, c), groups=b * c)
        outs.append(_from_batch(_unfold(y, b, c), input.ndim))
    return outs[0], outs[1]


def _gradient_filter(input, operator, output, normalized, border, mode, eps, method):
    _check_input(input)
    s, d = _derivative_factors(operator, normalized, input.dtype, input.device)
    return apply_gradient(input, s, d, output, border, mode, eps=eps, method=method)


_GRADIENT_DOC = """{title} gradient filter.

    ``x`` is positive where intensity grows to the right, ``y`` where it grows downwards (the
    kernels of :func:`cnnconv.kernels.{name}_x`, applied by correlation).

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        output: ``"x"``, ``"y"``, ``"xy"`` (stacked at dim -3: ``(..., C, 2, H, W)``),
            ``"magnitude"`` or ``"direction"`` (``atan2(gy, gx)`` in radians).
        normalized: divide the kernels by the sum of their absolute values.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: the magnitude is ``sqrt(gx^2 + gy^2 + eps)`` (kornia uses 1e-6 for a finite
            gradient at zero); 0 computes ``hypot(gx, gy)``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions (one more for ``"xy"``).

    Example:
        >>> x = torch.arange(25.0).reshape(5, 5)
        >>> {name}(x, output="x", border="replicate")[2, 2].item() > 0
        True
    """


def sobel(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "sobel", output, normalized, border, mode, eps, method)


def prewitt(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "prewitt", output, normalized, border, mode, eps, method)


def scharr(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "scharr", output, normalized, border, mode, eps, method)


sobel.__doc__ = _GRADIENT_DOC.format(title="Sobel", name="sobel")
prewitt.__doc__ = _GRADIENT_DOC.format(title="Prewitt", name="prewitt")
scharr.__doc__ = _GRADIENT_DOC.format(title="Scharr", name="scharr")


def spatial_gradient(
    input: torch.Tensor,
    operator: str = "sobel",
    normalized: bool = True,
    border: str = "reflect",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """First derivatives stacked as ``(..., C, 2, H, W)`` (x then y), like kornia's.

    ``border="replicate"`` gives kornia's ``spatial_gradient`` exactly; the default is
    ``"reflect"``, that of every fixed filter.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        operator: ``"sobel"``, ``"prewitt"``, ``"scharr"`` or ``"diff"`` (``[-1, 0, 1]``,
            a central difference when normalized).
        normalized: divide the kernels by the sum of their absolute values.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.

    Returns:
        Tensor ``(..., C, 2, H, W)``.

    Example:
        >>> spatial_gradient(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 2, 8, 8])
    """
    _check_input(input)
    _check_choice(operator, "operator", tuple(_DERIVATIVE_FACTORS))
    s, d = _derivative_factors(operator, normalized, input.dtype, input.device)
    return apply_gradient(input, s, d, "xy", border, "same", method=method)


def laplacian(
    input: torch.Tensor,
    neighbours: int = 4,
    normalized: bool = False,
    border: str = "reflect",
    mode: str = "same",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """3x3 Laplacian (4- or 8-neighbour, see :func:`cnnconv.kernels.laplacian`).

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        neighbours: 4 (``cv2.Laplacian(ksize=1)``) or 8 (kornia's 3x3 ``laplacian``).
        normalized: divide the kernel by the sum of its absolute values.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> laplacian(torch.ones(5, 5), border="replicate").abs().max().item()
        0.0
    """
    _check_input(input)
    k = K.laplacian(neighbours, normalized=normalized, dtype=input.dtype, device=input.device)
    return filter2d(input, k, mode, border, method=_known_small(method))


def sharpen(
    input: torch.Tensor, border: str = "reflect", mode: str = "same", *, method: str = "auto"
) -> torch.Tensor:
    """3x3 sharpen filter ``[[0,-1,0],[-1,5,-1],[0,-1,0]]``.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> sharpen(torch.ones(5, 5)).allclose(torch.ones(5, 5))
        True
    """
    _check_input(input)
    return filter2d(input, K.sharpen(dtype=input.dtype, device=input.device), mode, border, method=_known_small(method))


def _known_small(method: str) -> str:
    """``"auto"`` for a known 3x3 kernel that is neither rank 1 nor constant (Laplacian,
    sharpen) is ``"direct"``: what the dispatch would decide after inspecting the kernel's
    values, which costs about a quarter of a millisecond per call."""
    _check_method(method)
    return "direct" if method == "auto" else method


# --------------------------------------------------------------------------- FFT re-exports


def fft_conv1d(*args, **kwargs):
    """Re-export of :func:`cnnconv.fft.fft_conv1d` (``F.conv1d`` semantics, computed by FFT)."""
    from ..fft import fft_conv1d as _impl

    return _impl(*args, **kwargs)


def fft_conv2d(*args, **kwargs):
    """Re-export of :func:`cnnconv.fft.fft_conv2d` (``F.conv2d`` semantics, computed by FFT)."""
    from ..fft import fft_conv2d as _impl

    return _impl(*args, **kwargs)
