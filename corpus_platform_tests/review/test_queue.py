"""The daily review queue: stratified, borderline and new sources first, deterministic, never re-queued."""

from datetime import date, datetime

import dagster as dg
import duckdb
import polars as pl

from corpus_platform.review.journal import append_verdict, journal_path, make_verdict
from corpus_platform.review.queue import QueueSettings, build_queue, candidates, classify, select_queue
from corpus_platform.review.verdicts import import_journal
from corpus_platform.warehouse import migrate, query

from .conftest import DAY, build, example_id

TODAY = date(2026, 2, 1)


def strata(con) -> set[str]:
    return set(classify(candidates(con), QueueSettings())["stratum"])


def give_verdicts(con, home, ids, source="public", at=datetime(2026, 1, 31, 9)):
    for i in ids:
        append_verdict(journal_path(home), make_verdict(example_id=example_id(source, i), source=source, day=DAY,
                                                        verdict="keep", reviewer="ann", original_response="x", at=at),
                       fsync=False)
    import_journal(con, journal_path(home))


def test_kinds_bands_and_strata_follow_the_decision_record(con):
    c = classify(candidates(con), QueueSettings()).sort("example_id")
    kinds = dict(zip(c["example_id"], c["kind"]))
    assert kinds[example_id("public", 0)] == "rejected"  # 3 distinct words vs 8: far from the threshold
    assert kinds[example_id("public", 1)] == "duplicate"  # identical text (similarity 1): never borderline
    assert kinds[example_id("public", 2)] == "borderline"  # rejected at 2.5, min_quality 3
    assert kinds[example_id("public", 4)] == "borderline"  # kept at 3.5
    assert kinds[example_id("public", 6)] == "kept"
    bands = dict(zip(c["example_id"], c["score_band"]))
    assert bands[example_id("public", 2)] == "2-3" and bands[example_id("public", 6)] == "8-9"
    assert bands[example_id("public", 0)] == "unscored"
    assert "public|2-3|score|min_quality_score" in set(c["stratum"])
    # A filter measurement within 10% of its threshold is borderline too.
    near = pl.DataFrame({"example_id": ["x"], "source": ["s"], "date": [DAY], "stage": ["filter"], "decision": ["rejected"],
                         "rule": ["max_total_chars"], "score": [12_500.0], "threshold": [12_000.0]})
    assert classify(near, QueueSettings())["kind"][0] == "borderline"


def test_every_stratum_is_visited_before_any_twice_and_borderline_first(con):
    all_strata = strata(con)
    queue = build_queue(con, QueueSettings(daily_size=len(all_strata)), TODAY)
    assert sorted(queue["stratum"]) == sorted(all_strata)  # one of each
    assert queue["priority"].to_list() == list(range(1, len(all_strata) + 1))
    borderline = queue.filter(pl.col("kind") == "borderline")["priority"].to_list()
    assert borderline == list(range(1, len(borderline) + 1))  # borderline strata lead the round
    stored = query(con, "SELECT * FROM corpus.review_queue ORDER BY priority")
    assert stored.height == queue.height and (stored["queued_on"] == TODAY).all()
    assert stored["reason"].str.contains("new source").all()
    # Borderline strata weigh double: their second examples come before any other stratum's second.
    bigger = select_queue(candidates(con), {}, QueueSettings(), 2 * len(all_strata))
    second = bigger.slice(len(all_strata))
    assert second.head(len(borderline))["kind"].to_list() == ["borderline"] * len(borderline)


def test_new_sources_come_first(con, tmp_path):
    give_verdicts(con, tmp_path, [6, 7, 8], source="public")
    queue = build_queue(con, QueueSettings(daily_size=45, new_source_reviews=3), TODAY)  # 40 conversations
    sources = queue["source"].to_list()
    assert "public" in sources and "conversations" in sources
    first_public = sources.index("public")
    assert set(sources[:first_public]) == {"conversations"}
    assert set(sources[first_public:]) == {"public"}  # established sources only after every new one
    assert queue.filter(pl.col("source") == "public")["reason"].str.contains("3 reviewed from this source").all()


def test_same_data_same_queue_whatever_the_insert_order(tmp_path):
    queues = []
    for order in (1, -1):
        c = duckdb.connect(str(tmp_path / f"w{order}.duckdb"))
        migrate(c)
        build(c, order=order)
        queues.append(build_queue(c, QueueSettings(daily_size=25), TODAY).select("example_id", "priority", "reason"))
        c.close()
    assert queues[0].equals(queues[1])
    c = duckdb.connect(str(tmp_path / "w1.duckdb"))
    other = select_queue(candidates(c), {}, QueueSettings(daily_size=25, seed="another"), 25)
    c.close()
    assert other["example_id"].to_list() != queues[0]["example_id"].to_list()  # the seed orders within a stratum


def test_never_requeues_a_reviewed_example_and_tops_up_to_the_daily_size(con, tmp_path):
    first = build_queue(con, QueueSettings(daily_size=10), TODAY)
    reviewed = first.head(4)
    for r in reviewed.iter_rows(named=True):
        append_verdict(journal_path(tmp_path), make_verdict(example_id=r["example_id"], source=r["source"], day=r["date"],
                                                            verdict="keep", reviewer="ann", original_response="x"), fsync=False)
    import_journal(con, journal_path(tmp_path))
    again = build_queue(con, QueueSettings(daily_size=10), TODAY)
    assert again.height == 6  # today's batch already had 4 reviewed
    assert not set(again["example_id"]) & set(reviewed["example_id"])
    stored = query(con, "SELECT example_id FROM corpus.review_queue")
    assert stored.height == 10 and set(reviewed["example_id"]) <= set(stored["example_id"])  # history stays
    tomorrow = build_queue(con, QueueSettings(daily_size=10), date(2026, 2, 2))
    assert tomorrow.height == 10 and not set(tomorrow["example_id"]) & set(reviewed["example_id"])
    assert query(con, "SELECT count(*) AS n FROM corpus.review_queue")["n"][0] == 14  # 4 history + 10 pending


def test_review_queue_asset_materializes_with_its_resource(tmp_path):
    from dagster_duckdb import DuckDBResource

    from corpus_platform.defs.resources import CorpusHome
    from corpus_platform.defs.review.assets import review_queue
    from corpus_platform.defs.review.resources import ReviewSettings

    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(c)
    build(c)
    c.close()
    result = dg.materialize([review_queue], resources={
        "duckdb": DuckDBResource(database=str(tmp_path / "warehouse.duckdb")),
        "corpus_home": CorpusHome(path=str(tmp_path)),
        "review": ReviewSettings(daily_size=7),
    })
    assert result.success
    meta = result.asset_materializations_for_node("review_queue")[0].metadata
    assert meta["dagster/row_count"].value == 7 and meta["pending"].value == 7
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert c.execute("SELECT count(*) FROM corpus.review_queue").fetchone()[0] == 7
    c.close()
