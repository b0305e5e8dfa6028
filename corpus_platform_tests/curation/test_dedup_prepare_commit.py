"""global_dedup's two halves: `prepare_partition` (no warehouse) and `commit_partition` (the index lookups).

Two worker processes prepare their partitions at the same time and commit one after the other, each commit
written in the session that looked the index up. The pairs must be those of a serial run in either order.
"""

from __future__ import annotations

import random
from datetime import date, datetime

import polars as pl

from corpus_platform.curation.decisions import stage_writes
from corpus_platform.curation.global_dedup import (DedupSettings, commit_partition, index_partition, index_writes,
                                                  prepare_partition)
from corpus_platform.schema import examples_frame, make_example
from corpus_platform.warehouse import query, replace_rows
from corpus_platform_tests.curation.test_dedup import warehouse  # an in-memory migrated warehouse

AT = datetime(2026, 1, 3, 9, 0)
DAYS = (date(2026, 1, 2), date(2026, 1, 3))


def corpus() -> dict[date, pl.DataFrame]:
    """Two partitions: near duplicates (one word of 120 changed) within and across them, an exact copy
    across them, a related pair (Jaccard ~0.6) and unrelated texts."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(3000)]

    def text(n=120):
        return [rng.choice(vocab) for _ in range(n)]

    def edit(words, k):
        out = list(words)
        for i in rng.sample(range(len(out)), k):
            out[i] = "changed" + str(i)
        return out

    a, b, c, d = text(), text(), text(), text()  # Jaccard: a~a' 0.92, a~a'' 0.84, d~d' 0.62
    docs = {DAYS[0]: [a, edit(a, 1), c, text(), text()],
            DAYS[1]: [edit(a, 1), b, list(c), edit(d, 0), text()]}
    docs[DAYS[0]].append(edit(d, 6))  # related across
    rows = {day: [make_example(source="public", source_id=f"{day}-{i}", day=day, collected_at=AT,
                               messages=[{"role": "user", "content": "Tell me."},
                                         {"role": "assistant", "content": " ".join(w)}])
                  for i, w in enumerate(ws)] for day, ws in docs.items()}
    return {day: examples_frame(r) for day, r in rows.items()}


def write(con, day, result) -> None:
    replace_rows(con, [*stage_writes("deduplicated_examples", "dedup", result.kept, result.decisions, day, "public"),
                       *index_writes(result, day, "public")])


def pairs(con) -> list[tuple]:
    return query(con, "SELECT * FROM corpus.near_duplicate_pairs ORDER BY ALL").rows()


def serial(frames, order) -> list[tuple]:
    with warehouse() as con:
        for day in order:
            write(con, day, index_partition(frames[day], con, day, "public", DedupSettings()))
        return pairs(con)


def test_prepared_concurrently_committed_in_turn_equals_serial_in_either_order():
    frames = corpus()
    expected = serial(frames, DAYS)
    assert expected == serial(frames, DAYS[::-1])
    across = {p[6] for p in expected if p[2] != p[5]}
    assert {"near", "exact", "related"} <= across, across  # every kind of pair crosses the two partitions
    for order in (DAYS, DAYS[::-1]):
        prepared = {day: prepare_partition(frames[day], day, "public", DedupSettings()) for day in DAYS}  # both first
        with warehouse() as con:
            for day in order:
                write(con, day, commit_partition(prepared[day], con))
            assert pairs(con) == expected


def test_prepare_holds_the_within_partition_work():
    frames = corpus()
    prep = prepare_partition(frames[DAYS[0]], DAYS[0], "public", DedupSettings())
    assert prep.hashes is not None and prep.bands.height == 16 * prep.kept.height  # 16 bands per example
    assert len(prep.within) >= 1 and (prep.within_jac >= 0.8).any()  # the near pair within day 1, verified
    with warehouse() as con:  # an empty index: the commit adds nothing across partitions
        result = commit_partition(prep, con)
    assert result.stats["index_matches"] == 0 and result.stats["near_pairs"] == int((prep.within_jac >= 0.8).sum())


def test_exact_only_prepares_no_signatures():
    frames = corpus()
    prep = prepare_partition(frames[DAYS[1]], DAYS[1], "public", DedupSettings(near=False))
    assert prep.hashes is None and prep.bands.height == 0
    with warehouse() as con:
        write(con, DAYS[0], index_partition(frames[DAYS[0]], con, DAYS[0], "public", DedupSettings(near=False)))
        result = commit_partition(prep, con)
    assert result.pairs["kind"].to_list() == ["exact"]
