"""Erase a person's examples from what distillation derived from them (for the delete_user_data job).

Given the example ids being erased, removes: their instructions' teacher answers
(`corpus.teacher_answers`, matched by example_id and by instruction hash), the distilled examples made
from them (`corpus.distilled_examples`, matched by `metadata.original_example_id` and by source_id),
the judge's cached verdicts on those answers (`corpus.judgments`, by content_hash: rationales can quote
the text), and every line of the Batch API files (requests, outputs, done/) whose custom_id names one
of those instructions. Runs inside the caller's transaction and must run before the caller deletes
`corpus.scored_examples` rows (the instructions are read from there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from corpus_platform.distillation.batch import parse_custom_id

if TYPE_CHECKING:
    import duckdb


def _instruction_hashes(con: "duckdb.DuckDBPyConnection") -> list[str]:
    from corpus_platform.distillation.distill import instructions_frame

    scored = con.execute("SELECT example_id, source, date, source_id, messages FROM corpus.scored_examples "
                         "WHERE example_id IN (SELECT example_id FROM _erase_distill)").pl()
    hashes = set(instructions_frame(scored)["instruction_hash"].to_list()) if scored.height else set()
    hashes |= {r[0] for r in con.execute("SELECT instruction_hash FROM corpus.teacher_answers WHERE example_id IN "
                                         "(SELECT example_id FROM _erase_distill)").fetchall()}
    return sorted(hashes)


def erase_distillation(con: "duckdb.DuckDBPyConnection", example_ids: list[str],
                       batches_root: Path | None = None) -> dict[str, int]:
    """Delete the distillation rows and batch-file lines derived from `example_ids`; returns counts."""
    counts = {"teacher_answers": 0, "distilled_examples": 0, "judgments": 0, "batch_file_lines": 0}
    if not example_ids:
        return counts
    con.register("_erase_distill", pl.DataFrame({"example_id": example_ids}, schema={"example_id": pl.Utf8}).to_arrow())
    try:
        hashes = _instruction_hashes(con)
        con.register("_erase_hashes", pl.DataFrame({"h": hashes}, schema={"h": pl.Utf8}).to_arrow())
        try:
            answers = "instruction_hash IN (SELECT h FROM _erase_hashes) OR example_id IN (SELECT example_id FROM _erase_distill)"
            judged = [r[0] for r in con.execute(f"SELECT DISTINCT content_hash FROM corpus.teacher_answers WHERE ({answers}) "
                                                "AND content_hash IS NOT NULL").fetchall()]
            counts["teacher_answers"] = con.execute(f"SELECT count(*) FROM corpus.teacher_answers WHERE {answers}").fetchone()[0]
            con.execute(f"DELETE FROM corpus.teacher_answers WHERE {answers}")
            distilled = ("json_extract_string(metadata, '$.original_example_id') IN (SELECT example_id FROM _erase_distill) "
                         "OR source_id IN (SELECT 'distilled:' || h FROM _erase_hashes)")
            counts["distilled_examples"] = con.execute(
                f"SELECT count(*) FROM corpus.distilled_examples WHERE {distilled}").fetchone()[0]
            con.execute(f"DELETE FROM corpus.distilled_examples WHERE {distilled}")
            if judged and con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'corpus' "
                                      "AND table_name = 'judgments'").fetchone()[0]:
                con.register("_erase_judged", pl.DataFrame({"c": judged}, schema={"c": pl.Utf8}).to_arrow())
                try:
                    counts["judgments"] = con.execute("SELECT count(*) FROM corpus.judgments WHERE content_hash IN "
                                                      "(SELECT c FROM _erase_judged)").fetchone()[0]
                    con.execute("DELETE FROM corpus.judgments WHERE content_hash IN (SELECT c FROM _erase_judged)")
                finally:
                    con.unregister("_erase_judged")
        finally:
            con.unregister("_erase_hashes")
    finally:
        con.unregister("_erase_distill")
    if batches_root is not None and hashes:
        counts["batch_file_lines"] = _scrub_batch_files(Path(batches_root), set(hashes))
    return counts


def _scrub_batch_files(root: Path, hashes: set[str]) -> int:
    """Drop every line whose custom_id names an erased instruction from the batch files under `root`."""
    removed = 0
    if not root.is_dir():
        return 0
    for path in sorted(root.rglob("*.jsonl")):
        keep, dropped = [], 0
        for line in path.read_bytes().splitlines(keepends=True):
            try:
                h = parse_custom_id(json.loads(line).get("custom_id"))[0]
            except (ValueError, AttributeError, TypeError):
                h = None
            if h in hashes:
                dropped += 1
            else:
                keep.append(line)
        if dropped:
            tmp = path.with_name(f".{path.name}.erase-{os.getpid()}")
            tmp.write_bytes(b"".join(keep))
            os.replace(tmp, path)
            removed += dropped
    return removed
