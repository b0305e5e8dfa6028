"""dedup_exact: the smallest example_id of a content hash is kept, whatever the row order or index."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.dedup import dedup_exact, with_content_hash
from corpus_platform.curation.normalize import normalize_messages
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 3)
AT = datetime(2026, 1, 3, 9, 0)
NO_INDEX = pl.DataFrame(schema={"content_hash": pl.Utf8, "example_id": pl.Utf8})
QA = [("user", "How tall is Everest?"), ("assistant", "About 8,849 metres above sea level.")]


def ex(source_id: str, *turns: tuple[str, str], day: date = DAY) -> dict:
    return make_example(source="public", source_id=source_id, day=day, collected_at=AT,
                        messages=[{"role": r, "content": c} for r, c in turns])


def comparable(decisions: pl.DataFrame) -> list[tuple]:
    return decisions.drop("decided_at").sort("example_id").rows()


def run(rows: list[dict], index: pl.DataFrame = NO_INDEX) -> tuple[pl.DataFrame, pl.DataFrame]:
    return dedup_exact(examples_frame(rows), index)


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
    base_kept, base_decisions = dedup_exact(df, NO_INDEX)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=seed)
    assert shuffled["example_id"].to_list() != df["example_id"].to_list()
    kept, decisions = dedup_exact(shuffled, NO_INDEX)
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
    raw_kept, _ = dedup_exact(df, NO_INDEX)
    assert raw_kept.height == 3  # the raw bytes differ
    kept, decisions = dedup_exact(normalize_messages(df), NO_INDEX)
    smallest = min(r["example_id"] for r in variants)
    assert kept["example_id"].to_list() == [smallest]
    assert decisions.filter(pl.col("decision") == "duplicate")["duplicate_of"].to_list() == [smallest, smallest]


def test_hash_in_index_makes_example_duplicate_of_index_owner():
    prior = with_content_hash(examples_frame([ex("yesterday", *QA, day=date(2026, 1, 2))]))
    index = prior.select("content_hash", pl.lit("000-prior-example").alias("example_id"))
    today = ex("today", *QA)
    fresh = ex("fresh", ("user", "Something new?"), ("assistant", "Yes, brand new."))
    kept, decisions = run([today, fresh], index)
    assert kept["example_id"].to_list() == [fresh["example_id"]]
    d = {r["example_id"]: r for r in decisions.iter_rows(named=True)}
    assert d[today["example_id"]]["decision"] == "duplicate"
    assert d[today["example_id"]]["duplicate_of"] == "000-prior-example"
    assert d[fresh["example_id"]]["decision"] == "kept"


def test_index_owner_beats_smaller_local_id_and_all_local_copies_are_duplicates():
    rows = [ex(f"copy-{i}", *QA) for i in range(3)]
    h = with_content_hash(examples_frame(rows[:1]))["content_hash"][0]
    index = pl.DataFrame({"content_hash": [h, h, "f" * 64], "example_id": ["zzz-owner", "yyy-owner", "aaa-other"]})
    kept, decisions = run(rows, index)
    assert kept.height == 0
    assert set(decisions["decision"]) == {"duplicate"}
    assert set(decisions["duplicate_of"]) == {"yyy-owner"}  # the smallest id of the index holding the hash


def test_distinct_texts_all_kept_sorted_with_content_hash():
    rows = [ex(f"d{i}", ("user", f"Question number {i}?"), ("assistant", f"Answer number {i}.")) for i in range(8)]
    df = examples_frame(rows).reverse()
    kept, decisions = dedup_exact(df, NO_INDEX)
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


def test_precomputed_content_hash_is_used():
    df = with_content_hash(examples_frame([ex("x", *QA), ex("y", ("user", "other"), ("assistant", "text here"))]))
    forced = df.with_columns(pl.lit("h" * 64).alias("content_hash"))
    kept, decisions = dedup_exact(forced, NO_INDEX)
    assert kept.height == 1 and kept["content_hash"].to_list() == ["h" * 64]
    assert kept.columns == df.columns  # content_hash stays last, not duplicated


def test_decisions_cover_every_row_exactly_once():
    rows = [ex(f"copy-{i}", *QA) for i in range(4)]
    rows += [ex(f"u{i}", ("user", f"unique {i}"), ("assistant", "distinct reply text")) for i in range(5)]
    rows += [ex("idx", ("user", "seen before"), ("assistant", "in another partition"))]
    index = with_content_hash(examples_frame([ex("old", ("user", "seen before"), ("assistant", "in another partition"),
                                                 day=date(2025, 12, 31))])).select("content_hash", "example_id")
    df = examples_frame(rows)
    kept, decisions = dedup_exact(df, index)
    assert decisions.height == df.height
    assert sorted(decisions["example_id"]) == sorted(df["example_id"])
    counts = decisions.group_by("decision").len().sort("decision").rows()
    assert counts == [("duplicate", 4), ("kept", 6)]
    assert decisions.filter(pl.col("decision") == "kept")["example_id"].sort().to_list() == kept["example_id"].to_list()
    assert decisions.filter(pl.col("decision") == "duplicate")["duplicate_of"].null_count() == 0
    assert (decisions["source"] == "public").all() and (decisions["date"] == DAY).all()
