"""Vector codecs: PQ/OPQ, binary, residual binary, int8, float16, PCA/Matryoshka.

Pure numpy + FAISS; no database imports. See :mod:`vecext.codecs.base` for the
distance conventions. Importing it makes FAISS fork-safe (:mod:`vecext.codecs.forksafe`).
"""

from vecext.codecs import forksafe
from vecext.codecs.base import (
    METRICS,
    Codec,
    CodecError,
    CodecState,
    CodecVersionError,
    check_fingerprint,
)
from vecext.codecs.binary import BinaryCodec, RBQCodec, hamming
from vecext.codecs.kinds import KINDS, CodecKind, codec_kind
from vecext.codecs.pq import PQCodec
from vecext.codecs.registry import (
    KNOWN_CODECS,
    codec_from_state,
    codec_params,
    dump_state,
    load_state,
    make_codec,
)
from vecext.codecs.scalar import HalfCodec, Int8Codec
from vecext.codecs.transforms import PCA, Matryoshka, Transform

forksafe.register()

__all__ = [
    "KINDS",
    "KNOWN_CODECS",
    "METRICS",
    "PCA",
    "BinaryCodec",
    "Codec",
    "CodecKind",
    "CodecError",
    "CodecState",
    "CodecVersionError",
    "HalfCodec",
    "Int8Codec",
    "Matryoshka",
    "PQCodec",
    "RBQCodec",
    "Transform",
    "check_fingerprint",
    "codec_from_state",
    "codec_kind",
    "codec_params",
    "dump_state",
    "hamming",
    "load_state",
    "make_codec",
]
