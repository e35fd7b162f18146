"""Synthetic scenes with exact boundaries: random polygons and ellipses, or dead leaves.

:func:`make_scene` draws scenes of random polygons and ellipses, :func:`make_dead_leaves` many
occluding discs and polygons, optionally textured, each with its exact label map, one-pixel-wide
boundary and boundary normal direction, reproducible by seed; :class:`SyntheticScenes` is a
dataset of either.

Conventions (shared with :mod:`cnnconv.evaluation.metrics` and the Sobel kernels of
:mod:`cnnconv.kernels`):

* Images are float32 tensors ``(C, H, W)``; pixel ``(r, c)`` has its centre at ``x = c``,
  ``y = r`` (x to the right along columns, y downwards along rows).
* **Boundary**: the label changes, thinned. Pixel ``(r, c)`` is a *label-change pixel* when its
  right neighbour ``(r, c+1)`` or its lower neighbour ``(r+1, c)`` has a different label (the
  upper/left pixel of every 4-adjacent pair with different labels, within 0.5 pixel of the
  continuous edge, which runs between pixel centres). Along slanted edges these form 4-connected
  staircases, two pixels thick in the 8-connected sense; the boundary is their thinning by
  :func:`cnnconv.evaluation.thinning.thin_boundaries`, the thinning the metric applies to
  predictions, so it is a subset of the label-change pixels that the metric leaves unchanged
  and the ground truth scored as its own prediction gets F = 1.
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import numpy as np
import torch

from cnnconv._utils.checks import check_positive_int
from cnnconv.evaluation._inputs import check_index, check_size
from cnnconv.evaluation.render import compose, render_options
from cnnconv.evaluation.shapes import Ellipse, Polygon, Shape

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SceneOptions", "SyntheticScenes", "make_dead_leaves", "make_scene"]

SeedLike = int | Sequence[int] | None


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


class SceneOptions(TypedDict, total=False):
    """Keyword arguments shared by :func:`make_scene` and :func:`make_dead_leaves`.

    Each is described in :func:`make_scene`; the defaults are ``rng=None``, ``seed=None``,
    ``colour=False``, ``texture=False``, ``texture_kind="grating"``, ``antialias=True``,
    ``blur=None``, ``noise=0.0`` and ``noise_mode="relative"``.
    """

    rng: np.random.Generator | None
    seed: SeedLike
    colour: bool
    texture: bool | float
    texture_kind: str
    antialias: bool | int
    blur: float | None
    noise: float
    noise_mode: str


class _Frame(NamedTuple):
    """A scene about to be drawn: its size, its number of shapes, the generator of its
    geometry, and ``render(shapes)`` that finishes it."""

    h: int
    w: int
    n: int
    geometry: np.random.Generator
    render: Callable[[Sequence[Shape]], dict[str, Any]]


def _frame(
    size: Any,
    n_shapes: Any,
    contrast: float,
    *,
    rng: np.random.Generator | None = None,
    seed: SeedLike = None,
    colour: bool = False,
    texture: bool | float = False,
    texture_kind: str = "grating",
    antialias: bool | int = True,
    blur: float | None = None,
    noise: float = 0.0,
    noise_mode: str = "relative",
) -> _Frame:
    """Checks the arguments common to the generators (the defaults of :class:`SceneOptions`
    live here), splits the seed and draws the number of shapes."""
    h, w = check_size(size)
    n_lo, n_hi = _check_n_shapes(n_shapes)
    opts = render_options(colour, texture, texture_kind, antialias, blur, noise, contrast, noise_mode)
    g_rng, v_rng, t_rng, n_rng = _streams(rng, seed)
    n = int(g_rng.integers(n_lo, n_hi + 1))
    render = functools.partial(compose, h=h, w=w, opts=opts, v_rng=v_rng, t_rng=t_rng, n_rng=n_rng)
    return _Frame(h, w, n, g_rng, render)


def make_scene(
    size: int | tuple[int, int] = 128,
    *,
    n_shapes: int | tuple[int, int] = (3, 8),
    contrast: float = 0.2,
    shapes: Sequence[str] = ("polygon", "ellipse"),
    **options: Unpack[SceneOptions],
) -> dict[str, Any]:
    """Generates one piecewise-constant scene with its exact boundary and orientation.

    Random polygons (star-shaped, 3 to 8 sides) and ellipses are drawn over a background, later
    shapes over earlier ones; each region gets a constant value (see the module docstring for the
    contrast, noise, boundary and orientation conventions).

    Args:
        size: ``H`` (square) or ``(H, W)``, at least 8.
        n_shapes: the number of shapes, or a ``(low, high)`` inclusive range to draw it from.
        contrast: the smallest wanted difference between adjacent regions (in ``(0, 0.8]``).
        shapes: which shape kinds to draw, a subset of ``("polygon", "ellipse")``.
        **options: the :class:`SceneOptions`, ``rng`` to ``noise_mode`` below.
        rng: a ``numpy.random.Generator`` to draw from (give ``rng`` or ``seed``, not both).
        seed: an int or a sequence of ints (e.g. ``(seed, index)``); the same seed always gives
            the same scene. Neither: a fresh random scene.
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
        blur: optional Gaussian blur sigma in pixels, applied after rendering (defocus), by
            :func:`cnnconv.functional.gaussian_blur2d` with mirror borders.
        noise: noise std as a fraction of a contrast, see ``noise_mode``.
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
    kinds = tuple(shapes)
    if not kinds or any(k not in ("polygon", "ellipse") for k in kinds):
        raise ValueError(f"shapes must be a non-empty subset of ('polygon', 'ellipse'), got {shapes!r}")
    f = _frame(size, n_shapes, contrast, **options)
    objs: list[Shape] = []
    for _ in range(f.n):
        kind = kinds[int(f.geometry.integers(len(kinds)))]
        objs.append(Polygon(f.geometry, f.h, f.w) if kind == "polygon" else Ellipse(f.geometry, f.h, f.w))
    return f.render(objs)


def make_dead_leaves(
    size: int | tuple[int, int] = 128,
    *,
    n_shapes: int | tuple[int, int] = (100, 150),
    radius: tuple[float, float] = (0.04, 0.4),
    shapes: Sequence[str] = ("disc", "polygon"),
    contrast: float = 0.1,
    **options: Unpack[SceneOptions],
) -> dict[str, Any]:
    """Generates a dead-leaves scene: many occluding discs and polygons, each a textured region.

    Leaves are dropped in painter's order (each over all earlier ones) with centres uniform over
    the image and radii ``r`` of density proportional to ``r**-3`` between ``radius[0]`` and
    ``radius[1]`` times the image's shorter side (the scale-invariant dead-leaves law: many small
    leaves, a few large ones), so most leaves are partly hidden and the visible regions have
    irregular outlines, T-junctions and all sizes. Where no leaf falls the background (label 0)
    shows (with the defaults typically 10-30% of a square image, less with more leaves). Every
    leaf gets its own value and, with ``texture``, its own texture; textures vary inside a region
    and are *not* boundaries: the boundary is the thinned label change of the visible leaf
    map, exactly as in :func:`make_scene` (whose conventions for contrast, noise, orientation
    and seeds apply unchanged).

    Args:
        size: ``H`` (square) or ``(H, W)``, at least 8.
        n_shapes: the number of leaves, or a ``(low, high)`` inclusive range.
        radius: ``(min, max)`` leaf radius as fractions of the shorter side, ``0 < min <= max``.
        shapes: leaf kinds, a subset of ``("disc", "polygon")`` (polygons are star-shaped with 3
            to 8 sides and radius ``r``).
        contrast: the smallest wanted difference between adjacent leaves (in ``(0, 0.8]``); a
            leaf touches many others, so this is lower than :func:`make_scene`'s default.
        **options: the :class:`SceneOptions` (``rng``, ``seed``, ``colour``, ``texture``,
            ``texture_kind``, ``antialias``, ``blur``, ``noise``, ``noise_mode``), as in
            :func:`make_scene`; with an int ``n_shapes`` the first ``n`` leaves of a scene with
            more leaves drawn from the same seed are the same.

    Returns:
        The dict of :func:`make_scene`: ``image``, ``boundary``, ``orientation``, ``labels`` (the
        index of the visible leaf, 0 for the background), ``clean``, ``contrast``, ``noise_std``.

    Example:
        >>> s = make_dead_leaves(64, seed=0, texture=True)
        >>> s["image"].shape, int(s["labels"].unique().numel()) > 10
        (torch.Size([1, 64, 64]), True)
    """
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
    f = _frame(size, n_shapes, contrast, **options)
    g_rng = f.geometry
    side = min(f.h, f.w)
    objs: list[Shape] = []
    for _ in range(f.n):
        kind = kinds[int(g_rng.integers(len(kinds)))]
        # inverse CDF of the density r**-3 on [r_min, r_max]
        u = g_rng.uniform()
        r = side * (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
        if kind == "polygon":
            objs.append(Polygon(g_rng, f.h, f.w, radius=r))
        else:
            objs.append(Ellipse(g_rng, f.h, f.w, radius=r, disc=True))
    return f.render(objs)


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
        **scene_kwargs: Any,
    ) -> None:
        length = check_positive_int(length, "length", minimum=0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        for bad in ("rng", "seed"):
            if bad in scene_kwargs:
                raise TypeError(f"SyntheticScenes sets {bad} itself; got {bad}= in scene_kwargs")
        generators = {"shapes": make_scene, "dead_leaves": make_dead_leaves}
        if kind not in generators:
            raise ValueError(f"kind must be 'shapes' or 'dead_leaves', got {kind!r}")
        self.length = length
        self.size = check_size(size)
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
        index = check_index(index, self.length)
        if self._cache is not None and index in self._cache:
            return dict(self._cache[index])
        item = self._generate(self.size, seed=(self.seed, index), **self.scene_kwargs)
        if self._cache is not None:
            self._cache[index] = item
            return dict(item)
        return item

    def __repr__(self) -> str:
        kw = "".join(f", {k}={v!r}" for k, v in self.scene_kwargs.items())
        return f"SyntheticScenes(length={self.length}, size={self.size}, seed={self.seed}, kind={self.kind!r}{kw})"
