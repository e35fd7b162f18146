"""What a CNN learns: first-layer kernels of a small CNN trained from random initialisation.

A ``SmallCNN`` classifies synthetic images by the orientation of their structure: straight
step edges and sinusoidal gratings at 0, 45, 90 or 135 degrees (+- a jitter), with random
position, phase, frequency, contrast and additive Gaussian noise. After training, every
first-layer kernel is inspected automatically (``cnnconv.analysis.describe_kernel`` and
``match_kernel``): the report lists the hand-designed kernel each one resembles most (with the
similarity, the transform and any fitted sigma), the same for the untrained kernels as a
baseline, and the test accuracy.

Run: ``cnnconv run cnn_kernels [--set key=value ...]`` (in a clone also
``python -m experiments.cnn_kernels --config configs/cnn_kernels.yaml``).

Duration on a 2-core CPU: about 8 min (estimated: a run with a tenth of the steps took 49 s of CPU time).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnconv.training import (MAX_BATCH_SIZE, MAX_SEED, Run, check_range, experiment_main,
                              param, yaml_defaults)
from .common import Report, config_file, line_plot, save_figure, write_csv

NAME = "cnn_kernels"


@dataclass
@yaml_defaults(config_file(NAME))
class CNNKernelsConfig:
    seed: int = param(help="random seed (initialisation and data)")
    image_size: int = param(help="side of the square images")
    num_classes: int = param(help="orientation classes, evenly spaced over 180 degrees")
    jitter: float = param(help="uniform orientation jitter (+- degrees)")
    noise: float = param(help="standard deviation of the additive Gaussian noise")
    grating_fraction: float = param(help="share of gratings (the rest are step edges)")
    width: int = param(help="channels of SmallCNN's second convolution (8 first-layer kernels)")
    kernel_size: int = param(help="first-layer kernel size")
    batch_size: int = param(help="images per step")
    steps: int = param(help="AdamW steps")
    lr: float = param(help="Adam learning rate")
    weight_decay: float = param(help="AdamW weight decay of the other layers")
    first_weight_decay: float = param(help="AdamW weight decay of the first layer: it removes "
                                      "the parts of the random start the task does not use "
                                      "(the BatchNorm after the next layer undoes the scale)")
    test_size: int = param(help="held-out test images")
    eval_every: int = param(help="steps between test-accuracy measurements")
    checkpoint_every: int = param(help="steps between checkpoints")
    top_matches: int = param(help="hand-designed matches listed per kernel")
    num_threads: int = param(help="CPU threads for torch (0: torch's default)")

    def __post_init__(self):
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_threads", self.num_threads, 0, 1024)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        for name in ("steps", "checkpoint_every", "jitter", "weight_decay", "first_weight_decay"):
            check_range(name, getattr(self, name), 0)
        check_range("lr", self.lr, 0, strict=True)
        check_range("top_matches", self.top_matches, 1)
        check_range("image_size", self.image_size, high=1024)
        check_range("test_size", self.test_size, high=10**6)
        check_range("noise", self.noise, 0)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if not 0.0 <= self.grating_fraction <= 1.0:
            raise ValueError(f"grating_fraction must be in [0, 1], got {self.grating_fraction}")
        if self.noise < 0:
            raise ValueError(f"noise must be non-negative, got {self.noise}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        for name in ("image_size", "batch_size", "test_size", "eval_every", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def oriented_batch(cfg: CNNKernelsConfig, n: int, g: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, s, s)`` and labels: edges/gratings whose normal is at class angle.

    Class ``c`` has its intensity change along ``c * 180 / num_classes`` degrees (from +x
    towards +y, i.e. rightwards then downwards), the convention of ``cnnconv.analysis``.
    """
    s = cfg.image_size
    labels = torch.randint(cfg.num_classes, (n,), generator=g)
    theta = (labels.double() * (180.0 / cfg.num_classes)
             + (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * cfg.jitter)
    theta = torch.deg2rad(theta)[:, None, None]
    c = torch.arange(s, dtype=torch.float64) - (s - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    u = xx * torch.cos(theta) + yy * torch.sin(theta)  # coordinate along the normal
    offset = (torch.rand(n, 1, 1, generator=g, dtype=torch.float64) - 0.5) * (s / 2)
    edge = torch.sigmoid((u - offset) / 0.5) * 2 - 1  # anti-aliased step
    period = 4.0 + torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * (s / 2 - 4.0)
    phase = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi
    grating = torch.sin(2 * math.pi * u / period + phase)
    is_grating = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) < cfg.grating_fraction
    pattern = torch.where(is_grating, grating, edge)
    contrast = 0.2 + 0.3 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    mean = 0.3 + 0.4 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    img = mean + contrast * pattern
    img = img + cfg.noise * torch.randn(n, s, s, generator=g, dtype=torch.float64)
    return img[:, None].float(), labels


def build_model(cfg: CNNKernelsConfig) -> torch.nn.Module:
    """``SmallCNN`` from random initialisation (cnnconv.models)."""
    from cnnconv.models import SmallCNN

    return SmallCNN(cfg.num_classes, in_channels=1, first_layer="random", width=cfg.width,
                    kernel_size=cfg.kernel_size)


def first_layer(model: torch.nn.Module) -> torch.Tensor:
    """The first convolution's weight ``(out, in, k, k)``, found by ``extract_kernels``."""
    from cnnconv.analysis import extract_kernels
    from cnnconv.training import unwrap_model

    return extract_kernels(unwrap_model(model), layer="first")[0].weight.detach().cpu()


def inspect_kernels(weight: torch.Tensor, top: int) -> list[dict]:
    """One row per ``(out, in)`` kernel: description and the best hand-designed matches."""
    from cnnconv.analysis import describe_kernel, match_kernel

    rows = []
    for o in range(weight.shape[0]):
        for i in range(weight.shape[1]):
            k = weight[o, i].double()
            d = describe_kernel(k)
            matches = match_kernel(k, top=top)
            best = matches[0] if matches else None
            rows.append({
                "kernel": f"{o}" if weight.shape[1] == 1 else f"{o}.{i}",
                "best_match": best.name if best else "-",
                "similarity": best.similarity if best else float("nan"),
                "transform": best.transform if best else "-",
                "sigma": best.sigma if best and best.sigma is not None else float("nan"),
                "others": ", ".join(f"{m.name} {m.similarity:.2f}" for m in matches[1:]),
                "orientation": d.orientation,
                "antisymmetry": d.antisymmetry,
                "dc_gain": d.dc_gain,
                "separability": d.separability,
                "aligned": best.aligned.detach().cpu() if best else None,
            })
    return rows


def run(cfg: CNNKernelsConfig, run: Run) -> dict:
    model_plain = build_model(cfg)
    initial = first_layer(model_plain).clone()
    model = run.wrap(model_plain)
    first = list(model_plain.first.parameters())
    rest = [p for p in model_plain.parameters() if all(p is not q for q in first)]
    opt = torch.optim.AdamW([{"params": first, "weight_decay": cfg.first_weight_decay},
                             {"params": rest, "weight_decay": cfg.weight_decay}], lr=cfg.lr)
    test_x, test_y = oriented_batch(cfg, cfg.test_size,
                                    run.step_generator(0, stream=1_000_003))
    test_x, test_y = test_x.to(run.device), test_y.to(run.device)

    def step_fn(i):
        model.train()
        x, y = oriented_batch(cfg, cfg.batch_size, run.step_generator(i))
        x, y = run.shard((x.to(run.device), y.to(run.device)))
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": run.mean_across_ranks(loss), "train_acc": run.mean_across_ranks(acc)}

    @torch.no_grad()
    def eval_fn(step):
        model_plain.eval()
        correct = 0
        for start in range(0, cfg.test_size, 500):
            logits = model_plain(test_x[start:start + 500])
            correct += int((logits.argmax(1) == test_y[start:start + 500]).sum())
        model_plain.train()
        return {"test_acc": correct / cfg.test_size}

    result = run.fit(model, opt, step_fn, steps=cfg.steps, tag="train",
                     checkpoint_every=cfg.checkpoint_every, eval_fn=eval_fn,
                     eval_every=cfg.eval_every)
    test_acc = eval_fn(cfg.steps)["test_acc"]
    summary = {"test_acc": test_acc, "seconds": result.seconds}
    if run.is_main:
        trained = first_layer(model_plain)
        summary.update(write_report(cfg, run, initial, trained, test_acc, result.seconds))
    return summary


def write_report(cfg, run: Run, initial, trained, test_acc, seconds) -> dict:
    from cnnconv.analysis.plotting import plot_kernels, plot_side_by_side

    rd = run.dir
    rows = inspect_kernels(trained, cfg.top_matches)
    base = inspect_kernels(initial, 1)
    table_cols = ["kernel", "best_match", "similarity", "transform", "sigma", "orientation",
                  "antisymmetry", "dc_gain", "separability", "others"]
    write_csv(rd / "kernels.csv", [{c: r[c] for c in table_cols} for r in rows])
    titles = [f"{r['kernel']}: {r['best_match']} {r['similarity']:.2f}" for r in rows]
    flat = trained.reshape(-1, *trained.shape[-2:])
    save_figure(plot_kernels(
        flat, titles=titles, annotate=False,
        suptitle=f"First-layer kernels after training (test accuracy {test_acc:.1%})"),
        rd / "kernels_trained.png")
    save_figure(plot_kernels(
        initial.reshape(-1, *initial.shape[-2:]), annotate=False,
        titles=[f"{r['kernel']}: {r['best_match']} {r['similarity']:.2f}" for r in base],
        suptitle="The same kernels at initialisation"), rd / "kernels_initial.png")
    good = [r for r in rows if r["aligned"] is not None]
    save_figure(plot_side_by_side(
        [flat[j].double() for j, r in enumerate(rows) if r["aligned"] is not None],
        [r["aligned"] for r in good], titles=[f"kernel {r['kernel']}" for r in good],
        reference_titles=[f"{r['best_match']} ({r['transform']})" for r in good],
        annotate=False, suptitle="Learned kernels (top), best hand-designed match scaled and "
                                 "aligned (middle), difference (bottom)"),
        rd / "kernels_matched.png")
    metrics = run.read_metrics("train")
    curves = {name: metrics[name] for name in ("test_acc",) if name in metrics}
    if "train_acc" in metrics:
        s, v = metrics["train_acc"]
        w = max(1, len(v) // 50)  # running mean over a window, for a readable curve
        smooth = [sum(v[max(0, j - w + 1):j + 1]) / len(v[max(0, j - w + 1):j + 1])
                  for j in range(len(v))]
        curves["train_acc (running mean)"] = (s, smooth)
    line_plot(curves, rd / "accuracy.png", xlabel="step", ylabel="accuracy",
              title="Orientation classification accuracy",
              hlines={"chance": 1.0 / cfg.num_classes})

    sim_trained = sorted(r["similarity"] for r in rows)
    sim_initial = sorted(r["similarity"] for r in base)
    median = lambda v: v[len(v) // 2] if v else float("nan")  # noqa: E731
    counts = Counter(r["best_match"] for r in rows)
    rep = Report("What a CNN learns: first-layer kernels of a small CNN")
    rep.paragraph(
        f"A `SmallCNN` (width {cfg.width}, first layer {cfg.kernel_size}x"
        f"{cfg.kernel_size}, random initialisation) learns to classify {cfg.image_size}x"
        f"{cfg.image_size} images into {cfg.num_classes} orientation classes (step edges and "
        f"gratings, jitter +-{cfg.jitter:g} degrees, noise sigma {cfg.noise:g}) in {cfg.steps} "
        f"AdamW steps of {cfg.batch_size} images (weight decay {cfg.first_weight_decay:g} on the "
        f"first layer, {cfg.weight_decay:g} elsewhere; {seconds:.1f} s of training on "
        f"{run.device}). "
        "Each first-layer kernel is then matched against the hand-designed bank of "
        "`cnnconv.kernels` (cosine similarity under scale, sign, 90-degree rotations and flips, "
        "sigma fitted for the Gaussian families) by `cnnconv.analysis.match_kernel`.")
    rep.section("Summary")
    rep.table([
        {"quantity": "test accuracy", "value": test_acc},
        {"quantity": "chance", "value": 1.0 / cfg.num_classes},
        {"quantity": "median best-match similarity, trained kernels", "value": median(sim_trained)},
        {"quantity": "median best-match similarity, same kernels at initialisation",
         "value": median(sim_initial)},
        {"quantity": "kernels with best-match similarity >= 0.7, trained",
         "value": f"{sum(v >= 0.7 for v in sim_trained)} of {len(sim_trained)}"},
        {"quantity": "kernels with best-match similarity >= 0.7, at initialisation",
         "value": f"{sum(v >= 0.7 for v in sim_initial)} of {len(sim_initial)}"},
    ], ["quantity", "value"])
    rep.paragraph("Best matches of the trained kernels: "
                  + ", ".join(f"{name} x{n}" for name, n in counts.most_common()) + ".")
    rep.section("Kernels and the hand-designed kernels they resemble")
    rep.paragraph("`orientation` is the direction (degrees from +x towards +y) of the intensity "
                  "change the kernel responds to most; `antisymmetry` is the share of its energy "
                  "odd under a 180-degree turn (1 for a pure derivative); `separability` the "
                  "share in the first singular value.")
    rep.table(rows, table_cols, digits=3)
    rep.image(rd / "kernels_trained.png", "Trained first-layer kernels, titled with their best "
              "match and similarity", rd)
    rep.image(rd / "kernels_matched.png", "Each trained kernel beside its best match", rd)
    rep.image(rd / "kernels_initial.png", "The kernels at initialisation, with their best "
              "(chance) matches", rd)
    rep.section("Training")
    rep.image(rd / "accuracy.png", "Accuracy over training", rd)
    rep.write(rd / "report.md")
    return {"median_similarity": median(sim_trained),
            "median_similarity_initial": median(sim_initial)}


def main(argv=None):
    return experiment_main(NAME, CNNKernelsConfig, run, argv)


if __name__ == "__main__":
    main()
