"""The data and the common evaluation of experiment 2: synthetic scenes with exact boundaries,
and the one protocol every linear detector goes through (non-maximum suppression, one scale,
threshold sweep, BSDS matching, orientation error)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["make_scenes", "thin", "boundary_scores", "orientation_errors", "thresholds_for",
           "evaluate_detector"]


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
