"""Key parsing and the token bucket, without a server: errors never echo a secret."""

from __future__ import annotations

import pytest

from corpus_platform.api.config import ApiConfig, parse_keys
from corpus_platform.api.security import RateLimiter, find_key

SECRET = "s3cret-s3cret-s3cret"


def test_keys_parse_and_match_in_constant_time_form():
    keys = tuple(parse_keys(f"a:{SECRET}:app:shop, ops:{SECRET}-admin:admin"))
    assert [(k.key_id, k.role, k.app_id) for k in keys] == [("a", "app", "shop"), ("ops", "admin", None)]
    assert SECRET not in repr(keys)
    assert find_key(keys, SECRET).key_id == "a" and find_key(keys, SECRET + "-admin").is_admin
    assert find_key(keys, SECRET[:-1]) is None and find_key(keys, None) is None and find_key(keys, "") is None


@pytest.mark.parametrize("spec,message", [
    (f"a:{SECRET}", "expected key_id:secret:role"),
    ("a:short:admin", "at least 16"),
    (f"a:{SECRET}:root", "role must be app or admin"),
    (f"a:{SECRET}:app", "must name its app"),
    (f"a b:{SECRET}:admin", "key id must match"),
    (f"a:{SECRET}:admin,a:{SECRET}x:admin", "appears twice"),
])
def test_bad_key_specs_name_the_key_not_the_secret(spec, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_keys(spec)
    assert SECRET not in str(e.value) and "short" not in str(e.value)


def test_config_refuses_to_run_without_keys(tmp_path):
    with pytest.raises(ValueError, match="CORPUS_API_KEYS is empty"):
        ApiConfig.from_env({"CORPUS_HOME": str(tmp_path)})
    cfg = ApiConfig.from_env({"CORPUS_HOME": str(tmp_path), "CORPUS_API_KEYS": f"a:{SECRET}:admin",
                              "CORPUS_API_RATE": "5:10", "CORPUS_API_KEY_RATES": "a=1:2"})
    assert cfg.rate == (5.0, 10.0) and cfg.key_rates == {"a": (1.0, 2.0)} and cfg.max_body_bytes == 65536
    assert cfg.landing == tmp_path / "landing" / "conversations"


def test_token_bucket(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("corpus_platform.api.security.time.monotonic", lambda: now[0])
    limiter = RateLimiter((2.0, 3.0))
    assert [limiter.take("k") for _ in range(3)] == [None, None, None]
    assert limiter.take("k") == pytest.approx(0.5)  # empty: one token every 0.5 s
    assert limiter.take("other") is None  # buckets are per key
    now[0] += 0.5
    assert limiter.take("k") is None and limiter.take("k") == pytest.approx(0.5)
