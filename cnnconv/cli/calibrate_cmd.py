"""``cnnconv calibrate``: refit the planner's cost model on this machine and cache it."""

from __future__ import annotations

import time
from typing import Any

from cnnconv.cli.output import (
    CommandError,
    abspath,
    add_command,
    add_json_options,
    check_indent,
    dump_json,
)
from cnnconv.cli.progress import Progress

__all__ = ["CROSSOVER_CASES", "add_calibrate"]

#: Typical cases whose FFT crossover ``calibrate`` reports: (text, input shape, Cout, groups).
CROSSOVER_CASES = (
    ("3x512x512 image, depthwise", (1, 3, 512, 512), 3, 3),
    ("64->64 channels, 56x56", (1, 64, 56, 56), 64, 1),
)


def _num(value: float) -> str:
    """Two significant digits, without an exponent."""
    return f"{value:.0f}" if value >= 100 else f"{value:.2g}"


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= 0.1 * scale:
            return f"{_num(seconds / scale)} {unit}"
    return f"{_num(seconds / 1e-9)} ns"


def _ns(seconds: float) -> str:
    return _num(seconds * 1e9)


def _crossover(shape: tuple[int, ...], cout: int, groups: int, device: str) -> int | None:
    """Smallest odd kernel size (3 to 63) for which the planner picks the FFT, with the
    constants it loads for ``device``."""
    from cnnconv.planner import choose_method

    for k in range(3, 64, 2):
        if choose_method(shape, (cout, shape[1] // groups, k, k), groups=groups, device=device) == "fft":
            return k
    return None


def _calibration_summary(consts: dict, device: str, seconds: float, path: Any) -> list[str]:
    """A few lines: each fitted constant with its unit, the crossovers it implies (when the
    planner uses these constants), the path."""
    import torch

    from cnnconv.planner import calibration_path, direct_cost, load_constants

    def rate(cin, cout, cin_g, k):  # seconds per multiply-add of the direct convolution
        return (direct_cost(1, cout, cin_g, (1, 1), (k, k), consts, cin=cin) - consts["t0_direct"]) / (
            cout * cin_g * k * k
        )

    lines = [
        f"calibrated {device} in {seconds:.0f} s",
        f"  FFT              {_ns(consts['fft'])} ns per point x log2(points) of a transform",
        (
            f"  spectral mix     {_ns(consts['matmul'])} ns per complex multiply-add (dense), "
            f"{_ns(consts['elementwise'])} ns per complex product (depthwise)"
        ),
    ]
    for text, cin, cout, cin_g in (("64->64", 64, 64, 64), ("depthwise", 3, 3, 1)):
        rates = ", ".join(f"{_ns(rate(cin, cout, cin_g, k))} at {k}x{k}" for k in (3, 31))
        lines.append(f"  {'direct ' + text:<16} ns per multiply-add: {rates}")
    lines.append(
        f"  start-up         FFT {_duration(consts['t0_fft'])}, direct {_duration(consts['t0_direct'])} per call"
    )
    if load_constants(torch.device(device).type) == consts:
        for i, (text, shape, cout, groups) in enumerate(CROSSOVER_CASES):
            k = _crossover(shape, cout, groups, device)
            found = f"the planner picks the FFT from {k}x{k} kernels" if k else "direct up to 63x63 kernels"
            lines.append(f"  {'' if i else 'crossover':<16} {text}: {found}")
    else:
        lines.append(f"  crossover        not in use: the planner reads {abspath(calibration_path())}")
    lines.append(f"written to {abspath(path)}")
    return lines


def _run_calibrate(args: Any) -> int:
    try:
        from cnnconv import planner
    except ImportError as exc:
        raise CommandError(f"calibration is not available: {exc}") from None
    calibrate = getattr(planner, "calibrate", None)
    if calibrate is None:
        raise CommandError("calibration is not available in this version of cnnconv")
    check_indent(args.indent)
    kwargs = {"path": args.path, "quick": args.quick}
    device = "cpu"
    if args.device is not None:
        kwargs["device"] = _check_device(args.device)
        device = args.device
    expected = "a few seconds" if args.quick else "about 50 s on a 2-core CPU"
    start = time.monotonic()
    try:
        with Progress(f"calibrating {device}", note=f"expected: {expected}"):
            result = calibrate(**kwargs)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = getattr(planner, "calibration_path", None)
        hint = f"; is the calibration file {abspath(where(args.path))!r} damaged? remove it" if where else ""
        raise CommandError(f"calibration failed: {type(exc).__name__}: {exc}{hint}") from None
    if args.json:
        dump_json(result, args.indent)
    else:
        lines = _calibration_summary(result, device, time.monotonic() - start, planner.calibration_path(args.path))
        print("\n".join(lines))
    return 0


def _check_device(spec: str) -> str:
    """``spec`` if it names a CPU or CUDA device this machine has, else a CommandError."""
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise CommandError(f"--device must name a device such as cpu or cuda, got {spec!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CommandError(f"--device {spec!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= count:
            raise CommandError(f"--device {spec!r}: this machine has {count} CUDA device(s)")
    elif device.type != "cpu":  # calibration times kernels and synchronises CUDA only
        raise CommandError(f"--device must be cpu or cuda (with an optional index), got {spec!r}")
    return spec


def add_calibrate(subparsers: Any) -> None:
    """Register the ``calibrate`` command."""
    p = add_command(
        subparsers,
        "calibrate",
        help="refit the planner's cost model on this machine and cache it",
        description=(
            "Time FFTs, spectral products and direct convolutions on this machine, fit the "
            "constants of the planner's cost model (which picks direct, separable or FFT "
            "convolution) and store them as JSON. Prints each constant with its unit and the "
            "kernel size from which the FFT is estimated to win."
        ),
        epilog=(
            "examples:\n"
            "  cnnconv calibrate\n"
            "  cnnconv calibrate --quick --path /tmp/calibration.json\n"
            "  cnnconv calibrate --device cuda --json\n"
            "\nTakes about 50 s on a 2-core CPU (a few seconds with --quick); progress goes to stderr."
        ),
    )
    p.add_argument("--path", help="where to write the calibration (default: the cache folder)")
    p.add_argument("--quick", action="store_true", help="fewer, smaller measurements")
    p.add_argument("--device", help="device to calibrate: cpu or cuda[:N] (default: cpu)")
    add_json_options(p, "the fitted constants")
    p.set_defaults(func=_run_calibrate)
