"""Resources every domain shares: the runtime home and the DuckDB warehouse."""

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from corpus_platform.settings import Layout
from corpus_platform.warehouse import migrate


class CorpusHome(dg.ConfigurableResource):
    """Root of everything a run writes (landing, exports, adapters, models)."""

    path: str

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.path))


@contextmanager
def warehouse(duckdb_resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on the warehouse with the `sql/` migrations applied."""
    Path(duckdb_resource.database).parent.mkdir(parents=True, exist_ok=True)
    with duckdb_resource.get_connection() as con:
        migrate(con)
        yield con
