"""The DuckDB warehouse: migrations from `sql/` and partition-at-a-time writes.

Tables are owned by the DDL in `sql/` (numbered migrations, applied once each, recorded in
`corpus.schema_migrations`); views in `sql/views*.sql` are recreated on connect. Writes replace one
(date, source) partition inside a transaction, so reruns never duplicate rows and a crash mid-write
leaves the previous rows intact.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Iterator
from contextlib import contextmanager

import duckdb
import polars as pl

from corpus_platform.settings import REPO_ROOT
from corpus_platform.warehouse_lock import warehouse_lock

SQL_DIR = REPO_ROOT / "sql"
_MIGRATION = re.compile(r"^(\d{3})_[\w-]+\.sql$")


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    found = []
    for p in sorted(sql_dir.iterdir()):
        m = _MIGRATION.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return found


def migrate(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[int]:
    """Apply pending migrations in order, then (re)create the views. Returns versions applied."""
    con.execute("CREATE SCHEMA IF NOT EXISTS corpus")
    con.execute(
        "CREATE TABLE IF NOT EXISTS corpus.schema_migrations "
        "(version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    done = {r[0] for r in con.execute("SELECT version FROM corpus.schema_migrations").fetchall()}
    applied = []
    for version, path in migrations(sql_dir):
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute("INSERT INTO corpus.schema_migrations (version, name) VALUES (?, ?)", [version, path.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    for views in sorted(sql_dir.glob("views*.sql")):  # views.sql, then views_<domain>.sql
        con.execute(views.read_text())
    return applied


@contextmanager
def connect(path: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated connection outside Dagster (CLI, demo summary, tests), under the warehouse's file lock."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(path):
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            if not read_only:
                migrate(con)
            yield con
        finally:
            con.close()


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema='corpus' AND table_name=? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise KeyError(f"corpus.{table} does not exist: is the warehouse migrated?")
    return [r[0] for r in rows]


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    if df.height == 0:
        return
    cols = _columns(con, table)
    extra = set(df.columns) - set(cols)
    if extra:
        raise ValueError(f"frame has columns {sorted(extra)} that corpus.{table} lacks (add a migration in sql/)")
    arrow = df.to_arrow()
    con.register("_incoming", arrow)
    try:
        names = ", ".join(f'"{c}"' for c in df.columns)
        con.execute(f"INSERT INTO corpus.{table} ({names}) SELECT {names} FROM _incoming")
    finally:
        con.unregister("_incoming")


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    writes: list[tuple[str, pl.DataFrame, str, list[Any]]],
) -> None:
    """Atomically, for each (table, frame, where, params): delete rows matching `where`, insert frame."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table, df, where, params in writes:
            con.execute(f"DELETE FROM corpus.{table} WHERE {where}", params)
            _insert(con, table, df)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def partition_where(day: date, source: str) -> tuple[str, list[Any]]:
    return "date = ? AND source = ?", [day, source]


def read_partition(con: duckdb.DuckDBPyConnection, table: str, day: date, source: str) -> pl.DataFrame:
    where, params = partition_where(day, source)
    return con.execute(f"SELECT * FROM corpus.{table} WHERE {where} ORDER BY example_id", params).pl()


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    return con.execute(sql, params or []).pl()
