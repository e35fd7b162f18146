"""The kernel registry: builders by name (:func:`get_kernel`), with aliases and the built-ins."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import builders as B
from . import gaussians as N
from . import gradients as G

__all__ = ["get_kernel", "list_kernels", "register_kernel", "unregister_kernel"]

# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., torch.Tensor]] = {}
_ALIASES = {
    "mean": "box",
    "average": "box",
    "gauss": "gaussian",
    "laplacian": "laplacian4",
    "laplacian_of_gaussian": "log",
}


def register_kernel(name: str):
    """Decorator registering a kernel builder under ``name`` for :func:`get_kernel`.

    Example:
        >>> @register_kernel("my_cross")
        ... def my_cross(*, dtype=None, device=None):
        ...     return B.laplacian(4, dtype=dtype, device=device).abs()
        >>> get_kernel("my_cross").shape
        torch.Size([3, 3])
        >>> unregister_kernel("my_cross")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")

    def decorator(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"kernel name already registered, got {name!r}")
        _REGISTRY[name] = fn
        return fn

    return decorator


def unregister_kernel(name: str) -> None:
    """Remove a kernel registered with :func:`register_kernel` (built-in names included).

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in _REGISTRY:
        raise ValueError(f"kernel name is not registered, got {name!r}")
    del _REGISTRY[name]


def list_kernels() -> list[str]:
    """Sorted list of registered kernel names (aliases excluded)."""
    return sorted(_REGISTRY)


def get_kernel(name: str, **kwargs) -> torch.Tensor:
    """Build a registered kernel by name, passing ``kwargs`` to its builder.

    Args:
        name: a name from :func:`list_kernels` or an alias (``mean``, ``gauss``...).
        **kwargs: builder arguments, e.g. ``sigma=2.0``, ``dtype=torch.float64``.

    Example:
        >>> get_kernel("gaussian", sigma=1.0, size=3).shape
        torch.Size([3, 3])
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(f"unknown kernel name, got {name!r}; known: {', '.join(list_kernels())}")
    return _REGISTRY[key](**kwargs)


def _register_builtins() -> None:
    def add(name, fn, **fixed):
        def builder(*args, **kwargs):
            return fn(*args, **{**fixed, **kwargs})

        builder.__name__ = name
        builder.__doc__ = fn.__doc__
        register_kernel(name)(builder)

    add("box", B.box)
    add("gaussian", N.gaussian)
    add("gaussian_dx", N.gaussian_derivative, order=1, axis="x")
    add("gaussian_dy", N.gaussian_derivative, order=1, axis="y")
    add("gaussian_dxx", N.gaussian_derivative, order=2, axis="x")
    add("gaussian_dyy", N.gaussian_derivative, order=2, axis="y")
    add("gaussian_dxy", N.gaussian_dxy)
    add("gabor", B.gabor)
    for axis in "xy":
        for operator in ("sobel", "prewitt", "scharr", "roberts"):
            add(f"{operator}_{axis}", getattr(G, f"{operator}_{axis}"))
        add(f"sobel5_{axis}", getattr(G, f"sobel_{axis}"), size=5)
    for direction in G.KIRSCH_DIRECTIONS:
        add(f"kirsch_{direction}", G.kirsch, direction=direction)
    add("laplacian4", B.laplacian, neighbours=4)
    add("laplacian8", B.laplacian, neighbours=8)
    add("log", N.laplacian_of_gaussian)
    add("sharpen", B.sharpen)
    add("unsharp", N.unsharp)
    add("identity", B.identity)


_register_builtins()
