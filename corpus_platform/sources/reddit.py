"""Reddit connector (praw): one UTC day of posts from chosen subreddits becomes (post → top comment) and
(comment → top reply) examples.

Why this shape:
- Posts are found by paging `/r/{sub}/new` (what `subreddit.new()` iterates) newest first and stopping at
  the first post older than the partition's day. Posts newer than the day are paged through and skipped,
  so yesterday's partition costs the pages of today's posts too, and Reddit listings reach back only
  ~1000 posts: run each partition soon after its day (the daily schedule does).
- Pages are requested one at a time with `Reddit.request` (praw's raw-JSON call) instead of praw's lazy
  generators: each request is then one unit for `policy.retry`, and its raw JSON can be spooled. After a
  crash the checkpoint (listing cursor + queue of posts still to fetch) and the spool let a rerun continue
  without asking Reddit for anything twice; examples are always built from the spool.
- praw's own `oauth_url`/`reddit_url` settings take any base URL: prawcore 4 builds API URLs with
  `urljoin(oauth_url, path)` and the token URL as `reddit_url + "/api/v1/access_token"` and never forces
  https, so tests point both at http://127.0.0.1:PORT without rewriting anything.
- HTTP failures are classified in a `requestor_class` (praw's documented extension point): 429/5xx,
  timeouts and dropped connections become `Retryable` before prawcore's own retry loop sees them, so the
  one shared backoff policy (bounded, Retry-After aware) governs every request.
- Items that must not be trained on (NSFW, removed, deleted, bots, spam) stay examples with
  `metadata.drop_reason`, so the filter stage records them; malformed items become quarantine rows.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import praw
import prawcore
import requests
from prawcore.requestor import Requestor

from corpus_platform.schema import examples_frame, make_example, quarantine_frame, quarantine_row
from corpus_platform.sources.base import SourceBatch, SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RateLimiter, Retryable, retry
from corpus_platform.sources.state import PartitionState

SOURCE = "reddit"
REDDIT_ENV = ["REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT"]
# Reddit's API rules: "Clients connecting via OAuth2 may make up to 60 requests per minute"
# (github.com/reddit-archive/reddit/wiki/API). The 2023 Data API terms allow 100 queries/min per client id
# averaged over 10 minutes; 60 stays under both. prawcore additionally paces on the x-ratelimit-* headers.
REDDIT_REQUESTS_PER_MINUTE = 60.0
DEFAULT_BOT_AUTHORS = ("AutoModerator",)
DEFAULT_SPAM_KEYWORDS = ("onlyfans", "promo code", "free giveaway", "dm me for", "crypto airdrop", "check out my channel")
DELETED, REMOVED = "[deleted]", "[removed]"
# removed_by_category values meaning the author deleted it (others: moderator, automod_filtered, reddit, ...)
_AUTHOR_DELETED = {"deleted", "author"}


@dataclass(frozen=True)
class SubredditSpec:
    name: str
    priority: int = 0  # lower runs first (ties by name): a budget or a crash hits low-priority subreddits last
    limit: int = 100  # at most this many posts from the day


@dataclass(frozen=True)
class RedditConfig:
    client_id: str
    client_secret: str = field(repr=False)
    user_agent: str
    subreddits: tuple[SubredditSpec, ...] = ()
    username: str | None = None  # with password: the script-app password grant, else client credentials
    password: str | None = field(default=None, repr=False)
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"
    requests_per_minute: float = REDDIT_REQUESTS_PER_MINUTE
    timeout: float = 16.0  # seconds per HTTP request (prawcore's default)
    page_size: int = 100  # /new listing page; Reddit caps it at 100
    comment_limit: int = 200  # top-level comments per thread request
    comment_depth: int = 4  # reply levels per thread request
    bot_authors: tuple[str, ...] = DEFAULT_BOT_AUTHORS
    spam_keywords: tuple[str, ...] = DEFAULT_SPAM_KEYWORDS
    backoff: BackoffPolicy = BackoffPolicy()



def _path(url: str) -> str:
    return urlsplit(url).path  # never the query or credentials: messages end up in logs


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
    if headers.get("x-ratelimit-remaining") and float(headers["x-ratelimit-remaining"]) <= 0:
        return float(headers.get("x-ratelimit-reset") or 0) or None
    return None


class PoliteRequestor(Requestor):
    """prawcore requestor whose transient failures raise `Retryable` (so `policy.retry` owns retries) and
    whose timeout is the connector's (praw's own `timeout` setting is an int, too coarse for tests)."""

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        method, url = (list(args) + [kwargs.get("method"), kwargs.get("url")])[:2]
        where = f"{str(method).upper()} {_path(str(url))}"
        try:
            response = self._http.request(*args, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise Retryable(f"timeout after {self.timeout}s: {where}") from exc
        except requests.ConnectionError as exc:
            raise Retryable(f"connection failed: {where}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise Retryable(f"HTTP {response.status_code}: {where}", _retry_after(response.headers))
        return response


def make_reddit(config: RedditConfig) -> praw.Reddit:
    return praw.Reddit(
        client_id=config.client_id, client_secret=config.client_secret, user_agent=config.user_agent,
        username=config.username, password=config.password,
        oauth_url=config.oauth_url.rstrip("/"), reddit_url=config.reddit_url.rstrip("/"),
        requestor_class=PoliteRequestor, requestor_kwargs={"timeout": config.timeout},
        check_for_updates=False, check_for_async=False,
    )


def _day_bounds(day: date) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return start, start + 86400.0


def _bad(file: str, line: int, reason: str, raw: Any) -> dict[str, Any]:
    return {"kind": "bad", "file": file, "line": line, "reason": reason, "raw": raw}


def _unparsable(file: str, exc: prawcore.exceptions.ResponseException) -> dict[str, Any]:
    return _bad(file, 0, f"unparsable JSON body (HTTP {exc.response.status_code})", exc.response.text)


def fetch_reddit(config: RedditConfig, day: date, state: PartitionState, *, log: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep) -> SourceBatch:
    """Fetch `day` (UTC) from every subreddit in priority order, resuming from `state`; build from the spool."""
    if not config.subreddits:
        raise SourceNotConfigured(SOURCE, ["subreddits (RedditConfig.subreddits)"])
    reddit = make_reddit(config)
    limiter = RateLimiter(rate=config.requests_per_minute / 60.0, burst=1, sleep=sleep)

    def get(path: str, params: dict[str, Any]) -> Any:
        def on_retry(attempt: int, exc: Exception, delay: float) -> None:
            log(f"reddit: {exc}; retry {attempt}/{config.backoff.max_retries} in {delay:.1f}s")

        return retry(lambda: reddit.request(method="GET", path=path, params=params), config.backoff,
                     limiter=limiter, sleep=sleep, on_retry=on_retry)

    start, end = _day_bounds(day)
    checkpoint = state.load_checkpoint()
    subs = checkpoint.setdefault("subreddits", {})
    for spec in sorted(config.subreddits, key=lambda s: (s.priority, s.name)):
        cp = subs.setdefault(spec.name, {"after": None, "queue": [], "taken": 0, "exhausted": False, "pages": 0})
        while True:
            if cp["queue"]:
                post_id = cp["queue"][0]
                path = f"/comments/{post_id}"
                try:
                    item = {"kind": "thread", "subreddit": spec.name, "post_id": post_id,
                            "fetched_at": datetime.now(timezone.utc).isoformat(),
                            "response": get(path, {"sort": "top", "limit": config.comment_limit,
                                                   "depth": config.comment_depth})}
                except prawcore.exceptions.BadJSON as exc:
                    item = _unparsable(path, exc)
                except (prawcore.exceptions.NotFound, prawcore.exceptions.Forbidden) as exc:
                    item = _bad(path, 0, f"thread unavailable: {exc}", "")
                state.append([item])  # spool first, then advance the checkpoint past it
                cp["queue"].pop(0)
                state.save_checkpoint(checkpoint)
                continue
            if cp["exhausted"] or cp["taken"] >= spec.limit:
                break
            cp["pages"] += 1
            path = f"/r/{spec.name}/new"
            bad: list[dict[str, Any]] = []
            try:
                page = get(path, {"limit": config.page_size, "after": cp["after"]} if cp["after"]
                           else {"limit": config.page_size})
                children, after = page["data"]["children"], page["data"].get("after")
                if not isinstance(children, list):
                    raise TypeError("data.children is not a list")
            except prawcore.exceptions.BadJSON as exc:
                bad, children, after = [_unparsable(path, exc)], [], None
            except (prawcore.exceptions.NotFound, prawcore.exceptions.Forbidden,
                    prawcore.exceptions.Redirect) as exc:
                bad, children, after = [_bad(path, 0, f"subreddit unavailable: {exc}", "")], [], None
            except (KeyError, TypeError) as exc:
                bad, children, after = [_bad(path, 0, f"not a Listing: {exc}", page)], [], None
            for i, child in enumerate(children, 1):
                data = child.get("data") if isinstance(child, dict) else None
                created = data.get("created_utc") if isinstance(data, dict) else None
                if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(created, (int, float)):
                    bad.append(_bad(f"{path}?after={cp['after'] or ''}", i,
                                    "post lacks a string id or a numeric created_utc", child))
                    continue
                if created >= end:
                    continue  # newer than the day: keep paging back
                if created < start or cp["taken"] >= spec.limit:
                    after = None  # older than the day (or limit reached): this subreddit is done
                    break
                cp["queue"].append(data["id"])
                cp["taken"] += 1
            if after is not None and after == cp["after"]:
                after = None  # a cursor that does not advance would page forever
            log(f"reddit r/{spec.name}: listing page {cp['pages']}, {cp['taken']} posts from {day} so far")
            state.append(bad)
            cp["after"], cp["exhausted"] = after, after is None
            state.save_checkpoint(checkpoint)
    batch = build_batch(state.read_spool(), config, day)
    log(f"reddit {day}: {batch.examples.height} examples, {batch.quarantine.height} quarantined")
    return batch


# -- building examples from the spool ------------------------------------------------------------

class Malformed(ValueError):
    pass


def _text(d: dict[str, Any], key: str, kind: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise Malformed(f"{kind} {d.get('name') or d.get('id')!r}: field {key!r} is "
                        f"{'missing' if value is None else type(value).__name__}, expected a string")
    return value


def _check(d: Any, kind: str, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise Malformed(f"{kind} is not an object")
    for key, typ in required.items():
        if key not in d:
            raise Malformed(f"{kind} {d.get('name') or d.get('id')!r}: missing field {key!r}")
        if not isinstance(d[key], typ) or isinstance(d[key], bool) and typ in (int, (int, float)):
            raise Malformed(f"{kind} {d.get('name') or d.get('id')!r}: field {key!r} has type {type(d[key]).__name__}")
    return d


_POST = {"id": str, "title": str, "created_utc": (int, float)}
_COMMENT = {"id": str, "body": str, "score": int, "created_utc": (int, float)}


def _fullname(d: dict[str, Any], prefix: str) -> str:
    return d.get("name") if isinstance(d.get("name"), str) else f"{prefix}_{d['id']}"


def _state(d: dict[str, Any], text: str) -> tuple[bool, bool]:
    """(removed, deleted): `removed_by_category` is absent on comments and on most live posts."""
    category = d.get("removed_by_category")
    author = d.get("author")
    deleted = text.strip() == DELETED or author in (None, DELETED) or category in _AUTHOR_DELETED
    removed = text.strip() == REMOVED or author == REMOVED or (category is not None and category not in _AUTHOR_DELETED)
    return removed, deleted


def _drop(config: RedditConfig, post: dict, prompt: tuple[dict, str], response: tuple[dict, str]) -> dict[str, Any]:
    if post.get("over_18") is True:
        return {"drop_reason": "nsfw"}
    states = [_state(d, t) for d, t in (prompt, response)]
    if any(r for r, _ in states):
        return {"drop_reason": "removed"}
    if any(d for _, d in states):
        return {"drop_reason": "deleted"}
    bots = {b.lower() for b in config.bot_authors}
    for d, _ in (prompt, response):
        name = str(d.get("author") or "").lower()
        if name in bots or name.endswith("bot"):
            return {"drop_reason": "bot"}
    text = f"{prompt[1]}\n{response[1]}".lower()
    hits = sum(text.count(k.lower()) for k in config.spam_keywords)
    if hits:
        return {"drop_reason": "spam", "drop_score": float(hits), "drop_threshold": 0.0}
    return {}


def _comments(children: Any, file: str, bad: list[dict[str, Any]], seq: list[int]) -> list[tuple[dict, list]]:
    """Valid t1 comments of a listing's children as (data, replies); `more` stubs are not expanded (each
    costs a /api/morechildren request, and sort=top already returns the best-scored comments first)."""
    out = []
    for child in children if isinstance(children, list) else []:
        if not isinstance(child, dict) or child.get("kind") == "more":
            continue
        seq[0] += 1  # the comment's position in the thread's walk: the quarantine row's `line`
        data = child.get("data")
        replies = data.get("replies") if isinstance(data, dict) else None
        reply_children = replies.get("data", {}).get("children", []) if isinstance(replies, dict) else []
        try:
            _check(data, "comment", _COMMENT)
        except Malformed as exc:
            bad.append(_bad(file, seq[0], str(exc), child))
            out.extend(_comments(reply_children, file, bad, seq))  # its replies can still pair among themselves
            continue
        out.append((data, _comments(reply_children, file, bad, seq)))
    return out


def _top(comments: list[tuple[dict, list]]) -> tuple[dict, list] | None:
    ranked = [c for c in comments if c[0].get("stickied") is not True]  # pinned ≠ top-scoring
    return min(ranked, key=lambda c: (-c[0]["score"], c[0]["created_utc"], c[0]["id"])) if ranked else None


def _thread_examples(item: dict[str, Any], config: RedditConfig, day: date,
                     bad: list[dict[str, Any]]) -> list[dict[str, Any]]:
    file = f"/comments/{item.get('post_id')}"
    resp = item.get("response")
    try:
        if not (isinstance(resp, list) and len(resp) == 2):
            raise Malformed("expected [post listing, comment listing]")
        post = _check(resp[0]["data"]["children"][0]["data"], "post", _POST)
        top_level = resp[1]["data"]["children"]
    except (Malformed, KeyError, IndexError, TypeError) as exc:
        bad.append(_bad(file, 0, f"unreadable thread: {exc}", resp))
        return []
    collected_at = datetime.fromisoformat(item["fetched_at"]).astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    post_name = _fullname(post, "t3")
    selftext = post.get("selftext") if isinstance(post.get("selftext"), str) else ""
    post_text = post["title"] + (f"\n\n{selftext}" if selftext.strip() else "")
    common = {"subreddit": post.get("subreddit") or item.get("subreddit"), "thread_id": post_name,
              "link_id": post_name, "num_comments": post.get("num_comments"), "url": post.get("url"),
              "over_18": bool(post.get("over_18")), "post_score": post.get("score"),
              "removed_by_category": post.get("removed_by_category")}
    rows: list[dict[str, Any]] = []

    def add(kind: str, prompt: dict, prompt_text: str, prompt_name: str, response: dict) -> None:
        removed, deleted = _state(response, response["body"])
        p_removed, p_deleted = _state(prompt, prompt_text)
        reply_name = _fullname(response, "t1")
        meta = {**common, "kind": kind, "parent_id": response.get("parent_id", prompt_name), "prompt_id": prompt_name,
                "response_id": reply_name, "score": response["score"], "prompt_score": prompt.get("score"),
                "author": response.get("author"), "prompt_author": prompt.get("author"),
                "created_utc": response["created_utc"],
                "created_at": datetime.fromtimestamp(response["created_utc"], timezone.utc).isoformat(),
                "prompt_created_utc": prompt.get("created_utc"), "permalink": response.get("permalink"),
                "removed": removed or p_removed, "deleted": deleted or p_deleted,
                **_drop(config, post, (prompt, prompt_text), (response, response["body"]))}
        rows.append(make_example(source=SOURCE, source_id=f"{prompt_name}/{reply_name}", day=day,
                                 messages=[{"role": "user", "content": prompt_text},
                                           {"role": "assistant", "content": response["body"]}],
                                 metadata=meta, collected_at=collected_at))

    comments = _comments(top_level, file, bad, [0])
    best = _top(comments)
    if best is not None:
        add("post_comment", post, post_text, post_name, best[0])
    stack = list(comments)
    while stack:
        data, replies = stack.pop(0)
        reply = _top(replies)
        if reply is not None:
            add("comment_reply", data, data["body"], _fullname(data, "t1"), reply[0])
        stack.extend(replies)
    return rows


def build_batch(spool: Iterable[dict[str, Any]], config: RedditConfig, day: date) -> SourceBatch:
    """Examples and quarantine rows from spooled items; a thread spooled twice (crash between spool and
    checkpoint) counts once, so a resumed fetch yields exactly the rows of an uninterrupted one."""
    seen_threads: set[str] = set()
    seen_bad: set[tuple[str, int, str]] = set()
    rows: dict[str, dict[str, Any]] = {}
    bad: list[dict[str, Any]] = []
    for item in spool:
        if item.get("kind") == "thread" and item.get("post_id") not in seen_threads:
            seen_threads.add(item.get("post_id"))
            for row in _thread_examples(item, config, day, bad):
                rows.setdefault(row["source_id"], row)
        elif item.get("kind") == "bad":
            bad.append(item)
    quarantine = []
    for b in bad:
        key = (b["file"], b["line"], b["reason"])
        if key not in seen_bad:
            seen_bad.add(key)
            raw = b["raw"] if isinstance(b["raw"], str) else _json(b["raw"])
            quarantine.append(quarantine_row(source=SOURCE, day=day, file=b["file"], line=b["line"],
                                             reason=b["reason"], raw=raw))
    return SourceBatch(examples=examples_frame(list(rows.values())), quarantine=quarantine_frame(quarantine))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


__all__ = ["REDDIT_ENV", "REDDIT_REQUESTS_PER_MINUTE", "RedditConfig", "SubredditSpec", "fetch_reddit", "build_batch",
           "PoliteRequestor", "make_reddit"]
