"""read_public on the real shared corpus: record counts match each folder's README, content round-trips."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.sources.public import read_public

pytestmark = pytest.mark.realdata

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PARTITION = "2024-05-01"  # the landing folder's name: every file path and source id starts with it

# landing name -> (shared path, record count from that folder's README)
FILES = {
    "alpaca_data_2k.json": ("alpaca-2k/alpaca_data_2k.json", 2000),
    "dolly_151.jsonl": ("dolly-sample/dolly_151.jsonl", 151),
    "sharegpt/fastchat_dummy_conversation.json": ("sharegpt-style/fastchat_dummy_conversation.json", 500),
    "sharegpt/glaive_toolcall_en_demo.json": ("sharegpt-style/glaive_toolcall_en_demo.json", 300),
    "hh/test.jsonl.gz": ("hh-rlhf-harmless-base-test/test.jsonl.gz", 2312),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip("../shared/data not present: real-data tests need the shared corpus beside the repo")
    landing = tmp_path_factory.mktemp("landing") / PARTITION  # a partition folder, as in production
    for name, (src, _) in FILES.items():
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / src, landing / name)
    return read_public(landing, date.fromisoformat(PARTITION))


def _tool_call_records() -> set[int]:
    """Indexes (1-based) of glaive records with a tool turn: the only records expected in quarantine."""
    records = json.loads((DATA / FILES["sharegpt/glaive_toolcall_en_demo.json"][0]).read_text())
    return {i for i, r in enumerate(records, 1) if any(t["from"] in ("function_call", "observation") for t in r["conversations"])}


def test_every_record_is_an_example_or_a_legitimate_quarantine(batch):
    assert batch.files == sorted(f"{PARTITION}/{name}" for name in FILES)
    got = batch.examples.group_by(pl.col("metadata").str.json_path_match("$.file").alias("file")).len()
    examples = dict(zip(got["file"], got["len"]))
    tool_calls = _tool_call_records()
    assert 0 < len(tool_calls) < 300
    q = batch.quarantine
    assert set(q["file"]) == {f"{PARTITION}/sharegpt/glaive_toolcall_en_demo.json"}
    assert set(q["line"]) == tool_calls
    assert set(q["reason"]) <= {"unsupported role 'function_call'", "unsupported role 'observation'"}
    for name, (_, count) in FILES.items():
        held = q.filter(pl.col("file") == f"{PARTITION}/{name}").height
        assert examples.get(f"{PARTITION}/{name}", 0) + held == count, name
    assert batch.examples["example_id"].n_unique() == batch.examples.height


def _example(batch, source_id: str) -> tuple[list[dict], dict]:
    row = batch.examples.filter(pl.col("source_id") == source_id).row(0, named=True)
    return row["messages"], json.loads(row["metadata"])


def test_content_round_trips(batch):
    alpaca = json.loads((DATA / "alpaca-2k/alpaca_data_2k.json").read_text())
    messages, meta = _example(batch, f"{PARTITION}/alpaca_data_2k.json:1")
    assert meta["format"] == "alpaca"
    assert messages == [{"role": "user", "content": alpaca[0]["instruction"]}, {"role": "assistant", "content": alpaca[0]["output"]}]
    with_input = next(i for i, r in enumerate(alpaca, 1) if r["input"])
    messages, _ = _example(batch, f"{PARTITION}/alpaca_data_2k.json:{with_input}")
    assert messages[0]["content"] == alpaca[with_input - 1]["instruction"] + "\n\n" + alpaca[with_input - 1]["input"]

    messages, meta = _example(batch, f"{PARTITION}/dolly_151.jsonl:1")
    assert meta == {"format": "dolly", "template": "alpaca", "file": f"{PARTITION}/dolly_151.jsonl", "line": 1}
    assert messages[0] == {"role": "user", "content": "Why is Citizen Kane considered the Best Film?"}
    assert messages[1]["content"].startswith("The American Film Institute") and "###" not in messages[1]["content"][-20:]
    dolly_users = [m[0]["content"] for m in batch.examples.filter(pl.col("source_id").str.starts_with(f"{PARTITION}/dolly"))["messages"].to_list()]
    assert len(dolly_users) == 151  # the filter must match: an empty list would pass the check below vacuously
    assert not any("### " in u or u.startswith("Below is an instruction") for u in dolly_users)

    messages, meta = _example(batch, f"{PARTITION}/sharegpt/fastchat_dummy_conversation.json:1")
    assert meta["id"] == "identity_0" and meta["format"] == "sharegpt"
    assert messages[0] == {"role": "user", "content": "Who are you?"} and len(messages) == 4

    with gzip.open(DATA / "hh-rlhf-harmless-base-test/test.jsonl.gz", "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())
    messages, meta = _example(batch, f"{PARTITION}/hh/test.jsonl.gz:1")
    assert meta["rejected"] == first["rejected"] and meta["format"] == "hh"
    assert messages[0] == {"role": "user", "content": "what are some pranks with a pen i can do?"}
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
