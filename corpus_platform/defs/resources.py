"""Resources every domain shares: the runtime home and the DuckDB warehouse."""

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from corpus_platform.settings import Layout
from corpus_platform.warehouse import migrate, migrations
from corpus_platform.warehouse_lock import warehouse_lock


class CorpusHome(dg.ConfigurableResource):
    """Root of everything a run writes (landing, exports, adapters, models)."""

    path: str

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.path))


_MIGRATED: set[tuple] = set()  # (path, device, inode) this process has migrated, views included


@contextmanager
def warehouse(duckdb_resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on the warehouse with the `sql/` migrations applied: once per process and file (a run
    opens the warehouse in every step; recreating every view each time cost ~0.25 s per step). The
    connection is opened under the warehouse's file lock (warehouse_lock.py): one session at a time."""
    path = Path(duckdb_resource.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(path), duckdb_resource.get_connection() as con:
        key = _file_key(path)
        if key is None or key not in _MIGRATED or not _up_to_date(con):
            migrate(con)
            key = _file_key(path)
            if key is not None:
                _MIGRATED.add(key)
        yield con


def _file_key(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), st.st_dev, st.st_ino)


def _up_to_date(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        done = {r[0] for r in con.execute("SELECT version FROM corpus.schema_migrations").fetchall()}
    except duckdb.Error:
        return False
    return {v for v, _ in migrations()} <= done
