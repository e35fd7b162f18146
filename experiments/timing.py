"""Timing, tables and charts of the benchmarks: best-of-n wall times, markdown tables of
times and ratios printed as they are measured, and log-log time charts.

Example:
    >>> t = timeit(lambda: sum(range(100)), repeat=2)
    >>> t > 0
    True
    >>> table("Times", ["case", "time (ms)", "ratio"], [["a", ms(0.0123), 1234.5]])
    <BLANKLINE>
    Times
    <BLANKLINE>
    | case | time (ms) | ratio |
    |---|---|---|
    | a | 12.30 | 1234 |
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time

import numpy as np
import torch

from .common import markdown_table, new_figure

__all__ = ["add_clock_options", "use_clock_options", "timeit", "once", "heartbeat", "ms", "number",
           "table", "time_chart"]


def add_clock_options(parser: argparse.ArgumentParser, threads_help: str) -> None:
    """Add ``--threads`` (``threads_help``) and ``--clock wall|process`` to a benchmark's parser;
    :func:`use_clock_options` applies them."""
    parser.add_argument("--threads", type=int, default=None, help=threads_help)
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="wall-clock time (default) or this process's CPU time (steadier on a busy machine; use with --threads 1)",
    )


def use_clock_options(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Check ``--threads`` (a parser error unless positive), set torch's thread count to it and
    return the clock ``--clock`` names: ``time.perf_counter`` or ``time.process_time``."""
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    return time.perf_counter if args.clock == "wall" else time.process_time


def timeit(fn, repeat: int = 3, budget: float = 5.0) -> float:
    """Best wall time of at least ``repeat`` calls (more for fast calls, up to about 0.3 s of
    timing, so that short cases are not at the mercy of one interruption; only one call when
    it takes more than ``budget / 2``)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first * 2 > budget:
        return first
    best, spent, count = first, first, 0
    while count < repeat or (spent < 0.3 and count < 50):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, count = min(best, dt), spent + dt, count + 1
    return best


def once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@contextlib.contextmanager
def heartbeat(label: str, every: float = 15.0, *, prog: str, hint: str):
    """Say on stderr that a slow timing started, then every ``every`` seconds that it still runs
    (one call of a direct convolution can take minutes and shows nothing otherwise).

    Args:
        label: What is being timed.
        every: Seconds between the lines.
        prog: The benchmark's name, which starts every line.
        hint: How to skip the slow timing, shown in the first line.
    """
    t0 = time.monotonic()
    print(f"{prog}: timing {label} (slow; {hint})", file=sys.stderr, flush=True)
    done = threading.Event()

    def beat():
        while not done.wait(every):
            print(f"{prog}: still timing {label}, {time.monotonic() - t0:.0f} s so far",
                  file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def ms(t: float | np.ndarray) -> float | np.ndarray:
    """Seconds to milliseconds (a number or an array of them)."""
    return t * 1e3


def number(v) -> str:
    """A table cell of times and ratios: ``n/a`` for NaN, 0, 2 or 3 significant decimals by size.

    Example:
        >>> number(1234.5), number(12.345), number(0.012345), number(float("nan")), number("x")
        ('1234', '12.35', '0.0123', 'n/a', 'x')
    """
    if isinstance(v, float):
        if v != v:
            return "n/a"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print ``title`` and a markdown table of ``rows`` (cells through :func:`number`) at once."""
    print(f"\n{title}\n")
    print(markdown_table(header, rows, number), flush=True)


def time_chart(series: dict, guides: dict, xticks, xlabel: str, title: str):
    """Log-log chart of times: ``series`` ``{label: (x, seconds)}`` as lines with markers (the
    ``auto`` series dashed over the others), ``guides`` ``{label: (x, seconds, linestyle)}`` as
    thin black reference slopes. The x ticks are ``xticks`` written plainly (no ``3x10^0``); the
    y axis has one labelled tick per decade, in ms; the legend sits outside the axes.

    Returns:
        A matplotlib Figure (constrained layout, Agg canvas).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

    fig = new_figure(8.5, 5)
    ax = fig.add_subplot()
    for label, (x, t) in series.items():
        ax.loglog(x, ms(np.asarray(t, dtype=float)), "x--" if label == "auto" else "o-", label=label)
    for label, (x, t, ls) in guides.items():
        ax.loglog(x, ms(np.asarray(t, dtype=float)), color="k", ls=ls, lw=1, label=label)
    ax.xaxis.set_major_locator(FixedLocator(list(xticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(xticks) > 6:  # leave room between the labels
        ax.tick_params(axis="x", labelrotation=45)
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=30))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("time (ms, log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.12)
    fig.legend(loc="outside right upper", fontsize=9)
    return fig
