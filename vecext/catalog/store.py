"""The catalog store of codecs, for every database.

``vecext.codecs`` / ``codec_arrays`` / ``codebook_vectors`` hold the same rows in
PostgreSQL and DuckDB (:mod:`vecext.catalog.rows`). This module is the one place
that inserts, reads and deletes them, through a
:class:`~vecext.catalog.dialect.Dialect` the adapter passes in. What stays in the
adapters is what really differs: PostgreSQL's generated SQL functions, DuckDB's
macros and codec cache. (Relevance adapters: :mod:`vecext.catalog.adapter_store`;
compressed columns: :mod:`vecext.catalog.columns`.)

Dependent rows are deleted explicitly (DuckDB has no ``ON DELETE CASCADE``; in
PostgreSQL the cascade then finds nothing left).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vecext.catalog.dialect import Dialect
from vecext.catalog.rows import CodecRecord, check_name, codec_from_rows
from vecext.codecs import Codec, CodecError, check_fingerprint
from vecext.codecs.kinds import code_column_type, inner_dim
from vecext.errors import CatalogError

# ---------------------------------------------------------------------------
# codecs


@dataclass(frozen=True)
class CodecInfo:
    """A row of ``vecext.codecs``; ``column_type`` is the type of the codec's code
    columns in the database it was read from (``bit(384)``, ``UTINYINT[48]``, ...)."""

    name: str
    kind: str
    dim: int
    metric: str
    code_size: int
    fingerprint: str
    params: dict[str, Any]
    column_type: str

    @property
    def d_inner(self) -> int:
        """The dimension the codec's quantiser sees (after any pretransform)."""
        return inner_dim(self.dim, self.params)


_CODEC_COLUMNS = "name, kind, dim, metric, code_size, fingerprint, params"


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _codec_info(db: Dialect, r: tuple[Any, ...]) -> CodecInfo:
    name, kind, dim, metric, size, fp, params = r
    params = _json(params)
    ctype = code_column_type(kind, db.backend, d_inner=inner_dim(dim, params), code_size=int(size))
    return CodecInfo(name, kind, int(dim), metric, int(size), fp, params, ctype)


def list_codecs(db: Dialect) -> list[CodecInfo]:
    """Every codec in the catalog, by name."""
    rows = db.rows(f"SELECT {_CODEC_COLUMNS} FROM vecext.codecs ORDER BY name")
    return [_codec_info(db, r) for r in rows]


def codec_info(db: Dialect, name: str) -> CodecInfo:
    """The row of codec ``name``; :class:`CodecError` naming the known codecs if none."""
    check_name(name)
    rows = db.rows(f"SELECT {_CODEC_COLUMNS} FROM vecext.codecs WHERE name = ?", [name])
    if not rows:
        known = [c.name for c in list_codecs(db)]
        raise CodecError(
            f"unknown codec {name!r}; known codecs: {', '.join(known) if known else '(none)'}"
        )
    return _codec_info(db, rows[0])


def read_codec(db: Dialect, info: CodecInfo) -> Codec:
    """Rebuild the codec of ``info`` from its arrays (their hash must be its fingerprint)."""
    rows = db.rows(
        "SELECT array_name, dtype, shape, data FROM vecext.codec_arrays "
        "WHERE codec_name = ? ORDER BY array_name",
        [info.name],
    )
    arrays = [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows]
    return codec_from_rows(info.name, info.kind, info.params, info.fingerprint, arrays)


def load_codec(db: Dialect, name: str, *, fingerprint: str | None = None) -> Codec:
    """Rebuild codec ``name``; with ``fingerprint``, :class:`~vecext.codecs.CodecVersionError`
    unless that is the version the catalog holds."""
    codec = read_codec(db, codec_info(db, name))
    if fingerprint is not None:
        check_fingerprint(codec, fingerprint)
    return codec


def record_info(db: Dialect, rec: CodecRecord) -> CodecInfo:
    """The :class:`CodecInfo` the rows of ``rec`` make in ``db``."""
    return _codec_info(
        db, (rec.name, rec.kind, rec.dim, rec.metric, rec.code_size, rec.fingerprint, rec.params)
    )


#: Codecs loaded by :func:`cached_codec`, most recently used last.
_CACHE: OrderedDict[tuple[str, ...], Codec] = OrderedDict()
_CACHE_SIZE = 32


def cached_codec(key: tuple[str, ...], load: Callable[[], Codec]) -> Codec:
    """The codec cached under ``key`` (which must name its fingerprint), else ``load()``d
    and cached: a search loads each version once per process, not once per query."""
    codec = _CACHE.get(key)
    if codec is None:
        codec = _CACHE[key] = load()
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return codec


def codec_version(db: Dialect, name: str) -> tuple[str, str] | None:
    """``(kind, fingerprint)`` of codec ``name``, or ``None``."""
    rows = db.rows("SELECT kind, fingerprint FROM vecext.codecs WHERE name = ?", [name])
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


def columns_using(db: Dialect, name: str) -> list[str]:
    """``schema.table.column`` of every compressed column whose codes or IVF lists
    codec ``name`` made."""
    rows = db.rows(
        "SELECT table_schema, table_name, code_column FROM vecext.compressed_columns "
        "WHERE codec_name = ? OR ivf_codec_name = ? ORDER BY 1, 2, 3",
        [name, name],
    )
    return [db.name_text(*r) for r in rows]


def insert_codec(db: Dialect, rec: CodecRecord) -> None:
    """The rows of a trained codec (``vecext.postgres.save_codec``, ``op.create_codec``,
    ``add_ivf_lists`` and DuckDB's ``save_codec`` all write exactly these)."""
    db.run(
        "INSERT INTO vecext.codecs (name, kind, dim, metric, code_size, params, fingerprint, "
        f"format_version) VALUES (?, ?, ?, ?, ?, CAST(? AS {db.json_type}), ?, ?)",
        [rec.name, rec.kind, rec.dim, rec.metric, rec.code_size, rec.params_json,
         rec.fingerprint, rec.format_version],
    )  # fmt: skip
    db.run_many(
        "INSERT INTO vecext.codec_arrays (codec_name, array_name, dtype, shape, data) "
        "VALUES (?, ?, ?, ?, ?)",
        [(rec.name, a.name, a.dtype, a.shape, a.data) for a in rec.arrays],
    )
    if rec.vectors:  # thousands of rows for a PQ codebook: the bulk path
        db.copy_vectors(
            "vecext.codebook_vectors",
            ("codec_name", "part", "sub", "idx", "vec"),
            [(rec.name, v.part, v.sub, v.idx, v.vec) for v in rec.vectors],
        )


def delete_codec(db: Dialect, name: str) -> None:
    """Delete a codec's rows (arrays and codebook vectors first)."""
    for table in ("codebook_vectors", "codec_arrays"):
        db.run(f"DELETE FROM vecext.{table} WHERE codec_name = ?", [name])
    db.run("DELETE FROM vecext.codecs WHERE name = ?", [name])


def store_codec(
    db: Dialect,
    rec: CodecRecord,
    *,
    replace: bool = False,
    on_replace: Callable[[str], None] | None = None,
) -> bool:
    """Write codec ``rec`` in the caller's transaction; returns whether rows were written.

    The very same trained version again writes nothing. Another version under the
    name needs ``replace``, and is refused while compressed columns hold its codes;
    ``on_replace(old kind)`` runs before the old rows go (to drop what the adapter
    generated for them).
    """
    db.lock("vecext.codec." + rec.name)
    old = codec_version(db, rec.name)
    if old is not None and old[1] == rec.fingerprint:
        return False
    if old is not None:
        if not replace:
            raise CatalogError(
                f"codec {rec.name!r} already exists (version {old[1]}, this codec is version "
                f"{rec.fingerprint}); pass replace=True to replace it"
            )
        used = columns_using(db, rec.name)
        if used:
            raise CatalogError(
                f"cannot replace codec {rec.name!r}: compressed columns {', '.join(used)} "
                f"hold codes of its version {old[1]}; drop them (drop_compressed_column) or "
                "save the new codec under another name"
            )
        if on_replace is not None:
            on_replace(old[0])
        delete_codec(db, rec.name)
    insert_codec(db, rec)
    return True


def remove_codec(
    db: Dialect,
    name: str,
    *,
    missing_ok: bool = False,
    before: Callable[[str], None] | None = None,
) -> bool:
    """Delete codec ``name`` in one transaction, refused while compressed columns use it;
    ``before(kind)`` runs first (to drop the adapter's functions). Returns whether one
    was dropped."""
    check_name(name)
    with db.transaction():
        old = codec_version(db, name)
        if old is None:
            if missing_ok:
                return False
            raise CodecError(f"unknown codec {name!r}")
        used = columns_using(db, name)
        if used:
            raise CatalogError(
                f"cannot drop codec {name!r}: compressed columns {', '.join(used)} use it; "
                "drop them first (drop_compressed_column)"
            )
        if before is not None:
            before(old[0])
        delete_codec(db, name)
    return True
