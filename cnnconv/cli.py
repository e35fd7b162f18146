"""The ``cnnconv`` command line (also ``python -m cnnconv``).

Commands are registered by one small function each (``_add_<command>``) listed in
``COMMANDS``; each sets a handler ``func(args) -> int``. ``cnnconv --help`` lists them all.

Example:
    cnnconv inspect model.pt --layer features.0 --top 3
    cnnconv inspect model.pt --json > kernels.json
    cnnconv kernels
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from typing import Callable

PROG = "cnnconv"
MAX_VALUES_SIDE = 7  # kernel values are printed for kernels up to 7x7


class CommandError(Exception):
    """An error reported as ``cnnconv: error: ...`` with exit status 2."""


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


def _inspect_layers(args):
    """Yield per layer: (record, [(index, kernel, description, matches)], total).

    Every layer's shape is checked against the size limits before any kernel is read; at most
    ``--max-kernels`` kernels per layer and :data:`cnnconv.inspect.MAX_KERNELS` in all are read.
    """
    import torch

    from cnnconv.inspect import MAX_KERNELS, describe_kernel, extract_kernels, kernel_size_error, match_kernel

    records = extract_kernels(args.path, layer=args.layer)
    for record in records:
        dims = "x".join(map(str, record.shape))
        if 0 in record.shape:
            raise CommandError(f"layer {_safe(record.label)} has an empty weight of shape {dims} (zero-size kernels)")
        problem = kernel_size_error(record.shape[2:])
        if problem:
            raise CommandError(f"layer {_safe(record.label)} (shape {dims}): {problem}; pick other layers with --layer")
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
    from cnnconv.inspect import MAX_KERNELS

    print(_safe(path), file=out)
    shown = 0
    for record, items, total in layers:
        label, parameter = _safe(record.label), _safe(record.parameter)
        flag = "  [parametrized: see the note]" if record.note else ""
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
    out = {"path": str(path), "layers": []}
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
    from cnnconv.plotting import plot_side_by_side

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
    plot_side_by_side(learned, refs, titles, ref_titles, path=path, overwrite=overwrite)


def _check_plot_path(path: str, overwrite: bool) -> None:
    from cnnconv.plotting import figure_format

    try:
        figure_format(path)
    except ValueError as exc:
        raise CommandError(f"--plot: {exc}") from None
    if os.path.isdir(path):
        raise CommandError(f"--plot is a directory, not a file: {path!r}")
    if os.path.lexists(path) and not overwrite:
        raise CommandError(f"refusing to overwrite existing file {path!r} (pass --overwrite)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"folder of --plot does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"folder of --plot is not writable: {folder!r}")


def _run_inspect(args) -> int:
    from cnnconv.inspect import MAX_KERNELS

    if args.top < 1:
        raise CommandError(f"--top must be positive, got {args.top}")
    if not 1 <= args.max_kernels <= MAX_KERNELS:
        raise CommandError(f"--max-kernels must be between 1 and {MAX_KERNELS}, got {args.max_kernels}")
    if args.plot:
        _check_plot_path(args.plot, args.overwrite)
    import torch

    # One kernel at a time is small work: worker threads only cost (about 8x the CPU time on a
    # busy machine, measured on 64 kernels of 65536 taps).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        layers = list(_inspect_layers(args))
    finally:
        torch.set_num_threads(threads)
    for record, _, _ in layers:
        if record.note:
            print(f"{PROG}: warning: layer {_safe(record.label)}: {_safe(record.note)}", file=sys.stderr)
    if args.plot:
        try:
            _plot_inspected(layers, args.plot, args.overwrite)
        except OSError as exc:
            raise CommandError(f"cannot write --plot {args.plot!r}: {exc.strerror or exc}") from None
    if args.json:
        json.dump(_json_layers(args.path, layers, args.response), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(args.path, layers, sys.stdout)
        if args.plot:
            print(f"\nplot written to {_safe(args.plot)}")
    return 0


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
    )
    p.add_argument("path", help="checkpoint file")
    p.add_argument("--layer", help="only this layer (module or parameter name, or a glob like 'features.*')")
    p.add_argument(
        "--plot", metavar="FILE", help="write learned kernels next to their best matches (.png, .pdf or .svg)"
    )
    p.add_argument("--overwrite", action="store_true", help="allow --plot to replace an existing file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
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


def _run_kernels(args) -> int:
    from cnnconv import kernels

    names = kernels.list_kernels()
    if args.json:
        out = {}
        for name in names:
            try:
                k = kernels.get_kernel(name)
            except (TypeError, ValueError):
                out[name] = None
                continue
            out[name] = {"shape": list(k.shape)}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for name in names:
        try:
            shape = "x".join(map(str, kernels.get_kernel(name).shape))
        except (TypeError, ValueError):
            shape = "(needs arguments)"
        print(f"{name:<14} {shape}")
    return 0


def _add_kernels(subparsers) -> None:
    p = subparsers.add_parser("kernels", help="list the hand-designed kernels of the bank")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_kernels)


# --------------------------------------------------------------------------- calibrate


def _run_calibrate(args) -> int:
    try:
        from cnnconv import planner
    except ImportError as exc:
        raise CommandError(f"calibration is not available: {exc}") from None
    calibrate = getattr(planner, "calibrate", None)
    if calibrate is None:
        raise CommandError("calibration is not available in this version of cnnconv")
    kwargs = {"path": args.path, "quick": args.quick}
    if args.device is not None:
        kwargs["device"] = _check_device(args.device)
    try:
        result = calibrate(**kwargs)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = getattr(planner, "calibration_path", None)
        hint = f"; is the calibration file {str(where())!r} damaged? remove it" if where else ""
        raise CommandError(f"calibration failed: {type(exc).__name__}: {exc}{hint}") from None
    if result is not None:
        try:
            print(json.dumps(_clean(result), indent=2, default=str))
        except TypeError:
            print(result)
    return 0


def _check_device(spec: str) -> str:
    """``spec`` if it names a device this machine has, else a CommandError."""
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
    elif device.type != "cpu":
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError):
            raise CommandError(f"--device {spec!r} is not available on this machine") from None
    return spec


def _add_calibrate(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="refit the planner's cost model on this machine and cache it")
    p.add_argument("--path", help="where to write the calibration (default: the cache folder)")
    p.add_argument("--quick", action="store_true", help="fewer, smaller measurements")
    p.add_argument("--device", help="device to calibrate, e.g. cuda (default: cpu)")
    p.set_defaults(func=_run_calibrate)


# --------------------------------------------------------------------------- entry point

COMMANDS: list[Callable] = [_add_inspect, _add_kernels, _add_calibrate]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="cnnconv: learnable and fixed convolutions for PyTorch.",
    )
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
        parser.print_help()
        return 2
    from cnnconv.inspect import InspectError

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
