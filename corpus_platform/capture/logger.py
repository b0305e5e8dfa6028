"""ConversationLogger: apps append interactions and feedback straight into the conversations landing folder.

Why files and not a service: the landing folder is already the platform's input contract (the
`conversations` source reads it, the landing sensor watches it), so an app that logs here is ingested
with no extra moving part. Lines are written in exactly the format `sources/conversations.py` reads:

    <landing>/<UTC day>/interactions-<day>.jsonl   one interaction per line
    <landing>/<UTC day>/feedback-<day>.jsonl       {"type": "feedback", ...} records

Interaction ids are UUIDv7 hex: unique, time-ordered, and they carry their UTC day, so a feedback
recorded later (another day, another process) is written into the interaction's own day folder, where
the reader joins it. Stdlib only: importing this never pulls in Dagster, Polars or DuckDB.
"""

from __future__ import annotations

import os
import re
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from corpus_platform.capture.durable import append_line, encode_line, rotate_closed_days
from corpus_platform.capture.redact import redact as redact_text

FEEDBACK_KINDS = ("thumbs_up", "thumbs_down", "edit", "correction", "report")
# Keys of an interaction line; metadata may not shadow them (a metadata key becomes a top-level field).
LINE_FIELDS = frozenset({
    "interaction_id", "session_id", "user_id", "timestamp", "user_message", "bot_response", "model_version",
    "system_prompt", "app_id", "feedback", "type",
})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UUID7_HEX = re.compile(r"^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$")


def uuid7_hex(at: datetime) -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: 48-bit Unix milliseconds, version 7, 74 random bits."""
    ms = (at - _EPOCH) // timedelta(milliseconds=1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return f"{value:032x}"


def day_of_id(interaction_id: Any) -> date | None:
    """The UTC day a UUIDv7-hex interaction id was minted on; None for any other id."""
    if not isinstance(interaction_id, str) or not _UUID7_HEX.match(interaction_id):
        return None
    try:
        return (_EPOCH + timedelta(milliseconds=int(interaction_id[:12], 16))).date()
    except OverflowError:
        return None


def default_landing_root() -> Path:
    from corpus_platform.settings import Layout  # stdlib-only module

    return Layout.from_env().landing / "conversations"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ident(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{name} must be a string, an int or None, not {type(value).__name__}")


def _text(name: str, value: Any, *, optional: bool = False) -> None:
    if not (isinstance(value, str) or (optional and value is None)):
        raise TypeError(f"{name} must be a string{' or None' if optional else ''}, not {type(value).__name__}")


class ConversationLogger:
    """Thread- and process-safe capture of interactions and feedback into the landing folder."""

    def __init__(
        self,
        landing_root: str | Path | None = None,
        redact: bool = False,
        gzip_rotate: bool = False,
        *,
        fsync: bool = False,
        app_id: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ):
        self.landing_root = Path(landing_root) if landing_root is not None else default_landing_root()
        self.redact = redact
        self.gzip_rotate = gzip_rotate
        self.fsync = fsync  # off by default: a crash of the app then loses what the OS had not flushed
        self.app_id = app_id
        self._clock = clock
        self._rotated_for: date | None = None
        self._rotate_lock = threading.Lock()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("clock must return an aware datetime")
        return now.astimezone(timezone.utc)

    def day_dir(self, day: date) -> Path:
        return self.landing_root / day.isoformat()

    def interactions_path(self, day: date) -> Path:
        return self.day_dir(day) / f"interactions-{day.isoformat()}.jsonl"

    def feedback_path(self, day: date) -> Path:
        return self.day_dir(day) / f"feedback-{day.isoformat()}.jsonl"

    def log(
        self,
        user_message: str,
        response: str,
        session_id: str | int | None = None,
        user_id: str | int | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        system_prompt: str | None = None,
        *,
        interaction_id: str | None = None,
        app_id: str | None = None,
    ) -> str:
        """Append one interaction; returns its interaction_id (pass `interaction_id` only to re-write a retry)."""
        _text("user_message", user_message)
        _text("response", response)
        _text("model", model, optional=True)
        _text("system_prompt", system_prompt, optional=True)
        extra = dict(metadata or {})
        if bad := sorted(str(k) for k in extra if not isinstance(k, str) or k in LINE_FIELDS):
            raise ValueError(f"metadata keys {bad} are not strings or shadow fields of the interaction line")
        now = self._now()
        iid = interaction_id or uuid7_hex(now)
        r = self.redact
        record: dict[str, Any] = {
            "interaction_id": iid,
            "session_id": _ident("session_id", session_id),
            "user_id": _ident("user_id", user_id),
            "timestamp": now.isoformat(timespec="microseconds"),
            "user_message": redact_text(user_message) if r else user_message,
            "bot_response": redact_text(response) if r else response,
            "model_version": model,
            "system_prompt": redact_text(system_prompt) if r else system_prompt,
        }
        if app := app_id or self.app_id:
            record["app_id"] = app
        record.update(extra)
        self._append(self.interactions_path(now.date()), record, now.date())
        return iid

    def feedback(
        self,
        interaction_id: str | int,
        kind: str,
        text: str | None = None,
        comment: str | None = None,
        user_id: str | int | None = None,
        *,
        day: date | None = None,
        app_id: str | None = None,
        feedback_id: str | None = None,
    ) -> str:
        """Append a feedback record into the interaction's day folder; returns the feedback id.

        The folder is `day` if given, else the day encoded in a UUIDv7 interaction id, else today (an id
        minted elsewhere: the reader then joins it only if the interaction is in today's folder too).
        Pass `feedback_id` only to re-write a retry under its first id.
        """
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FEEDBACK_KINDS)}, not {kind!r}")
        _ident("interaction_id", interaction_id)
        if interaction_id is None or interaction_id == "":
            raise ValueError("interaction_id is required")
        _text("text", text, optional=True)
        _text("comment", comment, optional=True)
        now = self._now()
        target = day or day_of_id(interaction_id) or now.date()
        r = self.redact
        record: dict[str, Any] = {
            "type": "feedback",
            "feedback_id": feedback_id or uuid7_hex(now),
            "interaction_id": interaction_id,
            "kind": kind,
            "text": redact_text(text) if r else text,
            "comment": redact_text(comment) if r else comment,
            "user_id": _ident("user_id", user_id),
            "timestamp": now.isoformat(timespec="microseconds"),
        }
        if app := app_id or self.app_id:
            record["app_id"] = app
        self._append(self.feedback_path(target), record, now.date())
        return record["feedback_id"]

    def _append(self, path: Path, record: dict[str, Any], today: date) -> None:
        line = encode_line(record)  # before any I/O: an unencodable record writes nothing
        if self.gzip_rotate and self._rotated_for != today:
            self.rotate(today)
        append_line(path, line, fsync=self.fsync)

    def rotate(self, today: date | None = None) -> list[Path]:
        """Gzip the interactions/feedback files of every day before `today` (UTC); returns the .gz files."""
        today = today or self._now().date()
        with self._rotate_lock:
            done = rotate_closed_days(self.landing_root, today)
            self._rotated_for = today
        return done
