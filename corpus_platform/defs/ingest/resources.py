"""Resources of the live sources. Secrets arrive only through `EnvVar` (the UI shows the variable's name,
never its value); lists (subreddits, queries, search terms, templates) are plain config. An unconfigured
source raises `SourceNotConfigured` naming the variables it needs, so its partitions fail loudly."""

import json
from datetime import date
from typing import Any, Optional

import dagster as dg

from corpus_platform.settings import Layout
from corpus_platform.sources.base import SourceBatch, SourceNotConfigured
from corpus_platform.sources.state import PartitionState

Log = Any  # a logger: .info/.warning (Dagster's context.log)


def _require(source: str, values: list[Optional[str]], env: list[str]) -> None:
    """`values` are the resource fields filled from `env` (the source module's *_ENV list), in order."""
    missing = [name for value, name in zip(values, env) if not value]
    if missing:
        raise SourceNotConfigured(source, missing)


class SubredditConfig(dg.Config):
    name: str
    priority: int = 0
    limit: int = 100


class RedditResource(dg.ConfigurableResource):
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    user_agent: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    subreddits: list[SubredditConfig] = []
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"
    requests_per_minute: float = 60.0

    def fetch(self, day: date, layout: Layout, log: Log) -> tuple[SourceBatch, dict[str, Any]]:
        from corpus_platform.sources.reddit import REDDIT_ENV, RedditConfig, SubredditSpec, fetch_reddit

        _require("reddit", [self.client_id, self.client_secret, self.user_agent], REDDIT_ENV)
        if not self.subreddits:
            raise SourceNotConfigured("reddit", ["CORPUS_REDDIT_SUBREDDITS (name:priority:limit,...)"])
        config = RedditConfig(
            client_id=self.client_id, client_secret=self.client_secret, user_agent=self.user_agent,
            username=self.username, password=self.password, oauth_url=self.oauth_url, reddit_url=self.reddit_url,
            requests_per_minute=self.requests_per_minute,
            subreddits=tuple(SubredditSpec(s.name, s.priority, s.limit) for s in self.subreddits),
        )
        return fetch_reddit(config, day, PartitionState(layout.state, "reddit", day), log=log.info), {}


class YouTubeResource(dg.ConfigurableResource):
    api_key: Optional[str] = None
    queries: list[str] = []
    max_results_per_query: int = 50
    daily_quota_units: int = 10_000
    discovery_url: Optional[str] = None
    transcript_languages: list[str] = ["en"]
    transcript_base_url: Optional[str] = None  # send youtube.com transcript requests to a mirror instead

    def fetch(self, day: date, layout: Layout, log: Log) -> tuple[SourceBatch, dict[str, Any]]:
        from corpus_platform.sources.quota import QuotaLedger
        from corpus_platform.sources.youtube import YOUTUBE_ENV, LibraryTranscriptFetcher, YouTubeConfig, fetch_youtube
        from corpus_platform.sources.youtube_transcripts import mirror_session

        _require("youtube", [self.api_key], YOUTUBE_ENV)
        if not self.queries:
            raise SourceNotConfigured("youtube", ["CORPUS_YOUTUBE_QUERIES (comma-separated)"])
        config = YouTubeConfig(api_key=self.api_key, queries=tuple(self.queries), discovery_url=self.discovery_url,
                               max_results_per_query=self.max_results_per_query,
                               daily_quota_units=self.daily_quota_units,
                               transcript_languages=tuple(self.transcript_languages))
        ledger = QuotaLedger.under(layout.state)
        batch = fetch_youtube(config, day, PartitionState(layout.state, "youtube", day), ledger,
                              transcripts=LibraryTranscriptFetcher(mirror_session(self.transcript_base_url)
                                                                   if self.transcript_base_url else None), log=log)
        return batch, {"quota_units_used_today": ledger.used(config.quota_api), "quota_units_per_day": config.daily_quota_units}


class TwitterResource(dg.ConfigurableResource):
    api_token: Optional[str] = None
    actor_id: Optional[str] = None
    search_terms: list[str] = []
    max_items: int = 1000
    api_url: str = "https://api.apify.com"

    def fetch(self, day: date, layout: Layout, log: Log) -> tuple[SourceBatch, dict[str, Any]]:
        from corpus_platform.sources.twitter import TWITTER_ENV, TwitterConfig, fetch_twitter

        _require("twitter", [self.api_token, self.actor_id], TWITTER_ENV)
        if not self.search_terms:
            raise SourceNotConfigured("twitter", ["CORPUS_TWITTER_SEARCH_TERMS (comma-separated)"])
        config = TwitterConfig(api_token=self.api_token, actor_id=self.actor_id, search_terms=tuple(self.search_terms),
                               max_items=self.max_items, api_url=self.api_url)
        return fetch_twitter(config, day, PartitionState(layout.state, "twitter", day), log=log.info), {}


class SyntheticResource(dg.ConfigurableResource):
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    model: str = "gpt-4o-mini"
    temperature: float = 0.7
    max_tokens: int = 1024
    templates: list[str] = []
    items_json: str = "{}"  # placeholder -> list of values, as JSON: {"topic": ["sql", "git"]}
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    response_format: str = "json_schema"
    requests_per_minute: float = 60.0

    def fetch(self, day: date, layout: Layout, log: Log) -> tuple[SourceBatch, dict[str, Any]]:
        from corpus_platform.sources.synthetic import SyntheticConfig, fetch_synthetic

        if not self.api_key and not self.base_url:
            raise SourceNotConfigured("synthetic", ["OPENAI_API_KEY", "or OPENAI_BASE_URL for a local OpenAI-compatible server"])
        if not self.templates:
            raise SourceNotConfigured("synthetic", ["CORPUS_SYNTHETIC_TEMPLATES and CORPUS_SYNTHETIC_ITEMS (JSON)"])
        config = SyntheticConfig(
            api_key=self.api_key or "local", base_url=self.base_url, model=self.model, temperature=self.temperature,
            max_tokens=self.max_tokens, templates=tuple(self.templates), items=json.loads(self.items_json),
            price_per_1k_prompt={self.model: self.price_per_1k_prompt},
            price_per_1k_completion={self.model: self.price_per_1k_completion},
            response_format=self.response_format, requests_per_minute=self.requests_per_minute,
        )
        batch, cost = fetch_synthetic(config, day, PartitionState(layout.state, "synthetic", day), log=log)
        return batch, cost.as_metadata()


def _env(name: str) -> Any:
    """`EnvVar(name)` when the variable is set, else None: an unset secret must not break other sources' runs."""
    import os

    return dg.EnvVar(name) if os.environ.get(name) else None


def _list(name: str) -> list[str]:
    import os

    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def _subreddits() -> list[SubredditConfig]:
    specs = []
    for entry in _list("CORPUS_REDDIT_SUBREDDITS"):
        name, *rest = entry.split(":")
        specs.append(SubredditConfig(name=name, priority=int(rest[0]) if rest else 0, limit=int(rest[1]) if len(rest) > 1 else 100))
    return specs


def live_source_resources() -> dict[str, dg.ConfigurableResource]:
    """The four live sources configured from the environment (see README, Sources)."""
    import os

    return {
        "reddit": RedditResource(client_id=_env("REDDIT_CLIENT_ID"), client_secret=_env("REDDIT_CLIENT_SECRET"),
                                 user_agent=_env("REDDIT_USER_AGENT"), username=_env("REDDIT_USERNAME"),
                                 password=_env("REDDIT_PASSWORD"), subreddits=_subreddits()),
        "youtube": YouTubeResource(api_key=_env("YOUTUBE_API_KEY"), queries=_list("CORPUS_YOUTUBE_QUERIES")),
        "twitter": TwitterResource(api_token=_env("APIFY_API_TOKEN"), actor_id=_env("APIFY_TWEET_ACTOR"),
                                   search_terms=_list("CORPUS_TWITTER_SEARCH_TERMS")),
        "synthetic": SyntheticResource(api_key=_env("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL") or None,
                                       model=os.environ.get("CORPUS_SYNTHETIC_MODEL", "gpt-4o-mini"),
                                       templates=[t for t in os.environ.get("CORPUS_SYNTHETIC_TEMPLATES", "").split("||") if t.strip()],
                                       items_json=os.environ.get("CORPUS_SYNTHETIC_ITEMS", "{}")),
    }
