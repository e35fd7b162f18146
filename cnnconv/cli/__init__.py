"""The ``cnnconv`` command line (also ``python -m cnnconv``).

Commands are registered by one small function each (``_add_<command>``) listed in
``COMMANDS``; each sets a handler ``func(args) -> int``. ``cnnconv --help`` lists them all.

Paths are printed absolute. Long runs (``calibrate``, ``inspect`` of a large checkpoint) show
progress on stderr: a tqdm bar on a terminal when tqdm is installed, else a line with the
elapsed time every :data:`PROGRESS_EVERY` seconds.

Example:
    cnnconv inspect model.pt --layer features.0 --top 3
    cnnconv inspect model.pt --json > kernels.json
    cnnconv kernels sobel_x gaussian:sigma=1.5,size=7 --plot bank.png
    cnnconv calibrate --quick
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
import os
import sys
import threading
import time
from typing import Callable

PROG = "cnnconv"
MAX_VALUES_SIDE = 7  # kernel values are printed for kernels up to 7x7
PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
MAX_PLOTTED = 64  # inspect --plot draws at most this many kernels (beyond, panels get too small)


class CommandError(Exception):
    """An error reported as ``cnnconv: error: ...`` with exit status 2."""


def _abspath(path) -> str:
    """``path`` as printed by every command: absolute, control characters escaped."""
    return _safe(os.path.abspath(os.fspath(path)))


def _dump_json(data, indent) -> None:
    """Print ``data`` (made JSON-safe) on one line, or pretty with ``indent`` spaces."""
    json.dump(_clean(data), sys.stdout, indent=indent, default=str)
    sys.stdout.write("\n")


def _add_json_options(p, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON (one line)")
    p.add_argument("--indent", type=int, metavar="N", help="with --json, pretty-print with N spaces")


def _check_indent(indent) -> None:
    if indent is not None and not 0 <= indent <= 8:
        raise CommandError(f"--indent must be between 0 and 8, got {indent}")


class _Progress:
    """Progress of a long command on stderr, as a context manager.

    On a terminal with tqdm installed: a bar (cleared at the end). Otherwise a background thread
    prints ``cnnconv: LABEL: [done/total UNIT, ]N s elapsed[ (NOTE)]`` every
    :data:`PROGRESS_EVERY` seconds, so a run that takes long is never silent.

    Args:
        label: what is being done.
        total: number of steps, or ``None`` when unknown (only the elapsed time is shown).
        unit: name of the steps.
        note: appended to each line, e.g. the expected duration.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "steps", note: str = ""):
        self.label, self.total, self.unit, self.note = label, total, unit, note
        self.done = 0
        self._bar = None
        self._stop = threading.Event()
        self._start = time.monotonic()

    def __enter__(self):
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=self._description(), unit=" " + self.unit, file=sys.stderr,
                                 leave=False, bar_format=None if self.total else "{desc}: {elapsed} elapsed")
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def stage(self, label: str, total: int | None = None) -> None:
        """Start the next stage of the work: a new label and step count."""
        self.label, self.total, self.done = label, total, 0
        if self._bar is not None:
            self._bar.set_description(self._description(), refresh=False)
            self._bar.bar_format = None if total else "{desc}: {elapsed} elapsed"
            self._bar.reset(total=total)

    def _description(self) -> str:
        return f"{self.label} ({self.note})" if self.note else self.label

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def _beat(self) -> None:
        while not self._stop.wait(0.5 if self._bar is not None else PROGRESS_EVERY):
            if self._bar is not None:
                self._bar.refresh()  # keeps the elapsed time moving between steps
                continue
            count = f"{self.done}/{self.total} {self.unit}, " if self.total else ""
            note = f" ({self.note})" if self.note else ""
            elapsed = time.monotonic() - self._start
            print(f"{PROG}: {self.label}: {count}{elapsed:.0f} s elapsed{note}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- inspect


def _safe(text) -> str:
    """``text`` with every non-printable character escaped as in ``repr`` (``\\x1b``, ``\\n``...):
    names read from a file cannot move the cursor, recolour or retitle the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
    return str(value)


def _clean(value):
    """Make a value JSON-safe (NaN and inf become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _value_rows(k) -> list[str]:
    # Values that round to zero are printed as 0.0000, not -0.0000.
    values = [[0.0 if abs(v) < 5e-5 else v for v in row] for row in k.detach().cpu().double().tolist()]
    width = max(len(f"{v:.4f}") for row in values for v in row)
    return ["  ".join(f"{v:>{width}.4f}" for v in row) for row in values]


def _orientation_text(d) -> str:
    if d.orientation_strength is None or not math.isfinite(d.orientation) or d.orientation_strength < 0.05:
        return "isotropic"
    return f"{d.orientation:.1f} deg (strength {d.orientation_strength:.2f})"


def _match_text(m) -> str:
    params = ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in m.params.items())
    text = f"{m.name:<13} similarity {m.similarity:.4f}  transform {m.transform:<20} scale {_fmt(m.scale)}"
    if m.sigma is not None:
        text += f"  sigma {m.sigma:.4f}"
    elif params:
        text += f"  ({params})"
    if m.start is not None:
        text += f"  from tap {m.start}"
    return text


def _inspect_layers(args, progress: _Progress):
    """Yield per layer: (record, [(index, kernel, description, matches)], total).

    Every layer's shape is checked against the size limits before any kernel is read; at most
    ``--max-kernels`` kernels per layer and :data:`cnnconv.analysis.MAX_KERNELS` in all are read,
    each counted on ``progress``.
    """
    import torch

    from cnnconv.analysis import MAX_KERNELS, describe_kernel, extract_kernels, kernel_size_error, match_kernel

    records = extract_kernels(args.path, layer=args.layer)
    for record in records:
        dims = "x".join(map(str, record.shape))
        if 0 in record.shape:
            raise CommandError(f"layer {_safe(record.label)} has an empty weight of shape {dims} (zero-size kernels)")
        problem = kernel_size_error(record.shape[2:])
        if problem:
            raise CommandError(f"layer {_safe(record.label)} (shape {dims}): {problem}; pick other layers with --layer")
    counts = [min(args.max_kernels, record.count) for record in records]
    progress.stage("inspecting", min(sum(counts), MAX_KERNELS))
    budget = MAX_KERNELS
    for record in records:
        items = []
        for index, kernel in itertools.islice(record.kernels(), min(args.max_kernels, budget)):
            kernel = kernel.to(torch.float64)
            if not bool(torch.isfinite(kernel).all()):
                raise CommandError(
                    f"layer {_safe(record.label)} kernel [out {index[0]}, in {index[1]}] has NaN or inf values "
                    f"(a diverged training run?); nothing to describe"
                )
            matches = match_kernel(kernel, top=args.top)
            for rank, m in enumerate(matches):
                # Only the best match's aligned reference is drawn: drop the rest (a long 1-D
                # kernel's references would otherwise pile up).
                m.reference = None
                if rank or not args.plot:
                    m.aligned = None
            items.append((index, kernel, describe_kernel(kernel), matches))
            progress.update()
        budget -= len(items)
        yield record, items, record.count


def _side_text(balance: float) -> str:
    if not math.isfinite(balance) or abs(balance) < 0.9:
        return f"two-sided ({_fmt(balance, 3)})"
    return f"one-sided, energy at the {'end' if balance > 0 else 'start'} ({_fmt(balance, 3)})"


def _print_description(d, out) -> None:
    print(
        f"  dc_gain {_fmt(d.dc_gain)}  l2_norm {_fmt(d.l2_norm)}  symmetry {_fmt(d.symmetry, 3)}  "
        f"antisymmetry {_fmt(d.antisymmetry, 3)}"
        + ("" if len(d.shape) == 1 else f"  separability {_fmt(d.separability, 3)}"),
        file=out,
    )
    if len(d.shape) == 1:
        print(
            f"  energy 90% in {d.length_90} taps, 99% in {d.length_99}  decay_rate {_fmt(d.decay_rate)}/tap  "
            f"{_side_text(d.side_balance)}",
            file=out,
        )
        print(
            f"  bandwidth -3dB {_fmt(d.bandwidth_3db, 3)}, 90% energy below {_fmt(d.bandwidth_90, 3)} cycles/sample  "
            f"peak_frequency {d.peak_frequency:.3f} (gain {_fmt(d.peak_gain)})",
            file=out,
        )
        return
    print(
        f"  orientation {_orientation_text(d)}  peak_frequency {d.peak_frequency:.3f} cycles/px "
        f"(gain {_fmt(d.peak_gain)})",
        file=out,
    )


def _print_text(path, layers, out) -> None:
    from cnnconv.analysis import MAX_KERNELS

    print(_abspath(path), file=out)
    shown = 0
    for record, items, total in layers:
        label, parameter = _safe(record.label), _safe(record.parameter)
        flag = "  [see the note]" if record.note else ""
        print(f"\nlayer {label}  ({parameter}, shape {'x'.join(map(str, record.shape))}){flag}", file=out)
        if record.note:
            print(f"note: {_safe(record.note)}", file=out)
        print("-" * 78, file=out)
        for index, kernel, d, matches in items:
            print(f"kernel [out {index[0]}, in {index[1]}]  {'x'.join(map(str, d.shape))}", file=out)
            if max(d.shape) <= MAX_VALUES_SIDE:
                for row in _value_rows(kernel.reshape(-1, d.shape[-1])):
                    print(f"    {row}", file=out)
            _print_description(d, out)
            if matches:
                print("  best matches:", file=out)
                for rank, m in enumerate(matches, 1):
                    print(f"    {rank}. {_match_text(m)}", file=out)
            else:
                print("  best matches: none (all-zero kernel)", file=out)
        shown += len(items)
        if total > len(items):
            hint = "raise --max-kernels" if shown < MAX_KERNELS else f"at most {MAX_KERNELS} kernels are inspected per run"
            print(f"... {total - len(items)} more kernels in this layer ({hint})", file=out)


def _json_layers(path, layers, include_response: bool) -> dict:
    out = {"path": os.path.abspath(path), "layers": []}
    for record, items, total in layers:
        entry = record.to_dict()
        entry["kernels_total"] = total
        entry["kernels"] = []
        for index, kernel, d, matches in items:
            item = {"index": list(index), "shape": list(d.shape)}
            if max(d.shape) <= MAX_VALUES_SIDE:
                item["values"] = kernel.detach().cpu().double().tolist()
            item["properties"] = d.to_dict(include_response=include_response)
            item["matches"] = [m.to_dict() for m in matches]
            entry["kernels"].append(item)
        out["layers"].append(entry)
    return _clean(out)


def _plot_inspected(layers, path, overwrite: bool) -> None:
    from cnnconv.analysis.plotting import plot_side_by_side

    learned, refs, titles, ref_titles = [], [], [], []
    for record, items, _ in layers:
        for index, kernel, _, matches in items:
            if not matches:
                continue
            m = matches[0]
            learned.append(kernel)
            refs.append(m.aligned.to(kernel))
            titles.append(_safe(f"{record.label}[{index[0]},{index[1]}]"))
            ref_titles.append(f"{m.name} {m.transform} ({m.similarity:.3f})")
    if not learned:
        raise CommandError("nothing to plot: every kernel is all zero")
    if len(learned) > MAX_PLOTTED:
        print(
            f"{PROG}: note: --plot draws the first {MAX_PLOTTED} of {len(learned)} kernels "
            f"(choose others with --layer and --max-kernels)",
            file=sys.stderr,
        )
    n = MAX_PLOTTED
    plot_side_by_side(learned[:n], refs[:n], titles[:n], ref_titles[:n], path=path, overwrite=overwrite)


def _check_plot_path(path: str, overwrite: bool) -> None:
    from cnnconv.analysis.plotting import figure_format

    try:
        figure_format(path)
    except ValueError as exc:
        raise CommandError(f"--plot: {exc}") from None
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise CommandError(f"--plot is a directory, not a file: {path!r}")
    if os.path.lexists(path) and not overwrite:
        raise CommandError(f"refusing to overwrite existing file {path!r} (pass --overwrite)")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise CommandError(f"folder of --plot does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"folder of --plot is not writable: {folder!r}")


def _run_inspect(args) -> int:
    from cnnconv.analysis import MAX_KERNELS

    if args.top < 1:
        raise CommandError(f"--top must be positive, got {args.top}")
    if not 1 <= args.max_kernels <= MAX_KERNELS:
        raise CommandError(f"--max-kernels must be between 1 and {MAX_KERNELS}, got {args.max_kernels}")
    _check_indent(args.indent)
    if args.plot:
        _check_plot_path(args.plot, args.overwrite)
    import torch

    # One kernel at a time is small work: worker threads only cost (about 8x the CPU time on a
    # busy machine, measured on 64 kernels of 65536 taps).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with _Progress("reading the checkpoint", unit="kernels") as progress:
        try:
            layers = list(_inspect_layers(args, progress))
        finally:
            torch.set_num_threads(threads)
        for record, _, _ in layers:
            if record.note:
                print(f"{PROG}: warning: layer {_safe(record.label)}: {_safe(record.note)}", file=sys.stderr)
        if args.plot:
            progress.stage("drawing the figure")
            try:
                _plot_inspected(layers, args.plot, args.overwrite)
            except OSError as exc:
                raise CommandError(f"cannot write --plot {_abspath(args.plot)!r}: {exc.strerror or exc}") from None
    if args.json:
        _dump_json(_json_layers(args.path, layers, args.response), args.indent)
    else:
        _print_text(args.path, layers, sys.stdout)
        if args.plot:
            print(f"\nplot written to {_abspath(args.plot)}")
    return 0


INSPECT_EPILOG = """examples:
  cnnconv inspect model.pt
  cnnconv inspect model.pt --layer 'features.*' --top 1 --plot kernels.png
  cnnconv inspect model.pt --json --indent 2 > kernels.json

Takes a few seconds for a small model. ResNet-18 (1280 kernels) took 52 s on a 2-core CPU
under load, plus 40 s to draw --plot (which draws at most 64 kernels). Progress goes to stderr."""


def _add_inspect(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="describe and match the convolution kernels of a checkpoint",
        description=(
            "Describe every convolution kernel in a checkpoint (a saved state_dict, or a dict "
            "checkpoint holding one under 'model', 'state_dict', ...) and match it against the "
            "hand-designed kernels. Files are loaded with torch.load(weights_only=True): a file that "
            "needs arbitrary code to load is refused, never executed."
        ),
        epilog=INSPECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="checkpoint file")
    p.add_argument("--layer", help="only this layer (module or parameter name, or a glob like 'features.*')")
    p.add_argument(
        "--plot", metavar="FILE", help="write learned kernels next to their best matches (.png, .pdf or .svg)"
    )
    p.add_argument("--overwrite", action="store_true", help="allow --plot to replace an existing file")
    _add_json_options(p, "the report")
    p.add_argument("--response", action="store_true", help="with --json, include the frequency-response grids")
    p.add_argument("--top", type=int, default=3, help="best matches per kernel (default 3)")
    p.add_argument(
        "--max-kernels",
        type=int,
        default=64,
        metavar="N",
        help="kernels shown per layer (default 64; at most 4096 in all are inspected per run)",
    )
    p.set_defaults(func=_run_inspect)


# --------------------------------------------------------------------------- kernels


def _kernel_arguments(spec: str) -> tuple[str, dict]:
    """``NAME[:key=value,...]`` as ``(NAME, {key: value})``; values are Python literals
    (``1.5``, ``7``, ``True``) or else plain strings (``axis=x``)."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"kernel arguments must be key=value pairs separated by commas, got {_safe(spec)!r}")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name, kwargs


def _build_kernel(spec: str):
    """The bank kernel for ``NAME[:key=value,...]``, or a CommandError saying what is missing."""
    from cnnconv import kernels

    name, kwargs = _kernel_arguments(spec)
    try:
        return kernels.get_kernel(name, **kwargs)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith("unknown kernel name"):
            raise CommandError(str(exc)) from None
        if not kwargs:
            raise CommandError(
                f"kernel {_safe(name)!r} needs arguments ({exc}); give them as NAME:key=value,..., "
                f"e.g. gaussian:sigma=1.5,size=7"
            ) from None
        raise CommandError(f"kernel {_safe(spec)!r}: {exc}") from None


def _run_kernels(args) -> int:
    from cnnconv import kernels

    _check_indent(args.indent)
    if args.plot and not args.names:
        raise CommandError("--plot needs kernel names, e.g. cnnconv kernels sobel_x sobel_y --plot sobel.png")
    if args.plot:
        _check_plot_path(args.plot, args.overwrite)
    if args.names:
        built = {spec: _build_kernel(spec) for spec in args.names}
    else:  # the whole bank; kernels that need arguments are listed without a shape
        built = {}
        for name in kernels.list_kernels():
            try:
                built[name] = kernels.get_kernel(name)
            except (TypeError, ValueError):
                built[name] = None
    if args.plot:
        from cnnconv.analysis.plotting import plot_kernels

        try:  # one kernel per row, so each gets its own colour scale (bank kernels differ in amplitude)
            plot_kernels(list(built.values()), [_safe(spec) for spec in built], path=args.plot, ncols=1,
                         overwrite=args.overwrite)
        except OSError as exc:
            raise CommandError(f"cannot write --plot {_abspath(args.plot)!r}: {exc.strerror or exc}") from None
    if args.json:
        out = {}
        for spec, k in built.items():
            out[spec] = None if k is None else {"shape": list(k.shape)}
            if k is not None and args.names:
                out[spec]["values"] = k.detach().cpu().double().tolist()
        _dump_json(out, args.indent)
        return 0
    width = max(len(spec) for spec in built)
    for spec, k in built.items():
        print(f"{_safe(spec):<{width}}  {'x'.join(map(str, k.shape)) if k is not None else '(needs arguments)'}")
        if args.names and max(k.shape) <= MAX_VALUES_SIDE:
            for row in _value_rows(k.reshape(-1, k.shape[-1])):
                print(f"    {row}")
    if args.plot:
        print(f"\nplot written to {_abspath(args.plot)}")
    return 0


def _add_kernels(subparsers) -> None:
    p = subparsers.add_parser(
        "kernels",
        help="list, print or plot the hand-designed kernels of the bank",
        description=(
            "Without names: list the bank's kernels and their shapes. With names: print each "
            "kernel's values (up to 7x7), or draw them with --plot. A kernel that needs arguments "
            "takes them after a colon: gaussian:sigma=1.5,size=7."
        ),
        epilog=(
            "examples:\n"
            "  cnnconv kernels\n"
            "  cnnconv kernels sobel_x laplacian4\n"
            "  cnnconv kernels sobel_x sobel_y gaussian:sigma=1.5,size=7 --plot bank.png\n"
            "\nTakes about a second (plus 2-3 s to draw a figure)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="kernel names, e.g. sobel_x or gaussian:sigma=1.5,size=7")
    p.add_argument("--plot", metavar="FILE", help="draw the named kernels (.png, .pdf or .svg)")
    p.add_argument("--overwrite", action="store_true", help="allow --plot to replace an existing file")
    _add_json_options(p, "the kernels")
    p.set_defaults(func=_run_kernels)


# --------------------------------------------------------------------------- calibrate

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


def _crossover(shape, cout: int, groups: int, device: str) -> int | None:
    """Smallest odd kernel size (3 to 63) for which the planner picks the FFT, with the
    constants it loads for ``device``."""
    from cnnconv.planner import choose_method

    for k in range(3, 64, 2):
        if choose_method(shape, (cout, shape[1] // groups, k, k), groups=groups, device=device) == "fft":
            return k
    return None


def _calibration_summary(consts: dict, device: str, seconds: float, path) -> list[str]:
    """A few lines: each fitted constant with its unit, the crossovers it implies (when the
    planner uses these constants), the path."""
    import torch

    from cnnconv.planner import calibration_path, direct_cost, load_constants

    def rate(cin, cout, cin_g, k):  # seconds per multiply-add of the direct convolution
        return (direct_cost(1, cout, cin_g, (1, 1), (k, k), consts, cin=cin) - consts["t0_direct"]) / (cout * cin_g * k * k)

    lines = [
        f"calibrated {device} in {seconds:.0f} s",
        f"  FFT              {_ns(consts['fft'])} ns per point x log2(points) of a transform",
        f"  spectral mix     {_ns(consts['matmul'])} ns per complex multiply-add (dense), "
        f"{_ns(consts['elementwise'])} ns per complex product (depthwise)",
    ]
    for text, cin, cout, cin_g in (("64->64", 64, 64, 64), ("depthwise", 3, 3, 1)):
        rates = ", ".join(f"{_ns(rate(cin, cout, cin_g, k))} at {k}x{k}" for k in (3, 31))
        lines.append(f"  {'direct ' + text:<16} ns per multiply-add: {rates}")
    lines.append(f"  start-up         FFT {_duration(consts['t0_fft'])}, direct {_duration(consts['t0_direct'])} per call")
    if load_constants(torch.device(device).type) == consts:
        for i, (text, *case) in enumerate(CROSSOVER_CASES):
            k = _crossover(*case, device)
            found = f"the planner picks the FFT from {k}x{k} kernels" if k else "direct up to 63x63 kernels"
            lines.append(f"  {'' if i else 'crossover':<16} {text}: {found}")
    else:
        lines.append(f"  crossover        not in use: the planner reads {_abspath(calibration_path())}")
    lines.append(f"written to {_abspath(path)}")
    return lines


def _run_calibrate(args) -> int:
    try:
        from cnnconv import planner
    except ImportError as exc:
        raise CommandError(f"calibration is not available: {exc}") from None
    calibrate = getattr(planner, "calibrate", None)
    if calibrate is None:
        raise CommandError("calibration is not available in this version of cnnconv")
    _check_indent(args.indent)
    kwargs = {"path": args.path, "quick": args.quick}
    device = "cpu"
    if args.device is not None:
        kwargs["device"] = _check_device(args.device)
        device = args.device
    expected = "a few seconds" if args.quick else "about 50 s on a 2-core CPU"
    start = time.monotonic()
    try:
        with _Progress(f"calibrating {device}", note=f"expected: {expected}"):
            result = calibrate(**kwargs)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = getattr(planner, "calibration_path", None)
        hint = f"; is the calibration file {_abspath(where(args.path))!r} damaged? remove it" if where else ""
        raise CommandError(f"calibration failed: {type(exc).__name__}: {exc}{hint}") from None
    if args.json:
        _dump_json(result, args.indent)
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


def _add_calibrate(subparsers) -> None:
    p = subparsers.add_parser(
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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--path", help="where to write the calibration (default: the cache folder)")
    p.add_argument("--quick", action="store_true", help="fewer, smaller measurements")
    p.add_argument("--device", help="device to calibrate: cpu or cuda[:N] (default: cpu)")
    _add_json_options(p, "the fitted constants")
    p.set_defaults(func=_run_calibrate)


# --------------------------------------------------------------------------- entry point

def _add_run(subparsers) -> None:
    from cnnconv.cli.runner import add_run_parser

    add_run_parser(subparsers)


def _add_bench(subparsers) -> None:
    from cnnconv.cli.runner import add_bench_parser

    add_bench_parser(subparsers)


COMMANDS: list[Callable] = [_add_inspect, _add_kernels, _add_calibrate, _add_run, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    import torch

    from cnnconv import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="cnnconv: learnable and fixed convolutions for PyTorch.",
        epilog="Run 'cnnconv COMMAND --help' for a command's options, examples and expected duration.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} (torch {torch.__version__})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in COMMANDS:
        add(subparsers)
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: error: {_safe(message)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run the ``cnnconv`` command; returns the exit status.

    Errors (missing file, refused file, no convolutions, bad arguments, unreadable or unwritable
    files, out of memory) are printed as one line ``cnnconv: error: ...`` on stderr with exit
    status 2, without a traceback; control characters in the message are escaped.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from cnnconv.analysis import InspectError

    try:
        return int(args.func(args) or 0)
    except (CommandError, InspectError) as exc:
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(str(exc))
    except ImportError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # e.g. `cnnconv inspect ... | head`
        return 0
    except (OSError, ValueError, TypeError, RuntimeError, MemoryError) as exc:
        return _error(f"{type(exc).__name__}: {exc}")
