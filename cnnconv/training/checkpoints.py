"""Checkpoints: self-describing, checksummed, written atomically, checked when loaded."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnconv._utils.io import atomic_write
from cnnconv.training.config import config_to_dict
from cnnconv.training.ddp import unwrap_model
from cnnconv.training.rng import capture_rng_state, restore_rng_state

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupted, foreign or not fitting the run."""


_CHECKPOINT_FORMAT = "cnnconv-checkpoint-1"


def _digest(obj: Any) -> str:
    """sha256 of a checkpoint's content: tensors by dtype, shape and bytes, the rest by repr.

    It depends on the values only (not on the serialization or the device), so it is computed
    alike before saving and after loading; lists and tuples count as the same.
    """
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"tensor {t.dtype} {tuple(x.shape)}:".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            h.update(b"{")
            for k, v in x.items():
                feed(k)
                feed(v)
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(f"{type(x).__name__} {x!r};".encode())

    feed(obj)
    return h.hexdigest()


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    *,
    step: int = 0,
    config: Any = None,
    generators: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically (temporary file, fsync, ``os.replace``).

    Holds the weights of the unwrapped model (no DDP / ``torch.compile`` prefixes), the optimizer
    and scheduler state, the step, every RNG state and the config, all loadable with
    ``torch.load(weights_only=True)``, and a ``sha256`` of all of that content that
    :func:`load_checkpoint` verifies. The payload is serialized in memory first, so a write
    failure (e.g. a full disk) is an ``OSError`` naming the file and the old checkpoint stays.

    Args:
        path: Destination ``.pt`` file.
        model: The (possibly wrapped) model.
        optimizer: Optional optimizer.
        scheduler: Optional LR scheduler (anything with ``state_dict``).
        step: Number of completed steps.
        config: Config dataclass or dict.
        generators: Extra generators whose state to keep (see :func:`capture_rng_state`).
        extra: Additional builtin-typed entries (e.g. elapsed training time).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
        >>> _ = save_checkpoint(p, nn.Linear(2, 1), step=3)
        >>> load_checkpoint(p, nn.Linear(2, 1))["step"]
        3
    """
    path = Path(path)
    inner = unwrap_model(model)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = config_to_dict(config)
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "model": inner.state_dict(),
        "model_class": f"{type(inner).__module__}.{type(inner).__qualname__}",
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "rng": capture_rng_state(generators),
        "config": config,
        "extra": dict(extra or {}),
    }
    payload["sha256"] = _digest(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write(path, buf.getbuffer())


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    *,
    generators: Mapping[str, Any] | None = None,
    restore_rng: bool = False,
    map_location: Any = "cpu",
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    The content is checked against the ``sha256`` stored in it. Checkpoints written before
    checksums were stored (no ``sha256`` entry) are accepted with a warning.

    Args:
        path: The ``.pt`` file.
        model: If given, its (unwrapped) weights are loaded strictly.
        optimizer: If given, its state is loaded.
        scheduler: If given, its state is loaded.
        generators: Generators to restore (requires ``restore_rng``).
        restore_rng: Also restore the global RNG states (needed for an exact resume).
        map_location: Passed to ``torch.load``.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is empty, truncated, corrupted (checksum mismatch), not a
            cnnconv checkpoint, or does not fit ``model``/``optimizer``/``scheduler``; the
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zero bytes, truncated, text, bit flips in the zip structure
        raise CheckpointError(
            f"checkpoint {path} cannot be read (empty, truncated or not a checkpoint): {_one_line(exc)}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a cnnconv checkpoint")
    stored = ckpt.pop("sha256", None)
    if stored is None:
        warnings.warn(
            f"checkpoint {path} has no checksum (written by an older cnnconv); loading it unchecked", stacklevel=2
        )
    elif stored != _digest(ckpt):
        raise CheckpointError(f"checkpoint {path} is corrupted: its content does not match its sha256 checksum")
    try:
        if model is not None:
            unwrap_model(model).load_state_dict(ckpt["model"])
        if optimizer is not None:
            if ckpt["optimizer"] is None:
                raise ValueError("it holds no optimizer state")
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            if ckpt["scheduler"] is None:
                raise ValueError("it holds no scheduler state")
            scheduler.load_state_dict(ckpt["scheduler"])
        if restore_rng:
            restore_rng_state(ckpt["rng"], generators)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {_one_line(exc)}") from None
    return ckpt
