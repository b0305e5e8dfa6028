"""Verdicts over the automatic decisions: reject, keep (bring back), edit; into splits and exports."""

import json
from datetime import datetime

import polars as pl
import pytest

from corpus_platform.curation.datasets import export_splits, rebuild_splits
from corpus_platform.curation.splits import SplitSettings
from corpus_platform.review.journal import append_verdict, journal_path, make_verdict, read_verdicts
from corpus_platform.review.verdicts import apply_verdicts, import_journal, warehouse_journal
from corpus_platform.warehouse import query

from .conftest import DAY, example_id

SCORED = "SELECT example_id, source, date, messages, metadata, quality_score, content_hash FROM corpus.scored_examples"


def verdict(home, i, kind, source="public", at=None, **kw):
    record = make_verdict(example_id=example_id(source, i), source=source, day=DAY, verdict=kind, reviewer="ann",
                          original_response=kw.pop("original", "orig"), at=at, subject={"author": f"user-{i % 4}"}, **kw)
    append_verdict(journal_path(home), record, fsync=False)
    return record


def by_id(df: pl.DataFrame) -> dict[str, dict]:
    return {r["example_id"]: r for r in df.iter_rows(named=True)}


def answer(row) -> str:
    return [m for m in row["messages"] if m["role"] == "assistant"][-1]["content"]


def test_the_journal_sits_beside_the_warehouse_and_validates(con, tmp_path):
    assert warehouse_journal(con) == journal_path(tmp_path) == tmp_path / "state" / "review" / "verdicts.jsonl"
    with pytest.raises(ValueError, match="needs a reason"):
        make_verdict(example_id="x", source="s", day=DAY, verdict="reject", reviewer="ann", original_response="a")
    with pytest.raises(ValueError, match="same as the original"):
        make_verdict(example_id="x", source="s", day=DAY, verdict="edit", reviewer="ann", original_response="a",
                     edited_response="a")
    with pytest.raises(ValueError, match="reviewer"):
        make_verdict(example_id="x", source="s", day=DAY, verdict="keep", reviewer=" ", original_response="a")


def test_import_keeps_history_latest_wins_and_forgets_erased_examples(con, tmp_path):
    verdict(tmp_path, 6, "reject", reason="wrong", at=datetime(2026, 1, 5, 9))
    verdict(tmp_path, 6, "keep", at=datetime(2026, 1, 5, 10))  # changed their mind
    verdict(tmp_path, 7, "keep")
    with open(journal_path(tmp_path), "ab") as f:
        f.write(b'{"type": "review_verdict", "torn')  # a crash mid-line is skipped
    assert import_journal(con) == 3
    latest = by_id(query(con, "SELECT * FROM corpus.review_latest"))
    assert latest[example_id("public", 6)]["verdict"] == "keep"
    # The erasure job deletes raw rows and scrubs the journal lines naming the person: both leave the tables.
    con.execute("DELETE FROM corpus.raw_examples WHERE example_id = ?", [example_id("public", 7)])
    con.execute("INSERT INTO corpus.review_queue SELECT DATE '2026-02-01', ?, 'public', ?, 'score', 'kept', NULL, 8, 3, "
                "'kept', '8-9', 's', 1, 'r', now()", [example_id("public", 7), DAY])
    assert import_journal(con) == 2
    assert query(con, "SELECT count(*) AS n FROM corpus.review_queue")["n"][0] == 0
    lines = [json.dumps(r) for r in read_verdicts(journal_path(tmp_path)) if r["reviewed_at"] < "2026-01-05T09:30"]
    journal_path(tmp_path).write_text("\n".join(lines) + "\n")
    assert import_journal(con) == 1


def test_reject_keep_and_edit_over_the_automatic_decisions(con, tmp_path):
    verdict(tmp_path, 6, "reject", reason="Wrong answer!")
    verdict(tmp_path, 7, "edit", edited_response="Paris is the capital of France. Mail paris@example.org.")
    verdict(tmp_path, 0, "keep")  # filter-rejected: only raw_examples has it, with an e-mail address
    verdict(tmp_path, 2, "edit", edited_response="A better answer about Paris, the capital of France.")  # score-rejected
    verdict(tmp_path, 11, "keep")  # an exact duplicate of example 16, which is kept
    verdict(tmp_path, 40, "keep")  # an empty assistant turn: cannot be trained on
    verdict(tmp_path, 8, "keep")  # agrees with the pipeline
    candidates = query(con, SCORED)
    out, decisions = apply_verdicts(con, candidates)
    assert out.columns == candidates.columns and out.schema == candidates.schema
    rows = by_id(out)
    assert example_id("public", 6) not in rows
    edited = rows[example_id("public", 7)]
    assert answer(edited) == "Paris is the capital of France. Mail [EMAIL]."  # edits are PII-masked like all text
    before = by_id(candidates)[example_id("public", 7)]
    assert edited["content_hash"] != before["content_hash"]
    review = json.loads(edited["metadata"])["review"]
    assert review["original_response"] == answer(before) and review["verdict"] == "edit" and review["pii_masked_at_review"]
    back = rows[example_id("public", 0)]
    assert "@example.com" not in answer(back) and "[EMAIL]" in answer(back)
    assert json.loads(back["metadata"])["review"]["restored_from"] == "raw_examples"
    assert back["quality_score"] > 0 and len(back["content_hash"]) == 64
    assert answer(rows[example_id("public", 2)]) == "A better answer about Paris, the capital of France."
    assert example_id("public", 11) not in rows and example_id("public", 40) not in rows
    assert out.height == candidates.height - 1 + 2

    d = by_id(decisions)
    assert (decisions["stage"] == "review").all() and decisions.height == 7
    assert (d[example_id("public", 6)]["decision"], d[example_id("public", 6)]["rule"]) == ("rejected", "reviewer:wrong_answer")
    assert d[example_id("public", 7)]["rule"] == "reviewer:edit" and d[example_id("public", 0)]["rule"] == "reviewer:keep"
    assert (d[example_id("public", 11)]["decision"], d[example_id("public", 11)]["duplicate_of"]) == ("duplicate", example_id("public", 16))
    assert (d[example_id("public", 40)]["decision"], d[example_id("public", 40)]["rule"]) == ("rejected", "reviewer:keep_not_trainable")
    assert d[example_id("public", 8)]["decision"] == "kept"

    stored = by_id(query(con, "SELECT * FROM corpus.reviewed_examples"))
    assert set(stored) == {example_id("public", i) for i in (7, 0, 2)}
    assert stored[example_id("public", 0)]["restored_from"] == "raw_examples"
    assert stored[example_id("public", 2)]["restored_from"] == "deduplicated_examples"
    assert stored[example_id("public", 7)]["restored_from"] is None


def test_no_verdicts_change_nothing(con):
    candidates = query(con, SCORED)
    out, decisions = apply_verdicts(con, candidates)
    assert out.equals(candidates) and decisions.height == 0


def openai_lines(manifest, root) -> list[dict]:
    files = [f for f in manifest["files"] if f["format"] == "openai_chat"]
    return [json.loads(line) for f in files for line in (root / manifest["version"] / f["path"]).read_text().splitlines()]


def test_verdicts_reach_the_splits_the_export_and_the_agreement_report(con, tmp_path):
    exports = tmp_path / "exports"
    rebuild_splits(con, SplitSettings())
    first = export_splits(con, exports)
    before = openai_lines(first, exports)
    reject_row, edit_row = (by_id(query(con, SCORED))[example_id("conversations", i)] for i in (6, 7))
    verdict(tmp_path, 6, "reject", source="conversations", reason="off topic")
    verdict(tmp_path, 7, "edit", source="conversations", edited_response="Edited: Paris is the capital of France.")
    verdict(tmp_path, 3, "keep", source="conversations")  # score-rejected, back in
    split = rebuild_splits(con, SplitSettings())
    second = export_splits(con, exports)
    after = openai_lines(second, exports)
    assert second["version"] != first["version"]
    conversations = lambda lines: [[(m["role"], m["content"]) for m in line["messages"]] for line in lines]  # noqa: E731
    rejected_conv = [(m["role"], m["content"]) for m in reject_row["messages"]]
    assert rejected_conv in conversations(before) and rejected_conv not in conversations(after)
    texts_after = {c[-1][1] for c in conversations(after)}
    assert "Edited: Paris is the capital of France." in texts_after and answer(edit_row) not in texts_after
    assert "Example 3 of conversations: the capital of France is Paris, a city on the river Seine." in texts_after
    assert len(after) == len(before) - 1 + 1 and split.height == len(after)

    outcomes = by_id(query(con, "SELECT * FROM corpus.example_outcomes"))
    assert (outcomes[example_id("conversations", 6)]["final_stage"], outcomes[example_id("conversations", 6)]["rule"]) == \
        ("review", "reviewer:off_topic")
    assert outcomes[example_id("conversations", 3)]["final_stage"] == "split"
    agreement = {(r["stage"], r["rule"]): r for r in query(con, "SELECT * FROM corpus.review_agreement").iter_rows(named=True)}
    kept = agreement[("score", "(kept)")]  # 6 rejected (disagrees), 7 edited (agrees)
    assert (kept["reviewed"], kept["agreed"], kept["reviewer_rejected_kept"], kept["edited"]) == (2, 1, 1, 1)
    low = agreement[("score", "min_quality_score")]  # 3 kept after the pipeline dropped it
    assert (low["reviewed"], low["agreed"], low["agreement_rate"], low["reviewer_kept_dropped"]) == (1, 0, 0.0, 1)
