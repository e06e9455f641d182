"""Every kind of bad input raises a CodecError that names the problem."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vecext.codecs import CodecError, codec_params, make_codec

KINDS = ["pq", "binary", "rbq", "int8", "half"]


def trained(kind: str, data64) -> object:
    extra = {"m": 8, "niter": 2} if kind == "pq" else {}
    return make_codec(kind, 64, **extra).train(data64["xt"])


def test_codec_error_is_value_error() -> None:
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_dimension(kind: str, data64) -> None:
    c = trained(kind, data64)
    with pytest.raises(CodecError, match="x has dimension 63, expected 64"):
        c.encode(data64["xb"][:, :63])
    with pytest.raises(CodecError, match="xq has dimension 65, expected 64"):
        c.search(np.ones((2, 65), np.float32), c.encode(data64["xb"][:10]), 3)
    with pytest.raises(CodecError, match="xt has dimension 32, expected 64"):
        make_codec(kind, 64, **({"m": 8} if kind == "pq" else {})).train(data64["xt"][:, :32])


@pytest.mark.parametrize("kind", KINDS)
def test_nan_and_inf_rows(kind: str, data64) -> None:
    c = trained(kind, data64)
    x = data64["xb"][:10].copy()
    x[2, 5] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(CodecError, match="2 row\\(s\\) with NaN or infinite"):
        c.encode(x)
    with pytest.raises(CodecError, match="xq has 2 row"):
        c.distances(x, c.encode(data64["xb"][:3]))
    if kind != "half":
        with pytest.raises(CodecError, match="xt has 2 row"):
            make_codec(kind, 64, **({"m": 8} if kind == "pq" else {})).train(
                np.vstack([data64["xt"], x])
            )


def test_too_few_training_vectors(data64) -> None:
    with pytest.raises(CodecError, match="at least 256 training vectors, got 255"):
        make_codec("pq", 64, m=8).train(data64["xt"][:255])
    with pytest.raises(CodecError, match="at least 33 training vectors, got 20"):
        make_codec("int8", 64, pretransform="pca:32").train(data64["xt"][:20])
    with pytest.raises(CodecError, match="at least 1 training vectors, got 0"):
        make_codec("binary", 64).train(np.zeros((0, 64), np.float32))


def test_d_not_divisible_by_m() -> None:
    with pytest.raises(CodecError, match="d=100 is not divisible by m=16"):
        make_codec("pq", 100, m=16)
    with pytest.raises(
        CodecError, match="d=30 \\(after pretransform pca:30\\) is not divisible by m=8"
    ):
        make_codec("pq", 64, m=8, pretransform="pca:30")


def test_unknown_kind_parameter_metric() -> None:
    with pytest.raises(
        ValueError, match="unknown codec kind 'lsh'; known kinds: binary, half, int8, ivf, pq, rbq"
    ):
        make_codec("lsh", 64)
    with pytest.raises(CodecError, match="unknown parameter 'M' for codec 'pq'; allowed: m, nbits"):
        make_codec("pq", 64, M=8)
    with pytest.raises(CodecError, match="unknown parameter 'bits' for codec 'binary'"):
        make_codec("binary", 64, bits=2)
    with pytest.raises(CodecError, match="unknown metric 'dot'"):
        make_codec("half", 64, "dot")
    assert "bits" in codec_params("rbq")
    with pytest.raises(CodecError, match="d must be a positive integer"):
        make_codec("half", 0)


@pytest.mark.parametrize("bits", [0, 5, 2.5, True])
def test_bits_out_of_range(bits) -> None:
    with pytest.raises(CodecError, match="bits must be an integer in 1..4"):
        make_codec("rbq", 64, bits=bits)


def test_other_bad_parameters() -> None:
    with pytest.raises(CodecError, match="only nbits=8"):
        make_codec("pq", 64, m=8, nbits=4)
    with pytest.raises(CodecError, match="m must be a positive integer"):
        make_codec("pq", 64, m=0)
    with pytest.raises(CodecError, match="clip must be a number in \\[0, 0.5\\)"):
        make_codec("int8", 64, clip=0.5)


@pytest.mark.parametrize("kind", ["pq", "binary", "rbq", "int8"])
def test_use_before_training(kind: str) -> None:
    c = make_codec(kind, 64, **({"m": 8} if kind == "pq" else {}))
    x = np.ones((2, 64), np.float32)
    for call in (
        lambda: c.encode(x),
        lambda: c.decode(np.zeros((1, 8), np.uint8)),
        lambda: c.distances(x, np.zeros((1, 8), np.uint8)),
    ):
        with pytest.raises(CodecError, match=f"{kind} codec is not trained; call train"):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_codes_of_wrong_width_or_dtype(kind: str, data64) -> None:
    c = trained(kind, data64)
    codes = c.encode(data64["xb"][:5])
    w = c.code_size
    with pytest.raises(CodecError, match=f"width {w + 1} bytes, expected {w}"):
        c.decode(np.zeros((5, w + 1), np.uint8))
    with pytest.raises(CodecError, match="dtype uint8, got int64"):
        c.distances(data64["xq"][:2], codes.astype(np.int64))
    with pytest.raises(CodecError, match="must be 2-D"):
        c.decode(codes[None])


def test_input_shapes_and_dtypes(data64) -> None:
    c = trained("half", data64)
    x = data64["xb"][:3]
    # float16/float64 accepted and converted; a 1-D vector is one row
    np.testing.assert_array_equal(c.encode(x.astype(np.float64)), c.encode(x))
    assert c.encode(x[0]).shape == (1, c.code_size)
    with pytest.raises(CodecError, match="must be 2-D"):
        c.encode(x[None])
    with pytest.raises(CodecError, match="real numbers"):
        c.encode(np.array([["a"] * 64]))
    with pytest.raises(CodecError, match="k must be a positive integer"):
        c.search(x, c.encode(x), 0)


def test_importing_codecs_imports_no_database_driver() -> None:
    code = (
        "import sys, vecext.codecs\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'psycopg', 'psycopg2', 'duckdb', 'sqlalchemy', 'alembic', 'pgvector'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
