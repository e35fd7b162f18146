"""Argument checks of the FFT convolutions, with the errors ``F.conv1d`` / ``F.conv2d`` /
``F.conv3d`` raise for the same mistakes."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["NONFINITE_MODES", "PADDING_MODES", "ConvArgumentError", "ConvDtypeError"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
NONFINITE_MODES = ("direct", "raise")


class ConvArgumentError(ValueError, RuntimeError):
    """A shape, size or device that ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` reject (with a
    RuntimeError): catchable as either ``ValueError`` or ``RuntimeError``."""


class ConvDtypeError(TypeError, RuntimeError):
    """Mismatched dtypes, which ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` reject (with a
    RuntimeError): catchable as either ``TypeError`` or ``RuntimeError``."""


def check_causal_mode(padding: Any, padding_mode: str) -> None:
    """Refuse ``padding="causal"`` with a border mode that reads later samples.

    ``"reflect"`` and ``"circular"`` fill the left border from samples after it, which would
    make the output depend on the future; ``"zeros"`` and ``"replicate"`` do not.
    """
    if isinstance(padding, str) and padding == "causal" and padding_mode in ("reflect", "circular"):
        raise ValueError(
            f"padding='causal' needs padding_mode 'zeros' or 'replicate' (padding_mode="
            f"{padding_mode!r} reads later samples), got padding_mode={padding_mode!r}"
        )


def _check_tensors(x: Any, weight: Any, bias: Any) -> None:
    """Types, dtypes and devices of the tensor arguments."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating point tensor, got dtype {x.dtype}")
    if weight.dtype != x.dtype:
        raise ConvDtypeError(f"weight dtype must match input dtype {x.dtype}, got {weight.dtype}")
    if bias is not None and bias.dtype != x.dtype:
        raise ConvDtypeError(f"bias dtype must match input dtype {x.dtype}, got {bias.dtype}")
    if weight.device != x.device:
        raise ConvArgumentError(f"weight must be on the input's device {x.device}, got {weight.device}")


def _check_shapes(x: torch.Tensor, weight: torch.Tensor, bias: Any, groups: Any, nd: int) -> None:
    """Ranks, channel counts and groups, as ``F.conv{nd}d`` checks them."""
    name = f"conv{nd}d"
    if x.dim() not in (nd + 1, nd + 2):
        raise ConvArgumentError(
            f"{name} expects input of {nd + 1} (unbatched) or {nd + 2} (batched) dims, got shape {tuple(x.shape)}"
        )
    if weight.dim() != nd + 2:
        raise ConvArgumentError(f"{name} expects weight of {nd + 2} dims, got shape {tuple(weight.shape)}")
    if any(k == 0 for k in weight.shape[2:]):
        raise ConvArgumentError(f"weight must have a non-empty kernel, got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    cin = x.shape[-nd - 1]
    cout = weight.shape[0]
    if cout == 0:
        raise ConvArgumentError(f"weight must have at least one output channel, got shape {tuple(weight.shape)}")
    if cin != weight.shape[1] * groups:
        raise ConvArgumentError(
            f"input has {cin} channels but weight of shape {tuple(weight.shape)} with "
            f"groups={groups} expects {weight.shape[1] * groups}"
        )
    if cout % groups != 0:
        raise ConvArgumentError(f"out channels {cout} must be divisible by groups={groups}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ConvArgumentError(f"bias must have shape ({cout},), got {tuple(bias.shape)}")


def check_args(
    x: Any,
    weight: Any,
    bias: Any,
    groups: Any,
    nd: int,
    padding_mode: Any,
    nonfinite: Any,
    padding: Any,
) -> None:
    """Everything ``F.conv{nd}d`` checks, plus the engine's own options."""
    _check_tensors(x, weight, bias)
    _check_shapes(x, weight, bias, groups, nd)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    check_causal_mode(padding, padding_mode)
    if nonfinite not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}, got {nonfinite!r}")
