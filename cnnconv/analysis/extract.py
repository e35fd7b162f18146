"""Read convolution weights from a model, a state dict or a checkpoint file.

Files are read with ``torch.load(weights_only=True)`` only (:func:`read_checkpoint`): a file that
would need arbitrary code to load is refused (:class:`InspectError`) and never executed, and only
regular files are opened. :func:`extract_kernels` finds the convolution weights in what was read.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
import stat
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnconv.analysis._common import MAX_WEIGHT_ELEMENTS, InspectError, _describe_type

__all__ = ["STATE_DICT_KEYS", "KernelRecord", "extract_kernels", "read_checkpoint"]

# Keys under which checkpoints commonly keep the model's state dict, in order of preference.
# cnnconv's own training checkpoints use "model".
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict", "model_state", "net", "network", "weights", "module")

_PARAMETRIZED = "parametrizations.weight.original"


@dataclass
class KernelRecord:
    """One convolution weight found by :func:`extract_kernels`.

    Attributes:
        name: module name (``"features.0"``; ``""`` for a bare convolution module).
        parameter: full parameter name (``"features.0.weight"``, or
            ``"conv.parametrizations.weight.original"`` for a parametrized weight in a state dict).
        shape: shape of the weight, ``(out, in/groups, kh, kw)`` or ``(out, in/groups, k)``
            (``(in, out/groups, ...)`` for transposed convolutions, as PyTorch stores them).
        weight: the weight tensor (detached). For a module with a parametrized weight this is the
            effective weight; from a state dict it is the stored unconstrained ``original`` (or
            the outer product of ``original0`` and ``original1``).
        module_type: class name of the module when extracted from a module, else ``None``.
        parametrized: whether the weight is registered through ``torch.nn.utils.parametrize``.
        note: for a parametrized weight read from a state dict, what the values are and how to
            get the constrained ones (see :func:`extract_kernels`); for a pixel-difference layer
            (:class:`cnnconv.pdc.PixelDifferenceConv2d`), that the values are its equivalent
            kernel; else ``None``.
    """

    name: str
    parameter: str
    shape: tuple
    weight: torch.Tensor = field(repr=False)
    module_type: str | None = None
    parametrized: bool = False
    note: str | None = None

    @property
    def label(self) -> str:
        """Name used in reports: the module name, or the parameter name for a root module."""
        return self.name or self.parameter

    @property
    def count(self) -> int:
        """Number of kernels, ``shape[0] * shape[1]`` (nothing is iterated)."""
        return self.shape[0] * self.shape[1]

    def kernels(self) -> Iterator[tuple[tuple[int, int], torch.Tensor]]:
        """Iterate lazily over ``(index, kernel)``, one view ``weight[out, in]`` per index.

        Kernels are 2-D ``(kh, kw)`` for ``Conv2d`` weights and 1-D ``(k,)`` for ``Conv1d``
        weights. Nothing is copied, so stopping early (``itertools.islice``) is cheap even for a
        weight of billions of kernels.
        """
        w = self.weight
        for o in range(w.shape[0]):
            for i in range(w.shape[1]):
                yield (o, i), w[o, i]

    def to_dict(self) -> dict:
        """Metadata as JSON-ready types (the weight itself is left out)."""
        return {
            "name": self.name,
            "parameter": self.parameter,
            "shape": list(self.shape),
            "module_type": self.module_type,
            "parametrized": self.parametrized,
            "note": self.note,
        }


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Read any checkpoint file for inspection, safely: ``torch.load(map_location="cpu", weights_only=True)``.

    Unlike :func:`cnnconv.training.load_checkpoint`, which restores a run's checksummed checkpoint
    into a model, this returns whatever plain tensors and containers the file holds.

    Args:
        path: file path (str or ``os.PathLike``).

    Returns:
        Whatever the file holds (a state dict, a dict checkpoint...).

    Raises:
        InspectError: the file is missing, is not a regular file (a directory, FIFO, socket or
            device is refused before it is opened), is not a PyTorch checkpoint, or would need
            arbitrary code to load (refused for safety; nothing from it is executed).

    Example:
        >>> import os, tempfile, torch
        >>> path = os.path.join(tempfile.mkdtemp(), "conv.pt")
        >>> torch.save(torch.nn.Conv2d(1, 2, 3).state_dict(), path)
        >>> sorted(read_checkpoint(path))
        ['bias', 'weight']
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {_describe_type(path)}")
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InspectError(f"checkpoint file does not exist: {path!r}") from None
    except OSError as exc:
        raise InspectError(f"cannot read checkpoint {path!r}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InspectError(f"checkpoint path is a directory, not a file: {path!r}")
    if not stat.S_ISREG(mode):
        raise InspectError(f"checkpoint path is not a regular file (a FIFO, socket or device): {path!r}")
    try:
        # Non-blocking, and checked again on the open file: a FIFO swapped in after the check
        # above neither blocks the open nor gets read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InspectError(f"cannot read checkpoint {path!r}: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InspectError(f"checkpoint path is not a regular file (a FIFO, socket or device): {path!r}")
        with warnings.catch_warnings():
            # The safe unpickler warns about pickle protocols it may not support; the error
            # below (if any) says all that matters.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the refused callable: "Unsupported global: GLOBAL io.open was not an
        # allowed global" or "Trying to load unsupported GLOBAL posix.system whose module ...".
        found = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        detail = f"GLOBAL {found.group(1)}" if found else ""
        if detail:
            raise InspectError(
                f"refused to load {path!r} for safety: it needs arbitrary code to unpickle "
                f"({detail}); it was not executed. Only plain tensors and containers are loaded "
                f"(torch.load with weights_only=True); save a state_dict instead of a pickled object"
            ) from None
        raise InspectError(
            f"refused to load {path!r}: not a checkpoint of plain tensors that the safe loader "
            f"(torch.load with weights_only=True) can read; it was not executed"
        ) from None
    except (EOFError, KeyError, RuntimeError, ValueError, UnicodeDecodeError, IndexError, AttributeError) as exc:
        reason = "the file is empty" if isinstance(exc, EOFError) else "it is not in torch.save format"
        raise InspectError(f"not a PyTorch checkpoint: {path!r} ({reason})") from None
    finally:
        handle.close()


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and any(isinstance(v, torch.Tensor) for v in obj.values())


def _candidate_state_dicts(obj, depth: int = 0, seen: set | None = None):
    """Mappings inside a checkpoint that may be the state dict, most likely first: the object
    itself, then the values under the usual keys, then any other mapping value (nested up to
    three levels, e.g. ``{"model": {"state_dict": ...}}``). Each mapping is visited once, even
    when the file refers to it from many places."""
    seen = set() if seen is None else seen
    if not isinstance(obj, Mapping) or depth > 3 or id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    keys = [k for k in STATE_DICT_KEYS if k in obj] + [k for k in obj if k not in STATE_DICT_KEYS]
    for key in keys:
        yield from _candidate_state_dicts(obj[key], depth + 1, seen)


def _records_from_checkpoint(obj, source: str) -> list[KernelRecord]:
    """Records of the first state dict in ``obj`` that holds convolution weights."""
    if not isinstance(obj, Mapping):
        raise InspectError(f"not a checkpoint: {source} holds a {_describe_type(obj)}, not a state dict or a dict")
    any_tensors = False
    for candidate in _candidate_state_dicts(obj):
        any_tensors = any_tensors or _is_state_dict(candidate)
        records = _records_from_state_dict(candidate)
        if records:
            return records
    if not any_tensors:
        raise InspectError(
            f"not a checkpoint: {source} is a dict with keys {sorted(map(str, obj))[:12]} but holds no "
            f"state dict of tensors (looked under {', '.join(STATE_DICT_KEYS)} and every other key)"
        )
    return []


def _module_prefix(key: str, suffix: str) -> str | None:
    """``"a.b"`` for ``key == "a.b." + suffix``, ``""`` for ``key == suffix``, else ``None``."""
    if key == suffix:
        return ""
    if key.endswith("." + suffix):
        return key[: -len(suffix) - 1]
    return None


# What a parametrized weight read from a state dict is, and how to see the constrained one.
_NOT_STORED = (
    "the constraints are code, which a state dict does not store: any other constraint on this "
    "weight (zero_sum, unit_norm, symmetric...) is not applied. To inspect the constrained kernels, "
    "pass the model itself, or save it with cnnconv.export_state_dict(model), which writes the "
    "effective weights"
)
_ORIGINAL_NOTE = "values are the stored UNCONSTRAINED original, not the layer's weight: " + _NOT_STORED
_FACTORS_NOTE = "values are the product of the stored rank-one factors{}; " + _NOT_STORED
_PDC_NOTE = (
    "values are the equivalent vanilla kernel of a pdc={pdc!r} layer (theta={theta}), the kernel it "
    "applies; its stored weight is the raw pixel-difference weight of shape {shape}"
)


def _rank_one_weight(sd: Mapping, prefix: str, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The kernels ``u v^T`` of two stored rank-one factors, with the zero-sum of cnnconv's
    ``rank_one`` constraint applied when its buffer ``0.zero_mean_column`` says which factor is
    made zero-mean (:class:`cnnconv.constraints.RankOne`)."""
    numel = u.shape[0] * u.shape[1] * u.shape[2] * v.shape[2]
    if numel > MAX_WEIGHT_ELEMENTS:
        raise InspectError(
            f"layer {prefix!r}: its rank-one factors {tuple(u.shape)} and {tuple(v.shape)} make a weight of "
            f"{numel} values, over the limit of {MAX_WEIGHT_ELEMENTS}"
        )
    column = sd.get((f"{prefix}." if prefix else "") + "parametrizations.weight.0.zero_mean_column")
    applied = ""
    if isinstance(column, torch.Tensor) and column.dtype == torch.bool and column.shape == u.shape[:2]:
        col = column.unsqueeze(-1)
        u = torch.where(col, u - u.mean(dim=-1, keepdim=True), u)
        v = torch.where(col, v, v - v.mean(dim=-1, keepdim=True))
        applied = " with the stored zero-sum choice of the rank_one constraint applied"
    return (u.unsqueeze(-1) * v.unsqueeze(-2)).detach(), _FACTORS_NOTE.format(applied)


def _records_from_state_dict(sd: Mapping) -> list[KernelRecord]:
    records = []
    for key, value in sd.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        if value.ndim in (3, 4):
            name = _module_prefix(key, _PARAMETRIZED)
            if name is not None:
                records.append(KernelRecord(name, key, tuple(value.shape), value.detach(), None, True, _ORIGINAL_NOTE))
                continue
            name = _module_prefix(key, "weight")
            if name is not None:
                records.append(KernelRecord(name, key, tuple(value.shape), value.detach(), None, False))
                continue
        # A weight parametrized by two tensors u (out, in, kh) and v (out, in, kw) (cnnconv's
        # rank-one constraint): the kernel is their outer product u v^T.
        name = _module_prefix(key, _PARAMETRIZED + "0")
        other = sd.get(key[:-1] + "1") if name is not None else None
        if (
            name is not None
            and isinstance(other, torch.Tensor)
            and value.ndim == 3
            and other.ndim == 3
            and other.is_floating_point()
            and value.shape[:2] == other.shape[:2]
        ):
            weight, note = _rank_one_weight(sd, name, value, other)
            records.append(KernelRecord(name, key[:-1] + "{0,1}", tuple(weight.shape), weight, None, True, note))
    return records


def _records_from_module(model: nn.Module) -> list[KernelRecord]:
    from torch.nn.utils import parametrize

    from cnnconv.pdc import PixelDifferenceConv2d

    records = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (parametrize.ParametrizationList, nn.ModuleDict)):
                continue
            note = None
            weight: Any
            try:
                if isinstance(module, PixelDifferenceConv2d):
                    weight = module.equivalent_weight()
                    note = _PDC_NOTE.format(pdc=module.pdc, theta=module.theta, shape=tuple(module.weight.shape))
                else:
                    weight = getattr(module, "weight", None)
            except Exception:  # a parametrization that cannot be evaluated (e.g. lazy modules)
                continue
            if not isinstance(weight, torch.Tensor) or isinstance(weight, nn.parameter.UninitializedParameter):
                continue
            if weight.ndim not in (3, 4) or not weight.is_floating_point():
                continue
            is_param = parametrize.is_parametrized(module, "weight")
            parameter = f"{name}.weight" if name else "weight"
            records.append(
                KernelRecord(
                    name, parameter, tuple(weight.shape), weight.detach(), type(module).__name__, is_param, note
                )
            )
    return records


def extract_kernels(obj: nn.Module | Mapping | str | os.PathLike, *, layer: str | None = None) -> list[KernelRecord]:
    """Every convolution weight of a model, a state dict or a checkpoint file.

    Convolution weights are the 3-D (``Conv1d``) and 4-D (``Conv2d``) ``weight`` tensors. For a
    module with a weight parametrized through ``torch.nn.utils.parametrize`` the effective
    ``module.weight`` is returned; in a state dict the stored
    ``<name>.parametrizations.weight.original`` is returned (the parametrization itself is code,
    which a state dict does not hold) and the record is flagged ``parametrized`` with a ``note``
    saying so; a weight stored as two factors ``original0`` ``(out, in, kh)`` and ``original1``
    ``(out, in, kw)`` (a rank-one parametrization) is rebuilt as their outer product, with the
    zero-sum of cnnconv's ``rank_one`` constraint applied when its stored ``zero_mean_column``
    buffer is present (the only constraint whose choice a state dict records). To see the
    constrained kernels exactly, pass the model itself, or save it with
    ``cnnconv.export_state_dict(model)``, which writes the effective weights. For a
    :class:`cnnconv.pdc.PixelDifferenceConv2d` in a module the record holds the equivalent
    vanilla kernel the layer applies (5x5 for ``pdc="rd"``), with a ``note`` saying so.

    Args:
        obj: an ``nn.Module``; a mapping of names to tensors (``state_dict``); or a path to a file
            saved with ``torch.save`` holding a state dict, or a dict with the state dict under
            ``model``, ``state_dict``, ``model_state_dict``... (cnnconv's checkpoints use ``model``).
        layer: keep only the layers whose module name or parameter name equals ``layer`` or
            matches it as a glob pattern (``"features.*"``).

    Returns:
        A list of :class:`KernelRecord`, in the model's order.

    Raises:
        InspectError: missing file, refused or unreadable file, no convolution weights, or no
            layer matching ``layer``.
        TypeError: ``obj`` is none of the accepted types.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
        >>> [(r.name, r.shape) for r in extract_kernels(model)]
        [('0', (8, 3, 5, 5)), ('2', (4, 8, 3, 3))]
    """
    if isinstance(obj, nn.Module):
        records = _records_from_module(obj)
        source = f"the {_describe_type(obj)} model"
    elif isinstance(obj, Mapping):
        records = _records_from_checkpoint(obj, "the mapping")
        source = "the state dict"
    elif isinstance(obj, (str, os.PathLike)):
        source = repr(os.fspath(obj))
        records = _records_from_checkpoint(read_checkpoint(obj), source)
    else:
        raise TypeError(
            f"obj must be an nn.Module, a state dict (mapping) or a checkpoint path, got {_describe_type(obj)}"
        )
    if not records:
        raise InspectError(f"no convolution kernels found in {source} (no 3-D or 4-D weight tensors)")
    if layer is not None:
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a string, got {_describe_type(layer)}")
        chosen = [
            r
            for r in records
            if layer in (r.name, r.parameter)
            or fnmatch.fnmatchcase(r.name, layer)
            or fnmatch.fnmatchcase(r.parameter, layer)
        ]
        if not chosen:
            names = ", ".join(r.label for r in records)
            raise InspectError(f"no convolution layer named {layer!r}; available: {names}")
        records = chosen
    return records
