"""Fixed-filter benchmark: cnnconv against kornia, torchvision, OpenCV and scipy.ndimage.

Run as ``python -m experiments.bench_filters [--repeats N] [--size S] [--batch B]``.

Every library computes the same operation on the same float32 batch ``(B, 3, S, S)`` on the
CPU: same kernel size and weights, and the same border (reflect-101 = torch ``reflect`` =
OpenCV's default ``BORDER_REFLECT_101`` = scipy ``mirror``; the Sobel row uses ``replicate``
because that is the only border kornia's ``sobel`` offers). OpenCV runs one ``(H, W)`` plane at
a time with its default thread count. Each cell is a median of timed runs after a warm-up: by
default ``--repeats`` rounds of one run per library, order rotated each round; ``--order
blocks`` times each library's runs back to back instead (see ``_time_row``). Ratio columns are the other library's time divided by cnnconv's (above 1:
cnnconv is faster), all measured in the same run. ``max|d|`` is the largest absolute difference
between cnnconv's output and OpenCV's.

Targets (PASS/FAIL): Sobel magnitude, box and sharpen at least 5x faster than kornia and at
most 2x OpenCV's time; Gaussian at least 1.5x faster than kornia and at most 3x OpenCV's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from .timing import add_clock_options, use_clock_options


def _require():
    try:
        import cv2
        import kornia
        import scipy.ndimage as ndi
        import torchvision.transforms.functional as TF
    except ImportError as err:
        raise ImportError(
            f"bench_filters compares against kornia, OpenCV, torchvision and scipy, and "
            f"{err.name} is missing: kornia and OpenCV come with the dev extra, not the "
            "experiments one: pip install 'cnnconv[dev]'"
        ) from err
    return cv2, kornia, ndi, TF


DEFAULT_SIZE, DEFAULT_BATCH = 512, 4
"""The input the speed targets are stated for."""


def busy(load: float | None = None, cores: int | None = None) -> str | None:
    """Why timings on this machine are not fit to judge targets: a sentence when the load
    average is above the core count (other processes take the cores), else None."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average on this platform
            return None
    cores = cores or os.cpu_count() or 1
    if load > cores:
        return (f"the machine is busy (load average {load:.1f} on {cores} cores): timings are "
                f"inflated, so the targets are not judged; run again on a quiet machine")
    return None


def _time_row(fns: dict, repeats: int, clock=time.perf_counter, order: str = "interleaved", rounds: int = 3) -> tuple[dict, dict]:
    """Median time in ms of every library's callable, and its output.

    Each callable runs once as a warm-up (its output is kept for the agreement check). Then:

    * ``order="interleaved"`` (default): one timed call per library per round, ``repeats``
      rounds, order rotated. Every call follows another library's, so each one also pays for
      the cache contents and freed memory the previous library left (a busy process), and all
      columns see the same machine drift.
    * ``order="blocks"``: ``rounds`` rounds; in each, every library runs ``repeats`` times back
      to back (after one untimed call), libraries in an order rotated each round. Each library
      is timed in its own steady state, as in a loop that calls nothing else. Some libraries
      are bimodal there: kornia's sharpen took 10 ms in one run's steady state and 26-48 ms in
      others, depending on whether its buffers came back from the C allocator or were
      page-faulted anew.

    The median is over all timed calls of a library.
    """
    outs = {lib: fn() for lib, fn in fns.items()}
    times = {lib: [] for lib in fns}
    libs = list(fns)

    def timed(lib):
        t0 = clock()
        fns[lib]()
        times[lib].append(clock() - t0)

    if order == "interleaved":
        for r in range(repeats):
            for lib in libs[r % len(libs) :] + libs[: r % len(libs)]:
                timed(lib)
    else:
        for r in range(rounds):
            for lib in libs[r % len(libs) :] + libs[: r % len(libs)]:
                fns[lib]()
                for _ in range(repeats):
                    timed(lib)
    return {lib: statistics.median(t) * 1e3 for lib, t in times.items()}, outs


def _cases(x: torch.Tensor):
    """Rows: name, target (kornia speed-up, OpenCV time factor), and one callable per library."""
    cv2, kornia, ndi, TF = _require()
    from cnnconv import functional as CF
    from cnnconv import kernels as K

    xn = x.numpy()
    planes = xn.reshape(-1, *xn.shape[-2:])
    shape = xn.shape

    def per_plane(fn):
        def run():
            return np.stack([fn(p) for p in planes]).reshape(shape)

        return run

    def cv_sobel_mag(p):
        gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
        gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
        return cv2.magnitude(gx, gy)

    def nd_sobel_mag():
        gx = ndi.correlate1d(ndi.correlate1d(xn, [1, 2, 1], axis=-2, mode="nearest"), [-1, 0, 1], axis=-1, mode="nearest")
        gy = ndi.correlate1d(ndi.correlate1d(xn, [1, 2, 1], axis=-1, mode="nearest"), [-1, 0, 1], axis=-2, mode="nearest")
        return np.hypot(gx, gy)

    sharp = K.sharpen(dtype=torch.float32)
    sharp_np = sharp.numpy()
    rows = []
    rows.append(
        (
            "Sobel magnitude (replicate)",
            (5.0, 2.0),
            {
                "cnnconv": lambda: CF.sobel(x, "magnitude", border="replicate"),
                "kornia": lambda: kornia.filters.sobel(x, normalized=False, eps=0.0),
                "opencv": per_plane(cv_sobel_mag),
                "scipy": nd_sobel_mag,
            },
        )
    )
    for sigma, k in ((2.0, 13), (8.0, 49)):
        rows.append(
            (
                f"Gaussian sigma={sigma:g} (k={k})",
                (1.5, 3.0),
                {
                    "cnnconv": lambda s=sigma, k=k: CF.gaussian_blur2d(x, s, k, border="reflect"),
                    "kornia": lambda s=sigma, k=k: kornia.filters.gaussian_blur2d(x, (k, k), (s, s), border_type="reflect"),
                    "torchvision": lambda s=sigma, k=k: TF.gaussian_blur(x, [k, k], [s, s]),
                    "opencv": per_plane(lambda p, s=sigma, k=k: cv2.GaussianBlur(p, (k, k), s)),
                    "scipy": lambda s=sigma, k=k: ndi.gaussian_filter(xn, (0, 0, s, s), mode="mirror", truncate=((k - 1) / 2) / s),
                },
            )
        )
    for k in (5, 31, 101):
        rows.append(
            (
                f"box {k}x{k}",
                (5.0, 2.0),
                {
                    "cnnconv": lambda k=k: CF.box_blur2d(x, k, border="reflect"),
                    "kornia": lambda k=k: kornia.filters.box_blur(x, (k, k), border_type="reflect"),
                    "opencv": per_plane(lambda p, k=k: cv2.blur(p, (k, k))),
                    "scipy": lambda k=k: ndi.uniform_filter(xn, (1, 1, k, k), mode="mirror"),
                },
            )
        )
    rows.append(
        (
            "sharpen 3x3",
            (5.0, 2.0),
            {
                "cnnconv": lambda: CF.sharpen(x, border="reflect"),
                "kornia": lambda: kornia.filters.filter2d(x, sharp[None], border_type="reflect"),
                "opencv": per_plane(lambda p: cv2.filter2D(p, -1, sharp_np)),
                "scipy": lambda: ndi.correlate(xn, sharp_np[None, None], mode="mirror"),
            },
        )
    )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.bench_filters",
        description="Time cnnconv's fixed filters against kornia, torchvision, OpenCV and scipy.ndimage "
        "on a float32 CPU batch and print one table with ratios measured in the same run.",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per cell (median reported); default 7")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"image height and width; default {DEFAULT_SIZE} (the targets are stated for it)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"batch size (3 channels each); default {DEFAULT_BATCH}")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: --size 128 --batch 1 --repeats 3 --skip-slow (targets not judged)")
    add_clock_options(parser, "torch and OpenCV thread count (default: their own defaults)")
    parser.add_argument("--skip-slow", action="store_true", help="skip scipy.ndimage and torchvision columns")
    parser.add_argument(
        "--order",
        choices=("interleaved", "blocks"),
        default="interleaved",
        help="interleaved (default): one run per library in turn, so each call follows another library's "
        "(a busy process); blocks: each library's runs back to back, in 3 rounds with a rotated library order",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.repeats, args.skip_slow = 128, 1, 3, True
    if args.repeats < 1:
        parser.error(f"--repeats must be positive, got {args.repeats}")
    if args.size < 8:
        parser.error(f"--size must be at least 8, got {args.size}")
    if args.batch < 1:
        parser.error(f"--batch must be positive, got {args.batch}")

    cv2 = _require()[0]
    clock = use_clock_options(parser, args)
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, dtype=torch.float32)
    libs = ["cnnconv", "kornia", "torchvision", "opencv", "scipy"]
    if args.skip_slow:
        libs = ["cnnconv", "kornia", "opencv"]
    print(
        f"fixed filters, {tuple(x.shape)} float32 CPU, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), median of {args.repeats if args.order == 'interleaved' else 3 * args.repeats} runs ({args.order}), {args.clock} times in ms"
    )
    notes = [busy()]
    if (args.size, args.batch) != (DEFAULT_SIZE, DEFAULT_BATCH):
        notes.append(f"the targets are stated for --size {DEFAULT_SIZE} --batch {DEFAULT_BATCH} "
                     f"only, so they are not judged at this size")
    not_judged = [note for note in notes if note]
    for note in not_judged:
        print(f"note: {note}")
    header = (
        f"{'operation':<28}" + "".join(f"{lib:>12}" for lib in libs)
        + f"{'kornia/cc':>10}{'tv/cc':>8}{'cv/cc':>8}{'scipy/cc':>9}{'max|d|':>10}  result"
    )
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, (kornia_speedup, cv_factor), fns in _cases(x):
        times, outs = _time_row({lib: fns[lib] for lib in libs if lib in fns}, args.repeats, clock, args.order)
        ours = times["cnnconv"]

        def ratio(lib):
            return f"{times[lib] / ours:.2f}" if lib in times else "-"

        diff = np.abs(np.asarray(outs["cnnconv"], dtype=np.float64) - np.asarray(outs["opencv"], dtype=np.float64)).max()
        ok = times["kornia"] / ours >= kornia_speedup and ours / times["opencv"] <= cv_factor
        all_pass &= ok
        cells = "".join(f"{times[lib]:>12.2f}" if lib in times else f"{'-':>12}" for lib in libs)
        verdict = "not judged" if not_judged else "PASS" if ok else "FAIL"
        print(
            f"{name:<28}{cells}{ratio('kornia'):>10}{ratio('torchvision'):>8}{ratio('opencv'):>8}{ratio('scipy'):>9}"
            f"{diff:>10.1e}  {verdict} (kornia >= {kornia_speedup:g}x, <= {cv_factor:g}x OpenCV)"
        )
    if not not_judged:
        print("all targets met" if all_pass else "some targets not met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
