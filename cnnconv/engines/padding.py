"""The one home for padding arithmetic: output modes, anchors and border handling.

Output sizes follow scipy.signal: ``full`` = n + k - 1, ``same`` = n, ``valid`` = n - k + 1.
For an even kernel in ``same`` mode there are two conventions:

* ``anchor="scipy"`` (scipy.signal, scipy.ndimage, OpenCV): ``k // 2`` samples before,
  ``k - 1 - k // 2`` after. The fixed-kernel API uses this one.
* ``anchor="torch"`` (``F.conv2d(padding="same")``): ``(k - 1) // 2`` before, the rest after.
  The ``nn.Conv`` drop-ins use this one.

Border names and their equivalents:

=============  ======================  ==========================
cnnconv/torch  scipy.ndimage           OpenCV
=============  ======================  ==========================
``zeros``      ``constant`` (cval=0)   ``BORDER_CONSTANT``
``reflect``    ``mirror``              ``BORDER_REFLECT_101``
``replicate``  ``nearest``             ``BORDER_REPLICATE``
``circular``   ``wrap``                ``BORDER_WRAP``
``symmetric``  ``reflect``             ``BORDER_REFLECT``
=============  ======================  ==========================

``reflect`` mirrors about the edge samples (``dcb|abcd|cba``); ``symmetric`` repeats them
(``dcba|abcd|dcba``, also ``numpy.pad(mode="symmetric")`` and scipy.signal's ``symm``).
Padding wider than the input is done by repeated reflection / wrapping, not an error.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

__all__ = ["ANCHORS", "BORDERS", "MODES", "check_border", "check_mode", "output_padding", "pad", "pad3d", "tracing"]

BORDERS = frozenset({"zeros", "reflect", "replicate", "circular", "symmetric"})
MODES = frozenset({"full", "same", "valid"})
ANCHORS = frozenset({"scipy", "torch"})


def tracing() -> bool:
    """Whether a graph is being captured (``torch.compile``, ``torch.export``, ONNX export,
    ``torch.jit.trace``). The filters then compute with plain out-of-place torch ops: no
    reusable buffers, no in-place fills, no decisions read from tensor values.

    ``torch.onnx.export`` traces with one of the other two (``dynamo=True``: torch.export;
    the legacy exporter: ``torch.jit.trace``), so they cover it without importing torch.onnx.
    """
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def check_border(border) -> str:
    """Validate a border name and return it."""
    if not isinstance(border, str):
        raise TypeError(f"border must be a string, got {border!r}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {sorted(BORDERS)}, got {border!r}")
    return border


def check_mode(mode) -> str:
    """Validate an output mode name and return it."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, got {mode!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    return mode


def _pair(kernel_size) -> tuple[int, int]:
    if isinstance(kernel_size, (tuple, list, torch.Size)):
        if len(kernel_size) != 2:
            raise ValueError(f"kernel_size must be an int or a pair, got {kernel_size!r}")
        kh, kw = kernel_size
    else:
        kh = kw = kernel_size
    if torch.jit.is_tracing():  # sizes read from tensors under jit.trace are 0-dim tensors
        kh, kw = (
            int(k) if isinstance(k, torch.Tensor) and k.ndim == 0 and not k.is_floating_point() else k for k in (kh, kw)
        )
    for k in (kh, kw):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"kernel_size must be positive integers, got {kernel_size!r}")
    return int(kh), int(kw)


def _one(k: int, mode: str, anchor: str) -> tuple[int, int]:
    if mode == "valid":
        return 0, 0
    if mode == "full":
        return k - 1, k - 1
    before = k // 2 if anchor == "scipy" else (k - 1) // 2
    return before, k - 1 - before


def output_padding(kernel_size, mode: str, anchor: str = "scipy") -> tuple[int, int, int, int]:
    """Input padding that turns a valid correlation into the requested output mode.

    Args:
        kernel_size: int or ``(kh, kw)``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        anchor: ``"scipy"`` (``k // 2`` before, even kernels) or ``"torch"``
            (``(k - 1) // 2`` before).

    Returns:
        ``(top, bottom, left, right)``.

    Example:
        >>> output_padding(4, "same"), output_padding(4, "same", anchor="torch")
        ((2, 1, 2, 1), (1, 2, 1, 2))
        >>> output_padding((3, 5), "full")
        (2, 2, 4, 4)
    """
    check_mode(mode)
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {sorted(ANCHORS)}, got {anchor!r}")
    kh, kw = _pair(kernel_size)
    return (*_one(kh, mode, anchor), *_one(kw, mode, anchor))


def _indices(n: int, before: int, after: int, border: str, device) -> torch.Tensor:
    i = torch.arange(-before, n + after, device=device)
    if border == "replicate":
        return i.clamp(0, n - 1)
    if border == "circular":
        return torch.remainder(i, n)
    if border == "symmetric":  # period 2n, edge samples repeated
        i = torch.remainder(i, 2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    # reflect (mirror about the edge samples, which are not repeated)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def pad(x: torch.Tensor, pads, border: str = "zeros") -> torch.Tensor:
    """Pad the last two dimensions of ``x`` with a border mode.

    Args:
        x: tensor with at least two dimensions ``(..., H, W)``.
        pads: ``(top, bottom, left, right)``, non-negative.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.

    Returns:
        Tensor ``(..., H + top + bottom, W + left + right)``.

    Example:
        >>> pad(torch.arange(3.0).reshape(1, 3), (0, 0, 4, 4), "reflect").tolist()
        [[0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0]]
    """
    check_border(border)
    top, bottom, left, right = (int(p) for p in pads)
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"pads must be non-negative, got {tuple(pads)}")
    if top == bottom == left == right == 0:
        return x
    if x.ndim < 2:
        raise ValueError(f"input must have at least 2 dimensions, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if border == "zeros":
        return F.pad(x, (left, right, top, bottom))
    if h == 0 or w == 0:
        raise ValueError(f"cannot pad an empty plane with border {border!r}, got shape {tuple(x.shape)}")
    fits = fills_from_interior(border, top, bottom, h) and fills_from_interior(border, left, right, w)
    if fits and border == "symmetric" and x.numel() > 0 and not tracing():  # not a mode of F.pad
        # (a captured graph gathers the rows and columns instead: nothing written in place)
        y = x.new_empty((*x.shape[:-2], h + top + bottom, w + left + right))
        y[..., top : top + h, left : left + w].copy_(x)
        fill_border(y.narrow(-2, top, h), y.ndim - 1, left, right, w, border)
        fill_border(y, y.ndim - 2, top, bottom, h, border)
        return y
    if fits and x.numel() > 0 and border != "symmetric":
        # All planes as the channels of one image: F.pad is several times faster on
        # (1, N, H, W) than on (B, C, H, W) on the CPU.
        # A (1, N, H, W) channels_last tensor is passed as it is, so the result keeps that layout.
        lead = x.shape[:-2]
        x4 = x if x.ndim == 4 and x.shape[0] == 1 else x.reshape(1, -1, h, w)
        y = F.pad(x4, (left, right, top, bottom), mode=border)
        return y if x4 is x else y.reshape(*lead, y.shape[-2], y.shape[-1])
    rows = _indices(h, top, bottom, border, x.device)
    cols = _indices(w, left, right, border, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def pad3d(x: torch.Tensor, pads, border: str = "zeros") -> torch.Tensor:
    """Pad the last three dimensions of ``x`` with a border mode.

    Each axis is padded on its own with :func:`pad` (depth through a
    transposed view), so every border it supports works here, wide margins included.

    Args:
        x: tensor with at least three dimensions ``(..., D, H, W)``.
        pads: ``(front, back, top, bottom, left, right)``, non-negative.
        border: a border name of :func:`check_border`.

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


def fills_from_interior(border: str, before: int, after: int, n: int) -> bool:
    """Whether margins of ``before``/``after`` samples can be filled from an interior of ``n``
    samples by :func:`fill_border` (reflect needs ``pad < n``, circular and symmetric
    ``pad <= n``)."""
    if border == "reflect":
        return max(before, after) < n
    if border in ("circular", "symmetric"):
        return max(before, after) <= n
    return True


def fill_border(buf: torch.Tensor, dim: int, before: int, after: int, n: int, border: str) -> None:
    """Fill the ``before``/``after`` margins of ``buf`` along ``dim`` from its interior of
    length ``n`` (which starts at ``before``), in place. Needs
    :func:`fills_from_interior` to hold."""
    if before == 0 and after == 0:
        return
    lo = buf.narrow(dim, 0, before)
    hi = buf.narrow(dim, before + n, after)
    if border == "zeros":
        lo.zero_()
        hi.zero_()
    elif border == "replicate":
        lo.copy_(buf.narrow(dim, before, 1).expand_as(lo))
        hi.copy_(buf.narrow(dim, before + n - 1, 1).expand_as(hi))
    elif border == "reflect":
        lo.copy_(buf.narrow(dim, before + 1, before).flip(dim))
        hi.copy_(buf.narrow(dim, before + n - 1 - after, after).flip(dim))
    elif border == "symmetric":
        lo.copy_(buf.narrow(dim, before, before).flip(dim))
        hi.copy_(buf.narrow(dim, before + n - after, after).flip(dim))
    else:  # circular
        lo.copy_(buf.narrow(dim, before + n - before, before))
        hi.copy_(buf.narrow(dim, before, after))
