"""The transform floor of FFT convolution: ``python -m experiments.bench_fft --sections floor``.

An FFT convolution cannot be cheaper than a real forward transform of every input plane and an
inverse transform of every output plane at the transform size it needs. This section times that
bare round trip (``torch.fft.rfftn`` + ``irfftn``, and ``scipy.fft`` with ``workers`` set to the
torch thread count) on the very planes of each case, beside cnnconv's forward and
``scipy.signal.fftconvolve``, and prints cnnconv / floor (the floor is the faster backend's round
trip). Everything beyond the floor is overhead: padding copies, spectral products, crops, plans.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnconv.fft import fft_conv1d, fft_conv2d, next_fast_len

from .common import require
from .timing import ms, table, timeit


def _cases(seed_n: int, quick: bool):
    """``(name, cnnconv forward, planes, transform size, scipy.signal.fftconvolve call)``."""
    signal = require("scipy.signal")
    rng = np.random.default_rng(0)
    for k in (31,) if quick else (31, 63):
        x = torch.from_numpy(rng.standard_normal((4, 3, 512, 512)).astype(np.float32))
        w = torch.from_numpy(rng.standard_normal((3, 1, k, k)).astype(np.float32))
        xn, wn = x.numpy(), w.numpy()[None, :, 0, ::-1, ::-1].copy()
        yield (
            f"depthwise 4x3x512^2 k={k}",
            lambda x=x, w=w: fft_conv2d(x, w, padding="same", groups=3),
            x,
            tuple(next_fast_len(512 + k - 1) for _ in range(2)),
            lambda xn=xn, wn=wn: signal.fftconvolve(xn, wn, mode="same", axes=(-2, -1)),
        )
    n = seed_n
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x1, w1 = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    yield (
        f"1-D {n:,} * {n:,} full",
        lambda: fft_conv1d(x1, w1, padding=n - 1),
        x1,
        (next_fast_len(2 * n - 1),),
        lambda: signal.fftconvolve(a, b[::-1]),
    )


def section_floor(args) -> None:
    """Print cnnconv's forward against the bare transform round trip and scipy's fftconvolve."""
    sfft = require("scipy.fft")
    workers = torch.get_num_threads()
    rows = []
    for name, ours, planes, size, scipy_conv in _cases(args.seed_n, args.quick):
        dims = tuple(range(-len(size), 0))
        xn = planes.numpy()
        t_ours = timeit(ours, repeat=5)
        t_torch = timeit(lambda: torch.fft.irfftn(torch.fft.rfftn(planes, s=size, dim=dims), s=size, dim=dims), repeat=5)
        t_scipy = timeit(
            lambda: sfft.irfftn(sfft.rfftn(xn, s=size, axes=dims, workers=workers), s=size, axes=dims, workers=workers),
            repeat=5,
        )
        t_conv = timeit(scipy_conv, repeat=5)
        floor = min(t_torch, t_scipy)
        rows.append([name, "x".join(map(str, size)), ms(t_ours), ms(t_torch), ms(t_scipy), ms(t_conv),
                     t_ours / floor, t_ours / t_conv])
    table(
        f"Transform floor, forward, float32, {workers} threads: time (ms); floor = the faster bare "
        "rfftn+irfftn round trip on the same planes (targets: cnnconv/floor <= 1.3; "
        "cnnconv/fftconvolve <= 0.7 depthwise, <= 0.8 1-D)",
        ["case", "transform", "cnnconv", "torch.fft round trip", "scipy.fft round trip",
         "scipy fftconvolve", "cnnconv/floor", "cnnconv/fftconvolve"],
        rows,
    )
