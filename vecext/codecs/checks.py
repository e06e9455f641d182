"""Errors and input checks shared by every codec and pre-transform.

Input rules: float16/float32/float64 (and integer) arrays are converted to
C-contiguous float32; a 1-D array of length ``d`` is accepted as one row; any other
shape, NaN or infinite values, or the wrong dimension raise :class:`CodecError`.
Codes are ``(n, code_size)`` ``uint8`` arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.errors import VecextError

__all__ = [
    "METRICS",
    "CodecError",
    "CodecVersionError",
    "as_codes",
    "as_float32_rows",
    "normalize_rows",
    "positive_int",
]

METRICS = ("l2", "ip", "cosine")


class CodecError(VecextError, ValueError):
    """Bad input to a codec: shape, dtype, values, parameters or training state."""


class CodecVersionError(CodecError):
    """Codes were produced by a different trained codec (fingerprint mismatch)."""


def positive_int(value: Any, name: str, where: str = "") -> int:
    """``value`` as an ``int`` if it is a positive integer (``bool`` is not), else a
    :class:`CodecError` naming ``name``; ``where`` prefixes the message (``"pq: "``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CodecError(f"{where}{name} must be a positive integer, got {value!r}")
    return int(value)


def as_float32_rows(x: Any, d: int, name: str = "x") -> np.ndarray:
    """Check and convert ``x`` to a C-contiguous ``(n, d)`` float32 array.

    A 1-D array of length ``d`` is one row. Raises :class:`CodecError` on the wrong
    shape or dimension, a non-numeric dtype, or NaN / infinite values.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise CodecError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = _rows(x, d, name, "dimension {got}, expected {d}", "has")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = int((~finite).sum())
        raise CodecError(
            f"{name} has {bad} row(s) with NaN or infinite values "
            f"(after conversion to float32; first bad row {int(np.argmin(finite))})"
        )
    return x


def as_codes(codes: Any, code_size: int, what: str = "codes") -> np.ndarray:
    """Check ``codes`` is a ``(n, code_size)`` uint8 array (1-D = one code)."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise CodecError(f"{what} must have dtype uint8, got {codes.dtype}")
    codes = _rows(codes, code_size, what, "width {got} bytes, expected {d}", "have")
    return np.ascontiguousarray(codes)


def _rows(a: np.ndarray, d: int, name: str, width: str, verb: str) -> np.ndarray:
    """``a`` as 2-D ``(n, d)`` (a 1-D array is one row), else a :class:`CodecError`
    that says ``{name} {verb} {width}`` for a wrong second dimension."""
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise CodecError(f"{name} must be 2-D (n, {d}), got shape {a.shape}")
    if a.shape[1] != d:
        raise CodecError(f"{name} {verb} " + width.format(got=a.shape[1], d=d))
    return a


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows (float32); zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)
