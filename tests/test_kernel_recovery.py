"""Tests of the kernel transforms (cnnconv.kernels.transforms) and of kernel recovery
(cnnconv.analysis.kernel_recovery_error), against numpy's rotations and flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnconv.analysis import KernelTransform, kernel_recovery_error
from cnnconv.kernels.transforms import (
    GEOMETRIC,
    apply_transform,
    centre_pad,
    dihedral_name,
    dihedral_parts,
    inverse_transform,
    parse_transform,
    transform_name,
)

# The eight symmetries of the square written with numpy alone (the oracle).
NUMPY_GEOMETRIC = {
    "identity": lambda a: a,
    "conv_flip": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "flip_lr": lambda a: np.flip(a, -1),
    "flip_ud": lambda a: np.flip(a, -2),
    "transpose": lambda a: np.swapaxes(a, -1, -2),
    "anti_transpose": lambda a: np.swapaxes(np.rot90(a, 2, axes=(-2, -1)), -1, -2),
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
}


# ------------------------------------------------------------------------------------------
# Kernel transforms
# ------------------------------------------------------------------------------------------


def test_transforms_match_numpy_with_sign_and_undo_with_the_inverse():
    assert set(GEOMETRIC) == set(NUMPY_GEOMETRIC) and GEOMETRIC[:2] == ("identity", "conv_flip")
    k = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    for geometric, oracle in NUMPY_GEOMETRIC.items():
        for negated in (False, True):
            name = transform_name(geometric, negated)
            assert parse_transform(name) == (geometric, negated)
            expected = (-1 if negated else 1) * oracle(k.numpy())
            out = apply_transform(k, name)
            np.testing.assert_array_equal(out.numpy(), expected)
            np.testing.assert_array_equal(apply_transform(out, inverse_transform(name)).numpy(), k.numpy())
            transposed, turns = dihedral_parts(geometric)
            np.testing.assert_array_equal(
                np.rot90(np.swapaxes(k.numpy(), -1, -2) if transposed else k.numpy(), turns, axes=(-2, -1)),
                oracle(k.numpy()),
            )
            assert dihedral_name(transposed, turns + 4) == geometric


def test_transforms_of_1d_kernels_and_bad_names():
    k = torch.randn(7)
    np.testing.assert_array_equal(apply_transform(k, "conv_flip+negated").numpy(), -k.numpy()[::-1])
    with pytest.raises(ValueError, match="1-D kernel"):
        apply_transform(k, "rot90")
    with pytest.raises(ValueError, match="unknown transform"):
        apply_transform(k, "rot45")
    with pytest.raises(TypeError, match="must be a string"):
        parse_transform(3)


def test_centre_pad_keeps_the_centre_and_refuses_odd_or_negative_differences():
    k = torch.randn(2, 3, 5, dtype=torch.float64)
    out = centre_pad(k, (7, 9))
    expected = np.pad(k.numpy(), ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(centre_pad(torch.ones(3), (5,)).numpy(), [0, 1, 1, 1, 0])
    with pytest.raises(ValueError, match="size difference must be even"):
        centre_pad(k, (4, 5))
    with pytest.raises(ValueError, match="cannot centre a 3x5 kernel in a 1x5 one"):
        centre_pad(k, (1, 5))


# ------------------------------------------------------------------------------------------
# Kernel recovery error
# ------------------------------------------------------------------------------------------


def test_kernel_recovery_finds_every_sign_and_rotation():
    ref = torch.randn(5, 5, dtype=torch.float64)
    for rot in range(4):
        for sign in (1, -1):
            learned = sign * torch.rot90(ref, rot)
            err, tf = kernel_recovery_error(learned, ref)
            assert err == pytest.approx(0.0, abs=1e-12)
            torch.testing.assert_close(tf.apply(learned), ref)
    # the convolution flip is the 180-degree rotation
    err, tf = kernel_recovery_error(ref.flip(0, 1), ref)
    assert err == pytest.approx(0.0, abs=1e-12) and tf == KernelTransform(1, 2, False)
    assert tf.name == "conv_flip"


def test_kernel_recovery_mirror_names_agree_with_the_numpy_oracle():
    ref = torch.randn(4, 4, dtype=torch.float64)
    for geometric, oracle in NUMPY_GEOMETRIC.items():
        learned = torch.from_numpy(-oracle(ref.numpy()).copy())
        err, tf = kernel_recovery_error(learned, ref, allow_mirror=True)
        assert err == pytest.approx(0.0, abs=1e-12)
        assert tf.sign == -1 and tf.name == transform_name(inverse_transform(geometric), True)
        np.testing.assert_allclose(tf.apply(learned).numpy(), ref.numpy())


def test_kernel_recovery_does_not_align_scale_and_pads_smaller_kernel():
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert kernel_recovery_error(2 * sobel, sobel).error == pytest.approx(1.0)
    outer = torch.randn(5, 5)
    outer[1:4, 1:4] = 0
    learned = outer.clone()
    learned[1:4, 1:4] = sobel
    err, tf = kernel_recovery_error(learned, sobel)
    assert tf == KernelTransform()
    assert err == pytest.approx(float(outer.norm() / sobel.norm()), rel=1e-6)


def test_kernel_recovery_against_brute_force_numpy():
    rng = np.random.default_rng()
    ref = rng.normal(size=(2, 1, 5, 5))
    learned = rng.normal(size=(2, 1, 5, 5))
    best = min(
        np.linalg.norm(s * np.rot90(learned, r, axes=(-2, -1)) - ref) / np.linalg.norm(ref)
        for s in (1, -1)
        for r in range(4)
    )
    assert kernel_recovery_error(torch.tensor(learned, dtype=torch.float32), ref).error == pytest.approx(best, rel=1e-6)
    best_m = min(
        best,
        min(
            np.linalg.norm(s * np.rot90(np.swapaxes(learned, -1, -2), r, axes=(-2, -1)) - ref)
            / np.linalg.norm(ref)
            for s in (1, -1)
            for r in range(4)
        ),
    )
    assert kernel_recovery_error(learned, ref, allow_mirror=True).error == pytest.approx(best_m)


def test_kernel_recovery_bad_inputs():
    with pytest.raises(ValueError, match="must not be all zeros"):
        kernel_recovery_error(torch.ones(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="size difference must be even"):
        kernel_recovery_error(torch.ones(4, 4), torch.ones(3, 3))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        kernel_recovery_error(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        kernel_recovery_error(torch.full((3, 3), float("nan")), torch.ones(3, 3))
