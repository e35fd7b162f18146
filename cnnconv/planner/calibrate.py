"""Calibration: fit the cost-model constants on the running machine and store them.

Example:
    >>> calibration_path("/tmp/my-calibration.json").name  # where calibrate(path) writes
    'my-calibration.json'
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from cnnconv._utils.calibration import (
    DEFAULT_CONSTANTS,
    calibration_path,
    forget_loaded,
)
from cnnconv._utils.io import atomic_write
from cnnconv.fft.backend import irfftn, rfftn
from cnnconv.fft.cost import fft_cost
from cnnconv.fft.functional import fft_conv2d
from cnnconv.fft.plan import plan_for
from cnnconv.fft.spectral import kernel_spectrum, mix

__all__ = ["calibrate"]


def _time(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _median3(table: list[list[float]]) -> list[list[float]]:
    """Median of each point and its neighbours: one timing disturbed by other load cannot bend
    the table."""
    vals = [c for _, c in table]
    out = []
    for i, (k, _) in enumerate(table):
        win = sorted(vals[max(0, i - 1) : i + 2])
        out.append([k, win[len(win) // 2]])
    return out


def _fft_round_trip(x: torch.Tensor, n: tuple[int, int]) -> torch.Tensor:
    return irfftn(rfftn(x, n), n)


def calibrate(path: Any = None, quick: bool = False, device: Any = None) -> dict:
    """Fit the cost-model constants on this machine and store them as JSON.

    Times real FFTs, the spectral products and direct convolutions (dense and depthwise, over a
    range of kernel sizes), divides each time by its operation count and keeps the median.

    Args:
        path: where to write (default :func:`calibration_path`).
        quick: fewer and smaller measurements (a few seconds instead of about a minute).
        device: the device to calibrate (default CPU).

    Returns:
        The fitted constants for the device type.

    Example:
        >>> calibration_path("/tmp/my-calibration.json").name  # where calibrate(path) writes
        'my-calibration.json'
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    repeat = 3 if quick else 6
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(dev)

    def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """Best time of ``fn(*args, **kwargs)`` (the arguments are bound now, not looked up later)."""

        def run() -> None:
            fn(*args, **kwargs)
            sync()

        return _time(run, repeat)

    consts = dict(DEFAULT_CONSTANTS.get(dev.type, DEFAULT_CONSTANTS["cpu"]))
    fft_sizes = [(4, 8, 64), (2, 4, 256)] if quick else [(8, 8, 64), (4, 4, 256), (1, 4, 512)]
    per = []
    for b, c, n in fft_sizes:
        x = rand(b, c, n, n)
        with torch.no_grad():
            t = timed(_fft_round_trip, x, (n, n))
        per.append(t / (2 * b * c * n * n * math.log2(n * n)))
    consts["fft"] = sorted(per)[len(per) // 2]

    per_mm, per_ew = [], []
    for b, c, n in [(8, 16, 64)] if quick else [(8, 16, 64), (4, 32, 64), (16, 8, 32)]:
        X = torch.fft.rfftn(rand(b, c, n, n), dim=(-2, -1))
        W = kernel_spectrum(rand(c, c, 3, 3), (n, n), 1)
        f = n * (n // 2 + 1)
        rows = 1 + consts["matmul_m0"] / b
        per_mm.append(timed(mix, X, W, 1) / (b * c * c * f) / rows)
        Wd = kernel_spectrum(rand(c, 1, 3, 3), (n, n), c)
        per_ew.append(timed(mix, X, Wd, c) / (b * c * f))
    consts["matmul"] = sorted(per_mm)[len(per_mm) // 2]
    consts["elementwise"] = sorted(per_ew)[len(per_ew) // 2]

    x = rand(1, 1, 8, 8)
    w = rand(1, 1, 3, 3)
    consts["t0_direct"] = timed(F.conv2d, x, w)
    consts["t0_fft"] = timed(fft_conv2d, x, w)

    ks = [1, 3, 7, 15, 31] if quick else [1, 3, 5, 7, 11, 15, 21, 31, 45, 63]
    dense, depth = [], []
    for k in ks:
        size = 32 if quick else 48
        c = 8
        x = rand(2, c, size + k - 1, size + k - 1)
        w = rand(c, c, k, k)
        t = timed(F.conv2d, x, w)
        per_mac = max(t - consts["t0_direct"], t * 0.1) / (2 * c * c * size * size * k * k)
        dense.append([k * k, per_mac / (1 + consts.get("direct_ch0", 0.0) / (c * c))])
        size = 64 if quick else 128
        x = rand(1, 3, size + k - 1, size + k - 1)
        w = rand(3, 1, k, k)
        t = timed(F.conv2d, x, w, groups=3)
        depth.append([k * k, max(t - consts["t0_direct"], t * 0.1) / (3 * size * size * k * k)])
    consts["direct_dense"] = _median3(dense)
    consts["direct_depthwise"] = _median3(depth)

    # Dense rate by channel product: few channels run far below the many-channel rate.
    by_ch = []
    for c in (1, 4, 16, 64):
        size = 24 if quick else 40
        table = []
        for k in ks if c < 64 else [k for k in ks if k <= 31]:
            x = rand(1, c, size + k - 1, size + k - 1)
            w = rand(c, c, k, k)
            t = timed(F.conv2d, x, w)
            macs = c * c * size * size * k * k
            table.append([k * k, max(t - consts["t0_direct"], t * 0.1) / macs])
        by_ch.append([c * c, _median3(table)])
    consts["direct_dense_by_ch"] = by_ch

    # End-to-end check of the FFT terms: the engine's copies and layout changes are not in the
    # component timings, so scale the FFT constants by measured / modelled time of whole calls.
    ratios = []
    cases = [((2, 8, 64, 64), (8, 8, 15, 15), 1), ((2, 4, 128, 128), (4, 1, 31, 31), 4)]
    if not quick:
        cases += [((4, 16, 96, 96), (16, 16, 21, 21), 1), ((1, 3, 256, 256), (3, 1, 31, 31), 3)]
    for xs, ws, ng in cases:
        x, w = rand(*xs), rand(*ws)
        pad = ws[-1] // 2
        with torch.no_grad():
            t = timed(fft_conv2d, x, w, padding=pad, groups=ng)
        plan = plan_for(x, w, padding=pad, groups=ng)
        batch = xs[0] * (math.prod(plan["counts"]) if plan["tiled"] else 1)
        model = fft_cost(batch, xs[1], ws[0], ws[1], plan["n"], consts) - consts["t0_fft"]
        ratios.append(max(t - consts["t0_fft"], 0.5 * t) / model)
    scale = sorted(ratios)[len(ratios) // 2]
    for key in ("fft", "matmul", "elementwise"):
        consts[key] *= scale

    p = calibration_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(p.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[dev.type] = consts
    atomic_write(p, json.dumps(data, indent=1))
    forget_loaded()
    return consts
