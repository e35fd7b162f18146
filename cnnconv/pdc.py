"""Pixel-difference convolutions (PiDiNet: Su et al., "Pixel Difference Networks for Efficient
Edge Detection", ICCV 2021).

A pixel-difference convolution (PDC) weights differences of pixel pairs instead of pixels. Each
type is linear in the input, so it equals a vanilla convolution with an *equivalent kernel*
built from the learnable 3x3 weight ``W`` (flattened in raster order ``w_0 .. w_8``, centre
``w_4``); :class:`PixelDifferenceConv2d` builds that kernel on every forward (differentiable)
and convolves with it. With ``theta`` (PiDiNet's ``ops_theta``; 1 is the pure PDC of the paper,
0 the vanilla convolution) the types are:

- ``"cv"``: vanilla convolution, ``y = sum_i w_i x_i``.
- ``"cd"`` (central): ``y = sum_i w_i (x_i - theta x_c)``; equivalent kernel ``W`` with the
  centre reduced by ``theta * sum(W)``. Any odd kernel size.
- ``"ad"`` (angular): ``y = sum_i w_i (x_i - theta x_i')`` with ``i'`` the clockwise
  neighbour of ``i`` on the 3x3 ring (centre paired with itself); equivalent kernel
  ``W - theta * W`` rotated one step clockwise around the ring. 3x3 only.
- ``"rd"`` (radial): ``y = sum_k w_{k+1} (x_outer_k - theta x_inner_k) + (1 - theta) w_0 x_c``
  for the eight directions ``k`` in raster order, where ``outer_k`` is two (dilated) steps
  from the centre and ``inner_k`` one step; a 5x5 equivalent kernel. As in PiDiNet, the
  weight is read as flat values (``w_1 .. w_8`` the directions, ``w_0`` the centre term), not
  spatially, and the 5x5 kernel is applied with ``padding + dilation`` so that the output has
  the size and alignment of the 3x3 layer. 3x3 only.

The ``weight`` parameter is PiDiNet's raw 3x3 weight, so ``state_dict`` keys and values match
PiDiNet's layers; :meth:`PixelDifferenceConv2d.reparameterize` and :func:`reparameterize_pdc`
turn trained layers into plain ``nn.Conv2d`` layers with the same outputs (PiDiNet's
``convert_pidinet``).

The layer is learnable like :class:`cnnconv.learnable.LearnableConv2d`: it is a
:class:`cnnconv.conv.FFTConv2d` (``method="auto" | "direct" | "fft"`` picks the engine of the
equivalent convolution), :meth:`PixelDifferenceConv2d.from_kernels` starts it from
hand-designed kernels (the raw weight is solved so that the *equivalent* kernel is the given
one), :func:`cnnconv.constraints.constrain` constrains its raw weight, and
:func:`cnnconv.analysis.extract_kernels` reports its equivalent kernel.

Example:
    >>> layer = PixelDifferenceConv2d(3, 8, pdc="cd")
    >>> x = torch.randn(1, 3, 16, 16)
    >>> torch.allclose(layer(x), layer.reparameterize()(x), atol=1e-6)
    True
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnconv import conv as _conv
from cnnconv import learnable
from cnnconv.conv import _replace
from cnnconv.kernels.transforms import centre_pad

__all__ = ["PDC_TYPES", "PixelDifferenceConv2d", "pdc_equivalent_weight", "reparameterize_pdc"]

PDC_TYPES = ("cv", "cd", "ad", "rd")

# ad: the flat 3x3 position whose weight is subtracted at each position (one step clockwise).
_AD_SOURCE = [3, 0, 1, 6, 4, 2, 7, 8, 5]
# rd: flat 5x5 positions of the eight directions (raster order), two steps and one step out.
_RD_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]
_RD_INNER = [6, 7, 8, 11, 13, 16, 17, 18]


@functools.cache
def _indices(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ad and rd index tensors on ``device``, made once (a copy per forward would sync a GPU)."""
    return (
        torch.tensor(_AD_SOURCE, device=device),
        torch.tensor(_RD_OUTER + _RD_INNER + [12], device=device),
    )


def _check_pdc(pdc) -> str:
    if pdc not in PDC_TYPES:
        raise ValueError(f"pdc must be one of {', '.join(PDC_TYPES)}, got {pdc!r}")
    return pdc


def _check_theta(theta) -> float:
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise TypeError(f"theta must be a number, got {type(theta).__name__}: {theta!r}")
    if not math.isfinite(theta):
        raise ValueError(f"theta must be finite, got {theta!r}")
    return float(theta)


def _check_kernel_size(pdc: str, kernel_size) -> None:
    kernel_size = tuple(kernel_size)
    if pdc in ("ad", "rd") and kernel_size != (3, 3):
        raise ValueError(
            f"kernel_size must be 3 for pdc={pdc!r} (its pixel pairs lie on the 3x3 ring), got {kernel_size}"
        )
    if pdc == "cd" and any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"kernel_size must be odd for pdc='cd' (it needs a centre), got {kernel_size}")


def _solve_raw(built, size, pdc: str, theta: float, exact: bool) -> tuple[torch.Tensor, list[float]]:
    """Raw weights ``(n, *size)`` whose equivalent kernels are the ``built`` kernels (least
    squares, float64, minimum norm) and each kernel's relative residual."""
    # The linear map raw -> equivalent, column j the equivalent kernel of the j-th unit weight.
    n_raw = size[0] * size[1]
    units = torch.eye(n_raw, dtype=torch.float64).reshape(n_raw, 1, *size)
    eq_units = pdc_equivalent_weight(units, pdc, theta)[:, 0]
    eq_size = (int(eq_units.shape[-2]), int(eq_units.shape[-1]))
    matrix = eq_units.reshape(n_raw, -1).T
    targets = torch.stack([centre_pad(k, eq_size) for k, _ in built]).reshape(len(built), -1)
    raw = torch.linalg.lstsq(matrix, targets.T, driver="gelsd").solution.T
    residuals = ((raw @ matrix.T - targets).norm(dim=1) / targets.norm(dim=1).clamp_min(1e-300)).tolist()
    bad = [(name, r) for (_, name), r in zip(built, residuals) if r > 1e-9]
    if exact and bad:
        name, r = bad[0]
        raise ValueError(
            f"kernels must be reachable by pdc={pdc!r} (theta={theta}) to be set exactly, got kernel "
            f"{name!r} with relative residual {r:.3g} (pass exact=False for the least-squares weight)"
        )
    return raw.reshape(-1, *size), residuals


def pdc_equivalent_weight(weight: torch.Tensor, pdc: str, theta: float = 1.0) -> torch.Tensor:
    """The vanilla convolution kernel equivalent to a pixel-difference weight (differentiable).

    Args:
        weight: ``(out, in/groups, kh, kw)`` PDC weight (3x3 for ``ad`` / ``rd``, odd for ``cd``).
        pdc: ``"cv"``, ``"cd"``, ``"ad"`` or ``"rd"`` (see the module docstring).
        theta: weight of the subtracted pixel (1: pure pixel difference, 0: vanilla).

    Returns:
        Tensor of ``weight``'s shape, or ``(out, in/groups, 5, 5)`` for ``rd``; same dtype
        and device.

    Example:
        >>> w = torch.ones(1, 1, 3, 3)
        >>> pdc_equivalent_weight(w, "cd")[0, 0]
        tensor([[ 1.,  1.,  1.],
                [ 1., -8.,  1.],
                [ 1.,  1.,  1.]])
    """
    _check_pdc(pdc)
    theta = _check_theta(theta)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError(f"weight must have shape (out, in, kh, kw), got {getattr(weight, 'shape', type(weight))}")
    _check_kernel_size(pdc, weight.shape[-2:])
    if pdc == "cv":
        return weight
    if pdc == "cd":
        kh, kw = weight.shape[-2:]
        eq = weight.clone()
        eq[..., kh // 2, kw // 2] -= theta * weight.sum(dim=(-2, -1))
        return eq
    flat = weight.flatten(-2)
    ad_source, rd_target = _indices(weight.device)
    if pdc == "ad":
        return (flat - theta * flat.index_select(-1, ad_source)).reshape(weight.shape)
    values = torch.cat([flat[..., 1:], -theta * flat[..., 1:], (1 - theta) * flat[..., :1]], dim=-1)
    eq = flat.new_zeros(*flat.shape[:-1], 25).index_copy(-1, rd_target, values)
    return eq.reshape(*weight.shape[:-2], 5, 5)


class PixelDifferenceConv2d(_conv.FFTConv2d):
    """``nn.Conv2d`` whose 3x3 weight is a pixel-difference weight (PiDiNet's cd / ad / rd).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv2d`` (defaults: 3x3, padding 1, no bias, as
            PiDiNet). ``kernel_size`` must be 3 for ``ad`` and ``rd`` and odd for ``cd``.
        pdc: ``"cd"`` (central), ``"ad"`` (angular), ``"rd"`` (radial) or ``"cv"`` (vanilla).
        theta: weight of the subtracted pixel, finite (1: pure pixel difference as in the
            paper, 0: vanilla convolution).
        method: engine of the equivalent convolution, as :class:`cnnconv.conv.FFTConv2d`:
            ``"direct"``, ``"fft"`` or ``"auto"`` (planner's choice per input shape). ``rd``
            with a ``padding_mode`` other than ``"zeros"`` always runs direct (its wider
            padding is applied to the input first).

    ``weight`` holds the learnable PDC weight (``state_dict`` keys as ``nn.Conv2d`` and
    PiDiNet); :meth:`equivalent_weight` is the kernel actually applied.
    :meth:`from_kernels` starts from hand-designed equivalent kernels; a weight assignment
    works too, e.g. ``pdc="cd"`` with all-ones weights applies the 8-neighbour Laplacian
    ``ones - 9 * centre``. :func:`cnnconv.conv.convert_back` leaves these layers alone (use
    :meth:`reparameterize`).

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, Hout, Wout)`` as the 3x3 ``nn.Conv2d``
        with the same arguments (also for ``rd``).

    Example:
        >>> layer = PixelDifferenceConv2d(3, 8, pdc="rd", dilation=2, padding=2)
        >>> layer(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    _convert_back = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=3,
        stride=1,
        padding=1,
        dilation=1,
        groups: int = 1,
        bias: bool = False,
        *,
        pdc: str = "cd",
        theta: float = 1.0,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        method: str = "auto",
    ) -> None:
        _check_pdc(pdc)
        theta = _check_theta(theta)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
            method=method,
        )
        _check_kernel_size(pdc, self.kernel_size)
        self.pdc = pdc
        self.theta = theta
        self.kernel_names: list[str] | None = None
        self.init_residuals: list[float] | None = None

    @classmethod
    def from_kernels(
        cls, kernels, in_channels: int = 1, *, pdc: str = "cd", theta: float = 1.0, exact: bool = True, **options: Any
    ) -> PixelDifferenceConv2d:
        """A layer whose *equivalent* kernels are hand-designed kernels, one per output channel.

        Arguments and conventions are those of
        :meth:`cnnconv.learnable.LearnableConv2d.from_kernels` (registry names such as
        ``"sobel_x"``, ``(name, kwargs)`` pairs or tensors; ``channel_mode``; ``noise``;
        ``kernel_names``), plus ``pdc``, ``theta`` and ``exact``. The raw weight of each
        kernel is the least-squares solution (float64, minimum norm) of
        ``pdc_equivalent_weight(raw) = kernel``: ``cd`` (theta 1) reaches every zero-sum kernel,
        ``ad`` (theta 1) every kernel with a zero centre and a zero-sum ring, ``rd`` (theta 1)
        every 5x5 kernel whose inner ring is minus its outer ring with a zero centre.

        Args:
            kernels: as ``LearnableConv2d.from_kernels``; each is centred in the equivalent
                kernel's size (3x3 for ``ad``, 5x5 for ``rd``, the layer's ``kernel_size``
                for ``cd`` / ``cv``).
            in_channels: number of input channels.
            pdc, theta: the pixel-difference type and its theta.
            exact: raise a ValueError when a kernel cannot be reached (relative residual
                above 1e-9); ``False`` keeps the least-squares solution.
            noise: relative noise added to each raw weight (``noise * rms(raw)``), after the
                solve.
            kernel_size: size of the raw weight (default: the largest kernel's size for
                ``cd`` / ``cv``, which must be odd for ``cd``; always 3 for ``ad`` / ``rd``).
            bias, padding, padding_mode, generator, channel_mode, stride, dilation, method,
                device, dtype: as ``LearnableConv2d.from_kernels`` (keyword only, same defaults).

        Returns:
            A :class:`PixelDifferenceConv2d` with ``kernel_names`` and ``init_residuals`` (the
            relative residual ``|equivalent - kernel| / |kernel|`` of each kernel).

        Raises:
            ValueError: a kernel out of the reachable set with ``exact=True`` (the message
                names it and its residual), or any argument error of ``LearnableConv2d``.

        Example:
            >>> from cnnconv import kernels
            >>> layer = PixelDifferenceConv2d.from_kernels(["sobel_x", "sobel_y"], pdc="cd")
            >>> torch.allclose(layer.equivalent_weight()[0, 0], kernels.sobel_x(), atol=1e-6)
            True
        """
        _check_pdc(pdc)
        theta = _check_theta(theta)
        if not isinstance(exact, bool):
            raise TypeError(f"exact must be a bool, got {exact!r}")
        residuals: list[float] = []

        def solve(built, size):
            if size is None:
                size = (3, 3) if pdc in ("ad", "rd") else learnable._largest_size(built)
            _check_kernel_size(pdc, size)
            raw, res = _solve_raw(built, size, pdc, theta, exact)
            residuals.extend(res)
            return raw, size

        layer = learnable._from_kernels(cls, kernels, in_channels, solve, {"pdc": pdc, "theta": theta}, **options)
        layer.init_residuals = residuals
        return layer

    def equivalent_weight(self) -> torch.Tensor:
        """The vanilla kernel applied by :meth:`forward` (differentiable in ``weight``)."""
        return pdc_equivalent_weight(self.weight, self.pdc, self.theta)

    def _equivalent_padding(self):
        """Padding of the equivalent convolution (``rd``: one dilated step more per side)."""
        if self.pdc != "rd":
            return self.padding
        if self.padding == "same":
            return tuple(2 * d for d in self.dilation)
        if self.padding == "valid":
            return self.dilation
        return tuple(p + d for p, d in zip(self.padding, self.dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.equivalent_weight()
        if self.pdc != "rd" or (self.padding == "same" and self.padding_mode == "zeros"):
            # The FFT layer's engine, with the layer's own padding ("same" also fits rd's 5x5).
            return self._conv_forward(x, w, self.bias)
        if self.padding_mode == "zeros":
            # rd: one dilated step more of zeros per side than the 3x3 layer, then its padding.
            dh, dw = self.dilation
            return self._conv_forward(F.pad(x, (dw, dw, dh, dh)), w, self.bias)
        ph, pw = self._equivalent_padding()
        x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
        return F.conv2d(x, w, self.bias, self.stride, 0, self.dilation, self.groups)

    def reparameterize(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the equivalent kernel and the same outputs.

        The new layer holds copies (weight: the equivalent kernel, detached; bias: a copy),
        is in the same training mode, and has kernel 5x5 and padding ``padding + dilation``
        for ``rd``.

        Returns:
            ``nn.Conv2d``.
        """
        with torch.no_grad():
            w = self.equivalent_weight().detach().clone()
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            (int(w.shape[-2]), int(w.shape[-1])),
            stride=(self.stride[0], self.stride[1]),
            padding=self._equivalent_padding(),
            dilation=(self.dilation[0], self.dilation[1]),
            groups=self.groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(w)
            if self.bias is not None and conv.bias is not None:
                conv.bias.copy_(self.bias)
        return conv.train(self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pdc={self.pdc!r}, theta={self.theta}"


def reparameterize_pdc(model: nn.Module) -> nn.Module:
    """Replace every :class:`PixelDifferenceConv2d` of ``model`` (in place) by a plain ``nn.Conv2d``.

    Same convention as :func:`cnnconv.conv.convert_back`: children are replaced in place and
    the model is returned; a PDC layer passed directly is returned reparameterized. Outputs are
    unchanged (to rounding); the new layers hold copies of the parameters (see
    :meth:`PixelDifferenceConv2d.reparameterize`).

    Args:
        model: a module, or a single PDC layer.

    Returns:
        The model, or the new layer.

    Example:
        >>> net = nn.Sequential(PixelDifferenceConv2d(1, 4, pdc="ad"), nn.ReLU())
        >>> type(reparameterize_pdc(net)[0]).__name__
        'Conv2d'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _replace(model, lambda m, _name: m.reparameterize() if isinstance(m, PixelDifferenceConv2d) else None)
