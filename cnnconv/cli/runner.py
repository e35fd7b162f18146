"""``cnnconv run``: list, configure and run the experiments from any folder.

The experiments ship inside the package as :mod:`cnnconv.experiments` (the repository's
``experiments/`` folder) with their default configs (``configs/*.yaml``); in a clone that is not
installed, the top-level ``experiments`` package is used instead.

Example:
    cnnconv run --list
    cnnconv run demo --set steps=20
    cnnconv run edges_noise --set seeds=[0,1]
    cnnconv run kernel_recovery --help
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from cnnconv.cli.output import add_command

__all__ = [
    "BENCHMARKS",
    "EXPERIMENTS",
    "add_bench_parser",
    "add_run_parser",
    "bench_command",
    "experiments_package",
    "main",
    "run_command",
]

EXPERIMENTS: dict[str, str] = {
    "demo": "quick edges under noise: 1 seed, 2 noise levels (about 1.5 min)",
    "edges_noise": "learned vs hand-designed edge detectors under noise (about 17-20 min)",
    "kernel_recovery": "a single layer regressing Sobel responses becomes Sobel (about 5 min)",
    "cnn_kernels": "first-layer kernels of a small CNN vs the hand-designed bank (about 8 min)",
    "large_kernels": "31x31 blurs learned through the FFT, FFTConv2d vs nn.Conv2d (about 3 min)",
    "fft_benchmark": "the FFT benchmark into a run folder with a report (several minutes)",
}
"""The experiments ``cnnconv run`` knows, each with a line and its duration on a 2-core CPU
(each experiment's ``--help`` says more)."""


BENCHMARKS: dict[str, str] = {
    "filters": "fixed filters against kornia, OpenCV, scipy and torchvision (about 1 min; --quick about 25 s)",
    "fft": "FFT convolution against direct, scipy and fft-conv-pytorch (several minutes; --quick shorter)",
    "fft3d": "3-D FFT convolution against F.conv3d and fft-conv-pytorch (about 2 min)",
    "longconv": "causal long convolutions against a naive torch.fft version and F.conv1d (about 3 min)",
    "overhead": "converted torchvision models with method='auto' against the originals (about 1 min)",
}
"""The benchmarks ``cnnconv bench`` runs (``bench_<name>`` modules of the experiments package;
the comparison libraries come with the ``dev`` extra)."""


def experiments_package() -> str:
    """The importable name of the experiments package: installed, or a clone's top level."""
    for name in ("cnnconv.experiments", "experiments"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in ("cnnconv.experiments", "experiments"):
                raise
            continue
        return name
    raise ModuleNotFoundError("the cnnconv experiments are not installed: pip install 'cnnconv[experiments]'")


_PARSER_TEXTS: dict[str, tuple[str, str, str]] = {
    "run": (
        "list, configure and run the experiments",
        "Run a cnnconv experiment. Arguments after its name go to the experiment: "
        "--set key=value, --config FILE, --out ROOT, --resume RUN, --help ...",
        "experiments:\n" + "\n".join(f"  {k:<16} {v}" for k, v in EXPERIMENTS.items()),
    ),
    "bench": (
        "print the benchmark tables (ratios measured in one run)",
        "Run one of cnnconv's benchmarks. Arguments after its name go to the "
        "benchmark (e.g. --quick for filters and fft; --help for all of them).",
        "benchmarks:\n"
        + "\n".join(f"  {k:<10} {v}" for k, v in BENCHMARKS.items())
        + "\n\nexample:\n  cnnconv bench filters --quick",
    ),
}
"""The help line, description and epilog of each dispatch command."""


def _add_dispatch_parser(
    subparsers: Any, command: str, kind: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Register ``command NAME [options...]``, which passes ``options`` on to the ``kind`` named
    ``NAME`` (or lists them with ``--list``)."""
    help, description, epilog = _PARSER_TEXTS[command]
    p = add_command(subparsers, command, help, description, epilog)
    p.add_argument("--list", action="store_true", help=f"list the {kind}s and exit")
    p.add_argument(kind, nargs="?", metavar="NAME", help=f"{kind} to run")
    p.add_argument("options", nargs=argparse.REMAINDER, metavar="...", help=f"the {kind}'s own options")
    p.set_defaults(func=func)
    return p


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``run`` command on ``subparsers`` (from ``parser.add_subparsers()``)."""
    return _add_dispatch_parser(subparsers, "run", "experiment", run_command)


def _dispatch(name: str | None, options: list[str], listed: bool, table: dict[str, str], kind: str, prefix: str) -> int:
    """List ``table`` (no name, or ``--list``), or run module ``<package>.<prefix><name>``'s
    ``main(options)``; its exit status."""
    if listed or name is None:
        width = max(map(len, table)) + 2
        for key, text in table.items():
            print(f"{key:<{width}}{text}")
        return 0 if listed else 2
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(table)}")
    module = importlib.import_module(f"{experiments_package()}.{prefix}{name}")
    try:
        status = module.main(list(options))
    except SystemExit as exc:  # --help, or a bad option or config value (already printed)
        return exc.code if isinstance(exc.code, int) else 1
    return status if isinstance(status, int) else 0


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.experiment`` with ``args.options`` (or list the experiments); exit status.

    Raises:
        ValueError: an unknown experiment name.
    """
    return _dispatch(args.experiment, args.options, args.list, EXPERIMENTS, "experiment", "")


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``bench`` command on ``subparsers``."""
    return _add_dispatch_parser(subparsers, "bench", "benchmark", bench_command)


def bench_command(args: argparse.Namespace) -> int:
    """Run ``args.benchmark`` with ``args.options`` (or list the benchmarks); exit status.

    Raises:
        ValueError: an unknown benchmark name.
    """
    return _dispatch(args.benchmark, args.options, args.list, BENCHMARKS, "benchmark", "bench_")


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnconv.cli.runner``: the ``run`` command on its own."""
    parser = argparse.ArgumentParser(prog="cnnconv")
    add_run_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
