"""The geometry of one convolution, computed once: resolved padding, dilated kernel, output
sizes (with stride) and the whole-input transform size.

The FFT engine runs it and the planner prices it, so both see the same sizes.

Example:
    >>> g = ConvGeometry.from_shapes((2, 3, 100), (4, 3, 9), stride=2, padding="causal")
    >>> g.pads, g.dense_len, g.out_len, g.out_size
    (((8, 0),), (100,), (99,), (50,))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cnnconv._utils.checks import int_tuple

from .arguments import ConvArgumentError
from .backend import next_fast_len

__all__ = ["ConvGeometry", "resolve_padding"]

Pads = tuple[tuple[int, int], ...]


def resolve_padding(padding: Any, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> Pads:
    """Per spatial dim ``(before, after)`` padding, PyTorch's convention (and ``"causal"``: all
    of it before, 1-D only).

    Example:
        >>> resolve_padding("same", (4, 3), (1, 1), (1, 2))
        ((1, 2), (2, 2))
    """
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "causal":
            if nd != 1:
                raise ValueError(f"padding='causal' is only supported for 1-D convolutions, got {nd}-D")
            return ((dilation[0] * (kernel[0] - 1), 0),)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be 'same', 'valid', 'causal' (1-D), an int or a tuple, got {padding!r}")
    p = int_tuple(padding, nd, "padding")
    if any(v < 0 for v in p):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return tuple((v, v) for v in p)


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Sizes of a convolution of input ``(batch, in_channels, *spatial)`` with a weight
    ``(out_channels, in_channels / groups, *kernel)``.

    Attributes:
        pads: ``(before, after)`` zero padding per spatial dim.
        kd: the dilated kernel size, ``dilation * (kernel - 1) + 1``.
        padded: the padded input size.
        dense_len: the output size at stride 1 (may be < 1: see :meth:`check_fits`).
        out_len: the span of dense outputs the stride keeps, ``(dense - 1) // s * s + 1``: what
            the FFT computes before it subsamples.
        out_size: the output size, as ``F.conv*d`` returns it.
        whole_size: the transform size that covers the implicitly padded input whole.
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pads
    kd: tuple[int, ...] = dataclasses.field(init=False)
    padded: tuple[int, ...] = dataclasses.field(init=False)
    dense_len: tuple[int, ...] = dataclasses.field(init=False)
    out_len: tuple[int, ...] = dataclasses.field(init=False)
    out_size: tuple[int, ...] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        kd = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))
        padded = tuple(s + pb + pa for s, (pb, pa) in zip(self.spatial, self.pads))
        dense = tuple(p - k + 1 for p, k in zip(padded, kd))
        derived = {
            "kd": kd,
            "padded": padded,
            "dense_len": dense,
            "out_len": tuple((L - 1) // s * s + 1 for L, s in zip(dense, self.stride)),
            "out_size": tuple((L - 1) // s + 1 for L, s in zip(dense, self.stride)),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_shapes(
        cls,
        input_shape: Sequence[int],
        weight_shape: Sequence[int],
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> ConvGeometry:
        """The geometry for an input ``(B, Cin, *S)`` (or unbatched ``(Cin, *S)``) and a weight
        ``(Cout, Cin / groups, *k)``; ``stride``, ``padding`` and ``dilation`` as ``F.conv*d``
        takes them (and ``padding="causal"`` in 1-D)."""
        nd = len(weight_shape) - 2
        stride = int_tuple(stride, nd, "stride")
        dilation = int_tuple(dilation, nd, "dilation")
        if any(s < 1 for s in stride):
            raise ValueError(f"stride must be positive, got {stride}")
        if any(d < 1 for d in dilation):
            raise ValueError(f"dilation must be positive, got {dilation}")
        kernel = tuple(int(k) for k in weight_shape[2:])
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == nd + 1:
            shape = (1, *shape)
        return cls(
            batch=shape[0],
            in_channels=shape[1],
            out_channels=int(weight_shape[0]),
            groups=groups,
            spatial=shape[2:],
            kernel=kernel,
            stride=stride,
            dilation=dilation,
            pads=resolve_padding(padding, kernel, stride, dilation),
        )

    @property
    def nd(self) -> int:
        """Number of spatial dims."""
        return len(self.kernel)

    @property
    def cin_g(self) -> int:
        """Input channels per group."""
        return self.in_channels // self.groups

    @property
    def whole_size(self) -> tuple[int, ...]:
        """Fast transform lengths at which the circular correlation of the unpadded input holds
        every needed output (the padding is never materialised)."""
        return tuple(
            next_fast_len(max(s + pb, s + pa, k, L, L - pb + k - 1, 1))
            for s, (pb, pa), k, L in zip(self.spatial, self.pads, self.kd, self.out_len)
        )

    def check_fits(self) -> None:
        """Raise :class:`ConvArgumentError` when the dilated kernel exceeds the padded input."""
        if any(L < 1 for L in self.dense_len):
            raise ConvArgumentError(
                f"kernel size {self.kernel} with dilation {self.dilation} is larger than the padded input {self.padded}"
            )

    def bordered(self) -> ConvGeometry:
        """The geometry after the padding is applied explicitly (border padding modes)."""
        return dataclasses.replace(self, spatial=self.padded, pads=((0, 0),) * self.nd)

    @property
    def flat_pads(self) -> list[int]:
        """``pads`` in ``F.pad`` order (last dim first)."""
        flat: list[int] = []
        for pb, pa in reversed(self.pads):
            flat += [pb, pa]
        return flat
