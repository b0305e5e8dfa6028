"""The file sources' readers. The live sources (reddit, youtube, twitter, synthetic) are fetched through
their resources in `corpus_platform.defs.ingest.resources`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from corpus_platform.sources.base import SourceBatch


class NoInputFiles(RuntimeError):
    """A file source's partition has no landing folder or no files in it."""


def read_source(source: str, landing_dir: Path, day: date) -> SourceBatch:
    if not landing_dir.is_dir() or not any(p.is_file() for p in landing_dir.rglob("*")):
        raise NoInputFiles(
            f"no input files for source '{source}' on {day.isoformat()}: put them under {landing_dir}"
        )
    if source == "public":
        from corpus_platform.sources.public import read_public

        return read_public(landing_dir, day)
    if source == "conversations":
        from corpus_platform.sources.conversations import read_conversations

        return read_conversations(landing_dir, day)
    raise KeyError(f"{source!r} is not a file source")
