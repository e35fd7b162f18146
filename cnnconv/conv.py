"""Drop-in ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d`` layers computed by FFT, direct
convolution or either.

:class:`FFTConv1d`, :class:`FFTConv2d` and :class:`FFTConv3d` subclass the PyTorch layers, so
construction, initialisation, ``state_dict`` keys and ``extra_repr`` are PyTorch's; the extra
``method`` argument picks the engine: ``"fft"`` (:func:`cnnconv.fft.fft_conv2d` and its 1-D
and 3-D siblings), ``"direct"`` (``F.conv2d``) or ``"auto"``
(:func:`cnnconv.planner.choose_method`, asked once per input shape, dtype and device, then
remembered by the layer). In eval mode (no weight gradient) the
kernel spectrum is cached between calls and recomputed when the weight changes.

Graph capture: under ``torch.compile`` the engine runs inside the compiled graph as the custom
ops of :mod:`cnnconv.fft.ops` (no graph break, gradients included; no spectrum cache). Graph
formats have no FFT convolution (ONNX has no such operator), so under ``torch.export`` (and
``torch.onnx.export(..., dynamo=True)``, which goes through it) and ``torch.jit.trace`` the layers
emit the equivalent ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d``; ``torch.jit.script`` raises: call
:func:`convert_back` first. :func:`convert`
swaps the convolutions of an existing model for these layers and :func:`convert_back` restores
plain PyTorch layers. :class:`FFTConv1d` also takes ``padding="causal"`` (all the padding
before the signal), which ``nn.Conv1d`` does not have.

Example:
    >>> import torch
    >>> layer = FFTConv2d(3, 8, 31, padding="same", method="fft")
    >>> layer(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 8, 64, 64])
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from cnnconv import fft as _fft
from cnnconv import planner as _planner
from cnnconv.fft.arguments import check_causal_mode

__all__ = [
    "FFT_MIN_KERNEL_SIZE",
    "METHODS",
    "ConvertReport",
    "FFTConv1d",
    "FFTConv2d",
    "FFTConv3d",
    "convert",
    "convert_back",
]

METHODS = ("auto", "fft", "direct")

#: Default ``min_kernel_size`` of ``convert(model, method="fft")``: smaller kernels (the 1x1,
#: 3x3, 5x5 and 7x7 layers of common networks) are computed faster directly at any input size
#: the planner's cost model knows, so they are left as they are unless asked for.
FFT_MIN_KERNEL_SIZE = 9

# Decisions of method="auto" a layer keeps (one per input shape, dtype and device); more
# distinct inputs than this start the table afresh.
_MAX_DECISIONS = 64


def _check_method(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}: {method!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


_FFT_FUNCTIONS = {1: _fft.fft_conv1d, 2: _fft.fft_conv2d, 3: _fft.fft_conv3d}


def _exporting() -> bool:
    """Whether ``torch.export`` (ONNX export included) or ``torch.jit.trace`` captures the call."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.6
    return bool(is_exporting is not None and is_exporting()) or torch.jit.is_tracing()


if TYPE_CHECKING:  # the mixin is always combined with an nn.ConvNd layer, whose attributes it uses
    _ConvBase = nn.Conv2d
else:
    _ConvBase = object


# Under torch.compile, run (not traced: the planner holds caches and locks) with a constant result.
@torch.compiler.assume_constant_result
def _planner_choice(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], **options: Any) -> str:
    """``"fft"`` or ``"direct"``, whichever :func:`cnnconv.planner.choose_method` finds cheaper."""
    return "fft" if _planner.choose_method(input_shape, weight_shape, **options) == "fft" else "direct"


class _FFTConvMixin(_ConvBase):
    """Shared engine selection for the 1-D, 2-D and 3-D layers (and their subclasses, such as
    :class:`cnnconv.learnable.LearnableConv2d`)."""

    _nd = 2
    # convert_back turns layers of this class into plain PyTorch layers; subclasses that carry
    # more state than a convolution (LearnableConv2d) set it to False and are left alone.
    _convert_back = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        method: str = "auto",
    ) -> None:
        """The one constructor of the FFT layers: the PyTorch layer's (arguments in its order),
        then ``method``; ``padding="causal"`` (1-D) is kept by the layer, not by PyTorch."""
        causal = self._nd == 1 and isinstance(padding, str) and padding == "causal"
        if causal:
            check_causal_mode(padding, padding_mode)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            0 if causal else padding,
            dilation,
            groups,
            bias,
            padding_mode,  # type: ignore[arg-type]  # nn.ConvNd checks it
            device,
            dtype,
        )
        if causal:
            self.padding = "causal"
            left = self.dilation[0] * (self.kernel_size[0] - 1)
            self._reversed_padding_repeated_twice = [left, 0]
        self._init_fft(method)

    def _init_fft(self, method: str) -> None:
        self.method = _check_method(method)
        self._spectrum_cache = _fft.SpectrumCache()
        self._decisions: dict[tuple, str] = {}
        self.last_method: str | None = None

    def _choose(self, x: torch.Tensor, weight: torch.Tensor) -> str:
        """The planner's engine, ``"fft"`` or ``"direct"``, for input ``x``."""
        return _planner_choice(
            tuple(x.shape),
            tuple(weight.shape),
            groups=self.groups,
            stride=tuple(self.stride),
            dilation=tuple(self.dilation),
            dtype=x.dtype,
            device=x.device,
            padding=self.padding,
        )

    def _decide(self, x: torch.Tensor, weight: torch.Tensor) -> str:
        """The planner's engine for input ``x``, remembered under ``x``'s shape, dtype and device.

        The layer's own settings (weight shape, stride, padding, ...) are not part of the key:
        they are fixed at construction, and were one changed later, both engines would still
        compute the right result (only the engine choice would be the earlier one).
        """
        method = self._choose(x, weight)
        if len(self._decisions) >= _MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[(x.shape, x.dtype, x.device)] = method
        return method

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            f"{type(self).__name__} cannot be compiled by torch.jit.script (it runs Python code and "
            "custom ops); call cnnconv.conv.convert_back(model) first to get plain PyTorch layers, "
            "or use torch.jit.trace, torch.export or torch.compile"
        )

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:  # called by nn.ConvNd.forward
        # The per-call path is kept to a dictionary look-up: it runs for every layer of a
        # converted model, where most layers stay direct.
        method = self.method
        if _exporting():
            method = "direct"  # graph formats have no FFT convolution: F.conv*d computes the same
        elif torch.compiler.is_compiling():
            # No read of state that changes (decisions, last_method): guards on it would recompile.
            if method == "auto":
                method = self._choose(input, weight)
            self.last_method = method
        else:
            if method == "auto":
                method = self._decisions.get((input.shape, input.dtype, input.device)) or self._decide(input, weight)
            if method != self.last_method:  # nn.Module.__setattr__ costs more than the comparison
                self.last_method = method
        if method == "direct":
            if self.padding == "causal":  # nn.Conv1d has no such padding: pad, then convolve
                mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
                input = F.pad(input, self._reversed_padding_repeated_twice, mode=mode)
                return F.conv1d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
            return super()._conv_forward(input, weight, bias)
        fn = _FFT_FUNCTIONS[self._nd]
        # Only a registered Parameter lives as long as the cache entry keyed on its identity; a
        # weight computed per call (parametrizations, weight/spectral norm hooks) is not cached.
        cache = self._spectrum_cache if weight is self._parameters.get("weight") else None
        return fn(
            input,
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            cache=cache,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", method={self.method!r}"

    def train(self, mode: bool = True):
        self._spectrum_cache.clear()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._spectrum_cache.clear()
        return super()._apply(fn, *args, **kwargs)


class FFTConv1d(_FFTConvMixin, nn.Conv1d):
    """``nn.Conv1d`` computed through the FFT (or directly, or whichever is cheaper).

    ``torch.export``, ONNX export and ``torch.jit.trace`` capture it as ``F.conv1d`` (graph formats
    have no FFT convolution); ``torch.compile`` keeps the FFT engine (see the module docstring).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv1d``; ``padding`` may also be ``"causal"``:
            ``dilation * (kernel_size - 1)`` before the signal and none after, so output ``i``
            depends on inputs up to ``i * stride`` only (``padding_mode`` ``"zeros"`` or
            ``"replicate"``). The ``state_dict`` is ``nn.Conv1d``'s either way.
        method: ``"auto"`` (planner's choice per input shape), ``"fft"`` or ``"direct"``.

    Shape:
        ``(B, Cin, L) -> (B, Cout, Lout)`` as ``nn.Conv1d``; with ``padding="causal"``,
        ``Lout = ceil(L / stride)``.

    Example:
        >>> layer = FFTConv1d(1, 1, 101, padding="same", method="fft")
        >>> layer(torch.randn(2, 1, 1000)).shape
        torch.Size([2, 1, 1000])
    """

    _nd = 1


class FFTConv2d(_FFTConvMixin, nn.Conv2d):
    """``nn.Conv2d`` computed through the FFT (or directly, or whichever is cheaper).

    ``torch.export``, ONNX export and ``torch.jit.trace`` capture it as ``F.conv2d`` (graph formats
    have no FFT convolution); ``torch.compile`` keeps the FFT engine (see the module docstring).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv2d``.
        method: ``"auto"`` (planner's choice per input shape), ``"fft"`` or ``"direct"``.

    Shape:
        ``(B, Cin, H, W) -> (B, Cout, Hout, Wout)`` as ``nn.Conv2d``.

    Example:
        >>> layer = FFTConv2d(16, 16, 31, padding="same", method="fft")
        >>> layer(torch.randn(2, 16, 64, 64)).shape
        torch.Size([2, 16, 64, 64])
    """

    _nd = 2


class FFTConv3d(_FFTConvMixin, nn.Conv3d):
    """``nn.Conv3d`` computed through the FFT (or directly, or whichever is cheaper).

    ``torch.export``, ONNX export and ``torch.jit.trace`` capture it as ``F.conv3d`` (graph formats
    have no FFT convolution); ``torch.compile`` keeps the FFT engine (see the module docstring).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv3d``.
        method: ``"auto"`` (planner's choice per input shape), ``"fft"`` or ``"direct"``.

    Shape:
        ``(B, Cin, D, H, W) -> (B, Cout, Dout, Hout, Wout)`` as ``nn.Conv3d``.

    Example:
        >>> layer = FFTConv3d(2, 4, 9, padding="same", method="fft")
        >>> layer(torch.randn(1, 2, 24, 24, 24)).shape
        torch.Size([1, 4, 24, 24, 24])
    """

    _nd = 3


_M = TypeVar("_M", bound=nn.Module)
_PAIRS = ((nn.Conv1d, FFTConv1d), (nn.Conv2d, FFTConv2d), (nn.Conv3d, FFTConv3d))
# Attributes an FFT layer adds to the PyTorch layer's (see _FFTConvMixin._init_fft).
_FFT_ATTRS = ("method", "_spectrum_cache", "_decisions", "last_method")


class ConvertReport(NamedTuple):
    """What :func:`convert` did, by qualified module name (``""`` for the model itself).

    Attributes:
        converted: the layers replaced by FFT layers.
        skipped: ``{name: reason}`` for the ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d`` layers
            left as they were (kernel below ``min_kernel_size``, a subclass, an uninitialised
            lazy layer).
    """

    converted: list[str]
    skipped: dict[str, str]


def _unparametrized_type(m: nn.Module) -> type[nn.Module]:
    """The class of ``m`` before ``torch.nn.utils.parametrize`` wrapped it."""
    return type(m).__bases__[0] if parametrize.is_parametrized(m) else type(m)


def _unconvertible(m: nn.Module, base: type[nn.modules.conv._ConvNd]) -> str | None:
    """Why ``m``, an instance of ``base``, cannot become an FFT layer that computes the same."""
    cls = _unparametrized_type(m)
    if cls is base:
        return None
    if isinstance(m, nn.modules.lazy.LazyModuleMixin):
        return f"{cls.__name__} is a lazy layer not initialised yet (run one forward first)"
    if cls.forward is not base.forward or getattr(cls, "_conv_forward", None) is not base._conv_forward:
        return f"{cls.__name__} overrides forward, which an FFT layer would not run"
    return f"{cls.__name__} subclasses {base.__name__}; its own methods would be lost"


def _rebuild(old: nn.Module, cls: type[_M], drop: tuple[str, ...] = ()) -> _M:
    """A ``cls`` layer that takes over the whole state of ``old``.

    The very parameters, buffers, parametrizations, hooks (so the handles returned for ``old``
    still remove them) and other attributes, except the names in ``drop``, are shared; only the
    class changes.
    """
    state = {k: v for k, v in vars(old).items() if k not in drop}
    for k in ("_parameters", "_buffers", "_modules"):
        state[k] = dict(state[k])
    plists = state["_modules"].pop("parametrizations", None)
    new = cls.__new__(cls)
    new.__dict__.update(state)
    if plists is not None:
        # Let torch make `new` parametrized (its class and properties), then hand it the
        # original parametrization lists (their parameters, buffers and state_dict keys).
        for name, plist in plists.items():
            new.register_buffer(name, torch.empty(0))  # placeholder, moved away right below
            parametrize.register_parametrization(new, name, nn.Identity(), unsafe=True)
            assert isinstance(new.parametrizations, nn.ModuleDict)
            new.parametrizations[name] = plist
    return new


def convert(model: nn.Module, method: str = "auto", min_kernel_size: int | None = None, *, report: bool = False):
    """Replace the ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d`` layers of ``model`` (in place) by
    FFT layers.

    Each new layer takes over the old one's state: the same ``Parameter`` objects,
    parametrizations (``torch.nn.utils.parametrizations.weight_norm`` and the like, and
    :func:`cnnconv.constraints.constrain`), buffers, hooks (old-style ``spectral_norm`` /
    ``weight_norm`` included) and attributes, so outputs, ``state_dict`` keys, optimizers and hook
    handles are unaffected. Treat a replaced layer as gone: it shares that state.

    Left alone: transposed convolutions, layers that already are FFT layers, layers whose largest
    kernel side is below ``min_kernel_size``, and layers that cannot be converted faithfully
    (subclasses of ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d``, such as weight-standardising
    convolutions that override ``forward``, and uninitialised lazy layers); the latter are named,
    with the reason, in one ``UserWarning``.

    Args:
        model: a module; if it is itself a convolution, the converted layer is returned.
        method: ``"auto"``, ``"fft"`` or ``"direct"`` for the new layers.
        min_kernel_size: only layers whose largest kernel side is at least this are converted.
            Default: :data:`FFT_MIN_KERNEL_SIZE` for ``method="fft"`` (small kernels are
            cheaper direct), 1 (every layer) otherwise (``"auto"`` keeps them direct anyway).
        report: also return a :class:`ConvertReport`.

    Returns:
        The model (converted in place), or the new layer when ``model`` is a convolution; with
        ``report=True`` the pair ``(model, ConvertReport)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 31))
        >>> net, rep = convert(net, method="fft", report=True)
        >>> [type(m).__name__ for m in net], rep.converted
        (['Conv2d', 'ReLU', 'FFTConv2d'], ['2'])
    """
    _check_method(method)
    if min_kernel_size is None:
        min_kernel_size = FFT_MIN_KERNEL_SIZE if method == "fft" else 1
    if isinstance(min_kernel_size, bool) or not isinstance(min_kernel_size, int):
        raise TypeError(f"min_kernel_size must be an int, got {min_kernel_size!r}")
    if min_kernel_size < 1:
        raise ValueError(f"min_kernel_size must be positive, got {min_kernel_size}")
    if not isinstance(report, bool):
        raise TypeError(f"report must be a bool, got {report!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    done = ConvertReport([], {})
    unfaithful = []

    def swap(m: nn.Module, name: str):
        if isinstance(m, _FFTConvMixin):
            return None
        for base, cls in _PAIRS:
            if not isinstance(m, base):
                continue
            reason = _unconvertible(m, base)
            if reason is not None:
                unfaithful.append(f"{name!r} ({reason})")
            elif max(m.kernel_size) < min_kernel_size:
                reason = f"kernel {tuple(m.kernel_size)} is smaller than min_kernel_size={min_kernel_size}"
            else:
                new = _rebuild(m, cls)
                new._init_fft(method)
                done.converted.append(name)
                return new
            done.skipped[name] = reason
        return None

    model = _replace(model, swap)
    if unfaithful:
        warnings.warn(
            f"convert left {len(unfaithful)} layer(s) as they were: {', '.join(unfaithful)}",
            stacklevel=2,
        )
    return (model, done) if report else model


def convert_back(model: nn.Module) -> nn.Module:
    """Replace :class:`FFTConv1d` / :class:`FFTConv2d` / :class:`FFTConv3d` layers by plain
    PyTorch layers (in place).

    The new layers take over the state of the FFT layers as :func:`convert` does (parameters,
    parametrizations, buffers, hooks). :class:`cnnconv.learnable.LearnableConv2d` layers
    (FFTConv2d subclasses that also carry kernel names) are left as they are; their
    ``state_dict`` already loads into ``nn.Conv2d``.

    Args:
        model: a module, or a single FFT layer (then the new layer is returned).

    Returns:
        The model, or the new layer.

    Raises:
        ValueError: a layer has ``padding="causal"``, which ``nn.Conv1d`` cannot express
            (checked before anything is replaced).

    Example:
        >>> net = convert(nn.Sequential(nn.Conv2d(3, 8, 3)), method="fft", min_kernel_size=1)
        >>> type(convert_back(net)[0]).__name__
        'Conv2d'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    causal = [
        name
        for name, m in model.named_modules()
        if isinstance(m, _FFTConvMixin) and m._convert_back and m.padding == "causal"
    ]
    if causal:
        raise ValueError(
            f"convert_back cannot replace layer(s) {', '.join(map(repr, causal))}: they have "
            "padding='causal', which nn.Conv1d cannot express (nothing was replaced)"
        )

    def swap(m: nn.Module, name: str):
        for base, cls in _PAIRS:
            if isinstance(m, cls) and m._convert_back:
                return _rebuild(m, base, drop=_FFT_ATTRS)
        return None

    return _replace(model, swap)


def _replace(model: nn.Module, swap, name: str = "") -> nn.Module:
    new = swap(model, name)
    if new is not None:
        return new
    for child_name, child in list(model.named_children()):
        replaced = _replace(child, swap, f"{name}.{child_name}" if name else child_name)
        if replaced is not child:
            setattr(model, child_name, replaced)
    return model
