"""FFT convolution benchmark: the seed comparison, sweeps with plots, 2-D cases, memory, auto.

Run ``python -m experiments.bench_fft`` (all sections) or pick sections, e.g.
``python -m experiments.bench_fft --sections seed,cases2d``. Every table is printed as markdown
with ratios measured in the same run. Figures go to ``--out`` (default: a new folder
``runs/bench_fft/<timestamp>``; an existing folder is never reused).

Sections:

* ``seed``: two 100,000-sample arrays, full correlation: ``F.conv1d`` (direct, timed once; about
  40 s on a 2-core CPU, skip with ``--skip-slow-direct``), cnnconv ``fft_conv1d``,
  ``numpy.convolve`` and ``scipy.signal.fftconvolve``.
* ``sweep1d``: n over several decades, log-log plot with n^2 and n log n reference slopes.
* ``sweep2d``: kernel size 3..127 on a depthwise layer, the direct/FFT crossover.
* ``cases2d``: depthwise 4x3x512^2 (k = 15, 31, 63) and dense 8x16x128^2 16->16 k=31 against
  ``F.conv2d``, fft-conv-pytorch, kornia's ``fft_conv`` and scipy.
* ``floor``: cnnconv's forward against the bare rfftn+irfftn round trip on the same planes
  (:mod:`experiments.bench_floor`).
* ``memory``: peak resident memory of 1x64x1024^2 through 64->64 k=31, forward and backward
  (in a child process).
* ``auto``: over a grid of kernel sizes, channels and image sizes, how close ``method="auto"``
  comes to the faster of direct and FFT.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnconv import planner
from cnnconv.fft import fft_conv1d, fft_conv2d
from cnnconv.training import make_run_dir

from . import timing
from .bench_floor import section_floor
from .common import optional, require, save_figure
from .timing import ms, once, table, time_chart, timeit

SECTIONS = ("seed", "sweep1d", "sweep2d", "cases2d", "floor", "memory", "auto")


heartbeat = functools.partial(timing.heartbeat, prog="bench_fft", hint="--skip-slow-direct skips it")
"""``with heartbeat(label):`` around a slow timing (see :func:`experiments.timing.heartbeat`)."""


# ------------------------------------------------------------------------------------ sections


def section_seed(args) -> dict:
    """The seed's comparison: 100,000 * 100,000 samples, full output."""
    signal = require("scipy.signal")
    n = args.seed_n
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x = torch.from_numpy(a)[None, None]
    w = torch.from_numpy(b)[None, None]
    res = {}
    res["cnnconv fft_conv1d"] = timeit(lambda: fft_conv1d(x, w, padding=n - 1), repeat=5)
    res["scipy.signal.fftconvolve"] = timeit(lambda: signal.fftconvolve(a, b[::-1]), repeat=5)
    res["numpy.convolve (direct)"] = timeit(lambda: np.convolve(a, b[::-1]), repeat=1)
    if args.skip_slow_direct:
        res["torch F.conv1d (direct)"] = float("nan")
    else:
        with heartbeat(f"F.conv1d on {n:,} samples once"):
            res["torch F.conv1d (direct)"] = once(lambda: F.conv1d(x, w, padding=n - 1))
    ours = res["cnnconv fft_conv1d"]
    rows = [[k, ms(v), v / ours] for k, v in res.items()]
    table(
        f"Seed comparison: {n:,} * {n:,} samples, full correlation (float32, "
        f"{torch.get_num_threads()} threads)",
        ["method", "time (ms)", "time / cnnconv fft"],
        rows,
    )
    y = fft_conv1d(x, w, padding=n - 1)[0, 0].double().numpy()
    ref = signal.fftconvolve(a.astype(np.float64), b[::-1].astype(np.float64))
    err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    print(f"\nrelative L2 error of cnnconv vs float64 scipy: {err:.2e}")
    print(
        f"acceptance: cnnconv / scipy.fftconvolve = {ours / res['scipy.signal.fftconvolve']:.2f} "
        f"(target <= 1.5); F.conv1d / cnnconv = {res['torch F.conv1d (direct)'] / ours:.0f} "
        "(target >= 1000)"
    )
    return res


def section_sweep1d(args, out: Path) -> None:
    signal = require("scipy.signal")
    sizes = [10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000, 300000, 1000000]
    if args.quick:
        sizes = [10, 100, 1000, 10000, 100000]
    rows, series = [], {k: ([], []) for k in ("torch F.conv1d", "numpy.convolve",
                                              "cnnconv fft", "scipy fftconvolve")}
    rng = np.random.default_rng(1)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        x, w = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
        t = {}
        t["cnnconv fft"] = timeit(lambda: fft_conv1d(x, w, padding=n - 1))
        t["scipy fftconvolve"] = timeit(lambda: signal.fftconvolve(a, b[::-1]))
        t["numpy.convolve"] = (
            timeit(lambda: np.convolve(a, b[::-1]), repeat=1) if n <= args.direct_max_n else float("nan")
        )
        t["torch F.conv1d"] = (
            timeit(lambda: F.conv1d(x, w, padding=n - 1), repeat=1)
            if n <= min(args.direct_max_n, 30000) else float("nan")
        )
        for k, v in t.items():
            if v == v:
                series[k][0].append(n)
                series[k][1].append(v)
        rows.append([n] + [ms(t[k]) for k in series] + [t["torch F.conv1d"] / t["cnnconv fft"]])
    table("1-D sweep: n * n samples, full correlation, time (ms)",
          ["n"] + list(series) + ["F.conv1d / cnnconv"], rows)
    ns = np.array(sizes, dtype=float)
    ref_t = series["cnnconv fft"][1][-1]
    guides = {"n log n slope": (ns, ref_t * (ns * np.log(ns)) / (ns[-1] * np.log(ns[-1])), "--")}
    direct = series["numpy.convolve"]
    if direct[0]:
        n0, t0 = direct[0][-1], direct[1][-1]
        guides["n² slope"] = (ns, t0 * (ns / n0) ** 2, ":")
    fig = time_chart(series, guides, sizes, "n (samples in each array)",
                      "Full 1-D correlation of two n-sample arrays")
    print(f"\nfigure: {save_figure(fig, out / 'sweep1d.png')}")


def section_sweep2d(args, out: Path) -> None:
    size = 128 if args.quick else 256
    ks = [3, 5, 7, 11, 15, 23, 31, 47, 63] + ([] if args.quick else [95, 127])
    x = torch.randn(1, 3, size, size)
    rows, series = [], {"direct F.conv2d": ([], []), "cnnconv fft": ([], []), "auto": ([], [])}
    for k in ks:
        w = torch.randn(3, 1, k, k)
        td = timeit(lambda: F.conv2d(x, w, padding=k // 2, groups=3), repeat=2)
        tf = timeit(lambda: fft_conv2d(x, w, padding=k // 2, groups=3))
        choice = planner.choose_method(tuple(x.shape), tuple(w.shape), groups=3, dtype=x.dtype,
                                       device=x.device, padding=k // 2)
        ta = tf if choice == "fft" else td
        for name, v in (("direct F.conv2d", td), ("cnnconv fft", tf), ("auto", ta)):
            series[name][0].append(k)
            series[name][1].append(v)
        rows.append([k, ms(td), ms(tf), td / tf, choice, ta / min(td, tf)])
    table(f"2-D kernel-size sweep: depthwise 1x3x{size}x{size}, same, time (ms)",
          ["k", "direct", "cnnconv fft", "direct / fft", "auto picks", "auto / best"], rows)
    fig = time_chart(series, {}, ks, "kernel size k (k x k)",
                      f"Depthwise 1x3x{size}x{size}: direct vs FFT crossover")
    print(f"\nfigure: {save_figure(fig, out / 'sweep2d.png')}")


def section_cases2d(args) -> None:
    signal = require("scipy.signal")
    fcp = optional("fft_conv_pytorch", "fft_conv")
    kfc = optional("kornia.filters", "fft_conv")
    ks = [15, 31, 63] if not args.quick else [31]
    rows = []
    x = torch.randn(4, 3, 512, 512)
    xn = x.numpy()
    for k in ks:
        # One kernel shared by the three channels, so kornia's fft_conv (one kernel for all
        # channels) computes the same thing.
        k2 = torch.randn(1, 1, k, k)
        w = k2.expand(3, 1, k, k).contiguous()
        t = {}
        t["cnnconv fft"] = timeit(lambda: fft_conv2d(x, w, padding="same", groups=3))
        skip_direct = args.skip_slow_direct and k > 31
        if skip_direct:
            t["F.conv2d"] = float("nan")
        else:
            slow = heartbeat(f"F.conv2d with a {k}x{k} kernel") if k > 31 else contextlib.nullcontext()
            with slow:
                t["F.conv2d"] = timeit(lambda: F.conv2d(x, w, padding="same", groups=3),
                                       repeat=1, budget=1.0)
        t["fft-conv-pytorch"] = (
            timeit(lambda: fcp(x, w, padding=k // 2, groups=3)) if fcp else float("nan")
        )
        t["kornia fft_conv"] = (
            timeit(lambda: kfc(x, k2[0], border_type="constant", padding="same"))
            if kfc else float("nan")
        )
        wn = w.numpy()[None, :, 0, ::-1, ::-1]
        t["scipy fftconvolve"] = timeit(
            lambda: signal.fftconvolve(xn, wn, mode="same", axes=(-2, -1)))
        ours = t["cnnconv fft"]
        rows.append([f"depthwise 4x3x512^2 k={k}"] + [ms(t[c]) for c in t]
                    + [t["F.conv2d"] / ours, t["fft-conv-pytorch"] / ours,
                       t["kornia fft_conv"] / ours, t["scipy fftconvolve"] / ours])
    table(
        "Depthwise 2-D cases, same padding, forward, time (ms) and ratio to cnnconv "
        "(targets at k=31, 63: F.conv2d >= 100x, scipy >= 1x)",
        ["case", "cnnconv fft", "F.conv2d", "fft-conv-pytorch", "kornia fft_conv", "scipy",
         "F.conv2d/ours", "fcp/ours", "kornia/ours", "scipy/ours"],
        rows,
    )

    # Dense layer: forward and forward+backward.
    torch.manual_seed(0)
    x = torch.randn(8, 16, 128, 128, requires_grad=True)
    ref = torch.nn.Conv2d(16, 16, 31, padding="same")
    w, b = ref.weight, ref.bias

    def fb(fn):
        def run():
            y = fn()
            y.backward(torch.ones_like(y))
            x.grad = None
            w.grad = None
            b.grad = None
        return run

    ours_f = timeit(lambda: fft_conv2d(x, w, b, padding="same"))
    ours_fb = timeit(fb(lambda: fft_conv2d(x, w, b, padding="same")))
    conv_f = timeit(lambda: ref(x), repeat=1, budget=1.0)
    conv_fb = timeit(fb(lambda: ref(x)), repeat=1, budget=1.0)
    fcp_f = timeit(lambda: fcp(x, w, b, padding=15)) if fcp else float("nan")
    fcp_fb = timeit(fb(lambda: fcp(x, w, b, padding=15))) if fcp else float("nan")
    rows = [
        ["cnnconv fft_conv2d", ms(ours_f), ms(ours_fb), 1.0, 1.0],
        ["nn.Conv2d (direct)", ms(conv_f), ms(conv_fb), conv_f / ours_f, conv_fb / ours_fb],
        ["fft-conv-pytorch", ms(fcp_f), ms(fcp_fb), fcp_f / ours_f, fcp_fb / ours_fb],
        ["kornia fft_conv", float("nan"), float("nan"), float("nan"), float("nan")],
    ]
    table(
        "Dense 8x16x128^2, 16->16, k=31, same: time (ms) and ratio to cnnconv (targets: "
        "nn.Conv2d fwd+bwd >= 15x, fft-conv-pytorch and kornia fwd >= 2x). kornia's fft_conv "
        "applies one kernel to every channel: it has no channel mixing, so n/a",
        ["method", "forward", "forward+backward", "fwd ratio", "fwd+bwd ratio"],
        rows,
    )
    print(f"\nforward+backward / forward for cnnconv: {ours_fb / ours_f:.2f} (target about <= 3)")


_MEMORY_CHILD = r"""
import resource, sys, time, torch
from cnnconv.fft import fft_conv2d
torch.manual_seed(0)
C, S = int(sys.argv[1]), int(sys.argv[2])
x = torch.randn(1, C, S, S, requires_grad=True)
w = torch.randn(C, C, 31, 31, requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
y = fft_conv2d(x, w, padding="same")
t1 = time.perf_counter()
y.backward(torch.ones_like(y))
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{base * 1024} {peak * 1024} {t1 - t0} {t2 - t1}")
"""


def section_memory(args) -> None:
    sizes = [(64, 1024)] if not args.quick else [(16, 512)]
    rows = []
    for c, s in sizes:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(c), str(s)],
                              capture_output=True, text=True, check=True)
        base, peak, tf, tb = proc.stdout.split()
        base_gb, peak_gb = int(base) / 2**30, int(peak) / 2**30
        rows.append([f"1x{c}x{s}^2, {c}->{c}, k=31, same", base_gb, peak_gb, peak_gb - base_gb,
                     float(tf), float(tb)])
    table(
        "Memory: peak resident set of a fresh process (GiB), forward then backward "
        "(target: peak <= 4 GB)",
        ["case", "RSS before", "peak RSS", "peak - before", "forward (s)", "backward (s)"],
        rows,
    )


def _auto_grid(quick: bool):
    ks = [1, 3, 5, 9, 15, 31, 63] if not quick else [1, 3, 9, 31]
    chans = [1, 4, 16, 64] if not quick else [1, 16]
    sizes = [32, 128, 512] if not quick else [32, 128]
    for k in ks:
        for c in chans:
            for s in sizes:
                if k > s:
                    continue
                yield k, c, s, "dense"
                if c > 1:
                    yield k, c, s, "depthwise"


def section_auto(args) -> None:
    """How often ``auto`` is within 1.2x of the faster of direct and FFT."""
    rows = []
    ratios = []
    skipped = 0
    for k, c, s, kind in _auto_grid(args.quick):
        groups = c if kind == "depthwise" else 1
        x = torch.randn(1, c, s, s)
        w = torch.randn(c, c // groups, k, k)
        est = planner.estimate_costs(tuple(x.shape), tuple(w.shape), groups=groups,
                                     dtype=x.dtype, device=x.device, padding=k // 2)
        choice = min(est, key=est.get)
        if est["direct"] > args.auto_max_direct and est["direct"] > 20 * est["fft"]:
            skipped += 1  # direct would take too long to time and is far behind by estimate
            rows.append([k, c, s, kind, float("nan"), float("nan"), choice, "(est.)"])
            continue
        td = timeit(lambda: F.conv2d(x, w, padding=k // 2, groups=groups), repeat=2, budget=2.0)
        tf = timeit(lambda: fft_conv2d(x, w, padding=k // 2, groups=groups), repeat=2, budget=2.0)
        chosen = tf if choice == "fft" else td
        r = chosen / min(td, tf)
        ratios.append(r)
        rows.append([k, c, s, kind, ms(td), ms(tf), choice, r])
    table("auto over the grid (batch 1, same padding): time (ms), chosen method, chosen / best",
          ["k", "channels", "size", "kind", "direct", "fft", "auto picks", "chosen / best"], rows)
    r = np.array(ratios)
    within = float((r <= 1.2).mean()) if len(r) else float("nan")
    print(
        f"\nauto: {len(r)} timed cases, {skipped} not timed (direct estimated > "
        f"{args.auto_max_direct:.0f} s and > 20x FFT); within 1.2x of the best in "
        f"{100 * within:.1f}% (target >= 90%); worst {r.max() if len(r) else float('nan'):.2f}x "
        "(target < 2x)"
    )
    calib = planner.calibration_path()
    print(f"constants: {'calibrated ' + str(calib) if calib.exists() else 'defaults'}")


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m experiments.bench_fft",
        description="Benchmark cnnconv's FFT convolution against direct and other FFT "
                    "implementations; print markdown tables with ratios and save plots.",
    )
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run, from {', '.join(SECTIONS)} "
                        "(default: all)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the PNG figures (must not exist yet; default: a new folder "
                        "under runs/bench_fft/)")
    p.add_argument("--quick", action="store_true", help="smaller sweeps and grids")
    p.add_argument("--skip-slow-direct", action="store_true",
                   help="skip the slowest direct timings (F.conv1d on 100k samples, F.conv2d "
                        "depthwise k=63)")
    p.add_argument("--seed-n", type=int, default=100_000, help="array length of the seed case")
    p.add_argument("--direct-max-n", type=int, default=100_000,
                   help="largest n timed with direct methods in the 1-D sweep")
    p.add_argument("--auto-max-direct", type=float, default=5.0,
                   help="auto grid: do not time direct when its estimate exceeds this (s) and "
                        "20x the FFT estimate")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--calibrate", action="store_true",
                   help="run cnnconv.planner.calibrate() first (stores the constants on disk)")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        p.error(f"unknown sections {bad}; choose from {', '.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.calibrate:
        consts = planner.calibrate(quick=args.quick)
        print("calibrated constants:", json.dumps(consts))
    print(f"cnnconv FFT benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"sections {', '.join(sections)}")
    torch.manual_seed(0)
    out = None
    if any(s in sections for s in ("sweep1d", "sweep2d")):
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=False)
            out = args.out
        else:
            out = make_run_dir("runs", "bench_fft")
        print(f"figures in {out}")
    with torch.no_grad():
        if "seed" in sections:
            section_seed(args)
        if "sweep1d" in sections:
            section_sweep1d(args, out)
        if "sweep2d" in sections:
            section_sweep2d(args, out)
    if "cases2d" in sections:
        section_cases2d(args)
    if "floor" in sections:
        with torch.no_grad():
            section_floor(args)
    if "memory" in sections:
        section_memory(args)
    if "auto" in sections:
        with torch.no_grad():
            section_auto(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
