"""Our own chat logs: one JSONL line per interaction (user message, bot response, optional feedback).

Producers drifted in field names, so common aliases are accepted; an interaction without an id, text or a
parseable timestamp is quarantined rather than guessed, because its example_id and date would be unstable.
Feedback embedded in an interaction line is carried untouched in metadata `feedback`. Feedback given later
arrives as its own record (`{"type": "feedback", "interaction_id", "kind", "text", "comment", "timestamp"}`,
see `corpus_platform/capture`): records in the partition's folder are joined onto their interaction's
metadata `feedback` (the latest by timestamp wins, over embedded feedback too); one whose interaction is not
in this folder is quarantined as 'feedback for unknown interaction'. Writers put feedback into the
interaction's day folder (capture ids carry their day), so no other day's folder is searched.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from corpus_platform.schema import quarantine_frame, quarantine_row
from corpus_platform.sources.base import SourceBatch
from corpus_platform.sources.files import Reject, extras, json_type, read_landing, text_field

SOURCE = "conversations"

# canonical field -> accepted names, canonical first
FIELDS = {
    "interaction_id": ("interaction_id",),
    "session_id": ("session_id", "conversation_id"),
    "user_id": ("user_id",),
    "timestamp": ("timestamp", "created_at", "ts"),
    "user_message": ("user_message", "prompt", "user", "input"),
    "bot_response": ("bot_response", "response", "assistant", "output", "bot_message"),
    "model_version": ("model_version", "model"),
    "system_prompt": ("system_prompt",),
}
RESERVED = {"session_id", "user_id", "author", "created_at", "model_version", "feedback", "file", "line"}
FEEDBACK_KINDS = ("thumbs_up", "thumbs_down", "edit", "correction", "report")
UNKNOWN_INTERACTION = "feedback for unknown interaction"
_FEEDBACK_RECORD = "\x00feedback record"  # marks a parsed feedback line; never left as a quarantine reason


def read_conversations(folder: Path, day: date) -> SourceBatch:
    """Every logged interaction of one `date` partition's landing folder, as canonical examples."""
    first_seen: dict[str, str] = {}
    feedback: list[tuple[datetime, str, int, str, dict[str, Any], dict]] = []

    def parse(record: dict, rel: str, n: int) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
        if record.get("type") == "feedback":
            when, interaction_id, fb = _parse_feedback(record)
            feedback.append((when, rel, n, interaction_id, {**fb, "file": rel, "line": n}, record))
            raise Reject(_FEEDBACK_RECORD)  # not an example; read_conversations takes it out of quarantine
        source_id, messages, metadata = _parse(record)
        if source_id in first_seen:  # one interaction logged twice: keep the first, the id must stay unique
            raise Reject(f"duplicate interaction_id (first at {first_seen[source_id]})")
        first_seen[source_id] = f"{rel}:{n}"
        return source_id, messages, metadata

    batch = read_landing(folder, day, SOURCE, parse)
    batch = _join_feedback(batch, day, feedback) if feedback else batch
    return SourceBatch(examples=apply_feedback(batch.examples), quarantine=batch.quarantine, files=batch.files)


REPLACING_KINDS = ("edit", "correction")
REJECTING_KINDS = ("thumbs_down", "report")


def apply_feedback(examples: pl.DataFrame) -> pl.DataFrame:
    """What a user's feedback means for training.

    An edited or corrected response (with text) replaces the bot's response; the original stays in
    metadata `original_response`. A thumbs-down or a report marks the interaction `drop_reason`
    `feedback_thumbs_down` / `feedback_report`, so curation rejects it with that reason on record.
    Only rows with such feedback are touched.
    """
    kind = pl.col("metadata").str.json_path_match("$.feedback.kind")
    marked = examples.with_row_index("_row").filter(kind.is_in([*REPLACING_KINDS, *REJECTING_KINDS]))
    if marked.height == 0:
        return examples
    changed = []
    for row in marked.iter_rows(named=True):
        meta = json.loads(row["metadata"])
        fb, messages = meta["feedback"], row["messages"]
        if fb["kind"] in REJECTING_KINDS:
            meta["drop_reason"] = f"feedback_{fb['kind']}"
        elif isinstance(fb.get("text"), str) and fb["text"].strip():
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            meta["original_response"] = messages[last]["content"]
            meta["response_source"] = fb["kind"]
            messages = [*messages[:last], {"role": "assistant", "content": fb["text"]}, *messages[last + 1:]]
        changed.append({**row, "messages": messages, "metadata": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)})
    replaced = pl.DataFrame(changed, schema=marked.schema, orient="row")
    untouched = examples.with_row_index("_row").join(replaced.select("_row"), on="_row", how="anti")
    return pl.concat([untouched, replaced]).sort("_row").drop("_row")


def _parse_feedback(r: dict) -> tuple[datetime, str, dict[str, Any]]:
    """A later-arriving feedback record: (when, interaction_id, what goes into metadata `feedback`)."""
    iid = r.get("interaction_id")
    if isinstance(iid, int) and not isinstance(iid, bool):
        iid = str(iid)
    if not isinstance(iid, str) or not iid:
        raise Reject("feedback: missing interaction_id")
    kind = r.get("kind")
    if kind not in FEEDBACK_KINDS:
        raise Reject(f"feedback: kind must be one of {', '.join(FEEDBACK_KINDS)}")
    for key in ("text", "comment"):
        if r.get(key) is not None and not isinstance(r[key], str):
            raise Reject(f"wrong type: '{key}' is {json_type(r[key])}, expected string")
    _, ts = text_field(r, "timestamp")
    created_at = _timestamp(ts)
    fb = {"kind": kind, "text": r.get("text"), "comment": r.get("comment"), "created_at": created_at}
    fb.update({k: r[k] for k in ("feedback_id", "user_id") if r.get(k) is not None})
    return datetime.fromisoformat(created_at), iid, fb


def _join_feedback(batch: SourceBatch, day: date, feedback: list) -> SourceBatch:
    """Attach the latest feedback record to each interaction of this folder; quarantine the orphans."""
    quarantine = batch.quarantine.filter(pl.col("reason") != _FEEDBACK_RECORD)
    known = set(batch.examples["source_id"].to_list())
    latest: dict[str, dict[str, Any]] = {}
    orphans = []
    for _, rel, n, iid, fb, record in sorted(feedback, key=lambda f: f[:3]):  # latest timestamp, then file order
        if iid in known:
            latest[iid] = fb
        else:
            raw = json.dumps(record, ensure_ascii=False, default=str)
            orphans.append(quarantine_row(source=SOURCE, day=day, file=rel, line=n, reason=UNKNOWN_INTERACTION, raw=raw))
    if orphans:
        quarantine = pl.concat([quarantine, quarantine_frame(orphans)])
    examples = batch.examples
    if latest:
        metadata = [
            json.dumps({**json.loads(m), "feedback": latest[sid]}, sort_keys=True, ensure_ascii=False, default=str)
            if sid in latest else m
            for sid, m in zip(examples["source_id"].to_list(), examples["metadata"].to_list())
        ]
        examples = examples.with_columns(pl.Series("metadata", metadata, dtype=pl.Utf8))
    return SourceBatch(examples=examples, quarantine=quarantine, files=batch.files)


def _parse(r: dict) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    used: set[str] = set()

    def get(name: str, *, required: bool = False, ident: bool = False) -> str | None:
        names = FIELDS[name]
        key = next((k for k in names if k in r), None)
        if key is None:
            if required:
                raise Reject(f"missing field '{name}'")
            return None
        used.add(key)
        value = r[key]
        if ident and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # numeric ids are common in logs and unambiguous
        return text_field(r, key, required=required)[1]

    interaction_id = get("interaction_id", ident=True)
    if not interaction_id:
        raise Reject("missing interaction_id")
    user = get("user_message", required=True)
    bot = get("bot_response", required=True)
    system = get("system_prompt")
    created_at = _timestamp(get("timestamp", required=True))
    user_id = get("user_id", ident=True)
    session_id = get("session_id", ident=True)
    model_version = get("model_version")
    messages = [{"role": "system", "content": system}] if system and system.strip() else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": bot}]
    metadata = {
        **extras(r, used | {"feedback"}, RESERVED),
        "session_id": session_id,
        "user_id": user_id,
        "author": user_id,
        "created_at": created_at,
        "model_version": model_version,
        "feedback": r.get("feedback"),
    }
    return interaction_id, messages, metadata


def _timestamp(value: str) -> str:
    """ISO-8601 in, ISO-8601 UTC out (a naive timestamp is taken as UTC), so created_at sorts across producers."""
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Reject("unparseable timestamp") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat()

