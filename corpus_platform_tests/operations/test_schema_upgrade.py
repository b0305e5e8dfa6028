"""Schema evolution: a warehouse written by an older version (migrations 001-002 only) upgrades in
place on the next run: sql/003 adds `ingest_run_id` to the canonical raw_examples table, old rows
survive untouched (NULL lineage), new rows carry their run id, and every stage still works."""

import shutil
from datetime import date

import dagster as dg

from corpus_platform import warehouse
from corpus_platform.definitions import make_definitions
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import QUIET
from corpus_platform.schema import examples_frame, make_example
from corpus_platform.settings import Layout

OLD, NEW = date(2026, 1, 1), date(2026, 1, 2)


def test_old_warehouse_upgrades_in_place_on_the_next_run(tmp_path):
    layout = Layout(tmp_path)
    old_sql = tmp_path / "old_sql"
    old_sql.mkdir()
    for version, path in warehouse.migrations():
        if version < 3:
            shutil.copy(path, old_sql / path.name)
    # No views: today's views.sql reads tables that later migrations create; the old version had its own.
    rows = [make_example(source="public", source_id=f"{OLD}/old.jsonl:{i}", day=OLD,
                         messages=[{"role": "user", "content": f"Old question {i}?"},
                                   {"role": "assistant", "content": f"An old answer number {i}, kept across upgrades."}])
            for i in range(5)]
    layout.warehouse.parent.mkdir(parents=True, exist_ok=True)
    import duckdb

    con = duckdb.connect(str(layout.warehouse))
    try:
        assert warehouse.migrate(con, old_sql) == [1, 2]
        where, params = warehouse.partition_where(OLD, "public")
        warehouse.replace_rows(con, [("raw_examples", examples_frame(rows), where, params)])
        before = con.execute("SELECT * FROM corpus.raw_examples ORDER BY example_id").fetchall()
        columns = [r[0] for r in con.execute("DESCRIBE corpus.raw_examples").fetchall()]
        assert "ingest_run_id" not in columns
    finally:
        con.close()

    write_demo_corpus(layout.landing, [NEW])
    with dg.instance_for_test() as instance:
        result = make_definitions(tmp_path).resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(NEW, "public"), instance=instance, run_config=QUIET)
        assert result.success

    with warehouse.connect(layout.warehouse) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM corpus.schema_migrations ORDER BY 1").fetchall()]
        assert versions == [v for v, _ in warehouse.migrations()] and 3 in versions
        after = con.execute("SELECT * EXCLUDE (ingest_run_id) FROM corpus.raw_examples WHERE date = ? ORDER BY example_id",
                            [OLD]).fetchall()
        assert after == before  # no data loss
        assert con.execute("SELECT count(*) FROM corpus.raw_examples WHERE date = ? AND ingest_run_id IS NULL", [OLD]).fetchone()[0] == 5
        new_runs = {r[0] for r in con.execute("SELECT DISTINCT ingest_run_id FROM corpus.raw_examples WHERE date = ?", [NEW]).fetchall()}
        assert new_runs == {result.run_id}
        assert con.execute("SELECT count(*) FROM corpus.scored_examples WHERE date = ?", [NEW]).fetchone()[0] > 40
