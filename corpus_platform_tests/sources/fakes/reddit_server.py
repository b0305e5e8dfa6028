"""A fake Reddit OAuth API, close enough to the wire format that praw/prawcore run unmodified against it.

Reproduces: POST /api/v1/access_token (HTTP Basic client credentials; grant_type client_credentials or
password; JSON token or Reddit's 200 `{"error": "invalid_grant"}`), bearer-token checks, GET
/r/{sub}/new (a `Listing` of `t3` children, newest first, `limit` capped at 100, `after` cursor) and
GET /comments/{id} (the `[post listing, comment listing]` pair, nested `t1` replies, `more` stubs
where `limit`/`depth` cut the tree, `sort=top|new`), and the x-ratelimit-used/-remaining/-reset
headers of a 10-minute window. prawcore sleeps (wall clock) whenever those headers say the client is
ahead of an even spread of `quota` requests over the window, so the fake's default quota is huge; pass
`quota=1000` (100 queries/min, today's free tier) to watch prawcore's own pacing.
"""

from __future__ import annotations

import base64
import copy
import secrets
import time
import zlib
from typing import Any
from urllib.parse import parse_qs

from corpus_platform_tests.sources.fakes import FakeServer, Response

WINDOW = 600  # seconds; Reddit's documented rate-limit window


def post(id: str, subreddit: str, *, title: str, created_utc: float, selftext: str = "", author: str = "alice",
         score: int = 10, over_18: bool = False, comments: list[dict] | None = None, drop: tuple[str, ...] = (),
         **extra: Any) -> dict:
    """A t3 `data` object as Reddit returns it (plus `_comments`, the fake's own tree)."""
    slug = "_".join(title.lower().split()[:5]) or "post"
    d = {
        "id": id, "name": f"t3_{id}", "title": title, "selftext": selftext, "author": author,
        "author_fullname": f"t2_{zlib.crc32(str(author).encode()) % 10**6:x}", "subreddit": subreddit,
        "subreddit_name_prefixed": f"r/{subreddit}", "subreddit_id": f"t5_{zlib.crc32(subreddit.encode()) % 10**6:x}",
        "score": score, "ups": score, "downs": 0, "upvote_ratio": 0.97, "num_comments": 0,
        "created_utc": float(created_utc), "created": float(created_utc), "over_18": over_18,
        "permalink": f"/r/{subreddit}/comments/{id}/{slug}/",
        "url": f"https://www.reddit.com/r/{subreddit}/comments/{id}/{slug}/", "is_self": True,
        "domain": f"self.{subreddit}", "stickied": False, "locked": False, "distinguished": None,
        "link_flair_text": None, "thumbnail": "self", "_comments": comments or [],
    }
    d.update(extra)
    for k in drop:
        d.pop(k, None)
    return d


def comment(id: str, body: str, *, author: str = "bob", score: int = 5, created_utc: float = 0.0,
            replies: list[dict] | None = None, drop: tuple[str, ...] = (), **extra: Any) -> dict:
    """A t1 `data` object; `parent_id`, `link_id`, `depth`, `permalink` are filled in when served."""
    d = {
        "id": id, "name": f"t1_{id}", "body": body, "author": author,
        "author_fullname": f"t2_{zlib.crc32(str(author).encode()) % 10**6:x}", "score": score, "ups": score,
        "created_utc": float(created_utc), "created": float(created_utc), "stickied": False,
        "distinguished": None, "controversiality": 0, "score_hidden": False, "collapsed": False,
        "_replies": replies or [],
    }
    d.update(extra)
    for k in drop:
        d.pop(k, None)
    return d


def _count(nodes: list[dict]) -> int:
    return sum(1 + _count(n.get("_replies", [])) for n in nodes)


def listing(children: list[dict], after: str | None = None) -> dict:
    return {"kind": "Listing", "data": {"after": after, "before": None, "dist": len(children), "modhash": "",
                                        "geo_filter": "", "children": children}}


class FakeReddit(FakeServer):
    def __init__(self, *, client_id: str, client_secret: str, username: str | None = None,
                 password: str | None = None, quota: int = 1_000_000) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self.posts: dict[str, list[dict]] = {}
        self.tokens: set[str] = set()
        self.quota = quota
        self.grants: list[str] = []
        self._window_start = time.time()
        self._used = 0

    def add(self, *posts: dict) -> None:
        for p in posts:
            p["num_comments"] = _count(p["_comments"])
            self.posts.setdefault(p.get("subreddit", "unknown"), []).append(p)

    # -- wire format -----------------------------------------------------------------------------
    def _ratelimit(self) -> dict[str, str]:
        now = time.time()
        if now - self._window_start >= WINDOW:
            self._window_start, self._used = now, 0
        self._used += 1
        return {"x-ratelimit-used": str(self._used), "x-ratelimit-remaining": f"{max(self.quota - self._used, 0):.1f}",
                "x-ratelimit-reset": str(int(WINDOW - (now - self._window_start)))}

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> Response:
        if path == "/api/v1/access_token" and method == "POST":
            return self._token(headers, body)
        auth = headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or auth.split(" ", 1)[1] not in self.tokens:
            return Response(401, {"message": "Unauthorized", "error": 401},
                            {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        rl = self._ratelimit()
        q = {k: v[-1] for k, v in query.items()}
        parts = [p for p in path.split("/") if p]
        if method == "GET" and len(parts) == 3 and parts[0] == "r" and parts[2] == "new":
            return self._new(parts[1], q, rl)
        if method == "GET" and len(parts) >= 2 and parts[0] == "comments":
            return self._comments(parts[1], q, rl)
        return Response(404, {"message": "Not Found", "error": 404}, rl)

    def _token(self, headers: Any, body: bytes) -> Response:
        basic = headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if basic != f"Basic {expected}":
            return Response(401, {"message": "Unauthorized", "error": 401})
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "password" and (form.get("username") != self.username or form.get("password") != self.password):
            return Response(200, {"error": "invalid_grant"})
        if grant not in ("client_credentials", "password"):
            return Response(200, {"error": "unsupported_grant_type"})
        token = secrets.token_hex(8)
        self.tokens.add(token)
        return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _new(self, sub: str, q: dict[str, str], rl: dict[str, str]) -> Response:
        if sub not in self.posts:
            return Response(404, {"message": "Not Found", "error": 404}, rl)
        ordered = sorted(self.posts[sub], key=lambda p: (-p.get("created_utc", 0), p.get("id", "")))
        limit = max(1, min(int(q.get("limit", 25)), 100))
        start = 0
        if q.get("after"):
            names = [p.get("name") for p in ordered]
            start = names.index(q["after"]) + 1 if q["after"] in names else len(ordered)
        page = ordered[start:start + limit]
        after = page[-1].get("name") if start + limit < len(ordered) and page else None
        children = [{"kind": "t3", "data": {k: v for k, v in p.items() if not k.startswith("_")}} for p in page]
        return Response(200, listing(children, after), rl)

    def _comments(self, id: str, q: dict[str, str], rl: dict[str, str]) -> Response:
        found = next((p for ps in self.posts.values() for p in ps if p.get("id") == id), None)
        if found is None:
            return Response(404, {"message": "Not Found", "error": 404}, rl)
        limit = int(q.get("limit", 200))
        depth = int(q.get("depth", 10))
        sort = q.get("sort", "confidence")
        p = {k: v for k, v in found.items() if not k.startswith("_")}
        tree = self._tree(found["_comments"], found, f"t3_{id}", 0, depth, sort, limit)
        return Response(200, [listing([{"kind": "t3", "data": p}]), listing(tree)], rl)

    def _tree(self, nodes: list[dict], post: dict, parent: str, level: int, depth: int, sort: str,
              limit: int | None) -> list[dict]:
        key = (lambda n: (-n.get("score", 0), n.get("id", ""))) if sort == "top" else (
            lambda n: (-n.get("created_utc", 0), n.get("id", "")))
        ordered = sorted(nodes, key=key)
        shown, hidden = (ordered[:limit], ordered[limit:]) if limit is not None else (ordered, [])
        out = []
        for n in shown:
            d = {k: copy.deepcopy(v) for k, v in n.items() if not k.startswith("_")}
            d.update(parent_id=parent, link_id=post["name"], depth=level, subreddit=post.get("subreddit"),
                     is_submitter=n.get("author") == post.get("author"),
                     permalink=f"{post.get('permalink', '/')}{n.get('id')}/")
            kids = n.get("_replies", [])
            if kids and level + 1 < depth:
                d["replies"] = listing(self._tree(kids, post, d.get("name", ""), level + 1, depth, sort, None))
            elif kids:  # Reddit's "continue this thread" stub
                d["replies"] = listing([{"kind": "more", "data": {"count": 0, "name": "t1__", "id": "_",
                                                                  "parent_id": d.get("name"), "depth": level + 1,
                                                                  "children": []}}])
            else:
                d["replies"] = ""
            out.append({"kind": "t1", "data": d})
        if hidden:
            out.append({"kind": "more", "data": {"count": _count(hidden), "name": f"t1_{hidden[0].get('id')}",
                                                 "id": hidden[0].get("id"), "parent_id": parent, "depth": level,
                                                 "children": [h.get("id") for h in hidden]}})
        return out
