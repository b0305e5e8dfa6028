"""Which reader serves which source. The four live connectors land with the connectors issue; until
then they fail loudly, naming what they will need, instead of returning an empty frame."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from corpus_platform.sources.base import SourceBatch, SourceNotConfigured

CONNECTOR_ENV: dict[str, list[str]] = {
    "reddit": ["REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT"],
    "youtube": ["YOUTUBE_API_KEY"],
    "twitter": ["APIFY_API_TOKEN", "APIFY_TWEET_ACTOR"],
    "synthetic": ["OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"],
}


class NoInputFiles(RuntimeError):
    """A file source's partition has no landing folder or no files in it."""


def read_source(source: str, landing_dir: Path, day: date) -> SourceBatch:
    if source in CONNECTOR_ENV:
        raise SourceNotConfigured(
            source,
            CONNECTOR_ENV[source],
            f"no live {source} connector in this build yet; drop canonical files under landing/public "
            "or landing/conversations meanwhile",
        )
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
    raise KeyError(f"unknown source {source!r}")
