"""Whole models converted with ``convert(model, method="auto")`` against the originals.

Run as ``python -m experiments.bench_models [--calls N] [--rounds R] [--threads T] [--models a,b]``.

Cases (CPU, float32, ``weights=None``: nothing is downloaded):

- torchvision ``resnet18`` (3x3 and 7x7 convolutions, batch 2, 224x224): ``auto`` should keep every
  layer direct, so the converted model costs at most 1.05x the original;
- torchvision ``convnext_tiny`` (7x7 depthwise convolutions, batch 1, 224x224): the same target;
- a RepLKNet-style network (depthwise 31x31 / 27x27 / 13x13 kernels with a parallel 5x5 depthwise
  branch, as in Ding et al., CVPR 2022; batch 1, 224x224), where ``auto`` should choose the FFT for
  the large kernels: target at least 3x faster forward+backward.

Forward runs under ``torch.inference_mode`` in eval mode; forward+backward runs ``model(x).sum()
.backward()`` in eval mode (fixed batch-norm statistics, so both sides compute the same). Each row
gives the median of round medians of interleaved calls (:func:`experiments.bench_overhead.time_pair`),
the ratio converted/original, and how many converted layers ``auto`` ran with each method.
"""

from __future__ import annotations

import argparse
import collections
import copy
import statistics
import time

import torch
import torch.nn as nn

from cnnconv.conv import _FFTConvMixin, convert

from .bench_overhead import time_pair

TARGETS = {"resnet18": 1.05, "convnext_tiny": 1.05, "replknet_style": 1 / 3}


class LargeKernelBlock(nn.Module):
    """RepLKNet's block: 1x1 -> (depthwise k x k + depthwise 5x5) -> BN -> 1x1, with a residual."""

    def __init__(self, channels: int, kernel_size: int, small: int = 5):
        super().__init__()
        self.pw1 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.large = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
        self.small = nn.Conv2d(channels, channels, small, padding=small // 2, groups=channels, bias=False)
        self.pw2 = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw1(x)
        return x + self.pw2(self.large(y) + self.small(y))


def replknet_style(num_classes: int = 1000) -> nn.Sequential:
    """A small RepLKNet-like classifier: stem to 56x56, four stages with kernels 31, 29, 27, 13."""
    widths, kernels = (64, 128, 256, 512), (31, 29, 27, 13)
    layers: list[nn.Module] = [
        nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
        nn.Conv2d(widths[0], widths[0], 3, stride=2, padding=1, groups=widths[0], bias=False), nn.ReLU(),
    ]
    for i, (c, k) in enumerate(zip(widths, kernels)):
        if i:
            layers += [nn.Conv2d(widths[i - 1], c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c, bias=False), nn.ReLU()]
        layers += [LargeKernelBlock(c, k), LargeKernelBlock(c, k)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes)]
    return nn.Sequential(*layers)


def _models(names):
    try:
        import torchvision
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"bench_models needs torchvision ({err}): pip install 'cnnconv[experiments]'") from err
    builders = {
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), 2),
        "convnext_tiny": (lambda: torchvision.models.convnext_tiny(weights=None), 1),
        "replknet_style": (replknet_style, 1),
    }
    for name in names:
        if name not in builders:
            raise SystemExit(f"--models: unknown model {name!r}; choose from {', '.join(builders)}")
        torch.manual_seed(0)
        build, batch = builders[name]
        model = build().eval()
        yield name, model, torch.randn(batch, 3, 224, 224)


def _fwd_bwd(model, x):
    def run():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.bench_models",
        description="Time torchvision resnet18 / convnext_tiny and a RepLKNet-style network converted with "
        "convert(method='auto') against the originals, forward and forward+backward, in one run.",
    )
    parser.add_argument("--calls", type=int, default=3, help="timed calls per side per round (median); default 3")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; default 3")
    parser.add_argument("--threads", type=int, default=None, help="torch thread count (default: torch's)")
    parser.add_argument("--models", default="resnet18,convnext_tiny,replknet_style",
                        help="comma-separated subset of resnet18, convnext_tiny, replknet_style")
    args = parser.parse_args(argv)
    for flag in ("calls", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be positive, got {getattr(args, flag)}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    print(f"convert(method='auto') on whole models, CPU float32, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), median of {args.calls} interleaved calls x {args.rounds} rounds, ms")
    header = (f"{'model':<16}{'pass':<9}{'original':>10}{'auto':>10}{'ratio':>8}{'round ratios':>15}"
              f"  {'auto chose':<24}result")
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, original, x in _models(args.models.split(",")):
        converted = convert(copy.deepcopy(original), method="auto")
        with torch.inference_mode():
            ref = original(x)
            diff = float((converted(x) - ref).abs().max() / ref.abs().max())
        if diff > 1e-4:
            raise RuntimeError(f"{name}: converted outputs differ from the original by {diff:.1e} (relative)")
        chose = collections.Counter(m.last_method for m in converted.modules() if isinstance(m, _FFTConvMixin))
        for label, fns in (
            ("forward", (lambda: original(x), lambda: converted(x))),
            ("fwd+bwd", (_fwd_bwd(original, x), _fwd_bwd(converted, x))),
        ):
            ctx = torch.inference_mode() if label == "forward" else torch.enable_grad()
            with ctx:
                orig_t, conv_t = time_pair(*fns, args.calls, args.rounds, time.perf_counter)
            ratios = [c / o for o, c in zip(orig_t, conv_t)]
            o, c = statistics.median(orig_t), statistics.median(conv_t)
            target = TARGETS[name]
            ok = c / o <= target
            all_pass &= ok
            text = ", ".join(f"{k} {v}" for k, v in sorted(chose.items()))
            goal = f"<= {target:g}x" if target >= 1 else f">= {1 / target:g}x faster"
            print(f"{name:<16}{label:<9}{o * 1e3:>10.1f}{c * 1e3:>10.1f}{c / o:>8.3f}"
                  f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>15}  {text:<24}{'PASS' if ok else 'FAIL'} ({goal})")
    print("all targets met" if all_pass else "some targets not met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
