"""FFT plans: how one convolution is computed (whole-plane or overlap-save tiles, transform
sizes, chunks within the memory budget), built once per geometry and kept in a bounded cache.

The engine builds the plan (:func:`get_plan`) and runs it; the planner prices the same plan
(:attr:`FFTPlan.cost`), so a layer that asks the planner and then runs the engine builds it once.

Example:
    >>> from cnnconv.fft.geometry import ConvGeometry
    >>> geom = ConvGeometry.from_shapes((1, 4, 64, 64), (4, 4, 31, 31), padding="same")
    >>> plan = get_plan(geom, 8, DEFAULT_MEMORY_BUDGET, "cpu")
    >>> plan is get_plan(geom, 8, DEFAULT_MEMORY_BUDGET, "cpu"), plan.tiled
    (True, False)
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import threading
from collections.abc import Sequence
from typing import Any

import torch

from cnnconv._utils.calibration import load_constants

from .backend import backend_name, next_fast_len
from .cost import FFT_CONSTANTS, fft_cost, tiled_cost
from .geometry import ConvGeometry, Pads
from .spectral import COMPLEX_BYTES, spectrum_elems

__all__ = ["DEFAULT_MEMORY_BUDGET", "FFTPlan", "build_plan", "get_plan"]

#: Bytes of complex spectra one call may hold before the input is tiled.
DEFAULT_MEMORY_BUDGET = 1 << 30

#: Plans kept (least recently used ones are dropped beyond this).
PLAN_CACHE_SIZE = 256
_plans: collections.OrderedDict[tuple, FFTPlan] = collections.OrderedDict()
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class FFTPlan:
    """How one call is computed.

    Attributes:
        n: transform size.
        tiled: overlap-save tiles (else the whole implicitly padded input at once).
        shift: padding before each dim that the kernel wrap absorbs (whole-plane plans).
        out_len: the dense output span computed (see :class:`ConvGeometry`).
        tile_out: output size of one tile (tiled plans).
        counts: tiles per dim (tiled plans).
        pads: the zero padding added per chunk (tiled plans).
        chunk: batch items (or tiles) per chunk.
        cost: estimated seconds (:mod:`cnnconv.fft.cost`).
        budget: the memory budget the plan fits.
    """

    n: tuple[int, ...]
    tiled: bool
    shift: tuple[int, ...]
    out_len: tuple[int, ...]
    tile_out: tuple[int, ...] | None = None
    counts: tuple[int, ...] | None = None
    pads: Pads | None = None
    chunk: int = 1
    cost: float = 0.0
    budget: float = DEFAULT_MEMORY_BUDGET

    @property
    def items(self) -> int:
        """Transforms of the input per batch item (tiles, or 1)."""
        return math.prod(self.counts) if self.counts else 1

    def tiles(self) -> tuple[tuple[int, ...], tuple[int, ...], Pads]:
        """``(tile_out, counts, pads)`` of a tiled plan.

        Raises:
            ValueError: the plan is not tiled.
        """
        if self.tile_out is None or self.counts is None or self.pads is None:
            raise ValueError("the plan is not tiled")
        return self.tile_out, self.counts, self.pads

    def as_dict(self) -> dict[str, Any]:
        """The plan's main fields, for inspection."""
        return {
            "n": self.n,
            "tiled": self.tiled,
            "tile_out": self.tile_out,
            "counts": self.counts,
            "chunk": self.chunk,
            "cost": self.cost,
        }


def _item_bytes(cin: int, cout: int, n: Sequence[int], item: int) -> int:
    """Working bytes per batch item (or tile): input and output planes, spectra and the copies
    the transforms and the channel-mixing layout make (about four of each)."""
    return (cin + cout) * spectrum_elems(n) * item * 4


def _tile_candidates(k: int, n_full: int, nd: int = 2) -> list[int]:
    """Fast transform lengths for tiles along one dim (output tile = N - k + 1 >= k).

    Transforms of fewer than about 4096 points (64 per side in 2-D, 16 in 3-D) or 1024 points
    (1-D) run far below the ``P log P`` rate and cost Python overhead per tile, so tiles start
    there.
    """
    cands = []
    N = next_fast_len(max(2 * k, {1: 1024, 2: 64}.get(nd, 16)))
    while n_full > N:
        cands.append(N)
        N = next_fast_len(int(N * 1.2) + 1)
    return cands


def build_plan(geom: ConvGeometry, item: int, budget: float, consts: dict) -> FFTPlan:
    """The cheapest way (by :mod:`cnnconv.fft.cost`) to compute ``geom`` within ``budget``.

    Candidates: the whole (implicitly padded) input at one transform size, or overlap-save
    tiles of every size from about twice the kernel up. Tiles cut the kernel-spectrum work
    (``Cout * Cin/g`` transforms at the tile size instead of the image size) and memory, at the
    price of overlap. Batch items or tile rows are processed in chunks that fit ``budget``.
    ``item`` is the bytes of one complex value (8 or 16).
    """
    g = geom
    cout, cin_g = g.out_channels, g.cin_g

    def fit(n: Sequence[int]) -> tuple[bool, int, int]:
        kbytes = cout * cin_g * spectrum_elems(n) * item
        chunk = max(1, int((budget - kbytes) // max(1, _item_bytes(g.in_channels, cout, n, item))))
        return kbytes > budget // 2, kbytes, chunk

    n_u = g.whole_size
    over, kbytes, chunk = fit(n_u)
    cost = fft_cost(g.batch, g.in_channels, cout, cin_g, n_u, consts)
    shift = tuple(pb for pb, _ in g.pads)
    whole = FFTPlan(n_u, False, shift, g.out_len, chunk=chunk, cost=cost, budget=budget)
    options = [(over, kbytes, cost, whole)]
    per_dim = [_tile_candidates(k, next_fast_len(P), g.nd) for k, P in zip(g.kd, g.padded)]
    if all(per_dim):
        for combo in itertools.product(*per_dim):
            T = tuple(N - k + 1 for N, k in zip(combo, g.kd))
            counts = tuple(-(-L // t) for L, t in zip(g.out_len, T))
            over, kbytes, chunk = fit(combo)
            cost = tiled_cost(g.batch, g.in_channels, cout, cin_g, combo, T, math.prod(counts), consts)
            tiled = FFTPlan(combo, True, (0,) * g.nd, g.out_len, T, counts, g.pads, chunk, cost, budget)
            options.append((over, kbytes, cost, tiled))
    # Within budget: the cheapest; if nothing fits: the smallest kernel spectrum.
    best = min(options, key=lambda o: (o[0], o[1] if o[0] else o[2]))
    return best[3]


def get_plan(geom: ConvGeometry, item: int, budget: float, device_type: str) -> FFTPlan:
    """The plan for ``geom`` (:func:`build_plan` with ``device_type``'s constants), built on
    the first request and then kept (up to :data:`PLAN_CACHE_SIZE` plans, least recently used
    dropped first), keyed on everything it depends on."""
    consts = load_constants(device_type)
    key = (geom, item, budget, device_type, backend_name(), tuple(consts.get(k) for k in FFT_CONSTANTS))
    with _lock:  # threads may share the cache
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = build_plan(geom, item, budget, consts)
    with _lock:
        _plans[key] = plan
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan


def plan_for(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    memory_budget: float | None = None,
) -> dict[str, Any]:
    """The plan :func:`cnnconv.fft.fft_conv2d` (and its 1-D and 3-D siblings) would use for
    zero padding, as a dict (for inspection).

    Example:
        >>> plan_for(torch.empty(1, 1, 100), torch.empty(1, 1, 9), padding=4)["n"]
        (108,)
    """
    geom = ConvGeometry.from_shapes(input.shape, weight.shape, stride, padding, dilation, groups)
    item = COMPLEX_BYTES.get(input.dtype, 8)
    return get_plan(geom, item, memory_budget or DEFAULT_MEMORY_BUDGET, input.device.type).as_dict()
