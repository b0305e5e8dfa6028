"""API settings from the environment: keys, limits, rate buckets.

Keys come only from `CORPUS_API_KEYS` (`key_id:secret:role[:app]`, comma-separated; role is `app` or
`admin`, and an app key names its app). No keys means the server refuses to start: an open capture
endpoint would accept anyone's data. Secrets are kept as SHA-256 digests for constant-time comparison
and never appear in a repr or an error message.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from corpus_platform.settings import corpus_home

ROLES = ("app", "admin")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    role: str
    app_id: str | None
    digest: bytes = field(repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_keys(spec: str) -> list[ApiKey]:
    """`key_id:secret:role[:app]` entries separated by commas; errors name the key id, never the secret."""
    keys: list[ApiKey] = []
    for n, entry in enumerate((e.strip() for e in spec.split(",")), 1):
        if not entry:
            continue
        parts = entry.split(":")
        key_id = parts[0] if NAME.match(parts[0]) else f"#{n}"
        if len(parts) not in (3, 4):
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: expected key_id:secret:role[:app]")
        _, secret, role, *app = parts
        app_id = app[0] if app else None
        if not NAME.match(parts[0]):
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: key id must match {NAME.pattern}")
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: secret must have at least {MIN_SECRET_CHARS} characters")
        if role not in ROLES:
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: role must be app or admin")
        if role == "app" and not app_id:
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: an app key must name its app (key_id:secret:app:APP)")
        if app_id is not None and not NAME.match(app_id):
            raise ValueError(f"CORPUS_API_KEYS entry {key_id}: app id must match {NAME.pattern}")
        if any(k.key_id == key_id for k in keys):
            raise ValueError(f"CORPUS_API_KEYS: key id {key_id} appears twice")
        keys.append(ApiKey(key_id=key_id, role=role, app_id=app_id, digest=digest(secret)))
    return keys


def parse_rate(text: str) -> tuple[float, float]:
    """`rate:burst` in requests per second and bucket size, e.g. `50:100`."""
    rate, _, burst = text.partition(":")
    r, b = float(rate), float(burst or rate)
    if r <= 0 or b < 1:
        raise ValueError(f"rate limit {text!r}: need rate > 0 and burst >= 1")
    return r, b


@dataclass(frozen=True)
class ApiConfig:
    home: Path
    keys: tuple[ApiKey, ...]
    max_body_bytes: int = 64 * 1024
    rate: tuple[float, float] = (50.0, 100.0)  # per key: tokens per second, bucket size
    key_rates: dict[str, tuple[float, float]] = field(default_factory=dict)
    readiness_target: int = 1000  # interactions at which the volume component of readiness is full
    redact: bool = False
    gzip_rotate: bool = False
    fsync: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ApiConfig":
        env = dict(os.environ if env is None else env)
        keys = parse_keys(env.get("CORPUS_API_KEYS", ""))
        if not keys:
            raise ValueError("CORPUS_API_KEYS is empty: set key_id:secret:role[:app] entries (see README, 'Capture API')")
        flag = lambda name: env.get(name, "").lower() in ("1", "true", "yes")  # noqa: E731
        key_rates = {}
        for entry in filter(None, (e.strip() for e in env.get("CORPUS_API_KEY_RATES", "").split(","))):
            key_id, _, rate = entry.partition("=")
            key_rates[key_id] = parse_rate(rate)
        home = Path(env["CORPUS_HOME"]).resolve() if env.get("CORPUS_HOME") else corpus_home()
        return cls(
            home=home,
            keys=tuple(keys),
            max_body_bytes=int(env.get("CORPUS_API_MAX_BODY_BYTES", 64 * 1024)),
            rate=parse_rate(env.get("CORPUS_API_RATE", "50:100")),
            key_rates=key_rates,
            readiness_target=int(env.get("CORPUS_READINESS_TARGET", 1000)),
            redact=flag("CORPUS_API_REDACT"),
            gzip_rotate=flag("CORPUS_API_GZIP_ROTATE"),
            fsync=flag("CORPUS_API_FSYNC"),
        )

    @property
    def landing(self) -> Path:
        return self.home / "landing" / "conversations"

    @property
    def state_db(self) -> Path:
        return self.home / "api" / "state.sqlite3"

    @property
    def deletions(self) -> Path:
        return self.home / "requests" / "deletions.jsonl"
