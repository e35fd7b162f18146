"""Kernel transforms: the eight symmetries of the square, a sign, and centring.

A transform is named by its geometric part and an optional sign change: ``"identity"``,
``"conv_flip"`` (the 180-degree rotation that turns a correlation kernel into the convolution
kernel doing the same), ``"flip_lr"``, ``"flip_ud"``, ``"transpose"``, ``"anti_transpose"``,
``"rot90"``, ``"rot270"``; ``"negated"`` alone, or ``"<geometric>+negated"``. Each geometric
transform is an optional transpose followed by counter-clockwise quarter turns (as displayed, row
0 on top, like ``numpy.rot90`` and ``torch.rot90``) on the last two axes.

Example:
    >>> import torch
    >>> k = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> apply_transform(k, "rot90+negated").tolist()
    [[-2.0, -4.0], [-1.0, -3.0]]
    >>> inverse_transform("rot90+negated")
    'rot270+negated'
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "GEOMETRIC",
    "TRANSFORMS",
    "apply_transform",
    "centre_pad",
    "dihedral_name",
    "dihedral_parts",
    "inverse_transform",
    "parse_transform",
    "transform_name",
]

# geometric transform -> (transposed first, counter-clockwise quarter turns after), simplest first
_DIHEDRAL: dict[str, tuple[bool, int]] = {
    "identity": (False, 0),
    "conv_flip": (False, 2),
    "flip_lr": (True, 3),
    "flip_ud": (True, 1),
    "transpose": (True, 0),
    "anti_transpose": (True, 2),
    "rot90": (False, 1),
    "rot270": (False, 3),
}
_BY_PARTS = {parts: name for name, parts in _DIHEDRAL.items()}

#: The eight geometric transforms, simplest first.
GEOMETRIC: tuple[str, ...] = tuple(_DIHEDRAL)


def _dihedral(transposed: bool, turns: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(t: torch.Tensor) -> torch.Tensor:
        return torch.rot90(t.transpose(-2, -1) if transposed else t, turns, (-2, -1))

    return apply


#: Geometric transform name -> function of a tensor ``(..., kh, kw)``.
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    name: _dihedral(*parts) for name, parts in _DIHEDRAL.items()
}


def dihedral_parts(geometric: str) -> tuple[bool, int]:
    """``(transposed, quarter turns)`` of a geometric transform: transpose first (when
    ``transposed``), then rotate counter-clockwise by ``quarter turns * 90`` degrees.

    Example:
        >>> dihedral_parts("conv_flip"), dihedral_parts("flip_lr")
        ((False, 2), (True, 3))
    """
    if geometric not in _DIHEDRAL:
        raise ValueError(f"unknown geometric transform, got {geometric!r}; known: {', '.join(GEOMETRIC)}")
    return _DIHEDRAL[geometric]


def dihedral_name(transposed: bool, turns: int) -> str:
    """The geometric transform that transposes (when ``transposed``), then turns ``turns``
    quarter turns counter-clockwise (any integer; taken modulo 4).

    Example:
        >>> dihedral_name(False, 2), dihedral_name(True, -1)
        ('conv_flip', 'flip_lr')
    """
    return _BY_PARTS[(bool(transposed), turns % 4)]


def transform_name(geometric: str, negated: bool) -> str:
    """The name of ``geometric`` with the sign change when ``negated``.

    Example:
        >>> transform_name("identity", True), transform_name("rot90", True)
        ('negated', 'rot90+negated')
    """
    if not negated:
        return geometric
    return "negated" if geometric == "identity" else f"{geometric}+negated"


def parse_transform(transform: str) -> tuple[str, bool]:
    """``(geometric, negated)`` of a transform name; the inverse of :func:`transform_name`.

    Raises:
        TypeError: ``transform`` is not a string.
        ValueError: unknown name.

    Example:
        >>> parse_transform("negated"), parse_transform("flip_ud+negated")
        (('identity', True), ('flip_ud', True))
    """
    if not isinstance(transform, str):
        raise TypeError(f"transform must be a string, got {transform!r}")
    negated = transform == "negated" or transform.endswith("+negated")
    geometric = "identity" if transform == "negated" else transform.removesuffix("+negated")
    if geometric not in _DIHEDRAL:
        raise ValueError(f"unknown transform, got {transform!r}; known: {', '.join(GEOMETRIC)} (+negated)")
    return geometric, negated


def inverse_transform(transform: str) -> str:
    """The transform that undoes ``transform``: ``apply_transform(apply_transform(k, t),
    inverse_transform(t)) == k``.

    Example:
        >>> inverse_transform("rot90"), inverse_transform("flip_lr+negated")
        ('rot270', 'flip_lr+negated')
    """
    geometric, negated = parse_transform(transform)
    transposed, turns = _DIHEDRAL[geometric]
    # (R^t T)^-1 = T R^-t = R^t T for a transpose T; R^-t for a plain rotation.
    return transform_name(dihedral_name(transposed, turns if transposed else -turns), negated)


def apply_transform(k: torch.Tensor, transform: str) -> torch.Tensor:
    """Apply a transform to a kernel.

    Args:
        k: tensor ``(..., kh, kw)``, or a 1-D kernel ``(k,)`` (``conv_flip`` reverses it).
        transform: ``"identity"``, ``"conv_flip"``, ``"flip_lr"``, ``"flip_ud"``, ``"transpose"``,
            ``"anti_transpose"``, ``"rot90"``, ``"rot270"``, ``"negated"``, or
            ``"<geometric>+negated"``.

    Returns:
        The transformed tensor.

    Raises:
        ValueError: unknown name, or a transform other than ``identity`` and ``conv_flip``
            (``+negated``) for a 1-D kernel.

    Example:
        >>> from cnnconv import kernels
        >>> torch.equal(apply_transform(kernels.sobel_x(), "conv_flip"), -kernels.sobel_x())
        True
    """
    geometric, negated = parse_transform(transform)
    if k.ndim == 1:
        if geometric not in ("identity", "conv_flip"):
            raise ValueError(f"a 1-D kernel takes identity or conv_flip (+negated), got {transform!r}")
        out = k.flip(0) if geometric == "conv_flip" else k
    else:
        out = TRANSFORMS[geometric](k)
    return -out if negated else out


def centre_pad(kernel: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad the last ``len(shape)`` axes of ``kernel`` to ``shape``, keeping the centre.

    Args:
        kernel: tensor whose trailing axes are padded.
        shape: target sizes of the trailing axes, e.g. ``(kh, kw)``.

    Raises:
        ValueError: a target size is smaller than the kernel's, or differs from it by an odd
            amount (the centre would fall between two taps).

    Example:
        >>> centre_pad(torch.ones(1, 1), (3, 3)).tolist()
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    shape = tuple(shape)
    sizes = tuple(kernel.shape[kernel.ndim - len(shape) :])
    if kernel.ndim < len(shape) or any(t < s or (t - s) % 2 for s, t in zip(sizes, shape)):
        have, want = "x".join(map(str, sizes)), "x".join(map(str, shape))
        raise ValueError(
            f"cannot centre a {have} kernel in a {want} one (the size difference must be even and non-negative)"
        )
    pad: list[int] = []
    for s, t in zip(reversed(sizes), reversed(shape)):
        pad += [(t - s) // 2] * 2
    return F.pad(kernel, pad)
