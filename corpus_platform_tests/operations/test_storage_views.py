"""The operations views on a warehouse whose figures are known: storage per table and source (warehouse and
archive), and the training-readiness score per source by the rules written in sql/views_operations.sql."""

import json
from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.schema import EXAMPLE_SCHEMA, example_id
from corpus_platform.warehouse import connect, replace_rows

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
TEXT = "Ünïcode réponse"  # multi-byte: the byte figures count bytes, not characters


def examples(source: str, n: int, days: list[date], feedback: list = (), start: int = 0) -> pl.DataFrame:
    """n examples spread round-robin over days; row i carries feedback[i] when given (None = JSON null)."""
    rows = []
    for i in range(start, start + n):
        meta = {"author": f"u{i % 7}"}
        if i - start < len(feedback):
            meta["feedback"] = feedback[i - start]
        rows.append({"example_id": example_id(source, f"s{i}"), "source": source, "date": days[i % len(days)],
                     "source_id": f"s{i}", "messages": [{"role": "user", "content": f"q{i}"},
                                                         {"role": "assistant", "content": f"{TEXT} {i}"}],
                     "metadata": json.dumps(meta), "collected_at": datetime(2026, 1, 4)})
    return pl.DataFrame(rows, schema=EXAMPLE_SCHEMA, orient="row")


def scored(raw: pl.DataFrame, n: int, high: int) -> pl.DataFrame:
    """The first n rows kept by curation, the first `high` of them with quality_score >= 7 (7.0 exactly on the edge)."""
    kept = raw.head(n)
    scores = [(7.0 if i == 0 else 9.5) if i < high else 6.99 for i in range(n)]
    return kept.with_columns(pl.Series("content_hash", [f"h{i}" for i in range(n)]),
                             pl.Series("quality_score", scores, dtype=pl.Float64), pl.lit("{}").alias("score_detail"))


# source: (total, successful, with_feedback, quality_examples, days) -> the score by the view's formula
#   100 * (0.30 * min(1, total/1000) + 0.25 * successful/total + 0.15 * with_feedback/total + 0.30 * quality/successful)
CASES = {
    # 100 * (0.30 * 1 + 0.25 * 0.8 + 0.15 * 0.5 + 0.30 * 0.75) = 80.0: ready
    "conversations": dict(total=1000, successful=800, with_feedback=500, quality=600, days=[D1, D2, D3], score=80.0, ready=True),
    # 100 * (0.30 * 0.5 + 0.25 * 0.8 + 0 + 0.30 * 0.5) = 50.0: not ready (no feedback, too few, half of it low quality)
    "public": dict(total=500, successful=400, with_feedback=0, quality=200, days=[D2, D3], score=50.0, ready=False),
    # 100 * (0.30 * 1 + 0.25 * 1 + 0 + 0.30 * 0.5) = 70.0: exactly on the threshold, ready
    "synthetic": dict(total=1200, successful=1200, with_feedback=0, quality=600, days=[D3], score=70.0, ready=True),
    # 100 * (0.30 * 0.01 + 0.25 * 0 + 0 + 0) = 0.3: nothing survived curation (no division by zero)
    "reddit": dict(total=10, successful=0, with_feedback=0, quality=0, days=[D1], score=0.3, ready=False),
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "warehouse.duckdb"
    frames = {}
    with connect(path) as con:
        for source, c in CASES.items():
            # with_feedback rows carry an object or a string; a JSON null does not count as feedback.
            fb = [{"kind": "thumbs_up"} if i % 2 else "thumbs_down" for i in range(c["with_feedback"])]
            fb += [None] * (5 if c["with_feedback"] else 0)
            raw = examples(source, c["total"], c["days"], feedback=fb)
            kept = scored(raw, c["successful"], c["quality"])
            frames[source] = (raw, kept)
            replace_rows(con, [("raw_examples", raw, "source = ?", [source]),
                               ("scored_examples", kept, "source = ?", [source])])
        # Two archived partitions of conversations (earlier days) in the catalog.
        con.execute("""INSERT INTO corpus.archived_partitions VALUES
            ('raw_examples', 'conversations', '2025-12-01', 's3://b/p/raw_examples/source=conversations/date=2025-12-01/part.parquet',
             'b', 'p/raw_examples/source=conversations/date=2025-12-01/part.parquet', 120, 4096, 'aa', '2026-01-05', 'r1'),
            ('raw_examples', 'conversations', '2025-12-02', 's3://b/p/raw_examples/source=conversations/date=2025-12-02/part.parquet',
             'b', 'p/raw_examples/source=conversations/date=2025-12-02/part.parquet', 80, 2048, 'bb', '2026-01-05', 'r1'),
            ('decisions', 'conversations', '2025-12-01', 's3://b/p/decisions/source=conversations/date=2025-12-01/part.parquet',
             'b', 'p/decisions/source=conversations/date=2025-12-01/part.parquet', 300, 1000, 'cc', '2026-01-05', 'r1')""")
        views = {v: con.execute(f"SELECT * FROM corpus.{v}").pl()
                 for v in ("storage_stats", "storage_by_source", "table_storage", "training_readiness")}
    return {"views": views, "frames": frames}


def test_readiness_score_follows_the_formula_source_by_source(warehouse):
    got = {r["source"]: r for r in warehouse["views"]["training_readiness"].iter_rows(named=True)}
    assert set(got) == set(CASES)
    for source, c in CASES.items():
        r = got[source]
        assert (r["total"], r["successful"], r["with_feedback"], r["quality_examples"]) == (
            c["total"], c["successful"], c["with_feedback"], c["quality"]), source
        assert r["volume"] == round(min(1, c["total"] / 1000), 4)
        assert r["successful_share"] == round(c["successful"] / c["total"], 4)
        assert r["feedback_share"] == round(c["with_feedback"] / c["total"], 4)
        assert r["quality_share"] == (round(c["quality"] / c["successful"], 4) if c["successful"] else 0)
        assert r["score"] == pytest.approx(c["score"], abs=1e-9), source
        assert r["ready"] is c["ready"], source


def test_storage_stats_per_table_and_source(warehouse):
    stats = warehouse["views"]["storage_stats"]
    hot = {(r["table_name"], r["source"]): r for r in stats.filter(pl.col("location") == "warehouse").iter_rows(named=True)}
    assert set(hot) == {(t, s) for s in CASES for t in ("raw_examples", "scored_examples") if t == "raw_examples"
                        or CASES[s]["successful"]}
    for source, c in CASES.items():
        raw, kept = warehouse["frames"][source]
        r = hot[("raw_examples", source)]
        assert r["rows"] == c["total"] and r["partitions"] == len(c["days"])
        assert (r["oldest_day"], r["newest_day"]) == (min(c["days"]), max(c["days"]))
        # Bytes are the rows' JSON text: at least the UTF-8 bytes of their text fields, at most that plus a
        # bounded per-row overhead (keys, ids, dates, punctuation).
        content = sum(len(m["content"].encode()) for ms in raw["messages"].to_list() for m in ms)
        content += sum(len(s.encode()) for s in raw["metadata"].to_list())
        assert content < r["approx_bytes"] < content + 300 * c["total"], source
        if c["successful"]:
            k = hot[("scored_examples", source)]
            assert k["rows"] == c["successful"] and k["approx_bytes"] > 0
    archived = stats.filter(pl.col("location") == "archive").sort("table_name").to_dicts()
    assert [(a["table_name"], a["source"], a["rows"], a["approx_bytes"], a["partitions"], str(a["oldest_day"]),
             str(a["newest_day"])) for a in archived] == [
        ("decisions", "conversations", 300, 1000, 1, "2025-12-01", "2025-12-01"),
        ("raw_examples", "conversations", 200, 6144, 2, "2025-12-01", "2025-12-02")]


def test_storage_by_source_puts_warehouse_and_archive_side_by_side(warehouse):
    by = {r["source"]: r for r in warehouse["views"]["storage_by_source"].iter_rows(named=True)}
    stats = warehouse["views"]["storage_stats"]
    assert set(by) == set(CASES)
    for source, c in CASES.items():
        hot = stats.filter((pl.col("source") == source) & (pl.col("location") == "warehouse"))
        assert by[source]["warehouse_rows"] == c["total"] + c["successful"] == hot["rows"].sum()
        assert by[source]["warehouse_approx_bytes"] == hot["approx_bytes"].sum()
        assert by[source]["warehouse_days"] == len(c["days"])
    conv = by["conversations"]
    assert (conv["archived_rows"], conv["archived_bytes"], conv["archived_days"]) == (500, 7144, 2)
    assert (conv["oldest_day"], conv["newest_day"]) == (date(2025, 12, 1), D3)
    assert (by["public"]["archived_rows"], by["public"]["archived_days"], by["public"]["oldest_day"]) == (0, 0, D2)


def test_table_storage_has_the_engine_row_estimates(warehouse):
    sizes = {r["table_name"]: r for r in warehouse["views"]["table_storage"].iter_rows(named=True)}
    assert {"raw_examples", "scored_examples", "archived_partitions", "decisions"} <= set(sizes)
    assert sizes["raw_examples"]["estimated_rows"] == sum(c["total"] for c in CASES.values())
    assert sizes["scored_examples"]["estimated_rows"] == sum(c["successful"] for c in CASES.values())
    assert sizes["archived_partitions"]["estimated_rows"] == 3


def test_views_work_on_an_empty_warehouse(tmp_path):
    with connect(tmp_path / "empty.duckdb") as con:
        for view in ("storage_stats", "storage_by_source", "training_readiness"):
            assert con.execute(f"SELECT count(*) FROM corpus.{view}").fetchone() == (0,)
        con.execute("SELECT * FROM corpus.table_storage").fetchall()

