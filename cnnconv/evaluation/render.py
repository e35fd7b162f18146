"""Rendering of synthetic scenes: region values, textures, anti-aliasing, blur, noise, and the
exact boundary and orientation of the label map (the conventions are those of
:mod:`cnnconv.evaluation.scenes`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnconv.evaluation._inputs import check_nonneg
from cnnconv.evaluation.shapes import Shape, adjacent_pairs, render_labels
from cnnconv.evaluation.thinning import thin_boundaries
from cnnconv.functional import gaussian_blur2d

__all__ = ["compose", "render_options"]

# the range region values are drawn from, per channel
_VALUE_RANGE = (0.1, 0.9)


def _region_values(
    rng: np.random.Generator, n_labels: int, channels: int, pairs: np.ndarray, contrast: float
) -> np.ndarray:
    """Region values with adjacent regions at least ``contrast`` apart (RMS over channels).

    Greedy in label order, each value drawn among random candidates that keep the contrast to
    the regions already set; up to 20 attempts, then the attempt with the largest smallest
    adjacent difference is kept.
    """
    lo, hi = _VALUE_RANGE
    nbrs: list[list[int]] = [[] for _ in range(n_labels)]
    for i, j in pairs:
        nbrs[max(i, j)].append(int(min(i, j)))
    attempts: list[tuple[float, np.ndarray]] = []
    for _ in range(20):
        values = np.zeros((n_labels, channels))
        worst_all = np.inf
        for k in range(n_labels):
            cand = rng.uniform(lo, hi, size=(128, channels))
            done = nbrs[k]
            if done:
                diff = np.sqrt(((cand[:, None, :] - values[None, done, :]) ** 2).mean(axis=2))
                worst = diff.min(axis=1)
                ok = np.nonzero(worst >= contrast)[0]
                pick = int(ok[0]) if ok.size else int(np.argmax(worst))
                worst_all = min(worst_all, float(worst[pick]))
            else:
                pick = 0
            values[k] = cand[pick]
        if worst_all >= contrast:
            return values
        attempts.append((worst_all, values))
    return max(attempts, key=lambda a: a[0])[1]  # the first of the best


# number of gratings summed in a "noise" texture
_NOISE_WAVES = 8


def render_options(
    colour: Any,
    texture: Any,
    texture_kind: Any,
    antialias: Any,
    blur: Any,
    noise: Any,
    contrast: Any,
    noise_mode: Any,
) -> dict[str, Any]:
    """The checked rendering arguments of the scene generators, as the ``opts`` of :func:`compose`."""
    if not isinstance(colour, bool):
        raise TypeError(f"colour must be a bool, got {type(colour).__name__}")
    tex_amp = 0.5 if texture is True else (0.0 if texture is False else check_nonneg(texture, "texture"))
    if isinstance(antialias, bool):
        ss = 4 if antialias else 1
    elif isinstance(antialias, (int, np.integer)) and antialias >= 1:
        ss = int(antialias)
    else:
        raise ValueError(f"antialias must be a bool or a supersampling factor >= 1, got {antialias!r}")
    if blur is not None:
        blur = check_nonneg(blur, "blur")
        if blur == 0:
            blur = None
    noise = check_nonneg(noise, "noise")
    contrast = check_nonneg(contrast, "contrast")
    if not 0 < contrast <= _VALUE_RANGE[1] - _VALUE_RANGE[0]:
        raise ValueError(f"contrast must be in (0, 0.8], got {contrast}")
    if texture_kind not in ("grating", "noise"):
        raise ValueError(f"texture_kind must be 'grating' or 'noise', got {texture_kind!r}")
    if noise_mode not in ("relative", "absolute"):
        raise ValueError(f"noise_mode must be 'relative' or 'absolute', got {noise_mode!r}")
    return {
        "channels": 3 if colour else 1,
        "tex_amp": tex_amp,
        "texture_kind": texture_kind,
        "ss": ss,
        "blur": blur,
        "noise": noise,
        "contrast": contrast,
        "noise_mode": noise_mode,
    }


def compose(
    objs: Sequence[Shape],
    h: int,
    w: int,
    opts: dict[str, Any],
    v_rng: np.random.Generator,
    t_rng: np.random.Generator,
    n_rng: np.random.Generator,
) -> dict[str, Any]:
    """Renders shapes (later over earlier) into the scene dict of
    :func:`~cnnconv.evaluation.scenes.make_scene`.

    Region values come from ``v_rng``, textures from ``t_rng`` and the noise from ``n_rng``.
    """
    n = len(objs)
    ss, channels, contrast, tex_amp = opts["ss"], opts["channels"], opts["contrast"], opts["tex_amp"]
    # labels at pixel centres (integer coordinates)
    labels = render_labels(objs, np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    # supersampled labels for the image: ss x ss samples inside each pixel
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    ys = (np.arange(h)[:, None] + sub[None, :]).reshape(-1)
    xs = (np.arange(w)[:, None] + sub[None, :]).reshape(-1)
    labels_hi = render_labels(objs, xs, ys) if ss > 1 else labels

    pairs = adjacent_pairs(labels)
    values = _region_values(v_rng, n + 1, channels, pairs, contrast)
    pattern = None
    if tex_amp > 0:
        amp = tex_amp * contrast
        theta = t_rng.uniform(0, np.pi, size=n + 1)
        period = t_rng.uniform(3.0, 12.0, size=n + 1)
        phase = t_rng.uniform(0, 2 * np.pi, size=n + 1)
        if opts["texture_kind"] == "noise":
            # _NOISE_WAVES gratings per region, spread in orientation and period around the
            # region's, with the RMS of one grating
            k = _NOISE_WAVES
            theta = theta[:, None] + t_rng.normal(0.0, 0.35, size=(n + 1, k))
            period = period[:, None] * np.exp(t_rng.normal(0.0, 0.25, size=(n + 1, k)))
            phase = t_rng.uniform(0, 2 * np.pi, size=(n + 1, k))
            amp /= math.sqrt(k)
        else:
            theta, period, phase = theta[:, None], period[:, None], phase[:, None]
        kx = np.cos(theta) * 2 * np.pi / period
        ky = np.sin(theta) * 2 * np.pi / period
        # oriented gratings per region, looked up per sample from its label
        pattern = 0.0
        for j in range(kx.shape[1]):
            arg = np.take(kx[:, j], labels_hi) * xs[None, :] + np.take(ky[:, j], labels_hi) * ys[:, None]
            pattern = pattern + 0.5 * amp * np.sin(arg + np.take(phase[:, j], labels_hi))
    img = np.empty((channels, h, w))
    for c in range(channels):
        plane = np.take(values[:, c], labels_hi)
        if pattern is not None:
            plane = plane + pattern
        if ss > 1:  # box-average the ss x ss samples of each pixel
            plane = plane.reshape(h, ss, w * ss).sum(axis=1).reshape(h, w, ss).sum(axis=2) / (ss * ss)
        img[c] = plane
    if opts["blur"] is not None:
        # mirror (reflect-101) borders, a kernel of 2 * round(4 * sigma) + 1 taps, in float64
        img = gaussian_blur2d(torch.from_numpy(img), opts["blur"]).numpy()

    if pairs.shape[0]:
        diff = np.sqrt(((values[pairs[:, 0]] - values[pairs[:, 1]]) ** 2).mean(axis=1))
        edge_contrast = float(diff.min())
    else:  # a single region: no edge; use the nominal contrast for the noise scale
        edge_contrast = contrast
    noise_std = opts["noise"] * (edge_contrast if opts["noise_mode"] == "relative" else contrast)
    z = n_rng.standard_normal((channels, h, w))
    clean = img
    image = img + noise_std * z

    # boundary: upper/left pixel of every 4-adjacent pair with different labels, thinned
    right = np.zeros((h, w), dtype=bool)
    down = np.zeros((h, w), dtype=bool)
    right[:, :-1] = labels[:, :-1] != labels[:, 1:]
    down[:-1, :] = labels[:-1, :] != labels[1:, :]
    boundary = thin_boundaries(right | down)
    orientation = np.zeros((h, w))
    r_idx, c_idx = np.nonzero(boundary)
    if r_idx.size:
        use_right = right[r_idx, c_idx]
        qr = np.where(use_right, r_idx, r_idx + 1)
        qc = np.where(use_right, c_idx + 1, c_idx)
        lp, lq = labels[r_idx, c_idx], labels[qr, qc]
        owner = np.maximum(lp, lq)
        other = np.minimum(lp, lq)
        mx = (c_idx + qc) / 2.0
        my = (r_idx + qr) / 2.0
        ang = np.zeros(r_idx.size)
        for k in np.unique(owner):
            sel = owner == k
            ang[sel] = objs[k - 1].normal(mx[sel], my[sel])
        lum = values.mean(axis=1)
        brighter_inside = lum[owner] > lum[other]
        ang = np.where(brighter_inside, ang + np.pi, ang)
        ang = np.arctan2(np.sin(ang), np.cos(ang))
        orientation[r_idx, c_idx] = ang

    return {
        "image": torch.from_numpy(image.astype(np.float32)),
        "boundary": torch.from_numpy(boundary),
        "orientation": torch.from_numpy(orientation.astype(np.float32)),
        "labels": torch.from_numpy(labels),
        "clean": torch.from_numpy(clean.astype(np.float32)),
        "contrast": edge_contrast,
        "noise_std": noise_std,
    }
