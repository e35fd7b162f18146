"""Experiment 2: edges under noise.

Learnable k x k gradient kernels (k = 3, 5, 7; random or Sobel initialisation; with or without
the zero-sum constraint) and a derivative-of-Gaussian layer with a learnable sigma are trained
against the exact boundaries of synthetic scenes, then evaluated beside Sobel, Prewitt, Scharr,
derivatives of Gaussian over a sigma grid and Canny, at several noise levels and seeds.

Protocol (the same for every detector):

1. For each seed and noise level, draw training scenes and separate held-out test scenes
   (different scene seeds) at that noise level (a fraction of the edge contrast).
2. Learned detectors are trained on the training scenes only, with a class-balanced binary
   cross-entropy (HED) on ``sigmoid(a * magnitude + b)``, ``a`` and ``b`` learned with the
   kernel. Only the gradient magnitude enters the loss, so a learned ``(gx, gy)`` pair is defined
   up to a rotation or reflection; before evaluation it is aligned (one rotation angle and an
   optional reflection, fitted on the clean training images against Sobel's gradient direction)
   so that non-maximum suppression looks across the edge.
3. Every linear detector gives ``(gx, gy)`` on the test scenes; the magnitude goes through the
   same non-maximum suppression (:func:`cnnconv.edges.non_max_suppression`) along the gradient
   direction, is divided by its largest value over the test set (one monotone map per detector,
   so the ranking of pixels and the dataset-wide ODS threshold are unchanged) and is evaluated by
   :func:`cnnconv.evaluation.metrics.evaluate_boundaries` on the same thresholds: ODS, OIS, AP, R50.
4. Canny (scikit-image) is binary: it is swept over its high threshold on the same grid (low =
   ``canny_low_ratio`` * high, thresholds as fractions of the test set's largest smoothed Sobel
   magnitude). Canny's output shrinks monotonically as both thresholds rise, so the sweep is
   stored as one score map (the highest grid threshold at which each pixel survives) that gives
   exactly Canny's output when thresholded at any grid value. Canny thins with its own
   non-maximum suppression and hysteresis, so our NMS is not applied again.
5. Orientation error (degrees, on the true boundary pixels) comes from
   :func:`cnnconv.evaluation.metrics.orientation_error` on ``atan2(gy, gx)``; Canny has none.

Run::

    cnnconv run edges_noise [--set key=value ...]
    python -m experiments.edges_noise --config configs/edges_noise.yaml   # in a clone

Duration on a 2-core CPU: about 17-20 min (17.0 min of compute measured for the full config).

The run folder holds ``config.yaml``, ``metrics.csv`` (one row per seed, noise level and
detector), ``results.json``, the figures and ``report.md``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv import kernels
from cnnconv.training import (MAX_BATCH_SIZE, MAX_SEED, Run, check_range, experiment_main, param,
                              yaml_defaults)

from .common import config_file

NAME = "edges_noise"

__all__ = [
    "EdgesNoiseConfig",
    "run_experiment",
    "main",
    "hand_designed_gradients",
    "evaluate_detector",
    "verdicts",
]

MIN_SEEDS = 3
"""Seeds a win/tie/lose verdict needs: fewer support no significance claim."""
_INITS = ("random", "sobel")
_PDC_TYPES = ("cd", "ad", "rd")
_HAND = ("sobel", "prewitt", "scharr")


@dataclass
@yaml_defaults(config_file(NAME))
class EdgesNoiseConfig:
    """Everything experiment 2 depends on; the defaults are the full run (about 15-20 minutes on
    two CPU cores). The device is the command line's ``--device``."""

    image_size: int = param(help="side of the square synthetic scenes (pixels)")
    n_train: int = param(help="training scenes per seed and noise level")
    n_test: int = param(help="held-out test scenes per seed and noise level (other scene seeds)")
    noise_levels: list[float] = param(help="additive Gaussian noise std as a fraction of the edge contrast")
    seeds: list[int] = param(help="one repetition per seed: scenes, initialisation, batches")
    kernel_sizes: list[int] = param(help="sizes k of the learnable k x k gradient kernels")
    inits: list[str] = param(help="initialisations of the learnable kernels")
    zero_sum: list[bool] = param(help="train without and/or with the zero-sum constraint")
    pdc_types: list[str] = param(help="also train 3x3 pixel-difference detectors of these types (cd, ad, rd), "
                                  "one per init; rd has no exact Sobel start")
    parametric: bool = param(help="also train the derivative of Gaussian with a learnable sigma")
    sigma_init: float = param(help="initial sigma of the learnable derivative of Gaussian")
    hand_designed: list[str] = param(help="fixed 3x3 detectors")
    sigma_grid: list[float] = param(help="sigmas of the fixed derivative-of-Gaussian detectors")
    canny_sigmas: list[float] = param(help="Gaussian sigmas of the Canny detectors ([]: none)")
    canny_low_ratio: float = param(help="Canny's low threshold as a fraction of the high one")
    steps: int = param(help="Adam steps per learned detector")
    batch_size: int = param(help="training scenes per step")
    lr: float = param(help="learning rate of the kernels and of the learnable sigma")
    head_lr: float = param(help="learning rate of the logistic scale a and offset b")
    n_thresholds: int = param(help="thresholds of the sweep, evenly spaced in (0, 1)")
    max_dist: float = param(help="matching tolerance: < 1 a fraction of the image diagonal (BSDS), >= 1 pixels")
    tie_tolerance: float = param(help="ODS differences below this (or 2 standard errors) are ties")
    checkpoint_every: int = param(help="steps between checkpoints of each detector (0: at the end)")
    num_threads: int = param(help="CPU threads for torch (0: torch's default); the layers are tiny, "
                                "so one thread is fastest, above all on a shared machine")

    def __post_init__(self) -> None:
        for name in ("image_size", "n_train", "n_test", "steps", "batch_size", "n_thresholds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size!r}")
        if not self.noise_levels or any(not 0 <= float(v) < 10 for v in self.noise_levels):
            raise ValueError(f"noise_levels must be a non-empty list of values in [0, 10), got {self.noise_levels!r}")
        if not self.seeds:
            raise ValueError(f"seeds must not be empty, got {self.seeds!r}")
        for seed in self.seeds:
            check_range("seeds", seed, 0, MAX_SEED)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("image_size", self.image_size, 16, 4096)
        for k in self.kernel_sizes:
            if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
                raise ValueError(f"kernel_sizes must hold odd integers >= 3, got {self.kernel_sizes!r}")
        for init in self.inits:
            if init not in _INITS:
                raise ValueError(f"inits must be among {list(_INITS)}, got {self.inits!r}")
        for pdc in self.pdc_types:
            if pdc not in _PDC_TYPES:
                raise ValueError(f"pdc_types must be among {list(_PDC_TYPES)}, got {self.pdc_types!r}")
            if pdc == "rd" and any(init != "random" for init in self.inits):
                raise ValueError(f"pdc_types 'rd' cannot start from a hand-designed pair, got inits={self.inits!r}")
        if self.pdc_types and not self.inits:
            raise ValueError("inits must not be empty when pdc_types is given")
        for name in self.hand_designed:
            if name not in _HAND:
                raise ValueError(f"hand_designed must be among {list(_HAND)}, got {self.hand_designed!r}")
        for name in ("sigma_grid", "canny_sigmas"):
            if any(not 0 < float(s) < float("inf") for s in getattr(self, name)):
                raise ValueError(f"{name} must hold positive sigmas, got {getattr(self, name)!r}")
        if not 0 < self.canny_low_ratio <= 1:
            raise ValueError(f"canny_low_ratio must be in (0, 1], got {self.canny_low_ratio!r}")
        if isinstance(self.checkpoint_every, bool) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be a non-negative integer, got {self.checkpoint_every!r}")
        if isinstance(self.num_threads, bool) or self.num_threads < 0:
            raise ValueError(f"num_threads must be a non-negative integer, got {self.num_threads!r}")
        check_range("tie_tolerance", self.tie_tolerance, 0)
        for name in ("lr", "head_lr", "max_dist", "sigma_init"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.kernel_sizes and not self.inits:
            raise ValueError("inits must not be empty when kernel_sizes is given")
        if self.kernel_sizes and not self.zero_sum:
            raise ValueError("zero_sum must not be empty when kernel_sizes is given")


# --------------------------------------------------------------------------- detectors


def _conv_gradients(images: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlate ``(N, 1, H, W)`` images with an x and a y kernel, reflect border, same size."""
    weight = torch.stack([kx, ky]).unsqueeze(1).to(images)
    kh, kw = weight.shape[-2:]
    padded = F.pad(images, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    out = F.conv2d(padded, weight)
    return out[:, 0], out[:, 1]


def hand_designed_kernels(name: str, *, sigma: float | None = None, dtype=None, device=None):
    """The ``(kx, ky)`` pair of a fixed detector: ``sobel``, ``prewitt``, ``scharr`` or ``dog``.

    Args:
        name: detector name.
        sigma: the Gaussian sigma when ``name == "dog"``.

    Returns:
        Two tensors ``(k, k)``, normalised so that the sum of absolute values is 1 (DoG: as built
        by :func:`cnnconv.kernels.gaussian_derivative`).

    Example:
        >>> kx, ky = hand_designed_kernels("sobel")
        >>> kx.shape, bool(torch.equal(kx.t(), ky))
        (torch.Size([3, 3]), True)
    """
    opts = {"dtype": dtype, "device": device}
    if name == "sobel":
        return kernels.sobel_x(normalized=True, **opts), kernels.sobel_y(normalized=True, **opts)
    if name == "prewitt":
        return kernels.prewitt_x(normalized=True, **opts), kernels.prewitt_y(normalized=True, **opts)
    if name == "scharr":
        return kernels.scharr_x(normalized=True, **opts), kernels.scharr_y(normalized=True, **opts)
    if name == "dog":
        if sigma is None:
            raise ValueError("sigma is required for the 'dog' detector, got None")
        return (kernels.gaussian_derivative(sigma, axis="x", **opts),
                kernels.gaussian_derivative(sigma, axis="y", **opts))
    raise ValueError(f"name must be one of sobel, prewitt, scharr, dog, got {name!r}")


def hand_designed_gradients(images: torch.Tensor, name: str, *, sigma: float | None = None):
    """``(gx, gy)`` of a fixed detector on ``(N, 1, H, W)`` images (reflect border).

    Example:
        >>> x = torch.arange(64.0).reshape(1, 1, 8, 8) % 8
        >>> gx, gy = hand_designed_gradients(x, "sobel")
        >>> round(float(gx[0, 4, 4]), 3), round(float(gy[0, 4, 4]), 3)
        (1.0, 0.0)
    """
    kx, ky = hand_designed_kernels(name, sigma=sigma, dtype=images.dtype, device=images.device)
    return _conv_gradients(images, kx, ky)


def canny_scores(images: np.ndarray, sigma: float, thresholds: np.ndarray, low_ratio: float) -> np.ndarray:
    """Canny swept over its high threshold, stored as one score map per image.

    The high threshold runs over ``thresholds * scale`` (``scale``: the largest smoothed Sobel
    magnitude over ``images``), the low one is ``low_ratio`` times the high one. Canny's output
    shrinks as both rise, so each pixel gets the midpoint between the highest grid threshold at
    which it is an edge and the next one: thresholding the map at a grid value (``>`` or ``>=``)
    gives Canny's edges at that value exactly.

    Args:
        images: ``(N, H, W)`` float images.
        sigma: Canny's Gaussian sigma.
        thresholds: increasing values in ``(0, 1)``.
        low_ratio: low / high threshold.

    Returns:
        ``(N, H, W)`` float64 score maps in ``[0, 1)``; 0 where Canny never fires.
    """
    from scipy import ndimage
    from skimage.feature import canny

    thresholds = np.asarray(thresholds, dtype=np.float64)
    uppers = np.append(thresholds[1:], 1.0)
    mids = 0.5 * (thresholds + uppers)
    scale = 0.0
    for img in images:
        smooth = ndimage.gaussian_filter(img.astype(np.float64), sigma, mode="mirror")
        mag = np.hypot(ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1))
        scale = max(scale, float(mag.max()))
    scale = scale if scale > 0 else 1.0
    scores = np.zeros(images.shape, dtype=np.float64)
    for n, img in enumerate(images):
        for t, mid in zip(thresholds, mids):
            edges = canny(img.astype(np.float64), sigma=sigma, low_threshold=low_ratio * t * scale,
                          high_threshold=t * scale, mode="mirror")
            if not edges.any():
                break
            scores[n][edges] = mid
    return scores


def align_orientation(gx: torch.Tensor, gy: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor,
                      mask: torch.Tensor) -> tuple[float, bool]:
    """Rotation angle and reflection that best align ``(gx, gy)`` with a reference gradient.

    Orientations are compared modulo 180 degrees through the double angle: ``(gx + i gy)^2``
    against ``(rx + i ry)^2`` on ``mask``, weighted by both magnitudes.

    Returns:
        ``(angle, reflect)``: apply with :func:`apply_alignment`.
    """
    g = torch.complex(gx[mask].double(), gy[mask].double()) ** 2
    r = torch.complex(rx[mask].double(), ry[mask].double()) ** 2
    plain = (r * g.conj()).sum()
    mirrored = (r * g).sum()
    reflect = bool(mirrored.abs() > plain.abs())
    target = mirrored if reflect else plain
    return float(torch.angle(target)) / 2.0, reflect


def apply_alignment(gx: torch.Tensor, gy: torch.Tensor, angle: float, reflect: bool):
    """Reflect (``gy -> -gy``) then rotate ``(gx, gy)`` by ``angle`` radians."""
    if reflect:
        gy = -gy
    c, s = math.cos(angle), math.sin(angle)
    return c * gx - s * gy, s * gx + c * gy


# --------------------------------------------------------------------------- summaries


def _mean_std(values) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                     dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    # One value has no spread: its std is NaN (shown as no "±" at all), not 0.
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan")


def _fmt(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarize(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds, per noise level and detector.

    Returns:
        ``{noise: {detector: {"family": ..., "ods": (mean, std), ..., "n": seeds}}}`` with the
        detectors in first-seen order.
    """
    out: dict = {}
    for row in rows:
        out.setdefault(row["noise"], {}).setdefault(row["detector"], []).append(row)
    summary: dict = {}
    for noise in sorted(out):
        summary[noise] = {}
        for det, group in out[noise].items():
            entry = {key: group[0][key] for key in ("family", "kernel_size", "init", "zero_sum", "sigma")}
            for key in ("ods", "ois", "ap", "r50", "orientation_error", "fitted_sigma", "learned_sigma"):
                entry[key] = _mean_std([g.get(key) for g in group])
            entry["n"] = len(group)
            summary[noise][det] = entry
    return summary


def _paired(rows: list[dict], noise: float, a: str, b: str) -> np.ndarray:
    """ODS(a) - ODS(b) per seed at one noise level (seeds where both were measured)."""
    by = {(r["detector"], r["seed"]): r["ods"] for r in rows if r["noise"] == noise}
    seeds = sorted({r["seed"] for r in rows if r["noise"] == noise})
    return np.asarray([by[(a, s)] - by[(b, s)] for s in seeds if (a, s) in by and (b, s) in by])


def compare(diffs: np.ndarray, tolerance: float) -> str:
    """``win``, ``tie`` or ``lose`` from paired per-seed differences.

    A win needs a mean difference above both ``tolerance`` and two standard errors of the mean
    difference; a loss is the mirror image; everything else is a tie.

    Example:
        >>> compare(np.array([0.05, 0.06, 0.04]), 0.005), compare(np.array([0.01, -0.01]), 0.005)
        ('win', 'tie')
    """
    if diffs.size == 0:
        raise ValueError("diffs must hold at least one paired difference, got none")
    mean = float(diffs.mean())
    se = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else 0.0
    margin = max(tolerance, 2.0 * se)
    if mean > margin:
        return "win"
    if mean < -margin:
        return "lose"
    return "tie"


def _best(summary_at_noise: dict, predicate: Callable[[str, dict], bool]) -> str | None:
    names = [d for d, e in summary_at_noise.items() if predicate(d, e) and not math.isnan(e["ods"][0])]
    return max(names, key=lambda d: summary_at_noise[d]["ods"][0]) if names else None


def _is_learned(_d: str, e: dict) -> bool:
    return e["family"] in ("learned", "parametric", "pdc")


def _is_hand(_d: str, e: dict) -> bool:
    return e["family"] in ("hand", "dog", "canny")


def verdicts(rows: list[dict], tolerance: float = 0.005) -> list[dict]:
    """Where learned detectors win, tie or lose, computed from the per-seed ODS.

    For each noise level it compares (1) the best learned 5x5 or 7x7 kernel with Sobel (the
    acceptance test), (2) the best learned detector with the best hand-designed one (Sobel,
    Prewitt, Scharr, every derivative-of-Gaussian sigma and Canny) and (3) the learnable-sigma layer
    with the best derivative of Gaussian of the grid. "Best" is the highest mean ODS over seeds
    on the test scenes. With fewer than :data:`MIN_SEEDS` seeds the verdict is ``none``.

    Returns:
        One dict per comparison: noise, what, learned, reference, mean_diff, std_diff (NaN for
        one seed), n, verdict.
    """
    summary = summarize(rows)
    out = []
    for noise, at in summary.items():
        pairs = []
        big = _best(at, lambda d, e: e["family"] == "learned" and e["kernel_size"] in (5, 7))
        if big and "sobel" in at:
            pairs.append(("best learned 5x5/7x7 vs Sobel", big, "sobel"))
        learned, hand = _best(at, _is_learned), _best(at, _is_hand)
        if learned and hand:
            pairs.append(("best learned vs best hand-designed", learned, hand))
        para, dog = _best(at, lambda d, e: e["family"] == "parametric"), _best(at, lambda d, e: e["family"] == "dog")
        if para and dog:
            pairs.append(("learnable sigma vs best DoG of the grid", para, dog))
        for what, a, b in pairs:
            diffs = _paired(rows, noise, a, b)
            out.append({
                "noise": noise, "what": what, "learned": a, "reference": b,
                "mean_diff": float(diffs.mean()),
                "std_diff": float(diffs.std(ddof=1)) if diffs.size > 1 else float("nan"),
                "n": int(diffs.size),
                "verdict": compare(diffs, tolerance) if diffs.size >= MIN_SEEDS else "none",
            })
    return out


# --------------------------------------------------------------------------- adapters to the library
# The few places that touch the data, metric, edge and model APIs.


def make_scenes(n: int, size: int, noise: float, seed: int, device) -> dict:
    """``n`` synthetic scenes as tensors: ``image``, ``clean`` ``(n, 1, H, W)``, ``boundary``
    (bool) and ``orientation`` ``(n, H, W)``, from :class:`cnnconv.evaluation.data.SyntheticScenes`.

    The noise is a fraction of each scene's edge contrast; for one seed the scenes and the
    standard-normal noise field are the same at every noise level, only its scale changes.
    """
    from cnnconv.evaluation.data import SyntheticScenes

    items = [s for s in SyntheticScenes(n, size, seed=seed, noise=noise)]
    out = {key: torch.stack([s[key] for s in items]).to(device) for key in ("image", "clean", "boundary", "orientation")}
    out["orientation"] = out["orientation"].float()
    return out


def thin(magnitude: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The shared non-maximum suppression of every linear detector."""
    from cnnconv.edges import non_max_suppression

    return non_max_suppression(magnitude.unsqueeze(1), direction.unsqueeze(1))[:, 0]


def boundary_scores(scores: torch.Tensor | np.ndarray, boundaries, thresholds, max_dist: float) -> dict:
    """ODS, OIS, AP, R50 (and the P-R curve) of score maps in ``[0, 1]``."""
    from cnnconv.evaluation.metrics import evaluate_boundaries

    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu()
    if isinstance(boundaries, torch.Tensor):
        boundaries = boundaries.detach().cpu()
    result = evaluate_boundaries(scores, boundaries, thresholds=np.asarray(thresholds), max_dist=max_dist)
    return result.to_dict(curves=True)


def orientation_errors(direction: torch.Tensor, scenes: dict) -> float:
    """Mean orientation error (degrees) on the true boundary pixels."""
    from cnnconv.evaluation.metrics import orientation_error

    return orientation_error(direction.detach().cpu(), scenes["orientation"].cpu(), scenes["boundary"].cpu()).mean


def make_learned(kernel_size: int, init: str, zero_sum: bool, pdc: str | None = None) -> nn.Module:
    """A learnable 1 -> 2 channel gradient layer (x and y): :class:`cnnconv.models.EdgeDetector`,
    a pixel-difference one with ``pdc``.

    Reflect border, like the fixed detectors, so every detector sees the same image borders.
    """
    from cnnconv.models import EdgeDetector

    return EdgeDetector(kernel_size, init=init, constraint="zero_sum" if zero_sum else None,
                        padding_mode="reflect", method="direct", pdc=pdc)


def make_parametric(sigma: float, max_sigma: float) -> nn.Module:
    """A derivative-of-Gaussian layer with a learnable sigma giving x and y derivatives.

    Its kernel size is fixed when it is built, so it is sized for ``max_sigma`` (truncation at
    4 sigma), leaving sigma room to grow.
    """
    from cnnconv.parametric import LearnableGaussianDerivative

    size = kernels.gaussian_size_from_sigma(max(sigma, max_sigma))
    return LearnableGaussianDerivative(in_channels=1, sigma=sigma, kernel_size=size, border="reflect",
                                       learn_orientation=False)


def learned_gradients(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gx, gy)`` of a learned layer on ``(N, 1, H, W)`` images."""
    from cnnconv.parametric import LearnableGaussianDerivative

    if isinstance(model, LearnableGaussianDerivative):
        # The derivative of Gaussian is separable: two 1-D passes per component cost 2k instead
        # of k^2 per pixel, which matters for the k = 25 kernels a large sigma needs.
        from cnnconv.parametric import gaussian_derivative_kernel1d, gaussian_kernel1d

        k = model.kernel_size
        sigma = model.sigma.reshape(-1)[0].to(images.dtype)
        g = gaussian_kernel1d(sigma, k)
        d = gaussian_derivative_kernel1d(sigma, k)
        padded = F.pad(images, (k // 2, k // 2, k // 2, k // 2), mode="reflect")[:, 0]
        both = torch.stack([g, d]).unsqueeze(1)  # (2, 1, k)
        n, hp, wp = padded.shape
        # Down the columns: [smoothed, differentiated], each (n, H, Wp); 1-D passes as conv1d.
        cols = F.conv1d(padded.transpose(1, 2).reshape(n * wp, 1, hp), both)
        cols = cols.reshape(n, wp, 2, hp - k + 1).permute(2, 0, 3, 1)  # (2, n, H, Wp)
        h = hp - k + 1
        gx = F.conv1d(cols[0].reshape(n * h, 1, wp), d.reshape(1, 1, k)).reshape(n, h, wp - k + 1)
        gy = F.conv1d(cols[1].reshape(n * h, 1, wp), g.reshape(1, 1, k)).reshape(n, h, wp - k + 1)
        return gx, gy
    out = model(images)
    return out[:, 0], out[:, 1]


def learned_kernels(model: nn.Module) -> torch.Tensor:
    """The ``(2, k, k)`` x and y kernels of a learned layer."""
    from cnnconv.parametric import LearnableGaussianDerivative

    if isinstance(model, LearnableGaussianDerivative):
        gx, gy = model.kernel_pair()
        return torch.stack([gx[0], gy[0]])
    return model.weight[:, 0]


def learned_sigma(model: nn.Module) -> float:
    """The sigma of the learnable derivative of Gaussian."""
    return float(model.sigma.detach().reshape(-1)[0])


def fitted_sigma(kernel: torch.Tensor) -> float | None:
    """The derivative-of-Gaussian sigma that best fits a learned kernel (the kernel matcher).

    Returns:
        The fitted sigma, or ``None`` for an all-zero kernel.
    """
    from cnnconv.analysis import match_kernel

    matches = match_kernel(kernel, bank=["gaussian_dx"], top=1)
    return float(matches[0].sigma) if matches and matches[0].sigma is not None else None


# --------------------------------------------------------------------------- training


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
    from cnnconv.training import step_generator

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


# --------------------------------------------------------------------------- evaluation


def thresholds_for(n: int) -> np.ndarray:
    """``n`` evenly spaced thresholds strictly inside ``(0, 1)``."""
    return np.linspace(0.0, 1.0, n + 2)[1:-1]


def evaluate_detector(gx: torch.Tensor, gy: torch.Tensor, scenes: dict, thresholds: np.ndarray,
                      max_dist: float) -> dict:
    """The common evaluation of a linear detector: NMS, one scale, threshold sweep, matching.

    Args:
        gx, gy: ``(N, H, W)`` gradient components on the test scenes.
        scenes: the test scenes (``boundary``, ``orientation``).
        thresholds: the sweep.
        max_dist: matching tolerance, a fraction of the diagonal when ``< 1``, else pixels.

    Returns:
        ``ods``, ``ois``, ``ap``, ``r50``, ``orientation_error`` (degrees) and the P-R curve.
    """
    magnitude = torch.hypot(gx, gy)
    direction = torch.atan2(gy, gx)
    thinned = thin(magnitude, direction)
    top = thinned.max()
    scores = thinned / top if top > 0 else thinned
    out = boundary_scores(scores, scenes["boundary"], thresholds, max_dist)
    out["orientation_error"] = orientation_errors(direction, scenes)
    return out


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


# --------------------------------------------------------------------------- figures and report


def _noise_label(noise: float) -> str:
    return f"{noise:g}"


def _best_per_group(summary: dict) -> dict:
    """Per noise level, the names of the headline detectors (best of each group)."""
    out = {}
    for noise, at in summary.items():
        picks = {}
        for name in ("sobel", "prewitt", "scharr"):
            if name in at:
                picks[name] = name
        groups = {
            "best DoG of the grid": lambda d, e: e["family"] == "dog",
            "best Canny": lambda d, e: e["family"] == "canny",
            "best learned 3x3": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 3,
            "best learned 5x5": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 5,
            "best learned 7x7": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 7,
            "learnable sigma DoG": lambda d, e: e["family"] == "parametric",
        }
        for label, pred in groups.items():
            best = _best(at, pred)
            if best:
                picks[label] = best
        out[noise] = picks
    return out


def plot_ods_vs_noise(summary: dict, path: Path) -> Path:
    """ODS against noise, one line per detector group (see :func:`_ods_vs_noise_figure`)."""
    from .common import save_figure

    save_figure(_ods_vs_noise_figure(summary), path, dpi=110)
    return Path(path)


# Per family: colour ramp (colormap, range), line style, markers, and whether the detector is fixed
# (thin broken lines and hollow markers) or learned (thick solid lines and filled markers). Within
# a family the colour darkens with sigma or kernel size.
_FAMILY_STYLE = {
    "hand": ("Greys", (0.95, 0.5), "--", "sD^", True),
    "dog": ("Blues", (0.45, 1.0), ":", "osD^vp", True),
    "canny": ("Oranges", (0.45, 0.85), "-.", "v^", True),
    "learned": ("Reds", (0.4, 1.0), "-", "osD", False),
    "parametric": ("Greens", (0.75, 0.75), "-", "*", False),
}
_OTHER_STYLE = ("Purples", (0.5, 0.95), "-", "osD^v", False)
_LEARNED_LABEL = "best learned {k}x{k}"
_PARAMETRIC_LABEL = "learnable sigma DoG"


def _figure(width: float, height: float):
    """A constrained-layout Figure on an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style_key(name: str, entry: dict) -> str:
    """The series a detector belongs to: its name, or its group for learned detectors."""
    if entry["family"] == "learned":
        return _LEARNED_LABEL.format(k=entry["kernel_size"])
    if entry["family"] == "parametric":
        return _PARAMETRIC_LABEL
    return name


def _detector_styles(summary: dict) -> dict:
    """Line style of every series (:func:`_style_key`), the same in every figure of a run.

    Returns:
        ``{key: matplotlib line keywords}``, with a distinct (colour, marker, line style) per key.
    """
    from matplotlib import colormaps

    members: dict = {}
    for at in summary.values():
        for name, e in at.items():
            key = _style_key(name, e)
            order = e["sigma"] if e["sigma"] is not None else (e["kernel_size"] or 0)
            members.setdefault(e["family"], {}).setdefault(key, order)
    styles = {}
    for family, keys in members.items():
        cmap, (lo, hi), ls, markers, fixed = _FAMILY_STYLE.get(family, _OTHER_STYLE)
        ordered = sorted(keys, key=keys.get)  # stable: first-seen order among equals
        for i, key in enumerate(ordered):
            t = lo + (hi - lo) * i / max(1, len(ordered) - 1)
            styles[key] = dict(color=colormaps[cmap](t), ls=ls, marker=markers[i % len(markers)],
                               lw=1.3 if fixed else 2.4, ms=5 if fixed else 7,
                               mfc="white" if fixed else colormaps[cmap](t))
    return styles


def _ods_vs_noise_figure(summary: dict):
    """ODS against noise: every fixed detector, and per noise level the best learned variant of
    each kernel size and the learnable-sigma DoG.

    With more than one seed each point is the mean with a ± std error bar (the series are shifted
    a little sideways so that the bars do not hide each other); with one seed there are no bars.
    The noise levels are evenly spaced on the x axis. The legend sits outside the axes.
    """
    noises = sorted(summary)
    styles = _detector_styles(summary)
    best = _best_per_group(summary)
    series: dict = {}  # key -> [(noise index, entry)]
    for i, noise in enumerate(noises):
        for d, e in summary[noise].items():
            if e["family"] in ("learned", "parametric"):
                continue
            series.setdefault(d, []).append((i, e))
        for label, d in best[noise].items():
            e = summary[noise][d]
            if e["family"] in ("learned", "parametric"):
                series.setdefault(_style_key(d, e), []).append((i, e))
    # Fixed detectors first, then the learned ones, as in the report's tables.
    keys = sorted(series, key=lambda k: not _is_hand(k, series[k][0][1]))
    seeds = max(e["n"] for at in summary.values() for e in at.values())
    fig = _figure(9.5, 5.2)
    ax = fig.add_subplot()
    for j, key in enumerate(keys):
        xs = [i for i, _ in series[key]]
        means = [e["ods"][0] for _, e in series[key]]
        if seeds > 1:
            shift = 0.25 * (j / max(1, len(keys) - 1) - 0.5)
            ax.errorbar([x + shift for x in xs], means, yerr=[e["ods"][1] for _, e in series[key]],
                        label=key, capsize=2, elinewidth=0.8, **styles[key])
        else:
            ax.plot(xs, means, label=key, **styles[key])
    ax.set_xticks(range(len(noises)), [_noise_label(n) for n in noises])
    ax.set_xlabel("noise std (fraction of the edge contrast; levels evenly spaced)")
    ax.set_ylabel(f"ODS F (mean ± std over {seeds} seeds)" if seeds > 1 else "ODS F (one seed)")
    ax.set_title("Boundary detection under noise, held-out scenes")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8,
               title="broken lines: fixed\nsolid lines: learned", title_fontsize=8)
    return fig


def _crop_support(k: torch.Tensor, rel: float = 1e-3) -> torch.Tensor:
    """Centred crop to the smallest odd square holding every value above ``rel * max|k|``."""
    big = (k.abs() > rel * k.abs().max()).nonzero()
    if big.numel() == 0:
        return k
    c = k.shape[-1] // 2
    r = int((big - c).abs().max())
    return k[c - r: c + r + 1, c - r: c + r + 1]


def plot_kernel_panel(summary: dict, kernels_by_unit: dict, seed: int, path: Path) -> Path:
    """Learned x-kernels beside Sobel and the best derivative of Gaussian, one row per noise level.

    ``kernels_by_unit[(seed, noise)][name]["weights"]`` holds the aligned ``(2, k, k)`` kernels.
    See :func:`_kernel_panel_figure`.
    """
    from .common import save_figure

    save_figure(_kernel_panel_figure(summary, kernels_by_unit, seed), path)
    return Path(path)


def _kernel_panel_figure(summary: dict, kernels_by_unit: dict, seed: int):
    """The kernel panel: columns are detector groups (named on top), rows noise levels (named on
    the left). Learned kernels are on an arbitrary scale (the logistic head absorbs it), so every
    kernel is divided by its largest absolute weight, written under it; all panels then share
    one symmetric diverging colour scale [-1, 1] (red positive, blue negative) and one colour bar.
    """
    noises = sorted(summary)
    best = _best_per_group(summary)
    cols = ["sobel", "best DoG of the grid", "best learned 3x3", "best learned 5x5",
            "best learned 7x7", "learnable sigma DoG"]
    cols = [c for c in cols if any(c in best[n] for n in noises)]
    fig = _figure(1.75 * len(cols) + 1.6, 1.9 * len(noises) + 0.9)
    axes = fig.subplots(len(noises), len(cols), squeeze=False)
    image = None
    for r, noise in enumerate(noises):
        for c, label in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"noise {_noise_label(noise)}", fontsize=10)
            name = best[noise].get(label)
            if r == 0:
                ax.set_title(label, fontsize=9)
            if name is None:
                ax.set_xlabel("none", fontsize=7)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                continue
            entry = summary[noise][name]
            if entry["family"] == "hand":
                k = hand_designed_kernels(name, dtype=torch.float64)[0]
            elif entry["family"] == "dog":
                k = hand_designed_kernels("dog", sigma=entry["sigma"], dtype=torch.float64)[0]
            else:
                k = torch.tensor(kernels_by_unit[(seed, noise)][name]["weights"][0], dtype=torch.float64)
                if entry["family"] == "parametric":
                    k = _crop_support(k)  # sized for the largest sigma; show the part that matters
            peak = float(k.abs().max()) or 1.0
            image = ax.imshow((k / peak).numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0,
                              interpolation="nearest")
            short = "learned sigma" if entry["family"] == "parametric" else (
                name.replace("learned-", "").replace("-zerosum", " zs"))
            ax.set_xlabel(f"{short} ({k.shape[-1]}x{k.shape[-1]})\nmax |w| {peak:.2g}", fontsize=7)
    if image is not None:
        cbar = fig.colorbar(image, ax=axes, shrink=min(0.6, 2.5 / len(noises)), ticks=[-1, -0.5, 0, 0.5, 1])
        cbar.set_label("weight / max |weight| of its kernel", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    fig.suptitle(f"x-derivative kernels, seed {seed}\n(learned pairs aligned to Sobel's direction)",
                 fontsize=10)
    return fig


def plot_pr_curves(summary: dict, curves_by_unit: dict, seed: int, noise: float,
                   path: Path) -> Path | None:
    """P-R curves of the headline detectors at one noise level (one seed); ``None`` when there
    are none. See :func:`_pr_curves_figure`."""
    from .common import save_figure

    fig = _pr_curves_figure(summary, curves_by_unit, seed, noise)
    if fig is None:
        return None
    save_figure(fig, path, dpi=110)
    return Path(path)


def _pr_curves_figure(summary: dict, curves_by_unit: dict, seed: int, noise: float):
    """P-R curves, each with its ODS point (largest F) marked, zoomed to the region the curves
    span near their ODS points, iso-F lines labelled at the edge of the view, legend outside."""
    curves = curves_by_unit.get((seed, noise), {})
    best = _best_per_group(summary)[noise]
    names = [n for n in dict.fromkeys(best.values()) if n in curves]
    if not names:
        return None
    styles = _detector_styles(summary)
    fig = _figure(8.6, 5.4)
    ax = fig.add_subplot()
    shown = []  # (recall, precision) points of the informative part of each curve
    for n in names:
        r = np.asarray(curves[n]["recall"], dtype=np.float64)
        p = np.asarray(curves[n]["precision"], dtype=np.float64)
        f = np.where(r + p > 0, 2 * r * p / np.maximum(r + p, 1e-12), 0.0)
        i = int(np.argmax(f))
        style = dict(styles[_style_key(n, summary[noise][n])], ms=3)
        line, = ax.plot(r, p, label=f"{n} (ODS F {f[i]:.3f})", **style)
        ax.plot(r[i], p[i], marker=style["marker"], ms=9, color=line.get_color(),
                mfc=style["mfc"], mew=1.5, ls="none", zorder=3)
        keep = f >= 0.8 * f[i]  # the part of the curve around its ODS point
        shown.append(np.stack([r[keep], p[keep]], axis=1))
    pts = np.concatenate(shown)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    x0, y0 = max(0.0, math.floor(x0 * 10 - 0.5) / 10), max(0.0, math.floor(y0 * 10 - 0.5) / 10)
    x1, y1 = min(1.0, math.ceil(x1 * 10 + 0.5) / 10), min(1.0, math.ceil(y1 * 10 + 0.5) / 10)
    rr = np.linspace(max(x0, 1e-3), x1, 400)
    for fv in np.arange(1, 10) / 10:
        with np.errstate(divide="ignore", invalid="ignore"):
            pp = fv * rr / (2 * rr - fv)
        ok = (pp > 0) & (pp <= 1)
        ax.plot(rr[ok], pp[ok], color="0.8", lw=0.7, zorder=0)
        # Label just outside the view where the iso-F line leaves it: the top edge, else the right.
        r_top = y1 * fv / (2 * y1 - fv) if 2 * y1 > fv else math.inf
        if x0 < r_top < x1:
            at, offset, align = (r_top, y1), (0, 2), dict(ha="center", va="bottom")
        else:
            p_right = fv * x1 / (2 * x1 - fv) if 2 * x1 > fv else math.inf
            if not y0 < p_right < y1:
                continue
            at, offset, align = (x1, p_right), (3, 0), dict(ha="left", va="center")
        ax.annotate(f"F={fv:.1f}", at, xytext=offset, textcoords="offset points", fontsize=7,
                    color="0.45", annotation_clip=False, **align)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall, noise {_noise_label(noise)}, seed {seed} (large marker: ODS point)",
                 fontsize=10, pad=14)
    ax.grid(alpha=0.2)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def _tolerance_text(cfg: EdgesNoiseConfig) -> str:
    if cfg.max_dist >= 1:
        return f"{cfg.max_dist:g} pixels"
    pixels = cfg.max_dist * math.hypot(cfg.image_size, cfg.image_size)
    return f"{cfg.max_dist:g} of the diagonal ({pixels:.2f} pixels)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline_table(rows: list[dict]) -> str:
    """ODS (mean ± std over seeds) of the headline detectors against noise, as Markdown."""
    summary = summarize(rows)
    noises = sorted(summary)
    best = _best_per_group(summary)
    labels = list(dict.fromkeys(label for n in noises for label in best[n]))
    body = []
    for label in labels:
        cells = [label]
        for n in noises:
            name = best[n].get(label)
            if name is None:
                cells.append("-")
                continue
            e = summary[n][name]
            cell = _fmt(*e["ods"])
            if label != name:
                cell += f" ({name.replace('learned-', '')})"
            cells.append(cell)
        body.append(cells)
    return _table(["detector"] + [f"noise {_noise_label(n)}" for n in noises], body)


def _diff(v: dict) -> str:
    """A verdict's mean ODS difference, with its spread when there is one."""
    spread = "" if math.isnan(v["std_diff"]) else f" ± {v['std_diff']:.3f}"
    return f"{v['mean_diff']:+.3f}{spread}"


def verdict_lines(verdict_rows: list[dict]) -> list[str]:
    words = {"win": "**learned wins**", "tie": "**tie**", "lose": "**learned loses**",
             "none": f"no verdict (needs at least {MIN_SEEDS} seeds)"}
    out = []
    for v in verdict_rows:
        out.append(f"- noise {_noise_label(v['noise'])}, {v['what']}: `{v['learned']}` vs "
                   f"`{v['reference']}`, ODS difference {_diff(v)} "
                   f"(paired over {v['n']} seed{'s' if v['n'] != 1 else ''}): {words[v['verdict']]}")
    return out


def _headroom(rows: list[dict], noise: float) -> str:
    """How far Sobel is, at ``noise``, below the best mean ODS of the least noisy level."""
    summary = summarize(rows)
    base = min(summary)
    if base >= noise or "sobel" not in summary.get(noise, {}):
        return ""
    ceiling = max(e["ods"][0] for e in summary[base].values())
    sobel = summary[noise]["sobel"]["ods"][0]
    return (f"at noise {_noise_label(noise)} Sobel's ODS ({sobel:.3f}) is only {ceiling - sobel:.3f} below "
            f"the best ODS of any detector at noise {_noise_label(base)} ({ceiling:.3f}), which bounds "
            f"what a better detector can gain there")


def acceptance(verdict_rows: list[dict], rows: list[dict] | None = None) -> tuple[bool | None, str]:
    """The acceptance test: at noise 0.2 and above the best learned 5x5/7x7 beats Sobel.

    Returns:
        ``(met, sentence)``: ``met`` is True when every level is a win, False otherwise, None
        when not measured or measured on fewer than :data:`MIN_SEEDS` seeds. Given ``rows``, the sentence says how much room Sobel left at the
        levels that are not wins.
    """
    checks = [v for v in verdict_rows if v["what"] == "best learned 5x5/7x7 vs Sobel" and v["noise"] >= 0.2]
    if not checks:
        return None, "not measured (no noise level >= 0.2, or no learned 5x5/7x7 or Sobel in this run)"
    seeds = min(v["n"] for v in checks)
    if seeds < MIN_SEEDS:
        return None, (f"not decided: {seeds} seed{'s' if seeds > 1 else ''}. "
                      + ("A single seed supports no significance claim; " if seeds == 1 else "")
                      + f"verdicts need at least {MIN_SEEDS} seeds")
    wins = [v for v in checks if v["verdict"] == "win"]
    levels = ", ".join(_noise_label(v["noise"]) for v in checks)
    if len(wins) == len(checks):
        return True, (f"met: at noise {levels} the best learned 5x5/7x7 kernel has a higher mean ODS "
                      f"than Sobel, by more than the spread across seeds")
    parts = []
    for v in checks:
        diff = _diff(v)
        if v["verdict"] == "win":
            parts.append(f"at noise {_noise_label(v['noise'])} it is higher ({diff}, a win)")
        else:
            side = "higher" if v["mean_diff"] > 0 else "not higher"
            parts.append(f"at noise {_noise_label(v['noise'])} its mean ODS is {side} ({diff}) but "
                         f"within the spread across seeds (a {v['verdict']})")
    text = "NOT met at every level: " + "; ".join(parts)
    if rows is not None:
        notes = [_headroom(rows, v["noise"]) for v in checks if v["verdict"] != "win"]
        notes = [n for n in notes if n]
        if notes:
            text += ". Why: " + "; ".join(notes)
    return False, text


def write_report(cfg: EdgesNoiseConfig, rows: list[dict], run_dir: Path, figures: dict,
                 seconds: float) -> Path:
    """Write ``report.md``: tables, verdicts, sigmas, orientation errors and figures."""
    from cnnconv.training import atomic_write_text

    summary = summarize(rows)
    noises = sorted(summary)
    verdict_rows = verdicts(rows, cfg.tie_tolerance)
    _, text = acceptance(verdict_rows, rows)
    best = _best_per_group(summary)
    parts = [
        "# Edges under noise",
        "",
        f"{cfg.n_train} training and {cfg.n_test} held-out test scenes of {cfg.image_size}x"
        f"{cfg.image_size} pixels per seed and noise level; seeds {list(cfg.seeds)}; "
        f"{cfg.steps} Adam steps per learned detector; {cfg.n_thresholds} thresholds; matching "
        f"tolerance {_tolerance_text(cfg)}. Compute time {seconds / 60:.1f} min. "
        + ("Every value is the mean ± sample standard deviation over seeds."
         if len(cfg.seeds) > 1 else "One seed: every value is a single measurement, with no "
         "spread, and a single seed supports no significance claim."),
        "",
        "## ODS against noise",
        "",
        headline_table(rows),
        "",
        "Rows named *best ...* take, at each noise level, the variant with the highest mean ODS "
        "on the test scenes (named in brackets).",
        "",
        "## Learned against hand-designed detectors",
        "",
        f"Rule: paired per-seed ODS differences, judged only with at least {MIN_SEEDS} seeds; a "
        f"win needs a mean difference above {cfg.tie_tolerance:g} and above two standard errors, a "
        f"loss the opposite; otherwise a tie.",
        "",
        *verdict_lines(verdict_rows),
        "",
        f"**Acceptance** (noise >= 0.2: best learned 5x5 or 7x7 above Sobel): {text}.",
        "",
    ]
    if "ods_vs_noise" in figures:
        parts += [f"![ODS against noise]({figures['ods_vs_noise']})", ""]

    sig_rows = []
    for n in noises:
        at = summary[n]
        dog = best[n].get("best DoG of the grid")
        para = best[n].get("learnable sigma DoG")
        cells = [_noise_label(n), f"{at[dog]['sigma']:g}" if dog else "-",
                 _fmt(*at[para]["learned_sigma"], 2) if para else "-"]
        for label in ("best learned 3x3", "best learned 5x5", "best learned 7x7"):
            name = best[n].get(label)
            cells.append(f"{_fmt(*at[name]['fitted_sigma'], 2)} ({name.replace('learned-', '')})"
                         if name else "-")
        sig_rows.append(cells)
    parts += [
        "## Scale: fitted and learned sigma",
        "",
        "Sigma of the best derivative of Gaussian of the grid, the learned sigma of the parametric "
        "layer, and the sigma of the derivative of Gaussian that best fits each best learned "
        "kernel's x-component (`cnnconv.analysis.match_kernel`, least squares over sigma).",
        "",
        _table(["noise", "best DoG sigma (grid)", "learnable sigma", "fitted sigma, best 3x3",
                "fitted sigma, best 5x5", "fitted sigma, best 7x7"], sig_rows),
        "",
    ]
    if "kernels" in figures:
        parts += [f"![Learned kernels beside hand-designed ones]({figures['kernels']})", ""]

    names = list(dict.fromkeys(d for n in noises for d in summary[n]))
    ori_rows = []
    for d in names:
        cells = [d] + [_fmt(*summary[n][d]["orientation_error"], 1) if d in summary[n] else "-"
                       for n in noises]
        ori_rows.append(cells)
    parts += [
        "## Orientation error",
        "",
        "Mean absolute error (degrees, modulo 180) of `atan2(gy, gx)` on the true boundary "
        "pixels. Learned pairs are aligned first (one rotation and reflection fitted on the clean "
        "training scenes against Sobel's direction), since the magnitude loss leaves their "
        "orientation free. Canny gives no direction.",
        "",
        _table(["detector"] + [f"noise {_noise_label(n)}" for n in noises], ori_rows),
        "",
    ]
    if "pr" in figures:
        parts += [f"![P-R curves]({figures['pr']})", ""]

    parts += ["## Full results", ""]
    for n in noises:
        body = []
        for d, e in sorted(summary[n].items(), key=lambda kv: -kv[1]["ods"][0]):
            body.append([d, _fmt(*e["ods"]), _fmt(*e["ois"]), _fmt(*e["ap"]), _fmt(*e["r50"])])
        parts += [f"### Noise {_noise_label(n)}", "",
                  _table(["detector", "ODS", "OIS", "AP", "R50"], body), ""]
    parts += [
        "## Protocol",
        "",
        "- Scenes: `cnnconv.evaluation.data` synthetic piecewise-constant scenes with exact boundaries and "
        "orientations; training and test scenes come from disjoint seeds; the same clean scenes are "
        "used at every noise level.",
        "- Learned detectors: class-balanced BCE (HED) on `sigmoid(a * |grad| + b)`, `a` and `b` "
        "learned; Adam with a cosine schedule; the x/y pair is then aligned to Sobel's direction "
        "(rotation/reflection) on the clean training scenes.",
        "- Every linear detector: `|grad|`, the same non-maximum suppression along `atan2(gy, gx)`, "
        "division by its largest value over the test set, the same threshold sweep "
        "(`>= t`, thinning, one-to-one matching) in `cnnconv.evaluation.metrics.evaluate_boundaries`.",
        "- Canny (scikit-image, mirror border) is swept over its high threshold on the same grid, "
        f"low = {cfg.canny_low_ratio:g} x high, as fractions of the largest smoothed Sobel "
        "magnitude over the test set; it thins with its own non-maximum suppression and "
        "hysteresis, so ours is not applied again.",
        "- 'Best' variants are picked on the test scenes, which favours the groups with more "
        "variants (the DoG grid, the learned variants) equally.",
        "",
        "Files: `results.csv` (one row per seed, noise level and detector), `results.json`, "
        "`metrics.csv` (training losses), `checkpoints/` (one per learned detector).",
    ]
    return atomic_write_text(run_dir / "report.md", "\n".join(parts) + "\n")


# --------------------------------------------------------------------------- the experiment

_CSV_FIELDS = ("seed", "noise", "detector", "family", "kernel_size", "init", "zero_sum", "sigma",
               "ods", "ois", "ap", "r50", "orientation_error", "fitted_sigma", "learned_sigma",
               "train_loss", "train_seconds")


def _write_csv(rows: list[dict], path: Path) -> Path:
    import csv
    import io

    from cnnconv.training import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in _CSV_FIELDS})
    return atomic_write_text(path, buf.getvalue())


def run_experiment(cfg: EdgesNoiseConfig, run: Run) -> dict:
    """Train and evaluate every detector at every seed and noise level; write the report.

    Each (seed, noise level) unit saves ``units/s<seed>_n<index>.json`` when it is done, and each
    learned detector its checkpoint, so ``--resume`` skips finished units and finished training.

    Returns:
        ``{"report": path, "rows": [...], "verdicts": [...]}``.
    """
    threads = torch.get_num_threads()
    if cfg.num_threads and run.device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    try:
        return _run_all(cfg, run)
    finally:
        torch.set_num_threads(threads)


def _read_unit(path: Path) -> dict | None:
    """A finished unit's saved results, or ``None`` if there are none (or they are unreadable,
    e.g. edited or damaged: the unit is then redone from its detectors' checkpoints)."""
    if not path.is_file():
        return None
    try:
        unit = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring unreadable unit results {path} ({exc}); redoing that unit")
        return None
    if not isinstance(unit, dict) or not {"rows", "kernels", "curves"} <= unit.keys():
        warnings.warn(f"ignoring unit results {path} without rows/kernels/curves; redoing it")
        return None
    return unit


def _run_all(cfg: EdgesNoiseConfig, run: Run) -> dict:
    from cnnconv.training import atomic_write_text

    units_dir = run.dir / "units"
    units_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    kernels_by_unit: dict = {}
    curves_by_unit: dict = {}
    unit_seconds = 0.0  # summed over units, including those of an interrupted earlier session
    jobs = [(s, i) for s in cfg.seeds for i in range(len(cfg.noise_levels))]
    for seed, i in run.progress(jobs, total=len(jobs), desc="seeds x noise levels"):
        path = units_dir / f"s{seed}_n{i}.json"
        unit = _read_unit(path) if run.resume else None
        if unit is None:
            t_unit = time.perf_counter()
            unit = run_unit(cfg, run, seed, i)
            unit["seconds"] = time.perf_counter() - t_unit
            atomic_write_text(path, json.dumps(unit))
        unit_seconds += float(unit.get("seconds", 0.0))
        noise = float(cfg.noise_levels[i])
        rows.extend(unit["rows"])
        kernels_by_unit[(seed, noise)] = unit["kernels"]
        curves_by_unit[(seed, noise)] = unit["curves"]
        if not run.quiet:
            print(f"seed {seed} noise {noise:g}: {len(unit['rows'])} detectors "
                  f"({unit_seconds / 60:.1f} min)", flush=True)

    t_report = time.perf_counter()
    _write_csv(rows, run.dir / "results.csv")
    summary = summarize(rows)
    figures: dict = {}
    # Figures are derived from the unit results; a resumed run redraws them.
    figures["ods_vs_noise"] = plot_ods_vs_noise(summary, run.dir / "ods_vs_noise.png").name
    if any(kernels_by_unit.values()):
        figures["kernels"] = plot_kernel_panel(summary, kernels_by_unit, cfg.seeds[0],
                                               run.dir / "kernels.png").name
    pr = plot_pr_curves(summary, curves_by_unit, cfg.seeds[0], max(summary), run.dir / "pr_curves.png")
    if pr is not None:
        figures["pr"] = pr.name
    verdict_rows = verdicts(rows, cfg.tie_tolerance)
    seconds = unit_seconds + (time.perf_counter() - t_report)
    atomic_write_text(run.dir / "results.json", json.dumps(
        {"rows": rows, "verdicts": verdict_rows, "acceptance": acceptance(verdict_rows, rows)[1],
         "seconds": seconds}, indent=1))
    report = write_report(cfg, rows, run.dir, figures, seconds)
    return {"report": report, "rows": rows, "verdicts": verdict_rows}


def main(argv=None, *, name: str = "edges_noise", config_cls=EdgesNoiseConfig,
         description: str | None = None) -> Path:
    """Command line: ``python -m experiments.edges_noise --config configs/edges_noise.yaml``;
    ``description`` is the ``--help`` text (default: this module's docstring)."""
    return experiment_main(name, config_cls, run_experiment, argv, finished_marker=None,
                           description=description)


if __name__ == "__main__":
    main()
