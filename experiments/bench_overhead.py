"""Per-call overhead of ``convert(model, method="auto")`` where every layer stays direct.

Run as ``python -m experiments.bench_overhead [--calls N] [--rounds R] [--threads T] [--clock C]``
(``--threads 1 --clock process`` measures this process's CPU time, steadier on a busy machine).

Cases: torchvision ``mobilenet_v3_small``, ``efficientnet_b0`` and ``resnet18`` (``weights=None``,
eval mode, batch 1, 224x224, under ``torch.inference_mode``), the original model against a
converted copy (same weights), and one 3x3 16->16 layer on a 1x16x32x32 input, ``FFTConv2d``
with ``method="auto"`` against ``nn.Conv2d``. At these sizes the planner keeps every layer
direct (checked: the ``last_method`` of every converted layer), so the ratio is the price of the
layer-side dispatch alone.

Timing is interleaved: in each round, ``--calls`` calls of each side alternate (the side that
goes first alternates too), after one untimed warm-up call of each. A round's time per side is
the median of its calls; the table gives the median of the round medians, the ratio
converted/original of those, and the range of the per-round ratios. Targets: at most 1.03x for
the models, at most 1.1x for the single layer.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn

from cnnconv.conv import FFTConv1d, FFTConv2d, FFTConv3d, convert

from .timing import add_clock_options, use_clock_options

MODEL_TARGET = 1.03
LAYER_TARGET = 1.1


def _require():
    try:
        import torchvision
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"bench_overhead needs torchvision ({err}); install it with: pip install 'cnnconv[experiments]'"
        ) from err
    return torchvision


def time_pair(original, converted, calls: int, rounds: int, clock=time.perf_counter) -> tuple[list[float], list[float]]:
    """Round medians (seconds of ``clock``) of ``original()`` and ``converted()``, timed interleaved."""
    original()
    converted()
    fns = (original, converted)
    medians: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        times: tuple[list[float], list[float]] = ([], [])
        for i in range(calls):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                t0 = clock()
                fns[side]()
                times[side].append(clock() - t0)
        for side in (0, 1):
            medians[side].append(statistics.median(times[side]))
    return medians


def _cases(torchvision):
    """``(name, original module, converted module, input, target)`` for every row."""
    for name in ("mobilenet_v3_small", "efficientnet_b0", "resnet18"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        yield name, model, convert(copy.deepcopy(model), method="auto"), torch.randn(1, 3, 224, 224), MODEL_TARGET
    torch.manual_seed(0)
    layer = nn.Conv2d(16, 16, 3, padding=1)
    auto = FFTConv2d(16, 16, 3, padding=1, method="auto")
    auto.load_state_dict(layer.state_dict())
    yield "conv 3x3 16->16, 1x16x32x32", layer, auto, torch.randn(1, 16, 32, 32), LAYER_TARGET


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.bench_overhead",
        description="Time converted (method='auto') models and a small FFTConv2d against the originals.",
    )
    parser.add_argument("--calls", type=int, default=9, help="timed calls per side per round (median); default 9")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; default 5")
    add_clock_options(parser, "torch thread count (default: torch's)")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error(f"--calls must be positive, got {args.calls}")
    if args.rounds < 1:
        parser.error(f"--rounds must be positive, got {args.rounds}")
    clock = use_clock_options(parser, args)
    torchvision = _require()

    print(
        f"convert(method='auto') overhead, CPU float32, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"inference_mode, median of {args.calls} interleaved calls per round, {args.rounds} rounds, {args.clock} times in ms"
    )
    header = f"{'case':<30}{'layers':>7}{'original':>10}{'auto':>10}{'ratio':>8}{'round ratios':>16}  result"
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, original, converted, x, target in _cases(torchvision):
        with torch.inference_mode():
            diff = float((converted(x) - original(x)).abs().max() / original(x).abs().max())
            orig_t, conv_t = time_pair(lambda: original(x), lambda: converted(x), args.calls, args.rounds, clock)
        layers = [m for m in converted.modules() if isinstance(m, (FFTConv1d, FFTConv2d, FFTConv3d))]
        if any(m.last_method != "direct" for m in layers) or diff > 1e-5:
            raise RuntimeError(f"{name}: a layer did not stay direct or the outputs differ ({diff:.1e})")
        ratios = [c / o for o, c in zip(orig_t, conv_t)]
        o, c = statistics.median(orig_t), statistics.median(conv_t)
        ok = c / o <= target
        all_pass &= ok
        print(
            f"{name:<30}{len(layers):>7}{o * 1e3:>10.3f}{c * 1e3:>10.3f}{c / o:>8.3f}"
            f"{f'{min(ratios):.3f}-{max(ratios):.3f}':>16}  {'PASS' if ok else 'FAIL'} (<= {target:g}x)"
        )
    print("all targets met" if all_pass else "some targets not met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
