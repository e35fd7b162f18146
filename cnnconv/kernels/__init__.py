"""Hand-designed convolution kernels as tensors.

Modules: :mod:`~cnnconv.kernels.gaussians` (Gaussians and their derivatives, Laplacian of
Gaussian, unsharp mask), :mod:`~cnnconv.kernels.builders` (box, Gabor, Laplacian, sharpen,
identity), :mod:`~cnnconv.kernels.gradients` (Sobel, Prewitt, Scharr,
Roberts, Kirsch), :mod:`~cnnconv.kernels.registry` (kernels by name) and
:mod:`~cnnconv.kernels.separable` (the rank-1 test).

Every builder is a pure function with keyword-only ``dtype`` and ``device`` (default
``torch.get_default_dtype()`` on the CPU) and returns a 2-D tensor ``(kh, kw)`` or a 1-D
tensor ``(k,)``.

Orientation: kernels are written for **correlation** (PyTorch's convention, ``F.conv2d``).
``sobel_x`` is ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``: positive where intensity grows to the
right (+x = +column). ``*_y`` kernels are the transposes: positive where intensity grows
downwards (+row). Convolving (``cnnconv.functional.convolve2d``) flips them and so flips the
sign of odd kernels.

Kernels can be named by string through a registry::

    >>> from cnnconv import kernels
    >>> kernels.get_kernel("sobel_x").tolist()
    [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    >>> "gaussian" in kernels.list_kernels()
    True

Registered names: ``box, gaussian, gaussian_dx, gaussian_dy, gaussian_dxx, gaussian_dxy,
gaussian_dyy, gabor, sobel_x, sobel_y, sobel5_x, sobel5_y, prewitt_x, prewitt_y, scharr_x,
scharr_y, roberts_x, roberts_y, kirsch_n, kirsch_ne, kirsch_e, kirsch_se, kirsch_s, kirsch_sw,
kirsch_w, kirsch_nw, laplacian4, laplacian8, log, sharpen, unsharp, identity``. Aliases: ``mean`` and ``average`` (box),
``gauss`` (gaussian), ``laplacian`` (laplacian4), ``laplacian_of_gaussian`` (log).
"""

from __future__ import annotations

from . import base, builders, gaussians, gradients, registry, separable

# _check_truncate and _grid: private helpers that the Gaussian filters and the kernel fits reach
# through the package.
from .base import *
from .base import _check_truncate as _check_truncate
from .base import _grid as _grid
from .builders import *
from .gaussians import *
from .gradients import *
from .registry import *
from .separable import *

__all__: list[str] = []
__all__ += base.__all__
__all__ += builders.__all__
__all__ += gaussians.__all__
__all__ += gradients.__all__
__all__ += registry.__all__
__all__ += separable.__all__
