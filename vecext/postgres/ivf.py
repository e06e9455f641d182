"""IVF coarse lists in PostgreSQL: centroids in the catalog, a list-id column kept current.

``add_ivf_lists`` trains ``nlist`` centroids with FAISS k-means on a sample of the
vector column (an ``ivf`` codec, :class:`vecext.codecs.ivf.IVFCodec`), stores them
as catalog rows (``vecext.codebook_vectors`` part ``centroids``, so SQL alone can
assign lists), adds an ``integer`` list column beside the vectors with a trigger
that assigns new and updated rows (``vecext.ivf_lists_trigger``), fills the existing rows
in batches (binary COPY out, FAISS-free numpy assignment, COPY in, merge by
key), indexes ``(list)`` and ``(filter column, list)`` so filtered and per-tenant
probes are cheap (Curator's shared lists with per-tenant access paths), and
records the lists on the compressed column's catalog row (``list_column``,
``ivf_codec_name``): the two-stage IVF search probes lists, ranks rows inside
them by those codes, and reranks exactly.

The lists belong to that compressed column: the SQL function
``vecext.drop_compressed_column`` (and so ``drop_compressed_column``) drops them with
it, since catalog 0.2.0. The function of catalog 0.1.0 dropped the code column only;
:func:`drop_orphaned_ivf_lists` removes lists left that way (found by their trigger),
and ``drop_codec`` refuses to drop the centroids a list trigger still reads.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from vecext.catalog import scripts as _scripts
from vecext.catalog.rows import check_name, codec_record
from vecext.codecs import Codec, CodecError
from vecext.codecs.ivf import IVFCodec, default_nlist
from vecext.errors import CatalogError
from vecext.postgres import copybin
from vecext.postgres.catalog import require_catalog
from vecext.postgres.codecs import load_codec
from vecext.postgres.columns import TableRef, VectorColumn, read_vectors, resolve_column

BUFFER = "vecext_ivf_buffer"
#: The first catalog whose SQL function vecext.drop_compressed_column drops IVF lists.
SQL_DROPS_LISTS = "0.2.0"
_CACHE: OrderedDict[tuple[str, str, str], Codec] = OrderedDict()
_CACHE_SIZE = 32


@dataclass(frozen=True)
class IVFLists:
    """IVF lists attached to a compressed column."""

    table: TableRef
    source_column: str
    code_column: str
    list_column: str
    codec_name: str
    nlist: int
    metric: str
    indexes: tuple[str, ...] = ()


def cached_codec(conn: psycopg.Connection, name: str, fingerprint: str) -> Codec:
    """A catalog codec, loaded once per (database, name, version) in this process."""
    key = (conn.info.dbname, name, fingerprint)
    codec = _CACHE.get(key)
    if codec is None:
        codec = load_codec(conn, name, fingerprint=fingerprint)
        _CACHE[key] = codec
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return codec


def _ident_name(*parts: str, suffix: str = "") -> str:
    """A PostgreSQL object name (<= 63 bytes) made of ``parts``."""
    base = "_".join(parts) + suffix
    if len(base.encode()) <= 63:
        return base
    h = hashlib.sha256(base.encode()).hexdigest()[:8]
    return base.encode()[: 63 - 9].decode(errors="ignore") + "_" + h


def trigger_name(list_column: str) -> str:
    """``left('vecext_' || list_column, 63)``: the naming of compressed-column triggers."""
    return ("vecext_" + list_column)[:63]


def _codec_name(t: TableRef, column: str, nlist: int) -> str:
    raw = f"ivf{nlist}_{t.name}_{column}".lower()
    clean = re.sub(r"[^a-z0-9_]", "_", raw)
    h = hashlib.sha256(f"{t.schema}.{t.name}.{column}".encode()).hexdigest()[:6]
    return f"{clean[:40]}_{h}"


def _compressed_row(
    conn: psycopg.Connection, t: TableRef, column: str, code_column: str | None
) -> tuple[int, str, str | None, str]:
    """``(id, code_column, list_column, codec metric)`` of the compressed column to use."""
    rows = conn.execute(
        """SELECT k.id, k.code_column, k.list_column, c.metric, k.status
           FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.codec_name
           WHERE k.table_schema = %s AND k.table_name = %s AND k.source_column = %s
           ORDER BY k.id""",
        [t.schema, t.name, column],
    ).fetchall()
    if code_column is not None:
        rows = [r for r in rows if r[1] == code_column]
        if not rows:
            raise CatalogError(f"{t}.{code_column} is not a compressed column of {t}.{column}")
    if not rows:
        raise CatalogError(
            f"{t}.{column} has no compressed column: IVF lists rank rows by codes, so add one "
            "first (vecext.postgres.add_compressed_column)"
        )
    if len(rows) > 1:
        names = ", ".join(r[1] for r in rows)
        raise CatalogError(
            f"{t}.{column} has several compressed columns ({names}): pass code_column="
        )
    r = rows[0]
    if r[4] != "ready":
        raise CatalogError(f"compressed column {t}.{r[1]} is still backfilling: finish it first")
    return int(r[0]), r[1], r[2], r[3]


def add_ivf_lists(
    conn: psycopg.Connection,
    table: str,
    column: str,
    nlist: int | None = None,
    *,
    code_column: str | None = None,
    list_column: str | None = None,
    codec_name: str | None = None,
    index_columns: Sequence[str] = (),
    sample: int = 100_000,
    niter: int = 20,
    seed: int = 1234,
    batch_size: int = 50_000,
) -> IVFLists:
    """Train IVF lists for ``table.column`` and keep a list-id column current.

    Parameters
    ----------
    column
        The source ``vector(d)`` column; it must have a (ready) compressed column,
        whose codec's metric the lists use.
    nlist
        Number of lists (default ``4 * sqrt(rows)``).
    code_column
        The compressed column to attach the lists to, when there are several.
    list_column
        Name of the new ``integer`` column (default ``<column>_list``).
    index_columns
        Filter columns that get a ``(column, list)`` index; the declared tenant
        column always gets one.
    sample
        Training vectors (FAISS subsamples further to 256 per list).

    Returns
    -------
    IVFLists
    """
    require_catalog(conn)
    col = resolve_column(conn, table, column)
    t = col.table
    cc_id, code_col, existing, metric = _compressed_row(conn, t, column, code_column)
    if existing:
        raise CatalogError(f"{t}.{code_col} already has IVF lists in column {existing!r}")
    (n,) = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            t.ident, sql.Identifier(column)
        )
    ).fetchone()  # type: ignore[misc]
    nlist = default_nlist(int(n)) if nlist is None else nlist
    lcol = list_column or f"{column}_list"
    name = check_name(codec_name or _codec_name(t, column, int(nlist)))
    have = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
            "AND NOT attisdropped",
            [t.oid],
        ).fetchall()
    }
    if lcol in have:
        orphan = any(o.list_column == lcol for o in orphaned_ivf_lists(conn, t.qualified))
        raise CatalogError(
            f"table {t} already has a column {lcol!r}"
            + (
                ": IVF lists no compressed column records (left by the SQL function "
                "vecext.drop_compressed_column of catalog 0.1.0, or an interrupted "
                "add_ivf_lists); drop them "
                "with vecext.postgres.drop_orphaned_ivf_lists()"
                if orphan
                else ""
            )
        )
    missing = [c for c in index_columns if c not in have]
    if missing:
        raise CatalogError(f"table {t} has no column(s) {', '.join(map(repr, missing))}")
    codec = IVFCodec(col.dim, metric, nlist=nlist, niter=niter, seed=seed)
    xt = read_vectors(conn, col, sample=max(sample, codec.min_train), seed=seed)
    if xt.shape[0] < codec.min_train:
        raise CodecError(
            f"{t}.{column} has {xt.shape[0]} vectors, fewer than the nlist={nlist} lists asked "
            "for; use fewer lists"
        )
    codec.train(xt)
    tenant = conn.execute(
        "SELECT tenant_column FROM vecext.tenant_columns WHERE table_schema = %s "
        "AND table_name = %s",
        [t.schema, t.name],
    ).fetchone()
    idx_cols = list(dict.fromkeys([*index_columns, *([tenant[0]] if tenant else [])]))
    trigger = trigger_name(lcol)
    with conn.transaction():
        _save(conn, name, codec)
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(t.ident, sql.Identifier(lcol))
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} FOR EACH ROW "
                "EXECUTE FUNCTION vecext.ivf_lists_trigger({}, {}, {})"
            ).format(
                sql.Identifier(trigger),
                sql.Identifier(column),
                t.ident,
                sql.Literal(column),
                sql.Literal(lcol),
                sql.Literal(name),
            )
        )
    try:
        _fill(conn, col, lcol, codec, batch_size)
        indexes = []
        with conn.transaction():
            for cols in [[lcol], *[[c, lcol] for c in idx_cols]]:
                iname = _ident_name(t.name, *cols, suffix="_idx")
                conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(iname),
                        t.ident,
                        sql.SQL(", ").join(map(sql.Identifier, cols)),
                    )
                )
                indexes.append(iname)
            conn.execute(
                """UPDATE vecext.compressed_columns
                   SET list_column = %s, ivf_codec_name = %s, updated_at = now() WHERE id = %s""",
                [lcol, name, cc_id],
            )
            conn.execute(sql.SQL("ANALYZE {}").format(t.ident))
    except BaseException:
        with conn.transaction():
            _drop(conn, t, lcol, trigger, name)
        raise
    return IVFLists(t, column, code_col, lcol, name, int(nlist), metric, tuple(indexes))


def _save(conn: psycopg.Connection, name: str, codec: IVFCodec) -> None:
    """The catalog rows of an IVF codec (the same rows ``save_codec`` writes)."""
    if conn.execute("SELECT 1 FROM vecext.codecs WHERE name = %s", [name]).fetchone():
        raise CatalogError(f"codec {name!r} already exists; pass another codec_name")
    rec = codec_record(name, codec)
    conn.execute(
        """INSERT INTO vecext.codecs
           (name, kind, dim, metric, code_size, params, fingerprint, format_version)
           VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)""",
        [
            rec.name,
            rec.kind,
            rec.dim,
            rec.metric,
            rec.code_size,
            rec.params_json,
            rec.fingerprint,
            rec.format_version,
        ],
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO vecext.codec_arrays (codec_name, array_name, dtype, shape, data)
               VALUES (%s, %s, %s, %s, %s)""",
            [(rec.name, a.name, a.dtype, a.shape, a.data) for a in rec.arrays],
        )
        with cur.copy(
            "COPY vecext.codebook_vectors (codec_name, part, sub, idx, vec) FROM STDIN"
        ) as copy:
            for v in rec.vectors:
                text = "[" + ",".join(f"{x:.9g}" for x in v.vec.tolist()) + "]"
                copy.write_row((rec.name, v.part, v.sub, v.idx, text))


def _fill(
    conn: psycopg.Connection, col: VectorColumn, lcol: str, codec: IVFCodec, batch_size: int
) -> int:
    """Assign the rows whose list id is missing, one committed batch at a time."""
    t = col.table
    row = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = %s AND i.indisprimary AND i.indnkeyatts = 1""",
        [t.oid],
    ).fetchone()
    if row is None:
        raise CatalogError(f"table {t} needs a single-column primary key for IVF lists")
    key, key_type = row
    int_key = key_type in copybin.INT_KEYS
    k, src, lst = sql.Identifier(key), sql.Identifier(col.name), sql.Identifier(lcol)
    done, last = 0, None
    while True:
        # COPY takes no bound parameters: the last key (an int or the text of a key
        # read back from the table) is quoted by psycopg
        after = sql.SQL("TRUE") if last is None else sql.SQL("{} > {}").format(k, sql.Literal(last))
        query = sql.SQL(
            "COPY (SELECT {key}, {src} FROM {t} WHERE {after} AND {lst} IS NULL "
            "AND {src} IS NOT NULL ORDER BY {k} LIMIT {n}) TO STDOUT (FORMAT binary)"
        ).format(
            key=k if int_key else sql.SQL("{}::text").format(k),
            src=src,
            t=t.ident,
            after=after,
            lst=lst,
            k=k,
            n=sql.Literal(int(batch_size)),
        )
        with conn.transaction():
            with conn.cursor() as cur, cur.copy(query) as cp:
                data = b"".join(bytes(b) for b in cp)
            keys, x = copybin.parse_key_vectors(data, col.dim, key_type if int_key else "text")
            if not keys:
                return done
            ids = codec.assign(x)
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} (k {}, l integer) ON COMMIT DROP").format(
                    sql.Identifier(BUFFER),
                    sql.SQL(key_type),  # type name from pg_catalog
                )
            )
            with conn.cursor() as cur:
                with cur.copy(
                    sql.SQL("COPY {} (k, l) FROM STDIN").format(sql.Identifier(BUFFER))
                ) as cp:
                    for kv, lv in zip(keys, ids.tolist(), strict=True):
                        cp.write_row((kv, lv))
                cur.execute(
                    sql.SQL(
                        "UPDATE {t} AS t SET {lst} = b.l FROM {buf} b "
                        "WHERE t.{k} = b.k AND t.{lst} IS NULL"
                    ).format(t=t.ident, lst=lst, buf=sql.Identifier(BUFFER), k=k)
                )
                done += max(cur.rowcount, 0)
        last = keys[-1]


def _drop(conn: psycopg.Connection, t: TableRef, lcol: str, trigger: str, codec: str) -> None:
    conn.execute(
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), t.ident)
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(t.ident, sql.Identifier(lcol))
    )
    conn.execute(
        """UPDATE vecext.compressed_columns SET list_column = NULL, ivf_codec_name = NULL
           WHERE ivf_codec_name = %s""",
        [codec],
    )
    conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [codec])


def drop_ivf_lists(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """Drop the IVF lists of a compressed column: list column (and its indexes),
    trigger, catalog entry and centroids. The codes and vectors stay.

    :func:`vecext.postgres.drop_compressed_column` drops them itself.
    """
    require_catalog(conn)
    lists = ivf_lists(conn, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    with conn.transaction():
        drop_lists_of(conn, lists.table, code_column)


def drop_lists_of(conn: psycopg.Connection, t: TableRef, code_column: str) -> IVFLists | None:
    """Drop the IVF lists of compressed column ``t.code_column``, if it has any, in the
    caller's transaction; returns what was dropped."""
    lists = ivf_lists(conn, t.qualified, code_column)
    if lists is not None:
        _drop(conn, t, lists.list_column, trigger_name(lists.list_column), lists.codec_name)
    return lists


def drop_lists_for_old_catalog(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """What to run before the SQL function ``vecext.drop_compressed_column`` on a catalog
    older than 0.2.0, in the same transaction: that function drops the code column only,
    so the column's IVF lists are dropped here (they would be orphaned). A no-op on a
    current catalog, whose function drops them itself."""
    if _scripts.vtuple(require_catalog(conn)) >= _scripts.vtuple(SQL_DROPS_LISTS):
        return
    from vecext.postgres.columns import resolve_table

    drop_lists_of(conn, resolve_table(conn, table), code_column)


@dataclass(frozen=True)
class ListTrigger:
    """The trigger keeping an IVF list column current, as ``add_ivf_lists`` made it.

    It is *orphaned* when no compressed column records its list column: the
    compressed column was dropped by the SQL function ``vecext.drop_compressed_column``
    of catalog 0.1.0 (which drops the code column only; 0.2.0's drops the lists too),
    or ``add_ivf_lists`` was interrupted while filling the list column."""

    table: TableRef
    source_column: str
    list_column: str
    codec_name: str
    trigger: str


def list_triggers(conn: psycopg.Connection, oid: int | None) -> list[ListTrigger]:
    """Every trigger ``add_ivf_lists`` made (on table ``oid``, or on any table): function
    ``vecext.ivf_lists_trigger``, named ``vecext_<list column>``, arguments: vector
    column, list column, IVF codec."""
    rows = conn.execute(
        """SELECT c.oid, n.nspname, c.relname, g.tgname, g.tgargs
           FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE g.tgfoid = 'vecext.ivf_lists_trigger'::regproc AND NOT g.tgisinternal
             AND (%s::oid IS NULL OR c.oid = %s::oid)
           ORDER BY n.nspname, c.relname, g.tgname""",
        [oid, oid],
    ).fetchall()
    out = []
    for toid, schema, name, tgname, tgargs in rows:
        args = [a.decode() for a in bytes(tgargs).split(b"\x00")[:-1]]
        if len(args) == 3 and tgname == trigger_name(args[1]):
            src, lcol, codec = args
            out.append(ListTrigger(TableRef(int(toid), schema, name), src, lcol, codec, tgname))
    return out


def orphaned_ivf_lists(conn: psycopg.Connection, table: str | None = None) -> list[ListTrigger]:
    """The orphaned IVF lists of ``table`` (or of every table): see :class:`ListTrigger`.
    They are found by the trigger each list column keeps."""
    from vecext.postgres.columns import resolve_table

    require_catalog(conn)
    oid = resolve_table(conn, table).oid if table is not None else None
    used = {
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT table_schema, table_name, list_column, ivf_codec_name "
            "FROM vecext.compressed_columns WHERE list_column IS NOT NULL"
        ).fetchall()
    }
    return [
        o
        for o in list_triggers(conn, oid)
        if (o.table.schema, o.table.name, o.list_column, o.codec_name) not in used
    ]


def drop_orphaned_ivf_lists(conn: psycopg.Connection, table: str | None = None) -> list[str]:
    """Drop the orphaned IVF lists of ``table`` (or of every table): each one's trigger,
    its ``integer`` list column (with its indexes) and its centroids, unless a
    compressed column still uses that codec. Vectors and codes are never touched.

    The SQL function ``vecext.drop_compressed_column`` of catalog 0.1.0 dropped the
    code column only and left its lists so; from catalog 0.2.0 it drops them too (and
    :func:`vecext.postgres.drop_compressed_column` does on either catalog). Upgrading
    the catalog leaves lists already orphaned in place: this drops them. Returns the
    ``schema.table.list_column`` names dropped.
    """
    done = []
    with conn.transaction():
        for o in orphaned_ivf_lists(conn, table):
            typ = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped",
                [o.table.oid, o.list_column],
            ).fetchone()
            conn.execute(
                sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(o.trigger), o.table.ident)
            )
            if typ is not None and typ[0] == "integer":
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                        o.table.ident, sql.Identifier(o.list_column)
                    )
                )
            in_use = conn.execute(
                "SELECT 1 FROM vecext.compressed_columns WHERE codec_name = %(c)s "
                "OR ivf_codec_name = %(c)s",
                {"c": o.codec_name},
            ).fetchone() or any(t.codec_name == o.codec_name for t in list_triggers(conn, None))
            if not in_use:
                conn.execute(
                    "DELETE FROM vecext.codecs WHERE name = %s AND kind = 'ivf'", [o.codec_name]
                )
            done.append(f"{o.table}.{o.list_column}")
    return done


def ivf_lists(conn: psycopg.Connection, table: str, code_column: str) -> IVFLists | None:
    """The IVF lists of compressed column ``table.code_column``, or ``None``."""
    from vecext.postgres.columns import resolve_table

    t = resolve_table(conn, table)
    row = conn.execute(
        """SELECT k.source_column, k.list_column, k.ivf_codec_name, c.params, c.metric
           FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.ivf_codec_name
           WHERE k.table_schema = %s AND k.table_name = %s AND k.code_column = %s""",
        [t.schema, t.name, code_column],
    ).fetchone()
    if row is None:
        return None
    src, lcol, name, params, metric = row
    return IVFLists(t, src, code_column, lcol, name, int(params["nlist"]), metric)
