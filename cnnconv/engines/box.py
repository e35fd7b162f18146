"""Box engine: valid window sums by blockwise running sums, cost independent of the window.

Example:
    >>> x = torch.rand(1, 2, 9, 9)
    >>> ref = torch.nn.functional.avg_pool2d(x, 5, stride=1) * 25
    >>> torch.allclose(valid(x, 5, 5, torch.tensor(1.0)), ref, atol=1e-5)
    True
"""

from __future__ import annotations

import torch

from cnnconv.engines import separable
from cnnconv.engines.checks import all_finite

__all__ = ["scale_of", "valid"]


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
        diff = torch.cat((y.new_zeros([*shape[:dim], 1, *shape[dim + 1 :]]), diff, y.new_zeros(shape)), dim)
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


def valid(x: torch.Tensor, kh: int, kw: int, scale: torch.Tensor, own: bool = False) -> torch.Tensor:
    """Valid box sums times ``scale`` by blockwise running sums (cost independent of the
    window, see :func:`_window_sums`). ``own``: ``x`` is a buffer of ours, free to overwrite.

    ``scale`` is applied first, so a mean of values near the float limit stays finite. A NaN
    or inf would spread through its blocks: such inputs take the separable path, where a bad
    value only spoils its own windows.
    """
    scale = scale.to(device=x.device, dtype=x.dtype)
    scale = scale.reshape(1, -1, 1, 1) if scale.ndim == 1 else scale
    if not all_finite(x) or kh == kw == 1:
        ones_y = torch.ones(kh, dtype=x.dtype, device=x.device)
        ones_x = torch.ones(kw, dtype=x.dtype, device=x.device)
        return separable.valid(x * scale, ones_y, ones_x).contiguous()
    y = x.mul_(scale) if own else x * scale  # first: a mean of values near the float limit stays finite
    if kh > 1:
        y = _window_sums(y, kh, -2)
    return _window_sums(y, kw, -1) if kw > 1 else y


def scale_of(kernel: torch.Tensor) -> torch.Tensor | None:
    """Per-channel constant of a constant kernel, or ``None`` when the kernel is not a box."""
    flat = (
        kernel.detach().reshape(-1, kernel.shape[-2] * kernel.shape[-1])
        if kernel.ndim == 3
        else kernel.detach().reshape(1, -1)
    )
    first = flat[:, :1]
    if not bool((flat == first).all()):
        return None
    return kernel.detach().reshape(flat.shape)[:, 0] if kernel.ndim == 3 else kernel.detach().reshape(-1)[0]
