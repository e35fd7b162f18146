"""How a convolution is computed: direct, separable or FFT, chosen from a calibrated cost model.

The model has the form of ``scipy.signal.choose_conv_method``: the estimated time of each method
is a count of elementary operations times a constant measured on the machine, and the cheapest
estimate wins. For an input ``(B, Cin, *S)``, weight ``(Cout, Cin/g, *k)`` (``g`` groups, spatial
dilation spreading ``k`` to ``kd``), output ``(B, Cout, *O)`` after stride:

* **direct**: ``t = c_direct(kind, K, Cin/g * Cout) * (1 + ch0 / (Cin * Cout)) * B * Cout *
  (Cin/g) * prod(O) * prod(k) + t0_direct`` (``ch0`` is a hook for a channel-count penalty; 0
  by default), multiply-adds of the (strided) output. ``kind`` is ``dense`` or ``depthwise``
  (one input channel per group, more than one channel); ``c_direct`` is a table over the kernel
  volume ``K = prod(k)``, interpolated in ``log K``, because oneDNN switches algorithms with the
  kernel size (a 31x31 depthwise kernel costs ten times more per multiply-add than a 15x15
  one). For dense layers (and a single channel) there is one such table per channel product
  ``Cin/g * Cout`` (1, 16, 256, 4096), interpolated in its logarithm too: per multiply-add a
  one-channel convolution is about a hundred times slower than a 64->64 one.
* **separable** (rank-1 kernels, depthwise): ``t = c_direct(depthwise, k) * B * C * prod(O') *
  sum(k)``: two 1-D passes.
* **fft**: ``t = c_fft * (B*Cin + B*Cout + Cout*Cin/g) * P * log2(P) + c_mix * B * Cout * (Cin/g)
  * P_f + t0_fft``, where ``P = prod(N)`` is the transform size (5-smooth lengths covering the
  padded input, or overlap-save tiles when memory demands), ``P_f = P / N_last * (N_last/2 + 1)``
  the number of complex frequencies, and ``c_mix`` is ``c_matmul`` (batched complex matrix
  products, times ``1 + m0 / B`` because products with few rows per frequency run below the
  peak rate) or ``c_elementwise`` (depthwise). The FFT computes every output position and then
  subsamples for stride, which this counts. ``P`` and the batch are those of the plan the
  engine would run: for a large image with a dense layer, overlap-save tiles (batch = images x
  tiles) are usually cheaper than one image-sized transform.

:func:`choose_method` returns the cheapest estimate, except that it keeps ``"direct"`` unless
another method is estimated to be more than :data:`DIRECT_MARGIN` (1.2) times faster: if the
estimates are right, direct is then within 1.2x of the best anyway, and near the crossover,
where the estimates are least reliable, direct has no transform start-up and no NaN spreading.

:func:`calibrate` times each term on the running machine, fits the constants (the median of
measured time over operation count for each term), and stores them as JSON in
``$CNNCONV_CACHE_DIR/calibration.json`` or ``~/.cache/cnnconv/calibration.json`` (written to a
temporary file and renamed). Without a calibration file the defaults below, measured on a
2-core AVX-512 CPU with oneDNN/MKL, are used; CUDA has its own defaults.

Modules: :mod:`~cnnconv.planner.cost` (the estimates and the choice) and
:mod:`~cnnconv.planner.calibrate`; the FFT terms are :mod:`cnnconv.fft.cost`'s, priced on the
very plan the engine runs (:mod:`cnnconv.fft.plan`), and the constants are read by
:mod:`cnnconv._utils.calibration`.

Example:
    >>> choose_method((1, 3, 512, 512), (3, 1, 31, 31), groups=3)
    'fft'
    >>> choose_method((1, 16, 64, 64), (16, 16, 3, 3))
    'direct'
"""

from __future__ import annotations

from cnnconv._utils.calibration import (
    DEFAULT_CONSTANTS,
    calibration_path,
    load_constants,
)
from cnnconv.fft.cost import fft_cost

from .calibrate import calibrate
from .cost import DIRECT_MARGIN, METHODS, choose_method, direct_cost, estimate_costs

__all__ = [
    "DEFAULT_CONSTANTS",
    "DIRECT_MARGIN",
    "METHODS",
    "calibrate",
    "calibration_path",
    "choose_method",
    "direct_cost",
    "estimate_costs",
    "fft_cost",
    "load_constants",
]
