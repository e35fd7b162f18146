"""The public functional API: apply kernels to images.

Conventions:

* Input ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; the output has the input's number of
  dimensions. Each channel is filtered on its own (depthwise): a kernel ``(kh, kw)`` is shared
  by all channels, a kernel ``(C, kh, kw)`` gives one kernel per channel.
* ``correlate*`` slide the kernel as given (PyTorch's ``F.conv2d`` convention); ``convolve*``
  flip it first (the mathematical definition, ``scipy.signal.convolve2d``).
* ``mode="full"|"same"|"valid"`` with scipy.signal's output sizes. Even kernels in ``same``
  mode: :func:`correlate2d` / :func:`convolve2d` follow scipy.signal by default
  (``anchor="signal"``) or scipy.ndimage (``anchor="ndimage"``); the filters (box, Gaussian,
  Sobel...) and :func:`filter2d` put kernel element ``k // 2`` on the output pixel, as
  scipy.ndimage and OpenCV do (see :mod:`cnnconv.engines.padding`).
* ``border="zeros"|"reflect"|"replicate"|"circular"|"symmetric"``: how the input is extended
  beyond its edges (scipy.ndimage ``constant``/``mirror``/``nearest``/``wrap``/``reflect``;
  OpenCV ``BORDER_CONSTANT``/``BORDER_REFLECT_101``/``BORDER_REPLICATE``/``BORDER_WRAP``/
  ``BORDER_REFLECT``).
* One default border, ``"reflect"``, for every filter (:func:`filter2d`, the blurs, the
  gradients, :func:`laplacian`, :func:`sharpen`, :func:`spatial_gradient`) and every layer: it
  is OpenCV's default (``BORDER_REFLECT_101``) and kornia's, it invents no edge at the image
  border (zeros darken it and a gradient then sees a step there) and, unlike ``replicate``,
  keeps the border pixel's neighbourhood as varied as the interior's. The scipy-named
  functions (:func:`correlate2d`, :func:`convolve2d`, :func:`correlate1d`,
  :func:`convolve1d`) take scipy.signal's defaults instead: ``mode="full"``, zeros.

:mod:`cnnconv.functional.plan` is the one place that decides how a filter is computed
(:class:`~cnnconv.functional.plan.FilterPlan`); :func:`filter2d`, :func:`apply_gradient` and
every layer of :mod:`cnnconv.filters` run such a plan. The engines live in
:mod:`cnnconv.engines`.
"""

from __future__ import annotations

from cnnconv.engines.workspace import clear_workspace
from cnnconv.functional.blur import box_blur2d, gaussian_blur2d, laplacian, sharpen
from cnnconv.functional.correlation import (
    convolve1d,
    convolve2d,
    correlate1d,
    correlate2d,
    filter2d,
    separable_correlate2d,
)
from cnnconv.functional.gradients import (
    GRADIENT_OUTPUTS,
    apply_gradient,
    prewitt,
    scharr,
    sobel,
    spatial_gradient,
)
from cnnconv.functional.plan import METHODS

__all__ = [
    "GRADIENT_OUTPUTS",
    "METHODS",
    "apply_gradient",
    "box_blur2d",
    "clear_workspace",
    "convolve1d",
    "convolve2d",
    "correlate1d",
    "correlate2d",
    "fft_conv1d",
    "fft_conv2d",
    "filter2d",
    "gaussian_blur2d",
    "laplacian",
    "prewitt",
    "scharr",
    "separable_correlate2d",
    "sharpen",
    "sobel",
    "spatial_gradient",
]


def fft_conv1d(*args, **kwargs):
    """Re-export of :func:`cnnconv.fft.fft_conv1d` (``F.conv1d`` semantics, computed by FFT)."""
    from cnnconv.fft import fft_conv1d as _impl

    return _impl(*args, **kwargs)


def fft_conv2d(*args, **kwargs):
    """Re-export of :func:`cnnconv.fft.fft_conv2d` (``F.conv2d`` semantics, computed by FFT)."""
    from cnnconv.fft import fft_conv2d as _impl

    return _impl(*args, **kwargs)
