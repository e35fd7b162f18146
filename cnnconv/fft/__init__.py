"""FFT convolution engine with exact ``F.conv1d`` / ``F.conv2d`` / ``F.conv3d`` semantics.

The engine computes the cross-correlation PyTorch calls convolution through real FFTs:

* **Only what the output needs.** With zero padding, the padding is never materialised: the
  unpadded input is transformed at a length ``N >= max(n + pad_before, n + pad_after, k)``
  (rounded up to a 5-smooth "fast" length), and the requested window of the circular
  correlation, which equals the linear one there, is read back. ``full`` output therefore costs
  ``n + k - 1`` and ``same`` about ``n + k/2``, never ``n + 2(k-1)``. Other padding modes pad
  explicitly and read the ``valid`` part.
* **Channel mixing** is one batched complex matrix product per frequency,
  ``(F, B, Cin) @ (F, Cin, Cout)`` (per group); grouped layers with one input channel per group
  (depthwise) use elementwise products.
* **Autograd**: a custom :class:`torch.autograd.Function` whose backward computes the input
  gradient (circular convolution with the kernel) and the weight gradient (circular correlation
  of the input with the output gradient) in the frequency domain, reusing the forward spectra.
  When a graph of the backward is requested (double backward), the backward is recomputed with
  differentiable operations from the saved input and weight.
* **Bounded memory**: when the spectra of one call would exceed ``memory_budget`` bytes, the
  padded input is cut into overlapping tiles (overlap-save), which are folded into the batch.
* **Plan once**: the plan of a call (whole plane or tiles, transform sizes, chunks) depends only
  on its geometry (:class:`ConvGeometry`), dtype, device type, memory budget and backend; it is
  built once and kept in a bounded cache, where the planner finds it to price it.
* **Stride** is computed densely and subsampled; **dilation** spreads the kernel with zeros.
* **Causal padding** (1-D, ``padding="causal"``): ``dilation * (k - 1)`` zeros before the
  signal and none after, so output ``i`` depends on inputs ``<= i * stride`` only (with stride
  1 the output has the input's length).
* **Dtypes**: float32 and float64 are computed in their own precision; float16 and bfloat16 in
  float32 and cast back.
* **Non-finite input**: a single NaN or inf would spread over the whole FFT output, so such calls
  fall back to the direct ``F.conv*d`` (``nonfinite="direct"``, default) or raise
  (``nonfinite="raise"``).
* **Exact zeros**: where the input window of an output holds only zeros (e.g. a dead ReLU region
  larger than the kernel), the direct method gives exactly 0 but the transforms leave rounding
  noise of about ``eps * |x| * |w|``, on which a following ReLU would open. Such outputs are set
  to exactly 0 (before the bias) with ``exact_zeros=True`` (default); gradients are unchanged.
  The windows are found exactly from the input's non-zero pattern (boolean sliding windows).
* **PyTorch integration**: under ``torch.autocast`` the arguments are cast as a convolution's
  (floating-point tensors other than float64 to the autocast dtype), the transforms run in
  float32 with autocast off, and the result has the autocast dtype. Meta tensors and
  ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``, ...) take ``F.conv*d``, which
  supports them. Shape and dtype errors are raised as ``F.conv*d`` raises them (subclasses
  of ``RuntimeError``, and of ``ValueError`` / ``TypeError``). The output is contiguous,
  channels_last (channels_last_3d) when the input or weight is (as ``F.conv2d`` /
  ``F.conv3d``).

The package's modules, lowest first: :mod:`~cnnconv.fft.backend` (transforms),
:mod:`~cnnconv.fft.arguments` and :mod:`~cnnconv.fft.geometry` (checks, sizes),
:mod:`~cnnconv.fft.spectral` (spectra, channel mixing), :mod:`~cnnconv.fft.cost` and
:mod:`~cnnconv.fft.plan` (plans), :mod:`~cnnconv.fft.tiling`, :mod:`~cnnconv.fft.autograd`,
:mod:`~cnnconv.fft.cache`, :mod:`~cnnconv.fft.zeros`, :mod:`~cnnconv.fft.ops` (the engine as
``torch.library`` custom ops, for ``torch.compile``) and :mod:`~cnnconv.fft.functional` (the
public functions).

Example:
    >>> import torch, torch.nn.functional as F
    >>> x, w = torch.randn(2, 3, 40, 40), torch.randn(4, 3, 9, 9)
    >>> y = fft_conv2d(x, w, padding="same")
    >>> torch.allclose(y, F.conv2d(x, w, padding="same"), atol=1e-4)
    True
"""

from __future__ import annotations

from .arguments import NONFINITE_MODES, PADDING_MODES, ConvArgumentError, ConvDtypeError
from .backend import FFT_BACKENDS, next_fast_len, set_fft_backend
from .cache import SpectrumCache
from .functional import fft_conv1d, fft_conv2d, fft_conv3d
from .geometry import ConvGeometry
from .plan import DEFAULT_MEMORY_BUDGET, FFTPlan

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "FFT_BACKENDS",
    "NONFINITE_MODES",
    "PADDING_MODES",
    "ConvArgumentError",
    "ConvDtypeError",
    "ConvGeometry",
    "FFTPlan",
    "SpectrumCache",
    "fft_conv1d",
    "fft_conv2d",
    "fft_conv3d",
    "next_fast_len",
    "set_fft_backend",
]
