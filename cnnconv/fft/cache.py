"""The eval-mode kernel-spectrum cache, checked against the weight's values on every use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .spectral import kernel_spectrum

__all__ = ["SpectrumCache"]


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
        >>> from cnnconv.fft import fft_conv2d
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
        # (key, copy of the weight's values, spectrum)
        self._entry: tuple[tuple[Any, ...], torch.Tensor, torch.Tensor] | None = None

    def get(
        self,
        weight: torch.Tensor,
        w: torch.Tensor,
        n: Sequence[int],
        groups: int,
        shift: Sequence[int],
        extra: Sequence[Any] = (),
    ) -> torch.Tensor:
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
            entry = self._entry
            if entry is not None and key == entry[0] and torch.equal(weight, entry[1]):
                self.hits += 1
                return entry[2]
            self.misses += 1
            self._entry = None
            value = kernel_spectrum(w, n, groups, shift)
            self._entry = (key, weight.detach().clone(), value)
        return value
