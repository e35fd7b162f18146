"""The shared argument checks and optional imports of cnnconv._utils."""

import pytest
import torch

from cnnconv._utils.checks import (
    check_choice,
    check_positive_float,
    check_positive_int,
    check_tensor,
    int_tuple,
    pair,
)
from cnnconv._utils.optional import require


@pytest.mark.parametrize("value,nd,expected", [(3, 2, (3, 3)), ((4,), 3, (4, 4, 4)), ([1, 2], 2, (1, 2))])
def test_int_tuple_accepts(value, nd, expected):
    assert int_tuple(value, nd, "k") == expected


@pytest.mark.parametrize("value", [True, 2.0, (1, 2, 3), ("a", 1), None])
def test_int_tuple_refuses_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a tuple of 2 ints, got"):
        int_tuple(value, 2, "kernel_size")


def test_pair_and_choice():
    assert pair(1.5, "sigma") == (1.5, 1.5) and pair([1, 2], "sigma") == (1, 2)
    with pytest.raises(ValueError, match="sigma must be a number or a pair, got"):
        pair((1, 2, 3), "sigma")
    assert check_choice("x", "axis", "xy") == "x"
    with pytest.raises(ValueError, match=r"axis must be one of \['x', 'y'\], got 'z'"):
        check_choice("z", "axis", ["x", "y"])


def test_numbers():
    assert check_positive_int(3, "n") == 3
    for bad, err in [(True, TypeError), (2.5, TypeError), (0, ValueError)]:
        with pytest.raises(err, match="n must be"):
            check_positive_int(bad, "n")
    assert check_positive_float(2, "s") == 2.0
    for bad, err in [(False, TypeError), ("1", TypeError), (0.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError)]:
        with pytest.raises(err, match="s must be"):
            check_positive_float(bad, "s")


def test_check_tensor():
    x = torch.randn(2, 3)
    assert check_tensor(x, "input", {2, 3}) is x
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        check_tensor([1.0], "input")
    with pytest.raises(ValueError, match=r"input must have 3 or 4 dimensions, got shape \(2, 3\)"):
        check_tensor(x, "input", {3, 4})


def test_require_names_purpose_and_install_hint():
    assert require("math", "square roots").sqrt(9.0) == 3.0
    with pytest.raises(ImportError, match=r"plotting needs no_such_pkg_cnnconv: pip install"):
        require("no_such_pkg_cnnconv.sub", "plotting")
