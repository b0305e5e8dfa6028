"""Our own chat logs: one JSONL line per interaction (user message, bot response, optional feedback).

Producers drifted in field names, so common aliases are accepted; an interaction without an id, text or a
parseable timestamp is quarantined rather than guessed, because its example_id and date would be unstable.
Feedback is carried untouched in metadata: how it joins onto examples is decided downstream.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from corpus_platform.sources.base import SourceBatch
from corpus_platform.sources.files import Reject, extras, read_landing, text_field

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


def read_conversations(folder: Path, day: date) -> SourceBatch:
    """Every logged interaction of one `date` partition's landing folder, as canonical examples."""
    first_seen: dict[str, str] = {}

    def parse(record: dict, rel: str, n: int) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
        source_id, messages, metadata = _parse(record)
        if source_id in first_seen:  # one interaction logged twice: keep the first, the id must stay unique
            raise Reject(f"duplicate interaction_id (first at {first_seen[source_id]})")
        first_seen[source_id] = f"{rel}:{n}"
        return source_id, messages, metadata

    return read_landing(folder, day, SOURCE, parse)


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

