"""FFT convolution engine with exact ``F.conv1d`` / ``F.conv2d`` semantics.

The engine computes the cross-correlation PyTorch calls convolution through real FFTs:

* **Only what the output needs.** With zero padding, the padding is never materialised: the
  unpadded input is transformed at a length ``N >= max(n + pad_before, n + pad_after, k)``
  (rounded up to a 5-smooth "fast" length), and the requested window of the circular
  correlation, which equals the linear one there, is read back. ``full`` output therefore costs
  ``n + k - 1`` and ``same`` about ``n + k/2``, never ``n + 2(k-1)``. Other padding modes pad
  explicitly and read the ``valid`` part.
* **Channel mixing** is one batched complex matrix product per frequency,
  ``(F, B, Cin) @ (F, Cin, Cout)`` (per group); grouped layers with one input channel per group
  (depthwise) use elementwise products.
* **Autograd**: a custom :class:`torch.autograd.Function` whose backward computes the input
  gradient (circular convolution with the kernel) and the weight gradient (circular correlation
  of the input with the output gradient) in the frequency domain, reusing the forward spectra.
  When a graph of the backward is requested (double backward), the backward is recomputed with
  differentiable operations from the saved input and weight.
* **Bounded memory**: when the spectra of one call would exceed ``memory_budget`` bytes, the
  padded input is cut into overlapping tiles (overlap-save), which are folded into the batch.
* **Stride** is computed densely and subsampled; **dilation** spreads the kernel with zeros.
* **Dtypes**: float32 and float64 are computed in their own precision; float16 and bfloat16 in
  float32 and cast back.
* **Non-finite input**: a single NaN or inf would spread over the whole FFT output, so such calls
  fall back to the direct ``F.conv*d`` (``nonfinite="direct"``, default) or raise
  (``nonfinite="raise"``).

Example:
    >>> import torch, torch.nn.functional as F
    >>> x, w = torch.randn(2, 3, 40, 40), torch.randn(4, 3, 9, 9)
    >>> y = fft_conv2d(x, w, padding="same")
    >>> torch.allclose(y, F.conv2d(x, w, padding="same"), atol=1e-4)
    True
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "PADDING_MODES",
    "DEFAULT_MEMORY_BUDGET",
    "SpectrumCache",
    "fft_conv1d",
    "fft_conv2d",
    "next_fast_len",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
NONFINITE_MODES = ("direct", "raise")
#: Bytes of complex spectra one call may hold before the input is tiled.
DEFAULT_MEMORY_BUDGET = 1 << 30

_COMPLEX_BYTES = {torch.float32: 8, torch.float64: 16}


@functools.lru_cache(maxsize=8192)
def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (``2^a 3^b 5^c``) that is at least ``n``.

    Args:
        n: a positive length.

    Returns:
        The fast FFT length, as ``scipy.fft.next_fast_len(n, real=True)``.

    Example:
        >>> next_fast_len(1039)
        1080
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if n <= 6:
        return n
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = -(-n // p35)
            cand = (1 << (q - 1).bit_length()) * p35
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


# --------------------------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------------------------


def _int_tuple(value, nd: int, name: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * nd
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        if len(value) == 1:
            return (int(value[0]),) * nd
        if len(value) == nd:
            return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")


def _resolve_padding(padding, kernel, stride, dilation, nd) -> list[tuple[int, int]]:
    """Per spatial dim ``(before, after)`` zero/border padding, PyTorch's convention."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"padding='same' is not supported for strided convolutions, got stride={stride}"
                )
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return pads
        raise ValueError(f"padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
    p = _int_tuple(padding, nd, "padding")
    if any(v < 0 for v in p):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return [(v, v) for v in p]


def _check_args(x, weight, bias, groups, nd, padding_mode, nonfinite):
    name = f"conv{nd}d"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating point tensor, got dtype {x.dtype}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype must match input dtype {x.dtype}, got {weight.dtype}")
    if bias is not None and bias.dtype != x.dtype:
        raise TypeError(f"bias dtype must match input dtype {x.dtype}, got {bias.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight must be on the input's device {x.device}, got {weight.device}")
    if x.dim() not in (nd + 1, nd + 2):
        raise ValueError(
            f"{name} expects input of {nd + 1} (unbatched) or {nd + 2} (batched) dims, "
            f"got shape {tuple(x.shape)}"
        )
    if weight.dim() != nd + 2:
        raise ValueError(f"{name} expects weight of {nd + 2} dims, got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    cin = x.shape[-nd - 1]
    cout = weight.shape[0]
    if cin != weight.shape[1] * groups:
        raise ValueError(
            f"input has {cin} channels but weight of shape {tuple(weight.shape)} with "
            f"groups={groups} expects {weight.shape[1] * groups}"
        )
    if cout % groups != 0:
        raise ValueError(f"out channels {cout} must be divisible by groups={groups}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"bias must have shape ({cout},), got {tuple(bias.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if nonfinite not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}, got {nonfinite!r}")


# --------------------------------------------------------------------------------------------
# Spectral kernels (pure functions of tensors: differentiable, reused by forward and backward)
# --------------------------------------------------------------------------------------------


def _dims(nd: int) -> tuple[int, ...]:
    return tuple(range(-nd, 0))


def _wrap_kernel(w: torch.Tensor, n: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Zero-extend the kernel to ``n`` and roll it so that tap ``j`` sits at ``(j - shift) % n``.

    Correlating with the rolled kernel puts output position ``i`` of the zero-padded problem
    (padding ``shift`` before) at circular index ``i``: the padding is never materialised.
    """
    nd = len(n)
    pads = []
    for k, N in zip(reversed(w.shape[-nd:]), reversed(n)):
        pads += [0, N - k]
    w = F.pad(w, pads)
    if any(shift):
        w = torch.roll(w, shifts=[-s for s in shift], dims=list(range(-nd, 0)))
    return w


def _unwrap_kernel(g: torch.Tensor, k: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Adjoint of :func:`_wrap_kernel`: read the ``k`` taps back from a length-``n`` buffer."""
    nd = len(k)
    if any(shift):
        g = torch.roll(g, shifts=list(shift), dims=list(range(-nd, 0)))
    for i, kk in enumerate(k):
        g = g.narrow(g.dim() - nd + i, 0, kk)
    return g


def _kernel_spectrum(
    w: torch.Tensor, n: Sequence[int], groups: int, shift: Sequence[int] | None = None
) -> torch.Tensor:
    """Conjugated spectrum of the (wrapped) kernel in the layout used by :func:`_mix`.

    ``(g, Cout_g, *F)`` when each group has one input channel (elementwise products), else
    ``(F, g, Cin_g, Cout_g)`` (batched matrix products).
    """
    nd = len(n)
    cout, cin_g = w.shape[:2]
    if shift is not None and any(shift):
        spec = torch.fft.rfftn(_wrap_kernel(w, n, shift), dim=_dims(nd))
    else:
        spec = torch.fft.rfftn(w, s=tuple(n), dim=_dims(nd))
    spec = spec.conj()
    fshape = spec.shape[2:]
    if cin_g == 1:
        return spec.reshape(groups, cout // groups, *fshape).resolve_conj()
    f = math.prod(fshape)
    spec = spec.reshape(groups, cout // groups, cin_g, f)
    return spec.permute(3, 0, 2, 1).resolve_conj().contiguous()


def _mix(X: torch.Tensor, W: torch.Tensor, groups: int, inplace: bool = False) -> torch.Tensor:
    """Y[b, o] = sum_c X[b, c] * W[c, o] per frequency: (B, Cin, *F) -> (B, Cout, *F)."""
    b, cin = X.shape[:2]
    fshape = X.shape[2:]
    if cin == groups:  # one input channel per group: elementwise layout (g, m, *F)
        m = W.shape[1]
        if m == 1 and inplace:
            return X.mul_(W.reshape(groups, *fshape))
        Y = X.reshape(b, groups, 1, *fshape) * W.unsqueeze(0)
        return Y.reshape(b, groups * m, *fshape)
    f = math.prod(fshape)
    cin_g, cout_g = W.shape[2], W.shape[3]
    Xm = X.reshape(b, groups, cin_g, f).permute(3, 1, 0, 2)  # (F, g, B, Cin_g)
    Ym = torch.matmul(Xm, W)  # (F, g, B, Cout_g)
    return Ym.permute(2, 1, 3, 0).reshape(b, groups * cout_g, *fshape)


def _mix_transpose(GY: torch.Tensor, W: torch.Tensor, groups: int, cin_g: int) -> torch.Tensor:
    """GX[b, c] = sum_o GY[b, o] * conj(W[c, o]): (B, Cout, *F) -> (B, Cin, *F)."""
    b, cout = GY.shape[:2]
    fshape = GY.shape[2:]
    if cin_g == 1:
        m = W.shape[1]
        GX = GY.reshape(b, groups, m, *fshape) * W.conj().unsqueeze(0)
        return GX.sum(2) if m > 1 else GX.reshape(b, groups, *fshape)
    f = math.prod(fshape)
    cout_g = W.shape[3]
    Gm = GY.reshape(b, groups, cout_g, f).permute(3, 1, 0, 2)  # (F, g, B, Cout_g)
    GXm = torch.matmul(Gm, W.mH)  # (F, g, B, Cin_g)
    return GXm.permute(2, 1, 3, 0).reshape(b, groups * cin_g, *fshape)


def _mix_weight(X: torch.Tensor, GY: torch.Tensor, groups: int, cin_g: int) -> torch.Tensor:
    """Spectrum of the weight gradient: sum_b X[b, c] * conj(GY[b, o]) -> (Cout, Cin_g, *F)."""
    b, cin = X.shape[:2]
    cout = GY.shape[1]
    fshape = X.shape[2:]
    if cin_g == 1:
        m = cout // groups
        G = (X.reshape(b, groups, 1, *fshape) * GY.reshape(b, groups, m, *fshape).conj()).sum(0)
        return G.reshape(cout, 1, *fshape)
    f = math.prod(fshape)
    cout_g = cout // groups
    Xm = X.reshape(b, groups, cin_g, f).permute(3, 1, 2, 0)  # (F, g, Cin_g, B)
    Gm = GY.reshape(b, groups, cout_g, f).permute(3, 1, 0, 2).conj()  # (F, g, B, Cout_g)
    GW = torch.matmul(Xm, Gm)  # (F, g, Cin_g, Cout_g)
    return GW.permute(1, 3, 2, 0).reshape(cout, cin_g, *fshape)


def _crop(y: torch.Tensor, length: Sequence[int]) -> torch.Tensor:
    nd = len(length)
    for i, L in enumerate(length):
        y = y.narrow(y.dim() - nd + i, 0, L)
    return y


class _NonFinite(Exception):
    """Raised inside the forward when the input holds NaN or inf."""


def _check_finite(x: torch.Tensor, X: torch.Tensor, nd: int) -> None:
    # The zero-frequency term is the sum of each plane: it is finite unless the plane holds a
    # NaN or inf (or the sum overflows, which the exact check below tells apart).
    dc = X[(Ellipsis,) + (0,) * nd]
    if not bool(torch.isfinite(dc).all()) and not bool(torch.isfinite(x).all()):
        raise _NonFinite


def _forward_math(x, w, W, n, shift, out_len, groups, keep_x=True, check=False):
    nd = len(n)
    X = torch.fft.rfftn(x, s=tuple(n), dim=_dims(nd))
    if check:
        _check_finite(x, X, nd)
    if W is None:
        W = _kernel_spectrum(w, n, groups, shift)
    Y = _mix(X, W, groups, inplace=not keep_x)
    y = torch.fft.irfftn(Y, s=tuple(n), dim=_dims(nd))
    return _crop(y, out_len), (X if keep_x else None), W


def _backward_math(gy, x_shape, w_shape, X, W, n, shift, groups, need_x, need_w):
    nd = len(n)
    GY = torch.fft.rfftn(gy, s=tuple(n), dim=_dims(nd))
    gx = gw = None
    if need_x:
        GX = _mix_transpose(GY, W, groups, w_shape[1])
        gx = _crop(torch.fft.irfftn(GX, s=tuple(n), dim=_dims(nd)), x_shape[-nd:])
    if need_w:
        GW = _mix_weight(X, GY, groups, w_shape[1])
        gw = _unwrap_kernel(torch.fft.irfftn(GW, s=tuple(n), dim=_dims(nd)), w_shape[-nd:], shift)
    return gx, gw


class _SpectralCorrelation(torch.autograd.Function):
    """Zero-padded correlation through circular correlation at length ``n``.

    ``shift`` is the padding before each dim (realised by rolling the kernel), ``out_len`` the
    number of output positions read back.
    """

    @staticmethod
    def forward(ctx, x, w, W, n, shift, out_len, groups, check):
        keep_x = w.requires_grad
        y, X, W = _forward_math(x, w, W, n, shift, out_len, groups, keep_x, check)
        ctx.save_for_backward(x, w)
        ctx.spectra = (X, W)
        ctx.conf = (n, shift, groups)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        n, shift, groups = ctx.conf
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        X, W = ctx.spectra
        if torch.is_grad_enabled():
            # Double backward requested: recompute the spectra with differentiable operations
            # so that the graph links the gradients to x and w.
            nd = len(n)
            X = torch.fft.rfftn(x, s=tuple(n), dim=_dims(nd))
            W = _kernel_spectrum(w, n, groups, shift)
        gx, gw = _backward_math(gy, x.shape, w.shape, X, W, n, shift, groups, need_x, need_w)
        return gx, gw, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------
# Spectrum cache (eval mode)
# --------------------------------------------------------------------------------------------


class SpectrumCache:
    """Holds the most recent kernel spectrum of one weight tensor.

    The entry is keyed on the weight's identity, ``_version`` (bumped by every in-place update,
    such as an optimizer step or ``load_state_dict``), shape, dtype, device, and the transform
    size (which depends on the input size), and is replaced when any of them changes. It is
    only consulted when no gradient is needed for the weight (``torch.no_grad()`` or a frozen
    weight), so training never reads a stale spectrum.

    Example:
        >>> cache = SpectrumCache()
        >>> x, w = torch.randn(1, 2, 32, 32), torch.randn(2, 2, 5, 5)
        >>> with torch.no_grad():
        ...     y1 = fft_conv2d(x, w, cache=cache)
        ...     y2 = fft_conv2d(x, w, cache=cache)
        >>> cache.hits
        1
    """

    def __init__(self) -> None:
        self._key = None
        self._value = None
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop the stored spectrum."""
        self._key = None
        self._value = None

    def get(self, weight: torch.Tensor, w: torch.Tensor, n, groups, shift, extra=()) -> torch.Tensor:
        """Spectrum of ``w`` (derived from ``weight``, e.g. dilated) for transform size ``n``."""
        key = (
            id(weight),
            weight._version,
            weight.data_ptr(),
            tuple(weight.shape),
            weight.dtype,
            weight.device,
            tuple(n),
            groups,
            tuple(shift),
            tuple(extra),
        )
        if key == self._key:
            self.hits += 1
            return self._value
        self.misses += 1
        with torch.no_grad():
            value = _kernel_spectrum(w, n, groups, shift)
        self._key, self._value = key, value
        return value


# --------------------------------------------------------------------------------------------
# Planning: transform sizes and tiles
# --------------------------------------------------------------------------------------------


def _spectrum_elems(n: Sequence[int]) -> int:
    return math.prod(n[:-1]) * (n[-1] // 2 + 1)


def _untiled_sizes(spatial, pads, kd, out_len):
    return tuple(
        next_fast_len(max(s + pb, s + pa, k, L - pb + k - 1, 1))
        for s, (pb, pa), k, L in zip(spatial, pads, kd, out_len)
    )


def _call_bytes(batch, cin, cout, cin_g, n, item) -> int:
    """Rough peak bytes of the spectra of one call (input, output, kernel, temporaries)."""
    f = _spectrum_elems(n)
    planes = batch * (cin + cout) * f * item * 2  # spectra and their permuted copies
    kernel = cout * cin_g * f * item
    return planes + kernel


def _tile_candidates(L: int, k: int, n_full: int) -> list[int]:
    """Fast transform lengths for tiles along one dim (output tile = N - k + 1)."""
    cands = []
    N = next_fast_len(max(2 * k, k + 7))
    while N < n_full:
        cands.append(N)
        N = next_fast_len(N + 1) if N < 64 else next_fast_len(int(N * 1.25))
    return cands


def _choose_tiles(batch, cin, cout, cin_g, spatial_padded, kd, out_len, item, budget):
    """Transform sizes for overlap-save tiles that fit ``budget`` at the least estimated cost."""
    from cnnconv import planner

    nd = len(kd)
    per_dim = []
    for L, k, Sp in zip(out_len, kd, spatial_padded):
        full = next_fast_len(Sp)
        per_dim.append(_tile_candidates(L, k, full) + [full])
    best = None
    for combo in _product(per_dim):
        tiles = [max(1, -(-L // (N - k + 1))) for L, N, k in zip(out_len, combo, kd)]
        nt = math.prod(tiles)
        mem = _call_bytes(batch * nt, cin, cout, cin_g, combo, item)
        cost = planner.fft_cost(batch * nt, cin, cout, cin_g, combo)
        key = (mem > budget, cost if mem <= budget else mem)
        if best is None or key < best[0]:
            best = (key, combo)
    return best[1]


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head,) + tail


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def _all_finite(t: torch.Tensor) -> bool:
    # One reduction: a NaN or inf anywhere makes the sum non-finite; an overflowing sum of
    # finite values is told apart by the exact check.
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _direct(x, weight, stride, pads, dilation, groups, nd):
    flat = []
    for pb, pa in reversed(pads):
        flat += [pb, pa]
    if any(flat):
        x = F.pad(x, flat)
    conv = F.conv1d if nd == 1 else F.conv2d
    return conv(x, weight, None, stride, 0, dilation, groups)


def _spread(weight, dilation):
    if all(d == 1 for d in dilation):
        return weight
    nd = len(dilation)
    ks = weight.shape[-nd:]
    kd = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    w = weight.new_zeros(*weight.shape[:-nd], *kd)
    idx = (Ellipsis,) + tuple(slice(None, None, d) for d in dilation)
    w[idx] = weight
    return w


def _fft_conv(
    x,
    weight,
    bias,
    stride,
    padding,
    dilation,
    groups,
    padding_mode,
    nd,
    cache,
    nonfinite,
    memory_budget,
):
    _check_args(x, weight, bias, groups, nd, padding_mode, nonfinite)
    stride = _int_tuple(stride, nd, "stride")
    dilation = _int_tuple(dilation, nd, "dilation")
    if any(s < 1 for s in stride):
        raise ValueError(f"stride must be positive, got {stride}")
    if any(d < 1 for d in dilation):
        raise ValueError(f"dilation must be positive, got {dilation}")
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET
    elif isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float)):
        raise TypeError(f"memory_budget must be a number of bytes, got {memory_budget!r}")
    elif memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive, got {memory_budget}")
    ks = tuple(weight.shape[-nd:])
    pads = _resolve_padding(padding, ks, stride, dilation, nd)

    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    orig_dtype = x.dtype
    if orig_dtype not in (torch.float32, torch.float64):
        x = x.float()
        weight = weight.float()
        bias = None if bias is None else bias.float()
        cache = None

    if padding_mode != "zeros" and any(p for pp in pads for p in pp):
        flat = []
        for pb, pa in reversed(pads):
            flat += [pb, pa]
        x = F.pad(x, flat, mode=padding_mode)
        pads = [(0, 0)] * nd

    kd = tuple(d * (k - 1) + 1 for k, d in zip(ks, dilation))
    spatial = tuple(x.shape[-nd:])
    dense_len = tuple(s + pb + pa - k + 1 for s, (pb, pa), k in zip(spatial, pads, kd))
    if any(L < 1 for L in dense_len):
        raise ValueError(
            f"kernel size {ks} with dilation {dilation} is larger than the padded input "
            f"{tuple(s + pb + pa for s, (pb, pa) in zip(spatial, pads))}"
        )
    # Only the positions kept by the stride are needed.
    out_len = tuple((L - 1) // s * s + 1 for L, s in zip(dense_len, stride))

    y = None
    if _all_finite(weight):
        try:
            y = _fft_core(x, weight, pads, dilation, kd, out_len, groups, nd, cache, memory_budget)
        except _NonFinite:
            y = None
    if y is None:
        if nonfinite == "raise":
            raise ValueError("input or weight contains NaN or inf (nonfinite='raise')")
        y = _direct(x, weight, stride, pads, dilation, groups, nd)
    elif any(s > 1 for s in stride):
        y = y[(Ellipsis,) + tuple(slice(None, None, s) for s in stride)]
    if bias is not None:
        y = y + bias.reshape(-1, *([1] * nd))
    if unbatched:
        y = y.squeeze(0)
    if y.dtype != orig_dtype:
        y = y.to(orig_dtype)
    return y


def _fft_core(x, weight, pads, dilation, kd, out_len, groups, nd, cache, memory_budget):
    batch, cin = x.shape[:2]
    cout, cin_g = weight.shape[:2]
    item = _COMPLEX_BYTES[x.dtype]
    spatial = tuple(x.shape[-nd:])
    n = _untiled_sizes(spatial, pads, kd, out_len)
    use_cache = cache is not None and not (torch.is_grad_enabled() and weight.requires_grad)
    w = _spread(weight, dilation)

    if _call_bytes(batch, cin, cout, cin_g, n, item) <= memory_budget:
        shift = tuple(pb for pb, _ in pads)
        W = cache.get(weight, w, n, groups, shift, dilation) if use_cache else None
        return _SpectralCorrelation.apply(x, w, W, n, shift, out_len, groups, True)

    # Overlap-save tiles: pad explicitly, cut overlapping tiles, fold them into the batch.
    padded = tuple(s + pb + pa for s, (pb, pa) in zip(spatial, pads))
    n = _choose_tiles(batch, cin, cout, cin_g, padded, kd, out_len, item, memory_budget)
    tile_out = tuple(N - k + 1 for N, k in zip(n, kd))
    counts = tuple(-(-L // T) for L, T in zip(out_len, tile_out))
    flat = []
    for i in reversed(range(nd)):
        need = counts[i] * tile_out[i] + kd[i] - 1  # padded length covering all tiles
        pb, _ = pads[i]
        flat += [pb, need - spatial[i] - pb]
    xp = F.pad(x, flat)
    for i in range(nd):
        xp = xp.unfold(2 + i, n[i], tile_out[i])
    # xp: (B, C, t1[, t2], N1[, N2]) -> (B * prod(t), C, N...)
    perm = [0] + list(range(2, 2 + nd)) + [1] + list(range(2 + nd, 2 + 2 * nd))
    xt = xp.permute(*perm).reshape(batch * math.prod(counts), cin, *n)
    W = cache.get(weight, w, n, groups, (0,) * nd, dilation) if use_cache else None
    yt = _SpectralCorrelation.apply(xt, w, W, n, (0,) * nd, tile_out, groups, True)
    # yt: (B * prod(t), Cout, T...) -> (B, Cout, t1 * T1, ...)
    yt = yt.reshape(batch, *counts, cout, *tile_out)
    perm = [0, 1 + nd]
    for i in range(nd):
        perm += [1 + i, 2 + nd + i]
    y = yt.permute(*perm).reshape(batch, cout, *(c * T for c, T in zip(counts, tile_out)))
    for i in range(nd):
        y = y.narrow(2 + i, 0, out_len[i])
    return y


def fft_conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    cache: SpectrumCache | None = None,
    nonfinite: str = "direct",
    memory_budget: int | None = None,
) -> torch.Tensor:
    """1-D convolution (cross-correlation) through the FFT, with ``F.conv1d`` semantics.

    Args:
        input: ``(B, Cin, L)`` or unbatched ``(Cin, L)``.
        weight: ``(Cout, Cin / groups, k)``.
        bias: optional ``(Cout,)``.
        stride: int or 1-tuple.
        padding: int, 1-tuple, ``"same"`` (PyTorch's convention for even kernels: ``(k-1)//2``
            before) or ``"valid"``.
        dilation: int or 1-tuple.
        groups: number of channel groups.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (as
            ``nn.Conv1d``).
        cache: optional :class:`SpectrumCache` reused when no weight gradient is needed.
        nonfinite: ``"direct"`` (fall back to ``F.conv1d`` for inputs with NaN/inf) or
            ``"raise"``.
        memory_budget: bytes of spectra before the input is tiled (default
            :data:`DEFAULT_MEMORY_BUDGET`).

    Returns:
        The output of ``F.conv1d`` for the same arguments (up to rounding).

    Shape:
        ``(B, Cin, L) -> (B, Cout, Lout)`` with ``Lout`` as ``F.conv1d``.

    Example:
        >>> x, w = torch.randn(1, 1, 1000), torch.randn(1, 1, 1000)
        >>> fft_conv1d(x, w, padding=999).shape  # full correlation
        torch.Size([1, 1, 1999])
    """
    return _fft_conv(
        input, weight, bias, stride, padding, dilation, groups, padding_mode, 1,
        cache, nonfinite, memory_budget,
    )


def fft_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    cache: SpectrumCache | None = None,
    nonfinite: str = "direct",
    memory_budget: int | None = None,
) -> torch.Tensor:
    """2-D convolution (cross-correlation) through the FFT, with ``F.conv2d`` semantics.

    Args:
        input: ``(B, Cin, H, W)`` or unbatched ``(Cin, H, W)``.
        weight: ``(Cout, Cin / groups, kh, kw)``.
        bias: optional ``(Cout,)``.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` (PyTorch's convention for even kernels:
            ``(k-1)//2`` before) or ``"valid"``.
        dilation: int or ``(dh, dw)``.
        groups: number of channel groups (``groups == Cin`` is depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (as
            ``nn.Conv2d``).
        cache: optional :class:`SpectrumCache` reused when no weight gradient is needed.
        nonfinite: ``"direct"`` (fall back to ``F.conv2d`` for inputs with NaN/inf) or
            ``"raise"``.
        memory_budget: bytes of spectra before the input is tiled (default
            :data:`DEFAULT_MEMORY_BUDGET`).

    Returns:
        The output of ``F.conv2d`` for the same arguments (up to rounding).

    Shape:
        ``(B, Cin, H, W) -> (B, Cout, Hout, Wout)`` with the sizes of ``F.conv2d``.

    Example:
        >>> x, w = torch.randn(2, 4, 64, 64), torch.randn(8, 4, 31, 31)
        >>> fft_conv2d(x, w, padding="same").shape
        torch.Size([2, 8, 64, 64])
    """
    return _fft_conv(
        input, weight, bias, stride, padding, dilation, groups, padding_mode, 2,
        cache, nonfinite, memory_budget,
    )
