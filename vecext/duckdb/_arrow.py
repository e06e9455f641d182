"""Arrow <-> numpy for the DuckDB adapter: vectors, codes in their three column layouts.

Code column layouts (see :func:`code_layout`):

* ``"u8"``   PQ codes as ``UTINYINT[M]``: one list element per code byte.
* ``"u64"``  binary codes as ``UBIGINT[ceil(code_size / 8)]``. The packed bytes (dimension
  0 in the most significant bit of byte 0, numpy ``packbits(bitorder="big")``) are
  zero-padded to a multiple of 8 and read as *big-endian* 64-bit words, so dimension 0
  is the most significant bit of word 1 and the bit string reads in dimension order.
  Hamming distance is ``sum(bit_count(xor(a[i], b[i])))`` over the words.
* ``"blob"`` anything else: the code bytes as ``BLOB``.

All conversions are vectorised; NULL rows are carried as a boolean ``valid`` mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecext.codecs import Codec, CodecError, codec_kind
from vecext.codecs.kinds import DuckLayout as Layout
from vecext.codecs.kinds import words as n_words


def code_layout(codec: Codec) -> Layout:
    """The column layout of ``codec``'s codes (its kind's ``duckdb_layout``)."""
    return codec_kind(codec).duckdb_layout


def column_sql_type(codec: Codec) -> str:
    """The DuckDB type of a code column for ``codec``."""
    return codec_kind(codec).duckdb_column_type(codec.code_size)


def combine(arr: Any) -> pa.Array:
    """One Arrow array (DuckDB hands UDFs one-chunk ChunkedArrays: no copy then)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def valid_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def list_matrix(arr: Any, width: int, dtype: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as ``(X, valid)``: ``X`` is ``(valid.sum(), width)`` of ``dtype``.

    Every non-NULL list must have ``width`` elements; NULL elements inside a float
    list become NaN (and are then refused by the codec), inside codes they are an error.
    """
    a = combine(arr)
    valid = valid_mask(a)
    if not valid.all():
        a = a.filter(pa.array(valid))
    if len(a) == 0:
        return np.zeros((0, width), dtype=dtype), valid
    lengths = np.asarray(pc.list_value_length(a).to_numpy(zero_copy_only=False))
    if (lengths != width).any():
        bad = int(lengths[np.argmax(lengths != width)])
        raise CodecError(f"{what} has dimension {bad}, expected {width}")
    values = a.flatten()
    if values.null_count and np.dtype(dtype).kind != "f":
        raise CodecError(f"{what} contains NULL elements")
    X = values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return X.reshape(len(a), width), valid


def binary_matrix(arr: Any, width: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A BLOB column as ``(codes, valid)``, ``codes`` ``(valid.sum(), width)`` uint8."""
    a = combine(arr)
    valid = valid_mask(a)
    if not valid.all():
        a = a.filter(pa.array(valid))
    n = len(a)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8), valid
    lengths = np.asarray(pc.binary_length(a).to_numpy(zero_copy_only=False))
    if (lengths != width).any():
        bad = int(lengths[np.argmax(lengths != width)])
        raise CodecError(f"{what} are {bad} bytes wide, expected {width}: codes of another codec?")
    if pa.types.is_large_binary(a.type):
        off_type = np.int64
    elif pa.types.is_binary(a.type):
        off_type = np.int32
    else:
        a = a.cast(pa.binary())
        off_type = np.int32
    offsets = np.frombuffer(a.buffers()[1], dtype=off_type)[a.offset : a.offset + n + 1]
    data = np.frombuffer(a.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[0] + n * width].reshape(n, width).copy(), valid


def bytes_to_words(codes: np.ndarray) -> np.ndarray:
    """``(n, nbytes)`` uint8 -> ``(n, ceil(nbytes / 8))`` uint64, big-endian words."""
    n, nb = codes.shape
    pad = (-nb) % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((n, pad), np.uint8)], axis=1)
    return np.ascontiguousarray(codes).view(">u8").astype(np.uint64)


def words_to_bytes(words: np.ndarray, nbytes: int) -> np.ndarray:
    """Inverse of :func:`bytes_to_words` (padding dropped)."""
    b = np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(words.shape[0], -1)
    return np.ascontiguousarray(b[:, :nbytes])


def codes_from_arrow(
    arr: Any, layout: Layout, code_size: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of any layout as ``(codes uint8 (n_valid, code_size), valid)``."""
    if layout == "blob":
        return binary_matrix(arr, code_size, what)
    if layout == "u8":
        return list_matrix(arr, code_size, np.uint8, what)
    words, valid = list_matrix(arr, n_words(code_size), np.uint64, what)
    return words_to_bytes(words, code_size), valid


# -- numpy -> Arrow ------------------------------------------------------------------


def _scatter(dense: pa.Array, valid: np.ndarray) -> pa.Array:
    """Spread the values of the valid rows over ``len(valid)`` rows, NULL elsewhere."""
    if valid.all():
        return dense
    idx = np.cumsum(valid) - 1
    return dense.take(pa.array(idx, type=pa.int64(), mask=~valid))


def fixed_lists(X: np.ndarray, value_type: pa.DataType) -> pa.Array:
    """``(n, k)`` -> Arrow fixed-size lists (DuckDB ``T[k]``)."""
    return pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), type=value_type), X.shape[1])


def lists(X: np.ndarray, valid: np.ndarray, value_type: pa.DataType) -> pa.Array:
    """``(n_valid, k)`` -> Arrow variable-size lists (DuckDB ``T[]``) with NULL rows."""
    n, k = X.shape
    offsets = np.arange(n + 1, dtype=np.int64) * k
    if n * k < 2**31:
        offsets = offsets.astype(np.int32)
        dense = pa.ListArray.from_arrays(pa.array(offsets), pa.array(X.ravel(), type=value_type))
    else:
        dense = pa.LargeListArray.from_arrays(
            pa.array(offsets), pa.array(X.ravel(), type=value_type)
        )
    return _scatter(dense, valid)


def blobs(codes: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """``(n_valid, k)`` uint8 -> Arrow binary (DuckDB ``BLOB``) with NULL rows."""
    n, k = codes.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * k).astype(np.int32)
    dense = pa.BinaryArray.from_buffers(
        pa.binary(),
        n,
        [
            None,
            pa.py_buffer(offsets.tobytes()),
            pa.py_buffer(np.ascontiguousarray(codes).tobytes()),
        ],
    )
    return dense if valid is None else _scatter(dense, valid)


def floats(D: np.ndarray, valid: np.ndarray) -> pa.Array:
    return _scatter(pa.array(np.asarray(D, dtype=np.float32)), valid)


def codes_to_arrow(
    codes: np.ndarray, layout: Layout, valid: np.ndarray, *, fixed: bool
) -> pa.Array:
    """Codes ``(n_valid, code_size)`` in a column layout; ``fixed``: ``T[k]`` not ``T[]``."""
    if layout == "blob":
        return blobs(codes, valid)
    if layout == "u8":
        X, t = codes, pa.uint8()
    else:
        X, t = bytes_to_words(codes), pa.uint64()
    if fixed:
        return _scatter(fixed_lists(X, t), valid)
    return lists(X, valid, t)
