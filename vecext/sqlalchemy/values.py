"""Conversions between Python code values and what PostgreSQL stores.

Every code column's Python value is the codec's own code row: a 1-D ``uint8``
array equal to ``codec.encode(x)[i]``. In the database PQ, int8 and rbq codes are
``bytea``; binary codes are pgvector ``bit(d)`` (dimension 0 first, the order of
``np.packbits(..., bitorder="big")``); half codes are ``halfvec(d)`` (the
little-endian float16 bytes of the code, viewed as numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.errors import VecextError


class CodeValueError(VecextError, ValueError):
    """A value bound to a code column has the wrong type or width."""


def _where(column: str | None) -> str:
    return f" for column {column}" if column else ""


def _one_code(value: Any, kind: str, column: str | None) -> np.ndarray:
    """``value`` as one 1-D code row (a ``(1, n)`` array is taken as its row)."""
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise CodeValueError(
            f"{kind} codes{_where(column)} must be one code (1-D), got shape {arr.shape}"
        )
    return arr


def bytes_to_db(value: Any, width: int, kind: str, column: str | None = None) -> bytes | None:
    """uint8 array / bytes of exactly ``width`` bytes -> ``bytes`` for a bytea column."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        out = bytes(value)
    else:
        arr = np.asarray(value)
        if arr.dtype != np.uint8:
            raise CodeValueError(
                f"{kind} codes{_where(column)} must be bytes or a uint8 array, got dtype {arr.dtype}"
            )
        out = _one_code(arr, kind, column).tobytes()
    if len(out) != width:
        raise CodeValueError(
            f"{kind} codes{_where(column)} are {len(out)} bytes wide, expected {width}"
        )
    return out


def bytes_from_db(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    return np.frombuffer(bytes(value), dtype=np.uint8).copy()


def bits_to_db(value: Any, dim: int, column: str | None = None) -> str | None:
    """Packed uint8 codes, a bool array of ``dim`` bits or a ``'0101'`` string -> bit text."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif type(value).__name__ == "Bit" and hasattr(value, "to_text"):  # pgvector.Bit
        text = value.to_text()
    else:
        arr = _one_code(value, "binary", column)
        if arr.dtype == np.bool_:
            bits = arr
        elif arr.dtype == np.uint8:
            nbytes = (dim + 7) // 8
            if arr.shape[0] != nbytes:
                raise CodeValueError(
                    f"binary codes{_where(column)} are {arr.shape[0]} bytes wide, expected "
                    f"{nbytes} ({dim} bits packed)"
                )
            bits = np.unpackbits(arr, count=dim, bitorder="big").astype(bool)
        else:
            raise CodeValueError(
                f"binary codes{_where(column)} must be packed uint8 codes, a bool array or a "
                f"bit string, got dtype {arr.dtype}"
            )
        text = "".join("1" if b else "0" for b in bits)
    if len(text) != dim or set(text) - {"0", "1"}:
        raise CodeValueError(
            f"binary codes{_where(column)} must be {dim} bits of 0/1, got {len(text)} characters"
        )
    return text


def bits_from_db(value: Any, dim: int | None) -> np.ndarray | None:
    """bit text (or pgvector.Bit) -> packed uint8 codes, as the binary codec encodes."""
    if value is None:
        return None
    text = value.to_text() if hasattr(value, "to_text") else str(value)
    bits = np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")
    return np.packbits(bits, bitorder="big")


def half_to_db(value: Any, dim: int, column: str | None = None) -> Any:
    """uint8 half codes (``2 * dim`` bytes) or float values -> a float16 array."""
    if value is None:
        return None
    arr = _one_code(value, "half", column)
    if arr.dtype == np.uint8:
        if arr.shape[0] != 2 * dim:
            raise CodeValueError(
                f"half codes{_where(column)} are {arr.shape[0]} bytes wide, expected {2 * dim}"
            )
        halves = arr.view("<f2")
    elif arr.dtype.kind in "fi":
        if arr.shape[0] != dim:
            raise CodeValueError(
                f"half codes{_where(column)} have dimension {arr.shape[0]}, expected {dim}"
            )
        halves = arr.astype("<f2")
    else:
        raise CodeValueError(
            f"half codes{_where(column)} must be uint8 codes or numbers, got dtype {arr.dtype}"
        )
    if not np.isfinite(halves).all():
        raise CodeValueError(f"half codes{_where(column)} hold NaN or infinite values")
    return halves.astype(np.float32)


def half_from_db(value: Any) -> np.ndarray | None:
    """halfvec (pgvector HalfVector, list or text) -> the codec's uint8 code row."""
    if value is None:
        return None
    if hasattr(value, "to_numpy"):
        arr = np.asarray(value.to_numpy())
    elif isinstance(value, str):
        arr = np.asarray([float(x) for x in value.strip("[]").split(",") if x], dtype=np.float32)
    else:
        arr = np.asarray(value)
    return np.ascontiguousarray(arr.astype("<f2")).view(np.uint8).copy()
