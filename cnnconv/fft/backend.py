"""The transforms: ``torch.fft``, or ``scipy.fft`` (pocketfft) on CPU where it is faster and no
graph is recorded, and the fast transform lengths.

Example:
    >>> next_fast_len(1039)
    1080
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["FFT_BACKENDS", "next_fast_len", "set_fft_backend"]

FFT_BACKENDS = ("auto", "torch", "scipy")
_backend: dict[str, Any] = {"name": "auto", "scipy": None}


@functools.lru_cache(maxsize=8192)
def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (``2^a 3^b 5^c``) that is at least ``n``.

    Args:
        n: a positive length.

    Returns:
        The fast FFT length, as ``scipy.fft.next_fast_len(n, real=True)``.

    Example:
        >>> next_fast_len(1039)
        1080
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if n <= 6:
        return n
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = -(-n // p35)
            cand = (1 << (q - 1).bit_length()) * p35
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def set_fft_backend(name: str) -> None:
    """Pick the transform library: ``"auto"`` (scipy.fft for CPU tensors when scipy is installed
    and no autograd graph is being recorded, torch.fft otherwise), ``"torch"`` or ``"scipy"``.

    Args:
        name: one of ``"auto"``, ``"torch"``, ``"scipy"``.

    Example:
        >>> set_fft_backend("torch"); set_fft_backend("auto")
    """
    if name not in FFT_BACKENDS:
        raise ValueError(f"backend must be one of {FFT_BACKENDS}, got {name!r}")
    if name == "scipy":
        try:
            import scipy.fft  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the scipy FFT backend needs scipy: pip install 'cnnconv[experiments]'") from exc
    _backend["name"] = name


def backend_name() -> str:
    """The backend set by :func:`set_fft_backend`."""
    return _backend["name"]


def _scipy_fft(t: torch.Tensor) -> Any:
    """scipy.fft when it should compute this transform, else None."""
    name = _backend["name"]
    if name == "torch" or t.device.type != "cpu" or torch.is_grad_enabled():
        return None
    if t.dtype not in (torch.float32, torch.float64, torch.complex64, torch.complex128):
        return None
    mod = _backend["scipy"]
    if mod is None:
        try:
            import scipy.fft

            mod = scipy.fft
        except ImportError:
            mod = False
        _backend["scipy"] = mod
    return mod or None


def dims(nd: int) -> tuple[int, ...]:
    """The last ``nd`` dims, which the transforms act on."""
    return tuple(range(-nd, 0))


def rfftn(x: torch.Tensor, n: Sequence[int]) -> torch.Tensor:
    """Real FFT of the last ``len(n)`` dims of ``x``, zero-extended to ``n``."""
    nd = len(n)
    sp = _scipy_fft(x)
    if sp is None:
        return torch.fft.rfftn(x, s=tuple(n), dim=dims(nd))
    a = x.detach().resolve_conj().numpy()
    out = sp.rfftn(a, s=tuple(n), axes=dims(nd), workers=torch.get_num_threads())
    return torch.from_numpy(out)


def irfftn(X: torch.Tensor, n: Sequence[int], overwrite: bool = False) -> torch.Tensor:
    """Inverse of :func:`rfftn` for real signals of size ``n`` (``overwrite``: scipy may reuse
    ``X``'s memory)."""
    nd = len(n)
    sp = _scipy_fft(X)
    if sp is None:
        return torch.fft.irfftn(X, s=tuple(n), dim=dims(nd))
    a = X.detach().resolve_conj().numpy()
    out = sp.irfftn(a, s=tuple(n), axes=dims(nd), workers=torch.get_num_threads(), overwrite_x=overwrite)
    return torch.from_numpy(out)
