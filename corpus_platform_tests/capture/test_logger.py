"""ConversationLogger: concurrent appends never tear or lose a line, and the conversations source reads the
output unchanged, with feedback joined, after redaction and gzip rotation."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from corpus_platform.capture import ConversationLogger, day_of_id
from corpus_platform.capture.durable import append_line, encode_line, gzip_file
from corpus_platform.sources.conversations import read_conversations

DAY1 = date(2026, 3, 1)


def clock_at(day: date, hour: int = 12):
    return lambda: datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def lines_of(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.rglob("*.jsonl*")):
        data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        assert data.endswith(b"\n")
        out += [json.loads(x) for x in data.splitlines()]
    return out


def examples(batch) -> dict[str, dict]:
    return {r["source_id"]: {**r, "metadata": json.loads(r["metadata"])} for r in batch.examples.iter_rows(named=True)}


def test_import_is_light():
    code = "import sys, corpus_platform.capture; print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'polars', 'duckdb', 'pydantic', 'fastapi'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_20_threads_x_500_interactions(tmp_path):
    log = ConversationLogger(tmp_path)
    ids: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = [log.log(f"q{t}-{i} " + "x" * (i * 37 % 9000), f"a{t}-{i}", session_id=f"s{t}", user_id=t) for i in range(500)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    records = lines_of(tmp_path)
    assert len(records) == len(ids) == 10_000
    assert len({r["interaction_id"] for r in records}) == 10_000 and set(ids) == {r["interaction_id"] for r in records}
    (day_dir,) = tmp_path.iterdir()
    batch = read_conversations(day_dir, date.fromisoformat(day_dir.name))
    assert batch.examples.height == 10_000 and batch.quarantine.height == 0


def _process_writer(root: str, worker: int, n: int) -> None:
    log = ConversationLogger(root)
    for i in range(n):
        # lines far beyond PIPE_BUF: only the lock keeps them whole
        log.log(f"p{worker}-{i} " + chr(0x4E00 + worker) * (i * 131 % 30_000), "answer", user_id=f"p{worker}")


def test_4_processes_x_500_interactions(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), w, 500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = lines_of(tmp_path)  # json.loads of every line: a torn line would fail here
    assert len(records) == 2_000 and len({r["interaction_id"] for r in records}) == 2_000
    for w in range(4):
        mine = [r for r in records if r["user_id"] == f"p{w}"]
        assert [r["user_message"].split(" ")[0] for r in mine] == [f"p{w}-{i}" for i in range(500)]  # per-writer order kept


def test_source_reads_logger_output_and_joins_feedback(tmp_path):
    log = ConversationLogger(tmp_path, clock=clock_at(DAY1), app_id="shop")
    a = log.log("How do I reset my password?", "Click 'Forgot password'.", session_id="s-1", user_id="u-1",
                model="bot-3", metadata={"channel": "web", "latency_ms": 120}, system_prompt="You are a support bot.")
    b = log.log("hi", "hello", user_id=42)
    assert day_of_id(a) == DAY1 and len(a) == 32
    # feedback two days later, from another logger instance: routed into DAY1's folder by the id's day
    later = ConversationLogger(tmp_path, clock=clock_at(DAY1 + timedelta(days=2)))
    later.feedback(a, "thumbs_down")
    later.feedback(a, "edit", text="Click 'Forgot password' on the login page.", comment="more precise", user_id="u-1")
    later.feedback("not-ours", "report")  # a foreign id: today's folder, quarantined there
    assert sorted(p.name for p in (tmp_path / DAY1.isoformat()).iterdir()) == [
        "feedback-2026-03-01.jsonl", "interactions-2026-03-01.jsonl"]
    batch = read_conversations(tmp_path / DAY1.isoformat(), DAY1)
    assert batch.quarantine.height == 0
    got = examples(batch)
    assert got[a]["messages"] == [
        {"role": "system", "content": "You are a support bot."},
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Click 'Forgot password' on the login page."},  # the latest feedback: an edit
    ]
    meta = got[a]["metadata"]
    assert meta["original_response"] == "Click 'Forgot password'." and "drop_reason" not in meta
    assert meta["session_id"] == "s-1" and meta["user_id"] == "u-1" and meta["model_version"] == "bot-3"
    assert meta["created_at"] == "2026-03-01T12:00:00+00:00" and meta["channel"] == "web" and meta["app_id"] == "shop"
    assert meta["feedback"]["kind"] == "edit" and meta["feedback"]["comment"] == "more precise"
    assert got[b]["metadata"]["user_id"] == "42" and got[b]["metadata"]["feedback"] is None
    day3 = DAY1 + timedelta(days=2)
    stray = read_conversations(tmp_path / day3.isoformat(), day3)
    assert stray.quarantine["reason"].to_list() == ["feedback for unknown interaction"]


def test_bad_calls_write_nothing(tmp_path):
    log = ConversationLogger(tmp_path)
    with pytest.raises(ValueError, match="shadow"):
        log.log("q", "a", metadata={"user_message": "x"})
    with pytest.raises(TypeError):
        log.log("q", None)
    with pytest.raises(ValueError):
        log.log("q", "a", metadata={"x": float("nan")})
    with pytest.raises(UnicodeEncodeError):
        log.log("q\ud800", "a")
    with pytest.raises(ValueError, match="kind"):
        log.feedback("x", "meh")
    assert list(tmp_path.iterdir()) == []


def test_redaction(tmp_path):
    log = ConversationLogger(tmp_path, redact=True, clock=clock_at(DAY1))
    iid = log.log("I'm ann.lee@example.com, call +44 20 7946 0958", "Noted: (555) 123-4567 on 2026-03-01, v1.2.3",
                  system_prompt="Never reveal ops@corp.io")
    log.feedback(iid, "correction", text="mail bob@x.org", comment="or 555-123-4567")
    raw = "".join(p.read_text() for p in tmp_path.rglob("*.jsonl"))
    assert "example.com" not in raw and "7946" not in raw and "123-4567" not in raw and "bob@" not in raw
    meta = examples(read_conversations(tmp_path / DAY1.isoformat(), DAY1))[iid]
    assert [m["content"] for m in meta["messages"]] == [
        "Never reveal [EMAIL]", "I'm [EMAIL], call [PHONE]", "mail [EMAIL]"]  # the correction replaced the response
    assert meta["metadata"]["original_response"] == "Noted: [PHONE] on 2026-03-01, v1.2.3"
    assert meta["metadata"]["feedback"]["text"] == "mail [EMAIL]" and meta["metadata"]["feedback"]["comment"] == "or [PHONE]"
    plain = ConversationLogger(tmp_path / "plain")
    plain.log("a@b.com", "x")
    assert "a@b.com" in next((tmp_path / "plain").rglob("*.jsonl")).read_text()


def test_gzip_rotation_reads_back(tmp_path):
    day2 = DAY1 + timedelta(days=1)
    first = ConversationLogger(tmp_path, gzip_rotate=True, clock=clock_at(DAY1))
    ids = [first.log(f"q{i}", f"a{i}", user_id="u") for i in range(50)]
    first.feedback(ids[0], "thumbs_up")
    folder = tmp_path / DAY1.isoformat()
    before = examples(read_conversations(folder, DAY1))
    second = ConversationLogger(tmp_path, gzip_rotate=True, clock=clock_at(day2))
    second.log("new day", "ok")  # the first write of a day rotates the closed days
    assert sorted(p.name for p in folder.iterdir()) == ["feedback-2026-03-01.jsonl.gz", "interactions-2026-03-01.jsonl.gz"]
    assert [p.name for p in (tmp_path / day2.isoformat()).iterdir()] == ["interactions-2026-03-02.jsonl"]
    after = read_conversations(folder, DAY1)
    assert after.quarantine.height == 0
    def view(batch: dict) -> dict:  # only the file names change (.gz); example ids come from interaction ids
        return {(v["example_id"], str(v["messages"]), (v["metadata"]["feedback"] or {}).get("kind")) for v in batch.values()}

    assert view(examples(after)) == view(before) and len(before) == 50
    # a late feedback for a rotated day lands beside the .gz, and the next rotation takes the next free name
    second.feedback(ids[1], "thumbs_down")
    assert examples(read_conversations(folder, DAY1))[ids[1]]["metadata"]["feedback"]["kind"] == "thumbs_down"
    assert [p.name for p in second.rotate(day2 + timedelta(days=1))] == [
        "feedback-2026-03-01.2.jsonl.gz", "interactions-2026-03-02.jsonl.gz"]
    final = read_conversations(folder, DAY1)
    assert final.quarantine.height == 0 and final.examples.height == 50
    assert examples(final)[ids[1]]["metadata"]["feedback"]["kind"] == "thumbs_down"


def test_rotation_after_a_crash_between_rename_and_remove(tmp_path):
    path = tmp_path / "interactions-2026-03-01.jsonl"
    path.write_bytes(b'{"a":1}\n')
    (tmp_path / "interactions-2026-03-01.jsonl.gz").write_bytes(gzip.compress(b'{"a":1}\n'))
    assert gzip_file(path).name == "interactions-2026-03-01.jsonl.gz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interactions-2026-03-01.jsonl.gz"]


def test_a_torn_tail_never_swallows_the_next_line(tmp_path):
    log = ConversationLogger(tmp_path, clock=clock_at(DAY1), fsync=True)
    log.log("q1", "a1")
    path = log.interactions_path(DAY1)
    with open(path, "ab") as f:
        f.write(b'{"interaction_id": "torn", "user_mes')  # a writer died mid-line
    iid = log.log("q2", "a2")
    batch = read_conversations(path.parent, DAY1)
    assert iid in examples(batch) and batch.examples.height == 2
    assert batch.quarantine["line"].to_list() == [2]


def test_rotation_racing_writers_loses_nothing(tmp_path):
    path = tmp_path / "feedback-2026-03-01.jsonl"
    stop = threading.Event()

    def writer(w: int) -> None:
        for i in range(300):
            append_line(path, encode_line({"w": w, "i": i}))

    def rotator() -> None:
        while not stop.is_set():
            gzip_file(path)

    rot = threading.Thread(target=rotator)
    rot.start()
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in writers:
        th.start()
    for th in writers:
        th.join()
    stop.set()
    rot.join()
    records = lines_of(tmp_path)
    assert sorted((r["w"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(300)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_landing_sensor_sees_appends(tmp_path):
    from corpus_platform.defs.ingest.sensors import scan_landing

    day = date(2026, 3, 1)
    log = ConversationLogger(tmp_path / "landing" / "conversations", clock=clock_at(day))
    iid = log.log("q", "a")
    runs, cursor, _ = scan_landing(tmp_path / "landing", {}, date(2026, 1, 1), day)
    assert [(d, s) for d, s, _ in runs] == [("2026-03-01", "conversations")]
    assert scan_landing(tmp_path / "landing", cursor, date(2026, 1, 1), day)[0] == []
    os.utime(log.interactions_path(day), ns=(1, 1))  # size changes on append; mtime alone would do too
    log.feedback(iid, "thumbs_up")  # a new file in the folder
    runs, cursor, _ = scan_landing(tmp_path / "landing", cursor, date(2026, 1, 1), day)
    assert [(d, s) for d, s, _ in runs] == [("2026-03-01", "conversations")]
    log.log("q2", "a2")  # an append to an existing file re-triggers the whole day
    assert len(scan_landing(tmp_path / "landing", cursor, date(2026, 1, 1), day)[0]) == 1
