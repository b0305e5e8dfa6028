"""The capture API: apps post interactions and feedback over HTTP into the conversations landing folder.

Why a thin API over the logger: apps in other languages or on other hosts cannot import the Python
logger, but their data must land in exactly the same files, through the same locked append, so the
landing sensor and the conversations source need no second path. Everything it writes is append-only;
deletion is queued for the platform's deletion job, never done in place.
"""

# No `from __future__ import annotations`: FastAPI must see the local `Caller` dependency type, not a string.

import hashlib
import json
from datetime import date, datetime, timezone
from typing import Annotated, Any, Callable, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from corpus_platform.api.config import ApiConfig, ApiKey
from corpus_platform.api.data import deletion_requests, queue_deletion, readiness, user_interactions
from corpus_platform.api.models import ID_PATTERN, DeletionOut, FeedbackIn, FeedbackOut, InteractionIn, InteractionOut
from corpus_platform.api.security import BodyLimit, RateLimiter, find_key, retry_after_header
from corpus_platform.api.state import State
from corpus_platform.capture.logger import ConversationLogger, day_of_id, uuid7_hex
from corpus_platform.settings import SOURCES

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="retries with the same key and body are stored once and get the first response")]
UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
AppScope = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                       description="admin keys: limit to one app; app keys: their own app only")]
Source = Literal[SOURCES]  # type: ignore[valid-type]
_errors = lambda exc: [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}  # noqa: E731
                       for e in exc.errors()]


class JSON(JSONResponse):
    """ASCII-escaped JSON: a 422 may quote client input and a landing file may hold text from another producer;
    a lone surrogate in either must not turn a response into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(config: ApiConfig | None = None) -> FastAPI:
    cfg = config or ApiConfig.from_env()
    state = State(cfg.state_db)
    logger = ConversationLogger(cfg.landing, redact=cfg.redact, gzip_rotate=cfg.gzip_rotate, fsync=cfg.fsync)
    limiter = RateLimiter(cfg.rate, cfg.key_rates)
    bearer, header_key = HTTPBearer(auto_error=False), APIKeyHeader(name="X-API-Key", auto_error=False)

    app = FastAPI(title="corpus_platform capture API", version="1", default_response_class=JSON,
                  description="Capture interactions and feedback into the conversations landing folder.")
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSON({"detail": _errors(exc)}, status_code=422)

    def caller(cred: HTTPAuthorizationCredentials | None = Security(bearer),
               x_api_key: str | None = Security(header_key)) -> ApiKey:
        key = find_key(cfg.keys, cred.credentials if cred else x_api_key)
        if key is None:
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
        if (wait := limiter.take(key.key_id)) is not None:
            raise HTTPException(429, "rate limit exceeded for this key", headers={"Retry-After": retry_after_header(wait)})
        return key

    Caller = Annotated[ApiKey, Depends(caller)]

    def app_scope(key: ApiKey, requested: str | None, *, write: bool) -> str | None:
        """The app a request acts for: an app key only ever its own; an admin key the one it names (or all)."""
        if key.is_admin:
            return requested or (key.app_id if write else None)
        if requested is not None and requested != key.app_id:
            raise HTTPException(403, "an app key acts only for its own app")
        return key.app_id

    def idempotent(key: ApiKey, idem: str | None, fingerprint: dict[str, Any], new_ref: str,
                   write: Callable[[str], tuple[int, dict[str, Any], tuple | None, tuple | None]]) -> JSONResponse:
        """Run `write(ref)` at most once per (key, Idempotency-Key); replay its response on a retry."""
        if idem is None:
            status, body, interaction, feedback = write(new_ref)
            state.finish(key.key_id, None, status, body, interaction=interaction, feedback=feedback)
            return JSON(body, status_code=status)
        canonical = json.dumps(fingerprint, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        r = state.reserve(key.key_id, idem, hashlib.sha256(canonical.encode()).hexdigest(), new_ref)
        if r.outcome == "conflict":
            raise HTTPException(409, "this Idempotency-Key was already used with a different request")
        if r.outcome == "in_progress":
            raise HTTPException(409, "a request with this Idempotency-Key is in progress; retry later",
                                headers={"Retry-After": "1"})
        if r.outcome == "replay":
            return JSON(r.response, status_code=r.status, headers={"Idempotent-Replayed": "true"})
        try:
            status, body, interaction, feedback = write(r.ref)
        except Exception:
            state.release(key.key_id, idem)  # the append is the last step of write: nothing was stored
            raise
        state.finish(key.key_id, idem, status, body, interaction=interaction, feedback=feedback)
        return JSON(body, status_code=status)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/interactions", status_code=201, response_model=InteractionOut,
              responses={409: {"description": "Idempotency-Key reused"}, 413: {"description": "body too large"}})
    def post_interaction(body: InteractionIn, key: Caller, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Append one interaction to today's landing file; its id carries its day."""
        app_id = app_scope(key, body.app_id, write=True)

        def write(ref: str):
            iid = logger.log(body.user_message, body.response, session_id=body.session_id, user_id=body.user_id,
                             model=body.model, metadata=body.metadata, system_prompt=body.system_prompt,
                             interaction_id=ref, app_id=app_id)
            day = day_of_id(iid).isoformat()
            return 201, {"interaction_id": iid, "day": day, "app_id": app_id}, (iid, app_id, body.user_id, day, key.key_id), None

        fingerprint = {"op": "interaction", "app": app_id, "body": body.model_dump()}
        return idempotent(key, idempotency_key, fingerprint, uuid7_hex(_now()), write)

    @app.post("/v1/feedback", status_code=201, response_model=FeedbackOut,
              responses={404: {"description": "interaction unknown to this key"}, 409: {"description": "Idempotency-Key reused"}})
    def post_feedback(body: FeedbackIn, key: Caller, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Append feedback into the interaction's day folder, where the conversations source joins it."""
        known = state.interaction(body.interaction_id)  # (app_id, user_id, day) if written through this API
        if not key.is_admin and (known is None or known[0] != key.app_id):
            raise HTTPException(404, "unknown interaction")  # another app's interaction looks the same as none
        app_id = known[0] if known else None
        day = date.fromisoformat(known[2]) if known else day_of_id(body.interaction_id) or _now().date()

        def write(ref: str):
            fid = logger.feedback(body.interaction_id, body.kind, text=body.text, comment=body.comment,
                                  user_id=body.user_id, day=day, app_id=app_id, feedback_id=ref)
            out = {"feedback_id": fid, "interaction_id": body.interaction_id, "day": day.isoformat()}
            return 201, out, None, (fid, body.interaction_id, app_id, body.kind, day.isoformat())

        fingerprint = {"op": "feedback", "app": app_id, "body": body.model_dump()}
        return idempotent(key, idempotency_key, fingerprint, uuid7_hex(_now()), write)

    @app.get("/v1/users/{user_id}/interactions", responses={404: {"description": "no interactions visible to this key"}})
    def get_user_interactions(user_id: UserId, key: Caller, app_id: AppScope = None,
                              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """A user's captured interactions with their feedback, newest first, from the landing files."""
        scope = app_scope(key, app_id, write=False)
        items = user_interactions(cfg.landing, user_id, scope, limit)
        if not items:
            raise HTTPException(404, "no interactions for this user")
        return {"user_id": user_id, "app_id": scope, "from": "landing", "count": len(items), "interactions": items}

    @app.delete("/v1/users/{user_id}", status_code=202, response_model=DeletionOut)
    def delete_user(user_id: UserId, key: Caller, app_id: AppScope = None,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """Queue the deletion of a user's data (an app key: its app's data; an admin key: all apps unless app_id)."""
        scope = app_scope(key, app_id, write=False)

        def write(ref: str):
            req = queue_deletion(cfg.deletions, user_id, scope, key.key_id, key.role, fsync=cfg.fsync, request_id=ref)
            return 202, {k: req[k] for k in DeletionOut.model_fields}, None, None

        return idempotent(key, idempotency_key, {"op": "delete", "user": user_id, "app": scope}, uuid7_hex(_now()), write)

    @app.get("/v1/readiness/{source}")
    def get_readiness(source: Source, key: Caller) -> dict[str, Any]:
        """A 0-100 training-readiness score of one source, with its inputs and where they came from."""
        return readiness(cfg.home, source, cfg.readiness_target)

    @app.get("/v1/stats")
    def get_stats(key: Caller) -> dict[str, Any]:
        """Counts of what this API captured (its index), for the caller's app or, for admin keys, all apps."""
        out = {"from": "api index (records written through this API)", "app_id": None if key.is_admin else key.app_id,
               **state.stats(key.app_id, all_apps=key.is_admin)}
        out["deletion_requests"] = deletion_requests(cfg.deletions, None if key.is_admin else key.app_id)
        return out

    return app
