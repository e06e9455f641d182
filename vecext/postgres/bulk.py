"""The bulk backfill of a compressed column: binary COPY out, numpy encode, COPY in, merge.

One transaction per batch, for a code store (layout ``store``)::

    COPY (SELECT key, source FROM table t WHERE key > <position> AND source IS NOT NULL
            AND NOT EXISTS (SELECT FROM vecext.store_N s WHERE s.pk = t.key)
          ORDER BY key LIMIT n) TO STDOUT (FORMAT binary)
    codes = codec.encode(vectors)                       -- the Python core
    COPY vecext_backfill_buffer (k, c) FROM STDIN (FORMAT binary)
    WITH b AS (SELECT b.k, b.c FROM vecext_backfill_buffer b JOIN table t ON t.key = b.k
               WHERE t.source IS NOT NULL AND t.key BETWEEN <first> AND <last>
               FOR SHARE OF t)
    INSERT INTO vecext.store_N (pk, code) SELECT k, c FROM b
        ON CONFLICT (pk) DO NOTHING                     -- codes the trigger wrote stay
    UPDATE vecext.compressed_columns SET backfill_position = <last key>, ...

The rows are locked (``FOR SHARE``) while their codes go in: a concurrent UPDATE or
DELETE of a row waits, and its trigger then replaces or deletes the code; a row
deleted, or whose vector became NULL, since it was read is skipped (the join reads it
again), so the backfill never resurrects a row or leaves a code on a NULL vector. The
user's table is only read. For the in-table layout of catalogs before 0.4.0 the merge
is ``UPDATE table SET code = b.c ... WHERE code IS NULL``. The position commits with
its batch.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from vecext.catalog import columns as cat
from vecext.codecs import Codec
from vecext.errors import VecextError
from vecext.postgres import copybin
from vecext.postgres.catalog import PgDialect
from vecext.postgres.stores import PgCompressedColumn, has_code
from vecext.postgres.tables import column_type, vector_expr

BUFFER = "vecext_backfill_buffer"


class BackfillError(VecextError):
    """A backfill batch failed; earlier batches are committed and ``refresh`` resumes.

    Attributes: ``position`` (the last committed key, as text, or ``None``) and
    ``rows_encoded`` (rows committed by this call).
    """

    def __init__(self, message: str, position: str | None, rows_encoded: int) -> None:
        super().__init__(message)
        self.position = position
        self.rows_encoded = rows_encoded


class Backfill:
    """Backfill state for one compressed column (see the module docstring)."""

    def __init__(
        self, conn: psycopg.Connection, cc: PgCompressedColumn, codec: Codec, batch_size: int
    ) -> None:
        self.conn, self.cc, self.codec, self.batch_size = conn, cc, codec, batch_size
        t = cc.table
        # the code's type: the store's column "code", or the table's code column
        row = conn.execute(
            """SELECT format_type(k.atttypid, k.atttypmod), format_type(c.atttypid, c.atttypmod)
               FROM pg_attribute k, pg_attribute c
               WHERE k.attrelid = %(t)s AND k.attname = %(k)s
                 AND c.attrelid = coalesce(to_regclass(%(store)s), %(t)s)
                 AND c.attname = %(c)s""",
            {
                "t": t.oid,
                "k": cc.key_column,
                "store": cc.store.as_string(None) if cc.store else None,
                "c": "code" if cc.store else cc.code_column,
            },
        ).fetchone()
        assert row is not None, "registered columns exist"
        self.key_type, self.code_type = row
        self.int_key = self.key_type in copybin.INT_KEYS
        self.t = t.ident
        assert cc.key_column is not None, "a PostgreSQL compressed column has a key"
        self.k = sql.Identifier(cc.key_column)
        self.src = sql.Identifier(cc.source_column)
        # the vectors as float32 (a halfvec source column is cast)
        kind = column_type(conn, t, cc.source_column)
        assert kind is not None, "registered columns exist"
        self.src_vec = vector_expr(sql.SQL("t.{}").format(self.src), kind[1], kind[3])
        self.code = sql.Identifier(cc.code_column)
        self.position = cc.backfill_position
        self.done = 0
        #: columns mirrored into the store (catalog 0.6.0): (table column, store column)
        self.mirrors = _mirrors(conn, cc)
        #: seconds spent per phase (read = COPY out + parse, encode, write = COPY in,
        #: merge = UPDATE ... FROM + position); the benchmark prints them
        self.seconds = {"read": 0.0, "encode": 0.0, "write": 0.0, "merge": 0.0}

    # -- SQL pieces ---------------------------------------------------------------

    def _pending(self, position: str | None) -> sql.Composable:
        """WHERE clause: rows after ``position`` whose codes are missing."""
        after = (
            sql.SQL("TRUE")
            if position is None
            else sql.SQL("{} > {}::text::{}").format(
                self.k,
                sql.Literal(position),
                sql.SQL(self.key_type),  # type name from pg_catalog
            )
        )
        missing = has_code(self.cc, sql.SQL("t.{}").format(self.k))
        return sql.SQL("{} AND NOT {} AND {} IS NOT NULL").format(after, missing, self.src)

    def remaining(self) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(
                self.t, self._pending(self.position)
            )
        ).fetchone()
        return int(row[0]) if row else 0

    # -- one batch ----------------------------------------------------------------

    def _batch(self) -> tuple[int, str | None]:
        conn = self.conn
        t0 = time.perf_counter()
        key = self.k if self.int_key else sql.SQL("{}::text").format(self.k)
        query = sql.SQL(
            "COPY (SELECT {key}, {src} FROM {t} t WHERE {pending} ORDER BY {k} LIMIT {n}) "
            "TO STDOUT (FORMAT binary)"
        ).format(
            key=key,
            src=self.src_vec,
            t=self.t,
            pending=self._pending(self.position),
            k=self.k,
            n=sql.Literal(self.batch_size),
        )
        with conn.cursor() as cur, cur.copy(query) as copy:
            data = b"".join(bytes(b) for b in copy)
        keys, x = copybin.parse_key_vectors(
            data, self.codec.d, self.key_type if self.int_key else "text"
        )
        if not keys:
            return 0, None
        t1 = time.perf_counter()
        codes = self.codec.encode(x)
        t2 = time.perf_counter()
        buf_key = sql.SQL(self.key_type if self.int_key else "text")
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (k {}, c {}) ON COMMIT DROP").format(
                sql.Identifier(BUFFER), buf_key, sql.SQL(self.code_type)
            )
        )
        payload = copybin.dump_key_codes(
            keys,
            codes,
            self.codec.kind,
            self.codec.d_inner,
            self.key_type if self.int_key else "text",
        )
        with conn.cursor() as cur:
            with cur.copy(
                sql.SQL("COPY {} (k, c) FROM STDIN (FORMAT binary)").format(sql.Identifier(BUFFER))
            ) as copy:
                copy.write(payload)
            t3 = time.perf_counter()
            match = (
                sql.SQL("t.{} = b.k").format(self.k)
                if self.int_key
                else sql.SQL("t.{} = b.k::{}").format(self.k, sql.SQL(self.key_type))
            )
            # the batch's key range: a primary-key range scan. Without it the planner,
            # knowing nothing of the fresh buffer table, may scan the whole table for
            # every batch
            lo, hi = (
                sql.SQL("{}::text::{}").format(sql.Literal(str(k)), sql.SQL(self.key_type))
                for k in (keys[0], keys[-1])
            )
            pick = into = sql.SQL("")
            if self.cc.store is not None:
                # the mirrored values come with the code, from the locked row
                pick = sql.SQL("").join(
                    sql.SQL(", t.{} AS {}").format(sql.Identifier(a), sql.Identifier(m))
                    for a, m in self.mirrors
                )
                into = sql.SQL("").join(
                    sql.SQL(", {}").format(sql.Identifier(m)) for _, m in self.mirrors
                )
                merge = sql.SQL(
                    "WITH b AS (SELECT b.k, b.c{pick} FROM {buf} b JOIN {t} t ON {match} "
                    "WHERE t.{k} BETWEEN {lo} AND {hi} AND t.{src} IS NOT NULL FOR SHARE OF t) "
                    "INSERT INTO {store} (pk, code{into}) SELECT k, c{into} FROM b "
                    "ON CONFLICT (pk) DO NOTHING"
                )
            else:
                merge = sql.SQL(
                    "UPDATE {t} AS t SET {code} = b.c FROM {buf} b "
                    "WHERE {match} AND t.{k} BETWEEN {lo} AND {hi} AND t.{code} IS NULL"
                )
            cur.execute(
                merge.format(
                    t=self.t,
                    code=self.code,
                    buf=sql.Identifier(BUFFER),
                    match=match,
                    k=self.k,
                    lo=lo,
                    hi=hi,
                    src=self.src,
                    store=self.cc.store,
                    pick=pick,
                    into=into,
                )
            )
            updated = max(cur.rowcount, 0)
        last = str(keys[-1])
        cat.record_progress(PgDialect(conn), self.cc.id, last, updated)
        t4 = time.perf_counter()
        for phase, dt in zip(self.seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            self.seconds[phase] += dt
        return updated, last

    # -- the loop -----------------------------------------------------------------

    def run(self, progress: bool = True) -> int:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with self.conn.transaction():
            if self.cc.store is None:
                # a new code column has no statistics: "code IS NULL" would be costed at
                # a default 0.5% and the planner could give up the ordered primary-key
                # scan for a sort of the whole table in every batch (ANALYZE samples)
                self.conn.execute(sql.SQL("ANALYZE {} ({})").format(self.t, self.code))
            total = self.remaining()
        label = f"encoding {self.cc.table}.{self.cc.code_column}"
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
        )
        t0 = time.perf_counter()
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task(label, total=total, rate="-")
            while True:
                try:
                    with self.conn.transaction():
                        n, last = self._batch()
                except (psycopg.Error, ValueError) as exc:
                    raise BackfillError(
                        f"backfill of {self.cc.table}.{self.cc.code_column} failed in the batch "
                        f"after key {self.position!r} ({self.done} rows committed by this call; "
                        f"the source column is untouched): {exc}. Fix the cause and call "
                        "backfill() again to resume after the last committed batch.",
                        self.position,
                        self.done,
                    ) from exc
                if last is None:
                    break
                self.position = last
                self.done += n
                rate = self.done / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=n, rate=f"{rate:,.0f}")
        with self.conn.transaction():
            cat.mark_ready(PgDialect(self.conn), self.cc.id, clear_position=True)
        return self.done


def _mirrors(conn: psycopg.Connection, cc: PgCompressedColumn) -> list[tuple[str, str]]:
    """``(table column, store column)`` of the columns mirrored into ``cc``'s store."""
    from vecext.postgres.mirrors import named_mirrors, store_column

    return [(name, store_column(n)) for n, name in named_mirrors(conn, cc)]
