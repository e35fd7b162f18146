"""``cnnconv inspect``: describe and match the convolution kernels of a checkpoint."""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

from cnnconv.cli.output import (
    MAX_VALUES_SIDE,
    PROG,
    CommandError,
    abspath,
    add_command,
    add_json_options,
    add_plot_options,
    check_indent,
    check_plot_path,
    clean,
    dump_json,
    fmt,
    safe,
    value_rows,
    writing_plot,
)
from cnnconv.cli.progress import Progress

MAX_PLOTTED = 64  # inspect --plot draws at most this many kernels (beyond, panels get too small)


def _orientation_text(d) -> str:
    if d.orientation_strength is None or not math.isfinite(d.orientation) or d.orientation_strength < 0.05:
        return "isotropic"
    return f"{d.orientation:.1f} deg (strength {d.orientation_strength:.2f})"


def _match_text(m) -> str:
    params = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in m.params.items())
    text = f"{m.name:<13} similarity {m.similarity:.4f}  transform {m.transform:<20} scale {fmt(m.scale)}"
    if m.sigma is not None:
        text += f"  sigma {m.sigma:.4f}"
    elif params:
        text += f"  ({params})"
    if m.start is not None:
        text += f"  from tap {m.start}"
    return text


def _inspect_layers(args: Any, progress: Progress) -> Iterator[tuple[Any, list, int]]:
    """Yield per layer: (record, [(index, kernel, description, matches)], total).

    Every layer's shape is checked against the size limits before any kernel is read; at most
    ``--max-kernels`` kernels per layer and :data:`cnnconv.analysis.MAX_KERNELS` in all are read,
    each counted on ``progress``.
    """
    import torch

    from cnnconv.analysis import (
        MAX_KERNELS,
        describe_kernel,
        extract_kernels,
        kernel_size_error,
        match_kernel,
    )

    records = extract_kernels(args.path, layer=args.layer)
    for record in records:
        dims = "x".join(map(str, record.shape))
        if 0 in record.shape:
            raise CommandError(f"layer {safe(record.label)} has an empty weight of shape {dims} (zero-size kernels)")
        problem = kernel_size_error(record.shape[2:])
        if problem:
            raise CommandError(f"layer {safe(record.label)} (shape {dims}): {problem}; pick other layers with --layer")
    counts = [min(args.max_kernels, record.count) for record in records]
    progress.stage("inspecting", min(sum(counts), MAX_KERNELS))
    budget = MAX_KERNELS
    for record in records:
        items = []
        for index, kernel in itertools.islice(record.kernels(), min(args.max_kernels, budget)):
            kernel = kernel.to(torch.float64)
            if not bool(torch.isfinite(kernel).all()):
                raise CommandError(
                    f"layer {safe(record.label)} kernel [out {index[0]}, in {index[1]}] has NaN or inf values "
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
        return f"two-sided ({fmt(balance, 3)})"
    return f"one-sided, energy at the {'end' if balance > 0 else 'start'} ({fmt(balance, 3)})"


def _print_description(d, out) -> None:
    print(
        f"  dc_gain {fmt(d.dc_gain)}  l2_norm {fmt(d.l2_norm)}  symmetry {fmt(d.symmetry, 3)}  "
        f"antisymmetry {fmt(d.antisymmetry, 3)}"
        + ("" if len(d.shape) == 1 else f"  separability {fmt(d.separability, 3)}"),
        file=out,
    )
    if len(d.shape) == 1:
        print(
            f"  energy 90% in {d.length_90} taps, 99% in {d.length_99}  decay_rate {fmt(d.decay_rate)}/tap  "
            f"{_side_text(d.side_balance)}",
            file=out,
        )
        print(
            f"  bandwidth -3dB {fmt(d.bandwidth_3db, 3)}, 90% energy below {fmt(d.bandwidth_90, 3)} cycles/sample  "
            f"peak_frequency {d.peak_frequency:.3f} (gain {fmt(d.peak_gain)})",
            file=out,
        )
        return
    print(
        f"  orientation {_orientation_text(d)}  peak_frequency {d.peak_frequency:.3f} cycles/px "
        f"(gain {fmt(d.peak_gain)})",
        file=out,
    )


def _print_text(path, layers, out) -> None:
    from cnnconv.analysis import MAX_KERNELS

    print(abspath(path), file=out)
    shown = 0
    for record, items, total in layers:
        label, parameter = safe(record.label), safe(record.parameter)
        flag = "  [see the note]" if record.note else ""
        print(f"\nlayer {label}  ({parameter}, shape {'x'.join(map(str, record.shape))}){flag}", file=out)
        if record.note:
            print(f"note: {safe(record.note)}", file=out)
        print("-" * 78, file=out)
        for index, kernel, d, matches in items:
            print(f"kernel [out {index[0]}, in {index[1]}]  {'x'.join(map(str, d.shape))}", file=out)
            if max(d.shape) <= MAX_VALUES_SIDE:
                for row in value_rows(kernel.reshape(-1, d.shape[-1])):
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
            hint = (
                "raise --max-kernels" if shown < MAX_KERNELS else f"at most {MAX_KERNELS} kernels are inspected per run"
            )
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
    return clean(out)


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
            titles.append(safe(f"{record.label}[{index[0]},{index[1]}]"))
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


def _run_inspect(args: Any) -> int:
    from cnnconv.analysis import MAX_KERNELS

    if args.top < 1:
        raise CommandError(f"--top must be positive, got {args.top}")
    if not 1 <= args.max_kernels <= MAX_KERNELS:
        raise CommandError(f"--max-kernels must be between 1 and {MAX_KERNELS}, got {args.max_kernels}")
    check_indent(args.indent)
    if args.plot:
        check_plot_path(args.plot, args.overwrite)
    import torch

    # One kernel at a time is small work: worker threads only cost (about 8x the CPU time on a
    # busy machine, measured on 64 kernels of 65536 taps).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with Progress("reading the checkpoint", unit="kernels") as progress:
        try:
            layers = list(_inspect_layers(args, progress))
        finally:
            torch.set_num_threads(threads)
        for record, _, _ in layers:
            if record.note:
                print(f"{PROG}: warning: layer {safe(record.label)}: {safe(record.note)}", file=sys.stderr)
        if args.plot:
            progress.stage("drawing the figure")
            with writing_plot(args.plot):
                _plot_inspected(layers, args.plot, args.overwrite)
    if args.json:
        dump_json(_json_layers(args.path, layers, args.response), args.indent)
    else:
        _print_text(args.path, layers, sys.stdout)
        if args.plot:
            print(f"\nplot written to {abspath(args.plot)}")
    return 0


INSPECT_EPILOG = """examples:
  cnnconv inspect model.pt
  cnnconv inspect model.pt --layer 'features.*' --top 1 --plot kernels.png
  cnnconv inspect model.pt --json --indent 2 > kernels.json

Takes a few seconds for a small model. ResNet-18 (1280 kernels) took 52 s on a 2-core CPU
under load, plus 40 s to draw --plot (which draws at most 64 kernels). Progress goes to stderr."""


def add_inspect(subparsers: Any) -> None:
    """Register the ``inspect`` command."""
    p = add_command(
        subparsers,
        "inspect",
        help="describe and match the convolution kernels of a checkpoint",
        description=(
            "Describe every convolution kernel in a checkpoint (a saved state_dict, or a dict "
            "checkpoint holding one under 'model', 'state_dict', ...) and match it against the "
            "hand-designed kernels. Files are loaded with torch.load(weights_only=True): a file that "
            "needs arbitrary code to load is refused, never executed."
        ),
        epilog=INSPECT_EPILOG,
    )
    p.add_argument("path", help="checkpoint file")
    p.add_argument("--layer", help="only this layer (module or parameter name, or a glob like 'features.*')")
    add_plot_options(p, "write learned kernels next to their best matches (.png, .pdf or .svg)")
    add_json_options(p, "the report")
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
