"""Photographs: those bundled in the scikit-image wheel and any folder of the user's own images.

Nothing is downloaded: :func:`bundled_photographs` and :class:`PhotoCrops` (random crops with
flips and 90-degree rotations) read the photographs shipped inside the scikit-image wheel, and
:class:`ImageFolderDataset` reads PNG, JPEG, BMP, TIFF or WebP files from a folder. Images are
float32 tensors ``(C, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnconv._utils.checks import check_positive_int
from cnnconv._utils.optional import require
from cnnconv.evaluation._inputs import check_index, check_size

__all__ = ["IMAGE_EXTENSIONS", "PHOTOGRAPHS", "ImageFolderDataset", "PhotoCrops", "bundled_photographs"]

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
    skimage_data = require("skimage.data", "bundled_photographs")
    return _image_tensor(np.asarray(getattr(skimage_data, name)()), gray)


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


def _crop_augment(
    img: torch.Tensor, rng: np.random.Generator, crop: tuple[int, int] | None, augment: bool
) -> torch.Tensor:
    """A random crop and one of the 8 flips / 90-degree rotations, drawn from ``rng``."""
    tvf = require("torchvision.transforms.v2.functional", "cropping and augmentation")
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
    ) -> None:
        length = check_positive_int(length, "length", minimum=0)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.length = length
        self.crop_size = check_size(crop_size, "crop_size")
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
        index = check_index(index, self.length)
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


IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _load_image_file(path: Path, gray: bool) -> torch.Tensor:
    """An image file as float32 ``(C, H, W)`` in ``[0, 1]`` (16- and 32-bit integer images too)."""
    image = require("PIL.Image", "reading image files")
    with image.open(path) as im:
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
    ) -> None:
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
        self.crop_size = None if crop_size is None else check_size(crop_size, "crop_size")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = check_index(index, len(self.files))
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
