"""Look into convolution kernels: extract them, describe them, match them to hand-designed ones.

Three steps, each usable on its own, each in its own module:

- :func:`extract_kernels` (:mod:`.extract`) reads every convolution weight from an ``nn.Module``,
  a ``state_dict`` or a checkpoint file. Files are read with ``torch.load(weights_only=True)``
  only: a file that would need arbitrary code to load is refused (:class:`InspectError`) and
  never executed.
- :func:`describe_kernel` (:mod:`.describe`) measures one 2-D kernel: DC gain, L2 norm, symmetry,
  separability, dominant orientation, peak spatial frequency and the frequency response on a
  grid; or one 1-D kernel: DC gain, L2 norm, symmetry, decay (lengths holding 90%/99% of the
  energy, fitted exponential rate), one-sidedness and bandwidth.
- :func:`match_kernel` (:mod:`.match`; the bank in :mod:`.bank`, 1-D kernels in :mod:`.match1d`)
  finds the nearest kernels of the hand-designed bank (:mod:`cnnconv.kernels`) under scale,
  sign, the eight 90-degree rotations and flips (the convolution flip among them), and fits sigma
  for Gaussian-family kernels; :func:`fit_kernel` (:mod:`.fit`) fits continuous families (a
  Gaussian derivative at any orientation and scale, a steered second derivative, a Gabor), and
  match_kernel reports the best of them too.

:func:`kernel_recovery_error` (:mod:`.recovery`) measures how far a learned kernel is from the
one it should have learned, up to sign and rotation but not scale. Figures are drawn by
:mod:`cnnconv.analysis.plotting` (matplotlib, imported only when used). The transforms (the
eight symmetries of the square and a sign) are those of :mod:`cnnconv.kernels.transforms`.

Limits (checked on shapes, before any value is read or copied, so that a small crafted file
describing a huge tensor costs nothing):

- 2-D kernels at most :data:`MAX_KERNEL_SIDE` (256) on each side, 1-D kernels at most
  :data:`MAX_KERNEL_LENGTH` (2**22) taps; larger ones are refused with a ValueError.
- :data:`MAX_KERNELS` (4096): the most kernels ``cnnconv inspect`` describes in one run.
- A weight stored as two rank-one factors is multiplied out only up to
  :data:`MAX_WEIGHT_ELEMENTS` (2**28) values.
- Only regular files are read (a FIFO or a device would block or never end).

Conventions:

- Axes follow :mod:`cnnconv.kernels`: +x is +column (rightwards), +y is +row (downwards).
- Orientation is the direction, in degrees in ``[0, 180)``, of the intensity change the kernel
  responds to most (the edge *normal*), measured from +x towards +y. ``sobel_x`` is 0,
  ``sobel_y`` is 90, and ``cos(t) * gaussian_dx + sin(t) * gaussian_dy`` is ``t``.
- A match's ``transform`` says how to obtain the kernel from the bank kernel:
  ``kernel ~= scale * transform(bank_kernel)`` with ``scale > 0``.

Example:
    >>> import torch
    >>> from cnnconv import kernels
    >>> from cnnconv.analysis import match_kernel
    >>> best = match_kernel(torch.rot90(kernels.sobel_x(), 2))[0]
    >>> best.name, best.transform, round(best.similarity, 6)
    ('sobel_x', 'conv_flip', 1.0)
"""

from __future__ import annotations

from cnnconv.analysis._common import (
    MAX_KERNEL_LENGTH,
    MAX_KERNEL_SIDE,
    MAX_KERNELS,
    MAX_WEIGHT_ELEMENTS,
    InspectError,
    kernel_size_error,
)
from cnnconv.analysis.bank import KernelMatch
from cnnconv.analysis.describe import (
    KernelDescription,
    KernelDescription1d,
    describe_kernel,
    frequency_response,
)
from cnnconv.analysis.extract import (
    STATE_DICT_KEYS,
    KernelRecord,
    extract_kernels,
    read_checkpoint,
)
from cnnconv.analysis.fit import FIT_FAMILIES, MAX_FIT_SIDE, KernelFit, fit_kernel
from cnnconv.analysis.match import match_kernel
from cnnconv.analysis.match1d import BANK_1D
from cnnconv.analysis.recovery import (
    KernelRecovery,
    KernelTransform,
    kernel_recovery_error,
)
from cnnconv.kernels.transforms import TRANSFORMS, apply_transform

__all__ = [
    "BANK_1D",
    "FIT_FAMILIES",
    "MAX_FIT_SIDE",
    "MAX_KERNELS",
    "MAX_KERNEL_LENGTH",
    "MAX_KERNEL_SIDE",
    "MAX_WEIGHT_ELEMENTS",
    "STATE_DICT_KEYS",
    "TRANSFORMS",
    "InspectError",
    "KernelDescription",
    "KernelDescription1d",
    "KernelFit",
    "KernelMatch",
    "KernelRecord",
    "KernelRecovery",
    "KernelTransform",
    "apply_transform",
    "describe_kernel",
    "extract_kernels",
    "fit_kernel",
    "frequency_response",
    "kernel_recovery_error",
    "kernel_size_error",
    "match_kernel",
    "read_checkpoint",
]
