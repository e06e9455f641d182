"""Codec factory and (de)serialisation of trained codecs.

A trained codec is fully described by its :class:`~vecext.codecs.base.CodecState`:
``kind``, JSON ``params`` (``format``, ``d``, ``metric``, ``pretransform`` and the
codec's constructor keyword arguments) and named numpy ``arrays``. Pretransform
arrays are prefixed ``pretransform.``. :func:`dump_state` / :func:`load_state` turn a
state into one ``.npz`` byte string (no pickle) for a ``bytea`` / ``BLOB`` column.
"""

from __future__ import annotations

import inspect
import io
import json
from typing import Any

import numpy as np

from vecext.codecs.base import STATE_FORMAT, Codec, CodecError, CodecState
from vecext.codecs.kinds import KINDS
from vecext.codecs.transforms import transform_from_state

#: kind -> codec class (from the kind records of :mod:`vecext.codecs.kinds`)
KNOWN_CODECS: dict[str, type[Codec]] = {name: k.codec_class for name, k in KINDS.items()}


def codec_params(kind: str) -> list[str]:
    """Keyword parameters accepted by ``make_codec(kind, d, metric, ...)``."""
    cls = _codec_class(kind)
    names = list(inspect.signature(cls.__init__).parameters)
    return [p for p in names if p not in ("self", "d", "metric")]


def _codec_class(kind: str) -> type[Codec]:
    if kind not in KNOWN_CODECS:
        raise CodecError(
            f"unknown codec kind {kind!r}; known kinds: {', '.join(sorted(KNOWN_CODECS))}"
        )
    return KNOWN_CODECS[kind]


def make_codec(kind: str, d: int, metric: str = "l2", **params: Any) -> Codec:
    """Create an untrained codec.

    Examples
    --------
    >>> make_codec("pq", d=384, m=16, metric="cosine", pretransform="pca:128")
    ... # doctest: +SKIP
    """
    cls = _codec_class(kind)
    allowed = codec_params(kind)
    for name in params:
        if name not in allowed:
            raise CodecError(
                f"unknown parameter {name!r} for codec {kind!r}; allowed: {', '.join(allowed)}"
            )
    return cls(d, metric, **params)


def codec_from_state(state: CodecState) -> Codec:
    """Rebuild a trained codec; its codes and distances equal the original's."""
    if not isinstance(state, CodecState):
        raise CodecError(f"expected a CodecState, got {type(state).__name__}")
    params = dict(state.params)
    fmt = params.pop("format", None)
    if fmt != STATE_FORMAT:
        raise CodecError(f"unsupported codec state format {fmt!r}; expected {STATE_FORMAT}")
    try:
        d, metric, tparams = params.pop("d"), params.pop("metric"), params.pop("pretransform")
    except KeyError as e:
        raise CodecError(f"codec state is missing parameter {e.args[0]!r}") from None
    prefix = "pretransform."
    transform = None
    if tparams is not None:
        tarrays = {k[len(prefix) :]: v for k, v in state.arrays.items() if k.startswith(prefix)}
        transform = transform_from_state(tparams, tarrays)
    codec = make_codec(state.kind, d, metric, pretransform=transform, **params)
    codec._set_trained_from_state(
        {k: v for k, v in state.arrays.items() if not k.startswith(prefix)}
    )
    return codec


def dump_state(state: CodecState) -> bytes:
    """Serialise a state to ``.npz`` bytes (params as JSON in ``__state__``)."""
    meta = json.dumps({"kind": state.kind, "params": state.params}, sort_keys=True)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"a/{k}": np.asarray(v) for k, v in state.arrays.items()}
    arrays["__state__"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_state(data: bytes) -> CodecState:
    """Inverse of :func:`dump_state`."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["__state__"].tobytes().decode())
            arrays = {k[2:]: z[k] for k in z.files if k.startswith("a/")}
    except (OSError, ValueError, KeyError) as e:
        raise CodecError(f"not a serialised codec state: {e}") from None
    return CodecState(meta["kind"], meta["params"], arrays)
