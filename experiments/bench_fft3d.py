"""3-D FFT convolution benchmark: ``FFTConv3d`` against ``F.conv3d`` and fft-conv-pytorch.

Run ``python -m experiments.bench_fft3d`` (default case: 1x8x64^3, 8->8, k=15, ``same``
padding). Each cell is the median wall time of ``--repeat`` (>= 3) calls after one warm-up, of
the forward alone and of forward + backward (gradients of input and weight). The table is
printed as markdown with the ratios of the other methods' times to cnnconv's, measured in the
same run; progress goes to stderr. ``--cases`` takes ``B,C,S,k`` quadruples separated by
``;`` (C channels in and out, an S^3 volume), ``--device cuda`` times on the GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from cnnconv.conv import FFTConv3d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeat: int, device: torch.device, label: str) -> float:
    """Median wall time of ``repeat`` calls of ``fn`` after one warm-up call."""
    times = []
    for i in range(repeat + 1):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
        if dt > 1.0:
            print(f"  {label}: call {i + 1}/{repeat + 1} took {dt:.2f} s", file=sys.stderr,
                  flush=True)
    return statistics.median(times)


def run_case(batch, channels, size, k, repeat, device, dtype=torch.float32) -> dict:
    """Times of the three methods on one case: ``{method: (forward_s, forward_backward_s)}``."""
    from fft_conv_pytorch import fft_conv

    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size, size, device=device, dtype=dtype,
                    requires_grad=True)
    layer = FFTConv3d(channels, channels, k, padding=k // 2, method="fft", device=device,
                      dtype=dtype)
    w, b = layer.weight, layer.bias
    gy = torch.randn(batch, channels, size, size, size, device=device, dtype=dtype)
    methods = {
        "F.conv3d": lambda: F.conv3d(x, w, b, padding=k // 2),
        "fft-conv-pytorch": lambda: fft_conv(x, w, b, padding=k // 2),
        "cnnconv FFTConv3d": lambda: layer(x),
    }
    ref = methods["F.conv3d"]().detach()
    out = {}
    for name, fn in methods.items():
        print(f"{batch}x{channels}x{size}^3 k={k}: {name}", file=sys.stderr, flush=True)
        with torch.no_grad():
            y = fn()
        err = float((y - ref).abs().max() / ref.abs().max())
        if err > 1e-3:
            raise RuntimeError(f"{name} disagrees with F.conv3d (relative error {err:.1e})")

        def fwd_bwd(fn=fn):
            x.grad = w.grad = b.grad = None
            fn().backward(gy)

        with torch.no_grad():
            t_fwd = median_time(fn, repeat, device, f"{name} forward")
        out[name] = (t_fwd, median_time(fwd_bwd, repeat, device, f"{name} forward+backward"))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="1,8,64,15",
                        help="B,C,S,k quadruples separated by ';' (default 1,8,64,15)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per cell (>= 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.repeat < 3:
        parser.error(f"--repeat must be at least 3, got {args.repeat}")
    device = torch.device(args.device)
    print(f"\n3-D convolution, float32, {device}, {torch.get_num_threads()} threads, median of "
          f"{args.repeat} calls (ratio = time / cnnconv's time)\n")
    print("| case | method | forward (s) | ratio | forward+backward (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for spec in args.cases.split(";"):
        batch, channels, size, k = (int(v) for v in spec.split(","))
        res = run_case(batch, channels, size, k, args.repeat, device)
        base = res["cnnconv FFTConv3d"]
        for name, (fwd, both) in res.items():
            print(f"| {batch}x{channels}x{size}^3 {channels}->{channels} k={k} | {name} | "
                  f"{fwd:.4f} | {fwd / base[0]:.2f}x | {both:.4f} | {both / base[1]:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
