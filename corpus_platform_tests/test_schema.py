"""The canonical example: stable ids, validated turns, conform and quarantine rows."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.schema import (
    EXAMPLE_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_PREVIEW_CHARS,
    conform,
    empty_examples,
    example_id,
    examples_frame,
    make_example,
    quarantine_frame,
    quarantine_row,
)

DAY = date(2026, 1, 7)
AT = datetime(2026, 1, 7, 3, 4, 5)
MSGS = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def test_example_id_is_stable_and_source_dependent():
    a = example_id("reddit", "t3_abc")
    assert a == example_id("reddit", "t3_abc")
    assert a == hashlib.sha256("reddit\x1ft3_abc".encode()).hexdigest()[:20]
    assert len(a) == 20
    assert example_id("youtube", "t3_abc") != a
    assert example_id("reddit", "t3_abd") != a
    # the separator keeps (source, id) pairs from running together
    assert example_id("ab", "c") != example_id("a", "bc")


def test_make_example_builds_canonical_row():
    row = make_example(source="conversations", source_id="i-1", day=DAY, collected_at=AT,
                       messages=[{"role": "user", "content": "Hi", "extra": 1}, MSGS[1]],
                       metadata={"z": 1, "a": "é", "when": DAY})
    assert set(row) == set(EXAMPLE_SCHEMA)
    assert row["example_id"] == example_id("conversations", "i-1")
    assert row["messages"] == MSGS  # extra keys dropped
    assert row["metadata"] == '{"a": "é", "when": "2026-01-07", "z": 1}'  # sorted keys, unicode kept, dates as str
    assert row["collected_at"] == AT and row["date"] == DAY


def test_make_example_defaults():
    row = make_example(source="s", source_id="1", day=DAY, messages=MSGS)
    assert json.loads(row["metadata"]) == {}
    assert isinstance(row["collected_at"], datetime) and row["collected_at"].tzinfo is None
    assert row["collected_at"].microsecond == 0


def test_same_item_same_id_whatever_day():
    a = make_example(source="public", source_id="x", day=date(2026, 1, 1), messages=MSGS)
    b = make_example(source="public", source_id="x", day=date(2026, 2, 1), messages=MSGS[:1])
    assert a["example_id"] == b["example_id"]


@pytest.mark.parametrize("role", ["human", "gpt", "User", "", None, "tool"])
def test_make_example_rejects_unknown_roles(role):
    with pytest.raises(ValueError, match="unknown role"):
        make_example(source="s", source_id="1", day=DAY, messages=[MSGS[0], {"role": role, "content": "x"}])


def test_make_example_rejects_missing_role():
    with pytest.raises(ValueError, match="unknown role None"):
        make_example(source="s", source_id="1", day=DAY, messages=[{"content": "x"}])


@pytest.mark.parametrize("content", [None, 3, ["a"], {"text": "a"}, b"bytes"])
def test_make_example_rejects_non_string_content(content):
    with pytest.raises(ValueError, match="assistant turn is not a string"):
        make_example(source="s", source_id="1", day=DAY, messages=[MSGS[0], {"role": "assistant", "content": content}])


def test_examples_frame_schema_and_empty():
    df = examples_frame([make_example(source="s", source_id=str(i), day=DAY, collected_at=AT, messages=MSGS)
                         for i in range(3)])
    assert df.schema == pl.Schema(EXAMPLE_SCHEMA)
    assert df.height == 3 and df["messages"].to_list()[0] == MSGS
    assert examples_frame([]).schema == pl.Schema(EXAMPLE_SCHEMA) and examples_frame([]).height == 0
    assert empty_examples().schema == pl.Schema(EXAMPLE_SCHEMA)


def test_conform_selects_orders_and_casts():
    df = examples_frame([make_example(source="s", source_id="1", day=DAY, collected_at=AT, messages=MSGS)])
    messy = df.with_columns(
        pl.lit(42, dtype=pl.Int64).alias("source_id"),
        pl.col("collected_at").cast(pl.Datetime("ns")),
        pl.lit("junk").alias("extra"),
    ).select("extra", "messages", "collected_at", "source_id", "example_id", "metadata", "date", "source")
    out = conform(messy)
    assert out.columns == list(EXAMPLE_SCHEMA)
    assert out.schema == pl.Schema(EXAMPLE_SCHEMA)
    assert out["source_id"].to_list() == ["42"]
    assert out["collected_at"].to_list() == [AT]
    assert out.drop("source_id").equals(df.drop("source_id"))


def test_conform_fails_on_missing_columns():
    df = examples_frame([make_example(source="s", source_id="1", day=DAY, messages=MSGS)])
    with pytest.raises(ValueError, match=r"lacks canonical columns \['source_id', 'metadata'\]"):
        conform(df.drop("metadata", "source_id"))


def test_conform_with_another_schema():
    q = pl.DataFrame({"source": ["s"], "date": [DAY], "file": ["f.jsonl"], "line": [3], "reason": ["bad json"],
                      "raw": ["{"], "quarantined_at": [AT]}).with_columns(pl.col("line").cast(pl.Int32))
    out = conform(q, QUARANTINE_SCHEMA)
    assert out.schema == pl.Schema(QUARANTINE_SCHEMA)


def test_quarantine_row_truncates_raw():
    long = "x" * (RAW_PREVIEW_CHARS + 500)
    row = quarantine_row(source="public", day=DAY, file="a.jsonl", line=7, reason="bad", raw=long)
    assert row["raw"] == "x" * RAW_PREVIEW_CHARS
    assert set(row) == set(QUARANTINE_SCHEMA)
    assert (row["line"], row["file"], row["reason"]) == (7, "a.jsonl", "bad")
    short = quarantine_row(source="public", day=DAY, file="a.jsonl", line=1, reason="bad", raw="tiny")
    assert short["raw"] == "tiny"


def test_quarantine_row_decodes_bytes_with_replacement():
    row = quarantine_row(source="public", day=DAY, file="a.jsonl.gz", line=2, reason="not utf-8",
                         raw=b"caf\xc3\xa9 \xff\xfe end")
    assert row["raw"] == "café \ufffd\ufffd end"
    long = quarantine_row(source="public", day=DAY, file="f", line=0, reason="r", raw=("é" * 3000).encode())
    assert long["raw"] == "é" * RAW_PREVIEW_CHARS  # truncated in characters, not bytes


def test_quarantine_frame():
    rows = [quarantine_row(source="public", day=DAY, file="f", line=i, reason="r", raw=b"\xff") for i in range(2)]
    df = quarantine_frame(rows)
    assert df.schema == pl.Schema(QUARANTINE_SCHEMA) and df["line"].to_list() == [0, 1]
    assert quarantine_frame([]).schema == pl.Schema(QUARANTINE_SCHEMA)
