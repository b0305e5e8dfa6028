"""read_conversations: chat-log lines become examples keyed by interaction_id; bad lines are quarantined."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest

from corpus_platform.schema import example_id
from corpus_platform.sources.conversations import read_conversations

FULL = {
    "interaction_id": "i-1",
    "session_id": "s-1",
    "user_id": "u-1",
    "timestamp": "2024-05-01T10:00:00+02:00",
    "user_message": "How do I reset my password?",
    "bot_response": "Click 'Forgot password'.",
    "model_version": "bot-2024-04",
    "system_prompt": "You are a support bot.",
    "feedback": {"kind": "edit", "text": "Click 'Forgot password' on the login page.", "comment": "more precise"},
}


def line(**overrides):
    rec = {k: v for k, v in FULL.items() if k not in ("system_prompt", "feedback")}
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not ...}


def by_id(batch) -> dict[str, dict]:
    return {r["source_id"]: {**r, "metadata": json.loads(r["metadata"])} for r in batch.examples.iter_rows(named=True)}


def quarantined(batch) -> list[tuple[str, int, str]]:
    return [(r["file"], r["line"], r["reason"]) for r in batch.quarantine.sort("file", "line").iter_rows(named=True)]


def test_full_interaction(landing, day, write):
    write("logs/chat.jsonl", [FULL])
    batch = read_conversations(landing, day)
    assert batch.quarantine.height == 0 and batch.files == ["2024-05-01/logs/chat.jsonl"]
    row = by_id(batch)["i-1"]
    assert row["source"] == "conversations" and row["date"] == day
    assert row["example_id"] == example_id("conversations", "i-1")
    assert row["messages"] == [
        {"role": "system", "content": "You are a support bot."},
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Click 'Forgot password' on the login page."},  # the user's edit
    ]
    assert row["metadata"] == {
        "original_response": "Click 'Forgot password'.",
        "response_source": "edit",
        "session_id": "s-1",
        "user_id": "u-1",
        "author": "u-1",
        "created_at": "2024-05-01T08:00:00+00:00",
        "model_version": "bot-2024-04",
        "feedback": FULL["feedback"],
        "file": "2024-05-01/logs/chat.jsonl",
        "line": 1,
    }


def test_minimal_and_aliases(landing, day, write):
    write("a.jsonl.gz", [
        line(),
        {"interaction_id": 42, "conversation_id": "s-9", "user_id": 7, "ts": "2024-05-01 09:30:00",
         "prompt": "hi", "response": "hello", "model": "m1", "feedback": "thumbs_up", "channel": "web"},
        {"interaction_id": "i-3", "created_at": "2024-05-01T09:00:00Z", "user": "q", "assistant": "a"},
        {"interaction_id": "i-4", "timestamp": "2024-05-01T09:00:00Z", "input": "q", "bot_message": "a", "system_prompt": ""},
        {"interaction_id": "i-5", "timestamp": "2024-05-01T09:00:00Z", "user_message": "q", "output": "a"},
    ])
    batch = read_conversations(landing, day)
    assert batch.quarantine.height == 0
    got = by_id(batch)
    assert got["i-1"]["messages"] == [{"role": "user", "content": FULL["user_message"]},
                                      {"role": "assistant", "content": FULL["bot_response"]}]
    assert got["i-1"]["metadata"]["feedback"] is None
    assert got["42"]["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert got["42"]["metadata"] == {
        "session_id": "s-9", "user_id": "7", "author": "7", "created_at": "2024-05-01T09:30:00+00:00",
        "model_version": "m1", "feedback": "thumbs_up", "channel": "web", "file": "2024-05-01/a.jsonl.gz", "line": 2,
    }
    assert got["i-3"]["metadata"]["created_at"] == "2024-05-01T09:00:00+00:00"
    assert got["i-3"]["metadata"]["session_id"] is None and got["i-3"]["metadata"]["model_version"] is None
    assert got["i-3"]["messages"][1] == {"role": "assistant", "content": "a"}
    assert [m["role"] for m in got["i-4"]["messages"]] == ["user", "assistant"]  # an empty system prompt adds no turn
    assert got["i-5"]["messages"][1]["content"] == "a"


def test_empty_texts_pass(landing, day, write):
    write("e.jsonl", [line(user_message="", bot_response="")])
    assert by_id(read_conversations(landing, day))["i-1"]["messages"] == [
        {"role": "user", "content": ""}, {"role": "assistant", "content": ""}]


BAD_LINES = [
    (line(interaction_id=...), "missing interaction_id"),
    (line(interaction_id=""), "missing interaction_id"),
    (line(user_message=...), "missing field 'user_message'"),
    (line(bot_response=...), "missing field 'bot_response'"),
    (line(bot_response=["a"]), "wrong type: 'bot_response' is array, expected string"),
    (line(user_message=None), "wrong type: 'user_message' is null, expected string"),
    (line(system_prompt=3), "wrong type: 'system_prompt' is number, expected string"),
    (line(timestamp="yesterday"), "unparseable timestamp"),
    (line(timestamp=...), "missing field 'timestamp'"),
    (line(timestamp=1714550400), "wrong type: 'timestamp' is number, expected string"),
    (line(interaction_id="i-0"), "duplicate interaction_id (first at 2024-05-01/chat.jsonl:1)"),
    ('{"interaction_id": "i-2", ', "invalid JSON: Expecting property name enclosed in double quotes"),
    (b'{"interaction_id": "i-2", "user_message": "\xff"}', "invalid UTF-8"),
    ('"just a string"', "record is not a JSON object but string"),
]


@pytest.mark.parametrize("bad,reason", BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_is_quarantined_and_the_rest_still_read(landing, day, write, bad, reason):
    write("chat.jsonl", [line(interaction_id="i-0"), bad, line(interaction_id="i-9")])
    batch = read_conversations(landing, day)
    assert quarantined(batch) == [("2024-05-01/chat.jsonl", 2, reason)]
    assert batch.examples["source_id"].to_list() == ["i-0", "i-9"]


def test_duplicates_across_files_keep_the_first_in_file_order(landing, day, write):
    write("b.jsonl", [line(user_message="second")])
    write("a.jsonl", [line(user_message="first")])
    batch = read_conversations(landing, day)
    assert quarantined(batch) == [("2024-05-01/b.jsonl", 1, "duplicate interaction_id (first at 2024-05-01/a.jsonl:1)")]
    assert by_id(batch)["i-1"]["messages"][0]["content"] == "first"


def test_interaction_id_keeps_its_example_id_across_days(landing, day, write):
    # unlike a public record's position, interaction_id is a global identity: the day folder does not enter it
    next_day = date(2024, 5, 2)
    other = landing.parent / next_day.isoformat()
    write("chat.jsonl", [line()])
    write("chat.jsonl", [line(feedback={"kind": "thumbs_up"})], folder=other)
    one = read_conversations(landing, day)
    two = read_conversations(other, next_day)
    assert one.quarantine.height == 0 and two.quarantine.height == 0
    assert one.files == ["2024-05-01/chat.jsonl"] and two.files == ["2024-05-02/chat.jsonl"]
    first, second = by_id(one)["i-1"], by_id(two)["i-1"]
    assert first["metadata"]["file"] == "2024-05-01/chat.jsonl" and second["metadata"]["file"] == "2024-05-02/chat.jsonl"
    assert first["example_id"] == second["example_id"] == example_id("conversations", "i-1")
    assert first["date"] == day and second["date"] == next_day


def test_broken_gzip(landing, day, write):
    lines = [json.dumps(line(interaction_id=f"i-{n}", user_message="x" * n)) for n in range(400)]
    data = gzip.compress("\n".join(lines).encode(), mtime=0)
    (landing / "cut.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    (landing / "empty.jsonl.gz").write_bytes(b"")
    (landing / "notes.txt").write_text("hello")
    batch = read_conversations(landing, day)
    assert quarantined(batch) == [
        ("2024-05-01/cut.jsonl.gz", 0, "truncated gzip file"),
        ("2024-05-01/empty.jsonl.gz", 0, "empty gzip file"),
        ("2024-05-01/notes.txt", 0, "unsupported file type"),
    ]
    assert 0 < batch.examples.height < 400
    assert batch.examples["source_id"][0] == "i-0"


def fb(iid, kind, ts, **extra):
    return {"type": "feedback", "interaction_id": iid, "kind": kind, "text": None, "comment": None, "timestamp": ts, **extra}


def test_feedback_records_join_their_interaction_latest_wins(landing, day, write):
    write("interactions-2024-05-01.jsonl", [FULL, line(interaction_id="i-2"), line(interaction_id=3)])
    write("feedback-2024-05-01.jsonl", [
        fb("i-1", "thumbs_down", "2024-05-01T12:00:00Z"),
        fb("i-1", "correction", "2024-05-01T14:00:00+02:00", text="better", comment="c", user_id="u-1"),  # 12:00Z, later line
        fb("i-1", "thumbs_up", "2024-05-01T11:00:00Z"),  # older although written last
        fb(3, "thumbs_up", "2024-05-01T10:00:00Z"),
        fb("i-404", "thumbs_up", "2024-05-01T10:00:00Z"),
        fb("i-2", "love", "2024-05-01T10:00:00Z"),
        fb("i-2", "edit", "2024-05-01T10:00:00Z", text=["x"]),
        fb("i-2", "edit", "not a time"),
    ])
    batch = read_conversations(landing, day)
    got = by_id(batch)
    assert sorted(got) == ["3", "i-1", "i-2"]
    assert got["i-1"]["metadata"]["feedback"] == {  # the separate record wins over the embedded feedback
        "kind": "correction", "text": "better", "comment": "c", "created_at": "2024-05-01T12:00:00+00:00",
        "user_id": "u-1", "file": "2024-05-01/feedback-2024-05-01.jsonl", "line": 2,
    }
    assert got["3"]["metadata"]["feedback"]["kind"] == "thumbs_up"
    assert got["i-2"]["metadata"]["feedback"] is None
    assert got["i-1"]["metadata"]["file"] == "2024-05-01/interactions-2024-05-01.jsonl"
    f = "2024-05-01/feedback-2024-05-01.jsonl"
    assert quarantined(batch) == [
        (f, 5, "feedback for unknown interaction"),
        (f, 6, "feedback: kind must be one of thumbs_up, thumbs_down, edit, correction, report"),
        (f, 7, "wrong type: 'text' is array, expected string"),
        (f, 8, "unparseable timestamp"),
    ]
    assert json.loads(batch.quarantine.sort("line")["raw"][0])["interaction_id"] == "i-404"
    assert batch.files == [f, "2024-05-01/interactions-2024-05-01.jsonl"]


def test_feedback_for_an_interaction_of_another_day_is_quarantined(landing, day, write):
    # writers put feedback into the interaction's day folder; a stray one is kept, not guessed onto another day
    write("chat.jsonl", [line()])
    write("feedback.jsonl", [fb("i-1", "thumbs_up", "2024-05-02T10:00:00Z")], folder=landing.parent / "2024-05-02")
    assert by_id(read_conversations(landing, day))["i-1"]["metadata"]["feedback"] is None
    other = read_conversations(landing.parent / "2024-05-02", date(2024, 5, 2))
    assert other.examples.height == 0 and quarantined(other) == [("2024-05-02/feedback.jsonl", 1, "feedback for unknown interaction")]


def test_a_quarantined_interaction_leaves_its_feedback_unknown(landing, day, write):
    write("chat.jsonl.gz", [line(timestamp="bad"), fb("i-1", "report", "2024-05-01T10:00:00Z")])
    assert quarantined(read_conversations(landing, day)) == [
        ("2024-05-01/chat.jsonl.gz", 1, "unparseable timestamp"),
        ("2024-05-01/chat.jsonl.gz", 2, "feedback for unknown interaction"),
    ]


def test_feedback_decides_what_is_trained_on(landing, day, write):
    from corpus_platform.curation.filters import FilterSettings, apply_filters

    base = {"session_id": "s", "user_id": "u", "timestamp": "2024-05-01T10:00:00Z",
            "user_message": "How do I reset my password?", "bot_response": "Restart the router."}
    write("chat.jsonl", [
        {**base, "interaction_id": "edited", "feedback": {"kind": "edit", "text": "Click 'Forgot password' on the login page."}},
        {**base, "interaction_id": "corrected"},
        {**base, "interaction_id": "down", "feedback": {"kind": "thumbs_down"}},
        {**base, "interaction_id": "reported"},
        {**base, "interaction_id": "liked", "feedback": {"kind": "thumbs_up"}},
        {**base, "interaction_id": "edit-without-text", "feedback": {"kind": "edit"}},
    ])
    write("feedback.jsonl", [
        {"type": "feedback", "interaction_id": "corrected", "kind": "correction", "text": "Use the reset link in the email.",
         "timestamp": "2024-05-01T11:00:00Z"},
        {"type": "feedback", "interaction_id": "reported", "kind": "report", "comment": "rude", "timestamp": "2024-05-01T11:00:00Z"},
    ])
    batch = read_conversations(landing, day)
    rows = {r["source_id"]: r for r in batch.examples.iter_rows(named=True)}
    assert len(rows) == 6 and batch.quarantine.height == 0
    edited = rows["edited"]
    assert edited["messages"][-1] == {"role": "assistant", "content": "Click 'Forgot password' on the login page."}
    meta = json.loads(edited["metadata"])
    assert meta["original_response"] == "Restart the router." and meta["response_source"] == "edit"
    assert rows["corrected"]["messages"][-1]["content"] == "Use the reset link in the email."
    assert rows["liked"]["messages"][-1]["content"] == "Restart the router."
    assert rows["edit-without-text"]["messages"][-1]["content"] == "Restart the router."
    kept, decisions = apply_filters(batch.examples, FilterSettings())
    rejected = {d["example_id"]: d["rule"] for d in decisions.iter_rows(named=True) if d["decision"] == "rejected"}
    assert sorted(rejected.values()) == ["source:feedback_report", "source:feedback_thumbs_down"]
    assert kept.height == 4
