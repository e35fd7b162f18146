"""Devices and distributed data parallel training: ranks, process groups, batch shards."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "DistInfo",
    "cleanup_distributed",
    "select_device",
    "setup_distributed",
    "shard_batch",
    "unwrap_model",
]


def select_device(spec: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Resolve ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Args:
        spec: Device request.
        local_rank: CUDA device index used for ``"auto"``/``"cuda"`` (one GPU per DDP rank).

    Returns:
        A ``torch.device``.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    if isinstance(spec, torch.device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {spec!r}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available")
        return torch.device(spec if ":" in spec else f"cuda:{local_rank}")
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {spec!r}")


@dataclasses.dataclass
class DistInfo:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | torch.device = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group set up by ``torchrun`` (if any) and pick this rank's device.

    Uses NCCL when the device is CUDA and gloo on CPU. Without ``WORLD_SIZE > 1`` in the
    environment this is a no-op returning rank 0 of 1.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(DistInfo, device)``.

    Example:
        >>> info, dev = setup_distributed("cpu")  # not launched by torchrun
        >>> info.world_size, dev
        (1, device(type='cpu'))
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), select_device(device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = select_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, backend), dev


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_batch(batch: Any, info: DistInfo) -> Any:
    """This rank's contiguous slice of a global batch (tensors, or tuples/lists/dicts of them).

    Every rank builds the same global batch (e.g. from :func:`step_generator`) and keeps its
    slice, so ``world_size`` ranks on equal slices average to the gradient of the global batch.

    Args:
        batch: Tensor whose first dimension is the global batch, or a container of them.
        info: From :func:`setup_distributed`.

    Returns:
        The same structure, sliced along dim 0.

    Example:
        >>> shard_batch(torch.arange(4), DistInfo(rank=1, world_size=2)).tolist()
        [2, 3]
    """
    if isinstance(batch, torch.Tensor):
        n = batch.shape[0]
        if n % info.world_size:
            raise ValueError(f"global batch size {n} is not divisible by world size {info.world_size}")
        per = n // info.world_size
        return batch[info.rank * per : (info.rank + 1) * per]
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(b, info) for b in batch)
    if isinstance(batch, Mapping):
        return {k: shard_batch(v, info) for k, v in batch.items()}
    raise TypeError(f"batch must be a tensor or a list/tuple/dict of tensors, got {type(batch).__name__}")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel``/``DataParallel`` and ``torch.compile`` wrappers.

    Example:
        >>> m = nn.Linear(2, 2)
        >>> unwrap_model(m) is m
        True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model
