"""``torch.compile`` of models converted to FFT layers: graph breaks, recompiles and time.

Run as ``python -m experiments.bench_compile [--models resnet18 convnext_tiny]
[--min-kernel-size K] [--backend inductor] [--calls N] [--threads T] [--clock C]``.

Each torchvision model (``weights=None``, train mode, batch 1, 224x224) is converted with
``convert(model, method="fft", min_kernel_size=K)``. The default ``K=1`` converts every
convolution: with ``convert``'s own default (9) these models, whose largest kernels are 7x7,
keep every layer as it is and there would be nothing to measure. For each model the script
prints:

* the graph breaks ``torch._dynamo.explain`` reports whose reason or stack mentions cnnconv
  (and the total count of graphs and breaks);
* the recompile warnings raised while compiling and running the model;
* eager and compiled forward+backward times: the median of ``--calls`` calls after one untimed
  warm-up call each (the compiled model's first call, which compiles, is timed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn as nn

from cnnconv.conv import FFTConv1d, FFTConv2d, FFTConv3d, convert

from .common import require
from .timing import add_clock_options, use_clock_options

MODELS = ("resnet18", "convnext_tiny")


def cnnconv_breaks(model: nn.Module, x: torch.Tensor) -> tuple[int, int, list[str]]:
    """Graph count, graph break count and the break reasons that mention cnnconv."""
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    ours = []
    for b in explained.break_reasons:
        where = " ".join(str(frame) for frame in getattr(b, "user_stack", []))
        if "cnnconv" in f"{b.reason} {where}":
            ours.append(b.reason.splitlines()[0])
    return explained.graph_count, explained.graph_break_count, ours


def step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward+backward of ``model`` on ``x``."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return run


def median_time(fn: Callable[[], None], calls: int, clock: Callable[[], float]) -> float:
    """Median seconds of ``calls`` calls of ``fn`` after one untimed call."""
    fn()
    times = []
    for _ in range(calls):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--min-kernel-size", type=int, default=1, help="convert layers with kernels at least this")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per side (median)")
    add_clock_options(parser, "torch threads")
    args = parser.parse_args(argv)
    clock = use_clock_options(parser, args)
    torchvision = require("torchvision")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    header = (
        f"{'model':<15}{'FFT layers':>11}{'graphs':>8}{'breaks':>8}{'in cnnconv':>11}{'recompile warn.':>16}"
        f"{'eager ms':>10}{'compile s':>10}{'compiled ms':>12}{'speed-up':>9}"
    )
    rows, reasons = [], {}
    for name in args.models:
        model = convert(getattr(torchvision.models, name)(weights=None), "fft", args.min_kernel_size)
        layers = sum(isinstance(m, (FFTConv1d, FFTConv2d, FFTConv3d)) for m in model.modules())
        graphs, breaks, ours = cnnconv_breaks(model, x)
        reasons[name] = ours
        eager = median_time(step(model, x), args.calls, clock)
        torch._dynamo.reset()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled = torch.compile(model, backend=args.backend)
            t0 = time.perf_counter()
            step(compiled, x)()
            first = time.perf_counter() - t0
            fast = median_time(step(compiled, x), args.calls, clock)
        recompiles = sum("recompile" in str(w.message).lower() for w in caught)
        rows.append(
            f"{name:<15}{layers:>11}{graphs:>8}{breaks:>8}{len(ours):>11}{recompiles:>16}"
            f"{eager * 1e3:>10.1f}{first:>10.1f}{fast * 1e3:>12.1f}{eager / fast:>8.2f}x"
        )
    print(f"forward+backward, batch 1, 3x224x224, {torch.get_num_threads()} threads, backend {args.backend}")
    print(header)
    print("-" * len(header))
    print("\n".join(rows))
    for name, ours in reasons.items():
        for reason in ours:
            print(f"{name}: graph break in cnnconv: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
