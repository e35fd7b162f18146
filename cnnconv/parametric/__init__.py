"""Parametric learnable filters: between fixed kernels and free ones.

- :class:`LearnableGaussianBlur`: a Gaussian blur whose sigma is a trained parameter.
- :class:`LearnableGaussianDerivative`: a derivative-of-Gaussian edge filter with learnable
  sigma and orientation, steered from the x/y pair (``cos(theta) Gx + sin(theta) Gy``).
- :class:`StructuredConv2d`: kernels that are learned combinations of a fixed
  Gaussian-derivative basis ("structured receptive fields").

Conventions shared by all three:

- **Sigma stays positive**: it is stored as ``log_sigma`` and used as ``exp(log_sigma)``
  (``log_sigma`` clamped to ``[-30, 30]`` so that a wild optimizer step cannot overflow it).
- **The kernel size is fixed at construction** (default ``2 * round(truncate * sigma0) + 1``
  from the initial sigma, as scipy.ndimage sizes it). It does not follow sigma during training:
  a size that jumps with sigma would make the output a discontinuous function of sigma and break
  its gradient. If sigma is expected to grow, pass a larger ``kernel_size`` (e.g. 21 for sigma up
  to about 2.5 with ``truncate=4``).
- **Kernels are rebuilt from the parameters on every forward in training mode**, and cached in
  eval mode when no gradient is needed (``torch.no_grad()`` / ``torch.inference_mode()``). The
  cache is used only while the parameters equal a copy kept with it (so every write counts,
  including ``param.data`` writes and fused optimizer steps), and is dropped on ``.train()`` /
  ``.eval()`` and dtype/device moves. In eval mode with gradients enabled the kernel is
  rebuilt, so gradients still reach sigma.
- Kernels are written for correlation (PyTorch's convention) and the derivative sign follows
  :mod:`cnnconv.kernels`: the x-derivative is positive where intensity grows to the right, the
  y-derivative where it grows downwards; a first-derivative kernel has gain 1 on a unit ramp.
- Orientation ``theta`` is in radians, measured from +x (columns) towards +y (rows, downwards),
  the same convention as :func:`cnnconv.edges.gradient_direction` (``atan2(gy, gx)``).
- The kernels are :mod:`cnnconv.kernels`' Gaussian builders called with a sigma tensor, and the
  depthwise filters run through :func:`cnnconv.functional.filter2d` (with the separable factors
  where the kernel has them), so they get its engines.
"""

from __future__ import annotations

from .gaussian import (
    LearnableGaussianBlur,
    LearnableGaussianDerivative,
    gaussian_blur,
    gaussian_derivative_filter,
    gaussian_derivative_kernel1d,
    gaussian_kernel1d,
    hermite_gaussian1d,
)
from .structured import StructuredConv2d

__all__ = [
    "LearnableGaussianBlur",
    "LearnableGaussianDerivative",
    "StructuredConv2d",
    "gaussian_blur",
    "gaussian_derivative_filter",
    "gaussian_derivative_kernel1d",
    "gaussian_kernel1d",
    "hermite_gaussian1d",
]
