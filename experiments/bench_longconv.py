"""Benchmark: causal long convolutions (kernel as long as the sequence), 64 channels, batch 1.

Rows: ``LongConv1d``, ``FFTConv1d(padding="causal")`` (depthwise), a naive ``torch.fft``
implementation (``irfft(rfft(x, 2L) * rfft(k, 2L))[:L]``, as sequence-model code writes it) and
``F.conv1d`` on the causally padded input, forward and forward+backward. Each cell runs in its
own process, which reports the median time and its peak resident memory above the memory it held
once the inputs existed. ``F.conv1d`` is quadratic: beyond ``--direct-max`` samples it runs on
``--direct-channels`` channels and the time is scaled to 64 (depthwise cost is linear in the
channel count; marked ``*``), and at 1,048,576 it is skipped. About 3 minutes on 2 cores.

Run: ``python -m experiments.bench_longconv [--lengths 4096,65536] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

IMPLS = ("LongConv1d", "FFTConv1d", "naive torch.fft", "F.conv1d")


def _build(impl: str, channels: int, length: int):
    import torch
    import torch.nn.functional as F

    from cnnconv.conv import FFTConv1d
    from cnnconv.longconv import LongConv1d

    torch.manual_seed(0)
    k = (torch.randn(channels, length) / length ** 0.5).requires_grad_(True)
    if impl == "LongConv1d":
        layer = LongConv1d(channels, length, skip=False)
        return layer, list(layer.parameters())
    if impl == "FFTConv1d":
        layer = FFTConv1d(channels, channels, length, padding="causal", groups=channels, bias=False, method="fft")
        return layer, list(layer.parameters())
    if impl == "naive torch.fft":
        def naive(x):
            n = 2 * length
            y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n), n=n)
            return y[..., :length]
        return naive, [k]

    def direct(x):
        return F.conv1d(F.pad(x, (length - 1, 0)), k.flip(-1)[:, None], groups=channels)
    return direct, [k]


def worker(impl: str, channels: int, length: int, backward: bool, repeats: int) -> dict:
    import torch

    torch.set_num_threads(2)
    fn, params = _build(impl, channels, length)
    x = torch.randn(1, channels, length, requires_grad=backward)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        if backward:
            fn(x).square().mean().backward()
            for p in params + [x]:
                p.grad = None
        else:
            with torch.no_grad():
                fn(x)
        if i:  # the first call warms up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ms": 1e3 * statistics.median(times), "peak_mib": max(0, peak - base) / 1024}


def _cell(impl, channels, length, backward, repeats):
    module = __spec__.name if __spec__ is not None else "experiments.bench_longconv"  # clone or installed
    cmd = [sys.executable, "-m", module, "--worker", json.dumps([impl, channels, length, backward, repeats])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Expected duration on a 2-core CPU: about 3 minutes with the defaults.")
    p.add_argument("--lengths", default="4096,65536,1048576", help="sequence lengths, comma-separated")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median reported)")
    p.add_argument("--direct-max", type=int, default=4096, help="longest sequence F.conv1d runs on every channel")
    p.add_argument("--direct-channels", type=int, default=4, help="channels F.conv1d runs on beyond --direct-max")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    lengths = [int(v) for v in args.lengths.split(",")]
    print(f"causal depthwise long convolution, {args.channels} channels, batch 1, float32, 2 threads")
    header = f"{'L':>8} {'pass':>8} " + " ".join(f"{name:>17}" for name in IMPLS) + "   Long/naive  FFTConv/naive  direct/Long"
    print(header)
    print(f"{'':>8} {'':>8} " + " ".join(f"{'ms (peak MiB)':>17}" for _ in IMPLS))
    for length in lengths:
        for backward in (False, True):
            row = {}
            for impl in IMPLS:
                channels, scale = args.channels, 1
                if impl == "F.conv1d":
                    if length > 65536:
                        continue
                    if length > args.direct_max:
                        channels = args.direct_channels
                        scale = args.channels / channels
                repeats = 1 if impl == "F.conv1d" else args.repeats
                print(f"  ... L={length} {'fwd+bwd' if backward else 'fwd'} {impl}", file=sys.stderr, flush=True)
                r = _cell(impl, channels, length, backward, repeats)
                row[impl] = (r["ms"] * scale, r["peak_mib"] * scale, scale != 1)
            cells = []
            for impl in IMPLS:
                if impl in row:
                    ms, mib, est = row[impl]
                    cells.append(f"{ms:9.1f}{'*' if est else ' '}({mib:5.0f})")
                else:
                    cells.append(f"{'-':>17}")
            naive = row["naive torch.fft"][0]
            ratio = lambda a, b: f"{row[a][0] / row[b][0]:.2f}" if a in row and b in row else "-"  # noqa: E731
            print(f"{length:>8} {'fwd+bwd' if backward else 'fwd':>8} " + " ".join(cells)
                  + f"   {row['LongConv1d'][0] / naive:10.2f}  {row['FFTConv1d'][0] / naive:13.2f}  {ratio('F.conv1d', 'LongConv1d'):>11}", flush=True)
    print("* F.conv1d timed on fewer channels and scaled to the full count (depthwise cost is linear in channels)")


if __name__ == "__main__":
    main()
