"""The demo corpus: deterministic, truthful about what it planted, and correct where it states facts.

Files are parsed back here with json/gzip alone (not with the project's readers), so the summary is checked
against an independent reading of what landed on disk.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from corpus_platform.demo.corpus import PLANTED_KINDS, PUBLIC_FILES, write_demo_corpus

DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
SOURCES = ("public", "conversations")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("landing")
    return root, write_demo_corpus(root, DAYS, seed=7)


def _files(landing: Path, source: str, day: date) -> list[Path]:
    names = PUBLIC_FILES if source == "public" else (f"chat-{day.isoformat()}.jsonl",)
    return [landing / source / day.isoformat() / name for name in names]


def _raw_records(path: Path) -> list:
    """JSON arrays give their items; JSONL (plain or gzip) gives its lines as text, bad ones included."""
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    text = data.decode("utf-8")
    return json.loads(text) if path.name.endswith(".json") else text.splitlines()


def _messages(raw) -> tuple | None:
    """((role, content), ...) the way a reader would build it, or None for a record it must quarantine."""
    try:
        rec = json.loads(raw) if isinstance(raw, str) else raw
        if "messages" in rec:
            msgs = [(m["role"], m["content"]) for m in rec["messages"]]
        elif "conversations" in rec:
            msgs = [({"human": "user", "gpt": "assistant"}[t["from"]], t["value"]) for t in rec["conversations"]]
        elif "chosen" in rec:
            parts = re.split(r"\n\n(Human|Assistant): ", rec["chosen"])
            msgs = [({"Human": "user", "Assistant": "assistant"}[w], t) for w, t in zip(parts[1::2], parts[2::2])]
        elif "interaction_id" in rec:
            msgs = [("user", rec["user_message"]), ("assistant", rec["bot_response"])]
        else:
            extra, out = (rec["context"], rec["response"]) if "context" in rec else (rec["input"], rec["output"])
            msgs = [("user", rec["instruction"] + ("\n\n" + extra if extra else "")), ("assistant", out)]
    except (json.JSONDecodeError, KeyError):
        return None
    return tuple(msgs) if all(isinstance(c, str) for _, c in msgs) else None


def _kind(msgs: tuple | None) -> str | None:
    if msgs is None:
        return "malformed"
    answer = msgs[-1][1].strip()
    if not answer:
        return "empty"
    if len(answer) > 20_000:
        return "too_long"
    if not any(ch.isalpha() for ch in answer):
        return "no_letters"
    if len(answer) < 10:
        return "too_short"
    return None


def _norm(msgs: tuple) -> tuple:
    return tuple((r, " ".join(unicodedata.normalize("NFKC", c).split())) for r, c in msgs)


def _read_all(landing: Path) -> list[tuple[str, str, str, tuple | None]]:
    """(source, day, file, messages) for every record, in the order the summary counts them."""
    return [(source, day.isoformat(), path.name, _messages(raw))
            for day in DAYS for source in SOURCES for path in _files(landing, source, day)
            for raw in _raw_records(path)]


def _snapshot(landing: Path) -> dict[str, bytes]:
    return {p.relative_to(landing).as_posix(): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(demo, tmp_path):
    landing, summary = demo
    again = write_demo_corpus(tmp_path, DAYS, seed=7)
    assert _snapshot(tmp_path) == _snapshot(landing)
    assert again == summary
    write_demo_corpus(tmp_path, DAYS, seed=7)  # overwriting in place changes nothing and leaves no .tmp
    assert _snapshot(tmp_path) == _snapshot(landing)
    assert not list(tmp_path.rglob("*.tmp"))
    write_demo_corpus(tmp_path / "other", DAYS[:1], seed=8)
    assert _snapshot(tmp_path / "other") != {k: v for k, v in _snapshot(landing).items() if "2026-01-01" in k}


def test_layout_and_record_counts_match_summary(demo):
    landing, summary = demo
    assert summary["days"] == [d.isoformat() for d in DAYS]
    total = 0
    for source in SOURCES:
        for day in DAYS:
            entry = summary["sources"][source][day.isoformat()]
            counts = {p.name: len(_raw_records(p)) for p in _files(landing, source, day)}
            assert entry["files"] == counts
            assert entry["records"] == sum(counts.values())
            total += entry["records"]
    assert summary["totals"]["records"] == total
    assert sorted(p.relative_to(landing).parts[0] for p in landing.iterdir()) == sorted(SOURCES)


def test_planted_counts_match_an_independent_reading(demo):
    landing, summary = demo
    got = {(s, d): Counter() for s in SOURCES for d in summary["days"]}
    exact, norm = set(), set()
    for source, day, _, msgs in _read_all(landing):
        kind = _kind(msgs)
        if kind is None:
            kind = "exact_dup" if msgs in exact else "whitespace_dup" if _norm(msgs) in norm else None
            exact.add(msgs)
            norm.add(_norm(msgs))
        if kind:
            got[source, day][kind] += 1
    for (source, day), counter in got.items():
        assert summary["sources"][source][day]["planted"] == {k: counter[k] for k in PLANTED_KINDS}, (source, day)
    totals = summary["totals"]["planted"]
    assert totals == {k: sum(c[k] for c in got.values()) for k in PLANTED_KINDS}


def test_every_planted_problem_is_present_in_every_source(demo):
    landing, summary = demo
    for source in SOURCES:
        for kind in PLANTED_KINDS:
            assert sum(summary["sources"][source][d]["planted"][kind] for d in summary["days"]) > 0, (source, kind)
    planted = sum(summary["totals"]["planted"].values())
    assert 0.08 <= planted / summary["totals"]["records"] <= 0.16
    # duplicates cross days and sources: some conversation appears in all six (source, day) partitions
    where: dict[tuple, set] = {}
    for source, day, _, msgs in _read_all(landing):
        if _kind(msgs) is None:
            where.setdefault(msgs, set()).add((source, day))
    assert max(len(v) for v in where.values()) == len(SOURCES) * len(DAYS)
    # whitespace duplicates really differ in raw text: a no-break space and full-width letters are on disk
    text = "".join(p.read_bytes().decode("utf-8") for p in landing.rglob("*.json*") if not p.name.endswith(".gz"))
    assert "\u00a0" in text and any("\uff01" <= ch <= "\uff5e" for ch in text)
    # the malformed kinds a reader must quarantine: invalid JSON, a missing response, a number for a string
    raws = [raw for d in DAYS for s in SOURCES for p in _files(landing, s, d) for raw in _raw_records(p)]
    bad_json = [r for r in raws if isinstance(r, str) and _messages(r) is None and not r.rstrip().endswith("}")]
    assert len(bad_json) == 2 * len(DAYS)
    assert any('"user_message": 4815162342' in r for r in raws if isinstance(r, str))


def test_good_examples_are_plentiful_and_short(demo):
    landing, _ = demo
    good = Counter()
    lengths = []
    for source, day, _, msgs in _read_all(landing):
        if _kind(msgs) is None:
            good[source, day] += 1
            lengths += [len(c) for r, c in msgs if r == "assistant"]
    assert all(60 <= n <= 90 for n in good.values()), good
    assert sum(60 <= n <= 600 for n in lengths) / len(lengths) >= 0.8
    assert max(lengths) < 1_000


def test_days_differ(demo):
    landing, _ = demo
    by_day: dict[str, set] = {}
    for _, day, _, msgs in _read_all(landing):
        if _kind(msgs) is None:
            by_day.setdefault(day, set()).add(msgs)
    a, b = by_day[DAYS[0].isoformat()], by_day[DAYS[1].isoformat()]
    assert len(a & b) / len(a) < 0.1
    for source in SOURCES:
        assert [p.read_bytes() for p in _files(landing, source, DAYS[0])] != [
            p.read_bytes() for p in _files(landing, source, DAYS[1])]


CONVERSIONS = {
    ("kilometers", "miles"): lambda v: v * 0.621371, ("miles", "kilometers"): lambda v: v * 1.609344,
    ("kilograms", "pounds"): lambda v: v / 0.45359237, ("pounds", "kilograms"): lambda v: v * 0.45359237,
    ("meters", "feet"): lambda v: v / 0.3048, ("inches", "centimeters"): lambda v: v * 2.54,
    ("liters", "US gallons"): lambda v: v / 3.785411784,
    ("degrees Celsius", "degrees Fahrenheit"): lambda v: v * 9 / 5 + 32,
    ("degrees Fahrenheit", "degrees Celsius"): lambda v: (v - 32) * 5 / 9,
}
UNIT = "kilometers|miles|kilograms|pounds|meters|feet|inches|centimeters|liters|US gallons|degrees Celsius|degrees Fahrenheit"
NUMBER = r"-?\d+(?:\.\d+)?"


def test_stated_answers_are_correct(demo):
    landing, _ = demo
    answers = [c for *_, msgs in _read_all(landing) if msgs for r, c in msgs if r == "assistant"]
    checked = Counter()
    for text in answers:
        text = unicodedata.normalize("NFKC", text)
        for a, op, b, c in re.findall(r"(\d+) ([-+×÷]) (\d+) = (\d+)", text):
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "×": a * b, "÷": a / b}[op] == c, text
            checked["arithmetic"] += 1
        for p, n, r in re.findall(rf"(\d+)% of (\d+) is ({NUMBER})", text):
            assert abs(int(p) * int(n) / 100 - float(r)) < 0.006, text
            checked["percent"] += 1
        for v, src, r, dst in re.findall(rf"({NUMBER}) ({UNIT}) is about ({NUMBER}) ({UNIT})", text):
            assert abs(CONVERSIONS[src, dst](float(v)) - float(r)) < 0.006, text
            checked["conversion"] += 1
        for past, verb in re.findall(r'"([^"]+)" is the past form of "([^"]+)"', text):
            assert past != verb
    assert checked["arithmetic"] >= 50 and checked["percent"] >= 10 and checked["conversion"] >= 30, checked


def test_conversation_logs_look_like_sessions(demo):
    landing, _ = demo
    for day in DAYS:
        (path,) = _files(landing, "conversations", day)
        recs = [json.loads(line) for line in _raw_records(path) if _messages(line) is not None]
        for rec in recs:
            assert re.fullmatch(rf"{day.isoformat()}T\d\d:\d\d:\d\dZ", rec["timestamp"])
            if "feedback" in rec:
                assert rec["feedback"]["kind"] in {"thumbs_up", "thumbs_down", "edit", "correction", "report"}
        assert [r["timestamp"] for r in recs] == sorted(r["timestamp"] for r in recs)
        assert len({r["interaction_id"] for r in recs}) == len(recs)
        sessions = Counter(r["session_id"] for r in recs)
        assert max(sessions.values()) >= 3 and len(sessions) < len(recs)
        assert len({r["user_id"] for r in recs}) >= 5
        assert len({r["feedback"]["kind"] for r in recs if "feedback" in r}) >= 3
