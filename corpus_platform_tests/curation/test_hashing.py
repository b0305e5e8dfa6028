"""sha256_hex matches hashlib row for row; unit_interval maps digests into [0, 1) deterministically."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from corpus_platform.curation.hashing import sha256_hex, unit_interval


def reference(values: list[str]) -> list[str]:
    return [hashlib.sha256(v.encode("utf-8")).hexdigest() for v in values]


@pytest.mark.parametrize(
    "values",
    [
        ["hello", "world", "The quick brown fox"],
        ["Ｈｅｌｌｏ", "ﬁ", "naïve café", "日本語のテキスト", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "a\x1fb", "\u00a0\u200b"],
        ["", " ", "\n"],
    ],
    ids=["ascii", "unicode", "empty-and-blank"],
)
def test_sha256_hex_equals_hashlib(values):
    out = sha256_hex(pl.Series("text", values))
    assert out.dtype == pl.Utf8
    assert out.name == "text"
    assert out.to_list() == reference(values)


def test_empty_string_digest():
    assert sha256_hex(pl.Series([""])).to_list() == ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


def test_empty_series():
    out = sha256_hex(pl.Series("x", [], dtype=pl.Utf8))
    assert out.len() == 0 and out.dtype == pl.Utf8 and out.name == "x"


def test_preserves_order_over_10k_rows():
    values = [f"row-{i:05d}-{'x' * (i % 17)}" for i in range(10_000)][::-1]
    out = sha256_hex(pl.Series("v", values))
    assert out.len() == 10_000
    assert out.to_list() == reference(values)


def test_duplicates_hash_equal_and_non_strings_are_cast():
    out = sha256_hex(pl.Series([1, 2, 1]))
    assert out.to_list() == reference(["1", "2", "1"])


def test_unit_interval_bounds_and_known_values():
    digests = pl.Series(["0" * 64, "f" * 64, "8" + "0" * 63, "0000000000001" + "f" * 51])
    u = unit_interval(digests).to_list()
    assert u[0] == 0.0
    assert u[1] == (16**13 - 1) / 16**13 and u[1] < 1.0
    assert u[2] == 0.5
    assert u[3] == 1 / 16**13  # only the first 13 hex digits count


def test_unit_interval_in_range_deterministic_and_spread():
    digests = sha256_hex(pl.Series([f"key-{i}" for i in range(10_000)]))
    u = unit_interval(digests)
    assert u.dtype == pl.Float64
    assert u.null_count() == 0
    assert u.min() >= 0.0 and u.max() < 1.0
    assert unit_interval(digests).equals(u)
    assert unit_interval(sha256_hex(pl.Series([f"key-{i}" for i in range(10_000)]))).equals(u)
    assert 0.47 < u.mean() < 0.53  # uniform-ish, not all zeros
    assert u.n_unique() == 10_000
