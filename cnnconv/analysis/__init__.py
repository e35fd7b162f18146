"""Look into convolution kernels: extract them, describe them, match them to hand-designed ones.

Three steps, each usable on its own:

- :func:`extract_kernels` reads every convolution weight from an ``nn.Module``, a ``state_dict``
  or a checkpoint file. Files are read with ``torch.load(weights_only=True)`` only: a file that
  would need arbitrary code to load is refused (:class:`InspectError`) and never executed.
- :func:`describe_kernel` measures one 2-D kernel: DC gain, L2 norm, symmetry, separability,
  dominant orientation, peak spatial frequency and the frequency response on a grid; or one 1-D
  kernel: DC gain, L2 norm, symmetry, decay (lengths holding 90%/99% of the energy, fitted
  exponential rate), one-sidedness and bandwidth.
- :func:`match_kernel` finds the nearest kernels of the hand-designed bank
  (:mod:`cnnconv.kernels`) under scale, sign, the eight 90-degree rotations and flips
  (the convolution flip among them), and fits sigma for Gaussian-family kernels;
  :func:`fit_kernel` fits continuous families (a Gaussian derivative at any orientation and
  scale, a steered second derivative, a Gabor), and match_kernel reports the best of them too.

Limits (checked on shapes, before any value is read or copied, so that a small crafted file
describing a huge tensor costs nothing):

- 2-D kernels at most :data:`MAX_KERNEL_SIDE` (256) on each side, 1-D kernels at most
  :data:`MAX_KERNEL_LENGTH` (2**22) taps; larger ones are refused with a ValueError.
- :data:`MAX_KERNELS` (4096): the most kernels ``cnnconv inspect`` describes in one run.
- A weight stored as two rank-one factors is multiplied out only up to
  :data:`MAX_WEIGHT_ELEMENTS` (2**28) values.
- Only regular files are read (a FIFO or a device would block or never end).

Conventions:

- Axes follow :mod:`cnnconv.kernels`: +x is +column (rightwards), +y is +row (downwards).
- Orientation is the direction, in degrees in ``[0, 180)``, of the intensity change the kernel
  responds to most (the edge *normal*), measured from +x towards +y. ``sobel_x`` is 0,
  ``sobel_y`` is 90, and ``cos(t) * gaussian_dx + sin(t) * gaussian_dy`` is ``t``.
- A match's ``transform`` says how to obtain the kernel from the bank kernel:
  ``kernel ~= scale * transform(bank_kernel)`` with ``scale > 0``.

Example:
    >>> import torch
    >>> from cnnconv import kernels
    >>> from cnnconv.analysis import match_kernel
    >>> best = match_kernel(torch.rot90(kernels.sobel_x(), 2))[0]
    >>> best.name, best.transform, round(best.similarity, 6)
    ('sobel_x', 'conv_flip', 1.0)
"""

from __future__ import annotations

import fnmatch
import math
import os
import pickle
import re
import stat
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

__all__ = [
    "InspectError",
    "KernelRecord",
    "KernelDescription",
    "KernelDescription1d",
    "KernelMatch",
    "TRANSFORMS",
    "BANK_1D",
    "MAX_KERNEL_SIDE",
    "MAX_KERNEL_LENGTH",
    "MAX_KERNELS",
    "MAX_WEIGHT_ELEMENTS",
    "kernel_size_error",
    "apply_transform",
    "load_checkpoint",
    "extract_kernels",
    "frequency_response",
    "describe_kernel",
    "match_kernel",
    "FIT_FAMILIES",
    "MAX_FIT_SIDE",
    "KernelFit",
    "fit_kernel",
]


class InspectError(ValueError):
    """A file, checkpoint or model cannot be inspected (missing, refused, no convolutions...)."""


# --------------------------------------------------------------------------- extraction

# Keys under which checkpoints commonly keep the model's state dict, in order of preference.
# cnnconv's own training checkpoints use "model".
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict", "model_state", "net", "network", "weights", "module")

_PARAMETRIZED = "parametrizations.weight.original"

MAX_KERNEL_SIDE = 256  # largest side of a 2-D kernel that is described or matched
MAX_KERNEL_LENGTH = 2**22  # longest 1-D kernel that is described or matched
MAX_KERNELS = 4096  # most kernels the command line inspects in one run
MAX_WEIGHT_ELEMENTS = 2**28  # largest weight rebuilt from two rank-one factors


def kernel_size_error(shape) -> str | None:
    """Why a kernel of ``shape`` (1-D ``(k,)`` or 2-D ``(kh, kw)``) cannot be inspected, or ``None``.

    Only the shape is looked at, so a huge tensor is refused before anything is computed.

    Example:
        >>> kernel_size_error((3, 3)) is None, kernel_size_error((60000, 60000))
        (True, 'kernel of 60000x60000 is over the size limit of 256x256 for 2-D kernels')
    """
    dims = "x".join(map(str, shape))
    if any(n == 0 for n in shape):
        return f"kernel of {dims} is empty"
    if len(shape) == 1 and shape[0] > MAX_KERNEL_LENGTH:
        return f"kernel of {dims} taps is over the size limit of {MAX_KERNEL_LENGTH} taps for 1-D kernels"
    if len(shape) == 2 and max(shape) > MAX_KERNEL_SIDE:
        return f"kernel of {dims} is over the size limit of {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} for 2-D kernels"
    return None


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

    def kernels(self):
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


def _describe_type(obj) -> str:
    return type(obj).__name__


def load_checkpoint(path) -> Any:
    """Load a checkpoint file safely with ``torch.load(map_location="cpu", weights_only=True)``.

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
        >>> sorted(load_checkpoint(path))
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
            isinstance(other, torch.Tensor)
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
            if isinstance(module, parametrize.ParametrizationList) or isinstance(module, nn.ModuleDict):
                continue
            note = None
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
                KernelRecord(name, parameter, tuple(weight.shape), weight.detach(), type(module).__name__, is_param, note)
            )
    return records


def extract_kernels(obj, *, layer: str | None = None) -> list[KernelRecord]:
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
        records = _records_from_checkpoint(load_checkpoint(obj), source)
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
            if layer in (r.name, r.parameter) or fnmatch.fnmatchcase(r.name, layer) or fnmatch.fnmatchcase(r.parameter, layer)
        ]
        if not chosen:
            names = ", ".join(r.label for r in records)
            raise InspectError(f"no convolution layer named {layer!r}; available: {names}")
        records = chosen
    return records


# --------------------------------------------------------------------------- description


def _as_kernel(k, name: str = "kernel", allow_1d: bool = False) -> torch.Tensor:
    """Validate a kernel and return it as a detached float64 tensor on its own device: 1-D when
    given 1-D and ``allow_1d``, else 2-D (a 1-D kernel read as ``(1, k)``). The size limits are
    checked on the shape, before anything is converted."""
    if not isinstance(k, torch.Tensor):
        try:
            k = torch.as_tensor(k)
        except Exception:
            raise TypeError(f"{name} must be a tensor or array, got {_describe_type(k)}") from None
    if k.ndim == 1 and not allow_1d:
        k = k.unsqueeze(0)
    if k.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be a 2-D kernel (kh, kw) or 1-D (k,), got shape {tuple(k.shape)}; "
            f"index a weight as weight[out, in]"
        )
    problem = kernel_size_error(tuple(k.shape))
    if problem:
        raise ValueError(f"{name} cannot be inspected: {problem}")
    if k.is_complex() or k.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {k.dtype}")
    k = k.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    return k


def frequency_response(k, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Magnitude of the kernel's frequency response on a ``size x size`` grid.

    The kernel is zero-padded to ``size x size`` and transformed; the magnitude is the same for
    correlation and convolution. The result is centred (``fftshift``): the zero frequency is at
    index ``size // 2``.

    Args:
        k: kernel ``(kh, kw)``.
        size: grid size, at least the kernel's largest side.

    Returns:
        ``(magnitude, frequencies)``: ``magnitude`` of shape ``(size, size)`` indexed
        ``[fy, fx]`` and ``frequencies`` of shape ``(size,)`` in cycles/pixel, from -0.5.

    Example:
        >>> from cnnconv import kernels
        >>> mag, f = frequency_response(kernels.box(3), size=8)
        >>> round(float(mag[4, 4]), 6)  # DC gain of a normalised box
        1.0
    """
    k = _as_kernel(k)
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < max(k.shape):
        raise ValueError(f"size must be at least the kernel size {max(k.shape)}, got {size}")
    spectrum = torch.fft.fft2(k, s=(size, size))
    mag = torch.fft.fftshift(spectrum.abs())
    freqs = torch.fft.fftshift(torch.fft.fftfreq(size, dtype=torch.float64, device=k.device))
    return mag, freqs


@dataclass
class KernelDescription:
    """Properties of one kernel, from :func:`describe_kernel`.

    Attributes:
        shape: ``(kh, kw)``.
        dc_gain: sum of the weights (response to a constant image).
        l2_norm: Euclidean norm of the weights.
        symmetry: share of the energy in the part even under the 180-degree rotation, in [0, 1].
        antisymmetry: share in the odd part; ``symmetry + antisymmetry == 1``.
        separability: share of the energy in the first singular value (1 for rank 1).
        orientation: degrees in [0, 180) from +x towards +y (rows, downwards) of the intensity
            change the kernel responds to most; ``nan`` when isotropic.
        orientation_strength: coherence ``(l1 - l2) / (l1 + l2)`` of the spectral energy tensor,
            in [0, 1]: 0 isotropic, 1 a single direction; a first derivative of Gaussian gives 0.5
            (its spectral energy is three times larger along its axis than across).
        peak_frequency: radius in cycles/pixel of the largest frequency-response magnitude.
        peak_frequency_xy: ``(fx, fy)`` of that peak (one of the two symmetric peaks).
        peak_gain: the largest frequency-response magnitude.
        frequency_response: ``(n, n)`` magnitude, centred (see :func:`frequency_response`).
        frequencies: ``(n,)`` frequencies in cycles/pixel of the response's axes.
    """

    shape: tuple
    dc_gain: float
    l2_norm: float
    symmetry: float
    antisymmetry: float
    separability: float
    orientation: float
    orientation_strength: float
    peak_frequency: float
    peak_frequency_xy: tuple
    peak_gain: float
    frequency_response: torch.Tensor = field(repr=False)
    frequencies: torch.Tensor = field(repr=False)

    def to_dict(self, include_response: bool = False) -> dict:
        """Properties as JSON-ready Python types (``nan`` becomes ``None``).

        Args:
            include_response: also include the frequency response grid and its frequencies.
        """

        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        out = {
            "shape": list(self.shape),
            "dc_gain": self.dc_gain,
            "l2_norm": self.l2_norm,
            "symmetry": clean(self.symmetry),
            "antisymmetry": clean(self.antisymmetry),
            "separability": clean(self.separability),
            "orientation": clean(self.orientation),
            "orientation_strength": clean(self.orientation_strength),
            "peak_frequency": self.peak_frequency,
            "peak_frequency_xy": list(self.peak_frequency_xy),
            "peak_gain": self.peak_gain,
        }
        if include_response:
            out["frequency_response"] = self.frequency_response.cpu().tolist()
            out["frequencies"] = self.frequencies.cpu().tolist()
        return out


@dataclass
class KernelDescription1d:
    """Properties of one 1-D kernel ``(k,)``, from :func:`describe_kernel`.

    Attributes:
        shape: ``(k,)``.
        dc_gain: sum of the taps (response to a constant signal).
        l2_norm: Euclidean norm of the taps.
        symmetry: share of the energy in the part even under reversal, in [0, 1].
        antisymmetry: share in the odd part; ``symmetry + antisymmetry == 1``.
        length_90: taps in the shortest run of consecutive taps holding 90% of the energy.
        length_99: the same for 99%.
        decay_rate: fitted exponential decay rate per tap ``r``, ``|k| ~ exp(-r t)``, measured
            from the largest tap outwards along the side holding more energy (the slope of the
            log of the remaining energy, between 90% and 0.01% of that side's energy); ``nan``
            when fewer than three taps fall in that range.
        side_balance: ``(E_after - E_before) / E`` of the energy after and before the centre,
            in [-1, 1]: near +1 or -1 for a one-sided (causal) kernel, 0 for a balanced one.
        bandwidth_3db: total width in cycles/sample of the frequencies in ``[0, 0.5]`` where the
            magnitude response is within 3 dB of its peak.
        bandwidth_90: the frequency in cycles/sample below which 90% of the spectral energy lies.
        peak_frequency: frequency in cycles/sample of the largest magnitude (the lowest on ties).
        peak_gain: the largest magnitude.
        frequency_response: ``(n // 2 + 1,)`` magnitude on ``n`` zero-padded FFT points.
        frequencies: ``(n // 2 + 1,)`` frequencies in cycles/sample, from 0 to 0.5.
    """

    shape: tuple
    dc_gain: float
    l2_norm: float
    symmetry: float
    antisymmetry: float
    length_90: int
    length_99: int
    decay_rate: float
    side_balance: float
    bandwidth_3db: float
    bandwidth_90: float
    peak_frequency: float
    peak_gain: float
    frequency_response: torch.Tensor = field(repr=False)
    frequencies: torch.Tensor = field(repr=False)

    def to_dict(self, include_response: bool = False) -> dict:
        """Properties as JSON-ready Python types (``nan`` becomes ``None``).

        Args:
            include_response: also include the frequency response and its frequencies.
        """
        out = {}
        for name in (
            "dc_gain", "l2_norm", "symmetry", "antisymmetry", "length_90", "length_99", "decay_rate",
            "side_balance", "bandwidth_3db", "bandwidth_90", "peak_frequency", "peak_gain",
        ):
            v = getattr(self, name)
            out[name] = None if isinstance(v, float) and not math.isfinite(v) else v
        out = {"shape": list(self.shape), **out}
        if include_response:
            out["frequency_response"] = self.frequency_response.cpu().tolist()
            out["frequencies"] = self.frequencies.cpu().tolist()
        return out


def _shortest_window(energy: torch.Tensor, fraction: float) -> int:
    """Taps in the shortest run of consecutive taps holding ``fraction`` of the energy."""
    cum = torch.cat([energy.new_zeros(1), torch.cumsum(energy, 0)])
    total = float(cum[-1])
    starts = cum[:-1]
    ok = starts + fraction * total <= total * (1 + 1e-12)
    ends = torch.searchsorted(cum, (starts[ok] + fraction * total * (1 - 1e-12)).contiguous())
    return int((ends - torch.nonzero(ok).squeeze(-1)).min())


def _decay_rate(k: torch.Tensor) -> float:
    peak = int(torch.argmax(k.abs()))
    after, before = k[peak:], k[: peak + 1].flip(0)
    side = after if float((after * after).sum()) >= float((before * before).sum()) else before
    energy = side * side
    remaining = torch.flip(torch.cumsum(torch.flip(energy, (0,)), 0), (0,)) / energy.sum()
    t = torch.nonzero((remaining <= 0.9) & (remaining >= 1e-4)).squeeze(-1)
    if t.numel() < 3:
        return float("nan")
    x = t.to(torch.float64)
    y = torch.log(remaining[t])
    x0 = x - x.mean()
    slope = float((x0 * (y - y.mean())).sum() / (x0 * x0).sum())
    return -0.5 * slope


def _describe_1d(k: torch.Tensor, grid: int) -> KernelDescription1d:
    n = k.numel()
    energy = k * k
    total = float(energy.sum())
    nan = float("nan")
    flipped = k.flip(0)
    even, odd = 0.5 * (k + flipped), 0.5 * (k - flipped)
    size = max(grid, n)
    mag = torch.fft.rfft(k, n=size).abs()
    freqs = torch.fft.rfftfreq(size, dtype=torch.float64, device=k.device)
    peak_gain = float(mag.max())
    peak = int(torch.nonzero(mag >= peak_gain * (1.0 - 1e-9))[0])
    if total > 0:
        half = n // 2
        before, after = float(energy[:half].sum()), float(energy[n - half :].sum())
        power = mag * mag
        # Bins 0 and size/2 stand for one frequency each, the others for a pair (f and -f).
        weight = torch.full_like(power, 2.0)
        weight[0] = 1.0
        if size % 2 == 0:
            weight[-1] = 1.0
        spectral = torch.cumsum(power * weight, 0)
        bandwidth_90 = float(freqs[int(torch.searchsorted(spectral, 0.9 * float(spectral[-1])))])
        bandwidth_3db = float((mag >= peak_gain / math.sqrt(2.0)).sum()) / size
        symmetry = float((even * even).sum()) / total
        antisymmetry = float((odd * odd).sum()) / total
        stats = dict(
            symmetry=symmetry, antisymmetry=antisymmetry, length_90=_shortest_window(energy, 0.9),
            length_99=_shortest_window(energy, 0.99), decay_rate=_decay_rate(k),
            side_balance=(after - before) / total, bandwidth_3db=bandwidth_3db, bandwidth_90=bandwidth_90,
        )
    else:
        stats = dict(
            symmetry=nan, antisymmetry=nan, length_90=0, length_99=0, decay_rate=nan, side_balance=nan,
            bandwidth_3db=nan, bandwidth_90=nan,
        )
    return KernelDescription1d(
        shape=(n,), dc_gain=float(k.sum()), l2_norm=math.sqrt(total), **stats,
        peak_frequency=float(freqs[peak]), peak_gain=peak_gain, frequency_response=mag, frequencies=freqs,
    )


def describe_kernel(k, *, grid: int = 64) -> KernelDescription | KernelDescription1d:
    """Measure the properties of a 2-D kernel.

    Symmetry scores split the kernel into its part even and odd under the 180-degree rotation
    (``e = (k + rot180(k)) / 2``, ``o = (k - rot180(k)) / 2``; they are orthogonal) and report
    each part's share of the energy. Orientation is the principal axis of the spectral energy
    tensor ``sum |H(f)|^2 f f^T`` over the frequency grid (``f = (fx, fy)``, fy downwards), so
    ``sobel_x`` is 0 degrees and ``sobel_y`` 90.

    A 1-D kernel ``(k,)`` gets a :class:`KernelDescription1d` instead, computed in 1-D (memory
    and time linear in ``k`` up to a log factor).

    Args:
        k: kernel ``(kh, kw)`` or ``(k,)``, any device.
        grid: size of the zero-padded frequency grid (at least the kernel's largest side).

    Returns:
        A :class:`KernelDescription` (2-D) or :class:`KernelDescription1d` (1-D). For an
        all-zero kernel the scores are ``nan``.

    Raises:
        ValueError: not 1-D or 2-D, empty, over the size limits, or not finite.

    Example:
        >>> from cnnconv import kernels
        >>> d = describe_kernel(kernels.sobel_x())
        >>> d.dc_gain, round(d.antisymmetry, 6), round(d.separability, 6), round(d.orientation, 6)
        (0.0, 1.0, 1.0, 0.0)
    """
    k = _as_kernel(k, allow_1d=True)
    if isinstance(grid, bool) or not isinstance(grid, int):
        raise TypeError(f"grid must be an int, got {grid!r}")
    if k.ndim == 1:
        return _describe_1d(k, grid)
    grid = max(grid, max(k.shape))
    energy = float((k * k).sum())
    nan = float("nan")
    flipped = torch.rot90(k, 2, (0, 1))
    even = 0.5 * (k + flipped)
    odd = 0.5 * (k - flipped)
    if energy > 0:
        symmetry = float((even * even).sum()) / energy
        antisymmetry = float((odd * odd).sum()) / energy
        s = torch.linalg.svdvals(k)
        separability = float(s[0] ** 2 / (s * s).sum())
    else:
        symmetry = antisymmetry = separability = nan

    mag, freqs = frequency_response(k, grid)
    fy, fx = torch.meshgrid(freqs, freqs, indexing="ij")
    power = mag * mag
    jxx = float((power * fx * fx).sum())
    jyy = float((power * fy * fy).sum())
    # On an even grid the Nyquist frequency -0.5 is also +0.5: its cross term averages to zero,
    # which keeps the estimate exactly consistent under flips and transposes.
    nyquist = (fx.abs() == 0.5) | (fy.abs() == 0.5)
    jxy = float(torch.where(nyquist, 0.0, power * fx * fy).sum())
    trace = jxx + jyy
    spread = math.hypot(jxx - jyy, 2.0 * jxy)
    if trace > 0 and spread > 1e-6 * trace:
        orientation = math.degrees(0.5 * math.atan2(2.0 * jxy, jxx - jyy)) % 180.0
        # A value a hair below 180 is the same axis as 0.
        if orientation > 180.0 - 1e-9:
            orientation = 0.0
        strength = spread / trace
    else:
        orientation = nan
        strength = 0.0 if energy > 0 else nan

    # Peak: the largest magnitude; among (near) ties prefer the lowest frequency, then fx >= 0, fy >= 0.
    peak_gain = float(mag.max())
    radius = torch.sqrt(fx * fx + fy * fy)
    candidates = mag >= peak_gain * (1.0 - 1e-9)
    key = torch.where(candidates, radius - 1e-6 * ((fx >= 0).double() + (fy >= 0).double()), torch.inf)
    idx = int(torch.argmin(key))
    iy, ix = divmod(idx, grid)
    pfx, pfy = float(freqs[ix]), float(freqs[iy])

    return KernelDescription(
        shape=tuple(k.shape),
        dc_gain=float(k.sum()),
        l2_norm=math.sqrt(energy),
        symmetry=symmetry,
        antisymmetry=antisymmetry,
        separability=separability,
        orientation=orientation,
        orientation_strength=strength,
        peak_frequency=math.hypot(pfx, pfy),
        peak_frequency_xy=(pfx, pfy),
        peak_gain=peak_gain,
        frequency_response=mag,
        frequencies=freqs,
    )


# --------------------------------------------------------------------------- matching

# The eight symmetries of the square on the last two axes (rows, columns). Rotations are
# counter-clockwise as displayed (row 0 on top), like numpy.rot90 and torch.rot90.
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda t: t,
    "conv_flip": lambda t: torch.rot90(t, 2, (-2, -1)),
    "flip_lr": lambda t: torch.flip(t, (-1,)),
    "flip_ud": lambda t: torch.flip(t, (-2,)),
    "transpose": lambda t: t.transpose(-2, -1),
    "anti_transpose": lambda t: torch.rot90(t, 2, (-2, -1)).transpose(-2, -1),
    "rot90": lambda t: torch.rot90(t, 1, (-2, -1)),
    "rot270": lambda t: torch.rot90(t, 3, (-2, -1)),
}
_INVERSE = {name: name for name in TRANSFORMS} | {"rot90": "rot270", "rot270": "rot90"}

# Priority among descriptions that fit equally well (lower first): the identity, then the
# convolution flip (the usual reason for a learned kernel to be a rotated copy: a layer written
# for convolution instead of correlation), then a plain sign change, then mirror flips, transposes
# and quarter turns; a geometric transform combined with a sign change comes after all of them.
_GEOMETRIC_ORDER = ["identity", "conv_flip", "flip_lr", "flip_ud", "transpose", "anti_transpose", "rot90", "rot270"]


def _transform_name(geometric: str, negated: bool) -> str:
    if not negated:
        return geometric
    return "negated" if geometric == "identity" else f"{geometric}+negated"


def _transform_priority(geometric: str, negated: bool) -> int:
    if geometric == "identity":
        return 2 if negated else 0
    if geometric == "conv_flip" and not negated:
        return 1
    rank = _GEOMETRIC_ORDER.index(geometric)
    return 2 + rank + (len(_GEOMETRIC_ORDER) if negated else 0)


def apply_transform(k: torch.Tensor, transform: str) -> torch.Tensor:
    """Apply a transform name reported by :func:`match_kernel` to a kernel.

    Args:
        k: tensor ``(..., kh, kw)``, or a 1-D kernel ``(k,)`` (``conv_flip`` reverses it).
        transform: ``"identity"``, ``"conv_flip"``, ``"flip_lr"``, ``"flip_ud"``, ``"transpose"``,
            ``"anti_transpose"``, ``"rot90"``, ``"rot270"``, ``"negated"``, or
            ``"<geometric>+negated"``.

    Returns:
        The transformed tensor.

    Example:
        >>> from cnnconv import kernels
        >>> torch.equal(apply_transform(kernels.sobel_x(), "conv_flip"), -kernels.sobel_x())
        True
    """
    if not isinstance(transform, str):
        raise TypeError(f"transform must be a string, got {transform!r}")
    negated = transform == "negated" or transform.endswith("+negated")
    geometric = "identity" if transform == "negated" else transform.removesuffix("+negated")
    if geometric not in TRANSFORMS:
        raise ValueError(f"unknown transform, got {transform!r}; known: {', '.join(TRANSFORMS)} (+negated)")
    if k.ndim == 1:
        if geometric not in ("identity", "conv_flip"):
            raise ValueError(f"a 1-D kernel takes identity or conv_flip (+negated), got {transform!r}")
        out = k.flip(0) if geometric == "conv_flip" else k
        return -out if negated else out
    out = TRANSFORMS[geometric](k)
    return -out if negated else out


@dataclass
class KernelMatch:
    """One hand-designed kernel near a given kernel, from :func:`match_kernel`.

    Attributes:
        name: bank name (``"sobel_x"``).
        similarity: cosine similarity in [0, 1] after the best transform and sign.
        transform: how the bank kernel maps onto the kernel (see :func:`apply_transform`):
            ``kernel ~= scale * apply_transform(reference, transform)``.
        scale: the positive least-squares scale.
        params: builder arguments of the reference (``{"sigma": 1.5, "size": [7, 7]}``).
        sigma: fitted sigma for Gaussian-family kernels, else ``None``.
        reference: the bank kernel as built (before the transform), on the kernel's device.
        aligned: ``scale * apply_transform(reference, transform)`` centred on the kernel and
            cropped or zero-padded to the kernel's shape: the reference as the kernel sees it.
        start: for a 1-D kernel, the index of the kernel where the first tap of the transformed
            reference lies (negative when it starts before the kernel); ``None`` for 2-D.
    """

    name: str
    similarity: float
    transform: str
    scale: float
    params: dict
    sigma: float | None = None
    reference: torch.Tensor | None = field(default=None, repr=False)
    aligned: torch.Tensor | None = field(default=None, repr=False)
    start: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields (the reference tensor is left out)."""
        return {
            "name": self.name,
            "similarity": self.similarity,
            "transform": self.transform,
            "scale": self.scale,
            "params": self.params,
            "sigma": self.sigma,
            "start": self.start,
        }


# Gaussian families whose sigma is fitted. unsharp also has a sigma but a second parameter
# (amount) as well; it is matched at its default parameters.
_SIGMA_FAMILIES = ("gaussian", "gaussian_dx", "gaussian_dy", "gaussian_dxx", "gaussian_dxy", "gaussian_dyy", "log")
_GOLDEN_STEPS = 20  # the bracket (two grid steps) shrinks to 1e-4 of its width
_TIE = 1e-6  # similarities closer than this count as equal; the simpler transform wins


def _sigma_grid(shape) -> list[float]:
    top = max(2.0, float(max(shape)))
    n = 28
    lo = 0.25
    return [lo * (top / lo) ** (i / (n - 1)) for i in range(n)]


def _build(name: str, **kwargs) -> torch.Tensor | None:
    from cnnconv import kernels

    try:
        k = kernels.get_kernel(name, dtype=torch.float64, **kwargs)
    except (TypeError, ValueError):
        return None
    if not isinstance(k, torch.Tensor) or k.ndim not in (1, 2) or k.numel() == 0:
        return None
    k = k.detach().to(device="cpu", dtype=torch.float64)
    if k.ndim == 1:
        k = k.unsqueeze(0)
    if not bool(torch.isfinite(k).all()) or float(k.abs().sum()) == 0:
        return None
    return k


@dataclass
class _Variant:
    name: str
    params: dict
    kernel: torch.Tensor  # float64 CPU, 2-D


@dataclass
class _Bank:
    """Bank kernels placed in a common square frame, ready for one matrix product."""

    variants: list
    frame: int
    matrix: torch.Tensor  # (rows, frame * frame), unit rows, float64 CPU
    owners: list  # row -> (variant index, offset)
    fit_sigma: bool


_BANK_CACHE: dict = {}


def _registry_variants(names, shape) -> list[_Variant]:
    """Bank kernels for a kernel of ``shape``: each name at its default and at ``shape`` when its
    builder takes a size; Gaussian families on a grid of sigmas at ``shape``."""
    size = list(shape)
    variants = []
    for name in names:
        if name in _SIGMA_FAMILIES:
            for sigma in _sigma_grid(shape):
                k = _build(name, sigma=sigma, size=tuple(size))
                if k is not None:
                    variants.append(_Variant(name, {"sigma": sigma, "size": size}, k))
            continue
        k = _build(name)
        if k is not None:
            variants.append(_Variant(name, {}, k))
    # Fixed kernels rebuilt at the kernel's size, unless that gives a kernel already in the bank
    # (e.g. "sobel5_x" at size 3 is "sobel_x").
    fixed = [v.kernel for v in variants if not v.params]
    for name in names:
        if name in _SIGMA_FAMILIES:
            continue
        options = [{"size": tuple(size)}] + ([{"size": size[0]}] if size[0] == size[1] else [])
        for params in options:
            k = _build(name, **params)
            if k is None or any(k.shape == f.shape and torch.allclose(k, f, rtol=0, atol=1e-12) for f in fixed):
                continue
            fixed.append(k)
            variants.append(_Variant(name, {"size": size}, k))
    return variants


def _make_bank(variants, shape, fit_sigma: bool) -> _Bank:
    variants = [v for v in variants if float(v.kernel.norm()) > 0]
    if not variants:
        raise ValueError("bank must hold at least one non-zero kernel, got none")
    frame = max(list(shape) + [max(v.kernel.shape) for v in variants])
    rows, owners = [], []
    for vi, v in enumerate(variants):
        unit = v.kernel / v.kernel.norm()
        for offset in _placements(*v.kernel.shape, frame):
            rows.append(_place(unit, frame, offset).reshape(-1))
            owners.append((vi, offset))
    return _Bank(variants, frame, torch.stack(rows), owners, fit_sigma)


def _registry_bank(names, shape) -> _Bank:
    key = (tuple(names), tuple(shape))
    if key not in _BANK_CACHE:
        if len(_BANK_CACHE) >= 64:
            _BANK_CACHE.clear()
        _BANK_CACHE[key] = _make_bank(_registry_variants(names, shape), shape, fit_sigma=True)
    return _BANK_CACHE[key]


def _placements(kh: int, kw: int, frame: int) -> list[tuple[int, int]]:
    """Top-left offsets that centre a ``kh x kw`` kernel in a square frame (two when ambiguous)."""
    rows = sorted({(frame - kh) // 2, (frame - kh + 1) // 2})
    cols = sorted({(frame - kw) // 2, (frame - kw + 1) // 2})
    return [(r, c) for r in rows for c in cols]


def _place(k: torch.Tensor, frame: int, offset) -> torch.Tensor:
    out = k.new_zeros(frame, frame)
    r, c = offset
    out[r : r + k.shape[0], c : c + k.shape[1]] = k
    return out


def _rank_key(similarity: float, priority: int, fitted: bool, order: int):
    # Best similarity first; among ties the simpler transform, then a fixed kernel before a
    # fitted one (Sobel x is also a derivative of Gaussian with sigma 0.85), then bank order.
    return (-round(similarity / _TIE), priority, fitted, order)


def _split(transform: str) -> tuple[str, bool]:
    if transform == "negated":
        return "identity", True
    if transform.endswith("+negated"):
        return transform.removesuffix("+negated"), True
    return transform, False


def match_kernel(k, bank=None, top: int = 3) -> list[KernelMatch]:
    """Nearest hand-designed kernels under scale, sign, rotations by 90 degrees and flips.

    Every kernel of the bank is compared with the given one under the eight symmetries of the
    square (the convolution flip, i.e. the 180-degree rotation, among them) and both signs, by
    cosine similarity; the scale is free. Kernels of different sizes are compared centred, the
    smaller one zero-padded. Registry kernels whose builder takes a size are also built at the
    kernel's size; for the Gaussian families (``gaussian``, ``gaussian_dx/dy/dxx/dyy``, ``log``)
    sigma is fitted by least squares (a grid, then a golden-section search in log sigma) within
    ``[0.25, max(2, largest side)]``.

    With the default bank, a 2-D kernel with sides from 3 to :data:`MAX_FIT_SIDE` is also fitted
    by the continuous families of :func:`fit_kernel` (first and second Gaussian derivative at any
    orientation, Gabor); the best family is one of the matches, named ``"gaussian_derivative"``,
    ``"gaussian_second_derivative"`` or ``"gabor"``, with transform ``identity`` (``negated``
    for a second derivative of negative amplitude), its fitted parameters in ``params`` (``orientation`` in degrees, ``sigma``, and for the Gabor
    ``frequency`` and ``phase``) and ``aligned`` the fitted kernel. It ranks above a bank kernel
    only when more similar by more than 1e-3.

    When several descriptions fit equally well (within 1e-6) the simplest wins, in this order:
    ``identity``, ``conv_flip``, ``negated``, ``flip_lr``, ``flip_ud``, ``transpose``,
    ``anti_transpose``, ``rot90``, ``rot270``, then the same flips and turns ``+negated``. A Sobel
    x rotated by 180 degrees is therefore ``sobel_x`` under ``conv_flip`` rather than ``negated``.

    A 1-D kernel ``(k,)`` is matched in 1-D against :data:`BANK_1D`: ``identity``,
    ``difference`` ``[-1, 0, 1] / 2``, ``second_difference`` ``[1, -2, 1]``, ``box`` (width
    fitted), ``gaussian``, ``gaussian_derivative``, ``gaussian_derivative2`` (sigma fitted) and
    ``exponential`` ``exp(-t / tau)`` (tau fitted), under ``identity``, ``conv_flip`` (reversal)
    and the sign. The kernel is first cropped to its support (leading and trailing taps holding
    at most 1e-12 of the energy), the references are centred on that support, and
    :attr:`KernelMatch.start` says where the reference lies; memory stays linear in ``k``.

    Args:
        k: kernel ``(kh, kw)`` or ``(k,)``, any device.
        bank: ``None`` for every registered kernel of :mod:`cnnconv.kernels` (for 1-D kernels:
            :data:`BANK_1D`); a list of such names; or a mapping of names to tensors (used as
            given, no fit).
        top: number of matches to return: one per bank name, leaving out a name that is only a
            transformed copy of a better match (``sobel_y`` under ``transpose`` after ``sobel_x``).

    Returns:
        Up to ``top`` :class:`KernelMatch`, best first; empty for an all-zero kernel.

    Example:
        >>> from cnnconv import kernels
        >>> m = match_kernel(kernels.gaussian(1.3, 9), top=1)[0]
        >>> m.name, m.transform, round(m.sigma, 4)
        ('gaussian', 'identity', 1.3)
    """
    kernel = _as_kernel(k, allow_1d=True)
    if isinstance(top, bool) or not isinstance(top, int):
        raise TypeError(f"top must be an int, got {top!r}")
    if top < 1:
        raise ValueError(f"top must be positive, got {top}")
    if kernel.ndim == 1:
        if bank is not None and not isinstance(bank, (Mapping, list, tuple)):
            raise TypeError(f"bank must be None, a list of names or a mapping of tensors, got {_describe_type(bank)}")
        return _match_1d(kernel, bank, top)
    shape = tuple(kernel.shape)
    if bank is None:
        from cnnconv import kernels

        bank_ = _registry_bank(kernels.list_kernels(), shape)
    elif isinstance(bank, Mapping):
        variants = []
        for name, ref in bank.items():
            if not isinstance(name, str):
                raise TypeError(f"bank names must be strings, got {name!r}")
            variants.append(_Variant(name, {}, _as_kernel(ref, f"bank[{name!r}]").cpu()))
        bank_ = _make_bank(variants, shape, fit_sigma=False)
    elif isinstance(bank, (list, tuple)):
        from cnnconv import kernels

        known = set(kernels.list_kernels())
        unknown = [n for n in bank if not isinstance(n, str) or n not in known]
        if unknown:
            raise ValueError(f"bank names must be registered kernels, got unknown {unknown}")
        bank_ = _registry_bank(list(bank), shape)
    else:
        raise TypeError(f"bank must be None, a list of names or a mapping of tensors, got {_describe_type(bank)}")
    norm = float(kernel.norm())
    if norm == 0:
        return []
    device = kernel.device
    kh, kw = shape
    frame = bank_.frame
    origin = _placements(kh, kw, frame)[0]
    target = _place(kernel / norm, frame, origin)
    geometric = list(TRANSFORMS)
    # The kernel under each geometric transform g; g(kernel) ~ b means kernel ~ inverse(g)(b),
    # and inverse(g) is the transform reported.
    stack = torch.stack([TRANSFORMS[g](target) for g in geometric]).reshape(len(geometric), -1)
    cos = (stack @ bank_.matrix.to(device).T).cpu().tolist()  # (8, rows)

    variants = bank_.variants
    order: dict[str, int] = {}
    for v in variants:
        order.setdefault(v.name, len(order))
    best: dict[str, tuple] = {}  # name -> (rank key, (similarity, transform index, row))
    for ti, (g, values) in enumerate(zip(geometric, cos)):
        inverse = _INVERSE[g]
        priorities = (_transform_priority(inverse, False), _transform_priority(inverse, True))
        for ri, c in enumerate(values):
            name = variants[bank_.owners[ri][0]].name
            fitted = bank_.fit_sigma and name in _SIGMA_FAMILIES
            rk = _rank_key(abs(c), priorities[c < 0], fitted, order[name])
            if name not in best or rk < best[name][0]:
                best[name] = (rk, (abs(c), ti, ri))

    refined: set[str] = set()

    def finish(name, info, refine: bool) -> KernelMatch:
        sim, ti, ri = info
        vi, offset = bank_.owners[ri]
        v = variants[vi]
        t_row = stack[ti].reshape(frame, frame)
        params, sigma, ref = dict(v.params), None, v.kernel
        if bank_.fit_sigma and name in _SIGMA_FAMILIES:
            sigma = params["sigma"]  # the grid's best, refined below when it matters
            if refine:
                sigma, sim, ref = _fit_sigma(name, t_row, sigma, shape, frame, offset)
                params["sigma"] = sigma
                refined.add(name)
        placed = _place(ref, frame, offset).to(device)
        dot = float((t_row * placed).sum())
        # kernel ~= a * inverse(g)(b): a = <g(kernel), b> / |b|^2; the sign goes into the transform.
        scale = abs(dot) * norm / float((ref * ref).sum())
        transform = _transform_name(_INVERSE[geometric[ti]], dot < 0)
        aligned = scale * apply_transform(placed, transform)[origin[0] : origin[0] + kh, origin[1] : origin[1] + kw]
        return KernelMatch(name, min(sim, 1.0), transform, scale, params, sigma, ref.to(device), aligned)

    def key(m: KernelMatch):
        # A continuous fit has more free parameters: it ranks above a bank kernel only when
        # better by more than _FIT_MARGIN.
        sim = m.similarity - _FIT_MARGIN if m.name in FIT_FAMILIES else m.similarity
        return _rank_key(sim, _transform_priority(*_split(m.transform)), m.sigma is not None, order[m.name])

    # Refining sigma gains less than 0.05 of similarity over the grid, so only the families within
    # 0.05 of the top-th coarse score can enter the top; they are refined before the final ranking.
    ranked = sorted(best.items(), key=lambda item: item[1][0])
    cutoff = ranked[min(top, len(ranked)) - 1][1][1][0] - 0.05
    matches = [finish(name, info, info[0] >= cutoff) for name, (_, info) in ranked]
    if bank is None and min(shape) >= 3 and max(shape) <= MAX_FIT_SIDE:
        fit = _best_fit(kernel)
        order[fit.family] = len(order)
        refined.add(fit.family)
        matches.append(
            KernelMatch(fit.family, fit.similarity, "negated" if fit.scale < 0 else "identity", abs(fit.scale),
                        fit.params, fit.params["sigma"], fit.fitted / fit.scale, fit.fitted)
        )
    matches.sort(key=key)

    # A name whose aligned kernel is the same as a better match's (sobel_y under "transpose" next
    # to sobel_x) adds nothing: keep the first of such copies, fixed and fitted kernels apart.
    kept: list[KernelMatch] = []
    for m in matches:
        if m.sigma is not None and m.name not in refined:
            m = finish(m.name, best[m.name][1], True)  # moved up by a removed copy: refine now
        unit = m.aligned / m.aligned.norm().clamp_min(1e-300)
        duplicate = any(
            (m.sigma is None) == (other.sigma is None)
            and float((unit - other.aligned / other.aligned.norm().clamp_min(1e-300)).abs().max()) < 1e-9
            for other in kept
        )
        if not duplicate:
            kept.append(m)
        if len(kept) == top:
            break
    return kept


def _fit_sigma(name, t_row, sigma0, shape, frame, offset):
    """Golden-section search in log sigma around the grid's best sigma, maximising |cosine|."""
    grid = _sigma_grid(shape)
    i = min(range(len(grid)), key=lambda j: abs(grid[j] - sigma0))
    lo = math.log(grid[max(i - 1, 0)])
    hi = math.log(grid[min(i + 1, len(grid) - 1)])
    device = t_row.device
    cache = {}

    def score(log_sigma):
        if log_sigma not in cache:
            ref = _build(name, sigma=math.exp(log_sigma), size=tuple(shape))
            if ref is None:
                cache[log_sigma] = (-1.0, None)
            else:
                placed = _place(ref, frame, offset).to(device)
                cache[log_sigma] = (abs(float((t_row * placed).sum())) / float(ref.norm()), ref)
        return cache[log_sigma][0]

    candidates = [math.log(sigma0), lo, hi] + _golden(score, lo, hi)
    best_log = max(candidates, key=score)
    sim, ref = cache[best_log]
    return math.exp(best_log), sim, ref


def _golden(score, lo: float, hi: float, steps: int = _GOLDEN_STEPS) -> list[float]:
    """Golden-section search for the maximum of ``score`` on ``[lo, hi]``; returns the last
    points it looked at (the caller keeps the best of them and of its own candidates)."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c = b - inv_phi * (b - a)
    d = a + inv_phi * (b - a)
    for _ in range(steps):
        if score(c) >= score(d):
            b, d = d, c
            c = b - inv_phi * (b - a)
        else:
            a, c = c, d
            d = a + inv_phi * (b - a)
    return [c, d, 0.5 * (a + b)]


# --------------------------------------------------------------------------- continuous fits

#: Families :func:`fit_kernel` fits, simplest first (a later family must fit better by more than
#: 1e-3 of similarity to be preferred).
FIT_FAMILIES = ("gaussian_derivative", "gaussian_second_derivative", "gabor")
_FIT_PREFERENCE = 1e-3  # similarity a later family must gain over an earlier one to be chosen
_FIT_MARGIN = 1e-3  # similarity a fit must gain over a bank kernel to rank above it
_FIT_CACHE_ELEMENTS = 1 << 21  # coarse bases of at most this many values are kept per shape
_GABOR_THETAS = 12  # coarse orientations of the Gabor fit, over [0, 180)
_GABOR_FREQUENCIES = tuple(0.04 * (0.5 / 0.04) ** (i / 9) for i in range(10))  # cycles per pixel
_FIT_GOLDEN_STEPS = 10  # each bracket (two grid steps) shrinks to 1% of its width
#: Largest side of a kernel :func:`match_kernel` also fits the continuous families to (larger
#: kernels are matched to the bank only; :func:`fit_kernel` takes any inspectable size).
MAX_FIT_SIDE = 32
_FIT_CACHE: dict = {}


@dataclass
class KernelFit:
    """A continuous family fitted to a 2-D kernel by :func:`fit_kernel`.

    Attributes:
        family: ``"gaussian_derivative"`` (first derivative of a Gaussian along ``orientation``,
            ``cos(t) gaussian_dx + sin(t) gaussian_dy``), ``"gaussian_second_derivative"``
            (``cos(t)^2 gaussian_dxx + 2 cos(t) sin(t) gaussian_dxy + sin(t)^2 gaussian_dyy``) or
            ``"gabor"`` (:func:`cnnconv.kernels.gabor`).
        similarity: cosine similarity of the kernel and the fitted kernel, in [0, 1].
        scale: least-squares amplitude: ``kernel ~= scale * family(params)``; negative only for
            the second derivative (a valley instead of a ridge).
        params: ``orientation`` in degrees from +x towards +y (``[0, 360)`` for the first
            derivative, ``[0, 180)`` otherwise) and ``sigma`` in pixels; for ``gabor`` also
            ``frequency`` (cycles per pixel) and ``phase`` (degrees, ``[0, 360)``).
        fitted: ``scale * family(params)`` at the kernel's shape, on the kernel's device.
    """

    family: str
    similarity: float
    scale: float
    params: dict
    fitted: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (the fitted tensor is left out)."""
        return {"family": self.family, "similarity": self.similarity, "scale": self.scale, "params": self.params}


def _family_basis(family: str, shape, sigma: float, thetas, frequencies=()) -> torch.Tensor:
    """Basis kernels ``(P, n, kh * kw)`` (float64 CPU) of ``family`` at one sigma.

    The first derivative has the two basis kernels ``gaussian_dx, gaussian_dy`` (``P = 1``; any
    orientation is their combination); the second derivative one kernel per orientation; the
    Gabor the even and odd carrier per ``(frequency, orientation)`` (any phase is their
    combination).
    """
    from cnnconv import kernels

    size = tuple(shape)
    if family == "gaussian_derivative":
        dx = kernels.gaussian_derivative(sigma, 1, "x", size, dtype=torch.float64)
        dy = kernels.gaussian_derivative(sigma, 1, "y", size, dtype=torch.float64)
        return torch.stack([dx, dy]).reshape(1, 2, -1)
    t = torch.tensor(thetas, dtype=torch.float64)[:, None]
    c, s = torch.cos(t), torch.sin(t)
    if family == "gaussian_second_derivative":
        parts = [
            kernels.get_kernel(name, sigma=sigma, size=size, dtype=torch.float64).reshape(1, -1)
            for name in ("gaussian_dxx", "gaussian_dxy", "gaussian_dyy")
        ]
        return (c * c * parts[0] + 2 * c * s * parts[1] + s * s * parts[2]).unsqueeze(1)
    y, x = torch.meshgrid(kernels._grid(shape[0]), kernels._grid(shape[1]), indexing="ij")
    x, y = x.reshape(1, -1), y.reshape(1, -1)
    envelope = torch.exp(-(x * x + y * y) / (2 * sigma * sigma)) / (2 * math.pi * sigma * sigma)
    f = torch.tensor(frequencies, dtype=torch.float64)[:, None, None]
    arg = 2 * math.pi * f * (x * c + y * s)  # (F, T, kh * kw)
    return torch.stack([envelope * torch.cos(arg), envelope * torch.sin(arg)], dim=2).flatten(0, 1)


def _span_fit(basis: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit of ``target`` (unit norm, flat) in the span of each basis ``(P, n, D)``
    (``n`` = 1 or 2): the similarities ``(P,)`` (norm of the projection) and coefficients
    ``(P, n)``. Gram-Schmidt on elementwise products (small batched matrix products and
    pseudo-inverses in float64 are far slower); a second kernel within 1e-9 of the first's
    direction adds nothing."""
    b0 = basis[:, 0]
    n0 = b0.norm(dim=-1).clamp_min(1e-300)
    p0 = (b0 * target).sum(-1) / n0
    if basis.shape[1] == 1:
        return p0.abs(), (p0 / n0).unsqueeze(-1)
    b1 = basis[:, 1]
    m = (b0 * b1).sum(-1) / n0  # component of b1 along b0's unit vector
    r = b1 - (m / n0).unsqueeze(-1) * b0
    nr = r.norm(dim=-1)
    independent = nr > 1e-9 * b1.norm(dim=-1)
    nr = torch.where(independent, nr, torch.ones_like(nr))
    p1 = torch.where(independent, (r * target).sum(-1) / nr, torch.zeros_like(nr))
    c1 = p1 / nr
    return torch.hypot(p0, p1), torch.stack([p0 / n0 - c1 * m / n0, c1], dim=-1)


def _coarse_chunks(family: str, shape):
    """``(sigma, basis, thetas)`` chunks of the coarse grid of ``family`` for ``shape``.

    Kept per shape when small; for large kernels the chunks are built one at a time, one sigma
    (and, when that is still large, one orientation) each, so memory stays bounded.
    """
    key = (family, tuple(shape))
    if key in _FIT_CACHE:
        return _FIT_CACHE[key]
    steps = 36 if family == "gaussian_second_derivative" else _GABOR_THETAS
    thetas = [math.pi * i / steps for i in range(steps)]
    sigmas = _sigma_grid(shape)
    if family == "gabor":
        sigmas = [s for s in sigmas[::3] if s >= 0.5]
    rows = {"gaussian_derivative": 2, "gaussian_second_derivative": steps}.get(family, 2 * steps * len(_GABOR_FREQUENCIES))
    values = rows * shape[0] * shape[1]
    if values * len(sigmas) <= _FIT_CACHE_ELEMENTS:
        if len(_FIT_CACHE) >= 64:
            _FIT_CACHE.clear()
        _FIT_CACHE[key] = [(s, _family_basis(family, shape, s, thetas, _GABOR_FREQUENCIES), thetas) for s in sigmas]
        return _FIT_CACHE[key]
    groups = [[t] for t in thetas] if values > _FIT_CACHE_ELEMENTS else [thetas]
    return ((s, _family_basis(family, shape, s, g, _GABOR_FREQUENCIES), g) for s in sigmas for g in groups)


def _coarse_fit(family: str, target: torch.Tensor, shape) -> tuple[float, list[float]]:
    """Best coarse-grid similarity and parameters ``[theta, log sigma(, log frequency)]``."""
    best = (-1.0, None)
    for sigma, basis, thetas in _coarse_chunks(family, shape):
        sim, coef = _span_fit(basis, target)
        i = int(sim.argmax())
        if float(sim[i]) > best[0]:
            if family == "gaussian_derivative":
                params = [math.atan2(float(coef[0, 1]), float(coef[0, 0])), math.log(sigma)]
            elif family == "gaussian_second_derivative":
                params = [thetas[i], math.log(sigma)]
            else:
                fi, ti = divmod(i, len(thetas))
                params = [thetas[ti], math.log(sigma), math.log(_GABOR_FREQUENCIES[fi])]
            best = (float(sim[i]), params)
    return best


def _fit_at(family: str, target: torch.Tensor, shape, params) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Similarity, coefficients and basis of ``family`` at ``params`` (see :func:`_coarse_fit`)."""
    theta, sigma = params[0], math.exp(params[1])
    frequencies = [math.exp(params[2])] if family == "gabor" else ()
    basis = _family_basis(family, shape, sigma, [theta], frequencies)
    sim, coef = _span_fit(basis, target)
    return float(sim[0]), coef[0], basis[0]


def _refine_fit(family: str, target: torch.Tensor, shape, params: list[float]) -> list[float]:
    """Coordinate-wise golden-section refinement of the coarse parameters (two rounds, each
    coordinate within one coarse grid step of the current value)."""
    grid = _sigma_grid(shape)
    log_step = math.log(grid[1] / grid[0]) * (3 if family == "gabor" else 1)
    steps = [math.pi / (36 if family == "gaussian_second_derivative" else _GABOR_THETAS), log_step]
    if family == "gabor":
        steps.append(math.log(_GABOR_FREQUENCIES[1] / _GABOR_FREQUENCIES[0]))
    free = range(1, 2) if family == "gaussian_derivative" else range(len(params))  # theta: closed form
    params = list(params)
    cache: dict = {}

    def score_at(p):
        key = tuple(p)
        if key not in cache:
            cache[key] = _fit_at(family, target, shape, p)[0]
        return cache[key]

    for _ in range(2):
        for j in free:
            def score(v, j=j):
                return score_at(params[:j] + [v] + params[j + 1 :])

            candidates = [params[j]] + _golden(score, params[j] - steps[j], params[j] + steps[j], _FIT_GOLDEN_STEPS)
            params[j] = max(candidates, key=score)
        if len(free) == 1:
            break
    return params


def _finish_fit(family: str, kernel: torch.Tensor, params: list[float]) -> KernelFit:
    shape = tuple(kernel.shape)
    norm = float(kernel.norm())
    sim, coef, basis = _fit_at(family, (kernel / norm).cpu().reshape(-1), shape, params)
    fitted = (coef @ basis * norm).reshape(shape)
    sigma = math.exp(params[1])
    if family == "gaussian_derivative":
        theta = math.degrees(math.atan2(float(coef[1]), float(coef[0]))) % 360.0
        out = {"orientation": theta, "sigma": sigma}
        scale = math.hypot(float(coef[0]), float(coef[1])) * norm
    elif family == "gaussian_second_derivative":
        out = {"orientation": math.degrees(params[0]) % 180.0, "sigma": sigma}
        scale = float(coef[0]) * norm
    else:
        # a cos(arg) + b sin(arg) = A cos(arg + phase), A = hypot(a, b), phase = atan2(-b, a); the
        # Gabor for theta + 180 degrees is the one for theta with the opposite phase.
        theta, phase = params[0], math.atan2(-float(coef[1]), float(coef[0]))
        turns = math.floor(theta / math.pi)
        if turns % 2:
            phase = -phase
        out = {
            "orientation": math.degrees(theta - turns * math.pi) % 180.0,
            "sigma": sigma,
            "frequency": math.exp(params[2]),
            "phase": math.degrees(phase) % 360.0,
        }
        scale = math.hypot(float(coef[0]), float(coef[1])) * norm
    return KernelFit(family, min(sim, 1.0), scale, out, fitted.to(kernel.device))


def _check_fit_kernel(kernel: torch.Tensor) -> None:
    if kernel.ndim != 2 or min(kernel.shape) < 3:
        raise ValueError(f"kernel must be 2-D with both sides at least 3 to be fitted, got shape {tuple(kernel.shape)}")


def fit_kernel(k, families=FIT_FAMILIES) -> list[KernelFit]:
    """Fit continuous families (orientation, scale, frequency, phase) to a 2-D kernel.

    Each family is fitted by least squares (cosine similarity, free amplitude):

    - ``"gaussian_derivative"``: ``a (cos t gaussian_dx(s) + sin t gaussian_dy(s))``; for each
      sigma the orientation and amplitude are in closed form (projection on the two basis
      kernels), sigma by a grid and a golden-section search in log sigma.
    - ``"gaussian_second_derivative"``: ``a (cos^2 t dxx + 2 cos t sin t dxy + sin^2 t dyy)``
      at sigma ``s``; orientation and sigma by a grid (5 degrees), then golden-section searches.
    - ``"gabor"``: ``a gabor(s, t, f, phase)`` (:func:`cnnconv.kernels.gabor`); phase and
      amplitude in closed form (projection on the even and odd carriers), orientation,
      frequency (0.04 to 0.5 cycles per pixel) and sigma by a coarse grid, then two rounds of
      golden-section searches, one parameter at a time.

    The sigma grid spans ``[0.25, max(2, largest side)]`` (the Gabor's from 0.5); refinement
    may go one grid step beyond. Memory stays within one sigma's (or, for large kernels, one
    orientation's) basis kernels; :func:`match_kernel` fits only kernels up to
    :data:`MAX_FIT_SIDE`.

    Args:
        k: kernel ``(kh, kw)``, both sides at least 3, any device.
        families: names from :data:`FIT_FAMILIES`.

    Returns:
        One :class:`KernelFit` per family, best first: a later family of :data:`FIT_FAMILIES`
        comes first only when better by more than 1e-3. Empty for an all-zero kernel.

    Example:
        >>> from cnnconv import kernels
        >>> k = kernels.gabor(2.0, 0.5, 0.2, 1.0, dtype=torch.float64)
        >>> fit = fit_kernel(k, ["gabor"])[0]
        >>> round(fit.params["orientation"], 2), round(fit.params["frequency"], 3), round(fit.similarity, 6)
        (28.65, 0.2, 1.0)
    """
    kernel = _as_kernel(k)
    _check_fit_kernel(kernel)
    if isinstance(families, str) or not all(f in FIT_FAMILIES for f in families):
        raise ValueError(f"families must be a list of names from {', '.join(FIT_FAMILIES)}, got {families!r}")
    norm = float(kernel.norm())
    if norm == 0:
        return []
    return _rank_fits([_fit_family(f, kernel) for f in families])


def _best_fit(kernel: torch.Tensor) -> KernelFit:
    """The best family of :data:`FIT_FAMILIES` for a non-zero kernel, judged on the coarse
    grids (with the same preference as :func:`fit_kernel`); only that one is refined."""
    shape = tuple(kernel.shape)
    target = (kernel / kernel.norm()).cpu().reshape(-1)
    coarse = [(f, *_coarse_fit(f, target, shape)) for f in FIT_FAMILIES]
    family, _, params = min(coarse, key=lambda c: -c[1] + _FIT_PREFERENCE * FIT_FAMILIES.index(c[0]))
    return _finish_fit(family, kernel, _refine_fit(family, target, shape, params))


def _fit_family(family: str, kernel: torch.Tensor) -> KernelFit:
    shape = tuple(kernel.shape)
    target = (kernel / kernel.norm()).cpu().reshape(-1)
    _, params = _coarse_fit(family, target, shape)
    return _finish_fit(family, kernel, _refine_fit(family, target, shape, params))


def _rank_fits(fits: list) -> list:
    """Fits best first; a later family of :data:`FIT_FAMILIES` must gain more than 1e-3."""
    return sorted(fits, key=lambda f: (-f.similarity + _FIT_PREFERENCE * FIT_FAMILIES.index(f.family)))


# --------------------------------------------------------------------------- 1-D matching

# Fixed 1-D references (correlation taps), then the families whose parameter is fitted.
_FIXED_1D = {
    "identity": (1.0,),
    "difference": (-0.5, 0.0, 0.5),
    "second_difference": (1.0, -2.0, 1.0),
}
_FAMILIES_1D = ("box", "gaussian", "gaussian_derivative", "gaussian_derivative2", "exponential")
BANK_1D = tuple(_FIXED_1D) + _FAMILIES_1D
_SUPPORT_TOL = 1e-12  # leading and trailing taps holding at most this share of the energy are cropped


def _family_1d(name: str, value: float, m: int) -> tuple[torch.Tensor, int] | None:
    """A 1-D family member for a support of ``m`` taps: ``(taps, start)``, the float64 CPU taps
    and the index of the support where they start, or ``None`` when it is degenerate.

    Only the taps above about 1e-14 of the peak are built (the rest would be zeros): far tails
    would underflow into slow subnormal arithmetic for nothing."""
    from cnnconv import kernels

    if name == "exponential":  # exp(-t / tau) from the first tap
        n = min(m, math.ceil(32.0 * value) + 1)
        return torch.exp(-torch.arange(n, dtype=torch.float64) / value), 0
    # Gaussian families, centred: a window of the same parity as m keeps the exact centre.
    n = min(m, 2 * math.ceil(8.0 * value) + 1 + (1 - m % 2))
    if name == "gaussian":
        k = kernels.gaussian1d(value, n, dtype=torch.float64)
    else:
        k = kernels.gaussian_derivative1d(value, 1 if name == "gaussian_derivative" else 2, n, dtype=torch.float64)
    if not bool(torch.isfinite(k).all()) or float(k.abs().sum()) == 0:
        return None
    return k, (m - n) // 2


def _placed_dots(t: torch.Tensor, r: torch.Tensor) -> list[tuple[float, int]]:
    """``(dot, start)`` of ``r`` centred on ``t`` (two placements when the parities differ);
    ``start`` is the index of ``t`` where ``r[0]`` lies (negative when ``r`` is longer)."""
    m, n = t.numel(), r.numel()
    out = []
    for start in sorted({(m - n) // 2, (m - n + 1) // 2}):
        lo, hi = max(start, 0), min(start + n, m)
        out.append((float((t[lo:hi] * r[lo - start : hi - start]).sum()), start))
    return out


def _negligible_prefix(energy: torch.Tensor, tol: float) -> int:
    """Number of leading taps whose energy adds up to at most ``tol``."""
    cum = torch.cumsum(energy, 0)
    return int(torch.searchsorted(cum, cum.new_full((1,), tol), right=True))


def _match_1d(kernel: torch.Tensor, bank, top: int) -> list[KernelMatch]:
    """:func:`match_kernel` for a 1-D kernel (float64, validated)."""
    n = kernel.numel()
    energy = kernel * kernel
    total = float(energy.sum())
    if total == 0:
        return []
    # Crop to the support: a delayed or short kernel in a long frame is matched where it lies.
    tol = _SUPPORT_TOL * total
    first = _negligible_prefix(energy, tol)
    last = n - _negligible_prefix(energy.flip(0), tol)
    c = kernel[first:last].cpu()
    m = c.numel()
    c_norm = float(c.norm())
    targets = {"identity": c, "conv_flip": c.flip(0)}

    if isinstance(bank, Mapping):
        fixed = {}
        for name, ref in bank.items():
            if not isinstance(name, str):
                raise TypeError(f"bank names must be strings, got {name!r}")
            fixed[name] = _as_kernel(ref, f"bank[{name!r}]", allow_1d=True).reshape(-1).cpu()
        families = ()
    else:
        names = BANK_1D if bank is None else list(bank)
        unknown = [b for b in names if b not in BANK_1D]
        if unknown:
            raise ValueError(f"bank names for 1-D kernels must be among {', '.join(BANK_1D)}, got unknown {unknown}")
        fixed = {b: torch.tensor(_FIXED_1D[b], dtype=torch.float64) for b in names if b in _FIXED_1D}
        families = tuple(b for b in names if b in _FAMILIES_1D)
    if not families and all(float(r.norm()) == 0 for r in fixed.values()):
        raise ValueError("bank must hold at least one non-zero kernel, got none")
    order = {name: i for i, name in enumerate(list(fixed) + list(families))}

    def best_of(ref, start=None):
        """(|cos|, dot, transform index, start) of the best transform and placement of ref:
        centred on the support, or from index ``start`` of each transformed support."""
        norm = float(ref.norm()) * c_norm
        if norm == 0:
            return None
        options = []
        for ti, g in enumerate(targets):
            if start is None:
                placements = _placed_dots(targets[g], ref)
            else:
                placements = [(float((targets[g][start : start + ref.numel()] * ref).sum()), start)]
            for dot, at in placements:
                options.append((abs(dot) / norm, dot, ti, at))
        return max(options, key=lambda o: (o[0], -_transform_priority(list(targets)[o[2]], o[1] < 0)))

    found = []  # (name, params, sigma, ref, (cos, dot, transform index, start))
    for name, ref in fixed.items():
        info = best_of(ref)
        if info is not None:
            found.append((name, {}, None, ref, info))
    coarse = {}
    for name in families:
        if name == "box":
            # Every width at once, from the cumulative sum (a box is even: one target suffices).
            cum = torch.cat([c.new_zeros(1), torch.cumsum(c, 0)])
            widths = torch.arange(1, m + 1)
            best = torch.zeros(m, dtype=torch.float64)
            for starts in ((m - widths) // 2, (m - widths + 1) // 2):
                best = torch.maximum(best, (cum[starts + widths] - cum[starts]).abs() / widths.sqrt())
            w = int(torch.argmax(best)) + 1
            ref = torch.full((w,), 1.0 / w, dtype=torch.float64)
            found.append((name, {"size": w}, None, ref, best_of(ref)))
            continue
        cache = {}

        def score(log_value, name=name, cache=cache):
            if log_value not in cache:
                member = _family_1d(name, math.exp(log_value), m)
                cache[log_value] = (None, None) if member is None else (best_of(*member), member[0])
            info = cache[log_value][0]
            return -1.0 if info is None else info[0]

        grid = [math.log(v) for v in _sigma_grid((m,))]
        coarse[name] = (max(grid, key=score), grid, score, cache)
    top_coarse = max([o[4][0] for o in found] + [cc[2](cc[0]) for cc in coarse.values()], default=0.0)
    for name, (best_log, grid, score, cache) in coarse.items():
        if score(best_log) >= top_coarse - 0.05:
            i = grid.index(best_log)
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
            best_log = max([best_log, lo, hi] + _golden(score, lo, hi), key=score)
        if score(best_log) < 0:
            continue
        info, ref = cache[best_log]
        value = math.exp(best_log)
        params = {"tau": value, "size": ref.numel()} if name == "exponential" else {"sigma": value, "size": ref.numel()}
        found.append((name, params, value if name != "exponential" else None, ref, info))

    geometric = list(targets)

    def key(item):
        name, _, _, _, (sim, dot, ti, _) = item
        fitted = name in _FAMILIES_1D and name != "box"
        return _rank_key(sim, _transform_priority(geometric[ti], dot < 0), fitted, order[name])

    kept: list[KernelMatch] = []
    device = kernel.device
    for name, params, sigma, ref, (sim, dot, ti, start) in sorted(found, key=key):
        transform = _transform_name(geometric[ti], dot < 0)
        scale = abs(dot) / float((ref * ref).sum())
        shown = ref.flip(0) if geometric[ti] == "conv_flip" else ref
        # Where the reference's first tap lies in the kernel: placements on the flipped target
        # map back mirrored.
        at = start if geometric[ti] == "identity" else m - start - ref.numel()
        aligned = torch.zeros(n, dtype=torch.float64)
        lo, hi = max(first + at, 0), min(first + at + ref.numel(), n)
        aligned[lo:hi] = shown[lo - first - at : hi - first - at] * (scale if dot >= 0 else -scale)
        unit = aligned / aligned.norm().clamp_min(1e-300)
        if any(float((unit - o.aligned.cpu() / o.aligned.norm().clamp_min(1e-300)).abs().max()) < 1e-9 for o in kept):
            continue
        kept.append(
            KernelMatch(name, min(sim, 1.0), transform, scale, params, sigma, ref.to(device), aligned.to(device), first + at)
        )
        if len(kept) == top:
            break
    return kept
