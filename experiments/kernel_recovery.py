"""Kernel recovery: does a single learnable layer regressing the Sobel response become Sobel?

A 1 -> 2 channel convolution (k = 3, 5, 7, no bias) is trained to reproduce the Sobel x/y
responses of natural images (the photographs bundled with scikit-image) and of noise images.
Both sides are computed in ``valid`` mode and centred, so borders play no part, and the
regression is exactly realisable: its least-squares optimum is Sobel itself, zero-padded to
k x k (the outer rings of the 5x5 and 7x7 kernels must vanish). Training is Adam followed by
L-BFGS; the report shows the error against Sobel over training, the energy left outside the
central 3x3 and the learned kernels beside Sobel.

Run: ``cnnconv run kernel_recovery [--set key=value ...]`` (in a clone also
``python -m experiments.kernel_recovery --config configs/kernel_recovery.yaml``).

Duration on a 2-core CPU: about 5 min (estimated: a run with a tenth of the steps took 29 s of CPU time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from cnnconv.evaluation.data import PHOTOGRAPHS
from cnnconv.training import (MAX_BATCH_SIZE, MAX_SEED, Run, check_names, check_range,
                              experiment_main, param, yaml_defaults)
from .common import Report, config_file, line_plot, save_figure, write_csv

NAME = "kernel_recovery"


@dataclass
@yaml_defaults(config_file(NAME))
class KernelRecoveryConfig:
    seed: int = param(help="random seed (initialisation and data)")
    kernel_sizes: list[int] = param(help="odd kernel sizes to learn")
    datasets: list[Literal["natural", "noise"]] = param(help="training images: natural and/or noise")
    photos: list[str] = param(help="scikit-image photographs used as natural images")
    batch_size: int = param(help="images per step")
    crop: int = param(help="image crop size (pixels)")
    adam_steps: int = param(help="Adam steps")
    lr: float = param(help="Adam learning rate")
    lbfgs_steps: int = param(help="L-BFGS steps after Adam (each on a fresh batch)")
    lbfgs_iter: int = param(help="L-BFGS iterations per step")
    eval_every: int = param(help="steps between recovery-error measurements")
    checkpoint_every: int = param(help="steps between checkpoints (0: end of each phase)")
    dtype: Literal["float32", "float64"] = param(help="training dtype")
    method: Literal["direct", "fft", "auto"] = param(help="LearnableConv2d engine")
    tolerance_3x3: float = param(help="acceptance: relative error of the learned 3x3")
    tolerance_ring: float = param(help="acceptance: energy share outside the central 3x3")
    num_threads: int = param(help="CPU threads for torch (0: torch's default)")

    def __post_init__(self):
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_threads", self.num_threads, 0, 1024)
        if not self.kernel_sizes:
            raise ValueError(f"kernel_sizes must not be empty, got {self.kernel_sizes!r}")
        for k in self.kernel_sizes:
            if k < 3 or k % 2 == 0:
                raise ValueError(f"kernel_sizes must be odd and >= 3, got {k}")
            check_range("kernel_sizes", k, high=63)
        check_names("datasets", self.datasets, ("natural", "noise"))
        if "natural" in self.datasets:
            check_names("photos", self.photos, PHOTOGRAPHS)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.crop < max(self.kernel_sizes) + 8:
            raise ValueError(f"crop must be at least max(kernel_sizes) + 8, got {self.crop}")
        check_range("crop", self.crop, high=512)  # the smallest photograph is 512 pixels
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        for name in ("adam_steps", "lbfgs_steps", "checkpoint_every"):
            check_range(name, getattr(self, name), 0)
        for name in ("lbfgs_iter", "eval_every"):
            check_range(name, getattr(self, name), 1)
        for name in ("lr", "tolerance_3x3", "tolerance_ring"):
            check_range(name, getattr(self, name), 0, strict=True)


def load_photographs(names: list[str]) -> list[torch.Tensor]:
    """Grayscale float64 photographs in [0, 1], shape ``(H, W)`` (bundled with scikit-image)."""
    from cnnconv.evaluation.data import bundled_photographs

    return [p[0].to(torch.float64) for p in bundled_photographs(list(names), gray=True).values()]


def sample_batch(kind: str, photos: list[torch.Tensor], n: int, crop: int,
                 g: torch.Generator) -> torch.Tensor:
    """``(n, 1, crop, crop)`` float64 images drawn with ``g``: photo crops (random flips) or
    uniform noise."""
    if kind == "noise":
        return torch.rand(n, 1, crop, crop, generator=g, dtype=torch.float64)
    which = torch.randint(len(photos), (n,), generator=g)
    out = torch.empty(n, 1, crop, crop, dtype=torch.float64)
    for i, p in enumerate(which.tolist()):
        img = photos[p]
        top = int(torch.randint(img.shape[0] - crop + 1, (1,), generator=g))
        left = int(torch.randint(img.shape[1] - crop + 1, (1,), generator=g))
        patch = img[top:top + crop, left:left + crop]
        if bool(torch.randint(2, (1,), generator=g)):
            patch = patch.flip(-1)
        out[i, 0] = patch
    return out


def sobel_pair(dtype=torch.float64) -> torch.Tensor:
    """``(2, 1, 3, 3)``: Sobel x and y for correlation (independent of cnnconv.kernels)."""
    sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=dtype)
    return torch.stack([sx, sx.T])[:, None]


def sobel_target(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sobel x/y responses of ``x`` in valid mode, centred to a ``k x k`` layer's valid output."""
    y = F.conv2d(x, sobel_pair(x.dtype).to(x.device))
    c = (k - 3) // 2
    return y[..., c:y.shape[-2] - c, c:y.shape[-1] - c] if c else y


def outer_energy(w: torch.Tensor) -> float:
    """Share of the energy of ``w (..., k, k)`` outside its central 3x3."""
    k = w.shape[-1]
    c = (k - 3) // 2
    total = float(w.double().pow(2).sum())
    inner = float(w[..., c:c + 3, c:c + 3].double().pow(2).sum())
    return (total - inner) / total if total > 0 else float("nan")


def ring_energy(w: torch.Tensor) -> float:
    """Share of the energy of ``w (..., k, k)`` on its outermost ring."""
    total = float(w.double().pow(2).sum())
    inner = float(w[..., 1:-1, 1:-1].double().pow(2).sum())
    return (total - inner) / total if total > 0 else float("nan")


def relative_error(w: torch.Tensor) -> float:
    """``||w - Sobel (zero-padded)|| / ||Sobel||`` for ``w (2, 1, k, k)``, no alignment."""
    k = w.shape[-1]
    c = (k - 3) // 2
    ref = F.pad(sobel_pair(), (c, c, c, c))
    return float((w.detach().cpu().double() - ref).norm() / ref.norm())


def aligned_error(w: torch.Tensor) -> float:
    """Kernel recovery error after the best sign/rotation alignment (cnnconv.analysis)."""
    from cnnconv.analysis import kernel_recovery_error

    return kernel_recovery_error(w.detach().cpu()[:, 0], sobel_pair()[:, 0]).error


def run(cfg: KernelRecoveryConfig, run: Run) -> dict:
    from cnnconv.learnable import LearnableConv2d

    dtype = getattr(torch, cfg.dtype)
    photos = load_photographs(cfg.photos) if "natural" in cfg.datasets else []
    results, curves, learned = [], {}, {}
    run.plan(len(cfg.datasets) * len(cfg.kernel_sizes) * (cfg.adam_steps + cfg.lbfgs_steps), NAME)
    for d_index, kind in enumerate(cfg.datasets):
        for k_index, k in enumerate(cfg.kernel_sizes):
            torch.manual_seed(cfg.seed + 1000 * d_index + k_index)
            layer = LearnableConv2d(1, 2, k, bias=False, method=cfg.method, dtype=dtype)
            model = run.wrap(layer)
            tag = f"{kind}_k{k}"
            stream = 2 * (len(cfg.kernel_sizes) * d_index + k_index)

            def batch(i, stream):
                x = sample_batch(kind, photos, cfg.batch_size, cfg.crop,
                                 run.step_generator(i, stream))
                y = sobel_target(x, k)
                x, y = run.shard((x.to(run.device, dtype), y.to(run.device, dtype)))
                return x, y

            def evaluate(step):
                w = layer.weight.detach()
                return {"rel_error": relative_error(w), "outer_energy": outer_energy(w)}

            adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)

            def adam_step(i, adam=adam, stream=stream):
                x, y = batch(i, stream)
                loss = F.mse_loss(model(x), y)
                adam.zero_grad()
                loss.backward()
                adam.step()
                return {"loss": run.mean_across_ranks(loss)}

            res_a = run.fit(model, adam, adam_step, steps=cfg.adam_steps, tag=tag + "_adam",
                            checkpoint_every=cfg.checkpoint_every, eval_fn=evaluate,
                            eval_every=cfg.eval_every, desc=f"{tag} adam")

            lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=cfg.lbfgs_iter,
                                      tolerance_grad=0.0, tolerance_change=0.0,
                                      history_size=20, line_search_fn="strong_wolfe")

            def lbfgs_step(i, lbfgs=lbfgs, stream=stream):
                x, y = batch(i, stream + 1)

                def closure():
                    lbfgs.zero_grad()
                    loss = F.mse_loss(model(x), y)
                    loss.backward()
                    # Every rank must see the same loss, or their line searches diverge.
                    return loss.detach().new_tensor(run.mean_across_ranks(loss))

                loss = lbfgs.step(closure)
                return {"loss": float(loss)}

            res_l = run.fit(model, lbfgs, lbfgs_step, steps=cfg.lbfgs_steps,
                            tag=tag + "_lbfgs", checkpoint_every=cfg.checkpoint_every,
                            eval_fn=evaluate, eval_every=1, desc=f"{tag} lbfgs")
            w = layer.weight.detach().cpu().double()
            learned[tag] = w
            row = {"data": kind, "k": k, "rel_error": relative_error(w),
                   "aligned_error": aligned_error(w),
                   "outer_energy": outer_energy(w) if k > 3 else float("nan"),
                   "ring_energy": ring_energy(w) if k > 3 else float("nan"),
                   "seconds": res_a.seconds + res_l.seconds}
            results.append(row)
            metrics = run.read_metrics()
            if run.is_main:
                xa, ya = metrics.get(tag + "_adam", {}).get("rel_error", ([], []))
                xl, yl = metrics.get(tag + "_lbfgs", {}).get("rel_error", ([], []))
                curves[tag] = (list(xa) + [cfg.adam_steps + s for s in xl], list(ya) + list(yl))

    summary = {"results": results}
    if run.is_main:
        summary.update(write_report(cfg, run, results, curves, learned))
    return summary


def write_report(cfg, run: Run, results, curves, learned) -> dict:
    from cnnconv.analysis.plotting import plot_side_by_side

    rd = run.dir
    write_csv(rd / "results.csv", results)
    curve_rows = [{"run": tag, "step": s, "rel_error": e}
                  for tag, (xs, ys) in curves.items() for s, e in zip(xs, ys)]
    write_csv(rd / "error_curves.csv", curve_rows)
    line_plot({tag: (xs, [max(e, 1e-12) for e in ys]) for tag, (xs, ys) in curves.items()},
              rd / "error_curve.png", xlabel=f"step (Adam, then L-BFGS after {cfg.adam_steps})",
              ylabel="relative error vs Sobel", title="Error against Sobel over training",
              logy=True, hlines={"1e-3 acceptance": cfg.tolerance_3x3})
    kernel_figs = []
    for kind in cfg.datasets:
        ws, refs, titles, rtitles = [], [], [], []
        for k in cfg.kernel_sizes:
            w = learned[f"{kind}_k{k}"]
            c = (k - 3) // 2
            ref = F.pad(sobel_pair(), (c, c, c, c))
            for ch, axis in enumerate("xy"):
                ws.append(w[ch, 0])
                refs.append(ref[ch, 0])
                titles.append(f"learned {k}x{k} {axis}")
                rtitles.append(f"Sobel {axis}")
        path = rd / f"kernels_{kind}.png"
        save_figure(plot_side_by_side(ws, refs, titles=titles, reference_titles=rtitles,
                                      annotate=max(cfg.kernel_sizes) == 3,
                                      suptitle=f"Learned on {kind} images (top), Sobel (middle), "
                                               f"difference (bottom)"), path)
        kernel_figs.append((kind, path))

    checks = {}
    for row in results:
        if row["k"] == 3:
            checks[f"3x3 relative error ({row['data']}) < {cfg.tolerance_3x3:g}"] = (
                row["rel_error"], row["rel_error"] < cfg.tolerance_3x3)
        if row["k"] == 5:
            checks[f"5x5 energy outside 3x3 ({row['data']}) < {cfg.tolerance_ring:.0%}"] = (
                row["outer_energy"], row["outer_energy"] < cfg.tolerance_ring)
    rep = Report("Kernel recovery: learning Sobel from its responses")
    rep.paragraph(
        "A 1 -> 2 channel convolution without bias regresses the Sobel x/y responses of "
        f"{' and '.join(cfg.datasets)} images ({cfg.batch_size} crops of {cfg.crop}x{cfg.crop} "
        f"per step, valid mode on both sides so borders play no part). Training: "
        f"{cfg.adam_steps} Adam steps (lr {cfg.lr:g}) then {cfg.lbfgs_steps} L-BFGS steps "
        f"({cfg.lbfgs_iter} iterations each), {cfg.dtype}. The least-squares optimum is Sobel "
        "zero-padded to k x k, so the error should go to zero and the outer rings vanish.")
    rep.section("Acceptance")
    rep.table([{"check": name, "measured": val, "pass": ok} for name, (val, ok) in checks.items()],
              ["check", "measured", "pass"])
    rep.section("Results")
    rep.paragraph("`rel_error` = ||learned - Sobel|| / ||Sobel|| with no alignment; "
                  "`aligned_error` = the same after the best sign/rotation (cnnconv.analysis); "
                  "`outer_energy` = share of the kernel's energy outside the central 3x3; "
                  "`ring_energy` = share on the outermost ring.")
    rep.table(results, ["data", "k", "rel_error", "aligned_error", "outer_energy", "ring_energy",
                        "seconds"])
    rep.section("Error over training")
    rep.image(rd / "error_curve.png", "Relative error against Sobel (log scale); the data is in "
              "error_curves.csv", rd)
    rep.section("Learned kernels")
    for kind, path in kernel_figs:
        rep.image(path, f"Kernels learned on {kind} images beside Sobel", rd)
    rep.write(rd / "report.md")
    return {"checks": {name: ok for name, (_, ok) in checks.items()}}


def main(argv=None):
    return experiment_main(NAME, KernelRecoveryConfig, run, argv)


if __name__ == "__main__":
    main()
