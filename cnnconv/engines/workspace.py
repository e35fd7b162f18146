"""The channels_last fold of a batch and the reusable buffer its padded copy is written into.

oneDNN's depthwise convolution is far faster in channels_last than in NCHW on the CPU, and
vectorises over channels: a 3-channel image leaves most vector lanes empty, every plane of the
batch as a channel fills them. The direct and separable engines therefore view ``(B, C, H, W)``
as one image ``(1, B*C, H, W)`` in channels_last.

The padded, folded copy that they make of their input is written into a buffer kept per thread
and reused by the next call of the same shape (CPU only, at most ``WORKSPACE_MAX_BYTES``). A
fresh full-size buffer per call costs a page fault per 4 KiB page whenever the C allocator has
handed the previous one back to the system, which it does or not depending on the process's
allocation history (measured: sharpen on 4x3x512x512 took 15-20 ms in a fresh process, 4-5 ms
in a busy one).

Example:
    >>> x = torch.rand(2, 3, 8, 8)
    >>> torch.equal(unfold(fold_pad(x, (1, 1, 1, 1), "reflect"), 2, 3), pad(x, (1, 1, 1, 1), "reflect"))
    True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from cnnconv.engines.padding import fill_border, fills_from_interior, pad

__all__ = ["WORKSPACE_MAX_BYTES", "clear_workspace", "fold", "fold_pad", "unfold"]

WORKSPACE_MAX_BYTES = 64 << 20
_workspace = threading.local()


def clear_workspace() -> None:
    """Release this thread's reusable padding buffer (see ``WORKSPACE_MAX_BYTES``)."""
    _workspace.fold = None


def fold(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(1, B*C, H, W)`` in channels_last (no copy when already folded)."""
    b, c, h, w = x.shape
    y = x.reshape(1, b * c, h, w)
    if y.stride(1) == 1 and y.stride(3) == b * c and y.stride(2) == w * b * c:
        return y.as_strided(y.shape, (h * w * b * c, 1, w * b * c, b * c))  # already folded
    return y.contiguous(memory_format=torch.channels_last)


def unfold(y: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(1, B*C, H, W)`` channels_last -> ``(B, C, H, W)`` as a view (no copy)."""
    return y[0].view(b, c, *y.shape[-2:])


def _fold_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, reuse: bool) -> torch.Tensor:
    """A channels_last buffer of ``shape``: this thread's workspace when ``reuse`` allows it.

    The workspace is reused only in the mode it was made in: one made under
    ``torch.inference_mode()`` is an inference tensor, which cannot be written outside it.
    """
    if reuse and device.type == "cpu":
        buf = getattr(_workspace, "fold", None)
        if (
            buf is not None
            and buf.shape == shape
            and buf.dtype == dtype
            and buf.is_inference() == torch.is_inference_mode_enabled()
        ):
            return buf
    buf = torch.empty(shape, dtype=dtype, device=device, memory_format=torch.channels_last)
    if reuse and device.type == "cpu" and buf.numel() * buf.element_size() <= WORKSPACE_MAX_BYTES:
        _workspace.fold = buf
    return buf


def fold_pad(x: torch.Tensor, pads: Sequence[int], border: str, reuse: bool = False) -> torch.Tensor:
    """``fold(pad(x, pads, border))`` in one copy: the planes are written straight into the
    interior of a channels_last buffer whose margins are then filled from it.

    ``reuse``: the buffer may be this thread's reusable workspace. Only for callers whose
    result holds no reference to it (no autograd graph saves it, nothing returns a view).
    """
    b, c, h, w = x.shape
    top, bottom, left, right = pads
    small = fills_from_interior(border, top, bottom, h) and fills_from_interior(border, left, right, w)
    if not small or (torch.is_grad_enabled() and x.requires_grad) or x.numel() == 0:
        return fold(pad(x, pads, border))
    buf = _fold_buffer((1, b * c, h + top + bottom, w + left + right), x.dtype, x.device, reuse)
    buf[:, :, top : top + h, left : left + w].copy_(x.reshape(1, b * c, h, w))
    fill_border(buf.narrow(2, top, h), 3, left, right, w, border)  # columns of the interior rows
    fill_border(buf, 2, top, bottom, h, border)  # then whole rows, corners included
    return buf
