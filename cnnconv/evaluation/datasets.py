"""Real images with boundary ground truth, for scoring detectors with :mod:`cnnconv.evaluation.metrics`.

Two sources, both torch Datasets whose items hold an ``image`` and a list of ``boundaries``
(one boolean map per annotator, one pixel wide), ready for
:func:`cnnconv.evaluation.metrics.evaluate_boundaries`, which takes several ground truths per image::

    items = [ds[i] for i in range(len(ds))]
    res = evaluate_boundaries([detector(it["image"]) for it in items],
                              [it["boundaries"] for it in items])

* :class:`MotorcycleOcclusions`: the Middlebury 2014 "Motorcycle" stereo pair shipped inside
  the scikit-image wheel (:func:`skimage.data.stereo_motorcycle`, read offline), with occlusion
  boundaries derived from jumps of its ground-truth disparity.
* :class:`BSDS500`: a copy of the Berkeley Segmentation Dataset 500 on the user's disk (nothing
  is downloaded), its human annotations read from the ``.mat`` files with :func:`scipy.io.loadmat`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnconv._utils.checks import check_positive_float
from cnnconv._utils.optional import require
from cnnconv.evaluation._inputs import check_index, to_numpy
from cnnconv.evaluation.photos import _image_tensor, _load_image_file
from cnnconv.evaluation.thinning import thin_boundaries

__all__ = ["BSDS500", "BSDS_SPLITS", "MotorcycleOcclusions", "occlusion_boundaries"]

#: The splits of BSDS500 (200 train, 100 val, 200 test images).
BSDS_SPLITS: tuple[str, ...] = ("train", "val", "test")


def _fill_background(d: np.ndarray) -> np.ndarray:
    """Unknown (non-finite) disparities replaced, along each row, by the smaller (farther) of the
    nearest known ones to the left and right; rows without any known value stay unknown."""
    h, w = d.shape
    known = np.isfinite(d)
    cols = np.arange(w)
    left = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    from_left = np.where(left >= 0, d[rows, np.clip(left, 0, w - 1)], np.inf)
    from_right = np.where(right < w, d[rows, np.clip(right, 0, w - 1)], np.inf)
    return np.where(known, d, np.minimum(from_left, from_right))


def occlusion_boundaries(disparity: Any, threshold: float = 2.0, *, fill: bool = True) -> torch.Tensor:
    """Depth-discontinuity boundaries of a disparity map: jumps larger than ``threshold``, thinned.

    Pixel ``(r, c)`` is marked when the disparity differs by more than ``threshold`` from its
    right neighbour ``(r, c+1)`` or its lower neighbour ``(r+1, c)`` (the upper/left pixel of
    every such pair, the convention of :mod:`cnnconv.evaluation.data`), and the marks are thinned with
    :func:`cnnconv.evaluation.thinning.thin_boundaries`. Pairs where either disparity is NaN or infinite (no
    ground truth) are never marked.

    In a stereo ground truth most unknown pixels are half-occlusions: background seen by one
    camera only, in a strip beside each foreground edge, exactly where the occlusion boundary
    runs; masked, they would cut the boundary away. With ``fill`` each unknown pixel first takes
    the background's disparity, the smaller of the nearest known disparities to its left and
    right on its row (the classic scanline occlusion filling), so the jump lands on the
    foreground's edge; only rows without any known disparity stay unknown.

    Args:
        disparity: ``(H, W)`` disparity in pixels (array or tensor); NaN/inf where unknown.
        threshold: the smallest disparity jump (pixels) between neighbours counted as an
            occlusion; smooth slanted surfaces change by much less per pixel.
        fill: fill unknown disparities with the background's before looking for jumps.

    Returns:
        Bool tensor ``(H, W)``.

    Example:
        >>> d = np.full((6, 8), 10.0); d[:, 4:] = 30.0; d[0, 0] = np.nan
        >>> occlusion_boundaries(d).nonzero()[:, 1].unique().tolist()   # the column before the jump
        [3]
        >>> d[2, 2:4] = np.inf          # unknown background beside the edge: filled from the left
        >>> occlusion_boundaries(d)[2].nonzero().flatten().tolist()
        [3]
    """
    d = to_numpy(disparity, "disparity")
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
        raise ValueError(f"disparity must be a numeric (H, W) map, got shape {d.shape} and dtype {d.dtype}")
    threshold = check_positive_float(threshold, "threshold")
    if not isinstance(fill, bool):
        raise TypeError(f"fill must be a bool, got {type(fill).__name__}")
    d = d.astype(np.float64)
    if fill:
        d = _fill_background(d)
    marks = np.zeros(d.shape, dtype=bool)
    with np.errstate(invalid="ignore"):  # inf - inf: such pairs are unknown and stay unmarked
        jump_x = np.abs(d[:, 1:] - d[:, :-1])
        jump_y = np.abs(d[1:, :] - d[:-1, :])
    marks[:, :-1] |= np.isfinite(jump_x) & (jump_x > threshold)
    marks[:-1, :] |= np.isfinite(jump_y) & (jump_y > threshold)
    return torch.from_numpy(thin_boundaries(marks))


class MotorcycleOcclusions(torch.utils.data.Dataset):
    """The Middlebury "Motorcycle" left view with occlusion boundaries from its disparity.

    The stereo pair and its ground-truth disparity (Scharstein et al., GCPR 2014, reduced to
    500 x 741) ship inside the scikit-image wheel and load without network access. The
    boundaries are :func:`occlusion_boundaries` of the left disparity (about 7% of it unknown,
    mostly half-occluded strips beside the foreground, filled with the background's): the depth
    discontinuities only. Texture edges, shadows and the boundaries between parts at the same
    depth (the motorcycle's paint, its decals, the wall's texture) are real intensity edges that
    carry no label, so a detector is charged false positives for finding them: precision (and so F) on
    this image is a *lower bound* on the detector's precision for boundaries, best used to
    compare detectors with each other rather than as an absolute score.

    Args:
        gray: one luminance channel (ITU-R 601 weights), else RGB.
        threshold: disparity jump in pixels counted as an occlusion (the disparities range
            from about 7 to 60 pixels).
        fill: fill unknown disparities before looking for jumps (see
            :func:`occlusion_boundaries`).

    Returns (per item, one item):
        dict with ``image`` float32 ``(C, H, W)`` in ``[0, 1]``, ``boundaries`` (a list with one
        bool ``(H, W)`` map), ``disparity`` float32 ``(H, W)`` (inf where unknown) and ``name``.

    Example:
        >>> item = MotorcycleOcclusions()[0]
        >>> item["image"].shape, len(item["boundaries"])
        (torch.Size([1, 500, 741]), 1)
    """

    def __init__(self, *, gray: bool = True, threshold: float = 2.0, fill: bool = True) -> None:
        if not isinstance(gray, bool):
            raise TypeError(f"gray must be a bool, got {type(gray).__name__}")
        self.gray = gray
        self.threshold = check_positive_float(threshold, "threshold")
        self.fill = fill
        left, _, disparity = require("skimage.data", "MotorcycleOcclusions").stereo_motorcycle()
        self.image = _image_tensor(np.asarray(left), gray)
        self.disparity = torch.from_numpy(np.asarray(disparity, dtype=np.float32))
        self.boundary = occlusion_boundaries(self.disparity, self.threshold, fill=fill)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in (0, -1):
            raise IndexError(f"index {index} out of range for a dataset of length 1")
        return {
            "image": self.image.clone(),
            "boundaries": [self.boundary.clone()],
            "disparity": self.disparity.clone(),
            "name": "motorcycle",
        }

    def __repr__(self) -> str:
        return f"MotorcycleOcclusions(gray={self.gray}, threshold={self.threshold}, fill={self.fill})"


def _read_bsds_mat(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(boundaries, segmentations)`` of every annotator in a BSDS ``groundTruth`` .mat file.

    The file holds a variable ``groundTruth``: a 1 x K cell array of structs with fields
    ``Segmentation`` (region labels, uint16) and ``Boundaries`` (logical, one pixel wide).
    """
    loadmat = require("scipy.io", "reading the BSDS500 .mat annotations").loadmat
    mat = loadmat(str(path), squeeze_me=False, struct_as_record=True)
    if "groundTruth" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{str(path)!r} has no 'groundTruth' variable, found {found}")
    boundaries, segmentations = [], []
    for entry in np.asarray(mat["groundTruth"]).reshape(-1):
        rec = np.asarray(entry).reshape(-1)[0]
        names = rec.dtype.names or ()
        if "Boundaries" not in names or "Segmentation" not in names:
            raise ValueError(
                f"{str(path)!r}: each groundTruth entry must have Boundaries and Segmentation, got {names}"
            )
        boundaries.append(np.asarray(rec["Boundaries"]).astype(bool))
        segmentations.append(np.asarray(rec["Segmentation"]).astype(np.int64))
    if not boundaries:
        raise ValueError(f"{str(path)!r} holds no annotation (an empty groundTruth cell array)")
    return boundaries, segmentations


class BSDS500(torch.utils.data.Dataset):
    """A split of the Berkeley Segmentation Dataset 500 (BSDS500) read from a local copy.

    Expects the layout of the official archive's ``BSR/BSDS500/data`` folder::

        root/images/{train,val,test}/<id>.jpg
        root/groundTruth/{train,val,test}/<id>.mat

    Each ``.mat`` holds ``groundTruth``, a cell array of one struct per annotator (typically
    5 to 7) with fields ``Segmentation`` and ``Boundaries``; the boundaries are used as given
    (BSDS draws them one pixel wide). Images without a ``.mat`` file are skipped (the official
    ``images`` folders also hold a ``Thumbs.db``); a ``.mat`` without its image is an error.
    The BSDS protocol is :func:`cnnconv.evaluation.metrics.evaluate_boundaries` with its defaults
    (``max_dist=0.0075``, the 99-threshold grid), given the list of annotators' maps per image.

    Args:
        root: the folder holding ``images`` and ``groundTruth``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        gray: one luminance channel (PIL ``"L"``), else RGB.
        segmentations: also return the annotators' segmentations.

    Raises:
        FileNotFoundError: the split's image or ground-truth folder is missing.
        ValueError: the split holds no annotated image, or a ``.mat`` file has no image.

    Returns (per item):
        dict with ``image`` float32 ``(C, H, W)`` in ``[0, 1]``, ``boundaries`` (a list of bool
        ``(H, W)`` tensors, one per annotator), ``name`` (the image id) and, if asked,
        ``segmentations`` (a list of int64 ``(H, W)`` tensors).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "test",
        *,
        gray: bool = True,
        segmentations: bool = False,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if split not in BSDS_SPLITS:
            raise ValueError(f"split must be one of {BSDS_SPLITS}, got {split!r}")
        if not isinstance(gray, bool):
            raise TypeError(f"gray must be a bool, got {type(gray).__name__}")
        self.root = Path(root)
        self.split = split
        self.gray = gray
        self.segmentations = bool(segmentations)
        image_dir = self.root / "images" / split
        gt_dir = self.root / "groundTruth" / split
        for folder in (image_dir, gt_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"BSDS500 folder not found: {str(folder)!r}")
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() == ".jpg"}
        mats = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() == ".mat")
        orphans = [p.name for p in mats if p.stem not in images]
        if orphans:
            raise ValueError(f"ground truth without an image in {str(image_dir)!r}: {orphans[:5]}")
        if not mats:
            raise ValueError(f"no annotated image in {str(gt_dir)!r}")
        self.items = [(p.stem, images[p.stem], p) for p in mats]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, image_path, mat_path = self.items[check_index(index, len(self.items))]
        image = _load_image_file(image_path, self.gray)
        boundaries, segs = _read_bsds_mat(mat_path)
        for b in boundaries:
            if b.shape != tuple(image.shape[-2:]):
                raise ValueError(
                    f"{mat_path.name}: annotation of size {b.shape} does not match the image {tuple(image.shape[-2:])}"
                )
        item = {"image": image, "boundaries": [torch.from_numpy(b) for b in boundaries], "name": name}
        if self.segmentations:
            item["segmentations"] = [torch.from_numpy(s) for s in segs]
        return item

    def __repr__(self) -> str:
        return f"BSDS500(root={str(self.root)!r}, split={self.split!r}, n={len(self.items)}, gray={self.gray})"
