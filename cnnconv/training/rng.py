"""Random state: per-step generators, and capturing/restoring every global generator."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "step_generator"]


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` determined by ``(seed, step, rank)`` alone.

    Drawing each step's batch from it makes data iteration resumable without saving any state.

    Example:
        >>> a = torch.rand(3, generator=step_generator(0, 5))
        >>> torch.equal(a, torch.rand(3, generator=step_generator(0, 5)))
        True
    """
    mixed = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(rank)])
    g = torch.Generator()
    g.manual_seed(int(mixed.generate_state(1, dtype=np.uint64)[0] & 0x7FFFFFFFFFFFFFFF))
    return g


def capture_rng_state(generators: Mapping[str, Any] | None = None) -> dict:
    """All random states: torch CPU, CUDA (every device), numpy, python ``random`` and extras.

    Args:
        generators: Named ``torch.Generator`` or ``numpy.random.Generator`` objects (for example
            a DataLoader's generator) whose state is saved too.

    Returns:
        A dict of tensors and builtin types (loadable with ``torch.load(weights_only=True)``).
    """
    np_state: Any = np.random.get_state()
    saved: dict[str, Any] = {}
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
        "generators": saved,
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            saved[name] = gen.get_state()
        elif isinstance(gen, np.random.Generator):
            saved[name] = gen.bit_generator.state
        else:
            raise TypeError(
                f"generators[{name!r}] must be a torch.Generator or numpy.random.Generator, got {type(gen).__name__}"
            )
    return state


def restore_rng_state(state: Mapping, generators: Mapping[str, Any] | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    saved = state.get("generators", {})
    for name, gen in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"checkpoint has no state for generator {name!r} (saved: {sorted(saved)})")
        if isinstance(gen, torch.Generator):
            gen.set_state(saved[name])
        else:
            gen.bit_generator.state = saved[name]
