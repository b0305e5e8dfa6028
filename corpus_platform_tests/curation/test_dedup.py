"""Exact dedup within a partition (global_dedup.index_partition): one example per content hash is kept by the
keep rule (quality, engagement, earliest, smallest id), whatever the row order; same-hash examples of other
partitions become exact pairs for duplicate_clusters."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import polars as pl
import pytest

from contextlib import contextmanager

import duckdb

from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.global_dedup import DedupSettings, index_partition
from corpus_platform.curation.normalize import normalize_messages
from corpus_platform.schema import examples_frame, make_example
from corpus_platform.warehouse import migrate, replace_rows

DAY = date(2026, 1, 3)
AT = datetime(2026, 1, 3, 9, 0)
QA = [("user", "How tall is Everest?"), ("assistant", "About 8,849 metres above sea level.")]


def ex(source_id: str, *turns: tuple[str, str], day: date = DAY) -> dict:
    return make_example(source="public", source_id=source_id, day=day, collected_at=AT,
                        messages=[{"role": r, "content": c} for r, c in turns])


def comparable(decisions: pl.DataFrame) -> list[tuple]:
    return decisions.drop("decided_at").sort("example_id").rows()


@contextmanager
def warehouse():
    con = duckdb.connect(":memory:")
    migrate(con)
    try:
        yield con
    finally:
        con.close()


def dedup_exact(df: pl.DataFrame, _index=None) -> tuple[pl.DataFrame, pl.DataFrame]:
    with warehouse() as con:
        r = index_partition(df, con, DAY, "public", DedupSettings(near=False))
    return r.kept, r.decisions


def run(rows: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return dedup_exact(examples_frame(rows))


def test_within_partition_keeps_smallest_id_and_names_it():
    rows = [ex(f"copy-{i}", *QA) for i in range(5)]
    smallest = min(r["example_id"] for r in rows)
    kept, decisions = run(rows)
    assert kept["example_id"].to_list() == [smallest]
    d = {r["example_id"]: r for r in decisions.iter_rows(named=True)}
    assert d[smallest]["decision"] == "kept" and d[smallest]["duplicate_of"] is None and d[smallest]["rule"] is None
    for eid, row in d.items():
        if eid != smallest:
            assert row["decision"] == "duplicate"
            assert row["rule"] == "exact_sha256"
            assert row["duplicate_of"] == smallest
            assert row["stage"] == "dedup"


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_result_does_not_depend_on_row_order(seed):
    rows = [ex(f"copy-{i}", *QA) for i in range(6)] + [ex(f"other-{i}", ("user", f"q{i}"), ("assistant", "same"))
                                                      for i in range(4)]
    rows += [ex(f"pair-{i}", ("user", "Name a colour."), ("assistant", "Blue.")) for i in range(3)]
    df = examples_frame(rows)
    base_kept, base_decisions = dedup_exact(df)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=seed)
    assert shuffled["example_id"].to_list() != df["example_id"].to_list()
    kept, decisions = dedup_exact(shuffled)
    assert kept.equals(base_kept)
    assert comparable(decisions) == comparable(base_decisions)
    assert kept.height == 1 + 4 + 1


def test_duplicates_after_normalization_caught_only_when_normalized():
    variants = [
        ex("v1", ("user", "Hello  world"), ("assistant", "Hi there, how are you?")),
        ex("v2", ("user", "Ｈｅｌｌｏ world"), ("assistant", "Hi there,\u00a0how are you?")),
        ex("v3", ("user", " Hello world\u200b\r\n"), ("assistant", "Hi there, how are you?  ")),
    ]
    df = examples_frame(variants)
    raw_kept, _ = dedup_exact(df)
    assert raw_kept.height == 3  # the raw bytes differ
    kept, decisions = dedup_exact(normalize_messages(df))
    smallest = min(r["example_id"] for r in variants)
    assert kept["example_id"].to_list() == [smallest]
    assert decisions.filter(pl.col("decision") == "duplicate")["duplicate_of"].to_list() == [smallest, smallest]


def test_keep_rule_prefers_quality_then_engagement_then_earliest():
    base = ex("plain", *QA)
    liked = make_example(source="public", source_id="liked", day=DAY, collected_at=AT,
                         messages=[{"role": r, "content": c} for r, c in QA], metadata={"score": 40})
    early = make_example(source="public", source_id="early", day=DAY, collected_at=AT,
                         messages=[{"role": r, "content": c} for r, c in QA],
                         metadata={"score": 40, "created_at": "2026-01-01T00:00:00+00:00"})
    kept, decisions = run([base, liked, early])
    assert kept["example_id"].to_list() == [early["example_id"]]  # same quality; more engagement; then earlier
    assert set(decisions.filter(pl.col("decision") == "duplicate")["duplicate_of"]) == {early["example_id"]}


def test_same_text_in_another_partition_becomes_an_exact_pair_not_a_local_decision():
    with warehouse() as con:
        yesterday = date(2026, 1, 2)
        prior = index_partition(examples_frame([ex("yesterday", *QA, day=yesterday)]), con, yesterday, "public", DedupSettings())
        replace_rows(con, [("deduplicated_examples", prior.kept, "TRUE", [])])
        today = ex("today", *QA)
        fresh = ex("fresh", ("user", "Something new?"), ("assistant", "Yes, brand new."))
        result = index_partition(examples_frame([today, fresh]), con, DAY, "public", DedupSettings())
    assert sorted(result.kept["example_id"]) == sorted([today["example_id"], fresh["example_id"]])
    exact = result.pairs.filter(pl.col("kind") == "exact")
    assert exact.height == 1 and exact["jaccard"][0] == 1.0
    assert {exact["id_a"][0], exact["id_b"][0]} == {today["example_id"], prior.kept["example_id"][0]}
    assert result.stats["exact_across"] == 1


def test_distinct_texts_all_kept_sorted_with_content_hash():
    rows = [ex(f"d{i}", ("user", f"Question number {i}?"), ("assistant", f"Answer number {i}.")) for i in range(8)]
    df = examples_frame(rows).reverse()
    kept, decisions = dedup_exact(df)
    assert kept.height == 8 and set(decisions["decision"]) == {"kept"}
    assert kept["example_id"].to_list() == sorted(r["example_id"] for r in rows)
    assert kept.columns == [*df.columns, "content_hash"]
    by_id = {r["example_id"]: r for r in rows}
    for eid, h in zip(kept["example_id"], kept["content_hash"]):
        msgs = by_id[eid]["messages"]
        text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in msgs)
        assert h == hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([("user", "A"), ("assistant", "B")], [("system", "A"), ("assistant", "B")]),
        ([("user", "Same words"), ("assistant", "Same reply.")], [("assistant", "Same words"), ("user", "Same reply.")]),
        ([("user", "Hi"), ("user", "Hi"), ("assistant", "Yo")], [("user", "Hi"), ("assistant", "Hi"), ("assistant", "Yo")]),
    ],
)
def test_role_matters(a, b):
    kept, decisions = run([ex("a", *a), ex("b", *b)])
    assert kept.height == 2
    assert set(decisions["decision"]) == {"kept"}


def test_turn_boundaries_matter():
    kept, _ = run([ex("joined", ("user", "one two"), ("assistant", "three")),
                   ex("split", ("user", "one"), ("user", "two"), ("assistant", "three"))])
    assert kept.height == 2


def test_role_marker_inside_content_is_not_a_separate_turn():
    kept, _ = run([ex("one-turn", ("user", "hi\nassistant: there")),
                   ex("two-turns", ("user", "hi"), ("assistant", "there"))])
    assert kept.height == 2


def test_decisions_cover_every_row_exactly_once():
    rows = [ex(f"copy-{i}", *QA) for i in range(4)]
    rows += [ex(f"u{i}", ("user", f"unique {i}"), ("assistant", "distinct reply text")) for i in range(5)]
    df = examples_frame(rows)
    kept, decisions = dedup_exact(df)
    assert decisions.height == df.height
    assert sorted(decisions["example_id"]) == sorted(df["example_id"])
    counts = decisions.group_by("decision").len().sort("decision").rows()
    assert counts == [("duplicate", 3), ("kept", 6)]
    assert decisions.filter(pl.col("decision") == "kept")["example_id"].sort().to_list() == kept["example_id"].to_list()
    assert decisions.filter(pl.col("decision") == "duplicate")["duplicate_of"].null_count() == 0
    assert (decisions["source"] == "public").all() and (decisions["date"] == DAY).all()
