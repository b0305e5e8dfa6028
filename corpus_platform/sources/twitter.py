"""Twitter/X connector through an Apify tweet-search actor: one UTC day of (tweet → direct reply) examples.

Why this shape:
- Two actor runs per partition. The search run gets the day's tweets for `search_terms` (each term gets
  `since:DAY until:DAY+1`, X's own search operators, which every tweet-search actor passes through). The
  replies run searches `conversation_id:<id>` for the day's root tweets (those with replies, most liked
  first, at most `max_conversations`): search results rarely contain the replies themselves. Replies
  already present in the search dataset count too. Replies written after the fetch are not seen, so
  `reply_delay`'s 7-day upper bound only matters for partitions fetched late.
- Runs cost money, so each run id is checkpointed as soon as the run starts (`start` + `wait_for_finish`
  instead of `call`): a rerun after a crash waits on the same run rather than paying for a new one, and
  reads its dataset from the checkpointed offset. Dataset pages are spooled before the offset advances.
  (A start whose answer is lost, e.g. a timeout after the server accepted it, is retried and may start a
  second run: the API has no idempotency key.)
- `ApifyClient` is built with its retries off and an HTTP client (its documented extension point) that
  raises `Retryable` on 429/5xx/timeouts, so the shared `policy.retry` (bounded, Retry-After aware) owns
  every retry.
- Actors disagree on field names (`full_text`/`text`, `favorite_count`/`likeCount`, `created_at`/
  `createdAt`/`timestamp`, `user`/`author`, ...) and date formats (Twitter's "Wed Oct 10 20:19:24 +0000
  2018", RFC 2822, ISO 8601, epoch): `normalize_tweet` maps them all; an item it cannot read is quarantined.
- Collection rules never discard: a reply outside them stays an example with `drop_reason`, `drop_score`
  (the observed value) and `drop_threshold` (the bound), so the filter stage records why.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from apify_client import ApifyClient
from apify_client.errors import InvalidResponseBodyError
from apify_client.http_clients import ImpitHttpClient

from corpus_platform.schema import examples_frame, make_example, quarantine_frame, quarantine_row
from corpus_platform.sources.base import SourceBatch, SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RateLimiter, Retryable, retry
from corpus_platform.sources.state import PartitionState

SOURCE = "twitter"
TWITTER_ENV = ["APIFY_API_TOKEN", "APIFY_TWEET_ACTOR"]
# Apify API v2 reference, "Rate limiting": 30 requests/s per resource by default (250,000/min per user
# globally). One actor run and one dataset are the resources here.
APIFY_REQUESTS_PER_MINUTE = 30 * 60.0
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "TIMED-OUT"}
Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class TwitterConfig:
    api_token: str = field(repr=False)
    actor_id: str  # a tweet-search actor, e.g. "apidojo/tweet-scraper"
    search_terms: tuple[str, ...] = ()
    max_items: int = 1000  # tweets from the search run
    api_url: str = "https://api.apify.com"
    reply_actor_id: str | None = None  # defaults to actor_id
    max_reply_items: int = 2000
    max_conversations: int = 100
    run_input_extra: Mapping[str, Any] = field(default_factory=dict)  # actor-specific input (lang, proxies...)
    # collection rules (the seed defaults); a bound of None is open
    tweet_likes: Bounds = (10, None)
    reply_likes: Bounds = (3, None)
    author_followers: Bounds = (50, None)  # of the reply's author
    reply_delay: Bounds = (5 * 60, 7 * 86400)  # seconds between tweet and reply
    no_media: bool = True
    no_urls: bool = True
    min_chars: int = 30  # both texts, after stripping leading @mentions from replies
    max_chars: int = 280
    max_replies_per_author: int = 3  # per partition, the author's most liked replies first
    # transport
    requests_per_minute: float = APIFY_REQUESTS_PER_MINUTE
    timeout: float = 30.0  # seconds per HTTP request
    wait_secs: int = 60  # one long-poll for the run to finish (the API's maximum)
    max_wait_secs: float = 3600.0
    page_size: int = 1000
    backoff: BackoffPolicy = BackoffPolicy()



class RetryingImpitClient(ImpitHttpClient):
    """apify-client transport that hands 429/5xx/timeouts to `policy.retry` as `Retryable`."""

    def send_request(self, *, method: str, url: str, **kwargs: Any) -> Any:
        import impit

        where = f"{method} {url.split('?', 1)[0].split('/v2', 1)[-1]}"  # no query string, no host
        try:
            response = super().send_request(method=method, url=url, **kwargs)
        except impit.TimeoutException as exc:
            raise Retryable(f"timeout: {where}") from exc
        except impit.HTTPError as exc:
            raise Retryable(f"transport error {type(exc).__name__}: {where}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            value = response.headers.get("retry-after")
            delay = None
            if value:
                try:
                    delay = float(value)
                except ValueError:
                    delay = max((email.utils.parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0)
            response.close()
            raise Retryable(f"HTTP {response.status_code}: {where}", delay)
        return response


def make_client(config: TwitterConfig) -> ApifyClient:
    http = RetryingImpitClient(token=config.api_token, max_retries=0,
                               timeout_short=timedelta(seconds=config.timeout),
                               timeout_medium=timedelta(seconds=config.timeout),
                               timeout_long=timedelta(seconds=config.timeout + config.wait_secs),
                               timeout_max=timedelta(seconds=config.timeout + config.wait_secs))
    return ApifyClient.with_custom_http_client(config.api_token, api_url=config.api_url, http_client=http)


def search_input(config: TwitterConfig, day: date) -> dict[str, Any]:
    until = day + timedelta(days=1)
    return {**config.run_input_extra, "searchTerms": [f"{t} since:{day} until:{until}" for t in config.search_terms],
            "maxItems": config.max_items, "sort": "Latest"}


def replies_input(config: TwitterConfig, conversation_ids: list[str]) -> dict[str, Any]:
    return {**config.run_input_extra, "searchTerms": [f"conversation_id:{c}" for c in conversation_ids],
            "maxItems": config.max_reply_items, "sort": "Latest"}


def fetch_twitter(config: TwitterConfig, day: date, state: PartitionState, *, log: Callable[[str], None] = print,
                  sleep: Callable[[float], None] = time.sleep) -> SourceBatch:
    """Run the search and replies actors for `day` (UTC), resuming from `state`; build from the spool."""
    if not config.search_terms:
        raise SourceNotConfigured(SOURCE, ["search_terms (TwitterConfig.search_terms)"])
    client = make_client(config)
    limiter = RateLimiter(rate=config.requests_per_minute / 60.0, burst=5, sleep=sleep)

    def call(what: str, fn: Callable[[], Any]) -> Any:
        def on_retry(attempt: int, exc: Exception, delay: float) -> None:
            log(f"twitter: {what}: {exc}; retry {attempt}/{config.backoff.max_retries} in {delay:.1f}s")

        return retry(fn, config.backoff, limiter=limiter, sleep=sleep, on_retry=on_retry)

    checkpoint = state.load_checkpoint()

    def phase(name: str, actor_id: str, make_input: Callable[[], dict[str, Any]]) -> None:
        ph = checkpoint.setdefault(name, {"offset": 0})
        if ph.get("done"):
            return
        if not ph.get("run_id"):
            run = call(f"start {name} run", lambda: client.actor(actor_id).start(
                run_input=make_input(), timeout=timedelta(seconds=config.timeout)))
            ph.update(run_id=run.id, dataset_id=run.default_dataset_id, status=run.status)
            state.save_checkpoint(checkpoint)  # the paid run is recorded before anything else can fail
            log(f"twitter {day}: started {name} run {run.id}")
        waited = 0.0
        while ph.get("status") not in TERMINAL:
            run = call(f"wait for {name} run", lambda: client.run(ph["run_id"]).wait_for_finish(
                wait_duration=timedelta(seconds=config.wait_secs), timeout=timedelta(seconds=config.timeout + config.wait_secs)))
            if run is None:
                raise RuntimeError(f"apify {name} run {ph['run_id']} does not exist")
            ph["status"] = run.status
            waited += config.wait_secs
            if ph["status"] not in TERMINAL and waited >= config.max_wait_secs:
                raise TimeoutError(f"apify {name} run {ph['run_id']} still {run.status} after {waited:.0f}s; rerun to keep waiting")
        if ph["status"] in ("FAILED", "ABORTED"):
            raise RuntimeError(f"apify {name} run {ph['run_id']} ended {ph['status']}")
        if ph["status"] == "TIMED-OUT":
            log(f"twitter {day}: {name} run {ph['run_id']} timed out; using the items it stored")
        state.save_checkpoint(checkpoint)
        dataset = client.dataset(ph["dataset_id"])
        while True:
            offset = ph["offset"]
            fetched_at = datetime.now(timezone.utc).isoformat()
            try:
                page = call(f"read {name} items", lambda: dataset.list_items(
                    offset=offset, limit=config.page_size, timeout=timedelta(seconds=config.timeout)))
                total, advance = page.total, max(page.count, len(page.items))
                spooled = [{"kind": "item", "phase": name, "line": offset + i + 1, "fetched_at": fetched_at, "item": it}
                           for i, it in enumerate(page.items)]
            except InvalidResponseBodyError as exc:  # a 200 whose JSON is cut short: quarantined, not retried
                headers = exc.response.headers
                total = int(headers.get("x-apify-pagination-total") or offset + config.page_size)
                advance = int(headers.get("x-apify-pagination-count") or config.page_size)
                spooled = [{"kind": "bad", "phase": name, "line": offset + 1, "raw": exc.response.text,
                            "reason": f"unparsable dataset page (items {offset + 1}-{offset + advance})"}]
            state.append(spooled)  # spool first, then advance the checkpoint past it
            ph["offset"] = offset + advance
            state.save_checkpoint(checkpoint)
            if advance == 0 or ph["offset"] >= total:
                break
        ph["done"] = True
        state.save_checkpoint(checkpoint)
        log(f"twitter {day}: {name} dataset read, {ph['offset']} items")

    phase("search", config.actor_id, lambda: search_input(config, day))
    roots = _roots(_normalized(state.read_spool(), "search"), day)
    wanted = [t["id"] for t in sorted(roots.values(), key=lambda t: (-(t["likes"] or 0), t["id"]))
              if t["reply_count"] != 0][: config.max_conversations]
    if wanted or checkpoint.get("replies", {}).get("run_id"):
        phase("replies", config.reply_actor_id or config.actor_id, lambda: replies_input(config, wanted))
    batch = build_batch(state.read_spool(), config, day)
    log(f"twitter {day}: {batch.examples.height} examples, {batch.quarantine.height} quarantined")
    return batch


# -- normalization -------------------------------------------------------------------------------

class Malformed(ValueError):
    pass


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def parse_date(value: Any) -> datetime:
    """UTC datetime from Twitter's "Wed Oct 10 20:19:24 +0000 2018", RFC 2822, ISO 8601 or epoch (s or ms)."""
    if isinstance(value, bool):
        raise Malformed(f"not a date: {value!r}")
    if isinstance(value, (int, float)) or isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value.strip()):
        seconds = float(value)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, timezone.utc)
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"not a date: {value!r}")
    text = value.strip()
    parsed = None
    try:
        parsed = datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                raise Malformed(f"unrecognized date {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _nonempty(value: Any) -> bool:
    return bool(value) and (not isinstance(value, dict) or any(_nonempty(v) for v in value.values()))


URL_IN_TEXT = re.compile(r"https?://\S+", re.IGNORECASE)
LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


def normalize_tweet(raw: Any) -> dict[str, Any]:
    """One actor item → a flat tweet; raises `Malformed` when id, text or creation time is unusable."""
    if not isinstance(raw, dict):
        raise Malformed(f"item is a {type(raw).__name__}, not an object")
    tid = _first(raw, "id_str", "id", "tweet_id", "tweetId", "rest_id")
    text = _first(raw, "full_text", "fullText", "text", "tweet_text", "content")
    created = _first(raw, "created_at", "createdAt", "timestamp", "created", "date")
    missing = [n for n, v in (("id", tid), ("text", text), ("created_at", created)) if v is None]
    if missing:
        raise Malformed(f"missing {', '.join(missing)}")
    if not isinstance(tid, (str, int)) or isinstance(tid, bool) or not str(tid).strip():
        raise Malformed(f"id has type {type(tid).__name__}")
    if not isinstance(text, str):
        raise Malformed(f"text has type {type(text).__name__}")
    user = _first(raw, "user", "author") or {}
    if not isinstance(user, dict):
        user = {"screen_name": user} if isinstance(user, str) else {}
    handle = _first(user, "screen_name", "userName", "username", "handle") or _first(
        raw, "username", "user_name", "screen_name", "author_username", "userName")
    entities = raw.get("entities") if isinstance(raw.get("entities"), dict) else {}
    extended = _first(raw, "extended_entities", "extendedEntities") or {}
    media = [_first(raw, "media", "photos", "videos"), entities.get("media"),
             extended.get("media") if isinstance(extended, dict) else None]
    urls = [entities.get("urls"), raw.get("urls")]
    tid = str(tid)
    in_reply = _first(raw, "in_reply_to_status_id_str", "in_reply_to_status_id", "inReplyToId",
                      "inReplyToStatusId", "in_reply_to_tweet_id", "replying_to_tweet")
    return {
        "id": tid,
        "text": html.unescape(text),  # the API HTML-escapes &, < and >
        "created_at": parse_date(created).isoformat(),
        "likes": _int(_first(raw, "favorite_count", "likeCount", "likes", "like_count", "favoriteCount", "favorites")),
        "reply_count": _int(_first(raw, "reply_count", "replyCount", "replies")),
        "retweets": _int(_first(raw, "retweet_count", "retweetCount", "retweets")),
        "conversation_id": str(_first(raw, "conversation_id_str", "conversation_id", "conversationId") or tid),
        "in_reply_to_id": str(in_reply) if in_reply is not None else None,
        "author": handle,
        "author_id": str(_first(user, "id_str", "id", "rest_id") or _first(raw, "user_id", "author_id") or "") or None,
        "author_followers": _int(_first(user, "followers_count", "followers", "followersCount")
                                 if user else _first(raw, "followers_count", "user_followers_count", "followers")),
        "has_media": any(_nonempty(m) for m in media),
        "has_urls": any(_nonempty(u) for u in urls) or bool(URL_IN_TEXT.search(text)),
        "is_retweet": bool(_first(raw, "isRetweet", "is_retweet")) or raw.get("retweeted_status") is not None,
        "url": _first(raw, "url", "twitterUrl", "tweet_url")
        or (f"https://x.com/{handle}/status/{tid}" if handle else f"https://x.com/i/status/{tid}"),
        "lang": _first(raw, "lang", "language"),
    }


def _normalized(spool: Iterable[dict[str, Any]], phase: str | None = None,
                bad: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Tweets by id from spooled items (first occurrence wins); unreadable ones go to `bad`."""
    tweets: dict[str, dict[str, Any]] = {}
    for rec in spool:
        if phase is not None and rec.get("phase") != phase:
            continue
        if rec.get("kind") == "bad":
            if bad is not None:
                bad.append(rec)
            continue
        item = rec.get("item")
        if isinstance(item, dict) and item.get("noResults"):
            continue  # some actors emit {"noResults": true} for an empty search: not a tweet
        try:
            t = normalize_tweet(item)
        except Malformed as exc:
            if bad is not None:
                bad.append({"phase": rec.get("phase"), "line": rec.get("line", 0), "reason": f"unreadable tweet: {exc}",
                            "raw": item})
            continue
        tweets.setdefault(t["id"], {**t, "phase": rec.get("phase"), "fetched_at": rec.get("fetched_at")})
    return tweets


def _roots(tweets: dict[str, dict[str, Any]], day: date) -> dict[str, dict[str, Any]]:
    """Tweets of the partition's day that start a conversation (not replies, not retweets)."""
    return {i: t for i, t in tweets.items() if t["in_reply_to_id"] is None and not t["is_retweet"]
            and t["conversation_id"] == i and datetime.fromisoformat(t["created_at"]).date() == day}


def _bound(name: str, value: float | None, bounds: Bounds) -> dict[str, Any]:
    lo, hi = bounds
    if value is None:
        return {}
    if lo is not None and value < lo:
        return {"drop_reason": f"{name}_below_min", "drop_score": float(value), "drop_threshold": float(lo)}
    if hi is not None and value > hi:
        return {"drop_reason": f"{name}_above_max", "drop_score": float(value), "drop_threshold": float(hi)}
    return {}


def collection_drop(config: TwitterConfig, tweet: dict[str, Any], reply: dict[str, Any], reply_text: str) -> dict[str, Any]:
    """The first collection rule the pair breaks, as drop_reason/drop_score/drop_threshold (else {})."""
    if config.no_media and (tweet["has_media"] or reply["has_media"]):
        return {"drop_reason": "has_media"}
    if config.no_urls and (tweet["has_urls"] or reply["has_urls"]):
        return {"drop_reason": "has_url"}
    delay = (datetime.fromisoformat(reply["created_at"]) - datetime.fromisoformat(tweet["created_at"])).total_seconds()
    for name, value, bounds in (
        ("tweet_chars", len(tweet["text"]), (config.min_chars, config.max_chars)),
        ("reply_chars", len(reply_text), (config.min_chars, config.max_chars)),
        ("tweet_likes", tweet["likes"], config.tweet_likes),
        ("reply_likes", reply["likes"], config.reply_likes),
        ("author_followers", reply["author_followers"], config.author_followers),
        ("reply_delay", delay, config.reply_delay),
    ):
        found = _bound(name, value, bounds)
        if found:
            return found
    return {}


def build_batch(spool: Iterable[dict[str, Any]], config: TwitterConfig, day: date) -> SourceBatch:
    """(tweet → direct reply) examples and quarantine rows from the spool; duplicates (a page spooled twice
    after a crash, a reply in both datasets) count once, so a resumed fetch yields the same rows."""
    bad: list[dict[str, Any]] = []
    tweets = _normalized(list(spool), None, bad)
    roots = _roots(tweets, day)
    replies = [t for t in tweets.values() if t["id"] not in roots and t["conversation_id"] in roots
               and t["in_reply_to_id"] in (None, t["conversation_id"])]  # direct replies; None: actor omits it
    # max_replies_per_author: an author's most liked replies first, the rest dropped with their rank
    rank: dict[str, int] = {}
    per_author: dict[str, int] = {}
    for r in sorted(replies, key=lambda r: (-(r["likes"] or 0), r["id"])):
        key = r["author"] or f"?{r['id']}"  # an unknown author is nobody's second reply
        per_author[key] = rank[r["id"]] = per_author.get(key, 0) + 1
    rows = []
    for r in sorted(replies, key=lambda r: (r["conversation_id"], r["id"])):
        tweet = roots[r["conversation_id"]]
        reply_text = LEADING_MENTIONS.sub("", r["text"])
        drop = collection_drop(config, tweet, r, reply_text)
        if not drop and rank[r["id"]] > config.max_replies_per_author:
            drop = {"drop_reason": "replies_per_author_above_max", "drop_score": float(rank[r["id"]]),
                    "drop_threshold": float(config.max_replies_per_author)}
        meta = {"thread_id": r["conversation_id"], "conversation_id": r["conversation_id"], "tweet_id": tweet["id"],
                "reply_id": r["id"], "parent_id": tweet["id"], "author": r["author"], "author_id": r["author_id"],
                "author_followers": r["author_followers"], "tweet_author": tweet["author"],
                "tweet_author_followers": tweet["author_followers"], "likes": r["likes"], "tweet_likes": tweet["likes"],
                "retweets": r["retweets"], "tweet_reply_count": tweet["reply_count"], "created_at": r["created_at"],
                "tweet_created_at": tweet["created_at"], "url": r["url"], "tweet_url": tweet["url"], "lang": r["lang"],
                "has_media": r["has_media"] or tweet["has_media"], "has_urls": r["has_urls"] or tweet["has_urls"], **drop}
        collected = datetime.fromisoformat(r["fetched_at"]) if r.get("fetched_at") else None
        rows.append(make_example(source=SOURCE, source_id=f"{tweet['id']}/{r['id']}", day=day,
                                 messages=[{"role": "user", "content": tweet["text"]},
                                           {"role": "assistant", "content": reply_text}], metadata=meta,
                                 collected_at=collected.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
                                 if collected else None))
    quarantine, seen = [], set()
    for b in bad:
        file = f"apify:{b.get('phase')}-dataset"
        key = (file, b.get("line", 0), b["reason"])
        if key not in seen:
            seen.add(key)
            raw = b["raw"] if isinstance(b["raw"], str) else json.dumps(b["raw"], ensure_ascii=False, default=str)
            quarantine.append(quarantine_row(source=SOURCE, day=day, file=file, line=int(b.get("line", 0)),
                                             reason=b["reason"], raw=raw))
    return SourceBatch(examples=examples_frame(rows), quarantine=quarantine_frame(quarantine))


__all__ = ["TWITTER_ENV", "APIFY_REQUESTS_PER_MINUTE", "TwitterConfig", "fetch_twitter", "build_batch",
           "normalize_tweet", "parse_date", "collection_drop", "search_input", "replies_input", "make_client"]
