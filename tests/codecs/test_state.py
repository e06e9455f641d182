"""State round trips and fingerprints for every codec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vecext.codecs import (
    KNOWN_CODECS,
    CodecError,
    CodecVersionError,
    check_fingerprint,
    codec_from_state,
    dump_state,
    load_state,
    make_codec,
)

CASES = [
    ("pq", "l2", {"m": 8, "niter": 4}),
    ("pq", "ip", {"m": 8, "niter": 4, "opq": True, "opq_niter": 3}),
    ("pq", "cosine", {"m": 4, "niter": 4, "pretransform": "pca:16"}),
    ("binary", "l2", {}),
    ("binary", "cosine", {"pretransform": "matryoshka:32"}),
    ("rbq", "l2", {"bits": 2}),
    ("rbq", "ip", {"bits": 4, "pretransform": "pca:32"}),
    ("int8", "l2", {"clip": 0.01}),
    ("int8", "cosine", {"pretransform": "matryoshka:48"}),
    ("half", "ip", {}),
    ("half", "l2", {"pretransform": "pca:24"}),
    ("ivf", "l2", {"nlist": 16, "niter": 4}),
    ("ivf", "cosine", {"nlist": 8, "niter": 4}),
]


def test_every_kind_is_covered() -> None:
    assert {c[0] for c in CASES} == set(KNOWN_CODECS)


@pytest.mark.parametrize(("kind", "metric", "params"), CASES)
def test_state_round_trip(kind: str, metric: str, params: dict, data64) -> None:
    c = make_codec(kind, 64, metric, **params).train(data64["xt"])
    state = c.to_state()
    assert state.kind == kind
    json.dumps(state.params)  # JSON-serialisable
    for name, a in state.arrays.items():
        assert isinstance(a, np.ndarray) and a.dtype == np.float32, name
    fp = c.fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0

    for again in (codec_from_state(state), codec_from_state(load_state(dump_state(state)))):
        assert again.fingerprint == fp
        assert (again.kind, again.metric, again.d, again.code_size) == (
            kind,
            metric,
            64,
            c.code_size,
        )
        xb, xq = data64["xb"][:300], data64["xq"][:5]
        codes = c.encode(xb)
        np.testing.assert_array_equal(again.encode(xb), codes)
        np.testing.assert_array_equal(again.distances(xq, codes), c.distances(xq, codes))
        np.testing.assert_array_equal(again.decode(codes), c.decode(codes))
        check_fingerprint(again, fp)


@pytest.mark.parametrize(
    ("kind", "metric", "params"), [c for c in CASES if c[:2] != ("half", "ip")]
)
def test_fingerprint_changes_when_retrained(kind: str, metric: str, params: dict, data64) -> None:
    a = make_codec(kind, 64, metric, **params).train(data64["xt"])
    b = make_codec(kind, 64, metric, **params).train(data64["xb"][:3000])
    assert a.fingerprint != b.fingerprint
    with pytest.raises(CodecVersionError) as e:
        check_fingerprint(b, a.fingerprint)
    assert a.fingerprint in str(e.value) and b.fingerprint in str(e.value)
    # same data, same parameters: same fingerprint (training is deterministic)
    c = make_codec(kind, 64, metric, **params).train(data64["xt"])
    assert c.fingerprint == a.fingerprint


def test_fingerprint_depends_on_params() -> None:
    assert make_codec("half", 8, "l2").fingerprint != make_codec("half", 8, "ip").fingerprint


def test_untrained_codec_has_no_fingerprint_or_state() -> None:
    c = make_codec("pq", 16, m=4)
    assert not c.is_trained
    with pytest.raises(CodecError, match="not trained"):
        _ = c.fingerprint
    with pytest.raises(CodecError, match="not trained"):
        c.to_state()


def test_corrupt_states_are_rejected(data64) -> None:
    state = make_codec("pq", 64, m=8, niter=2).train(data64["xt"]).to_state()
    bad = type(state)(state.kind, state.params, {"centroids": state.arrays["centroids"][:4]})
    with pytest.raises(CodecError, match="centroids"):
        codec_from_state(bad)
    with pytest.raises(CodecError, match="missing array 'centroids'"):
        codec_from_state(type(state)(state.kind, state.params, {}))
    with pytest.raises(CodecError, match="format"):
        codec_from_state(type(state)(state.kind, {**state.params, "format": 99}, state.arrays))
    with pytest.raises(CodecError, match="unknown codec kind 'zz'"):
        codec_from_state(type(state)("zz", state.params, state.arrays))
    with pytest.raises(CodecError, match="not a serialised codec state"):
        load_state(b"garbage")
