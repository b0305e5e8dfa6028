"""Fuzzed landing files (10,000 records): invalid JSON, wrong types, missing fields, huge fields,
invalid UTF-8, empty and truncated gzip. No run crashes, every bad record lands in corpus.quarantine
with its file, line and reason, and every good record arrives unchanged."""

import gzip
import json
import random
from datetime import date

import dagster as dg

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect

DAY = date(2026, 1, 7)
RECORDS = 10_000


def good_public(rng, i):
    kind = rng.choice(["alpaca", "openai", "dolly"])
    q, a = f"Question {i}: what is {rng.randint(1, 99)} plus {rng.randint(1, 99)}?", f"Answer {i}: it is a sum, explained step by step."
    if kind == "alpaca":
        return {"instruction": q, "input": "", "output": a}, (q, a)
    if kind == "dolly":
        return {"instruction": q, "context": "", "response": a, "category": "open_qa"}, (q, a)
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}, (q, a)


def good_conversation(rng, i):
    q, a = f"User {i} asks about billing cycle {rng.randint(1, 12)}.", f"Reply {i}: your billing cycle renews monthly."
    return {"interaction_id": f"i-{i}", "session_id": f"s-{i % 97}", "user_id": f"u-{i % 31}",
            "timestamp": "2026-01-07T10:00:00Z", "user_message": q, "bot_response": a}, (q, a)


BAD_LINES = [
    (lambda i: b'{"instruction": "unterminated', "invalid JSON"),
    (lambda i: b'{"instruction": 5, "input": "", "output": "x"}', "wrong type"),
    (lambda i: b'{"input": "", "output": "no instruction"}', "missing field"),
    (lambda i: b'["not", "an", "object"]', "not a JSON object"),
    (lambda i: b'{"instruction": "caf\xe9 latin-1", "input": "", "output": "bytes that are not UTF-8"}', "invalid UTF-8"),
    (lambda i: b'{"messages": [{"role": "user", "content": "hi"}]}', "no assistant turn"),
    (lambda i: b'{"whatever": 1}', "unknown format"),
]
BAD_CONVERSATION_LINES = [
    (lambda i: b'{"interaction_id": "b-%d", "user_message": "q", "timestamp": "2026-01-07T10:00:00Z"}' % i, "missing field"),
    (lambda i: b'{"interaction_id": "b-%d", "user_message": 7, "bot_response": "a", "timestamp": "2026-01-07T10:00:00Z"}' % i, "wrong type"),
    (lambda i: b'{"interaction_id": "b-%d", "user_message": "q", "bot_response": "a", "timestamp": "not a time"}' % i, "unparseable timestamp"),
    (lambda i: b'{"interaction_id": "b-%d", "user_message": "q", "bot_response": "a", "timestamp": "2026-01-07T10:00:00Z"' % i, "invalid JSON"),
]


def write_fuzzed(layout, rng):
    """Returns {source: (good (user, assistant) pairs, expected quarantine {(file, line): reason fragment})}."""
    expected = {}
    for source, make_good, bad_pool in (("public", good_public, BAD_LINES), ("conversations", good_conversation, BAD_CONVERSATION_LINES)):
        folder = layout.landing_dir(source, DAY.isoformat())
        folder.mkdir(parents=True)
        goods, bad = [], {}
        n_files = 5
        for f in range(n_files):
            name = f"part-{f}.jsonl" + (".gz" if f % 2 else "")
            lines = []
            for line_no in range(1, RECORDS // 2 // n_files + 1):
                i = f * 10_000 + line_no
                if rng.random() < 0.2:
                    make, reason = rng.choice(bad_pool)
                    lines.append(make(i))
                    bad[(f"{DAY}/{name}", line_no)] = reason
                else:
                    record, pair = make_good(rng, i)
                    if rng.random() < 0.01:  # a huge but valid field: kept (curation rejects it later, on record)
                        record = {**record, "note": "x" * 2_000_000} if source == "conversations" else record
                    lines.append(json.dumps(record).encode())
                    goods.append(pair)
            payload = b"\n".join(lines) + b"\n"
            (folder / name).write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
        (folder / "empty.jsonl.gz").write_bytes(b"")
        bad[(f"{DAY}/empty.jsonl.gz", 0)] = "empty gzip"
        truncated = gzip.compress(b"\n".join(json.dumps(make_good(rng, 90_000 + k)[0]).encode() for k in range(50)) + b"\n")
        (folder / "truncated.jsonl.gz").write_bytes(truncated[: len(truncated) // 2])
        bad[(f"{DAY}/truncated.jsonl.gz", 0)] = "truncated gzip"
        expected[source] = (goods, bad)
    return expected


def test_fuzzed_file_sources_never_crash_and_lose_nothing(tmp_path):
    layout = Layout(tmp_path)
    expected = write_fuzzed(layout, random.Random(20260107))
    defs = make_definitions(tmp_path)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("curate_partition")
        for source in ("public", "conversations"):
            result = job.execute_in_process(partition_key=partition_key(DAY, source), instance=instance,
                                            run_config=QUIET, raise_on_error=False)
            raw_ok = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and e.step_key == "raw_examples"]
            assert raw_ok, f"raw_examples crashed for {source}"
    with connect(layout.warehouse) as con:
        for source, (goods, bad) in expected.items():
            quarantine = con.execute("SELECT file, line, reason FROM corpus.quarantine WHERE source = ? AND date = ?",
                                     [source, DAY]).fetchall()
            got = {(f, n): r for f, n, r in quarantine}
            for key, fragment in bad.items():
                assert key in got, f"{source}: bad record {key} not quarantined"
                assert fragment.lower() in got[key].lower(), (key, got[key])
            # The truncated gzip keeps the records read before the cut: every other quarantine row is a planted one.
            assert set(got) == set(bad), set(got) ^ set(bad)
            rows = con.execute("""SELECT messages[1].content, messages[-1].content FROM corpus.raw_examples
                                  WHERE source = ? AND date = ? AND json_extract_string(metadata, '$.file') NOT LIKE '%truncated%'""", [source, DAY]).fetchall()
            assert sorted(rows) == sorted(goods), f"{source}: good records changed or lost"
            assert len(goods) + len(bad) > RECORDS // 2 - 100
