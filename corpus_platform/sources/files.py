"""Landing-folder reading shared by the file-based sources (public datasets, chat logs).

A source only supplies a record parser; walking, decompression, decoding and quarantine live here so
both sources treat a bad line or a broken upload the same way: the bad part becomes a quarantine row
with file, line and reason, and everything else in the partition is still read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

from corpus_platform.schema import examples_frame, make_example, quarantine_frame, quarantine_row, utcnow
from corpus_platform.sources.base import SourceBatch

SUPPORTED = (".jsonl.gz", ".json.gz", ".jsonl", ".json")
IN_PROGRESS = (".tmp", ".part")  # uploads still being written: read on a later run, never quarantined

# A parser turns one decoded JSON value into (source_id, messages, metadata) or raises Reject.
Parser = Callable[[Any, str, int], tuple[str, list[dict[str, str]], dict[str, Any]]]


class Reject(ValueError):
    """Raised for input that cannot become an example; the message is the quarantine reason."""


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for reasons a data producer understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def text_field(record: dict, *keys: str, required: bool = True) -> tuple[str | None, str | None]:
    """The first of `keys` present in `record` (a field and its aliases) as (key, string value)."""
    for key in keys:
        if key in record:
            value = record[key]
            if value is None and not required:
                return key, None
            if not isinstance(value, str):
                raise Reject(f"wrong type: '{key}' is {json_type(value)}, expected string")
            return key, value
    if required:
        raise Reject(f"missing field '{keys[0]}'")
    return None, None


def extras(record: dict, consumed: set[str], reserved: set[str]) -> dict[str, Any]:
    """Non-content fields of a record for metadata; a field named like one we set is kept as record_<name>."""
    return {(f"record_{k}" if k in reserved else k): v for k, v in record.items() if k not in consumed}


def check_turns(messages: list[dict[str, str]]) -> None:
    """The shape every example must have: a user and an assistant turn, ending on the assistant."""
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        raise Reject("no user turn")
    if "assistant" not in roles:
        raise Reject("no assistant turn")
    if roles[-1] != "assistant":
        raise Reject("last turn is not an assistant turn")
    if "system" in roles[1:]:
        raise Reject("system turn after the first turn")


def landing_files(folder: Path) -> list[tuple[Path, str]]:
    """Every visible, finished file under `folder` (recursively) with its posix path relative to it, sorted."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or rel.endswith(IN_PROGRESS):
            continue
        if path.is_file():
            found.append((path, rel))
    return sorted(found, key=lambda pr: pr[1])


def _gzip_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated gzip file"
    if str(exc).startswith("Not a gzipped file"):
        return "not a gzip file"
    return f"corrupt gzip file: {exc}"


_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _loads(text: str) -> Any:
    """json.loads that rejects NaN/Infinity (not JSON; would poison metadata) and lone surrogates (unwritable)."""
    value = json.loads(text, parse_constant=_no_constant)
    if "\\ud" in text or "\\uD" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise Reject("invalid UTF-8: lone surrogate escape") from None
    return value


def _no_constant(name: str) -> Any:
    raise Reject(f"invalid JSON: {name} is not allowed")


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any, Any]]:
    """(line, raw, value-or-Reject) per non-blank line; a gzip failure ends the file with a line-0 Reject."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    yield n, line, Reject("invalid UTF-8")
                    continue
                if n == 1:
                    text = text.lstrip("\ufeff")
                try:
                    yield n, text, _loads(text)
                except json.JSONDecodeError as e:
                    yield n, text, Reject(f"invalid JSON: {e.msg}")
                except Reject as e:
                    yield n, text, e
    except _GZIP_ERRORS as e:
        yield 0, "", Reject(_gzip_reason(e))


def _json_records(path: Path) -> Iterator[tuple[int, Any, Any]]:
    """(index, None, value) per record of a JSON document; a broken document is one line-0 Reject."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except _GZIP_ERRORS as e:
        yield 0, "", Reject(_gzip_reason(e))
        return
    try:
        text = data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as e:
        yield 0, data[max(0, e.start - 200) : e.start + 200], Reject("invalid UTF-8")
        return
    try:
        doc = _loads(text)
    except json.JSONDecodeError as e:
        yield 0, text[max(0, e.pos - 200) :], Reject(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")
        return
    except Reject as e:
        yield 0, text, e
        return
    if isinstance(doc, dict):
        wrapped = [doc[k] for k in ("data", "examples") if isinstance(doc.get(k), list)]
        records = wrapped[0] if wrapped else [doc]
    elif isinstance(doc, list):
        records = doc
    else:
        yield 0, text, Reject(f"JSON file holds a {json_type(doc)}, not an array of records")
        return
    for i, record in enumerate(records, 1):
        yield i, None, record


def _is_empty_gzip(path: Path) -> bool:
    return path.name.endswith(".gz") and path.stat().st_size == 0


def read_landing(folder: Path, day: date, source: str, parse: Parser) -> SourceBatch:
    """Read one partition's landing folder with `parse`; a missing folder is a day without input."""
    collected_at = utcnow()
    examples: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    files: list[str] = []

    def reject(rel: str, line: int, reason: str, raw: Any) -> None:
        if raw is None or not isinstance(raw, (str, bytes)):
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        quarantine.append(quarantine_row(source=source, day=day, file=rel, line=line, reason=reason, raw=raw))

    for path, rel in landing_files(folder) if folder.is_dir() else []:
        # Relative to the source's landing root (`<date>/<file>`): the same file name on another day is
        # another input, so its records must get other source ids.
        rel = f"{folder.name}/{rel}"
        if not rel.endswith(SUPPORTED):
            reject(rel, 0, "unsupported file type", "")
            continue
        files.append(rel)
        if _is_empty_gzip(path):
            reject(rel, 0, "empty gzip file", "")
            continue
        records = _json_records(path) if rel.endswith((".json", ".json.gz")) else _jsonl_records(path)
        for n, raw, value in records:
            if isinstance(value, Reject):
                reject(rel, n, str(value), raw)
                continue
            try:
                if not isinstance(value, dict):
                    raise Reject(f"record is not a JSON object but {json_type(value)}")
                source_id, messages, metadata = parse(value, rel, n)
                check_turns(messages)
            except Reject as e:
                reject(rel, n, str(e), value if raw is None else raw)
                continue
            metadata.update(file=rel, line=n)
            examples.append(
                make_example(
                    source=source, source_id=source_id, day=day, messages=messages,
                    metadata=metadata, collected_at=collected_at,
                )
            )
    return SourceBatch(examples=examples_frame(examples), quarantine=quarantine_frame(quarantine), files=files)
