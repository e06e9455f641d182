"""Backend-neutral rows of the catalog: a trained codec as ``vecext.codecs`` /
``vecext.codec_arrays`` / ``vecext.codebook_vectors`` rows, and back.

Both database adapters write and read exactly these rows, so a codec saved in
PostgreSQL and one saved in DuckDB are the same bytes and the same fingerprint.

``codec_arrays`` holds each state array bit for bit (little-endian). The same
arrays are also laid out as float vectors in ``codebook_vectors`` so that SQL can
encode and build lookup tables without Python:

* a 3-D array ``(M, K, dsub)`` (PQ ``centroids``): ``part=name, sub=m, idx=k``;
* a 2-D array ``(r, c)`` (``rotation``, ``pretransform.projection``): one row per
  ``idx``, ``sub = 0``;
* a 1-D array (``mean``, ``vmin``, ...): one vector, ``sub = 0, idx = 0``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecext.codecs import Codec, CodecError, CodecState, CodecVersionError, codec_from_state

#: Codec and adapter names: lower-case SQL identifiers, short enough that the
#: per-codec SQL functions (``<name>_distance`` ...) stay within 63 bytes.
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def check_name(name: str, what: str = "codec") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CodecError(
            f"invalid {what} name {name!r}: use 1-48 characters of a-z, 0-9 and _, "
            "starting with a letter or _"
        )
    return name


@dataclass(frozen=True)
class ArrayRow:
    name: str
    dtype: str  # numpy dtype string, little-endian ('<f4', '|u1', ...)
    shape: list[int]
    data: bytes


@dataclass(frozen=True)
class VectorRow:
    part: str
    sub: int
    idx: int
    vec: np.ndarray  # float32, 1-D


@dataclass
class CodecRecord:
    """A codec as catalog rows."""

    name: str
    kind: str
    dim: int
    metric: str
    code_size: int
    params: dict[str, Any]
    fingerprint: str
    format_version: int
    arrays: list[ArrayRow] = field(default_factory=list)
    vectors: list[VectorRow] = field(default_factory=list)

    @property
    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True, separators=(",", ":"))


def array_to_row(name: str, a: np.ndarray) -> ArrayRow:
    a = np.asarray(a)
    le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return ArrayRow(name, le.dtype.str, list(le.shape), le.tobytes())


def row_to_array(dtype: str, shape: list[int] | tuple[int, ...], data: bytes) -> np.ndarray:
    arr = np.frombuffer(bytes(data), dtype=np.dtype(dtype))
    expected = int(np.prod(shape)) if len(shape) else 1
    if arr.size != expected:
        raise CodecError(
            f"catalog array holds {arr.size} values, its shape {list(shape)} needs {expected}"
        )
    return arr.reshape(tuple(shape)).copy()


def _vectors(name: str, a: np.ndarray) -> list[VectorRow]:
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return []  # only float arrays are meaningful as pgvector vectors
    a = a.astype(np.float32)
    if a.ndim == 1:
        return [VectorRow(name, 0, 0, a)]
    if a.ndim == 2:
        return [VectorRow(name, 0, i, a[i]) for i in range(a.shape[0])]
    if a.ndim == 3:
        return [
            VectorRow(name, m, k, a[m, k]) for m in range(a.shape[0]) for k in range(a.shape[1])
        ]
    return []


def codec_record(name: str, codec: Codec) -> CodecRecord:
    """Catalog rows for a trained codec."""
    check_name(name)
    if not codec.is_trained:
        raise CodecError(f"codec {name!r} is not trained: train it before saving")
    state = codec.to_state()
    arrays = [array_to_row(k, v) for k, v in sorted(state.arrays.items())]
    vectors = [v for k, a in sorted(state.arrays.items()) for v in _vectors(k, a)]
    return CodecRecord(
        name=name,
        kind=state.kind,
        dim=codec.d,
        metric=codec.metric,
        code_size=codec.code_size,
        params=state.params,
        fingerprint=state.fingerprint(),
        format_version=int(state.params.get("format", 1)),
        arrays=arrays,
        vectors=vectors,
    )


def codec_from_rows(
    name: str,
    kind: str,
    params: dict[str, Any] | str,
    fingerprint: str,
    arrays: list[tuple[str, str, list[int], bytes]],
) -> Codec:
    """Rebuild a codec from its catalog rows and check it is the version recorded."""
    if isinstance(params, str):
        params = json.loads(params)
    state = CodecState(
        kind, dict(params), {n: row_to_array(dt, shape, data) for n, dt, shape, data in arrays}
    )
    got = state.fingerprint()
    if got != fingerprint:
        raise CodecVersionError(
            f"codec {name!r} in the catalog is inconsistent: its arrays hash to {got}, "
            f"the catalog records {fingerprint}"
        )
    return codec_from_state(state)
