"""How far a learned kernel is from the one it should have learned: :func:`kernel_recovery_error`.

The alignment searched is a sign and a symmetry of the square (:mod:`cnnconv.kernels.transforms`);
the scale is not aligned, unlike :func:`cnnconv.analysis.match_kernel`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch

from cnnconv.kernels.transforms import (
    apply_transform,
    centre_pad,
    dihedral_name,
    transform_name,
)

__all__ = ["KernelRecovery", "KernelTransform", "kernel_recovery_error"]


@dataclasses.dataclass(frozen=True)
class KernelTransform:
    """A sign / rotation / mirror alignment of a kernel: one transform of
    :mod:`cnnconv.kernels.transforms` (its :attr:`name`).

    Attributes:
        sign: +1 or -1.
        rot90: number of counter-clockwise quarter turns (``torch.rot90`` on the last two
            dimensions); ``rot90=2`` is the convolution flip.
        mirror: whether the kernel is transposed before it is turned (only searched with
            ``allow_mirror=True``).

    Example:
        >>> KernelTransform(-1, 2).name, KernelTransform(1, 3, True).name
        ('conv_flip+negated', 'flip_lr')
    """

    sign: int = 1
    rot90: int = 0
    mirror: bool = False

    @property
    def name(self) -> str:
        """The transform's name, as :func:`cnnconv.kernels.transforms.apply_transform` takes it."""
        return transform_name(dihedral_name(self.mirror, self.rot90), self.sign < 0)

    def apply(self, kernel: torch.Tensor) -> torch.Tensor:
        """Applies the transform to the last two dimensions of ``kernel``."""
        return apply_transform(kernel, self.name)


class KernelRecovery(NamedTuple):
    """Relative L2 error after the best alignment, and that alignment."""

    error: float
    transform: KernelTransform


def _as_float64(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    try:
        return torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}") from None


def kernel_recovery_error(learned: Any, reference: Any, *, allow_mirror: bool = False) -> KernelRecovery:
    """Relative L2 error of a learned kernel after the best sign and rotation alignment.

    ``error = min_T ||T(learned) - reference|| / ||reference||`` over ``T`` = sign (+1/-1) times
    a rotation by 0, 90, 180 or 270 degrees; the 180-degree rotation is the convolution flip (a
    kernel learned for convolution instead of correlation). Scale is *not* aligned: recovery must
    get the scale right. With ``allow_mirror`` the transposes are searched too (the full
    8-element dihedral group times sign). When the two kernels differ in size, the smaller is
    zero-padded around its centre (a 3x3 Sobel inside a learned 5x5 kernel), so energy the learned
    kernel puts on the outer ring counts as error. For stacks ``(..., kh, kw)`` one transform is
    applied to the whole stack (e.g. both channels of a learned gradient pair) and the error is
    over all elements. Computed in float64.

    Args:
        learned: learned kernel(s), tensor or array ``(..., kh, kw)``.
        reference: reference kernel(s) with the same leading dimensions (or broadcastable).
        allow_mirror: also search transposed kernels.

    Returns:
        :class:`KernelRecovery` ``(error, transform)``; ``transform.apply(learned)`` aligns the
        learned kernel to the reference (after padding to a common size).

    Raises:
        ValueError: fewer than two dimensions, values not finite, an all-zero reference, or
            sizes that cannot be centred on each other (an odd difference).

    Example:
        >>> import torch
        >>> ref = torch.arange(9.0).reshape(3, 3)
        >>> err, tf = kernel_recovery_error(-ref.flip(0, 1), ref)   # flipped and negated
        >>> err, tf.sign, tf.rot90
        (0.0, -1, 2)
        >>> sobel = torch.tensor([[-1., 0, 1], [-2, 0, 2], [-1, 0, 1]])
        >>> round(kernel_recovery_error(torch.zeros(5, 5), sobel).error, 6)  # zeros: error 1
        1.0
    """
    a = _as_float64(learned, "learned")
    b = _as_float64(reference, "reference")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"learned and reference must have at least 2 dimensions (kh, kw), "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("learned and reference must be finite")
    size = (max(a.shape[-2], b.shape[-2]), max(a.shape[-1], b.shape[-1]))
    a = centre_pad(a, size)
    b = centre_pad(b, size)
    ref_norm = float(torch.linalg.vector_norm(b))
    if ref_norm == 0:
        raise ValueError("reference must not be all zeros (its norm is the denominator)")
    best: KernelRecovery | None = None
    for mirror in (False, True) if allow_mirror else (False,):
        for rot in range(4):
            for sign in (1, -1):
                tf = KernelTransform(sign, rot, mirror)
                t = tf.apply(a)
                if t.shape[-2:] != b.shape[-2:]:
                    continue
                err = float(torch.linalg.vector_norm(t - b)) / ref_norm
                if best is None or err < best.error - 1e-15:
                    best = KernelRecovery(err, tf)
    if best is None:
        raise ValueError(
            f"no rotation of a kernel of size {tuple(a.shape[-2:])} matches the reference size {tuple(b.shape[-2:])}"
        )
    return best
