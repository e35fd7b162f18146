"""Data for the edge-learning experiments, gathered from the modules that provide it; nothing is
downloaded at run time.

Three sources:

* :func:`make_scene` / :func:`make_dead_leaves` / :class:`SyntheticScenes`
  (:mod:`cnnconv.evaluation.scenes`, where the conventions for boundaries, orientation, contrast,
  noise and seeds are described): scenes of random polygons and ellipses, or dead leaves (many
  occluding discs and polygons), optionally textured, with their exact label map,
  one-pixel-wide boundary and boundary normal direction, reproducible by seed.
* :func:`bundled_photographs` / :class:`PhotoCrops` (:mod:`cnnconv.evaluation.photos`): real
  photographs shipped inside the scikit-image wheel, with random crops and flips / 90-degree
  rotations.
* :class:`ImageFolderDataset` (:mod:`cnnconv.evaluation.photos`): any folder of the user's own
  images.

Example:
    >>> ds = SyntheticScenes(4, size=32, seed=0)
    >>> sorted(ds[0])
    ['boundary', 'clean', 'contrast', 'image', 'labels', 'noise_std', 'orientation']
"""

from __future__ import annotations

from cnnconv.evaluation.photos import (
    IMAGE_EXTENSIONS,
    PHOTOGRAPHS,
    ImageFolderDataset,
    PhotoCrops,
    bundled_photographs,
)
from cnnconv.evaluation.scenes import (
    SceneOptions,
    SyntheticScenes,
    make_dead_leaves,
    make_scene,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "PHOTOGRAPHS",
    "ImageFolderDataset",
    "PhotoCrops",
    "SceneOptions",
    "SyntheticScenes",
    "bundled_photographs",
    "make_dead_leaves",
    "make_scene",
]
