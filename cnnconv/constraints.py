"""Kernel constraints that hold exactly after every optimizer step.

Each constraint is a :mod:`torch.nn.utils.parametrize` parametrization of a convolution weight
``(out, in, kh, kw)``: the optimizer updates an unconstrained tensor and the layer's ``weight`` is
recomputed from it, so the constraint holds (to floating-point rounding) at every step, not only
after a projection.

- ``zero_sum``: ``w - mean(w)`` per 2-D kernel: no response to flat regions.
- ``antisymmetric``: ``(w - rot180(w)) / 2`` per 2-D kernel: odd, ``w(-x) = -w(x)``.
- ``symmetric``: ``(w + rot180(w)) / 2`` per 2-D kernel: even, ``w(-x) = w(x)``.
- ``unit_norm``: ``w / ||w||_2`` per output filter ``w[o]`` (all of ``in, kh, kw``).
- ``rank_one``: ``u v^T`` per 2-D kernel from two learned vectors (a separable kernel).

A 2-D kernel is one ``(kh, kw)`` slice ``weight[o, i]``; zero-sum per slice makes the
response zero for any image that is constant in space, whatever its per-channel values.

``rank_one`` changes the parameters: the layer stores ``original0`` ``(out, in, kh)`` and
``original1`` ``(out, in, kw)``; its ``right_inverse`` takes the best rank-1 approximation
(largest singular value, split evenly between the two factors) of the weight it is given, so a
rank-1 kernel such as Sobel is kept as it is.

Combinations (:func:`constrain` orders them; any order of names gives the same result):

- ``zero_sum + antisymmetric`` / ``zero_sum + symmetric``: zero-sum is applied first, then the
  (anti)symmetrisation, which is exact; the sum stays zero to rounding. (An odd kernel sums to
  zero anyway.)
- ``zero_sum`` / ``symmetric`` / ``antisymmetric`` / ``rank_one`` then ``unit_norm``: the linear
  projection first, the normalisation last (scaling keeps the linear property, while the other
  order would break the unit norm).
- ``rank_one + zero_sum``: one factor of ``u v^T`` is made zero-mean, so ``sum(u v^T) =
  sum(u) sum(v) = 0`` while the kernel stays rank 1 (smoothing times derivative, like Sobel);
  see :class:`RankOne`.
- Refused with a ValueError: ``symmetric + antisymmetric`` (only the zero kernel), and
  ``rank_one`` with ``symmetric`` / ``antisymmetric`` (the projection of a rank-1 kernel is not
  rank 1).

``state_dict`` keys of a constrained layer are ``parametrizations.weight.original`` (or
``original0``/``original1``); :func:`remove_constraints` bakes the constrained weight back into a
plain ``weight`` so it loads into ``nn.Conv2d``, and :func:`export_state_dict` gives such a
checkpoint of a whole model without changing it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "CONSTRAINTS",
    "Antisymmetric",
    "RankOne",
    "Symmetric",
    "UnitNorm",
    "ZeroSum",
    "constrain",
    "constraint_names",
    "export_state_dict",
    "remove_constraints",
]


def _check_weight(w: torch.Tensor, name: str) -> None:
    if w.ndim < 3:
        raise ValueError(f"{name} needs a weight of shape (out, in, kh, kw), got shape {tuple(w.shape)}")


def _rot180(w: torch.Tensor) -> torch.Tensor:
    return torch.flip(w, dims=(-2, -1))


class ZeroSum(nn.Module):
    """Each ``(kh, kw)`` kernel minus its mean: sums to zero, so flat regions give no response.

    Example:
        >>> conv = nn.Conv2d(1, 2, 3)
        >>> _ = parametrize.register_parametrization(conv, "weight", ZeroSum())
        >>> bool(conv.weight.sum(dim=(-2, -1)).abs().max() < 1e-6)
        True
    """

    name = "zero_sum"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _check_weight(w, "ZeroSum")
        return w - w.mean(dim=(-2, -1), keepdim=True)

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        # Projection: assigning a zero-sum weight stores it unchanged.
        return w


class Antisymmetric(nn.Module):
    """Odd kernels: ``(w - rot180(w)) / 2``, so ``rot180(w) == -w`` exactly (and sum is 0)."""

    name = "antisymmetric"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _check_weight(w, "Antisymmetric")
        return (w - _rot180(w)) * 0.5

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w


class Symmetric(nn.Module):
    """Even kernels: ``(w + rot180(w)) / 2``, so ``rot180(w) == w`` exactly."""

    name = "symmetric"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _check_weight(w, "Symmetric")
        return (w + _rot180(w)) * 0.5

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w


class UnitNorm(nn.Module):
    """Each output filter ``w[o]`` (all of ``in, kh, kw``) divided by its L2 norm.

    Args:
        eps: floor on the norm, so an all-zero filter stays finite (it then stays zero).
    """

    name = "unit_norm"

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _check_weight(w, "UnitNorm")
        dims = tuple(range(1, w.ndim))
        norm = w.pow(2).sum(dim=dims, keepdim=True).sqrt().clamp_min(self.eps)
        return w / norm

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w


class RankOne(nn.Module):
    """Separable kernels ``u v^T``, one learned column ``u`` and row ``v`` per ``(kh, kw)`` slice.

    Args:
        zero_sum: also make every kernel sum to zero while staying rank 1, by making one
            factor zero-mean (``sum(u v^T) = sum(u) sum(v)``). Which factor is chosen per kernel
            when a weight is assigned (at registration): the one whose mean is smaller relative
            to its norm, so Sobel x (derivative along the row factor) and Sobel y (along the
            column factor) are both kept exactly. The choice is stored in the buffer
            ``zero_mean_column`` ``(out, in)``.

    The parametrization stores two tensors: ``original0 = u`` of shape ``(out, in, kh)`` and
    ``original1 = v`` of shape ``(out, in, kw)``. Assigning a weight (including at registration)
    stores its best rank-1 approximation, computed by SVD, with the largest singular value split
    evenly between the two factors. With ``zero_sum`` the stored factors are not themselves
    zero-mean (training moves them freely); the mean is removed in ``forward``, so read kernels
    from ``module.weight``, not from the outer product of the stored factors.
    """

    name = "rank_one"

    def __init__(self, zero_sum: bool = False) -> None:
        super().__init__()
        self.zero_sum = bool(zero_sum)
        self.register_buffer("zero_mean_column", torch.zeros(0, dtype=torch.bool))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.zero_sum:
            col = self.zero_mean_column.unsqueeze(-1)
            u = torch.where(col, u - u.mean(dim=-1, keepdim=True), u)
            v = torch.where(col, v, v - v.mean(dim=-1, keepdim=True))
        return u.unsqueeze(-1) * v.unsqueeze(-2)

    def right_inverse(self, w: torch.Tensor):
        _check_weight(w, "RankOne")
        U, S, Vh = torch.linalg.svd(w.detach().to(torch.float64), full_matrices=False)
        root = S[..., 0].sqrt().unsqueeze(-1)
        u = U[..., :, 0] * root
        v = Vh[..., 0, :] * root
        if self.zero_sum:
            # Zero-mean the factor that is closer to zero-mean already (relative to its norm).
            ru = u.mean(-1).abs() / u.norm(dim=-1).clamp_min(1e-300)
            rv = v.mean(-1).abs() / v.norm(dim=-1).clamp_min(1e-300)
            self.zero_mean_column = (ru <= rv).to(w.device)
        return u.to(w.dtype), v.to(w.dtype)


CONSTRAINTS = {
    "rank_one": RankOne,
    "symmetric": Symmetric,
    "antisymmetric": Antisymmetric,
    "zero_sum": ZeroSum,
    "unit_norm": UnitNorm,
}
# Applied in this order: linear projections first, normalisation last.
# zero_sum before (anti)symmetric, so the exact symmetry is the last linear step (the sum of a
# symmetrised zero-sum kernel stays zero up to rounding, while the other order would not keep
# rot180(w) == -w bit for bit).
_ORDER = ("rank_one", "zero_sum", "symmetric", "antisymmetric", "unit_norm")


def _normalise_names(names) -> list[str]:
    out = []
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"constraint names must be strings, got {type(n).__name__}: {n!r}")
        key = n.lower().replace("-", "_")
        if key not in CONSTRAINTS:
            raise ValueError(f"unknown constraint, got {n!r}; known: {', '.join(_ORDER)}")
        if key not in out:
            out.append(key)
    return out


def constrain(module: nn.Module, *names: str, tensor_name: str = "weight") -> nn.Module:
    """Add constraints to ``module.<tensor_name>`` (a conv weight ``(out, in, kh, kw)``).

    The current weight is projected onto the constraint set (for ``rank_one``: its best rank-1
    approximation). Afterwards the optimizer trains unconstrained originals and
    ``module.weight`` satisfies every constraint to floating-point rounding.

    Args:
        module: a convolution (``nn.Conv2d``, :class:`cnnconv.learnable.LearnableConv2d`, ...).
        *names: any of ``"zero_sum"``, ``"antisymmetric"``, ``"symmetric"``, ``"unit_norm"``,
            ``"rank_one"`` (order does not matter; see the module docstring for combinations).
        tensor_name: the parameter to constrain.

    Returns:
        ``module`` (changed in place).

    Raises:
        ValueError: unknown name, a combination that makes no sense, or a tensor that is
            already constrained.

    Example:
        >>> conv = constrain(nn.Conv2d(1, 4, 3), "zero_sum", "unit_norm")
        >>> constraint_names(conv)
        ['zero_sum', 'unit_norm']
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if not names:
        raise ValueError("constrain needs at least one constraint name, got none")
    keys = _normalise_names(names)
    if "symmetric" in keys and "antisymmetric" in keys:
        raise ValueError("symmetric and antisymmetric together leave only the zero kernel, got both")
    if "rank_one" in keys and ({"symmetric", "antisymmetric"} & set(keys)):
        raise ValueError(f"rank_one cannot be combined with symmetric/antisymmetric, got {keys}")
    if parametrize.is_parametrized(module, tensor_name):
        raise ValueError(
            f"{tensor_name!r} already has constraints {constraint_names(module, tensor_name)}; "
            "call remove_constraints first"
        )
    w = getattr(module, tensor_name, None)
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        shape = None if not isinstance(w, torch.Tensor) else tuple(w.shape)
        raise ValueError(f"{tensor_name!r} must be a 4-D conv weight, got shape {shape}")

    ordered = [k for k in _ORDER if k in keys]
    mods: list[nn.Module] = []
    if "rank_one" in ordered:
        # rank_one + zero_sum is one parametrization: a zero-mean column factor keeps rank 1.
        mods.append(RankOne(zero_sum="zero_sum" in ordered))
        ordered = [k for k in ordered if k not in ("rank_one", "zero_sum")]
    mods += [CONSTRAINTS[k]() for k in ordered]
    for m in mods:
        parametrize.register_parametrization(module, tensor_name, m)
    return module


def constraint_names(module: nn.Module, tensor_name: str = "weight") -> list[str]:
    """Names of the constraints on ``module.<tensor_name>``, in the order they are applied."""
    if not parametrize.is_parametrized(module, tensor_name):
        return []
    out = []
    parametrizations = module.parametrizations
    assert isinstance(parametrizations, nn.ModuleDict)
    chain = parametrizations[tensor_name]
    assert isinstance(chain, nn.ModuleList)  # a ParametrizationList
    for p in chain:
        name = getattr(p, "name", type(p).__name__)
        if isinstance(p, RankOne) and p.zero_sum:
            out += ["rank_one", "zero_sum"]
        else:
            out.append(name)
    return out


def remove_constraints(module: nn.Module, tensor_name: str = "weight") -> nn.Module:
    """Remove the constraints, keeping the current constrained value as a plain parameter.

    After this the ``state_dict`` has a plain ``weight`` again (loadable into ``nn.Conv2d``).

    Args:
        module: a module changed by :func:`constrain`.
        tensor_name: the constrained parameter.

    Returns:
        ``module`` (changed in place).
    """
    if not parametrize.is_parametrized(module, tensor_name):
        raise ValueError(f"{tensor_name!r} of {type(module).__name__} has no constraints to remove")
    parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
    return module


def export_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A ``state_dict`` of ``model`` with every parametrized tensor baked to its current value.

    Each parametrization (the constraints of :func:`constrain`, or any other
    ``torch.nn.utils.parametrize`` parametrization such as ``weight_norm``) is replaced by the
    value it computes, under the plain name: ``first.weight`` instead of
    ``first.parametrizations.weight.original`` (and the parametrization's own buffers, such as
    :class:`RankOne`'s ``zero_mean_column``, are left out). The result loads with
    ``strict=True`` into the same architecture built from plain ``nn.Conv2d`` layers (the
    original model, or this one after :func:`remove_constraints`). The model is not changed.

    Args:
        model: any module.

    Returns:
        A new ``OrderedDict`` of detached tensors, as ``model.state_dict()`` returns.

    Example:
        >>> net = nn.Sequential(constrain(nn.Conv2d(1, 2, 3), "zero_sum"))
        >>> sd = export_state_dict(net)
        >>> list(sd)
        ['0.bias', '0.weight']
        >>> nn.Sequential(nn.Conv2d(1, 2, 3)).load_state_dict(sd)
        <All keys matched successfully>
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    # prefix of a parametrized module's parametrizations -> {plain key: baked value}
    baked = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if parametrize.is_parametrized(module):
                prefix = f"{name}." if name else ""
                baked[f"{prefix}parametrizations."] = {
                    prefix + t: getattr(module, t).detach() for t in module.parametrizations
                }
    state = model.state_dict()
    out = OrderedDict()
    for key, value in state.items():
        group = next((p for p in baked if key.startswith(p)), None)
        if group is None:
            out[key] = value
        else:
            # The baked values take the place of the group's first key (re-inserting them for
            # the group's other keys keeps that place).
            out.update(baked[group])
    out._metadata = state._metadata  # type: ignore[attr-defined]  # module versions, as load_state_dict reads them
    return out
