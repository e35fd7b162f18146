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

Example:
    >>> choose_method((1, 3, 512, 512), (3, 1, 31, 31), groups=3)
    'fft'
    >>> choose_method((1, 16, 64, 64), (16, 16, 3, 3))
    'direct'
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

import torch

from cnnconv._utils.io import atomic_write

__all__ = [
    "DEFAULT_CONSTANTS",
    "METHODS",
    "calibrate",
    "calibration_path",
    "choose_method",
    "DIRECT_MARGIN",
    "direct_cost",
    "estimate_costs",
    "fft_cost",
    "load_constants",
]

METHODS = ("direct", "separable", "fft")

#: :func:`choose_method` keeps ``"direct"`` unless another method's estimate is this many times
#: smaller: when the estimates are right, direct is then within this factor of the best anyway.
DIRECT_MARGIN = 1.2

#: Seconds per unit of work, per device type. ``direct_*`` are tables ``[[K, c], ...]`` over the
#: kernel volume K.
DEFAULT_CONSTANTS: dict[str, dict] = {
    # From the baselines of a 2-core AVX-512 CPU (oneDNN direct, pocketfft/MKL FFT). NCHW
    # depthwise F.conv2d is slow per multiply-add except around 15x15 kernels.
    "cpu": {
        "fft": 3.0e-10,
        "matmul": 6.0e-10,
        "matmul_m0": 4.0,
        "elementwise": 1.0e-9,
        "t0_fft": 5.0e-4,
        "t0_direct": 2.0e-5,
        "direct_dense": [[1, 1.3e-10], [9, 3e-11], [81, 1e-10], [225, 1.1e-10], [961, 1.1e-10],
                         [3969, 1.1e-10]],
        "direct_ch0": 0.0,
        # Dense rate tables by channel product Cin/g * Cout (oneDNN is ~100x less efficient per
        # multiply-add with one channel than with 64x64).
        "direct_dense_by_ch": [
            [1, [[1, 1e-9], [9, 7e-10], [25, 4.5e-10], [81, 4.4e-9], [225, 3.9e-9], [961, 2.9e-9],
                 [3969, 2.9e-9]]],
            [16, [[1, 1.2e-10], [9, 1e-10], [25, 1e-10], [81, 1.6e-10], [225, 1e-10],
                  [961, 8e-11], [3969, 8e-11]]],
            [256, [[1, 1.1e-10], [9, 2.4e-11], [25, 1.8e-11], [81, 3e-11], [225, 3e-11],
                   [961, 2.8e-11], [3969, 2.8e-11]]],
            [4096, [[1, 2e-11], [9, 1.8e-11], [25, 1.5e-11], [81, 2.2e-11], [225, 1.6e-11],
                    [961, 1.9e-11], [3969, 1.9e-11]]],
        ],
        "direct_depthwise": [[1, 5e-10], [9, 2e-10], [81, 6e-11], [225, 2e-10], [961, 1.5e-9],
                             [3969, 2.8e-9]],
    },
    "cuda": {
        "fft": 2.0e-12,
        "matmul": 2.0e-12,
        "matmul_m0": 4.0,
        "elementwise": 4.0e-12,
        "t0_fft": 1.0e-4,
        "t0_direct": 2.0e-5,
        "direct_dense": [[1, 1e-13], [9, 1e-13], [225, 2e-13], [961, 4e-13], [3969, 4e-13]],
        "direct_depthwise": [[1, 1e-12], [9, 1e-12], [225, 2e-12], [961, 4e-12], [3969, 4e-12]],
    },
}

_loaded: dict[tuple, dict] = {}


def calibration_path(path: str | os.PathLike | None = None) -> Path:
    """Where the calibration JSON lives: ``path``, else ``$CNNCONV_CACHE_DIR/calibration.json``,
    else ``~/.cache/cnnconv/calibration.json``."""
    if path is not None:
        return Path(path)
    root = os.environ.get("CNNCONV_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "cnnconv"
    return base / "calibration.json"


def load_constants(device_type: str = "cpu", path=None) -> dict:
    """Constants for ``device_type``: the calibration file's if present, else the defaults.

    Without ``path`` the result is kept in memory per cache location (the environment that
    decides it) and device type, so planning decisions do not touch the file system;
    :func:`calibrate` clears it.
    """
    key = (os.environ.get("CNNCONV_CACHE_DIR"), os.environ.get("HOME"), device_type)
    if path is None and key in _loaded:
        return _loaded[key]
    p = calibration_path(path)
    consts = dict(DEFAULT_CONSTANTS.get(device_type, DEFAULT_CONSTANTS["cpu"]))
    try:
        text = p.read_text()
    except OSError:
        text = None
    if text is not None:
        try:
            data = json.loads(text)
            stored = data.get(device_type, {}) if isinstance(data, dict) else None
            if not (isinstance(stored, dict) and all(_valid_constant(k, v)
                                                     for k, v in stored.items())):
                raise ValueError("not a table of cost-model constants")
        except ValueError as exc:
            warnings.warn(
                f"ignoring the calibration file {p} ({exc}); using the default constants",
                stacklevel=2,
            )
        else:
            consts.update(stored)
    if path is None:
        _loaded[key] = consts
    return consts


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf


def _valid_table(table) -> bool:
    return isinstance(table, list) and bool(table) and all(
        isinstance(row, list) and len(row) == 2 and _positive(row[0]) and _positive(row[1])
        for row in table
    )


def _valid_constant(key: str, value) -> bool:
    """Whether a stored constant has the type the cost model reads (unknown keys are kept)."""
    if key == "direct_dense_by_ch":
        return isinstance(value, list) and bool(value) and all(
            isinstance(row, list) and len(row) == 2 and _positive(row[0]) and _valid_table(row[1])
            for row in value
        )
    if key.startswith("direct_") and key != "direct_ch0":
        return _valid_table(value)
    if key in ("direct_ch0", "matmul_m0") or key.startswith("t0_"):
        return _positive(value) or value == 0
    return _positive(value) if key in ("fft", "matmul", "elementwise") else True


def _interp(table, K: float) -> float:
    pts = sorted(table)
    if K <= pts[0][0]:
        return pts[0][1]
    for (k0, c0), (k1, c1) in zip(pts, pts[1:]):
        if K <= k1:
            t = (math.log(K) - math.log(k0)) / (math.log(k1) - math.log(k0))
            return math.exp((1 - t) * math.log(c0) + t * math.log(c1))
    return pts[-1][1]


def fft_cost(batch, cin, cout, cin_g, n: Sequence[int], consts: dict | None = None) -> float:
    """Estimated seconds of one FFT correlation at transform size ``n`` (see module docs)."""
    c = consts if consts is not None else load_constants("cpu")
    P = math.prod(n)
    Pf = P // n[-1] * (n[-1] // 2 + 1)
    transforms = (batch * cin + batch * cout + cout * cin_g) * P * math.log2(max(P, 2))
    if cin_g == 1:
        mix = c["elementwise"]
    else:  # small batched products (M = batch rows per frequency) run below the peak rate
        mix = c["matmul"] * (1.0 + c.get("matmul_m0", 4.0) / max(batch, 1))
    return c["fft"] * transforms + mix * batch * cout * cin_g * Pf + c["t0_fft"]


def direct_cost(batch, cout, cin_g, out_size, kernel, consts: dict | None = None,
                cin: int | None = None) -> float:
    """Estimated seconds of the direct convolution (see module docs)."""
    c = consts if consts is not None else load_constants("cpu")
    K = math.prod(kernel)
    macs = batch * cout * cin_g * math.prod(out_size) * K
    by_ch = c.get("direct_dense_by_ch")
    if cin_g == 1 and ((cin or cin_g) > 1 or cout > 1 or not by_ch):
        rate = _interp(c["direct_depthwise"], K)
    elif by_ch:  # dense (or a single channel): interpolate the tables in log(Cin/g * Cout)
        rate = _interp([[p, _interp(t, K)] for p, t in by_ch], cin_g * cout)
    else:
        rate = _interp(c["direct_dense"], K)
    # layers with few channels run far below the many-channel rate
    rate *= 1.0 + c.get("direct_ch0", 0.0) / ((cin or cin_g) * cout)
    return rate * macs + c["t0_direct"]


def _tuple(v, nd, name):
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int or a tuple, got {v!r}")
    if isinstance(v, int):
        return (v,) * nd
    if isinstance(v, (tuple, list)) and len(v) in (1, nd):
        return tuple(int(a) for a in v) * (nd if len(v) == 1 else 1)
    raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")


def estimate_costs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    groups: int = 1,
    stride=1,
    dilation=1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    separable: bool = False,
    full: bool = False,
    padding=None,
) -> dict[str, float]:
    """Estimated seconds of each applicable method.

    Args:
        input_shape: ``(B, Cin, *S)`` with one, two or three spatial dims (``(Cin, *S)`` is read as
            one image).
        weight_shape: ``(Cout, Cin/groups, *k)``; a bare kernel ``(*k)`` means one shared kernel
            applied to every channel (depthwise).
        groups: channel groups.
        stride: int or tuple.
        dilation: int or tuple.
        dtype: the computation's dtype (float64 doubles the per-operation constants).
        device: the computation's device; picks the constant set (``cpu`` or ``cuda``).
        separable: whether the kernel is rank 1 (then ``"separable"`` is estimated too).
        full: ``full`` output (padding ``k-1`` on both sides) instead of ``same``.
        padding: explicit padding (int, tuple, ``"same"``, ``"valid"``, ``"causal"`` (1-D: all
            ``dilation * (k-1)`` before)); overrides ``full``.

    Returns:
        ``{"direct": s, "fft": s}`` and ``"separable"`` when ``separable`` is true.

    Example:
        >>> sorted(estimate_costs((1, 1, 64, 64), (1, 1, 5, 5)))
        ['direct', 'fft']
    """
    from cnnconv.fft import DEFAULT_MEMORY_BUDGET, _make_plan

    shape = tuple(int(s) for s in input_shape)
    wshape = tuple(int(s) for s in weight_shape)
    if len(shape) < 2:
        raise ValueError(f"input_shape must be (B, C, *spatial), got {input_shape!r}")
    nd = len(wshape) - 2 if len(wshape) >= 3 else len(wshape)
    if len(shape) == nd + 1:
        shape = (1,) + shape
    if len(shape) != nd + 2:
        raise ValueError(
            f"input_shape {input_shape!r} does not match weight_shape {weight_shape!r}"
        )
    batch, cin = shape[:2]
    spatial = shape[2:]
    if len(wshape) == nd:
        cout, cin_g, ks, groups = cin, 1, wshape, cin
    else:
        cout, cin_g, ks = wshape[0], wshape[1], wshape[2:]
        if cin_g * groups != cin:
            raise ValueError(
                f"input_shape {input_shape!r} has {cin} channels but weight_shape "
                f"{weight_shape!r} with groups={groups} expects {cin_g * groups}"
            )
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    kd = tuple(d * (k - 1) + 1 for k, d in zip(ks, dilation))
    if padding is None:
        padding = tuple(k - 1 for k in kd) if full else "same"
    if padding == "same":
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kd]
    elif padding == "valid":
        pads = [(0, 0)] * nd
    elif padding == "causal":
        pads = [(k - 1, 0) for k in kd]
    else:
        pads = [(p, p) for p in _tuple(padding, nd, "padding")]
    dense = tuple(max(1, s + pb + pa - k + 1) for s, (pb, pa), k in zip(spatial, pads, kd))
    out = tuple((L - 1) // s + 1 for L, s in zip(dense, stride))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    consts = load_constants(dev.type)
    scale = 2.0 if dtype == torch.float64 else 1.0

    costs = {"direct": scale * direct_cost(batch, cout, cin_g, out, ks, consts, cin=cin)}
    item = 16 if dtype == torch.float64 else 8
    plan = _make_plan(
        batch, cin, cout, cin_g, spatial, pads, kd, dense, item, DEFAULT_MEMORY_BUDGET, consts
    )
    cost = plan.cost
    costs["fft"] = scale * cost
    if separable:
        K = math.prod(ks)
        macs = batch * cout * math.prod(out) * sum(ks)
        table = consts["direct_depthwise"]
        costs["separable"] = scale * (
            sum(_interp(table, k) for k in ks) / nd * macs + nd * consts["t0_direct"]
        )
        del K
    return costs


def choose_method(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    groups: int = 1,
    stride=1,
    dilation=1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    separable: bool = False,
    full: bool = False,
    padding=None,
) -> str:
    """The cheapest of ``"direct"``, ``"separable"`` (when allowed) and ``"fft"``.

    Arguments as :func:`estimate_costs`.

    Returns:
        The name of the method with the smallest estimated time.

    Example:
        >>> choose_method((8, 16, 128, 128), (16, 16, 31, 31))
        'fft'
    """
    costs = estimate_costs(
        input_shape,
        weight_shape,
        groups=groups,
        stride=stride,
        dilation=dilation,
        dtype=dtype,
        device=device,
        separable=separable,
        full=full,
        padding=padding,
    )
    taps = weight_shape[2:] if len(weight_shape) >= 3 else weight_shape  # bare kernel: all taps
    if all(int(k) == 1 for k in taps):
        # A one-tap kernel is a per-pixel (channel) product: a transform only adds work. The
        # model can say otherwise where F.conv2d's rate for it is poor (depthwise NCHW), but
        # both are then far from the real cost of such a product.
        return "direct"
    best = min(costs, key=costs.get)
    # Near the crossover the estimates are least reliable and direct is the safer choice (no
    # transform start-up, exact, no NaN spreading): it is kept unless another method is
    # estimated to be more than DIRECT_MARGIN times faster.
    if costs["direct"] <= DIRECT_MARGIN * costs[best]:
        return "direct"
    return best


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _median3(table):
    """Median of each point and its neighbours: one timing disturbed by other load cannot bend
    the table."""
    vals = [c for _, c in table]
    out = []
    for i, (k, c) in enumerate(table):
        win = sorted(vals[max(0, i - 1):i + 2])
        out.append([k, win[len(win) // 2]])
    return out


def calibrate(path=None, quick: bool = False, device=None) -> dict:
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
    import torch.nn.functional as F

    from cnnconv.fft import _kernel_spectrum, _mix

    dev = torch.device(device) if device is not None else torch.device("cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    repeat = 3 if quick else 6
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    def timed(fn):
        def run():
            fn()
            sync()

        return _time(run, repeat)

    consts = dict(DEFAULT_CONSTANTS.get(dev.type, DEFAULT_CONSTANTS["cpu"]))
    from cnnconv.fft import _irfftn, _rfftn

    fft_sizes = [(4, 8, 64), (2, 4, 256)] if quick else [(8, 8, 64), (4, 4, 256), (1, 4, 512)]
    per = []
    for b, c, n in fft_sizes:
        x = rand(b, c, n, n)
        with torch.no_grad():
            t = timed(lambda: _irfftn(_rfftn(x, (n, n)), (n, n)))
        per.append(t / (2 * b * c * n * n * math.log2(n * n)))
    consts["fft"] = sorted(per)[len(per) // 2]

    per_mm, per_ew = [], []
    for b, c, n in ([(8, 16, 64)] if quick else [(8, 16, 64), (4, 32, 64), (16, 8, 32)]):
        X = torch.fft.rfftn(rand(b, c, n, n), dim=(-2, -1))
        W = _kernel_spectrum(rand(c, c, 3, 3), (n, n), 1)
        f = n * (n // 2 + 1)
        rows = 1 + consts["matmul_m0"] / b
        per_mm.append(timed(lambda: _mix(X, W, 1)) / (b * c * c * f) / rows)
        Wd = _kernel_spectrum(rand(c, 1, 3, 3), (n, n), c)
        per_ew.append(timed(lambda: _mix(X, Wd, c)) / (b * c * f))
    consts["matmul"] = sorted(per_mm)[len(per_mm) // 2]
    consts["elementwise"] = sorted(per_ew)[len(per_ew) // 2]

    x = rand(1, 1, 8, 8)
    w = rand(1, 1, 3, 3)
    consts["t0_direct"] = timed(lambda: F.conv2d(x, w))
    from cnnconv.fft import fft_conv2d

    consts["t0_fft"] = timed(lambda: fft_conv2d(x, w))

    ks = [1, 3, 7, 15, 31] if quick else [1, 3, 5, 7, 11, 15, 21, 31, 45, 63]
    dense, depth = [], []
    for k in ks:
        size = 32 if quick else 48
        c = 8
        x = rand(2, c, size + k - 1, size + k - 1)
        w = rand(c, c, k, k)
        t = timed(lambda: F.conv2d(x, w))
        per_mac = max(t - consts["t0_direct"], t * 0.1) / (2 * c * c * size * size * k * k)
        dense.append([k * k, per_mac / (1 + consts.get("direct_ch0", 0.0) / (c * c))])
        size = 64 if quick else 128
        x = rand(1, 3, size + k - 1, size + k - 1)
        w = rand(3, 1, k, k)
        t = timed(lambda: F.conv2d(x, w, groups=3))
        depth.append([k * k, max(t - consts["t0_direct"], t * 0.1) / (3 * size * size * k * k)])
    consts["direct_dense"] = _median3(dense)
    consts["direct_depthwise"] = _median3(depth)

    # Dense rate by channel product: few channels run far below the many-channel rate.
    by_ch = []
    for c in (1, 4, 16, 64):
        size = 24 if quick else 40
        table = []
        for k in (ks if c < 64 else [k for k in ks if k <= 31]):
            x = rand(1, c, size + k - 1, size + k - 1)
            w = rand(c, c, k, k)
            t = timed(lambda: F.conv2d(x, w))
            macs = c * c * size * size * k * k
            table.append([k * k, max(t - consts["t0_direct"], t * 0.1) / macs])
        by_ch.append([c * c, _median3(table)])
    consts["direct_dense_by_ch"] = by_ch

    # End-to-end check of the FFT terms: the engine's copies and layout changes are not in the
    # component timings, so scale the FFT constants by measured / modelled time of whole calls.
    from cnnconv.fft import _plan_for

    ratios = []
    cases = [((2, 8, 64, 64), (8, 8, 15, 15), 1), ((2, 4, 128, 128), (4, 1, 31, 31), 4)]
    if not quick:
        cases += [((4, 16, 96, 96), (16, 16, 21, 21), 1), ((1, 3, 256, 256), (3, 1, 31, 31), 3)]
    for xs, ws, ng in cases:
        x, w = rand(*xs), rand(*ws)
        pad = ws[-1] // 2
        with torch.no_grad():
            t = timed(lambda: fft_conv2d(x, w, padding=pad, groups=ng))
        plan = _plan_for(x, w, padding=pad, groups=ng)
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
    _loaded.clear()
    return consts
