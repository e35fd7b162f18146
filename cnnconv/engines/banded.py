"""Banded CPU engine for gradient pairs from small 1-D factors (Sobel, Prewitt, Scharr).

The x gradient is ``outer(smooth, diff)`` and the y gradient its transpose. With a handful of
taps, each 1-D pass is a few multiply-adds over shifted views. Done on the whole image, the
pair needs three full-size temporaries (padded copy, gx, gy). Each costs a page fault per 4 KiB
page whenever the C allocator has handed the previous one back to the system, which depends on
the process's allocation history: the convolution path measured 24 ms in a fresh process and
9 ms in a busy one. This engine walks the output in bands of rows instead:

* a band reads the input rows it needs as a view of the input; only the first and last bands,
  whose rows reach past the image, gather theirs (border rule applied) into a small buffer;
* the vertical pass writes the image columns of a band-sized scratch buffer, whose margin
  columns are then filled by the border rule (vertical filtering commutes with column padding),
  and the horizontal pass reads it;
* the passes write with ``out=``; symmetric and antisymmetric pairs of taps are folded
  (``[1, 2, 1]`` is an add and a scaled add, ``[-1, 0, 1]`` one subtraction);
* magnitude and direction are computed per band. The scratch buffers (about 2 MiB each) are
  allocated once per call and stay in cache, so only the output is fresh memory. The output
  is contiguous ``(B, C, H, W)``.

It computes what the depthwise-convolution path computes (same correlation, border and output
size) up to float rounding. :func:`cnnconv.functional.apply_gradient` (``method="auto"``,
factors of at most :data:`MAX_TAPS` taps) uses it on the CPU in float32/float64 when no
autograd graph is needed.
"""

from __future__ import annotations

import torch

from cnnconv.engines.padding import _indices, fill_border, fills_from_interior, tracing

# Elements per band buffer: about 2 MiB in float32, so the five working buffers of a band sit
# in the last-level cache and stay well below the size of the output.
_BAND_ELEMENTS = 1 << 19

# Gradient factors with more taps than this go to the convolution engines.
MAX_TAPS = 7


def _terms(coeffs: list[float]) -> list[tuple[int, int | None, float, float]]:
    """``sum_i coeffs[i] * x_i`` as terms ``(i, j, c, s)`` meaning ``c * (x_i + s * x_j)``
    (``j`` None: ``c * x_i``), folding pairs of taps with equal or opposite weights."""
    k = len(coeffs)
    terms: list[tuple[int, int | None, float, float]] = []
    for i in range(k // 2):
        j = k - 1 - i
        a, b = coeffs[i], coeffs[j]
        if a == b == 0:
            continue
        if a == b:
            terms.append((j, i, b, 1.0))
        elif a == -b:
            terms.append((j, i, b, -1.0))
        else:
            terms.extend((t, None, c, 0.0) for t, c in ((i, a), (j, b)) if c != 0)
    if k % 2 and coeffs[k // 2] != 0:
        terms.append((k // 2, None, coeffs[k // 2], 0.0))
    # The first term is written, not added: a pair costs one operation there when its weight
    # is 1 (x_i + s x_j), or -1 with opposite taps (x_j - x_i); a single tap always costs one.
    terms = [_flip_negative(t) for t in terms]
    terms.sort(key=lambda t: 0 if t[1] is not None and t[2] == 1.0 else 1 if t[1] is None else 2)
    return terms


def _flip_negative(term: tuple[int, int | None, float, float]) -> tuple[int, int | None, float, float]:
    """``-(x_i - x_j)`` as ``x_j - x_i``: an antisymmetric pair never needs a negative weight."""
    i, j, c, s = term
    if j is not None and s == -1.0 and c < 0:
        return (j, i, -c, s)
    return term


def _taps(src, terms, out: torch.Tensor) -> torch.Tensor:
    """``out = sum over terms`` where ``src(i)`` is the i-th shifted view."""
    if not terms:
        return out.zero_()
    i, j, c, s = terms[0]
    if j is None:
        torch.mul(src(i), c, out=out)
    else:
        torch.add(src(i), src(j), alpha=s, out=out)
        if c != 1.0:
            out.mul_(c)
    for i, j, c, s in terms[1:]:
        out.add_(src(i), alpha=c)
        if j is not None:
            out.add_(src(j), alpha=c * s)
    return out


def usable(x4: torch.Tensor) -> bool:
    """Whether the banded engine may run: CPU, float32/float64, no autograd graph wanted, no
    graph being captured (it reads the kernel's values and writes in place)."""
    return (
        x4.device.type == "cpu"
        and x4.dtype in (torch.float32, torch.float64)
        and x4.numel() > 0
        and not (torch.is_grad_enabled() and x4.requires_grad)
        and not tracing()
    )


def _row_sources(x4: torch.Tensor, kh: int, pads, border: str, band: int):
    """Walk the output in bands of ``band`` rows.

    Yields ``(o0, m, rows)``: output rows ``o0 .. o0 + m - 1`` and the ``m + kh - 1`` border-
    padded input rows they need, ``(N, m + kh - 1, W)`` (columns not padded). Interior bands
    view the input; bands that reach past the top or bottom edge gather into one buffer reused
    by every such band.
    """
    b, c, h, w = x4.shape
    n = b * c
    top, bottom = pads[0], pads[1]
    ho = h + top + bottom - kh + 1
    planes = x4.reshape(n, h, w) if x4.is_contiguous() else None
    row_map = _index_map(h, top, bottom, border)
    buf = None
    for o0 in range(0, ho, band):
        m = min(band, ho - o0)
        first = o0 - top  # input row of the band's first padded row
        if planes is not None and first >= 0 and first + m + kh - 1 <= h:
            yield o0, m, planes[:, first : first + m + kh - 1]
            continue
        if buf is None:
            buf = x4.new_empty((n, band + kh - 1, w))
        rows = buf[:, : m + kh - 1]
        _gather_rows(rows.view(b, c, -1, w), x4, row_map[o0 : o0 + m + kh - 1])
        yield o0, m, rows


def _gather_rows(dst: torch.Tensor, x4: torch.Tensor, index: torch.Tensor) -> None:
    """``dst[:, :, r] = x4[:, :, index[r]]`` (zeros where ``index`` is -1): the run of
    in-range rows by one strided copy, the rest gathered."""
    inside = ((index >= 0) & (index < x4.shape[2])).nonzero().flatten()
    lo = hi = 0
    if len(inside):
        lo, hi = int(inside[0]), int(inside[-1]) + 1
        start = int(index[lo])
        if torch.equal(index[lo:hi], torch.arange(start, start + hi - lo)):
            dst[:, :, lo:hi].copy_(x4[:, :, start : start + hi - lo])
        else:
            lo = hi = 0
    for a, z in ((0, lo), (hi, dst.shape[2])):
        if z > a:
            _gather(dst[:, :, a:z], x4, 2, index[a:z])


def _output(x4: torch.Tensor, pads, kh: int, kw: int, extra=()) -> torch.Tensor:
    b, c, h, w = x4.shape
    top, bottom, left, right = pads
    shape = (b, c, *extra, h + top + bottom - kh + 1, w + left + right - kw + 1)
    return torch.empty(shape, dtype=x4.dtype, device=x4.device)


def _column_padder(w: int, left: int, right: int, border: str):
    """In-place filler of the ``left``/``right`` margin columns of a ``(N, rows, Wp)`` buffer
    whose columns ``left .. left + w - 1`` hold image columns."""
    if fills_from_interior(border, left, right, w):
        return lambda buf: fill_border(buf, 2, left, right, w, border)
    col_map = _index_map(w, left, right, border)
    wp = w + left + right

    def pad(buf):
        for a, z in ((0, left), (left + w, wp)):
            if z > a:
                index = col_map[a:z]
                _gather(buf[..., a:z], buf, 2, torch.where(index < 0, index, index + left))

    return pad


def gradient(x4: torch.Tensor, smooth, diff, pads, border: str, output: str, eps: float = 0.0) -> torch.Tensor:
    """Gradient of a ``(B, C, H, W)`` batch by ``outer(smooth, diff)`` and its transpose.

    Args:
        x4: input batch (any strides).
        smooth, diff: the 1-D factors, tensors of the same length ``k``.
        pads: ``(top, bottom, left, right)`` from :func:`cnnconv.engines.padding.output_padding`.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        output: ``"x"``, ``"y"``, ``"xy"``, ``"magnitude"`` or ``"direction"``.
        eps: the magnitude is ``sqrt(gx^2 + gy^2 + eps)``.

    Returns:
        Contiguous ``(B, C, Ho, Wo)``, or ``(B, C, 2, Ho, Wo)`` for ``"xy"``.
    """
    s = [float(v) for v in smooth.tolist()]
    d = [float(v) for v in diff.tolist()]
    k = len(s)
    b, c, _, w = x4.shape
    n = b * c
    _, _, left, right = pads
    wp = w + left + right
    out = _output(x4, pads, k, k, (2,) if output == "xy" else ())
    flat = out.view(n, *out.shape[2:])
    wo = out.shape[-1]
    want_x, want_y = output != "y", output != "x"
    both = output in ("magnitude", "direction")
    smooth_terms, diff_terms = _terms(s), _terms(d)
    pad_columns = _column_padder(w, left, right, border)
    band = _band_rows(x4, k, pads, wp)
    scratch = [x4.new_empty((n, band, wp)) for _ in range(3 if both else 1)]  # reused by every band
    for o0, m, rows in _row_sources(x4, k, pads, border, band):
        v = scratch[0][:, :m]

        def vsrc(i, rows=rows, m=m):
            return rows[:, i : i + m]

        def hsrc(j, v=v):
            return v[..., j : j + wo]

        def vertical(terms, v=v):
            """Vertical pass into the image columns of ``v``, then its column margins."""
            _taps(vsrc, terms, v[..., left : left + w])
            pad_columns(v)

        if output == "xy":
            tx, ty = flat[:, 0, o0 : o0 + m], flat[:, 1, o0 : o0 + m]
        elif both:
            tx, ty = scratch[1][:, :m, :wo], scratch[2][:, :m, :wo]
        else:
            tx = ty = flat[:, o0 : o0 + m]
        if want_x:  # smooth down the columns, differentiate along the rows
            vertical(smooth_terms)
            _taps(hsrc, diff_terms, tx)
        if want_y:  # differentiate down the columns, smooth along the rows
            vertical(diff_terms)
            _taps(hsrc, smooth_terms, ty)
        if output == "magnitude":
            tx.square_().addcmul_(ty, ty)
            if eps:
                tx.add_(eps)
            torch.sqrt(tx, out=flat[:, o0 : o0 + m])
        elif output == "direction":
            torch.atan2(ty, tx, out=flat[:, o0 : o0 + m])
    return out


def _band_rows(x4: torch.Tensor, kh: int, pads, width: int) -> int:
    """Rows per band: ``_BAND_ELEMENTS`` elements of rows ``width`` long, over all planes."""
    b, c, h, _ = x4.shape
    ho = h + pads[0] + pads[1] - kh + 1
    return max(1, min(ho, _BAND_ELEMENTS // max(1, b * c * width)))


def _index_map(n: int, before: int, after: int, border: str) -> torch.Tensor:
    """Input index of every padded position ``-before .. n + after - 1``; -1 for a zero."""
    if border == "zeros":
        i = torch.arange(-before, n + after)
        return torch.where((i >= 0) & (i < n), i, -1)
    return _indices(n, before, after, border, "cpu")


def _gather(dst: torch.Tensor, src: torch.Tensor, dim: int, index: torch.Tensor) -> None:
    """``dst = src.index_select(dim, index)``, with -1 entries of ``index`` giving zeros."""
    picked = src.index_select(dim, index.clamp(min=0))
    missing = index < 0
    if bool(missing.any()):
        shape = [1] * picked.ndim
        shape[dim] = -1
        picked.masked_fill_(missing.reshape(shape), 0)
    dst.copy_(picked)
