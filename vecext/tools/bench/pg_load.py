"""The benchmark table's rows as one binary ``COPY`` stream, built with numpy.

``(id bigint, embedding vector(d))`` have a fixed width, so a batch of them is one
structured numpy array (:func:`vecext.postgres.copybin.dump_key_vectors`' layout);
the attribute columns are encoded per column (numbers with numpy, text once per
value) and interleaved row by row. 1M x 768 loads in about the time PostgreSQL needs
to write it, where a ``write_row`` per row spent most of its time in Python.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from vecext.postgres.copybin import HEADER, TRAILER

__all__ = ["HEADER", "TRAILER", "copy_batches"]

#: Rows per ``COPY`` write.
BATCH = 20_000
_NULL = struct.pack(">i", -1)
#: big-endian binary form of each attribute type the bench stores
_NUMERIC = {
    "smallint": ">i2",
    "integer": ">i4",
    "bigint": ">i8",
    "real": ">f4",
    "double precision": ">f8",
    "boolean": "u1",
}


def _fixed(xb: np.ndarray, lo: int, hi: int, n_fields: int) -> np.ndarray:
    d = xb.shape[1]
    dt = np.dtype(
        [("n", ">i2"), ("klen", ">i4"), ("key", ">i8"), ("vlen", ">i4"), ("dim", ">i2"),
         ("unused", ">i2"), ("x", ">f4", (d,))]
    )  # fmt: skip
    rows = np.zeros(hi - lo, dtype=dt)
    rows["n"], rows["klen"], rows["vlen"], rows["dim"] = n_fields, 8, 4 + 4 * d, d
    rows["key"] = np.arange(lo, hi, dtype=np.int64)
    rows["x"] = xb[lo:hi]
    return rows


def _column(values: pa.Array, pg_type: str) -> list[bytes]:
    """Each value's binary COPY field (length, then the value), NULL as length -1."""
    valid = np.asarray(values.is_valid())
    if pg_type in _NUMERIC:
        dt = np.dtype([("len", ">i4"), ("v", _NUMERIC[pg_type])])
        arr = np.zeros(len(values), dtype=dt)
        arr["len"] = dt.itemsize - 4
        filled = values.fill_null(0) if values.null_count else values
        arr["v"] = np.asarray(filled.to_numpy(zero_copy_only=False))
        buf, w = arr.tobytes(), dt.itemsize
        return [buf[i * w : (i + 1) * w] if ok else _NULL for i, ok in enumerate(valid)]
    out = []
    for v in values.to_pylist():
        if v is None:
            out.append(_NULL)
        else:
            b = str(v).encode()
            out.append(struct.pack(">i", len(b)) + b)
    return out


def copy_batches(
    xb: np.ndarray, attrs: pa.Table, cols: list[tuple[str, str]], batch: int = BATCH
) -> Iterator[tuple[int, bytes]]:
    """``(rows, data)`` chunks of a binary COPY of ``(id, embedding, *cols)``: row ``i``
    gets id ``i``; the header comes with the first chunk, the trailer after the last."""
    n = xb.shape[0]
    yield 0, HEADER
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        fixed = _fixed(xb, lo, hi, 2 + len(cols))
        if not cols:
            yield hi - lo, fixed.tobytes()
            continue
        fb, w = fixed.tobytes(), fixed.dtype.itemsize
        fields = [_column(attrs.column(c).slice(lo, hi - lo).combine_chunks(), t) for c, t in cols]
        parts: list[bytes] = []
        for i in range(hi - lo):
            parts.append(fb[i * w : (i + 1) * w])
            parts.extend(f[i] for f in fields)
        yield hi - lo, b"".join(parts)
    yield 0, TRAILER
