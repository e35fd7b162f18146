"""Gradient filters and thin edge maps: Sobel / Scharr / Prewitt / derivative of Gaussian,
differentiable magnitude and direction, non-maximum suppression (hysteresis and binary edge
maps: :mod:`cnnconv.evaluation.edges`).

Conventions:

- **Gradient** ``(B, 2, H, W)``: channel 0 is ``gx`` (derivative along +x = columns, to the
  right), channel 1 is ``gy`` (along +y = rows, downwards), from correlation kernels that are
  positive where intensity grows in that direction (:mod:`cnnconv.kernels`). With
  ``normalized=True`` (default) Sobel/Scharr/Prewitt are scaled to gain 1 on a unit ramp, like
  the derivative of Gaussian (for 3x3 kernels: divided by the sum of absolute values, as
  OpenCV's and kornia's normalised Sobel).
- **Direction** ``atan2(gy, gx)`` in radians, in ``(-pi, pi]``: 0 points right, ``+pi/2``
  points down (image rows grow downwards, so angles turn clockwise on screen). It is the
  direction of steepest ascent, across the edge.
- **Magnitude** ``sqrt(gx^2 + gy^2 + eps)``: differentiable everywhere (the gradient at a flat
  spot is 0, not NaN).
- **Colour input**: each channel's gradient is computed; ``color="max"`` (default) keeps, per
  pixel, the gradient of the channel with the largest magnitude (colour edges of opposite
  sign do not cancel); ``"sum"`` / ``"mean"`` add / average the channels' gradients (= the
  gradient of the channel sum / mean).
- **Non-maximum suppression** follows scikit-image's Canny
  (``skimage.feature._canny_cy._nonmaximum_suppression_bilinear``): the magnitude is
  interpolated linearly between the two neighbours that bracket the gradient direction, on both
  sides, and a pixel is kept when it is not smaller than either. Exact ties along the gradient
  (a step edge centred between two pixels) keep both pixels in scikit-image; here the default
  keeps only the one on the +gradient side, so edges are one pixel thin (``keep_ties=True``
  reproduces scikit-image). Pixels outside the image repeat the border pixel (scikit-image
  leaves the one-pixel border out altogether).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnconv import kernels as K
from cnnconv.functional.correlation import apply_plan, filter2d
from cnnconv.functional.gradients import apply_gradient_plan
from cnnconv.functional.plan import FilterPlan, plan_filter, plan_gradient
from cnnconv.parametric.base import _check_border, _check_channels

__all__ = [
    "COLOR_MODES",
    "GradientFilter",
    "gradient_direction",
    "gradient_kernels",
    "gradient_magnitude",
    "non_max_suppression",
    "thin_edges",
]

COLOR_MODES = ("max", "sum", "mean")
_NAMED = ("sobel", "scharr", "prewitt", "dog")


def gradient_kernels(
    kernel="sobel", *, sigma: float = 1.0, normalized: bool = True, kernel_size=None, dtype=None, device=None
) -> torch.Tensor:
    """The ``(2, kh, kw)`` pair ``[kx, ky]`` for a named detector or a given pair.

    Args:
        kernel: ``"sobel"``, ``"scharr"``, ``"prewitt"``, ``"dog"`` (derivative of Gaussian of
            scale ``sigma``), or a pair of 2-D tensors ``(kx, ky)`` / a ``(2, kh, kw)`` tensor.
        sigma: scale for ``"dog"``.
        normalized: scale Sobel/Scharr/Prewitt to gain 1 on a unit ramp (for 3x3 kernels the
            same as dividing by the sum of absolute values; the DoG has gain 1 already).
        kernel_size: Sobel 3 or 5; ``"dog"`` size (default ``2*round(4*sigma)+1``).
        dtype, device: of the result.

    Returns:
        Tensor ``(2, kh, kw)``.

    Example:
        >>> gradient_kernels("sobel", normalized=False)[0]
        tensor([[-1.,  0.,  1.],
                [-2.,  0.,  2.],
                [-1.,  0.,  1.]])
    """
    if isinstance(kernel, str):
        name = kernel.lower()
        if name == "sobel":
            size = 3 if kernel_size is None else kernel_size
            kx = K.sobel_x(size, dtype=torch.float64)
        elif name in ("scharr", "prewitt"):
            if kernel_size not in (None, 3):
                raise ValueError(f"{name} kernels are 3x3, got kernel_size={kernel_size!r}")
            fn = K.scharr_x if name == "scharr" else K.prewitt_x
            kx = fn(dtype=torch.float64)
        elif name == "dog":
            kx = K.gaussian_derivative(sigma, 1, "x", kernel_size, dtype=torch.float64)
        else:
            raise ValueError(f"kernel must be one of {', '.join(_NAMED)} or a tensor pair, got {kernel!r}")
        if normalized and name != "dog":
            # gain 1 on a unit ramp; for 3x3 kernels this is the sum of absolute values (OpenCV,
            # kornia), for the 5x5 Sobel it is not (128 against 96)
            x = torch.arange(kx.shape[-1], dtype=torch.float64)
            kx = kx / (kx * x).sum()
        pair = torch.stack([kx, kx.t()])
    elif isinstance(kernel, torch.Tensor):
        if kernel.ndim != 3 or kernel.shape[0] != 2:
            raise ValueError(f"a kernel tensor must have shape (2, kh, kw), got {tuple(kernel.shape)}")
        pair = kernel.detach()
    elif isinstance(kernel, (tuple, list)) and len(kernel) == 2 and all(isinstance(k, torch.Tensor) for k in kernel):
        if kernel[0].ndim != 2 or kernel[0].shape != kernel[1].shape:
            raise ValueError(
                f"a kernel pair must be two 2-D tensors of one shape, got {tuple(kernel[0].shape)} "
                f"and {tuple(kernel[1].shape)}"
            )
        pair = torch.stack([k.detach() for k in kernel])
    else:
        raise TypeError(f"kernel must be a name or a pair of 2-D tensors, got {type(kernel).__name__}: {kernel!r}")
    return pair.to(dtype=dtype or torch.get_default_dtype(), device=device)


def _check_grad(grad, name="grad") -> None:
    if not isinstance(grad, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(grad).__name__}")
    if grad.ndim != 4 or grad.shape[1] != 2:
        raise ValueError(f"{name} must have shape (B, 2, H, W), got {tuple(grad.shape)}")


def gradient_magnitude(grad: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Differentiable gradient magnitude ``sqrt(gx^2 + gy^2 + eps)``.

    Args:
        grad: ``(B, 2, H, W)`` as returned by :class:`GradientFilter`.
        eps: keeps the square root differentiable at zero gradient.

    Returns:
        Tensor ``(B, 1, H, W)``.

    Example:
        >>> g = torch.tensor([3.0, 4.0]).reshape(1, 2, 1, 1)
        >>> round(gradient_magnitude(g).item(), 5)
        5.0
    """
    _check_grad(grad)
    return (grad.pow(2).sum(1, keepdim=True) + eps).sqrt()


def gradient_direction(grad: torch.Tensor) -> torch.Tensor:
    """Gradient direction ``atan2(gy, gx)`` in radians, ``(-pi, pi]``; 0 = +x, pi/2 = +y (down).

    Returns:
        Tensor ``(B, 1, H, W)``.

    Example:
        >>> g = torch.tensor([0.0, 2.0]).reshape(1, 2, 1, 1)   # intensity grows downwards
        >>> round(gradient_direction(g).item(), 4)
        1.5708
    """
    _check_grad(grad)
    return torch.atan2(grad[:, 1:2], grad[:, 0:1])


def check_map(t, name: str) -> None:
    """Raise unless ``t`` is a ``(B, 1, H, W)`` tensor (a magnitude, direction or edge map)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(t.shape)}")


def non_max_suppression(magnitude: torch.Tensor, direction: torch.Tensor, *, keep_ties: bool = False) -> torch.Tensor:
    """Canny non-maximum suppression along the gradient direction (interpolated).

    For each pixel the magnitude is linearly interpolated between the two neighbours that the
    gradient line passes between, at distance one pixel on the +gradient and -gradient sides
    (scikit-image's scheme). The pixel is kept when its magnitude is positive and at least
    both interpolated values (strictly greater than the +gradient side unless ``keep_ties``).

    Args:
        magnitude: ``(B, 1, H, W)``, non-negative.
        direction: ``(B, 1, H, W)``, radians, ``atan2(gy, gx)`` (see module docstring).
        keep_ties: keep both pixels of an exact tie (scikit-image's behaviour).

    Returns:
        Tensor ``(B, 1, H, W)``: the magnitude where kept, 0 elsewhere (differentiable with
        respect to ``magnitude`` at the kept pixels).

    Example:
        >>> x = torch.zeros(1, 1, 8, 8); x[..., 4:] = 1.0
        >>> g = GradientFilter("sobel")(x)
        >>> nms = non_max_suppression(gradient_magnitude(g), gradient_direction(g))
        >>> (nms[0, 0] > 0.25).nonzero()[:, 1].unique().tolist()   # one column
        [4]
    """
    check_map(magnitude, "magnitude")
    check_map(direction, "direction")
    if magnitude.shape != direction.shape:
        raise ValueError(
            f"magnitude and direction must have one shape, got {tuple(magnitude.shape)} and {tuple(direction.shape)}"
        )
    m = magnitude
    H, W = m.shape[-2:]
    gx, gy = torch.cos(direction), torch.sin(direction)
    ax, ay = gx.abs(), gy.abs()
    right = gx > 0  # skimage: is_left = jsobel <= 0
    down = gy > 0  # skimage: is_up = isobel > 0 (rows grow downwards)
    # Replicate: a flat border pixel ties with its outside neighbour instead of beating a zero.
    mp = F.pad(m, (1, 1, 1, 1), mode="replicate") if m.numel() else F.pad(m, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return mp[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]

    def sel(dy_sign: int, dx_sign: int) -> torch.Tensor:
        """Neighbour at (dy_sign * sy, dx_sign * sx) where sy, sx are the gradient's signs."""
        if dy_sign == 0:
            return torch.where(right, at(0, dx_sign), at(0, -dx_sign))
        if dx_sign == 0:
            return torch.where(down, at(dy_sign, 0), at(-dy_sign, 0))
        return torch.where(
            down,
            torch.where(right, at(dy_sign, dx_sign), at(dy_sign, -dx_sign)),
            torch.where(right, at(-dy_sign, dx_sign), at(-dy_sign, -dx_sign)),
        )

    rows = ay > ax  # the gradient is closer to vertical: primary neighbour in the next row
    tiny = torch.finfo(m.dtype).tiny
    w = torch.where(rows, ax / ay.clamp_min(tiny), ay / ax.clamp_min(tiny))
    n1p = torch.where(rows, sel(1, 0), sel(0, 1))
    n1m = torch.where(rows, sel(-1, 0), sel(0, -1))
    n2p, n2m = sel(1, 1), sel(-1, -1)
    # n1 + w (n2 - n1) rather than skimage's n2 w + n1 (1 - w): equal neighbours give exactly n1,
    # so a tie along an axis stays a tie although cos(pi/2) is not exactly 0.
    plus = n1p + w * (n2p - n1p)
    minus = n1m + w * (n2m - n1m)
    keep_plus = plus <= m if keep_ties else plus < m
    keep = (m > 0) & keep_plus & (minus <= m)
    return torch.where(keep, m, torch.zeros_like(m))


def thin_edges(grad: torch.Tensor, *, eps: float = 1e-12, keep_ties: bool = False) -> torch.Tensor:
    """Non-maximum-suppressed magnitude of a gradient ``(B, 2, H, W)`` -> ``(B, 1, H, W)``."""
    return non_max_suppression(gradient_magnitude(grad, eps), gradient_direction(grad), keep_ties=keep_ties)


class GradientFilter(nn.Module):
    """A fixed or learnable pair of derivative kernels that outputs the image gradient.

    Args:
        kernel: ``"sobel"`` (default), ``"scharr"``, ``"prewitt"``, ``"dog"`` or a tensor pair
            (see :func:`gradient_kernels`).
        learnable: store the pair as a trainable ``weight`` parameter ``(2, 1, kh, kw)``;
            otherwise as a non-persistent buffer (follows ``.to()``, not in checkpoints).
        sigma: scale of ``"dog"``.
        normalized: ramp-gain-1 normalisation of Sobel/Scharr/Prewitt.
        kernel_size: Sobel size (3 or 5) or ``"dog"`` size.
        in_channels: channels of the input; the same pair is applied to each channel.
        color: how channel gradients combine: ``"max"``, ``"sum"`` or ``"mean"`` (module docs).
        border: padding mode, ``"reflect"`` (default, the default of every fixed filter: see
            :mod:`cnnconv.functional`), ``"replicate"`` (kornia's ``spatial_gradient``),
            ``"zeros"``, ``"circular"``, ``"symmetric"``; output has the input's size (even
            kernels anchor at ``k // 2``).

    Shape:
        - Input: ``(B, in_channels, H, W)``
        - Output: ``(B, 2, H, W)`` = ``[gx, gy]``.

    Example:
        >>> f = GradientFilter("sobel")
        >>> f(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 2, 16, 16])
    """

    def __init__(
        self,
        kernel="sobel",
        learnable: bool = False,
        *,
        sigma: float = 1.0,
        normalized: bool = True,
        kernel_size=None,
        in_channels: int = 1,
        color: str = "max",
        border: str = "reflect",
        eps: float = 1e-12,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check_channels(in_channels, "in_channels")
        if color not in COLOR_MODES:
            raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
        _check_border(border)
        pair = gradient_kernels(
            kernel, sigma=sigma, normalized=normalized, kernel_size=kernel_size, dtype=dtype, device=device
        ).unsqueeze(1)
        self.kernel_name = kernel if isinstance(kernel, str) else "tensor"
        self.learnable = bool(learnable)
        self.sigma = float(sigma)
        self.normalized = bool(normalized)
        self.in_channels = in_channels
        self.color = color
        self.border = border
        self.eps = float(eps)
        self._plan: FilterPlan | None = None
        if self.learnable:
            self.weight = nn.Parameter(pair.clone())
        else:
            self.register_buffer("weight", pair.clone(), persistent=False)
            self._replan()

    def _replan(self) -> None:
        """The plan of the fixed pair: a gradient pair (banded or separable engines) when the y
        kernel is the transpose of a rank-1 x kernel, else the two kernels as one per-channel
        filter of the input seen twice."""
        kx, ky = self.weight[0, 0], self.weight[1, 0]
        factors = K.separable_factors(kx) if torch.equal(ky, kx.t()) else None
        self._transposed_pair = factors is not None
        if factors is not None:
            smooth, diff = factors  # kx = outer(smooth, diff)
            self._plan = plan_gradient(smooth, diff, output="xy")
        else:
            self._plan = plan_filter(self.weight[:, 0])

    def _apply(self, *args, **kwargs):
        module = super()._apply(*args, **kwargs)
        if self._plan is not None:  # the buffer was replaced: plan for the new one
            self._replan()
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        B, C, H, W = x.shape
        if self._plan is not None and self._transposed_pair:
            g = apply_gradient_plan(x, self._plan, "xy", self.border)
        else:  # every plane twice, as a two-channel image filtered by the x and y kernels
            planes = x.reshape(B * C, 1, H, W).expand(B * C, 2, H, W)
            if self._plan is None:
                g = filter2d(planes, self.weight[:, 0], "same", self.border)
            else:
                g = apply_plan(planes, self._plan, "same", self.border)
            g = g.reshape(B, C, 2, H, W)
        if C == 1:
            return g[:, 0]
        if self.color == "sum":
            return g.sum(1)
        if self.color == "mean":
            return g.mean(1)
        best = g.pow(2).sum(2, keepdim=True).argmax(1, keepdim=True)  # (B, 1, 1, H, W)
        return g.gather(1, best.expand(B, 1, 2, H, W))[:, 0]

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable gradient magnitude ``(B, 1, H, W)``."""
        return gradient_magnitude(self(x), self.eps)

    def direction(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient direction ``atan2(gy, gx)`` ``(B, 1, H, W)``, radians."""
        return gradient_direction(self(x))

    def thin(self, x: torch.Tensor, *, keep_ties: bool = False) -> torch.Tensor:
        """Non-maximum-suppressed magnitude ``(B, 1, H, W)``."""
        return thin_edges(self(x), eps=self.eps, keep_ties=keep_ties)

    def extra_repr(self) -> str:
        kh, kw = self.weight.shape[-2:]
        return (
            f"kernel={self.kernel_name!r}, size=({kh}, {kw}), learnable={self.learnable}, "
            f"normalized={self.normalized}, in_channels={self.in_channels}, color={self.color!r}, "
            f"border={self.border!r}"
        )
