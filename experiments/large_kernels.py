"""Large kernels through the FFT: learn a 31x31 blur from sharp/blurred photograph pairs.

For each true blur (Gaussian defocus, box, motion streak) a single ``FFTConv2d`` layer
(1 -> 1 channel, no bias, zero initial weights) is trained to map sharp photograph crops to
their blurred versions; then the *same* training (same initial weights, same batches, same
optimizer) runs again with ``nn.Conv2d``. The report gives the recovery error of each learned
kernel, the learned kernel beside the true one, and the training time of both layers measured
in this run.

Pairs are made in valid mode (no border effects) with a float64 scipy FFT correlation as the
oracle, and both images of a pair are passed through the same fixed Laplacian (``whiten``):
blur commutes with it, so the pair is still (sharp, blurred), but the training problem is far
better conditioned (natural images have most of their energy at low frequencies), as in the
gradient-domain kernel estimation of blind deblurring. L-BFGS then converges in tens of
iterations. All batches are drawn before training, so the timings cover training only.

Run: ``cnnconv run large_kernels [--set key=value ...]`` (in a clone also
``python -m experiments.large_kernels --config configs/large_kernels.yaml``).

Duration on a 2-core CPU: about 3 min (163 s of CPU time; 12 min wall-clock on a busy machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnconv.evaluation.data import PHOTOGRAPHS
from cnnconv.training import (MAX_BATCH_SIZE, MAX_SEED, Run, check_names, check_range,
                              experiment_main, param, yaml_defaults)
from .common import Report, config_file, require, save_figure, write_csv

NAME = "large_kernels"
BLURS = ("gaussian", "box", "motion")


@dataclass
@yaml_defaults(config_file(NAME))
class LargeKernelsConfig:
    seed: int = param(help="random seed (data)")
    kernel_size: int = param(help="odd size of the learned kernel")
    blurs: list[Literal["gaussian", "box", "motion"]] = param(help="true blurs")
    gaussian_sigma: float = param(help="sigma of the Gaussian defocus blur")
    box_size: int = param(help="side of the box blur (centred in the kernel)")
    motion_length: float = param(help="length of the motion streak in pixels")
    motion_angle: float = param(help="angle of the motion streak in degrees from +x")
    photos: list[str] = param(help="photographs to crop")
    batch_size: int = param(help="crops per step")
    crop: int = param(help="crop size (pixels)")
    whiten: bool = param(help="train on Laplacian-filtered pairs (better conditioned)")
    steps: int = param(help="L-BFGS steps, each on a fresh batch")
    lbfgs_iter: int = param(help="L-BFGS iterations per step")
    compare_direct: bool = param(help="also time the same training with nn.Conv2d")
    checkpoint_every: int = param(help="steps between checkpoints (0: end of each training)")
    tolerance: float = param(help="acceptance: relative recovery error")
    min_speedup: float = param(help="acceptance: FFT training at least this many times faster")
    num_threads: int = param(help="CPU threads for torch (0: torch's default)")

    def __post_init__(self):
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_threads", self.num_threads, 0, 1024)
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {self.kernel_size}")
        check_names("blurs", self.blurs, BLURS)
        check_names("photos", self.photos, PHOTOGRAPHS)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("crop", self.crop, high=512)  # the smallest photograph is 512 pixels
        for name in ("steps", "checkpoint_every"):
            check_range(name, getattr(self, name), 0)
        check_range("motion_angle", self.motion_angle)
        check_range("lbfgs_iter", self.lbfgs_iter, 1)
        for name in ("gaussian_sigma", "motion_length", "tolerance", "min_speedup"):
            check_range(name, getattr(self, name), 0, strict=True)
        if self.box_size > self.kernel_size or self.box_size < 1:
            raise ValueError(f"box_size must be in [1, kernel_size], got {self.box_size}")
        if self.motion_length > self.kernel_size - 2:
            raise ValueError(f"motion_length must be at most kernel_size - 2, got "
                             f"{self.motion_length}")
        if self.crop < 2 * self.kernel_size:
            raise ValueError(f"crop must be at least 2 * kernel_size, got {self.crop}")


def motion_kernel(size: int, length: float, angle: float) -> torch.Tensor:
    """An anti-aliased line of ``length`` pixels through the centre at ``angle`` degrees, sum 1.

    Example:
        >>> k = motion_kernel(9, 6.0, 0.0)
        >>> float(k.sum()), int((k.sum(0) > 0).sum()) > 1, float(k[:3].abs().sum())
        (1.0, True, 0.0)
    """
    k = torch.zeros(size, size, dtype=torch.float64)
    c = (size - 1) / 2
    t = torch.linspace(-length / 2, length / 2, int(40 * length) + 1, dtype=torch.float64)
    a = math.radians(angle)
    xs, ys = c + t * math.cos(a), c + t * math.sin(a)  # +x is +column, +y is +row
    x0, y0 = xs.floor(), ys.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            w = (1 - (xs - x0 - dx).abs()) * (1 - (ys - y0 - dy).abs())
            k.index_put_(((y0 + dy).long(), (x0 + dx).long()), w, accumulate=True)
    return k / k.sum()


def true_kernel(name: str, cfg: LargeKernelsConfig) -> torch.Tensor:
    """The ``(k, k)`` float64 blur kernel called ``name``."""
    from cnnconv import kernels

    k = cfg.kernel_size
    if name == "gaussian":
        return kernels.gaussian(cfg.gaussian_sigma, k, dtype=torch.float64)
    if name == "box":
        pad = (k - cfg.box_size) // 2
        b = kernels.box(cfg.box_size, dtype=torch.float64)
        return F.pad(b, (pad, k - cfg.box_size - pad, pad, k - cfg.box_size - pad))
    return motion_kernel(k, cfg.motion_length, cfg.motion_angle)


def make_pairs(photos: list[torch.Tensor], kernel: torch.Tensor, cfg: LargeKernelsConfig,
               run: Run, step: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (sharp, blurred) valid-mode pairs, float32, drawn from ``(seed, step)``."""
    from .kernel_recovery import sample_batch

    signal = require("scipy.signal")
    x = sample_batch("natural", photos, cfg.batch_size, cfg.crop,
                     run.step_generator(step, stream))
    xn = x.numpy()
    kn = kernel.numpy()
    y = np.stack([signal.correlate(xn[i, 0], kn, mode="valid", method="fft")
                  for i in range(len(xn))])[:, None]
    if cfg.whiten:
        lap = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        xn = np.stack([signal.correlate(xn[i, 0], lap, mode="valid")
                       for i in range(len(xn))])[:, None]
        y = np.stack([signal.correlate(y[i, 0], lap, mode="valid") for i in range(len(y))])[:,
                                                                                          None]
    return torch.from_numpy(xn).float(), torch.from_numpy(y).float()


def recovery(w: torch.Tensor, true: torch.Tensor) -> float:
    """``||w - true|| / ||true||`` (no alignment: the blur must be found as it is)."""
    return float((w.detach().cpu().double().reshape(true.shape) - true).norm() / true.norm())


def train_one(run: Run, layer: nn.Module, batches, tag: str, true: torch.Tensor,
              cfg: LargeKernelsConfig):
    """L-BFGS on the prepared batches; returns (FitResult, function evaluations).

    Each step logs its evaluations, so the total counts the steps of an earlier, interrupted
    session too.
    """
    with torch.no_grad():
        layer.weight.zero_()
    model = run.wrap(layer)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=cfg.lbfgs_iter,
                            tolerance_grad=0.0, tolerance_change=0.0, history_size=50,
                            line_search_fn="strong_wolfe")
    def step_fn(i):
        x, y = batches[i]
        evals = [0]

        def closure():
            evals[0] += 1
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            # Every rank must see the same loss, or their line searches diverge.
            return loss.detach().new_tensor(run.mean_across_ranks(loss))

        loss = opt.step(closure)
        return {"loss": float(loss), "evals": evals[0]}

    def eval_fn(step):
        return {"rel_error": recovery(layer.weight, true)}

    result = run.fit(model, opt, step_fn, steps=cfg.steps, tag=tag,
                     checkpoint_every=cfg.checkpoint_every, eval_fn=eval_fn, eval_every=1)
    return result, int(sum(run.read_metrics(tag).get("evals", ([], []))[1]))


def run(cfg: LargeKernelsConfig, run: Run) -> dict:
    from cnnconv.conv import FFTConv2d
    from .kernel_recovery import load_photographs

    photos = load_photographs(cfg.photos)
    k = cfg.kernel_size
    rows, learned, trues = [], {}, {}
    run.plan(len(cfg.blurs) * cfg.steps * (2 if cfg.compare_direct else 1), NAME)
    for b_index, blur in enumerate(cfg.blurs):
        true = true_kernel(blur, cfg)
        trues[blur] = true
        batches = []
        for i in range(cfg.steps):
            x, y = make_pairs(photos, true, cfg, run, i, b_index)
            batches.append(run.shard((x.to(run.device), y.to(run.device))))
        fft_layer = FFTConv2d(1, 1, k, bias=False, method="fft")
        res_fft, evals_fft = train_one(run, fft_layer, batches, f"{blur}_fft", true, cfg)
        row = {"blur": blur, "kernel": f"{k}x{k}",
               "fft_error": recovery(fft_layer.weight, true),
               "fft_seconds": res_fft.seconds, "fft_evals": evals_fft}
        learned[blur] = fft_layer.weight.detach().cpu()[0, 0].double()
        if cfg.compare_direct:
            direct = nn.Conv2d(1, 1, k, bias=False)
            res_dir, evals_dir = train_one(run, direct, batches, f"{blur}_direct", true, cfg)
            row.update({"direct_error": recovery(direct.weight, true),
                        "direct_seconds": res_dir.seconds, "direct_evals": evals_dir,
                        "fft_vs_direct": float((fft_layer.weight - direct.weight).detach().norm()
                                               / direct.weight.detach().norm()),
                        "speedup": res_dir.seconds / max(res_fft.seconds, 1e-12)})
        rows.append(row)
    if run.is_main:
        write_report(cfg, run, rows, learned, trues)
    return {"results": rows}


def write_report(cfg, run: Run, rows, learned, trues) -> None:
    from cnnconv.analysis.plotting import plot_side_by_side

    rd = run.dir
    write_csv(rd / "results.csv", rows)
    blurs = list(learned)
    save_figure(plot_side_by_side(
        [learned[b] for b in blurs], [trues[b] for b in blurs],
        titles=[f"learned ({b})" for b in blurs], reference_titles=[f"true {b}" for b in blurs],
        annotate=False, suptitle=f"{cfg.kernel_size}x{cfg.kernel_size} kernels learned through "
                                 "the FFT (top), true blur (middle), difference (bottom)"),
        rd / "kernels.png")
    checks = []
    for r in rows:
        checks.append({"check": f"{r['blur']}: relative error < {cfg.tolerance:g}",
                       "measured": r["fft_error"], "pass": r["fft_error"] < cfg.tolerance})
        if "speedup" in r:
            checks.append({"check": f"{r['blur']}: FFT training >= {cfg.min_speedup:g}x faster "
                                    "than nn.Conv2d",
                           "measured": r["speedup"], "pass": r["speedup"] >= cfg.min_speedup})
    rep = Report(f"Large kernels through the FFT: learning {cfg.kernel_size}x{cfg.kernel_size} "
                 "blurs")
    rep.paragraph(
        f"One 1 -> 1 channel layer without bias, started from zero weights, learns each blur "
        f"from {cfg.steps} batches of {cfg.batch_size} sharp/blurred crops of "
        f"{cfg.crop}x{cfg.crop} pixels (bundled photographs; pairs in valid mode"
        f"{', both images Laplacian-filtered' if cfg.whiten else ''}) with L-BFGS "
        f"({cfg.lbfgs_iter} iterations per batch). `FFTConv2d(method='fft')` and `nn.Conv2d` "
        "run the same training (same start, batches and optimizer) one after the other in this "
        f"run, on {run.device}; seconds are time spent in training steps only. "
        "`fft_vs_direct` is the relative difference of the two learned kernels.")
    rep.section("Acceptance")
    rep.table(checks, ["check", "measured", "pass"])
    rep.section("Results")
    cols = ["blur", "kernel", "fft_error", "fft_seconds", "fft_evals"]
    if cfg.compare_direct:
        cols += ["direct_error", "direct_seconds", "direct_evals", "speedup", "fft_vs_direct"]
    rep.table(rows, cols)
    rep.section("Learned kernels")
    rep.image(rd / "kernels.png", "Learned kernels beside the true blurs", rd)
    rep.write(rd / "report.md")


def main(argv=None):
    return experiment_main(NAME, LargeKernelsConfig, run, argv)


if __name__ == "__main__":
    main()
