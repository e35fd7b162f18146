"""Data for the edge-learning experiments; nothing is downloaded at run time.

Three sources:

* :func:`make_scene` / :func:`make_dead_leaves` / :class:`SyntheticScenes`: scenes of random
  polygons and ellipses, or dead leaves (many occluding discs and polygons), optionally textured,
  with their exact label map, one-pixel-wide boundary and boundary normal direction,
  reproducible by seed.
* :func:`bundled_photographs` / :class:`PhotoCrops`: real photographs shipped inside the
  scikit-image wheel, with random crops and flips / 90-degree rotations.
* :class:`ImageFolderDataset`: any folder of the user's own images.

Conventions (shared with :mod:`cnnconv.evaluation.metrics` and the Sobel kernels of :mod:`cnnconv.kernels`):

* Images are float32 tensors ``(C, H, W)``; pixel ``(r, c)`` has its centre at ``x = c``,
  ``y = r`` (x to the right along columns, y downwards along rows).
* **Boundary**: the label changes, thinned. Pixel ``(r, c)`` is a *label-change pixel* when its
  right neighbour ``(r, c+1)`` or its lower neighbour ``(r+1, c)`` has a different label (the
  upper/left pixel of every 4-adjacent pair with different labels, within 0.5 pixel of the
  continuous edge, which runs between pixel centres). Along slanted edges these form 4-connected
  staircases, two pixels thick in the 8-connected sense; the boundary is their thinning by
  :func:`cnnconv.evaluation.metrics.thin_boundaries`, the thinning the metric applies to predictions, so it
  is a subset of the label-change pixels that the metric leaves unchanged and the ground truth
  scored as its own prediction gets F = 1.
* **Orientation**: the boundary normal direction in radians in ``(-pi, pi]``, in the convention of
  ``atan2(gy, gx)`` for the correlation Sobel gradient (``gx`` positive where intensity grows to
  the right, ``gy`` positive where it grows downwards): it points from the darker to the brighter
  side (brightness = mean over channels of the region values, untextured, noise-free). It is
  computed analytically from the shape that owns the edge: for a boundary pixel ``p`` and the
  neighbour ``q`` that differs (right first, else lower), the edge between them belongs to the
  upper shape of the two labels (later shapes are drawn over earlier ones); its outward normal is
  taken at the midpoint of ``p`` and ``q`` (polygon: the normal of the nearest side; ellipse: the
  gradient of the ellipse's implicit function). Where the two sides have equal brightness (colour
  scenes only) the outward normal is stored. Off the boundary the orientation is 0.
* **Contrast and noise**: region values are drawn uniformly in ``[0.1, 0.9]`` per channel,
  redrawn so that 4-adjacent regions differ by at least ``contrast`` when possible, where the
  difference of two regions is the RMS over channels of the difference of their values (the
  absolute difference for grayscale). The scene's **edge contrast** ``c`` is the *smallest*
  difference over all pairs of adjacent regions actually present (returned as ``contrast``; it is
  ``>= contrast`` except in rare crowded scenes). The noise is i.i.d. Gaussian with standard
  deviation ``noise_std = noise * c`` (``noise_mode="relative"``, the default): ``noise=0.2`` means
  the noise std is 20% of the weakest edge's step, so its absolute level varies between scenes.
  With ``noise_mode="absolute"`` it is ``noise_std = noise * contrast`` (the nominal contrast
  argument), the same in every scene; as ``c >= contrast`` except in rare crowded scenes, the
  noise is then at most ``noise`` times any edge step. Noise is added after anti-aliasing / blur
  and the image is not clipped.
* **Reproducibility**: the seed is split into independent streams for geometry, region values,
  texture and noise, so for one seed the geometry is the same for grayscale and colour, and the
  noise field is the same standard-normal draw scaled by ``noise_std`` at every noise level.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnconv.evaluation.metrics import thin_boundaries

__all__ = [
    "make_scene",
    "make_dead_leaves",
    "SyntheticScenes",
    "PHOTOGRAPHS",
    "bundled_photographs",
    "PhotoCrops",
    "ImageFolderDataset",
    "IMAGE_EXTENSIONS",
]

_EXTRA = "pip install 'cnnconv[experiments]'"
_VALUE_RANGE = (0.1, 0.9)

SeedLike = int | Sequence[int] | None


# ---------------------------------------------------------------------------------------------
# Synthetic scenes
# ---------------------------------------------------------------------------------------------


def _check_size(size: Any, name: str = "size") -> tuple[int, int]:
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"{name} must be at least 8 pixels per side, got {(h, w)}")
    return h, w


def _check_nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be non-negative and finite, got {value}")
    return value


def _streams(rng: np.random.Generator | None, seed: SeedLike) -> list[np.random.Generator]:
    """Four independent generators: geometry, values, texture, noise."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        ss = np.random.SeedSequence(rng.integers(0, 2**63, size=4).tolist())
    else:
        if seed is not None and not isinstance(seed, (int, np.integer, list, tuple)):
            raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
        ss = np.random.SeedSequence(seed if not isinstance(seed, tuple) else list(seed))
    return [np.random.default_rng(s) for s in ss.spawn(4)]


def _shape_frame(rng: np.random.Generator, h: int, w: int, radius: float | None):
    """Size and centre of a shape: the scene default, or ``radius`` with the centre anywhere."""
    if radius is None:
        r, lo, hi = rng.uniform(0.08, 0.3) * min(h, w), 0.1, 0.9
    else:
        r, lo, hi = radius, 0.0, 1.0
    return r, rng.uniform(lo, hi) * (w - 1), rng.uniform(lo, hi) * (h - 1)


class _Ellipse:
    """A random ellipse (``disc=True``: a disc of radius ``radius``)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, radius: float | None = None, disc: bool = False):
        r, self.cx, self.cy = _shape_frame(rng, h, w, radius)
        if disc:
            self.a = self.b = r
            self.theta = 0.0
        else:
            self.a = rng.uniform(0.4, 1.0) * r
            self.b = rng.uniform(0.4, 1.0) * r
            self.theta = rng.uniform(0, np.pi)

    def _local(self, x, y):
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = x - self.cx, y - self.cy
        return dx * c + dy * s, -dx * s + dy * c

    def bbox(self) -> tuple[float, float, float, float]:
        c, s = math.cos(self.theta), math.sin(self.theta)
        hx = math.hypot(self.a * c, self.b * s)
        hy = math.hypot(self.a * s, self.b * c)
        return self.cx - hx, self.cx + hx, self.cy - hy, self.cy + hy

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = self._local(x, y)
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0

    def normal(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Outward normal direction (the gradient of the implicit function)."""
        u, v = self._local(x, y)
        gu, gv = u / self.a**2, v / self.b**2
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.arctan2(gu * s + gv * c, gu * c - gv * s)


class _Polygon:
    """A random polygon, star-shaped around its centre (so edges face away from the centre)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, radius: float | None = None):
        r, self.cx, self.cy = _shape_frame(rng, h, w, radius)
        m = int(rng.integers(3, 9))
        # angles with a minimum gap so that no side degenerates
        gaps = rng.uniform(0.5, 1.0, size=m)
        ang = rng.uniform(0, 2 * np.pi) + np.cumsum(gaps / gaps.sum() * 2 * np.pi)
        rad = rng.uniform(0.5, 1.0, size=m) * r
        self.vx = self.cx + rad * np.cos(ang)
        self.vy = self.cy + rad * np.sin(ang)

    def bbox(self) -> tuple[float, float, float, float]:
        return self.vx.min(), self.vx.max(), self.vy.min(), self.vy.max()

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # even-odd crossing test against every side
        res = np.zeros(np.broadcast(x, y).shape, dtype=bool)
        x0, y0 = self.vx, self.vy
        x1, y1 = np.roll(self.vx, -1), np.roll(self.vy, -1)
        for k in range(x0.size):
            cond = (y0[k] > y) != (y1[k] > y)
            xc = x0[k] + (y - y0[k]) * (x1[k] - x0[k]) / (y1[k] - y0[k] + (y1[k] == y0[k]))
            res ^= cond & (x < xc)
        return res

    def normal(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Outward normal direction of the nearest side."""
        x0, y0 = self.vx[None, :], self.vy[None, :]
        ex = np.roll(self.vx, -1)[None, :] - x0
        ey = np.roll(self.vy, -1)[None, :] - y0
        px, py = x[:, None] - x0, y[:, None] - y0
        t = np.clip((px * ex + py * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        d2 = (px - t * ex) ** 2 + (py - t * ey) ** 2
        k = np.argmin(d2, axis=1)
        nx, ny = ey[0, k], -ex[0, k]
        mx = x0[0, k] + 0.5 * ex[0, k] - self.cx
        my = y0[0, k] + 0.5 * ey[0, k] - self.cy
        flip = nx * mx + ny * my < 0
        nx, ny = np.where(flip, -nx, nx), np.where(flip, -ny, ny)
        return np.arctan2(ny, nx)


def _render_labels(shapes, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Label of the topmost shape at each grid point ``(ys[i], xs[j])`` (0 = background).

    ``xs`` and ``ys`` are increasing 1-D coordinates; each shape is evaluated only inside its
    bounding box.
    """
    labels = np.zeros((ys.size, xs.size), dtype=np.int64)
    for k, shape in enumerate(shapes, start=1):
        x0, x1, y0, y1 = shape.bbox()
        i0, i1 = np.searchsorted(ys, y0), np.searchsorted(ys, y1, side="right")
        j0, j1 = np.searchsorted(xs, x0), np.searchsorted(xs, x1, side="right")
        if i0 >= i1 or j0 >= j1:
            continue
        inside = shape.inside(xs[None, j0:j1], ys[i0:i1, None])
        labels[i0:i1, j0:j1][inside] = k
    return labels


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    d = a != b
    pairs = np.stack([np.minimum(a[d], b[d]), np.maximum(a[d], b[d])], axis=1)
    return np.unique(pairs, axis=0) if pairs.size else pairs.reshape(0, 2)


def _region_values(rng, n_labels: int, channels: int, pairs: np.ndarray, contrast: float):
    """Region values with adjacent regions at least ``contrast`` apart (RMS over channels).

    Greedy in label order, each value drawn among random candidates that keep the contrast to
    the regions already set; up to 20 attempts, then the attempt with the largest smallest
    adjacent difference is kept.
    """
    lo, hi = _VALUE_RANGE
    nbrs: list[list[int]] = [[] for _ in range(n_labels)]
    for i, j in pairs:
        nbrs[max(i, j)].append(int(min(i, j)))
    best, best_worst = None, -1.0
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
        if worst_all > best_worst:
            best, best_worst = values, worst_all
    return best


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``(C, H, W)`` with mirror (reflect-101) borders."""
    radius = max(1, int(round(4.0 * sigma)))
    t = np.arange(-radius, radius + 1)
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    g /= g.sum()
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        p = np.pad(img, pad, mode="reflect")
        out = np.zeros_like(img)
        n = img.shape[axis]
        for i, wgt in enumerate(g):
            out += wgt * np.take(p, np.arange(i, i + n), axis=axis)
        img = out
    return img


# number of gratings summed in a "noise" texture
_NOISE_WAVES = 8


def _check_n_shapes(n_shapes: Any) -> tuple[int, int]:
    if isinstance(n_shapes, bool):
        raise TypeError(f"n_shapes must be an int or a (low, high) pair, got {n_shapes!r}")
    if isinstance(n_shapes, (int, np.integer)):
        n_lo = n_hi = int(n_shapes)
    elif isinstance(n_shapes, (tuple, list)) and len(n_shapes) == 2:
        n_lo, n_hi = int(n_shapes[0]), int(n_shapes[1])
    else:
        raise TypeError(f"n_shapes must be an int or a (low, high) pair, got {n_shapes!r}")
    if n_lo < 1 or n_hi < n_lo:
        raise ValueError(f"n_shapes must be >= 1 with low <= high, got {n_shapes!r}")
    return n_lo, n_hi


def _render_options(colour, texture, texture_kind, antialias, blur, noise, contrast, noise_mode) -> dict[str, Any]:
    """Validated rendering arguments shared by :func:`make_scene` and :func:`make_dead_leaves`."""
    if not isinstance(colour, bool):
        raise TypeError(f"colour must be a bool, got {type(colour).__name__}")
    tex_amp = 0.5 if texture is True else (0.0 if texture is False else _check_nonneg(texture, "texture"))
    if isinstance(antialias, bool):
        ss = 4 if antialias else 1
    elif isinstance(antialias, (int, np.integer)) and antialias >= 1:
        ss = int(antialias)
    else:
        raise ValueError(f"antialias must be a bool or a supersampling factor >= 1, got {antialias!r}")
    if blur is not None:
        blur = _check_nonneg(blur, "blur")
        if blur == 0:
            blur = None
    noise = _check_nonneg(noise, "noise")
    contrast = _check_nonneg(contrast, "contrast")
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


def _compose(objs, h: int, w: int, opts: dict[str, Any], v_rng, t_rng, n_rng) -> dict[str, Any]:
    """Renders shapes (later over earlier) into the scene dict of :func:`make_scene`."""
    n = len(objs)
    ss, channels, contrast, tex_amp = opts["ss"], opts["channels"], opts["contrast"], opts["tex_amp"]
    # labels at pixel centres (integer coordinates)
    labels = _render_labels(objs, np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    # supersampled labels for the image: ss x ss samples inside each pixel
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    ys = (np.arange(h)[:, None] + sub[None, :]).reshape(-1)
    xs = (np.arange(w)[:, None] + sub[None, :]).reshape(-1)
    labels_hi = _render_labels(objs, xs, ys) if ss > 1 else labels

    pairs = _adjacent_pairs(labels)
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
        img = _gaussian_blur(img, opts["blur"])

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


def make_scene(
    size: int | tuple[int, int] = 128,
    *,
    rng: np.random.Generator | None = None,
    seed: SeedLike = None,
    n_shapes: int | tuple[int, int] = (3, 8),
    colour: bool = False,
    texture: bool | float = False,
    texture_kind: str = "grating",
    antialias: bool | int = True,
    blur: float | None = None,
    noise: float = 0.0,
    contrast: float = 0.2,
    shapes: Sequence[str] = ("polygon", "ellipse"),
    noise_mode: str = "relative",
) -> dict[str, Any]:
    """Generates one piecewise-constant scene with its exact boundary and orientation.

    Random polygons (star-shaped, 3 to 8 sides) and ellipses are drawn over a background, later
    shapes over earlier ones; each region gets a constant value (see the module docstring for the
    contrast, noise, boundary and orientation conventions).

    Args:
        size: ``H`` (square) or ``(H, W)``, at least 8.
        rng: a ``numpy.random.Generator`` to draw from (give ``rng`` or ``seed``, not both).
        seed: an int or a sequence of ints (e.g. ``(seed, index)``); the same seed always gives
            the same scene. Neither: a fresh random scene.
        n_shapes: the number of shapes, or a ``(low, high)`` inclusive range to draw it from.
        colour: three channels instead of one.
        texture: ``False``, ``True`` (0.5) or a level: each region gets its own random
            sinusoidal grating (orientation, period 3 to 12 pixels, phase) whose peak-to-peak
            amplitude is ``texture * contrast`` (the nominal contrast argument): ``texture=0.5``
            varies a region by half the nominal edge step.
        texture_kind: ``"grating"`` (one sinusoid per region) or ``"noise"`` (per region a sum
            of 8 sinusoids whose orientations and periods scatter around the region's, with
            random phases: an oriented noise-like texture with the RMS of one grating).
        antialias: ``True`` (4x4 supersampling), an integer supersampling factor, or ``False``
            (one sample per pixel, hard edges).
        blur: optional Gaussian blur sigma in pixels, applied after rendering (defocus).
        noise: noise std as a fraction of a contrast, see ``noise_mode``.
        contrast: the smallest wanted difference between adjacent regions (in ``(0, 0.8]``).
        shapes: which shape kinds to draw, a subset of ``("polygon", "ellipse")``.
        noise_mode: ``"relative"``: ``noise_std = noise * c``, a fraction of this scene's edge
            contrast ``c`` (the weakest edge); ``"absolute"``: ``noise_std = noise * contrast``,
            a fraction of the nominal contrast, the same in every scene.

    Returns:
        dict with ``image`` float32 ``(C, H, W)``, ``boundary`` bool ``(H, W)``,
        ``orientation`` float32 ``(H, W)`` (radians, valid where ``boundary``, 0 elsewhere),
        ``labels`` int64 ``(H, W)``, ``clean`` float32 ``(C, H, W)`` (the image before noise), and
        floats ``contrast`` (the edge contrast ``c``) and ``noise_std``.

    Example:
        >>> s = make_scene(64, seed=0, noise=0.1)
        >>> s["image"].shape, s["boundary"].dtype, s["orientation"].shape
        (torch.Size([1, 64, 64]), torch.bool, torch.Size([64, 64]))
        >>> abs(s["noise_std"] - 0.1 * s["contrast"]) < 1e-12
        True
    """
    h, w = _check_size(size)
    n_lo, n_hi = _check_n_shapes(n_shapes)
    opts = _render_options(colour, texture, texture_kind, antialias, blur, noise, contrast, noise_mode)
    kinds = tuple(shapes)
    if not kinds or any(k not in ("polygon", "ellipse") for k in kinds):
        raise ValueError(f"shapes must be a non-empty subset of ('polygon', 'ellipse'), got {shapes!r}")

    g_rng, v_rng, t_rng, n_rng = _streams(rng, seed)
    n = int(g_rng.integers(n_lo, n_hi + 1))
    objs = []
    for _ in range(n):
        kind = kinds[int(g_rng.integers(len(kinds)))]
        objs.append(_Polygon(g_rng, h, w) if kind == "polygon" else _Ellipse(g_rng, h, w))
    return _compose(objs, h, w, opts, v_rng, t_rng, n_rng)


def make_dead_leaves(
    size: int | tuple[int, int] = 128,
    *,
    rng: np.random.Generator | None = None,
    seed: SeedLike = None,
    n_shapes: int | tuple[int, int] = (100, 150),
    radius: tuple[float, float] = (0.04, 0.4),
    shapes: Sequence[str] = ("disc", "polygon"),
    colour: bool = False,
    texture: bool | float = False,
    texture_kind: str = "grating",
    antialias: bool | int = True,
    blur: float | None = None,
    noise: float = 0.0,
    contrast: float = 0.1,
    noise_mode: str = "relative",
) -> dict[str, Any]:
    """Generates a dead-leaves scene: many occluding discs and polygons, each a textured region.

    Leaves are dropped in painter's order (each over all earlier ones) with centres uniform over
    the image and radii ``r`` of density proportional to ``r**-3`` between ``radius[0]`` and
    ``radius[1]`` times the image's shorter side (the scale-invariant dead-leaves law: many small
    leaves, a few large ones), so most leaves are partly hidden and the visible regions have
    irregular outlines, T-junctions and all sizes. Where no leaf falls the background (label 0)
    shows (with the defaults typically 10-30% of a square image, less with more leaves). Every
    leaf gets its own value and, with ``texture``, its own texture; textures vary inside a region
    and are *not* boundaries: the boundary is the thinned label change of the visible leaf map, exactly as in :func:`make_scene` (whose conventions for contrast, noise,
    orientation and seeds apply unchanged).

    Args:
        size: ``H`` (square) or ``(H, W)``, at least 8.
        rng: a ``numpy.random.Generator`` (give ``rng`` or ``seed``, not both).
        seed: an int or a sequence of ints; the same seed always gives the same scene, and with
            an int ``n_shapes`` the first ``n`` leaves of a scene with more leaves are the same.
        n_shapes: the number of leaves, or a ``(low, high)`` inclusive range.
        radius: ``(min, max)`` leaf radius as fractions of the shorter side, ``0 < min <= max``.
        shapes: leaf kinds, a subset of ``("disc", "polygon")`` (polygons are star-shaped with 3
            to 8 sides and radius ``r``).
        colour: three channels instead of one.
        texture: ``False``, ``True`` (0.5) or a level, as in :func:`make_scene`.
        texture_kind: ``"grating"`` or ``"noise"``, as in :func:`make_scene`.
        antialias: ``True`` (4x4 supersampling), an integer factor, or ``False``.
        blur: optional Gaussian blur sigma in pixels.
        noise: noise std as a fraction of a contrast, see ``noise_mode``.
        contrast: the smallest wanted difference between adjacent leaves (in ``(0, 0.8]``); a
            leaf touches many others, so this is lower than :func:`make_scene`'s default.
        noise_mode: ``"relative"`` (of the scene's weakest edge) or ``"absolute"`` (of
            ``contrast``), as in :func:`make_scene`.

    Returns:
        The dict of :func:`make_scene`: ``image``, ``boundary``, ``orientation``, ``labels`` (the
        index of the visible leaf, 0 for the background), ``clean``, ``contrast``, ``noise_std``.

    Example:
        >>> s = make_dead_leaves(64, seed=0, texture=True)
        >>> s["image"].shape, int(s["labels"].unique().numel()) > 10
        (torch.Size([1, 64, 64]), True)
    """
    h, w = _check_size(size)
    n_lo, n_hi = _check_n_shapes(n_shapes)
    opts = _render_options(colour, texture, texture_kind, antialias, blur, noise, contrast, noise_mode)
    if (
        not isinstance(radius, (tuple, list))
        or len(radius) != 2
        or not all(isinstance(r, (int, float, np.floating, np.integer)) and not isinstance(r, bool) for r in radius)
    ):
        raise TypeError(f"radius must be a (min, max) pair of numbers, got {radius!r}")
    r_min, r_max = float(radius[0]), float(radius[1])
    if not (math.isfinite(r_max) and 0 < r_min <= r_max):
        raise ValueError(f"radius must satisfy 0 < min <= max, got {tuple(radius)}")
    kinds = tuple(shapes)
    if not kinds or any(k not in ("disc", "polygon") for k in kinds):
        raise ValueError(f"shapes must be a non-empty subset of ('disc', 'polygon'), got {shapes!r}")

    g_rng, v_rng, t_rng, n_rng = _streams(rng, seed)
    n = int(g_rng.integers(n_lo, n_hi + 1))
    side = min(h, w)
    objs = []
    for _ in range(n):
        kind = kinds[int(g_rng.integers(len(kinds)))]
        # inverse CDF of the density r**-3 on [r_min, r_max]
        u = g_rng.uniform()
        r = side * (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
        if kind == "polygon":
            objs.append(_Polygon(g_rng, h, w, radius=r))
        else:
            objs.append(_Ellipse(g_rng, h, w, radius=r, disc=True))
    return _compose(objs, h, w, opts, v_rng, t_rng, n_rng)


class SyntheticScenes(torch.utils.data.Dataset):
    """A reproducible dataset of :func:`make_scene` or :func:`make_dead_leaves` samples.

    Item ``i`` is ``make_scene(size, seed=(seed, i), **scene_kwargs)`` (or ``make_dead_leaves``):
    the same for a given ``(seed, i)`` in every process and epoch, so it works with any number of
    DataLoader workers.

    Args:
        length: number of items.
        size: image size ``H`` or ``(H, W)``.
        seed: dataset seed (use different seeds for training and test sets).
        kind: ``"shapes"`` (:func:`make_scene`) or ``"dead_leaves"`` (:func:`make_dead_leaves`).
        cache: keep generated items in memory (each DataLoader worker keeps its own copy);
            worth it when a small set is read for many epochs.
        **scene_kwargs: passed to the generator (``noise``, ``noise_mode``, ``colour``,
            ``texture``, ``texture_kind``, ``antialias``, ``blur``, ``contrast``, ``n_shapes``,
            ``shapes``; ``radius`` for dead leaves).

    Example:
        >>> ds = SyntheticScenes(10, size=32, seed=1, noise=0.2)
        >>> len(ds), ds[3]["image"].shape
        (10, torch.Size([1, 32, 32]))
        >>> bool(torch.equal(ds[3]["image"], SyntheticScenes(10, size=32, seed=1, noise=0.2)[3]["image"]))
        True
    """

    def __init__(
        self,
        length: int,
        size: int | tuple[int, int] = 128,
        *,
        seed: int = 0,
        kind: str = "shapes",
        cache: bool = False,
        **scene_kwargs,
    ):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        if length < 0:
            raise ValueError(f"length must be non-negative, got {length}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        for bad in ("rng", "seed"):
            if bad in scene_kwargs:
                raise TypeError(f"SyntheticScenes sets {bad} itself; got {bad}= in scene_kwargs")
        generators = {"shapes": make_scene, "dead_leaves": make_dead_leaves}
        if kind not in generators:
            raise ValueError(f"kind must be 'shapes' or 'dead_leaves', got {kind!r}")
        self.length = int(length)
        self.size = _check_size(size)
        self.seed = int(seed)
        self.kind = kind
        self._generate = generators[kind]
        self.scene_kwargs = dict(scene_kwargs)
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None
        # validate the keyword arguments once, before any DataLoader starts
        self._generate((8, 8), seed=0, **self.scene_kwargs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        index %= self.length
        if self._cache is not None and index in self._cache:
            return dict(self._cache[index])
        item = self._generate(self.size, seed=(self.seed, index), **self.scene_kwargs)
        if self._cache is not None:
            self._cache[index] = item
            return dict(item)
        return item

    def __repr__(self) -> str:
        kw = "".join(f", {k}={v!r}" for k, v in self.scene_kwargs.items())
        return (
            f"SyntheticScenes(length={self.length}, size={self.size}, seed={self.seed}, "
            f"kind={self.kind!r}{kw})"
        )


# ---------------------------------------------------------------------------------------------
# Photographs bundled with scikit-image
# ---------------------------------------------------------------------------------------------

#: Photographs shipped inside the scikit-image wheel that load without network access.
PHOTOGRAPHS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


@functools.lru_cache(maxsize=64)
def _load_photo(name: str, gray: bool) -> torch.Tensor:
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"bundled_photographs needs scikit-image: {_EXTRA}") from exc
    return _image_tensor(np.asarray(getattr(skimage.data, name)()), gray)


def _image_tensor(arr: np.ndarray, gray: bool) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` bool / integer / float image as float32 ``(C, H, W)``, integers
    scaled by their dtype's maximum; RGB(A) reduced to luma when ``gray``, gray replicated
    otherwise."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float64)
    if arr.ndim == 3:
        arr = arr[..., :3]
        if gray:
            # ITU-R 601 luma, the weights of skimage.color.rgb2gray's predecessor and of PIL "L"
            arr = arr @ np.array([0.299, 0.587, 0.114])
    if arr.ndim == 2:
        arr = arr[None] if gray else np.repeat(arr[None], 3, axis=0)
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def bundled_photographs(names: Sequence[str] | str | None = None, gray: bool = True) -> dict[str, torch.Tensor]:
    """Photographs bundled in the scikit-image wheel, as float tensors in ``[0, 1]``.

    Args:
        names: a name or names from :data:`PHOTOGRAPHS`; ``None`` for all of them.
        gray: one luminance channel (ITU-R 601 weights); otherwise three channels (grayscale
            photographs are replicated).

    Returns:
        ``{name: tensor (C, H, W) float32}`` in the order asked (the tensors are cached: clone
        before modifying them in place).

    Example:
        >>> photos = bundled_photographs(["camera", "coins"])
        >>> {k: tuple(v.shape) for k, v in photos.items()}
        {'camera': (1, 512, 512), 'coins': (1, 303, 384)}
    """
    if names is None:
        names = PHOTOGRAPHS
    elif isinstance(names, str):
        names = (names,)
    if not isinstance(gray, bool):
        raise TypeError(f"gray must be a bool, got {type(gray).__name__}")
    out = {}
    for name in names:
        if name not in PHOTOGRAPHS:
            raise ValueError(f"names must be among {PHOTOGRAPHS}, got {name!r}")
        out[name] = _load_photo(name, gray)
    if not out:
        raise ValueError("names must not be empty, got no names")
    return out


def _tv_functional():
    try:
        import torchvision.transforms.v2.functional as tvf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"cropping and augmentation need torchvision: {_EXTRA}") from exc
    return tvf


def _crop_augment(
    img: torch.Tensor, rng: np.random.Generator, crop: tuple[int, int] | None, augment: bool
) -> torch.Tensor:
    """A random crop and one of the 8 flips / 90-degree rotations, drawn from ``rng``."""
    tvf = _tv_functional()
    if crop is not None:
        ch, cw = crop
        h, w = img.shape[-2:]
        if ch > h or cw > w:
            raise ValueError(f"crop_size {crop} is larger than the image {(h, w)}")
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        img = tvf.crop(img, top, left, ch, cw)
    if augment:
        flip_h, flip_v, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
        if transpose and img.shape[-1] == img.shape[-2]:
            # transpose + flips give the 90-degree rotations (square crops only)
            img = img.transpose(-1, -2)
        if flip_h:
            img = tvf.horizontal_flip(img)
        if flip_v:
            img = tvf.vertical_flip(img)
    return img.contiguous()


class PhotoCrops(torch.utils.data.Dataset):
    """Random crops of the bundled photographs with flips and 90-degree rotations.

    Item ``i`` is reproducible: its photograph, crop position and augmentation are drawn from a
    generator seeded by ``(seed, i)``. Crops and flips go through
    ``torchvision.transforms.v2.functional`` (``crop``, ``horizontal_flip``, ``vertical_flip``);
    a 90-degree rotation is a transpose followed by a flip, so the 8 square symmetries are
    equally likely. An optional ``transform`` (any callable, e.g. a torchvision transform) is
    applied last; it draws from torch's global generator, so seed that yourself.

    Args:
        length: number of items.
        crop_size: ``S`` or ``(H, W)`` crop.
        names: photographs to use (default all of :data:`PHOTOGRAPHS` large enough for the crop).
        gray: one luminance channel, else three.
        seed: dataset seed.
        augment: random flips and 90-degree rotations.
        transform: optional callable applied to the ``(C, H, W)`` crop.

    Returns (per item):
        dict with ``image`` float32 ``(C, H, W)`` in ``[0, 1]`` and ``index`` (the photograph's
        position in ``self.names``).

    Example:
        >>> ds = PhotoCrops(4, crop_size=64, names=["camera", "coins"], seed=0)
        >>> ds[0]["image"].shape
        torch.Size([1, 64, 64])
    """

    def __init__(
        self,
        length: int,
        crop_size: int | tuple[int, int] = 128,
        *,
        names: Sequence[str] | None = None,
        gray: bool = True,
        seed: int = 0,
        augment: bool = True,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        if length < 0:
            raise ValueError(f"length must be non-negative, got {length}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.length = int(length)
        self.crop_size = _check_size(crop_size, "crop_size")
        self.gray = gray
        self.seed = int(seed)
        self.augment = bool(augment)
        self.transform = transform
        photos = bundled_photographs(names, gray=gray)
        ch, cw = self.crop_size
        self.names = [k for k, v in photos.items() if v.shape[-2] >= ch and v.shape[-1] >= cw]
        if not self.names:
            raise ValueError(f"crop_size {self.crop_size} is larger than every photograph asked for")
        self._photos = [photos[k] for k in self.names]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        index %= self.length
        rng = np.random.default_rng([self.seed, index])
        k = int(rng.integers(len(self._photos)))
        img = _crop_augment(self._photos[k], rng, self.crop_size, self.augment)
        if self.transform is not None:
            img = self.transform(img)
        return {"image": img, "index": k}

    def __repr__(self) -> str:
        return (
            f"PhotoCrops(length={self.length}, crop_size={self.crop_size}, names={self.names}, "
            f"gray={self.gray}, seed={self.seed}, augment={self.augment})"
        )


# ---------------------------------------------------------------------------------------------
# A folder of the user's own images
# ---------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _load_image_file(path: Path, gray: bool) -> torch.Tensor:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"ImageFolderDataset needs Pillow (a torchvision dependency): {_EXTRA}") from exc
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64) / (65535.0 if im.mode.startswith("I;16") else 2**31 - 1)
            arr = arr[None] if gray else np.repeat(arr[None], 3, axis=0)
        else:
            arr = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float64) / 255.0
            arr = arr[None] if gray else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images from a folder (PNG, JPEG, BMP, TIFF, WebP), as float tensors in ``[0, 1]``.

    Files are found by extension (case-insensitive), searched recursively if asked, and sorted
    by path, so the order is stable. With ``crop_size`` every item is a random crop (and, with
    ``augment``, flip / 90-degree rotation) drawn reproducibly from ``(seed, index)``; without
    it, items are whole images (which may differ in size).

    Args:
        root: the folder.
        gray: one luminance channel (PIL ``"L"``), else RGB.
        recursive: also search sub-folders.
        extensions: accepted file extensions.
        crop_size: optional ``S`` or ``(H, W)`` random crop.
        augment: random flips and 90-degree rotations (with ``crop_size`` or without).
        seed: seed of the crops and augmentation.
        transform: optional callable applied to the image last.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a folder.
        ValueError: ``root`` holds no image with one of ``extensions``.

    Returns (per item):
        dict with ``image`` float32 ``(C, H, W)`` and ``path`` (str).

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.mkdtemp()
        >>> Image.fromarray(np.zeros((20, 30), np.uint8)).save(f"{d}/a.png")
        >>> ImageFolderDataset(d)[0]["image"].shape
        torch.Size([1, 20, 30])
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        gray: bool = True,
        recursive: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        crop_size: int | tuple[int, int] | None = None,
        augment: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        path = Path(root)
        if not path.exists():
            raise FileNotFoundError(f"root folder does not exist: {str(path)!r}")
        if not path.is_dir():
            raise NotADirectoryError(f"root must be a folder, got the file {str(path)!r}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        pattern = "**/*" if recursive else "*"
        self.files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in exts)
        if not self.files:
            raise ValueError(
                f"root folder {str(path)!r} contains no images with extensions {exts}"
                + (" (searched recursively)" if recursive else "")
            )
        self.root = path
        self.gray = bool(gray)
        self.crop_size = None if crop_size is None else _check_size(crop_size, "crop_size")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.files)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of length {n}")
        index %= n
        img = _load_image_file(self.files[index], self.gray)
        if self.crop_size is not None or self.augment:
            rng = np.random.default_rng([self.seed, index])
            img = _crop_augment(img, rng, self.crop_size, self.augment)
        if self.transform is not None:
            img = self.transform(img)
        return {"image": img, "path": str(self.files[index])}

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={str(self.root)!r}, n={len(self.files)}, gray={self.gray}, "
            f"crop_size={self.crop_size}, augment={self.augment}, seed={self.seed})"
        )
