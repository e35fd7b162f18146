"""Tests of cnnconv.evaluation.data: synthetic scenes, bundled photographs, image folders.

Oracles: loop definitions of the boundary (thinned by skimage.morphology.thin), region statistics recomputed from the image,
F.conv2d Sobel gradients for the orientation convention, scipy.ndimage for the blur, PIL /
torchvision.io for file decoding, and exact sub-window search for crops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnconv.evaluation.data import (
    PHOTOGRAPHS,
    ImageFolderDataset,
    PhotoCrops,
    SyntheticScenes,
    bundled_photographs,
    make_scene,
)

ndimage = pytest.importorskip("scipy.ndimage")
sk_thin = pytest.importorskip("skimage.morphology").thin

SOBEL_X = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)


def _sobel_direction(img: torch.Tensor) -> torch.Tensor:
    x = F.pad(img.double()[None, None], (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(x, SOBEL_X[None, None])[0, 0]
    gy = F.conv2d(x, SOBEL_X.T[None, None])[0, 0]
    return torch.atan2(gy, gx)


# ------------------------------------------------------------------------------------------
# Synthetic scenes
# ------------------------------------------------------------------------------------------


def test_scene_fields_shapes_dtypes():
    s = make_scene((48, 64), seed=1, noise=0.1)
    assert s["image"].shape == (1, 48, 64) and s["image"].dtype == torch.float32
    assert s["clean"].shape == (1, 48, 64)
    assert s["boundary"].shape == (48, 64) and s["boundary"].dtype == torch.bool
    assert s["orientation"].shape == (48, 64) and s["orientation"].dtype == torch.float32
    assert s["labels"].shape == (48, 64) and s["labels"].dtype == torch.int64
    assert s["boundary"].any()
    c = make_scene(32, seed=1, colour=True)
    assert c["image"].shape == (3, 32, 32)


def test_scene_is_reproducible_by_seed_and_rng():
    a = make_scene(40, seed=(3, 7), noise=0.2, texture=True)
    b = make_scene(40, seed=(3, 7), noise=0.2, texture=True)
    for k in ("image", "boundary", "orientation", "labels"):
        assert torch.equal(a[k], b[k])
    c = make_scene(40, seed=(3, 8), noise=0.2, texture=True)
    assert not torch.equal(a["image"], c["image"])
    r1 = make_scene(40, rng=np.random.default_rng(5))
    r2 = make_scene(40, rng=np.random.default_rng(5))
    assert torch.equal(r1["image"], r2["image"])


def test_boundary_matches_loop_definition():
    s = make_scene(40, seed=2, n_shapes=6)
    lab = s["labels"].numpy()
    h, w = lab.shape
    ref = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            if c + 1 < w and lab[r, c] != lab[r, c + 1]:
                ref[r, c] = True
            if r + 1 < h and lab[r, c] != lab[r + 1, c]:
                ref[r, c] = True
    # the boundary is the label-change pixels thinned as the metric thins predictions
    np.testing.assert_array_equal(s["boundary"].numpy(), sk_thin(ref))
    b = s["boundary"].numpy()
    assert not (b & ~ref).any() and b.sum() > 0.8 * ref.sum()
    # and off the boundary the orientation is 0
    assert (s["orientation"][~s["boundary"]] == 0).all()


def test_regions_are_constant_and_contrast_is_the_weakest_adjacent_step():
    s = make_scene(64, seed=4, antialias=False, n_shapes=5)
    img, lab = s["image"][0].double().numpy(), s["labels"].numpy()
    values = {}
    for k in np.unique(lab):
        v = img[lab == k]
        assert np.ptp(v) < 1e-6  # piecewise constant without anti-aliasing
        values[k] = v[0]
    pairs = set(zip(lab[:, :-1][lab[:, :-1] != lab[:, 1:]], lab[:, 1:][lab[:, :-1] != lab[:, 1:]]))
    pairs |= set(zip(lab[:-1][lab[:-1] != lab[1:]], lab[1:][lab[:-1] != lab[1:]]))
    weakest = min(abs(values[a] - values[b]) for a, b in pairs)
    assert s["contrast"] == pytest.approx(weakest, abs=1e-6)
    assert s["contrast"] >= 0.2 - 1e-6  # the default nominal contrast was reachable here
    assert 0.1 - 1e-6 <= img.min() and img.max() <= 0.9 + 1e-6


def test_colour_contrast_is_rms_over_channels():
    s = make_scene(48, seed=6, colour=True, antialias=False)
    img, lab = s["image"].double().numpy(), s["labels"].numpy()
    d = img[:, :, :-1] - img[:, :, 1:]
    steps = np.sqrt((d**2).mean(axis=0))[lab[:, :-1] != lab[:, 1:]]
    d2 = img[:, :-1] - img[:, 1:]
    steps2 = np.sqrt((d2**2).mean(axis=0))[lab[:-1] != lab[1:]]
    assert s["contrast"] == pytest.approx(min(steps.min(), steps2.min()), abs=1e-6)


def test_noise_is_gaussian_scaled_by_contrast_and_shared_across_levels():
    a = make_scene(96, seed=9, noise=0.2)
    b = make_scene(96, seed=9, noise=0.4)
    c0 = make_scene(96, seed=9, noise=0.0)
    assert torch.equal(a["clean"], c0["image"]) and torch.equal(a["labels"], c0["labels"])
    assert a["noise_std"] == pytest.approx(0.2 * a["contrast"])
    za = (a["image"].double() - a["clean"].double()) / a["noise_std"]
    zb = (b["image"].double() - b["clean"].double()) / b["noise_std"]
    torch.testing.assert_close(za, zb, atol=1e-4, rtol=0)
    z = za.flatten().numpy()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert abs(((z - z.mean()) ** 3).mean()) < 0.1  # symmetric, as a Gaussian


def test_orientation_agrees_with_sobel_gradient_convention():
    # on the noise-free image the Sobel direction atan2(gy, gx) (x right, y down) agrees with
    # the stored normal, including its sign (towards the brighter side), away from junctions
    errs, signs = [], []
    for seed in range(6):
        for colour in (False, True):
            s = make_scene(80, seed=seed, colour=colour)
            d = _sobel_direction(s["clean"].mean(0))
            b = s["boundary"]
            diff = torch.remainder(d - s["orientation"].double() + math.pi, 2 * math.pi) - math.pi
            errs.append(diff.abs()[b])
            signs.append((diff.abs()[b] < math.pi / 2).double().mean().item())
    e = torch.cat(errs)
    e = torch.minimum(e, math.pi - e)  # modulo 180
    assert math.degrees(e.median().item()) < 4.0
    assert np.mean(signs) > 0.97


def test_orientation_of_rotated_edges():
    # orientation agrees with Sobel independently of the edge direction: bin the boundary
    # pixels by true angle and require a small median error in each populated bin
    dirs, trues = [], []
    for seed in range(10):
        s = make_scene(96, seed=100 + seed, shapes=("polygon",), n_shapes=2, antialias=8)
        b = s["boundary"]
        dirs.append(_sobel_direction(s["clean"][0])[b])
        trues.append(s["orientation"].double()[b])
    d, t = torch.cat(dirs), torch.cat(trues)
    err = torch.remainder(d - t + math.pi, 2 * math.pi) - math.pi
    bins = torch.floor((t + math.pi) / (math.pi / 4)).long()
    populated = 0
    for k in range(8):
        sel = bins == k
        if sel.sum() > 20:
            populated += 1
            assert math.degrees(err[sel].abs().median().item()) < 5.0
    assert populated >= 6


def test_blur_equals_scipy_gaussian_filter():
    sharp = make_scene(48, seed=12)
    blurred = make_scene(48, seed=12, blur=1.5)
    ref = ndimage.gaussian_filter(sharp["clean"][0].double().numpy(), 1.5, mode="mirror", truncate=4.0)
    np.testing.assert_allclose(blurred["clean"][0].numpy(), ref, atol=1e-6)


@pytest.mark.parametrize(
    "size, sigma, colour", [((40, 56), 0.6, False), (32, 2.3, True), ((8, 11), 3.0, True), (12, 7.5, False)]
)
def test_blur_equals_scipy_gaussian_filter_per_channel(size, sigma, colour):
    """Every channel, including kernels wider than the image (repeated mirroring)."""
    seed = int(np.random.default_rng().integers(2**31))
    sharp = make_scene(size, seed=seed, colour=colour, texture=0.5)
    blurred = make_scene(size, seed=seed, colour=colour, texture=0.5, blur=sigma)
    clean = sharp["clean"].double().numpy()
    ref = ndimage.gaussian_filter(clean, (0.0, sigma, sigma), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(blurred["clean"].numpy(), ref, atol=1e-6, err_msg=f"seed={seed}")


def _numpy_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """The separable numpy Gaussian the scenes were blurred with before (mirror borders)."""
    radius = max(1, round(4.0 * sigma))
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


def test_blurred_scenes_match_the_previous_numpy_blur():
    """Scenes change at most by float rounding: only the blur's implementation changed."""
    from cnnconv.evaluation.data import make_dead_leaves

    rng = np.random.default_rng()
    worst = 0.0
    for k, sigma in enumerate((0.1, 0.8, 1.5, 4.0)):
        seed = int(rng.integers(2**31))
        make = make_dead_leaves if k % 2 else make_scene
        kw = {"seed": seed, "colour": k >= 2, "texture": 0.5 * (k % 2), "noise": 0.2}
        sharp, blurred = make(48, **kw), make(48, blur=sigma, **kw)
        ref = _numpy_blur(sharp["clean"].double().numpy(), sigma)
        worst = max(worst, float(np.abs(blurred["clean"].double().numpy() - ref).max()))
        for key in ("boundary", "orientation", "labels"):
            assert torch.equal(blurred[key], sharp[key]), (key, seed)
        noise = (blurred["image"] - blurred["clean"]) - (sharp["image"] - sharp["clean"])
        assert noise.abs().max() <= 1e-6, seed
    assert worst <= 1e-5


def test_antialias_and_texture():
    hard = make_scene(64, seed=13, antialias=False)
    soft = make_scene(64, seed=13, antialias=4)
    # the same geometry; supersampling creates intermediate values only next to boundaries
    assert torch.equal(hard["labels"], soft["labels"])
    n_hard = torch.unique(hard["image"]).numel()
    assert n_hard == torch.unique(hard["labels"]).numel()
    assert torch.unique(soft["image"]).numel() > n_hard
    near = torch.from_numpy(ndimage.binary_dilation(soft["boundary"].numpy(), iterations=2))
    assert torch.equal(hard["image"][0][~near], soft["image"][0][~near])
    tex = make_scene(64, seed=13, antialias=False, texture=0.5)
    delta = (tex["image"] - hard["image"]).abs()
    assert delta.max() > 0.01
    assert delta.max() <= 0.5 * 0.5 * 0.2 + 1e-6  # amplitude texture * contrast / 2


def test_scene_bad_arguments():
    with pytest.raises(ValueError, match="noise must be non-negative and finite, got -0.1"):
        make_scene(32, seed=0, noise=-0.1)
    with pytest.raises(ValueError, match=r"contrast must be in \(0, 0.8\], got 0.0"):
        make_scene(32, seed=0, contrast=0.0)
    with pytest.raises(ValueError, match="size must be at least 8 pixels per side, got \\(4, 4\\)"):
        make_scene(4, seed=0)
    with pytest.raises(TypeError, match="size must be an int or a pair of ints, got 3.5"):
        make_scene(3.5, seed=0)
    with pytest.raises(ValueError, match="either rng or seed"):
        make_scene(32, seed=0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_shapes must be >= 1"):
        make_scene(32, seed=0, n_shapes=(3, 1))
    with pytest.raises(ValueError, match="shapes must be a non-empty subset"):
        make_scene(32, seed=0, shapes=("star",))


def test_synthetic_dataset_items_are_stable():
    ds = SyntheticScenes(6, size=32, seed=5, noise=0.1, colour=True)
    first = [ds[i]["image"] for i in range(6)]
    again = [ds[i]["image"] for i in reversed(range(6))][::-1]
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])
    assert torch.equal(ds[-1]["image"], first[5])
    other = SyntheticScenes(6, size=32, seed=6, noise=0.1, colour=True)
    assert not torch.equal(other[0]["image"], first[0])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["boundary"].shape == (3, 32, 32)
    assert torch.equal(batch["image"][2], first[2])
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(TypeError, match="sets rng itself"):
        SyntheticScenes(3, 32, seed=0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise must be non-negative"):
        SyntheticScenes(3, 32, noise=-1.0)
    assert "noise=0.1" in repr(ds)
    cached = SyntheticScenes(6, size=32, seed=5, noise=0.1, colour=True, cache=True)
    assert torch.equal(cached[2]["image"], first[2]) and torch.equal(cached[2]["image"], first[2])


# ------------------------------------------------------------------------------------------
# Bundled photographs
# ------------------------------------------------------------------------------------------


def test_all_bundled_photographs_load_offline():
    photos = bundled_photographs()
    assert list(photos) == list(PHOTOGRAPHS)
    for name, img in photos.items():
        assert img.dtype == torch.float32 and img.ndim == 3 and img.shape[0] == 1, name
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.01, name
        assert min(img.shape[-2:]) >= 128, name


def test_bundled_photographs_gray_is_luma_of_colour():
    import skimage.data

    colour = bundled_photographs("astronaut", gray=False)["astronaut"]
    gray = bundled_photographs(["astronaut"], gray=True)["astronaut"]
    raw = torch.from_numpy(skimage.data.astronaut()).double() / 255
    torch.testing.assert_close(colour.double(), raw.permute(2, 0, 1), atol=1e-6, rtol=0)
    luma = raw @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    torch.testing.assert_close(gray[0].double(), luma, atol=1e-6, rtol=0)
    cam = bundled_photographs("camera", gray=False)["camera"]
    assert cam.shape[0] == 3 and torch.equal(cam[0], cam[2])
    with pytest.raises(ValueError, match="names must be among"):
        bundled_photographs(["lena"])


def _find_window(photo: np.ndarray, crop: np.ndarray) -> bool:
    """Whether ``crop`` is one of the 8 flips/rotations of a window of ``photo`` (exact)."""
    s = crop.shape[0]
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(crop, k)
            t = t[:, ::-1] if flip else t
            v = np.lib.stride_tricks.sliding_window_view(photo, (s, s))
            hits = np.argwhere(
                (v[:, :, 0, 0] == t[0, 0]) & (v[:, :, 0, 1] == t[0, 1]) & (v[:, :, 1, 0] == t[1, 0])
            )
            for r, c in hits:
                if np.array_equal(photo[r : r + s, c : c + s], t):
                    return True
    return False


def test_photo_crops_are_reproducible_windows():
    ds = PhotoCrops(8, crop_size=24, names=["camera", "coins"], seed=3)
    photos = [p[0].numpy() for p in bundled_photographs(["camera", "coins"]).values()]
    items = [ds[i] for i in range(8)]
    for i, it in enumerate(items):
        img = it["image"]
        assert img.shape == (1, 24, 24) and img.is_contiguous()
        assert torch.equal(img, ds[i]["image"])
        assert _find_window(photos[it["index"]], img[0].numpy())
    assert len({tuple(it["image"].flatten()[:5].tolist()) for it in items}) > 1
    other = PhotoCrops(8, crop_size=24, names=["camera", "coins"], seed=4)
    assert not all(torch.equal(other[i]["image"], items[i]["image"]) for i in range(8))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 24, 24)


def test_photo_crops_bad_arguments():
    with pytest.raises(ValueError, match="larger than every photograph"):
        PhotoCrops(2, crop_size=4000)
    with pytest.raises(TypeError, match="transform must be callable"):
        PhotoCrops(2, crop_size=16, names=["camera"], transform=3)


# ------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
def test_image_folder_reads_png_and_jpeg(tmp_path):
    from PIL import Image
    from torchvision.io import decode_image

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(18, 22, 3), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "b.PNG")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")

    ds = ImageFolderDataset(tmp_path, gray=False)
    assert [p.name for p in ds.files] == ["a.png", "c.jpg", "b.PNG"]  # sorted by path
    by_name = {ds[i]["path"].split("/")[-1]: ds[i]["image"] for i in range(len(ds))}
    assert set(by_name) == {"a.png", "b.PNG", "c.jpg"}
    torch.testing.assert_close(by_name["b.PNG"], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(by_name["a.png"], torch.from_numpy(gray).float().expand(3, -1, -1) / 255)
    ref_jpg = decode_image(str(tmp_path / "c.jpg")).float() / 255
    assert (by_name["c.jpg"] - ref_jpg).abs().max() <= 2 / 255  # decoders may round differently

    g = ImageFolderDataset(tmp_path, gray=True, recursive=False)
    assert len(g) == 2 and g[0]["image"].shape[0] == 1
    torch.testing.assert_close(g[0]["image"][0], torch.from_numpy(gray).float() / 255)

    crops = ImageFolderDataset(tmp_path, crop_size=16, augment=True, seed=1)
    x = crops[1]["image"]
    assert x.shape == (1, 16, 16) and torch.equal(x, crops[1]["image"])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="root folder does not exist"):
        ImageFolderDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="contains no images with extensions"):
        ImageFolderDataset(tmp_path)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="root must be a folder"):
        ImageFolderDataset(tmp_path / "x.txt")
    with pytest.raises(TypeError, match="root must be a path, got int"):
        ImageFolderDataset(3)


# ------------------------------------------------------------------------------------------
# The evaluation package
# ------------------------------------------------------------------------------------------


def test_scene_generators_refuse_unknown_keywords():
    from cnnconv.evaluation.data import make_dead_leaves

    for make in (make_scene, make_dead_leaves):
        with pytest.raises(TypeError, match="unexpected keyword argument 'colours'"):
            make(16, seed=0, colours=True)


def test_evaluation_package_reexports_every_public_name_without_optional_imports():
    import subprocess
    import sys

    from cnnconv import evaluation
    from cnnconv.evaluation import data, datasets, metrics

    modules = (data, datasets, metrics)
    assert sorted(evaluation.__all__) == sorted(n for m in modules for n in m.__all__)
    for module in modules:
        for name in module.__all__:
            assert getattr(evaluation, name) is getattr(module, name), name
    assert set(evaluation.__all__) <= set(dir(evaluation))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        evaluation.nothing  # noqa: B018
    code = (
        "import sys, cnnconv.evaluation.data, cnnconv.evaluation.datasets, cnnconv.evaluation.metrics; "
        "print(sorted(m for m in ('scipy', 'skimage', 'torchvision', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
