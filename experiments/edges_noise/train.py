"""Training and the unit of work of experiment 2: for one seed and one noise level, evaluate the
fixed detectors, train every learned one with a class-balanced BCE on ``sigmoid(a * |grad| + b)``,
align it and evaluate it the same way.

A unit's rows, kernels and P-R curves are what :func:`experiments.edges_noise.run_experiment`
saves, summarises and reports.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv import kernels
from cnnconv.training import Run, step_generator

from .config import EdgesNoiseConfig
from .detectors import (align_orientation, apply_alignment, canny_scores, fitted_sigma,
                        hand_designed_gradients, learned_gradients, learned_kernels, learned_sigma,
                        make_learned, make_parametric)
from .evaluate import boundary_scores, evaluate_detector, make_scenes, thresholds_for

__all__ = ["LogisticEdgeHead", "balanced_bce", "train_head", "run_unit"]


class LogisticEdgeHead(nn.Module):
    """A gradient layer followed by ``a * |grad| + b``: the logits of the edge probability.

    Only the magnitude enters the loss (HED-style), so the learned kernels are scored by how well
    their gradient magnitude separates boundary from non-boundary pixels.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(0.0))

    def magnitude(self, images: torch.Tensor) -> torch.Tensor:
        gx, gy = learned_gradients(self.layer, images)
        # The small constant keeps the gradient of the square root finite at zero.
        return torch.sqrt(gx * gx + gy * gy + 1e-12)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.a * self.magnitude(images) + self.b


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced binary cross-entropy (HED): positives weighted by the negative fraction.

    Args:
        logits: ``(N, H, W)`` edge logits.
        target: ``(N, H, W)`` boundary map (bool or 0/1).

    Returns:
        Scalar loss: ``mean(w * bce)`` with ``w = 1 - p`` on boundary pixels and ``p`` elsewhere,
        ``p`` the boundary fraction of the batch.

    Example:
        >>> t = torch.zeros(1, 4, 4); t[0, 1] = 1
        >>> good, bad = balanced_bce(8 * t - 4, t), balanced_bce(4 - 8 * t, t)
        >>> bool(good < bad)
        True
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    target = target.to(logits.dtype)
    p = target.mean()
    weight = torch.where(target > 0, 1 - p, p)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def _init_head(head: LogisticEdgeHead, images: torch.Tensor) -> None:
    """Start the logistic head on the scale of the layer's magnitude (logits about N(-1, 1))."""
    with torch.no_grad():
        mag = head.magnitude(images)
        std = mag.std().clamp_min(1e-8)
        head.a.fill_(float(1.0 / std))
        head.b.fill_(float(-mag.mean() / std - 1.0))


def train_head(run: Run, head: LogisticEdgeHead, scenes: dict, cfg: EdgesNoiseConfig, *,
               tag: str, seed: int) -> dict:
    """Train a head on ``scenes`` with checkpoints and exact resume (through ``run.fit``).

    Returns:
        ``{"loss": final training loss over all training scenes, "seconds": training time}``.
    """
    head = head.to(run.device)
    images, target = scenes["image"], scenes["boundary"]
    _init_head(head, images[: cfg.batch_size])
    head_params = [head.a, head.b]
    layer_params = [p for p in head.layer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([{"params": layer_params, "lr": cfg.lr},
                                  {"params": head_params, "lr": cfg.head_lr}])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps)
    n = images.shape[0]

    def step_fn(step: int):
        g = step_generator(seed, step)
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=g).to(images.device)
        loss = balanced_bce(head(images[idx]), target[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
            return {"loss": float(loss.detach())}
        return None

    result = run.fit(head, optimizer, step_fn, steps=cfg.steps, tag=tag, scheduler=scheduler,
                     checkpoint_every=cfg.checkpoint_every, desc=tag)
    with torch.no_grad():
        loss = float(balanced_bce(head(images), target))
    return {"loss": loss, "seconds": result.seconds}



def _scene_seed(seed: int, split: str) -> int:
    # Training and test scenes come from disjoint seed ranges; the same clean scenes are reused
    # at every noise level, so the noise is the only thing that changes along the noise axis.
    return 1_000_003 * (seed + 1) + (0 if split == "train" else 500_000)


def _learned_variants(cfg: EdgesNoiseConfig) -> list[tuple[str, dict]]:
    out = []
    for k in cfg.kernel_sizes:
        for init in cfg.inits:
            for zs in cfg.zero_sum:
                name = f"learned-{k}x{k}-{init}" + ("-zerosum" if zs else "")
                out.append((name, {"kernel_size": k, "init": init, "zero_sum": zs}))
    return out


def _pdc_variants(cfg: EdgesNoiseConfig) -> list[tuple[str, dict]]:
    return [(f"pdc-{pdc}-3x3-{init}", {"kernel_size": 3, "init": init, "zero_sum": False, "pdc": pdc})
            for pdc in cfg.pdc_types for init in cfg.inits]


def run_unit(cfg: EdgesNoiseConfig, run: Run, seed: int, noise_index: int) -> dict:
    """Train and evaluate every detector for one seed and one noise level.

    Returns:
        ``{"rows": [...], "kernels": {name: (2, k, k) list}, "curves": {name: {...}}}``.
    """
    noise = float(cfg.noise_levels[noise_index])
    device = run.device
    thresholds = thresholds_for(cfg.n_thresholds)
    train = make_scenes(cfg.n_train, cfg.image_size, noise, _scene_seed(seed, "train"), device)
    test = make_scenes(cfg.n_test, cfg.image_size, noise, _scene_seed(seed, "test"), device)
    rows: list[dict] = []
    kernels_out: dict = {}
    curves: dict = {}

    def record(name: str, family: str, result: dict, **info) -> None:
        row = {"seed": seed, "noise": noise, "detector": name, "family": family,
               "kernel_size": None, "init": None, "zero_sum": None, "sigma": None,
               "fitted_sigma": None, "learned_sigma": None, "train_loss": None,
               "train_seconds": None}
        row.update(info)
        for key in ("ods", "ois", "ap", "r50", "orientation_error"):
            row[key] = None if result.get(key) is None else float(result[key])
        rows.append(row)
        if "precision" in result and "recall" in result:
            curves[name] = {"precision": [float(v) for v in result["precision"]],
                            "recall": [float(v) for v in result["recall"]]}

    with torch.no_grad():
        for name in cfg.hand_designed:
            gx, gy = hand_designed_gradients(test["image"], name)
            record(name, "hand", evaluate_detector(gx, gy, test, thresholds, cfg.max_dist),
                   kernel_size=3)
        for sigma in cfg.sigma_grid:
            gx, gy = hand_designed_gradients(test["image"], "dog", sigma=float(sigma))
            size = kernels.gaussian_size_from_sigma(float(sigma))
            record(f"dog-s{float(sigma):g}", "dog",
                   evaluate_detector(gx, gy, test, thresholds, cfg.max_dist),
                   kernel_size=size, sigma=float(sigma))
    images = test["image"][:, 0].detach().cpu().numpy()
    for sigma in cfg.canny_sigmas:
        scores = canny_scores(images, float(sigma), thresholds, cfg.canny_low_ratio)
        result = boundary_scores(torch.from_numpy(scores), test["boundary"].cpu(), thresholds, cfg.max_dist)
        record(f"canny-s{float(sigma):g}", "canny", result, sigma=float(sigma))

    # Reference directions for aligning learned (gx, gy) pairs: Sobel on the clean training scenes.
    with torch.no_grad():
        rx, ry = hand_designed_gradients(train["clean"], "sobel")
    mask = train["boundary"]

    variants = [(name, "learned", info) for name, info in _learned_variants(cfg)]
    variants += [(name, "pdc", info) for name, info in _pdc_variants(cfg)]
    if cfg.parametric:
        variants.append(("dog-learned-sigma", "parametric", {}))
    for v, (name, family, info) in enumerate(variants):
        torch.manual_seed(10_000 * seed + 100 * noise_index + v)
        if family in ("learned", "pdc"):
            layer = make_learned(**info)
        else:
            layer = make_parametric(cfg.sigma_init, max([*cfg.sigma_grid, 2.0 * cfg.sigma_init, 3.0]))
        head = LogisticEdgeHead(layer)
        tag = f"s{seed}_n{noise_index}_{name}"
        trained = train_head(run, head, train, cfg, tag=tag, seed=10_000 * seed + 100 * noise_index + v)
        with torch.no_grad():
            gx, gy = learned_gradients(head.layer, train["clean"])
            angle, reflect = align_orientation(gx, gy, rx, ry, mask)
            gx, gy = learned_gradients(head.layer, test["image"])
            gx, gy = apply_alignment(gx, gy, angle, reflect)
            result = evaluate_detector(gx, gy, test, thresholds, cfg.max_dist)
            # The alignment is linear, so it applies to the kernels as well: stored and shown
            # kernels are the ones that produced the evaluated (gx, gy).
            kx, ky = learned_kernels(head.layer).detach().cpu().double().unbind(0)
            weights = torch.stack(apply_alignment(kx, ky, angle, reflect))
        extra = {"train_loss": trained["loss"], "train_seconds": trained["seconds"]}
        if family in ("learned", "pdc"):
            extra.update({key: info[key] for key in ("kernel_size", "init", "zero_sum")})
            extra["fitted_sigma"] = fitted_sigma(weights[0])
        else:
            extra["learned_sigma"] = learned_sigma(head.layer)
            extra["kernel_size"] = int(weights.shape[-1])
        record(name, family, result, **extra)
        kernels_out[name] = {"weights": weights.tolist(), "angle": angle, "reflect": reflect}
    return {"rows": rows, "kernels": kernels_out, "curves": curves}

