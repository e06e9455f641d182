"""PostgreSQL binary COPY of (key, vector) rows and (key, code) rows, with numpy.

Rows with an integer key and a fixed-width vector or code have a fixed size in the
binary COPY format, so a whole batch converts with one structured numpy view,
without a Python loop per row. Other keys travel as text (a loop per row).

Binary formats: ``vector`` = int16 dim, int16 unused, float32 big-endian;
``halfvec`` = int16 dim, int16 unused, float16 big-endian; ``bit`` = int32 length,
bytes (first bit = most significant); ``bytea`` = the bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from vecext.codecs import CodecError, codec_kind

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)

#: fixed-width integer key types and their big-endian numpy dtypes
INT_KEYS = {"smallint": ">i2", "integer": ">i4", "bigint": ">i8"}


def _body(data: bytes) -> memoryview:
    if not data.startswith(SIGNATURE):
        raise CodecError("not a PostgreSQL binary COPY stream")
    flags, ext = struct.unpack_from(">ii", data, len(SIGNATURE))
    start = len(SIGNATURE) + 8 + ext
    if not data.endswith(TRAILER):
        raise CodecError("truncated binary COPY stream")
    return memoryview(data)[start : len(data) - 2]


def parse_key_vectors(data: bytes, d: int, key_type: str | None) -> tuple[list, np.ndarray]:
    """Parse ``COPY (SELECT key, vec ...) TO STDOUT (FORMAT binary)`` (``key_type`` None:
    a single vector column). Keys come back as Python ints, or str for text keys."""
    body = _body(data)
    vec_fields = [("vlen", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("x", ">f4", (d,))]
    if key_type is None or key_type in INT_KEYS:
        fields: list = [("n", ">i2")]
        if key_type is not None:
            width = np.dtype(INT_KEYS[key_type]).itemsize
            fields += [("klen", ">i4"), ("key", INT_KEYS[key_type])]
        dt = np.dtype(fields + vec_fields)
        if len(body) % dt.itemsize:
            raise CodecError("binary COPY rows are not of the expected size (NULL vector?)")
        rows = np.frombuffer(body, dtype=dt)
        if len(rows) and (
            (rows["dim"] != d).any() or (key_type is not None and (rows["klen"] != width).any())
        ):
            raise CodecError(f"binary COPY rows do not hold {d}-dimensional vectors")
        keys = rows["key"].tolist() if key_type is not None else []
        return keys, rows["x"].astype(np.float32)
    # text keys: one row at a time
    keys, xs = [], []
    off, n = 0, len(body)
    vsize = 4 + 4 * d  # int16 dim, int16 unused, d floats
    while off < n:
        (_, klen) = struct.unpack_from(">hi", body, off)
        off += 6
        keys.append(bytes(body[off : off + klen]).decode())
        off += klen
        (vlen,) = struct.unpack_from(">i", body, off)
        if vlen != vsize:
            raise CodecError(f"binary COPY rows do not hold {d}-dimensional vectors")
        xs.append(np.frombuffer(body[off + 8 : off + 4 + vsize], dtype=">f4"))
        off += 4 + vsize
    x = np.vstack(xs).astype(np.float32) if xs else np.zeros((0, d), np.float32)
    return keys, x


def dump_key_vectors(keys: np.ndarray, x: np.ndarray, key_type: str = "integer") -> bytes:
    """Binary COPY data of (integer key, vector) rows, e.g. to load a table fast."""
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    kdt = INT_KEYS[key_type]
    dt = np.dtype(
        [("n", ">i2"), ("klen", ">i4"), ("key", kdt), ("vlen", ">i4"), ("dim", ">i2"),
         ("unused", ">i2"), ("x", ">f4", (d,))]
    )  # fmt: skip
    rows = np.zeros(n, dtype=dt)
    rows["n"], rows["klen"], rows["vlen"], rows["dim"] = 2, np.dtype(kdt).itemsize, 4 + 4 * d, d
    rows["key"] = keys
    rows["x"] = x
    return HEADER + rows.tobytes() + TRAILER


def _payload(kind: str, codes: np.ndarray, d_inner: int) -> tuple[list, dict]:
    """Fields and values of the code column's binary form (its kind's PostgreSQL storage)."""
    n, size = codes.shape
    storage = codec_kind(kind).pg_storage
    if storage == "bit":
        return [("bitlen", ">i4"), ("c", "u1", (size,))], {"bitlen": d_inner, "c": codes}
    if storage == "halfvec":
        halves = codes.view("<f2").reshape(n, d_inner).astype(">f2")
        return (
            [("hdim", ">i2"), ("hunused", ">i2"), ("c", ">f2", (d_inner,))],
            {"hdim": d_inner, "hunused": 0, "c": halves},
        )
    return [("c", "u1", (size,))], {"c": codes}


def dump_key_codes(keys: list, codes: np.ndarray, kind: str, d_inner: int, key_type: str) -> bytes:
    """Binary COPY data of (key, code) rows for a buffer table ``(k, c)``."""
    fields, values = _payload(kind, codes, d_inner)
    clen = int(np.dtype(fields).itemsize)
    if key_type in INT_KEYS:
        kdt = INT_KEYS[key_type]
        dt = np.dtype([("n", ">i2"), ("klen", ">i4"), ("key", kdt), ("clen", ">i4"), *fields])
        rows = np.zeros(len(keys), dtype=dt)
        rows["n"], rows["klen"], rows["clen"] = 2, np.dtype(kdt).itemsize, clen
        rows["key"] = np.asarray(keys, dtype=np.int64)
        for name, value in values.items():
            rows[name] = value
        return HEADER + rows.tobytes() + TRAILER
    # text keys
    cdt = np.dtype(fields)
    crow = np.zeros(len(keys), dtype=cdt)
    for name, value in values.items():
        crow[name] = value
    parts = [HEADER]
    for key, c in zip(keys, crow, strict=True):
        kb = str(key).encode()
        parts.append(struct.pack(">hi", 2, len(kb)) + kb + struct.pack(">i", clen) + c.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
