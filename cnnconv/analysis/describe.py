"""Measure one kernel: :func:`describe_kernel` and :func:`frequency_response`.

A 2-D kernel gets its DC gain, L2 norm, symmetry, separability, dominant orientation, peak
spatial frequency and frequency response on a grid; a 1-D kernel its DC gain, L2 norm, symmetry,
decay (lengths holding 90%/99% of the energy, fitted exponential rate), one-sidedness and
bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from cnnconv.analysis._common import _as_kernel

__all__ = ["KernelDescription", "KernelDescription1d", "describe_kernel", "frequency_response"]


@dataclass
class _Properties:
    """Base of the descriptions: the fields they share (their first ones, documented in each
    description) and all their fields as JSON."""

    shape: tuple
    dc_gain: float
    l2_norm: float
    symmetry: float
    antisymmetry: float

    def to_dict(self, include_response: bool = False) -> dict:
        """Properties as JSON-ready Python types (``nan`` becomes ``None``, tuples lists).

        Args:
            include_response: also include the frequency response and its frequencies.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                if include_response:
                    out[f.name] = v.cpu().tolist()
            elif isinstance(v, tuple):
                out[f.name] = list(v)
            else:
                out[f.name] = None if isinstance(v, float) and not math.isfinite(v) else v
        return out


def frequency_response(k: Any, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Magnitude of the kernel's frequency response on a ``size x size`` grid.

    The kernel is zero-padded to ``size x size`` and transformed; the magnitude is the same for
    correlation and convolution. The result is centred (``fftshift``): the zero frequency is at
    index ``size // 2``.

    Args:
        k: kernel ``(kh, kw)``.
        size: grid size, at least the kernel's largest side.

    Returns:
        ``(magnitude, frequencies)``: ``magnitude`` of shape ``(size, size)`` indexed
        ``[fy, fx]`` and ``frequencies`` of shape ``(size,)`` in cycles/pixel, from -0.5.

    Example:
        >>> from cnnconv import kernels
        >>> mag, f = frequency_response(kernels.box(3), size=8)
        >>> round(float(mag[4, 4]), 6)  # DC gain of a normalised box
        1.0
    """
    k = _as_kernel(k)
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < max(k.shape):
        raise ValueError(f"size must be at least the kernel size {max(k.shape)}, got {size}")
    spectrum = torch.fft.fft2(k, s=(size, size))
    mag = torch.fft.fftshift(spectrum.abs())
    freqs = torch.fft.fftshift(torch.fft.fftfreq(size, dtype=torch.float64, device=k.device))
    return mag, freqs


@dataclass
class KernelDescription(_Properties):
    """Properties of one kernel, from :func:`describe_kernel`.

    Attributes:
        shape: ``(kh, kw)``.
        dc_gain: sum of the weights (response to a constant image).
        l2_norm: Euclidean norm of the weights.
        symmetry: share of the energy in the part even under the 180-degree rotation, in [0, 1].
        antisymmetry: share in the odd part; ``symmetry + antisymmetry == 1``.
        separability: share of the energy in the first singular value (1 for rank 1).
        orientation: degrees in [0, 180) from +x towards +y (rows, downwards) of the intensity
            change the kernel responds to most; ``nan`` when isotropic.
        orientation_strength: coherence ``(l1 - l2) / (l1 + l2)`` of the spectral energy tensor,
            in [0, 1]: 0 isotropic, 1 a single direction; a first derivative of Gaussian gives 0.5
            (its spectral energy is three times larger along its axis than across).
        peak_frequency: radius in cycles/pixel of the largest frequency-response magnitude.
        peak_frequency_xy: ``(fx, fy)`` of that peak (one of the two symmetric peaks).
        peak_gain: the largest frequency-response magnitude.
        frequency_response: ``(n, n)`` magnitude, centred (see :func:`frequency_response`).
        frequencies: ``(n,)`` frequencies in cycles/pixel of the response's axes.
    """

    separability: float
    orientation: float
    orientation_strength: float
    peak_frequency: float
    peak_frequency_xy: tuple
    peak_gain: float
    frequency_response: torch.Tensor = field(repr=False)
    frequencies: torch.Tensor = field(repr=False)


@dataclass
class KernelDescription1d(_Properties):
    """Properties of one 1-D kernel ``(k,)``, from :func:`describe_kernel`.

    Attributes:
        shape: ``(k,)``.
        dc_gain: sum of the taps (response to a constant signal).
        l2_norm: Euclidean norm of the taps.
        symmetry: share of the energy in the part even under reversal, in [0, 1].
        antisymmetry: share in the odd part; ``symmetry + antisymmetry == 1``.
        length_90: taps in the shortest run of consecutive taps holding 90% of the energy.
        length_99: the same for 99%.
        decay_rate: fitted exponential decay rate per tap ``r``, ``|k| ~ exp(-r t)``, measured
            from the largest tap outwards along the side holding more energy (the slope of the
            log of the remaining energy, between 90% and 0.01% of that side's energy); ``nan``
            when fewer than three taps fall in that range.
        side_balance: ``(E_after - E_before) / E`` of the energy after and before the centre,
            in [-1, 1]: near +1 or -1 for a one-sided (causal) kernel, 0 for a balanced one.
        bandwidth_3db: total width in cycles/sample of the frequencies in ``[0, 0.5]`` where the
            magnitude response is within 3 dB of its peak.
        bandwidth_90: the frequency in cycles/sample below which 90% of the spectral energy lies.
        peak_frequency: frequency in cycles/sample of the largest magnitude (the lowest on ties).
        peak_gain: the largest magnitude.
        frequency_response: ``(n // 2 + 1,)`` magnitude on ``n`` zero-padded FFT points.
        frequencies: ``(n // 2 + 1,)`` frequencies in cycles/sample, from 0 to 0.5.
    """

    length_90: int
    length_99: int
    decay_rate: float
    side_balance: float
    bandwidth_3db: float
    bandwidth_90: float
    peak_frequency: float
    peak_gain: float
    frequency_response: torch.Tensor = field(repr=False)
    frequencies: torch.Tensor = field(repr=False)


def _shortest_window(energy: torch.Tensor, fraction: float) -> int:
    """Taps in the shortest run of consecutive taps holding ``fraction`` of the energy."""
    cum = torch.cat([energy.new_zeros(1), torch.cumsum(energy, 0)])
    total = float(cum[-1])
    starts = cum[:-1]
    ok = starts + fraction * total <= total * (1 + 1e-12)
    ends = torch.searchsorted(cum, (starts[ok] + fraction * total * (1 - 1e-12)).contiguous())
    return int((ends - torch.nonzero(ok).squeeze(-1)).min())


def _decay_rate(k: torch.Tensor) -> float:
    peak = int(torch.argmax(k.abs()))
    after, before = k[peak:], k[: peak + 1].flip(0)
    side = after if float((after * after).sum()) >= float((before * before).sum()) else before
    energy = side * side
    remaining = torch.flip(torch.cumsum(torch.flip(energy, (0,)), 0), (0,)) / energy.sum()
    t = torch.nonzero((remaining <= 0.9) & (remaining >= 1e-4)).squeeze(-1)
    if t.numel() < 3:
        return float("nan")
    x = t.to(torch.float64)
    y = torch.log(remaining[t])
    x0 = x - x.mean()
    slope = float((x0 * (y - y.mean())).sum() / (x0 * x0).sum())
    return -0.5 * slope


def _describe_1d(k: torch.Tensor, grid: int) -> KernelDescription1d:
    n = k.numel()
    energy = k * k
    total = float(energy.sum())
    nan = float("nan")
    flipped = k.flip(0)
    even, odd = 0.5 * (k + flipped), 0.5 * (k - flipped)
    size = max(grid, n)
    mag = torch.fft.rfft(k, n=size).abs()
    freqs = torch.fft.rfftfreq(size, dtype=torch.float64, device=k.device)
    peak_gain = float(mag.max())
    peak = int(torch.nonzero(mag >= peak_gain * (1.0 - 1e-9))[0])
    if total > 0:
        half = n // 2
        before, after = float(energy[:half].sum()), float(energy[n - half :].sum())
        power = mag * mag
        # Bins 0 and size/2 stand for one frequency each, the others for a pair (f and -f).
        weight = torch.full_like(power, 2.0)
        weight[0] = 1.0
        if size % 2 == 0:
            weight[-1] = 1.0
        spectral = torch.cumsum(power * weight, 0)
        bandwidth_90 = float(freqs[int(torch.searchsorted(spectral, 0.9 * float(spectral[-1])))])
        bandwidth_3db = float((mag >= peak_gain / math.sqrt(2.0)).sum()) / size
        symmetry = float((even * even).sum()) / total
        antisymmetry = float((odd * odd).sum()) / total
        stats: dict[str, Any] = {
            "symmetry": symmetry,
            "antisymmetry": antisymmetry,
            "length_90": _shortest_window(energy, 0.9),
            "length_99": _shortest_window(energy, 0.99),
            "decay_rate": _decay_rate(k),
            "side_balance": (after - before) / total,
            "bandwidth_3db": bandwidth_3db,
            "bandwidth_90": bandwidth_90,
        }
    else:
        stats = {
            "symmetry": nan,
            "antisymmetry": nan,
            "length_90": 0,
            "length_99": 0,
            "decay_rate": nan,
            "side_balance": nan,
            "bandwidth_3db": nan,
            "bandwidth_90": nan,
        }
    return KernelDescription1d(
        shape=(n,),
        dc_gain=float(k.sum()),
        l2_norm=math.sqrt(total),
        **stats,
        peak_frequency=float(freqs[peak]),
        peak_gain=peak_gain,
        frequency_response=mag,
        frequencies=freqs,
    )


def describe_kernel(k: Any, *, grid: int = 64) -> KernelDescription | KernelDescription1d:
    """Measure the properties of a 2-D kernel.

    Symmetry scores split the kernel into its part even and odd under the 180-degree rotation
    (``e = (k + rot180(k)) / 2``, ``o = (k - rot180(k)) / 2``; they are orthogonal) and report
    each part's share of the energy. Orientation is the principal axis of the spectral energy
    tensor ``sum |H(f)|^2 f f^T`` over the frequency grid (``f = (fx, fy)``, fy downwards), so
    ``sobel_x`` is 0 degrees and ``sobel_y`` 90.

    A 1-D kernel ``(k,)`` gets a :class:`KernelDescription1d` instead, computed in 1-D (memory
    and time linear in ``k`` up to a log factor).

    Args:
        k: kernel ``(kh, kw)`` or ``(k,)``, any device.
        grid: size of the zero-padded frequency grid (at least the kernel's largest side).

    Returns:
        A :class:`KernelDescription` (2-D) or :class:`KernelDescription1d` (1-D). For an
        all-zero kernel the scores are ``nan``.

    Raises:
        ValueError: not 1-D or 2-D, empty, over the size limits, or not finite.

    Example:
        >>> from cnnconv import kernels
        >>> d = describe_kernel(kernels.sobel_x())
        >>> d.dc_gain, round(d.antisymmetry, 6), round(d.separability, 6), round(d.orientation, 6)
        (0.0, 1.0, 1.0, 0.0)
    """
    k = _as_kernel(k, allow_1d=True)
    if isinstance(grid, bool) or not isinstance(grid, int):
        raise TypeError(f"grid must be an int, got {grid!r}")
    if k.ndim == 1:
        return _describe_1d(k, grid)
    grid = max(grid, max(k.shape))
    energy = float((k * k).sum())
    nan = float("nan")
    flipped = torch.rot90(k, 2, (0, 1))
    even = 0.5 * (k + flipped)
    odd = 0.5 * (k - flipped)
    if energy > 0:
        symmetry = float((even * even).sum()) / energy
        antisymmetry = float((odd * odd).sum()) / energy
        s = torch.linalg.svdvals(k)
        separability = float(s[0] ** 2 / (s * s).sum())
    else:
        symmetry = antisymmetry = separability = nan

    mag, freqs = frequency_response(k, grid)
    fy, fx = torch.meshgrid(freqs, freqs, indexing="ij")
    power = mag * mag
    jxx = float((power * fx * fx).sum())
    jyy = float((power * fy * fy).sum())
    # On an even grid the Nyquist frequency -0.5 is also +0.5: its cross term averages to zero,
    # which keeps the estimate exactly consistent under flips and transposes.
    nyquist = (fx.abs() == 0.5) | (fy.abs() == 0.5)
    jxy = float(torch.where(nyquist, 0.0, power * fx * fy).sum())
    trace = jxx + jyy
    spread = math.hypot(jxx - jyy, 2.0 * jxy)
    if trace > 0 and spread > 1e-6 * trace:
        orientation = math.degrees(0.5 * math.atan2(2.0 * jxy, jxx - jyy)) % 180.0
        # A value a hair below 180 is the same axis as 0.
        if orientation > 180.0 - 1e-9:
            orientation = 0.0
        strength = spread / trace
    else:
        orientation = nan
        strength = 0.0 if energy > 0 else nan

    # Peak: the largest magnitude; among (near) ties prefer the lowest frequency, then fx >= 0, fy >= 0.
    peak_gain = float(mag.max())
    radius = torch.sqrt(fx * fx + fy * fy)
    candidates = mag >= peak_gain * (1.0 - 1e-9)
    key = torch.where(candidates, radius - 1e-6 * ((fx >= 0).double() + (fy >= 0).double()), torch.inf)
    idx = int(torch.argmin(key))
    iy, ix = divmod(idx, grid)
    pfx, pfy = float(freqs[ix]), float(freqs[iy])

    return KernelDescription(
        shape=tuple(k.shape),
        dc_gain=float(k.sum()),
        l2_norm=math.sqrt(energy),
        symmetry=symmetry,
        antisymmetry=antisymmetry,
        separability=separability,
        orientation=orientation,
        orientation_strength=strength,
        peak_frequency=math.hypot(pfx, pfy),
        peak_frequency_xy=(pfx, pfy),
        peak_gain=peak_gain,
        frequency_response=mag,
        frequencies=freqs,
    )
