"""cnnconv: learnable and fixed convolutions for PyTorch.

Hand-designed kernels (:mod:`cnnconv.kernels`), a functional API that applies them
(:mod:`cnnconv.functional`), fixed-kernel filter layers (:mod:`cnnconv.filters`), an FFT
convolution engine with drop-in ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` layers (:mod:`cnnconv.fft`,
:mod:`cnnconv.conv`), learnable and parametric layers with constraints
(:mod:`cnnconv.learnable`, :mod:`cnnconv.constraints`, :mod:`cnnconv.parametric`), edge
detection (:mod:`cnnconv.edges`) and kernel inspection (:mod:`cnnconv.analysis`), edge evaluation (:mod:`cnnconv.evaluation`) and
the run machinery of the experiments (:mod:`cnnconv.training`).

Submodules and their public names are imported on first use, so ``import cnnconv`` stays cheap
and optional dependencies are only needed by the parts that use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from cnnconv._utils.version import installed_version

__version__ = installed_version() or "0+unknown"  # pyproject.toml holds the version

# public name -> submodule that defines it
_LAZY_NAMES = {
    # layers
    "Filter2d": "filters",
    "BoxBlur": "filters",
    "GaussianBlur": "filters",
    "Sobel": "filters",
    "Prewitt": "filters",
    "Scharr": "filters",
    "Laplacian": "filters",
    "Sharpen": "filters",
    "FFTConv1d": "conv",
    "FFTConv2d": "conv",
    "FFTConv3d": "conv",
    "convert": "conv",
    "convert_back": "conv",
    "ConvertReport": "conv",
    "LearnableConv2d": "learnable",
    "PixelDifferenceConv2d": "pdc",
    "reparameterize_pdc": "pdc",
    "LongConv1d": "longconv",
    "long_conv1d": "longconv",
    "Filter3d": "filters3d",
    "BoxBlur3d": "filters3d",
    "GaussianBlur3d": "filters3d",
    "Sobel3d": "filters3d",
    "Laplacian3d": "filters3d",
    "export_state_dict": "constraints",
    "constrain": "constraints",
    "remove_constraints": "constraints",
    "LearnableGaussianBlur": "parametric",
    "LearnableGaussianDerivative": "parametric",
    "StructuredConv2d": "parametric",
    "GradientFilter": "edges",
    "non_max_suppression": "edges",
    "hysteresis": "evaluation.edges",
    "edge_map": "evaluation.edges",
    "binarize": "evaluation.edges",
    "extract_kernels": "analysis",
    "describe_kernel": "analysis",
    "match_kernel": "analysis",
    "fit_kernel": "analysis",
    "KernelFit": "analysis",
    "EdgeDetector": "models",
    "SmallCNN": "models",
    # functional entry points
    "correlate2d": "functional",
    "convolve2d": "functional",
    "correlate1d": "functional",
    "convolve1d": "functional",
    "filter3d": "functional3d",
    "correlate3d": "functional3d",
    "convolve3d": "functional3d",
    "fft_conv1d": "fft",
    "fft_conv2d": "fft",
    "fft_conv3d": "fft",
    "get_kernel": "kernels",
    "list_kernels": "kernels",
    "unregister_kernel": "kernels",
}

_SUBMODULES = {
    "kernels",
    "functional",
    "filters",
    "planner",
    "fft",
    "conv",
    "learnable",
    "constraints",
    "parametric",
    "edges",
    "models",
    "analysis",
    "evaluation",
    "training",
    "cli",
    "pdc",
    "longconv",
    "functional3d",
    "filters3d",
}

__all__ = sorted(_LAZY_NAMES) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        module = importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'cnnconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
