"""read_public: each public format parsed from a small file, and every kind of bad input quarantined."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date

import pytest

from corpus_platform.schema import EXAMPLE_SCHEMA, QUARANTINE_SCHEMA, example_id
from corpus_platform.sources.public import read_public


def rows(batch) -> dict[str, dict]:
    """Examples by source_id, metadata decoded."""
    out = {}
    for r in batch.examples.iter_rows(named=True):
        out[r["source_id"]] = {**r, "metadata": json.loads(r["metadata"])}
    return out


def quarantined(batch) -> list[tuple[str, int, str]]:
    return [(r["file"], r["line"], r["reason"]) for r in batch.quarantine.sort("file", "line").iter_rows(named=True)]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def test_alpaca(landing, day, write):
    write("alpaca.jsonl", [
        {"instruction": "Add.", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi.", "input": "", "output": "hi", "id": 7, "line": "x"},
        {"instruction": "Be brief.", "output": "ok", "system": "You are terse."},
    ])
    batch = read_public(landing, day)
    got = rows(batch)
    assert batch.quarantine.height == 0 and batch.files == ["2024-05-01/alpaca.jsonl"]
    first = got["2024-05-01/alpaca.jsonl:1"]
    assert first["messages"] == [u("Add.\n\n2 and 3"), a("5")]
    assert first["metadata"] == {"format": "alpaca", "file": "2024-05-01/alpaca.jsonl", "line": 1}
    assert first["source"] == "public" and first["date"] == day
    assert first["example_id"] == example_id("public", "2024-05-01/alpaca.jsonl:1")
    # extra fields land in metadata; one named like ours is kept under record_<name>
    assert got["2024-05-01/alpaca.jsonl:2"]["messages"] == [u("Say hi."), a("hi")]
    assert got["2024-05-01/alpaca.jsonl:2"]["metadata"] == {"format": "alpaca", "file": "2024-05-01/alpaca.jsonl", "line": 2, "id": 7, "record_line": "x"}
    assert got["2024-05-01/alpaca.jsonl:3"]["messages"] == [s("You are terse."), u("Be brief."), a("ok")]


def test_same_file_name_on_another_day_is_another_input(landing, day, write):
    # a public record has no identity of its own: its position names it, and that includes the partition folder
    next_day = date(2024, 5, 2)
    other = landing.parent / next_day.isoformat()
    write("alpaca.jsonl", [{"instruction": "day one", "input": "", "output": "o"}])
    write("alpaca.jsonl", [{"instruction": "day two", "input": "", "output": "o"}], folder=other)
    one = read_public(landing, day).examples
    two = read_public(other, next_day).examples
    assert one["source_id"].to_list() == ["2024-05-01/alpaca.jsonl:1"]
    assert two["source_id"].to_list() == ["2024-05-02/alpaca.jsonl:1"]
    assert one["example_id"].to_list() == [example_id("public", "2024-05-01/alpaca.jsonl:1")]
    assert two["example_id"].to_list() == [example_id("public", "2024-05-02/alpaca.jsonl:1")]
    assert one["example_id"][0] != two["example_id"][0]
    # reading the same partition folder again (a rerun, a backfill) gives the same ids
    again = read_public(landing, day).examples
    assert again["source_id"].to_list() == one["source_id"].to_list()
    assert again["example_id"].to_list() == one["example_id"].to_list()


def test_dolly(landing, day, write):
    write("dolly.jsonl", [
        {"instruction": "Summarise.", "context": "Long text.", "response": "Short.", "category": "summarization"},
        {"instruction": "Why?", "context": "", "response": "Because.", "category": "open_qa"},
    ])
    got = rows(read_public(landing, day))
    assert got["2024-05-01/dolly.jsonl:1"]["messages"] == [u("Summarise.\n\nLong text."), a("Short.")]
    assert got["2024-05-01/dolly.jsonl:1"]["metadata"] == {"format": "dolly", "file": "2024-05-01/dolly.jsonl", "line": 1, "category": "summarization"}
    assert got["2024-05-01/dolly.jsonl:2"]["messages"] == [u("Why?"), a("Because.")]


def test_dolly_rendered_with_the_alpaca_template(landing, day, write):
    head = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    head_in = ("Below is an instruction that describes a task, paired with an input that provides further context. "
               "Write a response that appropriately completes the request.")
    write("d.jsonl", [
        {"prompt": f"{head}\n\n### Instruction:\nWhy is the sky blue?\n\n### Response:", "answer": "Rayleigh.###eos_token###"},
        {"prompt": f"{head_in}\n\n### Instruction:\nExtract names.\n\n### Input:\nAnn met Bob.\n\nThen left.\n\n### Response:",
         "answer": "Ann, Bob###eos_token###"},
        {"prompt": "Just a question?", "answer": "Just an answer."},
    ])
    got = rows(read_public(landing, day))
    assert got["2024-05-01/d.jsonl:1"]["messages"] == [u("Why is the sky blue?"), a("Rayleigh.")]
    assert got["2024-05-01/d.jsonl:1"]["metadata"] == {"format": "dolly", "file": "2024-05-01/d.jsonl", "line": 1, "template": "alpaca"}
    assert got["2024-05-01/d.jsonl:2"]["messages"] == [u("Extract names.\n\nAnn met Bob.\n\nThen left."), a("Ann, Bob")]
    assert got["2024-05-01/d.jsonl:3"]["messages"] == [u("Just a question?"), a("Just an answer.")]
    assert "template" not in got["2024-05-01/d.jsonl:3"]["metadata"]


def test_sharegpt_json_array(landing, day, write):
    write("chats/sg.json", [
        {"id": "c1", "conversations": [
            {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
            {"from": "user", "value": "More"}, {"from": "chatgpt", "value": "Sure"},
        ]},
        {"system": "Be kind.", "tools": "[]", "conversations": [
            {"from": "Human", "value": "Q"}, {"from": "bard", "value": "A"},
        ]},
        {"conversations": [{"from": "system", "value": "S"}, {"role": "user", "content": "Q"}, {"from": "assistant", "value": "A"}]},
    ])
    batch = read_public(landing, day)
    got = rows(batch)
    assert batch.files == ["2024-05-01/chats/sg.json"]
    assert got["2024-05-01/chats/sg.json:1"]["messages"] == [u("Hi"), a("Hello"), u("More"), a("Sure")]
    assert got["2024-05-01/chats/sg.json:1"]["metadata"] == {"format": "sharegpt", "file": "2024-05-01/chats/sg.json", "line": 1, "id": "c1"}
    assert got["2024-05-01/chats/sg.json:2"]["messages"] == [s("Be kind."), u("Q"), a("A")]
    assert got["2024-05-01/chats/sg.json:2"]["metadata"]["tools"] == "[]"
    assert got["2024-05-01/chats/sg.json:3"]["messages"] == [s("S"), u("Q"), a("A")]


def test_openai_messages(landing, day, write):
    write("oa.jsonl", [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"messages": [
            {"role": "developer", "content": "D"},
            {"role": "user", "content": [{"type": "text", "text": "part 1"}, {"type": "text", "text": "part 2"}]},
            {"role": "assistant", "content": "A", "weight": 1},
        ], "split": "train"},
    ])
    got = rows(read_public(landing, day))
    assert got["2024-05-01/oa.jsonl:1"]["messages"] == [s("S"), u("Q"), a("A")]
    assert got["2024-05-01/oa.jsonl:2"]["messages"] == [s("D"), u("part 1\npart 2"), a("A")]
    assert got["2024-05-01/oa.jsonl:2"]["metadata"] == {"format": "openai", "file": "2024-05-01/oa.jsonl", "line": 2, "split": "train"}


def test_hh_transcripts(landing, day, write):
    write("hh.jsonl.gz", [
        {"chosen": "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:  see you",
         "rejected": "\n\nHuman: hi there\n\nAssistant: go away"},
        {"chosen": "\n\nHuman: q\n\nAssistant: a1\n\nAssistant: a2", "rejected": "x"},
        {"chosen": "\n\nHuman: q\n\nAssistant:", "rejected": "y"},
    ])
    got = rows(read_public(landing, day))
    assert got["2024-05-01/hh.jsonl.gz:1"]["messages"] == [u("hi there"), a("hello"), u("bye"), a("see you")]
    assert got["2024-05-01/hh.jsonl.gz:1"]["metadata"] == {
        "format": "hh", "file": "2024-05-01/hh.jsonl.gz", "line": 1, "rejected": "\n\nHuman: hi there\n\nAssistant: go away"}
    # consecutive turns of one speaker and an empty last answer are representable: curation decides on them
    assert got["2024-05-01/hh.jsonl.gz:2"]["messages"] == [u("q"), a("a1"), a("a2")]
    assert got["2024-05-01/hh.jsonl.gz:3"]["messages"] == [u("q"), a("")]


def test_json_documents_and_gzip(landing, day, write):
    rec = {"instruction": "i", "input": "", "output": "o"}
    write("wrapped.json", {"data": [rec, rec], "version": 2})
    write("single.json", rec)
    write("arr.json.gz", [rec])
    write("lines.jsonl.gz", [rec, rec, rec])
    batch = read_public(landing, day)
    assert batch.quarantine.height == 0
    assert batch.files == ["2024-05-01/arr.json.gz", "2024-05-01/lines.jsonl.gz", "2024-05-01/single.json", "2024-05-01/wrapped.json"]
    assert sorted(batch.examples["source_id"]) == [
        "2024-05-01/arr.json.gz:1", "2024-05-01/lines.jsonl.gz:1", "2024-05-01/lines.jsonl.gz:2", "2024-05-01/lines.jsonl.gz:3",
        "2024-05-01/single.json:1", "2024-05-01/wrapped.json:1", "2024-05-01/wrapped.json:2"]


def test_file_walk(landing, day, write):
    rec = {"instruction": "i", "input": "", "output": "o"}
    write("b/z.jsonl", [rec])
    write("a.jsonl", [rec])
    write(".hidden.jsonl", [rec])
    write(".git/x.jsonl", [rec])
    write("upload.jsonl.tmp", [rec])
    write("upload.jsonl.part", [rec])
    (landing / "notes.csv").write_text("a,b\n")
    batch = read_public(landing, day)
    assert batch.files == ["2024-05-01/a.jsonl", "2024-05-01/b/z.jsonl"]
    assert batch.examples["source_id"].to_list() == ["2024-05-01/a.jsonl:1", "2024-05-01/b/z.jsonl:1"]
    assert quarantined(batch) == [("2024-05-01/notes.csv", 0, "unsupported file type")]


def test_missing_or_empty_folder_gives_empty_frames(tmp_path, landing, day):
    for folder in (tmp_path / "nope", landing):
        batch = read_public(folder, day)
        assert batch.examples.height == 0 and batch.quarantine.height == 0 and batch.files == []
        assert dict(batch.examples.schema) == EXAMPLE_SCHEMA
        assert dict(batch.quarantine.schema) == QUARANTINE_SCHEMA


def test_empty_strings_pass(landing, day, write):
    write("e.jsonl", [{"instruction": "", "input": "", "output": ""}])
    assert rows(read_public(landing, day))["2024-05-01/e.jsonl:1"]["messages"] == [u(""), a("")]


BAD_RECORDS = [
    ("{not json", "invalid JSON: Expecting property name enclosed in double quotes"),
    ('{"instruction": "i", "output": NaN}', "invalid JSON: NaN is not allowed"),
    ('{"instruction": "\\ud800", "output": "o"}', "invalid UTF-8: lone surrogate escape"),
    (b'{"instruction": "caf\xe9", "output": "o"}', "invalid UTF-8"),
    ("[1, 2]", "record is not a JSON object but array"),
    ({"text": "hi", "label": 1}, "unknown format (keys: label, text)"),
    ({"instruction": "i", "input": "", "output": 5}, "wrong type: 'output' is number, expected string"),
    ({"instruction": "i", "input": ""}, "missing field 'output'"),
    ({"instruction": "i", "context": "", "category": "x"}, "missing field 'response'"),
    ({"prompt": "p"}, "missing field 'answer'"),
    ({"conversations": [{"from": "gpt", "value": "a"}]}, "no user turn"),
    ({"conversations": [{"from": "human", "value": "q"}]}, "no assistant turn"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "q2"}]},
     "last turn is not an assistant turn"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "s"}, {"from": "gpt", "value": "a"}]},
     "system turn after the first turn"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"},
                        {"from": "observation", "value": "{}"}, {"from": "gpt", "value": "a"}]},
     "unsupported role 'function_call'"),
    ({"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "a"}]},
     "wrong type: 'value' is number, expected string"),
    ({"conversations": "hi"}, "wrong type: 'conversations' is string, expected array"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}]},
     "unsupported role 'tool'"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [{}]}]},
     "unsupported role 'tool_calls'"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, {"role": "assistant", "content": "a"}]},
     "non-text content part 'image_url'"),
    ({"chosen": "preamble\n\nHuman: q\n\nAssistant: a"}, "text before the first Human:/Assistant: turn"),
    ({"chosen": "\n\nHuman: q"}, "no assistant turn"),
]


@pytest.mark.parametrize("bad,reason", BAD_RECORDS, ids=[r for _, r in BAD_RECORDS])
def test_bad_record_is_quarantined_and_the_rest_still_read(landing, day, write, bad, reason):
    good = {"instruction": "i", "input": "", "output": "o"}
    write("mixed.jsonl", [good, bad, "", good])
    batch = read_public(landing, day)
    assert quarantined(batch) == [("2024-05-01/mixed.jsonl", 2, reason)]
    assert batch.examples["source_id"].to_list() == ["2024-05-01/mixed.jsonl:1", "2024-05-01/mixed.jsonl:4"]
    raw = batch.quarantine["raw"][0]
    assert raw and len(raw) <= 2000


def test_bad_record_in_json_array_uses_record_index(landing, day, write):
    write("arr.json", [{"instruction": "i", "output": "o"}, {"instruction": "i", "output": 1}, "x"])
    batch = read_public(landing, day)
    assert quarantined(batch) == [
        ("2024-05-01/arr.json", 2, "wrong type: 'output' is number, expected string"),
        ("2024-05-01/arr.json", 3, "record is not a JSON object but string"),
    ]
    assert json.loads(batch.quarantine["raw"][0]) == {"instruction": "i", "output": 1}
    assert batch.examples["source_id"].to_list() == ["2024-05-01/arr.json:1"]


def test_broken_files_are_one_line_zero_row(landing, day, write):
    rec = {"instruction": "i", "input": "", "output": "o"}
    write("bad.json", b'[{"instruction": "i",\n "output": }]')
    write("latin1.json", '[{"instruction": "café", "output": "o"}]'.encode("latin-1"))
    write("scalar.json", b"42")
    write("empty.json", b"")
    (landing / "empty.jsonl.gz").write_bytes(b"")
    (landing / "plain.jsonl.gz").write_bytes(json.dumps(rec).encode())
    write("ok.jsonl", [rec])
    batch = read_public(landing, day)
    assert quarantined(batch) == [
        ("2024-05-01/bad.json", 0, "invalid JSON: Expecting value at line 2 column 12"),
        ("2024-05-01/empty.json", 0, "invalid JSON: Expecting value at line 1 column 1"),
        ("2024-05-01/empty.jsonl.gz", 0, "empty gzip file"),
        ("2024-05-01/latin1.json", 0, "invalid UTF-8"),
        ("2024-05-01/plain.jsonl.gz", 0, "not a gzip file"),
        ("2024-05-01/scalar.json", 0, "JSON file holds a number, not an array of records"),
    ]
    assert batch.examples["source_id"].to_list() == ["2024-05-01/ok.jsonl:1"]


def test_truncated_gzip_keeps_records_before_the_cut(landing, day):
    lines = [json.dumps({"instruction": os.urandom(64).hex(), "input": "", "output": "o"}) for _ in range(200)]
    data = gzip.compress("\n".join(lines).encode(), mtime=0)
    (landing / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    (landing / "cut.json.gz").write_bytes(data[: len(data) // 2])
    batch = read_public(landing, day)
    assert quarantined(batch) == [("2024-05-01/cut.json.gz", 0, "truncated gzip file"), ("2024-05-01/cut.jsonl.gz", 0, "truncated gzip file")]
    assert 0 < batch.examples.height < 200
    ids = batch.examples["source_id"].to_list()
    assert ids == [f"2024-05-01/cut.jsonl.gz:{n}" for n in range(1, len(ids) + 1)]
    assert rows(batch)["2024-05-01/cut.jsonl.gz:1"]["messages"][0]["content"] == json.loads(lines[0])["instruction"]


def test_bom_and_crlf_are_tolerated(landing, day):
    (landing / "w.jsonl").write_bytes(b'\xef\xbb\xbf{"instruction": "i", "output": "o"}\r\n{"instruction": "j", "output": "p"}\r\n')
    batch = read_public(landing, day)
    assert batch.quarantine.height == 0
    assert [m[0]["content"] for m in batch.examples["messages"].to_list()] == ["i", "j"]
