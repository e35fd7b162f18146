"""The shapes of synthetic scenes: ellipses, discs and star-shaped polygons, rendered to label maps.

Coordinates are pixel centres, ``x`` along columns and ``y`` along rows. Every shape answers
``bbox()``, ``inside(x, y)`` and ``normal(x, y)`` (the outward normal direction in radians,
``atan2`` convention), which :mod:`cnnconv.evaluation.render` uses for the labels and the exact
boundary orientation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Ellipse", "Polygon", "Shape", "adjacent_pairs", "render_labels"]


def _shape_frame(rng: np.random.Generator, h: int, w: int, radius: float | None) -> tuple[float, float, float]:
    """Size and centre of a shape: the scene default, or ``radius`` with the centre anywhere."""
    if radius is None:
        r, lo, hi = rng.uniform(0.08, 0.3) * min(h, w), 0.1, 0.9
    else:
        r, lo, hi = radius, 0.0, 1.0
    return r, rng.uniform(lo, hi) * (w - 1), rng.uniform(lo, hi) * (h - 1)


class Ellipse:
    """A random ellipse (``disc=True``: a disc of radius ``radius``)."""

    def __init__(
        self, rng: np.random.Generator, h: int, w: int, radius: float | None = None, disc: bool = False
    ) -> None:
        r, self.cx, self.cy = _shape_frame(rng, h, w, radius)
        if disc:
            self.a = self.b = r
            self.theta = 0.0
        else:
            self.a = rng.uniform(0.4, 1.0) * r
            self.b = rng.uniform(0.4, 1.0) * r
            self.theta = rng.uniform(0, np.pi)

    def _local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = x - self.cx, y - self.cy
        return dx * c + dy * s, -dx * s + dy * c

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of the shape."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        hx = math.hypot(self.a * c, self.b * s)
        hy = math.hypot(self.a * s, self.b * c)
        return self.cx - hx, self.cx + hx, self.cy - hy, self.cy + hy

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each point ``(x, y)`` (broadcast together) lies inside the shape."""
        u, v = self._local(x, y)
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0

    def normal(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Outward normal direction (the gradient of the implicit function)."""
        u, v = self._local(x, y)
        gu, gv = u / self.a**2, v / self.b**2
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.arctan2(gu * s + gv * c, gu * c - gv * s)


class Polygon:
    """A random polygon, star-shaped around its centre (so edges face away from the centre)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, radius: float | None = None) -> None:
        r, self.cx, self.cy = _shape_frame(rng, h, w, radius)
        m = int(rng.integers(3, 9))
        # angles with a minimum gap so that no side degenerates
        gaps = rng.uniform(0.5, 1.0, size=m)
        ang = rng.uniform(0, 2 * np.pi) + np.cumsum(gaps / gaps.sum() * 2 * np.pi)
        rad = rng.uniform(0.5, 1.0, size=m) * r
        self.vx = self.cx + rad * np.cos(ang)
        self.vy = self.cy + rad * np.sin(ang)

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of the shape."""
        return self.vx.min(), self.vx.max(), self.vy.min(), self.vy.max()

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each point ``(x, y)`` (broadcast together) lies inside the shape."""
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


#: Either kind of shape.
Shape = Ellipse | Polygon


def render_labels(shapes: Sequence[Shape], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
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


def adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Sorted unique ``(low, high)`` label pairs that meet across a 4-neighbour step, ``(P, 2)``."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    d = a != b
    pairs = np.stack([np.minimum(a[d], b[d]), np.maximum(a[d], b[d])], axis=1)
    return np.unique(pairs, axis=0) if pairs.size else pairs.reshape(0, 2)
