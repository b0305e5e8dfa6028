"""The DuckDB warehouse: numbered migrations applied once, atomic partition replacement, outcome views."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from corpus_platform import warehouse
from corpus_platform.curation.decisions import decision_rows
from corpus_platform.schema import examples_frame, make_example

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)
AT = datetime(2026, 1, 1, 6, 0)
TABLES = {"raw_examples", "quarantine", "filtered_examples", "deduplicated_examples", "scored_examples",
          "dataset_splits", "decisions", "export_files", "schema_migrations", "deletion_audit",
          "minhash_bands", "near_duplicate_pairs", "duplicate_clusters", "example_embeddings", "judgments"}
SHIPPED = [(v, p.name) for v, p in warehouse.migrations()]  # what sql/ ships today
VERSIONS = [v for v, _ in SHIPPED]
NEXT = VERSIONS[-1] + 1  # the number a new migration would take
VIEWS = {"example_decisions", "example_outcomes", "rejection_rates", "stage_counts"}


def ex(source_id: str, day: date = D1, source: str = "public", text: str = "hello") -> dict:
    return make_example(source=source, source_id=source_id, day=day, collected_at=AT, metadata={"k": source_id},
                        messages=[{"role": "user", "content": text}, {"role": "assistant", "content": "reply " + text}])


def frame(*ids: str, day: date = D1, source: str = "public", text: str = "hello") -> pl.DataFrame:
    return examples_frame([ex(i, day, source, text) for i in ids])


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    warehouse.migrate(c)
    yield c
    c.close()


def objects(con, kind: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'corpus' AND table_type = ?", [kind]
    ).fetchall()}


def count(con, table: str, day: date | None = None, source: str | None = None) -> int:
    if day is None:
        return con.execute(f"SELECT count(*) FROM corpus.{table}").fetchone()[0]
    return con.execute(f"SELECT count(*) FROM corpus.{table} WHERE date = ? AND source = ?", [day, source]).fetchone()[0]


def write_raw(con, df: pl.DataFrame, day: date = D1, source: str = "public") -> None:
    where, params = warehouse.partition_where(day, source)
    warehouse.replace_rows(con, [("raw_examples", df, where, params)])


def test_migrate_applies_init_once(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        assert SHIPPED[0] == (1, "001_init.sql")
        assert warehouse.migrate(c) == VERSIONS
        assert warehouse.migrate(c) == []
        rows = c.execute("SELECT version, name FROM corpus.schema_migrations ORDER BY version").fetchall()
        assert rows == SHIPPED
        assert TABLES <= objects(c, "BASE TABLE")  # the domains' migrations (review, distillation, archive) add theirs
        assert VIEWS <= objects(c, "VIEW")  # views.sql may add more
    finally:
        c.close()


def test_migrations_listing_ignores_non_migrations(tmp_path):
    sql = tmp_path / "sql"
    shutil.copytree(warehouse.SQL_DIR, sql)
    (sql / "notes.sql").write_text("SELECT 1;")
    (sql / "01_short.sql").write_text("SELECT 1;")
    (sql / f"{NEXT:03d}_next.sql").write_text("SELECT 1;")
    (sql / "999_later.sql").write_text("SELECT 1;")
    assert [(v, p.name) for v, p in warehouse.migrations(sql)] == [*SHIPPED, (NEXT, f"{NEXT:03d}_next.sql"),
                                                                  (999, "999_later.sql")]


def test_connect_migrates_and_data_survives_reopen(tmp_path):
    path = tmp_path / "home" / "warehouse.duckdb"
    with warehouse.connect(path) as c:
        write_raw(c, frame("a", "b"))
    with warehouse.connect(path) as c:
        assert count(c, "raw_examples") == 2
        assert c.execute("SELECT count(*) FROM corpus.schema_migrations").fetchone()[0] == len(VERSIONS)
    with warehouse.connect(path, read_only=True) as c:
        assert warehouse.read_partition(c, "raw_examples", D1, "public")["source_id"].sort().to_list() == ["a", "b"]


def test_round_trip_keeps_canonical_values(con):
    df = frame("b", "a", text="naïve ☕")
    write_raw(con, df)
    back = warehouse.read_partition(con, "raw_examples", D1, "public")
    assert back["example_id"].to_list() == sorted(df["example_id"])  # read_partition orders by example_id
    expected = df.sort("example_id")
    assert back["messages"].to_list() == expected["messages"].to_list()
    assert back["collected_at"].to_list() == [AT, AT]
    assert back["date"].to_list() == [D1, D1]


def test_replace_rows_replaces_exactly_one_partition_and_is_idempotent(con):
    write_raw(con, frame("a", "b", "c"), D1, "public")
    write_raw(con, frame("a", "b", source="conversations"), D1, "conversations")
    write_raw(con, frame("a", "b", day=D2), D2, "public")
    new = frame("x", "y")
    for _ in range(2):
        write_raw(con, new, D1, "public")
        assert warehouse.read_partition(con, "raw_examples", D1, "public")["source_id"].to_list() == \
            new.sort("example_id")["source_id"].to_list()
        assert count(con, "raw_examples", D1, "conversations") == 2
        assert count(con, "raw_examples", D2, "public") == 2
        assert count(con, "raw_examples") == 6


def test_replace_with_empty_frame_clears_partition(con):
    write_raw(con, frame("a", "b"))
    write_raw(con, frame("c", day=D2), D2)
    write_raw(con, frame())
    assert count(con, "raw_examples", D1, "public") == 0
    assert count(con, "raw_examples", D2, "public") == 1


def test_failing_insert_rolls_back_delete_and_names_column(con):
    write_raw(con, frame("a", "b"))
    bad = frame("x").with_columns(pl.lit("oops").alias("bogus_column"))
    with pytest.raises(ValueError, match="bogus_column"):
        write_raw(con, bad)
    assert warehouse.read_partition(con, "raw_examples", D1, "public")["source_id"].sort().to_list() == ["a", "b"]
    # the connection is usable afterwards: no transaction left open
    write_raw(con, frame("z"))
    assert warehouse.read_partition(con, "raw_examples", D1, "public")["source_id"].to_list() == ["z"]


def test_failure_in_a_later_write_rolls_back_earlier_writes(con):
    write_raw(con, frame("a", "b"))
    raw = frame("a", "b")
    decisions = decision_rows(raw, stage="filter", decision="kept")
    warehouse.replace_rows(con, [("decisions", decisions, "stage = ?", ["filter"])])
    missing_not_null = frame("x").drop("source_id")  # DuckDB rejects it: source_id is NOT NULL
    with pytest.raises(duckdb.ConstraintException):
        warehouse.replace_rows(con, [
            ("decisions", decisions.head(0), "stage = ?", ["filter"]),
            ("raw_examples", missing_not_null, "date = ? AND source = ?", [D1, "public"]),
        ])
    assert count(con, "decisions") == 2
    assert count(con, "raw_examples") == 2


def test_write_to_missing_table_fails_and_leaves_no_open_transaction(con):
    write_raw(con, frame("a"))
    with pytest.raises(duckdb.CatalogException, match="nope"):
        warehouse.replace_rows(con, [
            ("raw_examples", frame(), "TRUE", []),
            ("nope", frame("a").select("example_id"), "TRUE", []),
        ])
    assert count(con, "raw_examples") == 1
    write_raw(con, frame("b"))
    assert count(con, "raw_examples") == 1


def test_new_migration_upgrades_existing_database_in_place(tmp_path):
    path = tmp_path / "w.duckdb"
    with warehouse.connect(path) as c:
        write_raw(c, frame("a", "b"))
        write_raw(c, frame("c", day=D2), D2)
        before = c.execute("SELECT * FROM corpus.raw_examples ORDER BY example_id").fetchall()
    sql = tmp_path / "sql"
    shutil.copytree(warehouse.SQL_DIR, sql)
    (sql / f"{NEXT:03d}_language.sql").write_text(
        "ALTER TABLE corpus.raw_examples ADD COLUMN language VARCHAR DEFAULT 'und';\n"
        "ALTER TABLE corpus.scored_examples ADD COLUMN judge_score DOUBLE;\n"
    )
    c = duckdb.connect(str(path))
    try:
        assert warehouse.migrate(c, sql) == [NEXT]
        assert warehouse.migrate(c, sql) == []
        assert [r[0] for r in c.execute("SELECT version FROM corpus.schema_migrations ORDER BY version").fetchall()] == [*VERSIONS, NEXT]
        after = c.execute("SELECT * EXCLUDE (language) FROM corpus.raw_examples ORDER BY example_id").fetchall()
        assert after == before
        assert {r[0] for r in c.execute("SELECT language FROM corpus.raw_examples").fetchall()} == {"und"}
        # the new column is writable through replace_rows, and the views still work
        write_raw(c, frame("d").with_columns(pl.lit("en").alias("language")))
        assert c.execute("SELECT language FROM corpus.raw_examples WHERE date = ?", [D1]).fetchall() == [("en",)]
        assert c.execute("SELECT count(*) FROM corpus.example_outcomes").fetchone()[0] == 2
    finally:
        c.close()


def test_failing_migration_is_not_recorded(tmp_path, con):
    sql = tmp_path / "sql"
    shutil.copytree(warehouse.SQL_DIR, sql)
    (sql / f"{NEXT:03d}_broken.sql").write_text(
        "CREATE TABLE corpus.half_done (x INTEGER);\nALTER TABLE corpus.does_not_exist ADD COLUMN y INTEGER;\n")
    with pytest.raises(duckdb.Error):
        warehouse.migrate(con, sql)
    assert [r[0] for r in con.execute("SELECT version FROM corpus.schema_migrations ORDER BY 1").fetchall()] == VERSIONS
    assert "half_done" not in objects(con, "BASE TABLE")


def test_example_outcomes_gives_last_stage_decision(con):
    raw = frame("kept-all", "dup", "rejected", "untouched")
    write_raw(con, raw)
    write_raw(con, frame("kept-all", day=D2), D2)  # same id on another day: its own outcome
    ids = dict(zip(raw["source_id"], raw["example_id"]))
    by = lambda *names: raw.filter(pl.col("source_id").is_in(list(names)))  # noqa: E731
    where = "stage = ? AND date = ? AND source = ?"
    # decision rows for a stage are replaced together, so write the filter stage in one frame
    filt = pl.concat([decision_rows(by("kept-all", "dup"), stage="filter", decision="kept"),
                      decision_rows(by("rejected"), stage="filter", decision="rejected", rule="min_alpha_ratio",
                                    score=0.1, threshold=0.3)])
    warehouse.replace_rows(con, [
        ("decisions", filt, where, ["filter", D1, "public"]),
        ("decisions", pl.concat([
            decision_rows(by("kept-all"), stage="dedup", decision="kept"),
            decision_rows(by("dup"), stage="dedup", decision="duplicate", rule="exact_sha256",
                          duplicate_of=ids["kept-all"]),
        ]), where, ["dedup", D1, "public"]),
        ("decisions", decision_rows(by("kept-all"), stage="split", decision="kept", rule="train", score=7.5),
         where, ["split", D1, "public"]),
        ("decisions", decision_rows(by("kept-all"), stage="score", decision="kept", score=7.5, threshold=3.0),
         where, ["score", D1, "public"]),
    ])
    out = warehouse.query(con, "SELECT * FROM corpus.example_outcomes WHERE date = ?", [D1])
    assert out.height == 4  # one row per raw example
    got = {r["example_id"]: r for r in out.iter_rows(named=True)}
    assert (got[ids["kept-all"]]["final_stage"], got[ids["kept-all"]]["decision"], got[ids["kept-all"]]["rule"]) == \
        ("split", "kept", "train")
    assert (got[ids["dup"]]["final_stage"], got[ids["dup"]]["decision"], got[ids["dup"]]["duplicate_of"]) == \
        ("dedup", "duplicate", ids["kept-all"])
    r = got[ids["rejected"]]
    assert (r["final_stage"], r["decision"], r["rule"], r["score"], r["threshold"]) == \
        ("filter", "rejected", "min_alpha_ratio", 0.1, 0.3)
    assert got[ids["untouched"]]["final_stage"] is None and got[ids["untouched"]]["decision"] is None
    other_day = warehouse.query(con, "SELECT final_stage FROM corpus.example_outcomes WHERE date = ?", [D2])
    assert other_day["final_stage"].to_list() == [None]
