"""The persisted state of a trained codec, and the fingerprint recipe.

A trained codec is fully described by its :class:`CodecState`: ``kind``, JSON
``params`` and named numpy ``arrays``. Its fingerprint (16 hex chars of sha256) names
one trained version; :func:`state_fingerprint` is the recipe, shared with the
relevance methods' states, so both kinds of catalog row are identified alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["STATE_FORMAT", "CodecState", "canonical_json", "state_fingerprint"]

#: Version of the state layout written by :meth:`vecext.codecs.Codec.to_state`.
STATE_FORMAT = 1


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, no NaN: the same object always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def state_fingerprint(head: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """16 hex chars of sha256 over the canonical JSON of ``head`` and, for each array
    sorted by name, its name, dtype, shape and little-endian bytes."""
    h = hashlib.sha256()
    h.update(canonical_json(dict(head)).encode())
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        # little-endian bytes: the same trained state fingerprints alike on every machine
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        h.update(b"\x00" + name.encode() + b"\x00")
        h.update(a.dtype.str.encode() + json.dumps(list(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


@dataclass
class CodecState:
    """Everything needed to rebuild a trained codec.

    Attributes
    ----------
    kind : str
        Codec kind, a key of ``vecext.codecs.KNOWN_CODECS``.
    params : dict
        JSON-serialisable parameters (``d``, ``metric``, ``pretransform``, ...).
    arrays : dict of str to numpy.ndarray
        Trained arrays (centroids, means, ranges, ...), explicit dtypes.
    """

    kind: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """16 hex chars of sha256 over the canonical JSON of kind + params and, for each
        array sorted by name, its name, dtype, shape and little-endian bytes."""
        return state_fingerprint({"kind": self.kind, "params": self.params}, self.arrays)
