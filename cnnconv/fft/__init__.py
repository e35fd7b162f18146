"""FFT convolution engine with exact ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` semantics.

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
* **Causal padding** (1-D, ``padding="causal"``): ``dilation * (k - 1)`` zeros before the
  signal and none after, so output ``i`` depends on inputs ``<= i * stride`` only (with stride
  1 the output has the input's length).
* **Dtypes**: float32 and float64 are computed in their own precision; float16 and bfloat16 in
  float32 and cast back.
* **Non-finite input**: a single NaN or inf would spread over the whole FFT output, so such calls
  fall back to the direct ``F.conv*d`` (``nonfinite="direct"``, default) or raise
  (``nonfinite="raise"``).
* **Exact zeros**: where the input window of an output holds only zeros (e.g. a dead ReLU region
  larger than the kernel), the direct method gives exactly 0 but the transforms leave rounding
  noise of about ``eps * |x| * |w|``, on which a following ReLU would open. Such outputs are set
  to exactly 0 (before the bias) with ``exact_zeros=True`` (default); gradients are unchanged.
  The windows are found exactly from the input's non-zero pattern (boolean sliding windows).
* **PyTorch integration**: under ``torch.autocast`` the arguments are cast as a convolution's
  (floating-point tensors other than float64 to the autocast dtype), the transforms run in
  float32 with autocast off, and the result has the autocast dtype. Meta tensors and
  ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``, ...) take ``F.conv*d``, which
  supports them. Shape and dtype errors are raised as ``F.conv*d`` raises them (subclasses
  of ``RuntimeError``, and of ``ValueError`` / ``TypeError``). The output is contiguous,
  channels_last (channels_last_3d) when the input or weight is (as ``F.conv2d`` /
  ``F.conv3d``).

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
    "ConvArgumentError",
    "ConvDtypeError",
    "PADDING_MODES",
    "DEFAULT_MEMORY_BUDGET",
    "SpectrumCache",
    "fft_conv1d",
    "fft_conv2d",
    "fft_conv3d",
    "next_fast_len",
    "set_fft_backend",
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
    """Per spatial dim ``(before, after)`` zero/border padding, PyTorch's convention (and
    ``"causal"``: all of it before, 1-D only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "causal":
            if nd != 1:
                raise ValueError(
                    f"padding='causal' is only supported for 1-D convolutions, got {nd}-D"
                )
            return [(dilation[0] * (kernel[0] - 1), 0)]
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
        raise ValueError(
            f"padding must be 'same', 'valid', 'causal' (1-D), an int or a tuple, got {padding!r}"
        )
    p = _int_tuple(padding, nd, "padding")
    if any(v < 0 for v in p):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return [(v, v) for v in p]


class ConvArgumentError(ValueError, RuntimeError):
    """A shape, size or device that ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` reject (with a
    RuntimeError): catchable as either ``ValueError`` or ``RuntimeError``."""


class ConvDtypeError(TypeError, RuntimeError):
    """Mismatched dtypes, which ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` reject (with a
    RuntimeError): catchable as either ``TypeError`` or ``RuntimeError``."""


def _check_causal_mode(padding, padding_mode) -> None:
    """Refuse ``padding="causal"`` with a border mode that reads later samples.

    ``"reflect"`` and ``"circular"`` fill the left border from samples after it, which would
    make the output depend on the future; ``"zeros"`` and ``"replicate"`` do not.
    """
    if isinstance(padding, str) and padding == "causal" and padding_mode in ("reflect", "circular"):
        raise ValueError(
            f"padding='causal' needs padding_mode 'zeros' or 'replicate' (padding_mode="
            f"{padding_mode!r} reads later samples), got padding_mode={padding_mode!r}"
        )


def _check_args(x, weight, bias, groups, nd, padding_mode, nonfinite, padding):
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
        raise ConvDtypeError(
            f"weight dtype must match input dtype {x.dtype}, got {weight.dtype}"
        )
    if bias is not None and bias.dtype != x.dtype:
        raise ConvDtypeError(f"bias dtype must match input dtype {x.dtype}, got {bias.dtype}")
    if weight.device != x.device:
        raise ConvArgumentError(
            f"weight must be on the input's device {x.device}, got {weight.device}"
        )
    if x.dim() not in (nd + 1, nd + 2):
        raise ConvArgumentError(
            f"{name} expects input of {nd + 1} (unbatched) or {nd + 2} (batched) dims, "
            f"got shape {tuple(x.shape)}"
        )
    if weight.dim() != nd + 2:
        raise ConvArgumentError(
            f"{name} expects weight of {nd + 2} dims, got shape {tuple(weight.shape)}"
        )
    if any(k == 0 for k in weight.shape[2:]):
        raise ConvArgumentError(
            f"weight must have a non-empty kernel, got shape {tuple(weight.shape)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    cin = x.shape[-nd - 1]
    cout = weight.shape[0]
    if cout == 0:
        raise ConvArgumentError(
            f"weight must have at least one output channel, got shape {tuple(weight.shape)}"
        )
    if cin != weight.shape[1] * groups:
        raise ConvArgumentError(
            f"input has {cin} channels but weight of shape {tuple(weight.shape)} with "
            f"groups={groups} expects {weight.shape[1] * groups}"
        )
    if cout % groups != 0:
        raise ConvArgumentError(f"out channels {cout} must be divisible by groups={groups}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ConvArgumentError(f"bias must have shape ({cout},), got {tuple(bias.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    _check_causal_mode(padding, padding_mode)
    if nonfinite not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}, got {nonfinite!r}")



# --------------------------------------------------------------------------------------------
# Transforms: torch.fft, or scipy.fft (pocketfft) on CPU where it is faster and no graph is built
# --------------------------------------------------------------------------------------------

FFT_BACKENDS = ("auto", "torch", "scipy")
_backend = {"name": "auto", "scipy": None}


def set_fft_backend(name: str) -> None:
    """Pick the transform library: ``"auto"`` (scipy.fft for CPU tensors when scipy is installed
    and no autograd graph is being recorded, torch.fft otherwise), ``"torch"`` or ``"scipy"``.

    Args:
        name: one of ``"auto"``, ``"torch"``, ``"scipy"``.

    Example:
        >>> set_fft_backend("torch"); set_fft_backend("auto")
    """
    if name not in FFT_BACKENDS:
        raise ValueError(f"backend must be one of {FFT_BACKENDS}, got {name!r}")
    if name == "scipy":
        try:
            import scipy.fft  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the scipy FFT backend needs scipy: pip install 'cnnconv[experiments]'"
            ) from exc
    _backend["name"] = name


def _scipy_fft(t: torch.Tensor):
    """scipy.fft when it should compute this transform, else None."""
    name = _backend["name"]
    if name == "torch" or t.device.type != "cpu" or torch.is_grad_enabled():
        return None
    if t.dtype not in (torch.float32, torch.float64, torch.complex64, torch.complex128):
        return None
    mod = _backend["scipy"]
    if mod is None:
        try:
            import scipy.fft as mod
        except ImportError:
            mod = False
        _backend["scipy"] = mod
    return mod or None


def _rfftn(x: torch.Tensor, n: Sequence[int]) -> torch.Tensor:
    nd = len(n)
    sp = _scipy_fft(x)
    if sp is None:
        return torch.fft.rfftn(x, s=tuple(n), dim=_dims(nd))
    a = x.detach().resolve_conj().numpy()
    out = sp.rfftn(a, s=tuple(n), axes=_dims(nd), workers=torch.get_num_threads())
    return torch.from_numpy(out)


def _irfftn(X: torch.Tensor, n: Sequence[int], overwrite: bool = False) -> torch.Tensor:
    nd = len(n)
    sp = _scipy_fft(X)
    if sp is None:
        return torch.fft.irfftn(X, s=tuple(n), dim=_dims(nd))
    a = X.detach().resolve_conj().numpy()
    out = sp.irfftn(
        a, s=tuple(n), axes=_dims(nd), workers=torch.get_num_threads(), overwrite_x=overwrite
    )
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------
# Spectral kernels (pure functions of tensors: differentiable, reused by forward and backward)
# --------------------------------------------------------------------------------------------


def _dims(nd: int) -> tuple[int, ...]:
    return tuple(range(-nd, 0))


def _pieces(k: int, N: int, shift: int):
    """(src_start, dst_start, length) of the taps of a kernel rolled by ``-shift`` modulo N."""
    a = min(shift, k)
    out = []
    if k - a > 0:
        out.append((a, a - shift if shift <= k else 0, k - a))
    if a > 0:
        out.append((0, N - shift, a))
    return out


def _wrap_kernel(w: torch.Tensor, n: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Zero-extend the kernel to ``n`` with tap ``j`` at ``(j - shift) % n``.

    Correlating with the wrapped kernel puts output position ``i`` of the zero-padded problem
    (padding ``shift`` before) at circular index ``i``: the padding is never materialised.
    """
    nd = len(n)
    ks = w.shape[-nd:]
    out = w.new_zeros(*w.shape[:-nd], *n)
    for combo in _product([_pieces(k, N, s) for k, N, s in zip(ks, n, shift)]):
        src = (Ellipsis,) + tuple(slice(a, a + L) for a, _, L in combo)
        dst = (Ellipsis,) + tuple(slice(b, b + L) for _, b, L in combo)
        out[dst] = w[src]
    return out


def _unwrap_kernel(g: torch.Tensor, k: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Adjoint of :func:`_wrap_kernel`: read the ``k`` taps back from a length-``n`` buffer."""
    nd = len(k)
    for i, (kk, s) in enumerate(zip(k, shift)):
        dim = g.dim() - nd + i
        N = g.shape[dim]
        parts = sorted(_pieces(kk, N, s))  # ordered by source tap
        g = torch.cat([g.narrow(dim, b, L) for _, b, L in parts], dim) if len(parts) > 1 else (
            g.narrow(dim, parts[0][1], parts[0][2])
        )
    return g


_KERNEL_CHUNK_BYTES = 64 << 20


def _kernel_spectrum(
    w: torch.Tensor, n: Sequence[int], groups: int, shift: Sequence[int] | None = None
) -> torch.Tensor:
    """Conjugated spectrum of the (wrapped) kernel in the layout used by :func:`_mix`.

    ``(g, Cout_g, *F)`` when each group has one input channel (elementwise products), else
    ``(F, g, Cin_g, Cout_g)`` (batched matrix products). Large kernels are transformed a few
    output channels at a time, so the padded copies never exceed a few tens of MB.
    """
    nd = len(n)
    cout, cin_g = w.shape[:2]
    cout_g = cout // groups
    fshape = tuple(n[:-1]) + (n[-1] // 2 + 1,)
    f = math.prod(fshape)
    item = _COMPLEX_BYTES.get(w.dtype, 8)
    per_out = groups * cin_g * math.prod(n) * item
    step = max(1, min(cout_g, _KERNEL_CHUNK_BYTES // max(1, per_out)))
    wg = w.reshape(groups, cout_g, cin_g, *w.shape[2:])
    out = None
    for c0 in range(0, cout_g, step):
        c1 = min(cout_g, c0 + step)
        part = wg[:, c0:c1].reshape(groups * (c1 - c0), cin_g, *w.shape[2:])
        if shift is not None and any(shift):
            spec = _rfftn(_wrap_kernel(part, n, shift), n)
        else:
            spec = _rfftn(part, n)
        spec = spec.conj().reshape(groups, c1 - c0, cin_g, f)
        if cin_g == 1:
            spec = spec.reshape(groups, c1 - c0, *fshape)
        else:
            spec = spec.permute(3, 0, 2, 1)  # (F, g, Cin_g, c)
        if step == cout_g:
            return spec.resolve_conj().contiguous()
        if out is None:
            shape = (groups, cout_g, *fshape) if cin_g == 1 else (f, groups, cin_g, cout_g)
            out = spec.new_empty(shape)
        if cin_g == 1:
            out[:, c0:c1] = spec
        else:
            out[..., c0:c1] = spec
    return out


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


def _mix_weight(X, GY, groups: int, cin_g: int, acc=None):
    """Accumulate the weight-gradient spectrum sum_b X[b, c] * conj(GY[b, o]) into ``acc``.

    ``acc`` has the layout of the kernel spectrum (``(g, Cout_g, *F)`` depthwise, else
    ``(F, g, Cin_g, Cout_g)``); it is created when None and returned.
    """
    b, cin = X.shape[:2]
    cout = GY.shape[1]
    fshape = X.shape[2:]
    cout_g = cout // groups
    if cin_g == 1:
        G = (X.reshape(b, groups, 1, *fshape) * GY.reshape(b, groups, cout_g, *fshape).conj()).sum(0)
        return G if acc is None else acc.add_(G)
    f = math.prod(fshape)
    Xm = X.reshape(b, groups, cin_g, f).permute(3, 1, 2, 0)  # (F, g, Cin_g, B)
    Gm = GY.reshape(b, groups, cout_g, f).permute(3, 1, 0, 2).conj()  # (F, g, B, Cout_g)
    if acc is None or torch.is_grad_enabled():
        G = torch.matmul(Xm, Gm)
        return G if acc is None else acc + G
    # In place, without a temporary of the kernel spectrum's size.
    acc.view(f * groups, cin_g, cout_g).baddbmm_(
        Xm.reshape(f * groups, cin_g, b), Gm.resolve_conj().reshape(f * groups, b, cout_g)
    )
    return acc


def _weight_grad(GW, n, w_shape, shift, groups):
    """Real weight gradient ``(Cout, Cin_g, *k)`` from its accumulated spectrum, in chunks."""
    nd = len(n)
    cout, cin_g = w_shape[:2]
    cout_g = cout // groups
    fshape = tuple(n[:-1]) + (n[-1] // 2 + 1,)
    item = _COMPLEX_BYTES.get(GW.real.dtype, 8)
    per_out = groups * cin_g * math.prod(n) * item
    step = max(1, min(cout_g, _KERNEL_CHUNK_BYTES // max(1, per_out)))
    parts = []
    for c0 in range(0, cout_g, step):
        c1 = min(cout_g, c0 + step)
        if cin_g == 1:
            spec = GW[:, c0:c1].reshape(groups * (c1 - c0), 1, *fshape)
        else:
            spec = GW[..., c0:c1].permute(1, 3, 2, 0).reshape(groups * (c1 - c0), cin_g, *fshape)
        g = _unwrap_kernel(_irfftn(spec, n, overwrite=False), w_shape[2:], shift)
        parts.append(g.reshape(groups, c1 - c0, cin_g, *w_shape[2:]))
    g = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return g.reshape(cout, cin_g, *w_shape[2:])


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
    # Either way the transform would spread it over the whole output, so the caller falls back.
    dc = X[(Ellipsis,) + (0,) * nd]
    if not bool(torch.isfinite(dc).all()):
        raise _NonFinite


# --------------------------------------------------------------------------------------------
# Execution of a plan: chunks of batch items or of overlap-save tiles
# --------------------------------------------------------------------------------------------


class _Plan:
    """How one call is computed (see :func:`_make_plan`)."""

    def __init__(self, n, tiled, shift, out_len, tile_out=None, counts=None, pads=None,
                 chunk=1, cost=0.0, budget=DEFAULT_MEMORY_BUDGET):
        self.n = tuple(n)
        self.tiled = tiled
        self.shift = tuple(shift)
        self.out_len = tuple(out_len)
        self.tile_out = tile_out
        self.counts = counts
        self.pads = pads
        self.chunk = chunk
        self.cost = cost
        self.budget = budget

    def as_dict(self) -> dict:
        return dict(n=self.n, tiled=self.tiled, tile_out=self.tile_out, counts=self.counts,
                    chunk=self.chunk, cost=self.cost)


def _chunks(plan: _Plan, batch: int):
    """(b0, b1, i0, i1): batch items b0..b1, and for tiles, tile rows i0..i1 of dim 0."""
    if not plan.tiled:
        for b0 in range(0, batch, plan.chunk):
            yield b0, min(batch, b0 + plan.chunk), 0, 1
        return
    t1 = plan.counts[0]
    per_row = math.prod(plan.counts[1:])
    rows = max(1, plan.chunk // per_row)
    if rows >= t1:
        images = max(1, rows // t1)
        for b0 in range(0, batch, images):
            yield b0, min(batch, b0 + images), 0, t1
    else:
        for b in range(batch):
            for i0 in range(0, t1, rows):
                yield b, b + 1, i0, min(t1, i0 + rows)


def _padded_rows(t, start, length, before, total):
    """Rows ``[start, start + length)`` along dim 2 of ``t`` zero-extended to ``total`` rows
    (``before`` zeros precede row 0), without copying the rest of ``t``."""
    r0, r1 = start - before, start - before + length
    a, b = max(r0, 0), min(r1, t.shape[2])
    part = t.narrow(2, a, max(0, b - a)) if b > a else t.narrow(2, 0, 0)
    return part, (a - r0, r1 - max(b, a))


def _tiles_of(x, plan: _Plan, b0, b1, i0, i1):
    """Input tiles (nb * ti * t2.., C, *n) of tile rows i0..i1 of images b0..b1, cut from the
    unpadded input with the zero padding added per chunk."""
    nd = len(plan.n)
    T, N = plan.tile_out, plan.n
    rows = (i1 - i0 - 1) * T[0] + N[0]
    part, (top, bottom) = _padded_rows(x[b0:b1], i0 * T[0], rows, plan.pads[0][0], None)
    flat = []
    for i in reversed(range(1, nd)):
        need = plan.counts[i] * T[i] + N[i] - T[i]
        pb = plan.pads[i][0]
        flat += [pb, need - x.shape[2 + i] - pb]
    flat += [top, bottom]
    v = F.pad(part, flat)
    for i in range(nd):
        v = v.unfold(2 + i, N[i], T[i])
    # (nb, C, ti, t2.., N..) -> (nb, ti, t2.., C, N..)
    perm = [0] + list(range(2, 2 + nd)) + [1] + list(range(2 + nd, 2 + 2 * nd))
    v = v.permute(*perm)
    return v.reshape(-1, x.shape[1], *N)


def _grid_rows(gy, plan: _Plan, b0, b1, i0, i1):
    """Rows of tiles i0..i1 of the output gradient, zero-extended to whole tiles."""
    nd = len(plan.n)
    T = plan.tile_out
    part, (_, bottom) = _padded_rows(gy[b0:b1], i0 * T[0], (i1 - i0) * T[0], 0, None)
    flat = []
    for i in reversed(range(1, nd)):
        flat += [0, plan.counts[i] * T[i] - gy.shape[2 + i]]
    flat += [0, bottom]
    return F.pad(part, flat)


def _untile(yt, plan: _Plan, nb, ti):
    """Output tiles (nb * ti * t2.., C, *T) -> (nb, C, ti * T0, t2 * T1..)."""
    nd = len(plan.n)
    T = plan.tile_out
    counts = (ti,) + tuple(plan.counts[1:])
    c = yt.shape[1]
    yt = yt.reshape(nb, *counts, c, *T)
    perm = [0, 1 + nd]
    for i in range(nd):
        perm += [1 + i, 2 + nd + i]
    return yt.permute(*perm).reshape(nb, c, *(k * t for k, t in zip(counts, T)))


def _tile(g, plan: _Plan, nb, ti):
    """Inverse of :func:`_untile`: (nb, C, ti * T0, ..) -> (nb * ti * .., C, *T)."""
    nd = len(plan.n)
    T = plan.tile_out
    counts = (ti,) + tuple(plan.counts[1:])
    c = g.shape[1]
    shape = [nb, c]
    for k, t in zip(counts, T):
        shape += [k, t]
    g = g.reshape(*shape)
    perm = [0] + [2 + 2 * i for i in range(nd)] + [1] + [3 + 2 * i for i in range(nd)]
    return g.permute(*perm).reshape(-1, c, *T)


def _overlap_add(target, tiles, plan: _Plan, nb, ti):
    """Add input-gradient tiles (nb * ti * .., C, *n) into ``target`` (nb, C, region..)."""
    nd = len(plan.n)
    T, N = plan.tile_out, plan.n
    counts = (ti,) + tuple(plan.counts[1:])
    c = tiles.shape[1]
    tiles = tiles.reshape(nb, *counts, c, *N)
    # Tiles of equal parity along every dim do not overlap (tile step T >= N / 2), so each
    # parity class is one vectorised add into a strided window view.
    for par in _product([[0, 1]] * nd):
        src = tiles[(slice(None),) + tuple(slice(p, None, 2) for p in par)]
        if any(s == 0 for s in src.shape):
            continue
        perm = [0, 1 + nd] + list(range(1, 1 + nd)) + list(range(2 + nd, 2 + 2 * nd))
        src = src.permute(*perm)
        dst = target
        for i, p in enumerate(par):
            dst = dst.narrow(2 + i, p * T[i], dst.shape[2 + i] - p * T[i])
        for i in range(nd):
            dst = dst.unfold(2 + i, N[i], 2 * T[i])
        dst = dst[(Ellipsis,) + tuple(slice(0, s) for s in src.shape[2:2 + nd]) + (slice(None),) * nd]
        dst.add_(src)


def _run_forward(x, w, W, plan: _Plan, groups, keep_x, check):
    """y (B, Cout, *out_len) and the list of per-chunk input spectra (when ``keep_x``)."""
    nd = len(plan.n)
    n = plan.n
    batch = x.shape[0]
    cout = w.shape[0]
    if W is None:
        W = _kernel_spectrum(w, n, groups, plan.shift)
    spectra = []
    chunks = list(_chunks(plan, batch))
    if plan.tiled:
        grid = tuple(c * t for c, t in zip(plan.counts, plan.tile_out))
        y = x.new_empty(batch, cout, *grid)
    elif len(chunks) > 1:
        y = x.new_empty(batch, cout, *plan.out_len)
    for b0, b1, i0, i1 in chunks:
        xc = _tiles_of(x, plan, b0, b1, i0, i1) if plan.tiled else x[b0:b1]
        X = _rfftn(xc, n)
        if check:
            _check_finite(xc, X, nd)
        Y = _mix(X, W, groups, inplace=not keep_x)
        if keep_x:
            spectra.append(X)
        length = plan.tile_out if plan.tiled else plan.out_len
        yc = _crop(_irfftn(Y, n, overwrite=True), length)
        if plan.tiled:
            T0 = plan.tile_out[0]
            y[b0:b1, :, i0 * T0:i1 * T0] = _untile(yc, plan, b1 - b0, i1 - i0)
        elif len(chunks) > 1:
            y[b0:b1] = yc
        else:
            y = yc
    if plan.tiled:
        y = _crop(y, plan.out_len)
    return y, spectra, W


def _run_backward(gy, x, w, spectra, W, plan: _Plan, groups, need_x, need_w):
    nd = len(plan.n)
    n = plan.n
    batch = x.shape[0]
    cin_g = w.shape[1]
    gx = gw = None
    chunks = list(_chunks(plan, batch))
    if plan.tiled:
        if need_x:
            gxp = x.new_zeros(
                batch, x.shape[1], *(c * t + N - t for c, t, N in zip(plan.counts, plan.tile_out, n))
            )
    elif need_x and len(chunks) > 1:
        gx = x.new_empty(x.shape)
    GW = None
    for idx, (b0, b1, i0, i1) in enumerate(chunks):
        if plan.tiled:
            T0 = plan.tile_out[0]
            gyc = _tile(_grid_rows(gy, plan, b0, b1, i0, i1), plan, b1 - b0, i1 - i0)
        else:
            gyc = gy[b0:b1]
        GY = _rfftn(gyc, n)
        if need_w:
            X = spectra[idx] if spectra else _rfftn(
                _tiles_of(x, plan, b0, b1, i0, i1) if plan.tiled else x[b0:b1], n)
            GW = _mix_weight(X, GY, groups, cin_g, GW)
        if need_x:
            GX = _mix_transpose(GY, W, groups, cin_g)
            g = _irfftn(GX, n, overwrite=True)
            if plan.tiled:
                T0 = plan.tile_out[0]
                region = gxp[b0:b1].narrow(2, i0 * T0, (i1 - i0 - 1) * T0 + n[0])
                _overlap_add(region, g, plan, b1 - b0, i1 - i0)
            elif len(chunks) > 1:
                gx[b0:b1] = _crop(g, x.shape[2:])
            else:
                gx = _crop(g, x.shape[2:])
    if need_x and plan.tiled:
        gx = gxp
        for i, (pb, _) in enumerate(plan.pads):
            gx = gx.narrow(2 + i, pb, x.shape[2 + i])
    if need_w:
        gw = _weight_grad(GW, n, w.shape, plan.shift, groups)
    return gx, gw


class _SpectralCorrelation(torch.autograd.Function):
    """Zero-padded correlation of ``x`` with ``w`` computed as :class:`_Plan` says."""

    @staticmethod
    def forward(ctx, x, w, W, plan, groups, check):
        # Keep the input spectra for the weight gradient when they are small; otherwise the
        # backward recomputes them chunk by chunk (bounded memory for large inputs).
        item = _COMPLEX_BYTES.get(x.dtype, 8)
        n_items = x.shape[0] * (math.prod(plan.counts) if plan.tiled else 1)
        keep_x = w.requires_grad and (
            n_items * x.shape[1] * _spectrum_elems(plan.n) * item <= plan.budget // 2
        )
        y, spectra, W = _run_forward(x, w, W, plan, groups, keep_x, check)
        ctx.save_for_backward(x, w)

        ctx.spectra = (spectra, W)
        ctx.conf = (plan, groups)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        plan, groups = ctx.conf
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():
            # Double backward: differentiate a differentiable re-run of the forward (torch.fft,
            # no in-place reuse), so the graph links the gradients to x and w.
            inputs = [t for t, need in ((x, need_x), (w, need_w)) if need]
            with torch.enable_grad():
                y, _, _ = _run_forward(x, w, None, plan, groups, True, False)
                grads = list(torch.autograd.grad(y, inputs, gy, create_graph=True))
            gx = grads.pop(0) if need_x else None
            gw = grads.pop(0) if need_w else None
            return gx, gw, None, None, None, None
        spectra, W = ctx.spectra
        gx, gw = _run_backward(gy, x, w, spectra, W, plan, groups, need_x, need_w)
        return gx, gw, None, None, None, None


# --------------------------------------------------------------------------------------------
# Spectrum cache (eval mode)
# --------------------------------------------------------------------------------------------


class SpectrumCache:
    """Holds the most recent kernel spectrum of one weight tensor.

    The entry keeps a copy of the weight's values and is reused only when the weight still
    equals it (``torch.equal``) and its shape, dtype, device and the transform size (which
    depends on the input size) are unchanged. Comparing values sees every kind of write
    (optimizer steps, fused ones included, ``weight.data`` updates and assignments, writes
    through numpy or ``vector_to_parameters``), which version counters and addresses do not,
    and it costs one pass over the weight, little next to the transforms of the input. It is
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
        self.clear()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop the stored spectrum."""
        self._key = None
        self._weight = None
        self._value = None

    def get(self, weight: torch.Tensor, w: torch.Tensor, n, groups, shift, extra=()) -> torch.Tensor:
        """Spectrum of ``w`` (derived from ``weight``, e.g. dilated) for transform size ``n``."""
        key = (
            tuple(weight.shape),
            weight.dtype,
            weight.device,
            tuple(n),
            groups,
            tuple(shift),
            tuple(extra),
        )
        with torch.no_grad():
            if key == self._key and torch.equal(weight, self._weight):
                self.hits += 1
                return self._value
            self.misses += 1
            self._key, self._weight = None, weight.detach().clone()
            self._value = _kernel_spectrum(w, n, groups, shift)
        self._key = key
        return self._value


# --------------------------------------------------------------------------------------------
# Planning: transform sizes and tiles
# --------------------------------------------------------------------------------------------


def _spectrum_elems(n: Sequence[int]) -> int:
    return math.prod(n[:-1]) * (n[-1] // 2 + 1)


def _untiled_sizes(spatial, pads, kd, out_len):
    return tuple(
        next_fast_len(max(s + pb, s + pa, k, L, L - pb + k - 1, 1))
        for s, (pb, pa), k, L in zip(spatial, pads, kd, out_len)
    )


def _item_bytes(cin, cout, n, item) -> int:
    """Working bytes per batch item (or tile): input and output planes, spectra and the copies
    the transforms and the channel-mixing layout make (about four of each)."""
    return (cin + cout) * _spectrum_elems(n) * item * 4


def _tile_candidates(k: int, n_full: int, nd: int = 2) -> list[int]:
    """Fast transform lengths for tiles along one dim (output tile = N - k + 1 >= k).

    Transforms of fewer than about 4096 points (64 per side in 2-D, 16 in 3-D) or 1024 points
    (1-D) run far below the ``P log P`` rate and cost Python overhead per tile, so tiles start
    there.
    """
    cands = []
    N = next_fast_len(max(2 * k, {1: 1024, 2: 64}.get(nd, 16)))
    while N < n_full:
        cands.append(N)
        N = next_fast_len(int(N * 1.2) + 1)
    return cands


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head,) + tail


def _make_plan(batch, cin, cout, cin_g, spatial, pads, kd, out_len, item, budget, consts=None):
    """The cheapest way (by the planner's cost model) to compute one call within ``budget``.

    Candidates: the whole (implicitly padded) input at one transform size, or overlap-save
    tiles of every size from about twice the kernel up. Tiles cut the kernel-spectrum work
    (``Cout * Cin/g`` transforms at the tile size instead of the image size) and memory, at the
    price of overlap. Batch items or tile rows are processed in chunks that fit ``budget``.
    """
    from cnnconv import planner

    nd = len(kd)
    n_u = _untiled_sizes(spatial, pads, kd, out_len)
    options = []
    kbytes = cout * cin_g * _spectrum_elems(n_u) * item
    chunk = max(1, int((budget - kbytes) // max(1, _item_bytes(cin, cout, n_u, item))))
    cost = planner.fft_cost(batch, cin, cout, cin_g, n_u, consts)
    options.append((kbytes > budget // 2, kbytes, cost, _Plan(n_u, False, [pb for pb, _ in pads],
                                                      out_len, chunk=chunk, cost=cost)))
    padded = [s + pb + pa for s, (pb, pa) in zip(spatial, pads)]
    per_dim = [_tile_candidates(k, next_fast_len(P), nd) for k, P in zip(kd, padded)]
    if all(per_dim):
        for combo in _product(per_dim):
            T = tuple(N - k + 1 for N, k in zip(combo, kd))
            counts = tuple(-(-L // t) for L, t in zip(out_len, T))
            nt = math.prod(counts)
            kbytes = cout * cin_g * _spectrum_elems(combo) * item
            chunk = max(1, int((budget - kbytes) // max(1, _item_bytes(cin, cout, combo, item))))
            cost = planner.fft_cost(batch * nt, cin, cout, cin_g, combo, consts)
            # cutting and reassembling the tiles: copies and per-chunk overhead
            cost *= 1.2 + 0.1 * (math.prod(combo) / math.prod(T) - 1)
            plan = _Plan(combo, True, (0,) * nd, out_len, T, counts, pads, chunk, cost)
            options.append((kbytes > budget // 2, kbytes, cost, plan))
    # Within budget: the cheapest; if nothing fits: the smallest kernel spectrum.
    options.sort(key=lambda o: (o[0], o[1] if o[0] else o[2]))
    best = options[0][3]
    best.budget = budget
    return best


def _plan_for(input, weight, stride=1, padding=0, dilation=1, groups=1, memory_budget=None):
    """The plan :func:`fft_conv1d` / :func:`fft_conv2d` / :func:`fft_conv3d` would use, as a dict
    (for inspection)."""
    nd = weight.dim() - 2
    stride = _int_tuple(stride, nd, "stride")
    dilation = _int_tuple(dilation, nd, "dilation")
    ks = tuple(weight.shape[2:])
    pads = _resolve_padding(padding, ks, stride, dilation, nd)
    kd = tuple(d * (k - 1) + 1 for k, d in zip(ks, dilation))
    spatial = tuple(input.shape[-nd:])
    dense = tuple(s + pb + pa - k + 1 for s, (pb, pa), k in zip(spatial, pads, kd))
    out_len = tuple((L - 1) // s * s + 1 for L, s in zip(dense, stride))
    batch = input.shape[0] if input.dim() == nd + 2 else 1
    item = _COMPLEX_BYTES.get(input.dtype, 8)
    plan = _make_plan(batch, input.shape[-nd - 1], weight.shape[0], weight.shape[1], spatial,
                      pads, kd, out_len, item, memory_budget or DEFAULT_MEMORY_BUDGET)
    return plan.as_dict()


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
    return _CONV[nd](x, weight, None, stride, 0, dilation, groups)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


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


def _autocast_dtype(device_type: str):
    """The autocast dtype when autocast is on for ``device_type``, else None."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (RuntimeError, TypeError, ValueError):  # a device type autocast does not know
        pass
    return None


def _autocast_cast(t, dtype):
    # What autocast does to the arguments of the ops in its lower-precision list (convolutions
    # among them): floating-point tensors other than float64 are cast.
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
        return t.to(dtype)
    return t


def _functorch_wrapped(*tensors) -> bool:
    """Whether a torch.func transform (vmap, grad, jacrev, ...) is tracing any of ``tensors``."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and wrapped(t) for t in tensors)


def _window_any(a: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """``out[j] = a[j] | ... | a[j + k - 1]`` along ``dim`` (boolean ``a``), by doubling spans."""
    span = 1
    while 2 * span <= k:
        n = a.shape[dim] - span
        a = a.narrow(dim, 0, n) | a.narrow(dim, span, n)
        span *= 2
    if span < k:
        n = a.shape[dim] - (k - span)
        a = a.narrow(dim, 0, n) | a.narrow(dim, k - span, n)
    return a


def _zero_windows(x, pads, kd, out_len, groups) -> torch.Tensor | None:
    """``(B, groups, 1, *out_len)`` mask of the outputs whose input window (the group's
    channels, dilation gaps included) holds only zeros; None when there are none."""
    # (Boolean reductions are slow on CPU; their uint8 views' are not.)
    if x.numel() == 0:
        return None
    nz = x.detach().bool()  # non-zero (or NaN) inputs
    if nz.shape[1] != groups:
        nz = nz.view(torch.uint8).unflatten(1, (groups, -1)).amax(2).view(torch.bool)
    if int(nz.view(torch.uint8).amin()) == 1:  # no zero at all
        return None
    flat = []
    for pb, pa in reversed(pads):
        flat += [pb, pa]
    if any(flat):
        nz = F.pad(nz.view(torch.uint8), flat).view(torch.bool)
    for i in reversed(range(len(kd))):  # the last (contiguous) dim first
        nz = _window_any(nz, 2 + i, kd[i]).narrow(2 + i, 0, out_len[i])
        if int(nz.view(torch.uint8).amin()) == 1:
            return None
    return nz.logical_not().unsqueeze(2)


def _flush_zero_windows(y, x, pads, kd, groups):
    """``y`` with exact zeros where the input window is all zeros (see :func:`_zero_windows`)."""
    mask = _zero_windows(x, pads, kd, y.shape[2:], groups)
    if mask is None:
        return y
    yg = y.unflatten(1, (groups, -1))
    if torch.is_grad_enabled() and y.requires_grad:
        # y - y is exactly 0 there, and the gradients are those of y.
        return y - torch.where(mask, yg.detach(), 0).flatten(1, 2)
    yg.masked_fill_(mask, 0)
    return y


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
    exact_zeros,
):
    args = (stride, padding, dilation, groups, padding_mode, nd, cache, nonfinite, memory_budget,
            exact_zeros)
    if isinstance(x, torch.Tensor):
        amp = _autocast_dtype(x.device.type)
        if amp is not None:
            # As a convolution under autocast: the arguments are cast to the autocast dtype and
            # so is the result; the transforms run in float32 (see the dtypes above).
            with torch.autocast(x.device.type, enabled=False):
                cast = [_autocast_cast(t, amp) for t in (x, weight, bias)]
                return _fft_conv(*cast, *args)
    _check_args(x, weight, bias, groups, nd, padding_mode, nonfinite, padding)
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
    elif not math.isfinite(memory_budget) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive and finite, got {memory_budget}")
    if not isinstance(exact_zeros, bool):
        raise TypeError(f"exact_zeros must be a bool, got {exact_zeros!r}")
    ks = tuple(weight.shape[-nd:])
    pads = _resolve_padding(padding, ks, stride, dilation, nd)

    # Meta tensors (shapes only) and torch.func transforms, which the engine's autograd
    # Function and in-place buffers do not support, take the direct method.
    wrapped = _functorch_wrapped(x, weight, bias)
    direct = x.device.type == "meta" or wrapped
    # F.conv2d / F.conv3d return channels_last(_3d) output when the batched input or the weight
    # is (a memory format torch.func transforms cannot query; F.conv*d decides it there).
    memory_format = {(2, 4): torch.channels_last, (3, 5): torch.channels_last_3d}.get(
        (nd, x.dim()))
    channels_last = memory_format is not None and not wrapped and any(
        t.is_contiguous(memory_format=memory_format) and not t.is_contiguous()
        for t in (x, weight)
    )
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
        raise ConvArgumentError(
            f"kernel size {ks} with dilation {dilation} is larger than the padded input "
            f"{tuple(s + pb + pa for s, (pb, pa) in zip(spatial, pads))}"
        )
    # Only the positions kept by the stride are needed.
    out_len = tuple((L - 1) // s * s + 1 for L, s in zip(dense_len, stride))

    y = None
    if not direct and _all_finite(weight):
        try:
            y = _fft_core(x, weight, pads, dilation, kd, out_len, groups, nd, cache, memory_budget)
        except _NonFinite:
            y = None
    if y is None:
        # Non-finite values (or a float overflow inside the transform): the direct method only
        # spoils the neighbourhood of a bad sample.
        if (not direct and nonfinite == "raise"
                and not (_all_finite(x) and _all_finite(weight))):
            raise ValueError("input or weight contains NaN or inf (nonfinite='raise')")
        y = _direct(x, weight, stride, pads, dilation, groups, nd)
    else:
        if exact_zeros:
            y = _flush_zero_windows(y, x, pads, kd, groups)
        if any(s > 1 for s in stride):
            y = y[(Ellipsis,) + tuple(slice(None, None, s) for s in stride)]
    if bias is not None:
        y = y + bias.reshape(-1, *([1] * nd))
    if unbatched:
        y = y.squeeze(0)
    if y.dtype != orig_dtype:
        y = y.to(orig_dtype)
    fmt = memory_format if channels_last else torch.contiguous_format
    return y.contiguous(memory_format=fmt)


def _fft_core(x, weight, pads, dilation, kd, out_len, groups, nd, cache, memory_budget):
    batch, cin = x.shape[:2]
    cout, cin_g = weight.shape[:2]
    if batch == 0:
        return x.new_zeros(0, cout, *out_len) + weight.sum() * 0
    item = _COMPLEX_BYTES[x.dtype]
    spatial = tuple(x.shape[-nd:])
    plan = _make_plan(batch, cin, cout, cin_g, spatial, pads, kd, out_len, item, memory_budget)
    use_cache = cache is not None and not (torch.is_grad_enabled() and weight.requires_grad)
    w = _spread(weight, dilation)
    W = cache.get(weight, w, plan.n, groups, plan.shift, dilation) if use_cache else None
    return _SpectralCorrelation.apply(x, w, W, plan, groups, True)


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
    exact_zeros: bool = True,
) -> torch.Tensor:
    """1-D convolution (cross-correlation) through the FFT, with ``F.conv1d`` semantics.

    Args:
        input: ``(B, Cin, L)`` or unbatched ``(Cin, L)``.
        weight: ``(Cout, Cin / groups, k)``.
        bias: optional ``(Cout,)``.
        stride: int or 1-tuple.
        padding: int, 1-tuple, ``"same"`` (PyTorch's convention for even kernels: ``(k-1)//2``
            before), ``"valid"`` or ``"causal"`` (``dilation * (k-1)`` before, none after: output
            ``i`` sees inputs up to ``i * stride`` only; with stride 1 the output has the input's
            length, with stride ``s`` it has ``ceil(L / s)`` samples).
        dilation: int or 1-tuple.
        groups: number of channel groups.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (as
            ``nn.Conv1d``); ``padding="causal"`` takes ``"zeros"`` or ``"replicate"`` (the
            others read later samples).
        cache: optional :class:`SpectrumCache` reused when no weight gradient is needed.
        nonfinite: ``"direct"`` (fall back to ``F.conv1d`` for inputs with NaN/inf) or
            ``"raise"``.
        memory_budget: bytes of spectra before the input is tiled (default
            :data:`DEFAULT_MEMORY_BUDGET`).
        exact_zeros: set outputs whose input window holds only zeros to exactly 0 (plus the
            bias), as the direct method gives, instead of the transforms' rounding noise.

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
        cache, nonfinite, memory_budget, exact_zeros,
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
    exact_zeros: bool = True,
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
        exact_zeros: set outputs whose input window holds only zeros to exactly 0 (plus the
            bias), as the direct method gives, instead of the transforms' rounding noise.

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
        cache, nonfinite, memory_budget, exact_zeros,
    )


def fft_conv3d(
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
    exact_zeros: bool = True,
) -> torch.Tensor:
    """3-D convolution (cross-correlation) through the FFT, with ``F.conv3d`` semantics.

    Args:
        input: ``(B, Cin, D, H, W)`` or unbatched ``(Cin, D, H, W)``.
        weight: ``(Cout, Cin / groups, kd, kh, kw)``.
        bias: optional ``(Cout,)``.
        stride: int or ``(sd, sh, sw)``.
        padding: int, ``(pd, ph, pw)``, ``"same"`` (PyTorch's convention for even kernels:
            ``(k-1)//2`` before) or ``"valid"``.
        dilation: int or ``(dd, dh, dw)``.
        groups: number of channel groups (``groups == Cin`` is depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (as
            ``nn.Conv3d``).
        cache: optional :class:`SpectrumCache` reused when no weight gradient is needed.
        nonfinite: ``"direct"`` (fall back to ``F.conv3d`` for inputs with NaN/inf) or
            ``"raise"``.
        memory_budget: bytes of spectra before the input is tiled (default
            :data:`DEFAULT_MEMORY_BUDGET`).
        exact_zeros: set outputs whose input window holds only zeros to exactly 0 (plus the
            bias), as the direct method gives, instead of the transforms' rounding noise.

    Returns:
        The output of ``F.conv3d`` for the same arguments (up to rounding).

    Shape:
        ``(B, Cin, D, H, W) -> (B, Cout, Dout, Hout, Wout)`` with the sizes of ``F.conv3d``.

    Example:
        >>> x, w = torch.randn(1, 2, 32, 32, 32), torch.randn(4, 2, 9, 9, 9)
        >>> fft_conv3d(x, w, padding="same").shape
        torch.Size([1, 4, 32, 32, 32])
    """
    return _fft_conv(
        input, weight, bias, stride, padding, dilation, groups, padding_mode, 3,
        cache, nonfinite, memory_budget, exact_zeros,
    )
