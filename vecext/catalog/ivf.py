"""IVF lists as catalog rows, for every database: which compressed column they belong
to, their coarse quantizer, and how that quantizer is trained.

An IVF list column belongs to one compressed column (``list_column`` and
``ivf_codec_name`` on its ``vecext.compressed_columns`` row); its centroids are an
``ivf`` codec (:class:`vecext.codecs.ivf.IVFCodec`) stored like any codec. The
adapters add the list column itself and keep it current (PostgreSQL: a trigger;
DuckDB: ``refresh``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecext.catalog.dialect import Dialect, same_name
from vecext.codecs import CodecError
from vecext.codecs.ivf import IVFCodec, default_nlist
from vecext.errors import CatalogError


@dataclass(frozen=True)
class IVFLists:
    """IVF lists attached to a compressed column: an integer column of list ids, made
    by coarse quantizer (``ivf`` codec) ``codec_name`` with ``nlist`` lists."""

    table: Any
    source_column: str
    code_column: str
    list_column: str
    codec_name: str
    nlist: int
    metric: str
    #: indexes made for the lists (PostgreSQL: ``(list)``, ``(filter column, list)``)
    indexes: tuple[str, ...] = ()
    #: PostgreSQL (catalog 0.5.0): the code store (``store_<id>`` in schema ``vecext``)
    #: whose column ``list_column`` holds the list ids; ``None``: a column of the table
    store: str | None = None


def ivf_codec_name(ref: Any, column: str, nlist: int) -> str:
    """The default name of the coarse quantizer of ``ref.column``'s lists: readable,
    within the 48 characters of a codec name, and unique per schema-qualified column."""
    raw = f"ivf{nlist}_{ref.name}_{column}".lower()
    clean = re.sub(r"[^a-z0-9_]", "_", raw)
    h = hashlib.sha256(f"{ref.schema}.{ref.name}.{column}".encode()).hexdigest()[:6]
    return f"{clean[:40]}_{h}"


def lists_source(
    db: Dialect, ref: Any, column: str, code_column: str | None
) -> tuple[int, str, str | None, str]:
    """``(id, code column, list column, codec metric)`` of the compressed column of
    ``ref.column`` that IVF lists are added to; a :class:`CatalogError` saying what to
    do when there is none, several, or it is still being filled."""
    rows = db.rows(
        "SELECT k.id, k.code_column, k.list_column, c.metric, k.status "
        "FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.codec_name "
        f"WHERE k.table_schema = ? AND k.table_name = ? AND {same_name(db, 'k.source_column')} "
        "ORDER BY k.id",
        [ref.schema, ref.name, column],
    )
    if code_column is not None:
        fold = str.lower if db.case_insensitive else str
        rows = [r for r in rows if fold(r[1]) == fold(code_column)]
        if not rows:
            raise CatalogError(f"{ref}.{code_column} is not a compressed column of {ref}.{column}")
    if not rows:
        raise CatalogError(
            f"{ref}.{column} has no compressed column: IVF lists rank rows by codes, so add one "
            f"first ({db.api}.add_compressed_column)"
        )
    if len(rows) > 1:
        names = ", ".join(r[1] for r in rows)
        raise CatalogError(
            f"{ref}.{column} has several compressed columns ({names}): pass code_column="
        )
    r = rows[0]
    if r[4] != "ready":
        raise CatalogError(
            f"compressed column {ref}.{r[1]} is still backfilling: finish it with "
            f"{db.api}.refresh() first"
        )
    return int(r[0]), str(r[1]), r[2], str(r[3])


def lists_of(db: Dialect, ref: Any, code_column: str) -> tuple[str, str, str, str, int, str] | None:
    """``(source column, code column, list column, IVF codec, nlist, metric)`` of the IVF
    lists of compressed column ``ref.code_column``, or ``None``."""
    rows = db.rows(
        "SELECT k.source_column, k.code_column, k.list_column, k.ivf_codec_name, c.params, "
        "c.metric FROM vecext.compressed_columns k "
        "JOIN vecext.codecs c ON c.name = k.ivf_codec_name "
        f"WHERE k.table_schema = ? AND k.table_name = ? AND {same_name(db, 'k.code_column')}",
        [ref.schema, ref.name, code_column],
    )
    if not rows:
        return None
    src, code, lcol, name, params, metric = rows[0]
    params = json.loads(params) if isinstance(params, str) else params
    return str(src), str(code), str(lcol), str(name), int(params["nlist"]), str(metric)


def set_lists(db: Dialect, cc_id: int, list_column: str, ivf_codec: str) -> None:
    """Record the IVF lists of compressed column ``cc_id``."""
    db.run(
        "UPDATE vecext.compressed_columns SET list_column = ?, ivf_codec_name = ?, "
        "updated_at = current_timestamp WHERE id = ?",
        [list_column, ivf_codec, cc_id],
    )


def clear_lists(db: Dialect, ivf_codec: str) -> None:
    """Forget the IVF lists made with coarse quantizer ``ivf_codec``."""
    db.run(
        "UPDATE vecext.compressed_columns SET list_column = NULL, ivf_codec_name = NULL "
        "WHERE ivf_codec_name = ?",
        [ivf_codec],
    )


def coarse_quantizer(
    d: int,
    metric: str,
    *,
    rows: int,
    nlist: int | None,
    codec: IVFCodec | None,
    read: Callable[[int], np.ndarray],
    what: str,
    niter: int = 20,
    seed: int = 1234,
    sample: int = 100_000,
) -> IVFCodec:
    """The coarse quantizer of new IVF lists on ``what`` (a ``d``-dimensional column of
    ``rows`` vectors, searched with ``metric``): ``codec`` when given (it must fit),
    else one trained with ``nlist`` lists (default ``4 * sqrt(rows)``) on
    ``read(n)``, a sample of at least ``n`` vectors."""
    if codec is not None:
        if not codec.is_trained or codec.d != d or codec.metric != metric:
            raise CodecError(
                f"the IVF codec given must be trained for dimension {d} and metric {metric}, "
                f"got dimension {codec.d}, metric {codec.metric}"
            )
        return codec
    nlist = default_nlist(rows) if nlist is None else nlist
    codec = IVFCodec(d, metric, nlist=nlist, niter=niter, seed=seed)
    xt = read(max(sample, codec.min_train))
    if xt.shape[0] < codec.min_train:
        raise CodecError(
            f"{what} has {xt.shape[0]} vectors, fewer than the nlist={nlist} lists asked "
            "for; use fewer lists"
        )
    codec.train(xt)
    return codec
