"""write_exports: OpenAI chat JSONL and Alpaca JSON per split, content-addressed and written atomically."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.exports import LATEST, export_version, latest_export, write_exports
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 6)
AT = datetime(2026, 1, 6, 0, 0)


def ex(source_id: str, *turns: tuple[str, str]) -> dict:
    return make_example(source="conversations", source_id=source_id, day=DAY, collected_at=AT,
                        messages=[{"role": r, "content": c} for r, c in turns])


def export_frame(rows: list[tuple[dict, str]]) -> pl.DataFrame:
    """What training_exports reads: example_id, split, content_hash, messages."""
    df = with_content_hash(examples_frame([r for r, _ in rows]))
    splits = pl.DataFrame({"example_id": [r["example_id"] for r, _ in rows], "split": [s for _, s in rows]})
    return df.join(splits, on="example_id").select("example_id", "split", "content_hash", "messages")


ROWS = [
    (ex(f"train-{i}", ("user", f"Question {i}?"), ("assistant", f"Answer {i}, café ☕.")), "train") for i in range(5)
] + [
    (ex("multi", ("system", "Be terse."), ("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2")),
     "val"),
    (ex("test-0", ("user", "Final?"), ("assistant", "Yes.")), "test"),
    (ex("test-1", ("user", "Another?"), ("assistant", "Sure.")), "test"),
]


@pytest.fixture
def df() -> pl.DataFrame:
    return export_frame(ROWS)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_openai_chat_lines_are_messages_in_example_id_order(df, tmp_path):
    manifest = write_exports(df.reverse(), tmp_path)
    out = tmp_path / manifest["version"]
    for split in ("train", "val", "test"):
        expected = df.filter(pl.col("split") == split).sort("example_id")
        lines = read_jsonl(out / "openai_chat" / f"{split}.jsonl")
        assert lines == [{"messages": m} for m in expected["messages"].to_list()]
        assert all(list(line) == ["messages"] for line in lines)
    first = read_jsonl(out / "openai_chat" / "train.jsonl")[0]
    assert first["messages"][0] == {"role": "user", "content": first["messages"][0]["content"]}
    assert "café ☕" in first["messages"][1]["content"]


def test_alpaca_maps_turns(df, tmp_path):
    out = tmp_path / write_exports(df, tmp_path)["version"]
    val = json.loads((out / "alpaca" / "val.json").read_text(encoding="utf-8"))
    assert val == [{"instruction": "u2", "input": "", "output": "a2", "system": "Be terse.", "history": [["u1", "a1"]]}]
    test = json.loads((out / "alpaca" / "test.json").read_text(encoding="utf-8"))
    order = df.filter(pl.col("split") == "test").sort("example_id")["messages"].to_list()
    assert test == [{"instruction": m[0]["content"], "input": "", "output": m[1]["content"]} for m in order]
    assert all("system" not in r and "history" not in r for r in test)


def test_alpaca_merges_consecutive_user_turns_and_skips_unanswered_tail(tmp_path):
    row = ex("x", ("user", "part one"), ("user", "part two"), ("assistant", "reply"), ("user", "hanging"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text()) == [
        {"instruction": "part one\n\npart two", "input": "", "output": "reply"}
    ]


def test_conversation_without_a_user_to_assistant_exchange_is_refused_clearly(tmp_path):
    """The filter rule `ends_with_assistant_reply` rejects these before export; exporting one anyway
    fails with a clear error instead of an unpacking crash."""
    row = ex("greeting-first", ("assistant", "Hello! How can I help you today?"), ("user", "Tell me about cats."))
    with pytest.raises(ValueError, match="no user -> assistant exchange"):
        write_exports(export_frame([(row, "train")]), tmp_path)


def test_leading_greeting_is_left_out_of_alpaca_only(tmp_path):
    row = ex("greeting", ("assistant", "Hi! Ask me anything."), ("user", "Q"), ("assistant", "A"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text()) == [{"instruction": "Q", "input": "", "output": "A"}]
    assert len(json.loads((out / "openai_chat" / "train.jsonl").read_text())["messages"]) == 3


def test_consecutive_assistant_turns_are_merged_into_the_output(tmp_path):
    row = ex("two-replies", ("user", "Q"), ("assistant", "first reply"), ("assistant", "second reply"))
    out = tmp_path / write_exports(export_frame([(row, "train")]), tmp_path)["version"]
    assert json.loads((out / "alpaca" / "train.json").read_text())[0]["output"] == "first reply\n\nsecond reply"


def test_manifest_counts_and_hashes_match_files(df, tmp_path):
    manifest = write_exports(df, tmp_path)
    out = tmp_path / manifest["version"]
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 5, "val": 1, "test": 2}
    assert {(f["format"], f["split"]) for f in manifest["files"]} == {
        (fmt, s) for fmt in ("openai_chat", "alpaca") for s in ("train", "val", "test")}
    for f in manifest["files"]:
        path = out / f["path"]
        assert not Path(f["path"]).is_absolute() and path.is_file()
        assert f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        n = len(read_jsonl(path)) if f["format"] == "openai_chat" else len(json.loads(path.read_text()))
        assert f["rows"] == n == manifest["counts"][f["split"]]


def test_empty_split_still_written(tmp_path):
    manifest = write_exports(export_frame(ROWS[:2]), tmp_path)
    out = tmp_path / manifest["version"]
    assert manifest["counts"] == {"train": 2, "val": 0, "test": 0}
    assert (out / "openai_chat" / "val.jsonl").read_text() == ""
    assert json.loads((out / "alpaca" / "test.json").read_text()) == []


def test_export_version_stable_and_data_sensitive(df):
    v = export_version(df)
    assert len(v) == 12 and all(c in "0123456789abcdef" for c in v)
    assert export_version(df) == v
    assert export_version(df.reverse()) == v
    assert export_version(df.sample(fraction=1.0, shuffle=True, seed=3)) == v
    moved = df.with_columns(pl.when(pl.col("split") == "val").then(pl.lit("train")).otherwise("split").alias("split"))
    assert export_version(moved) != v
    rehashed = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("0" * 64))
                               .otherwise("content_hash").alias("content_hash"))
    assert export_version(rehashed) != v
    assert export_version(df.slice(1)) != v
    assert len({export_version(df), export_version(moved), export_version(rehashed), export_version(df.slice(1))}) == 4


def test_writing_same_data_twice_reuses_directory(df, tmp_path):
    first = write_exports(df, tmp_path)
    out = tmp_path / first["version"]
    before = tree(out)
    mtime = (out / "manifest.json").stat().st_mtime_ns
    second = write_exports(df.reverse(), tmp_path)
    assert second == first
    assert tree(out) == before
    assert (out / "manifest.json").stat().st_mtime_ns == mtime  # not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first["version"], LATEST])


def test_latest_points_to_newest_and_no_tmp_remains(df, tmp_path):
    a = write_exports(df, tmp_path)["version"]
    assert (tmp_path / LATEST).read_text().strip() == a
    assert latest_export(tmp_path) == tmp_path / a
    b = write_exports(export_frame(ROWS[:3]), tmp_path)["version"]
    assert b != a
    assert latest_export(tmp_path) == tmp_path / b
    assert write_exports(df, tmp_path)["version"] == a  # rewriting older data makes it the newest again
    assert latest_export(tmp_path) == tmp_path / a
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([a, b, LATEST])
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_stale_partial_directory_is_replaced(df, tmp_path):
    version = export_version(df)
    partial = tmp_path / version / "openai_chat"
    partial.mkdir(parents=True)
    (partial / "train.jsonl").write_text("garbage\n")
    manifest = write_exports(df, tmp_path)
    out = tmp_path / version
    assert (out / "manifest.json").exists()
    assert read_jsonl(out / "openai_chat" / "train.jsonl")[0].keys() == {"messages"}
    assert manifest["counts"]["train"] == 5


def test_latest_export_without_export_raises_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no export yet") as err:
        latest_export(tmp_path / "exports")
    assert str(tmp_path / "exports") in str(err.value)
