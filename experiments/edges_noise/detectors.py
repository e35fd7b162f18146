"""The detectors of experiment 2: fixed gradient pairs (Sobel, Prewitt, Scharr, derivatives of
Gaussian), Canny swept into one score map, the learnable layers, and the alignment that fixes a
learned ``(gx, gy)`` pair's free rotation before non-maximum suppression."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from cnnconv import kernels
from cnnconv.functional import correlate2d, separable_correlate2d

__all__ = ["hand_designed_kernels", "hand_designed_gradients", "canny_scores", "align_orientation",
           "apply_alignment", "make_learned", "make_parametric", "learned_gradients",
           "learned_kernels", "learned_sigma", "fitted_sigma"]


def _conv_gradients(images: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlate ``(N, 1, H, W)`` images with an x and a y kernel, reflect border, same size.

    One depthwise pass of :func:`cnnconv.functional.correlate2d` over the image taken twice.
    """
    out = correlate2d(images.expand(-1, 2, -1, -1), torch.stack([kx, ky]).to(images), "same",
                      border="reflect", method="direct")
    return out[:, 0], out[:, 1]


def hand_designed_kernels(name: str, *, sigma: float | None = None, dtype=None, device=None):
    """The ``(kx, ky)`` pair of a fixed detector: ``sobel``, ``prewitt``, ``scharr`` or ``dog``.

    Args:
        name: detector name.
        sigma: the Gaussian sigma when ``name == "dog"``.

    Returns:
        Two tensors ``(k, k)``, normalised so that the sum of absolute values is 1 (DoG: as built
        by :func:`cnnconv.kernels.gaussian_derivative`).

    Example:
        >>> kx, ky = hand_designed_kernels("sobel")
        >>> kx.shape, bool(torch.equal(kx.t(), ky))
        (torch.Size([3, 3]), True)
    """
    opts = {"dtype": dtype, "device": device}
    if name == "sobel":
        return kernels.sobel_x(normalized=True, **opts), kernels.sobel_y(normalized=True, **opts)
    if name == "prewitt":
        return kernels.prewitt_x(normalized=True, **opts), kernels.prewitt_y(normalized=True, **opts)
    if name == "scharr":
        return kernels.scharr_x(normalized=True, **opts), kernels.scharr_y(normalized=True, **opts)
    if name == "dog":
        if sigma is None:
            raise ValueError("sigma is required for the 'dog' detector, got None")
        return (kernels.gaussian_derivative(sigma, axis="x", **opts),
                kernels.gaussian_derivative(sigma, axis="y", **opts))
    raise ValueError(f"name must be one of sobel, prewitt, scharr, dog, got {name!r}")


def hand_designed_gradients(images: torch.Tensor, name: str, *, sigma: float | None = None):
    """``(gx, gy)`` of a fixed detector on ``(N, 1, H, W)`` images (reflect border).

    Example:
        >>> x = torch.arange(64.0).reshape(1, 1, 8, 8) % 8
        >>> gx, gy = hand_designed_gradients(x, "sobel")
        >>> round(float(gx[0, 4, 4]), 3), round(float(gy[0, 4, 4]), 3)
        (1.0, 0.0)
    """
    kx, ky = hand_designed_kernels(name, sigma=sigma, dtype=images.dtype, device=images.device)
    return _conv_gradients(images, kx, ky)


def canny_scores(images: np.ndarray, sigma: float, thresholds: np.ndarray, low_ratio: float) -> np.ndarray:
    """Canny swept over its high threshold, stored as one score map per image.

    The high threshold runs over ``thresholds * scale`` (``scale``: the largest smoothed Sobel
    magnitude over ``images``), the low one is ``low_ratio`` times the high one. Canny's output
    shrinks as both rise, so each pixel gets the midpoint between the highest grid threshold at
    which it is an edge and the next one: thresholding the map at a grid value (``>`` or ``>=``)
    gives Canny's edges at that value exactly.

    Args:
        images: ``(N, H, W)`` float images.
        sigma: Canny's Gaussian sigma.
        thresholds: increasing values in ``(0, 1)``.
        low_ratio: low / high threshold.

    Returns:
        ``(N, H, W)`` float64 score maps in ``[0, 1)``; 0 where Canny never fires.
    """
    from scipy import ndimage
    from skimage.feature import canny

    thresholds = np.asarray(thresholds, dtype=np.float64)
    uppers = np.append(thresholds[1:], 1.0)
    mids = 0.5 * (thresholds + uppers)
    scale = 0.0
    for img in images:
        smooth = ndimage.gaussian_filter(img.astype(np.float64), sigma, mode="mirror")
        mag = np.hypot(ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1))
        scale = max(scale, float(mag.max()))
    scale = scale if scale > 0 else 1.0
    scores = np.zeros(images.shape, dtype=np.float64)
    for n, img in enumerate(images):
        for t, mid in zip(thresholds, mids):
            edges = canny(img.astype(np.float64), sigma=sigma, low_threshold=low_ratio * t * scale,
                          high_threshold=t * scale, mode="mirror")
            if not edges.any():
                break
            scores[n][edges] = mid
    return scores


def align_orientation(gx: torch.Tensor, gy: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor,
                      mask: torch.Tensor) -> tuple[float, bool]:
    """Rotation angle and reflection that best align ``(gx, gy)`` with a reference gradient.

    Orientations are compared modulo 180 degrees through the double angle: ``(gx + i gy)^2``
    against ``(rx + i ry)^2`` on ``mask``, weighted by both magnitudes.

    Returns:
        ``(angle, reflect)``: apply with :func:`apply_alignment`.
    """
    g = torch.complex(gx[mask].double(), gy[mask].double()) ** 2
    r = torch.complex(rx[mask].double(), ry[mask].double()) ** 2
    plain = (r * g.conj()).sum()
    mirrored = (r * g).sum()
    reflect = bool(mirrored.abs() > plain.abs())
    target = mirrored if reflect else plain
    return float(torch.angle(target)) / 2.0, reflect


def apply_alignment(gx: torch.Tensor, gy: torch.Tensor, angle: float, reflect: bool):
    """Reflect (``gy -> -gy``) then rotate ``(gx, gy)`` by ``angle`` radians."""
    if reflect:
        gy = -gy
    c, s = math.cos(angle), math.sin(angle)
    return c * gx - s * gy, s * gx + c * gy



def make_learned(kernel_size: int, init: str, zero_sum: bool, pdc: str | None = None) -> nn.Module:
    """A learnable 1 -> 2 channel gradient layer (x and y): :class:`cnnconv.models.EdgeDetector`,
    a pixel-difference one with ``pdc``.

    Reflect border, like the fixed detectors, so every detector sees the same image borders.
    """
    from cnnconv.models import EdgeDetector

    return EdgeDetector(kernel_size, init=init, constraint="zero_sum" if zero_sum else None,
                        padding_mode="reflect", method="direct", pdc=pdc)


def make_parametric(sigma: float, max_sigma: float) -> nn.Module:
    """A derivative-of-Gaussian layer with a learnable sigma giving x and y derivatives.

    Its kernel size is fixed when it is built, so it is sized for ``max_sigma`` (truncation at
    4 sigma), leaving sigma room to grow.
    """
    from cnnconv.parametric import LearnableGaussianDerivative

    size = kernels.gaussian_size_from_sigma(max(sigma, max_sigma))
    return LearnableGaussianDerivative(in_channels=1, sigma=sigma, kernel_size=size, border="reflect",
                                       learn_orientation=False)


def learned_gradients(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gx, gy)`` of a learned layer on ``(N, 1, H, W)`` images."""
    from cnnconv.parametric import LearnableGaussianDerivative

    if isinstance(model, LearnableGaussianDerivative):
        # The derivative of Gaussian is separable: two 1-D passes per component cost 2k instead
        # of k^2 per pixel, which matters for the k = 25 kernels a large sigma needs.
        from cnnconv.parametric import gaussian_derivative_kernel1d, gaussian_kernel1d

        k = model.kernel_size
        sigma = model.sigma.reshape(-1)[0].to(images.dtype)
        g = gaussian_kernel1d(sigma, k)
        d = gaussian_derivative_kernel1d(sigma, k)
        # Channel 0: smooth down the columns, differentiate along the rows (gx); channel 1: the
        # transpose (gy).
        out = separable_correlate2d(images.expand(-1, 2, -1, -1), torch.stack([g, d]),
                                    torch.stack([d, g]), "same", border="reflect")
        return out[:, 0], out[:, 1]
    out = model(images)
    return out[:, 0], out[:, 1]


def learned_kernels(model: nn.Module) -> torch.Tensor:
    """The ``(2, k, k)`` x and y kernels of a learned layer."""
    from cnnconv.parametric import LearnableGaussianDerivative

    if isinstance(model, LearnableGaussianDerivative):
        gx, gy = model.kernel_pair()
        return torch.stack([gx[0], gy[0]])
    return model.weight[:, 0]


def learned_sigma(model: nn.Module) -> float:
    """The sigma of the learnable derivative of Gaussian."""
    return float(model.sigma.detach().reshape(-1)[0])


def fitted_sigma(kernel: torch.Tensor) -> float | None:
    """The derivative-of-Gaussian sigma that best fits a learned kernel (the kernel matcher).

    Returns:
        The fitted sigma, or ``None`` for an all-zero kernel.
    """
    from cnnconv.analysis import match_kernel

    matches = match_kernel(kernel, bank=["gaussian_dx"], top=1)
    return float(matches[0].sigma) if matches and matches[0].sigma is not None else None

