"""apply_filters: named rules, the first failing one recorded with its score and threshold."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.filters import FilterSettings, apply_filters, build_rules
from corpus_platform.schema import empty_examples, examples_frame, make_example

DAY = date(2026, 1, 2)
AT = datetime(2026, 1, 2, 8, 30)
GOOD_PROMPT = "What do cats like to do?"
GOOD_ANSWER = "Cats like to sleep, play with string and watch birds."
RULE_ORDER = ["has_user_turn", "has_assistant_turn", "ends_with_assistant_reply", "empty_turn", "min_response_chars", "max_total_chars",
              "min_alpha_ratio",
              # content rules (test_filters_quality.py)
              "safety_keywords", "toxicity", "language", "spam_keywords", "max_urls", "media_placeholders",
              "min_distinct_words", "generic_phrase_share",
              "gopher_min_words", "gopher_max_words", "gopher_min_avg_word_length", "gopher_max_avg_word_length",
              "gopher_hash_ratio", "gopher_ellipsis_ratio", "gopher_bullet_lines", "gopher_ellipsis_lines",
              "gopher_alpha_words", "gopher_stop_words",
              "rep_dup_para_frac", "rep_dup_para_char_frac", "rep_dup_line_frac", "rep_dup_line_char_frac",
              "rep_top_2_gram", "rep_top_3_gram", "rep_top_4_gram",
              "rep_dup_5_gram", "rep_dup_6_gram", "rep_dup_7_gram", "rep_dup_8_gram", "rep_dup_9_gram", "rep_dup_10_gram"]


def basic(**thresholds) -> FilterSettings:
    """Only the basic rules: the content rules (test_filters_quality.py) would also reject the
    degenerate texts ('a' * 10_000, 'word ' * 2500) these tests use to probe one threshold."""
    return FilterSettings(**thresholds, profiles={"*": {name: False for name in RULE_ORDER[7:]}})


def ex(source_id: str, *turns: tuple[str, str], source: str = "conversations") -> dict:
    return make_example(source=source, source_id=source_id, day=DAY, collected_at=AT,
                        messages=[{"role": r, "content": c} for r, c in turns])


def good(source_id: str = "good") -> dict:
    return ex(source_id, ("user", GOOD_PROMPT), ("assistant", GOOD_ANSWER))


def decide(rows: list[dict], settings: FilterSettings = FilterSettings()) -> tuple[pl.DataFrame, pl.DataFrame]:
    return apply_filters(examples_frame(rows), settings)


def only_decision(rows: list[dict], settings: FilterSettings = FilterSettings()) -> dict:
    _, decisions = decide(rows, settings)
    assert decisions.height == 1
    return decisions.row(0, named=True)


def test_rules_are_in_documented_order():
    assert [r.name for r in build_rules(FilterSettings())] == RULE_ORDER


def test_well_formed_example_passes_every_rule():
    kept, decisions = decide([good()])
    assert kept.height == 1
    d = decisions.row(0, named=True)
    assert d["stage"] == "filter" and d["decision"] == "kept"
    assert d["rule"] is None and d["score"] is None and d["threshold"] is None and d["duplicate_of"] is None


# (planted example, rule, score, threshold) with the default settings.
LONG_ANSWER = "word " * 2500  # 12,500 chars of letters and spaces
PLANTED = [
    (ex("no-user", ("assistant", GOOD_ANSWER)), "has_user_turn", 0.0, 1.0),
    (ex("system-only-prompt", ("system", GOOD_PROMPT), ("assistant", GOOD_ANSWER)), "has_user_turn", 0.0, 1.0),
    (ex("no-assistant", ("user", GOOD_PROMPT)), "has_assistant_turn", 0.0, 1.0),
    (ex("no-turns"), "has_user_turn", 0.0, 1.0),
    (ex("greeting-first", ("assistant", GOOD_ANSWER), ("user", GOOD_PROMPT)), "ends_with_assistant_reply", 0.0, 1.0),
    (ex("unanswered", ("user", GOOD_PROMPT), ("assistant", GOOD_ANSWER), ("user", "And dogs?")),
     "ends_with_assistant_reply", 0.0, 1.0),
    (ex("empty-user", ("user", ""), ("assistant", GOOD_ANSWER)), "empty_turn", 1.0, 0.0),
    (ex("two-empty", ("system", ""), ("user", ""), ("assistant", GOOD_ANSWER)), "empty_turn", 2.0, 0.0),
    (ex("ok", ("user", GOOD_PROMPT), ("assistant", "ok")), "min_response_chars", 2.0, 10.0),
    (ex("short-second", ("user", GOOD_PROMPT), ("assistant", GOOD_ANSWER), ("user", "And dogs?"),
        ("assistant", "Yes dogs")), "min_response_chars", 8.0, 10.0),
    (ex("long", ("user", GOOD_PROMPT), ("assistant", LONG_ANSWER)), "max_total_chars",
     float(len(GOOD_PROMPT) + len(LONG_ANSWER)), 12_000.0),
    (ex("digits", ("user", GOOD_PROMPT), ("assistant", "1234567890 !!!! ####")), "min_alpha_ratio", 0.0, 0.3),
    (ex("mostly-digits", ("user", GOOD_PROMPT), ("assistant", "1234567890 abc")), "min_alpha_ratio", 3 / 13, 0.3),
]


@pytest.mark.parametrize(("row", "rule", "score", "threshold"), PLANTED, ids=[p[0]["source_id"] for p in PLANTED])
def test_each_rule_rejects_its_planted_case(row, rule, score, threshold):
    kept, decisions = decide([row])
    assert kept.height == 0
    d = decisions.row(0, named=True)
    assert d["decision"] == "rejected" and d["stage"] == "filter"
    assert d["rule"] == rule
    assert d["score"] == pytest.approx(score)
    assert d["threshold"] == threshold
    assert d["duplicate_of"] is None
    assert (d["example_id"], d["source"], d["date"]) == (row["example_id"], row["source"], row["date"])


@pytest.mark.parametrize(
    ("turns", "rule"),
    [
        # fails has_user_turn and min_response_chars
        ([("assistant", "ok")], "has_user_turn"),
        # fails empty_turn, min_response_chars and min_alpha_ratio
        ([("user", "Hi there"), ("assistant", "")], "empty_turn"),
        # fails min_response_chars and min_alpha_ratio
        ([("user", GOOD_PROMPT), ("assistant", "42")], "min_response_chars"),
        # fails max_total_chars and min_alpha_ratio
        ([("user", GOOD_PROMPT), ("assistant", "7" * 13_000)], "max_total_chars"),
        # fails has_assistant_turn and empty_turn
        ([("user", "")], "has_assistant_turn"),
    ],
)
def test_first_failing_rule_wins(turns, rule):
    d = only_decision([ex("multi", *turns)])
    assert d["decision"] == "rejected" and d["rule"] == rule
    assert d["threshold"] == {r.name: float(r.threshold) for r in build_rules(FilterSettings())}[rule]


def test_thresholds_are_inclusive():
    at_min = ex("ten", ("user", GOOD_PROMPT), ("assistant", "abcdefghij"))  # exactly 10 chars
    below_min = ex("nine", ("user", GOOD_PROMPT), ("assistant", "abcdefghi"))
    at_max = ex("max", ("user", "q" * 2000), ("assistant", "a" * 10_000))  # exactly 12,000 chars
    above_max = ex("max+1", ("user", "q" * 2001), ("assistant", "a" * 10_000))
    kept, decisions = decide([at_min, below_min, at_max, above_max], basic())
    assert set(kept["source_id"]) == {"ten", "max"}
    rules = dict(zip(decisions["example_id"], decisions["rule"]))
    assert rules[below_min["example_id"]] == "min_response_chars"
    assert rules[above_max["example_id"]] == "max_total_chars"


@pytest.mark.parametrize(
    ("settings", "row", "rule", "threshold"),
    [
        (FilterSettings(min_response_chars=100), good(), "min_response_chars", 100.0),
        (FilterSettings(max_total_chars=50), good(), "max_total_chars", 50.0),
        (FilterSettings(min_alpha_ratio=0.95), ex("punct", ("user", "Hi"), ("assistant", "Sure, it's 3 o'clock!")),
         "min_alpha_ratio", 0.95),
    ],
)
def test_tighter_threshold_from_settings_rejects(settings, row, rule, threshold):
    assert only_decision([row])["decision"] == "kept"  # kept under the defaults
    d = only_decision([row], settings)
    assert (d["decision"], d["rule"], d["threshold"]) == ("rejected", rule, threshold)


@pytest.mark.parametrize(
    ("settings", "row"),
    [
        (basic(min_response_chars=2), ex("ok", ("user", GOOD_PROMPT), ("assistant", "ok"))),
        (basic(max_total_chars=20_000), ex("long", ("user", GOOD_PROMPT), ("assistant", LONG_ANSWER))),
        (basic(min_alpha_ratio=0.2), ex("mostly-digits", ("user", GOOD_PROMPT), ("assistant", "1234567890 abc"))),
    ],
)
def test_looser_threshold_from_settings_keeps(settings, row):
    assert only_decision([row])["decision"] == "rejected"
    assert only_decision([row], settings)["decision"] == "kept"


def mixed_rows() -> list[dict]:
    return [good("g1"), good("g2"), *[p[0] for p in PLANTED], ex("g3", ("user", "Explain tides."),
            ("assistant", "Tides come from the moon's gravity pulling on the oceans."))]


def test_decisions_cover_every_input_row_exactly_once():
    rows = mixed_rows()
    df = examples_frame(rows)
    kept, decisions = apply_filters(df, FilterSettings())
    assert decisions.height == df.height
    assert decisions["example_id"].n_unique() == df.height
    assert set(decisions["example_id"]) == set(df["example_id"])
    assert set(decisions["stage"]) == {"filter"}
    assert decisions.filter(pl.col("decision") == "kept")["example_id"].sort().to_list() == kept["example_id"].sort().to_list()
    assert set(kept["source_id"]) == {"g1", "g2", "g3"}
    rejected = decisions.filter(pl.col("decision") == "rejected")
    assert rejected.height == len(PLANTED)
    assert rejected["rule"].null_count() == 0 and rejected["score"].null_count() == 0
    assert rejected["threshold"].null_count() == 0


def test_kept_frame_keeps_input_columns_and_rows():
    df = examples_frame(mixed_rows()).with_columns(pl.lit("x").alias("extra"), pl.int_range(pl.len()).alias("n"))
    kept, _ = apply_filters(df, FilterSettings())
    assert kept.columns == df.columns
    assert kept.schema == df.schema
    assert not any(c.startswith("_") for c in kept.columns)
    expected = df.filter(pl.col("source_id").is_in(["g1", "g2", "g3"]))
    assert kept.sort("n").equals(expected.sort("n"))


def test_empty_frame():
    kept, decisions = apply_filters(empty_examples(), FilterSettings())
    assert kept.height == 0 and decisions.height == 0
    assert kept.columns == empty_examples().columns


def test_connector_drop_reason_is_rejected_first_as_a_source_rule():
    row = make_example(source="reddit", source_id="t1_x", day=date(2026, 1, 1),
                       messages=[{"role": "user", "content": GOOD_PROMPT}, {"role": "assistant", "content": "ok"}],
                       metadata={"drop_reason": "nsfw"})
    liked = make_example(source="twitter", source_id="t2", day=date(2026, 1, 1),
                         messages=[{"role": "user", "content": GOOD_PROMPT}, {"role": "assistant", "content": GOOD_ANSWER}],
                         metadata={"drop_reason": "reply_likes_below_min", "drop_score": 2, "drop_threshold": 5})
    kept, decisions = apply_filters(examples_frame([row, liked]), FilterSettings())
    assert kept.height == 0
    got = {d["rule"]: (d["score"], d["threshold"]) for d in decisions.iter_rows(named=True)}
    assert got == {"source:nsfw": (1.0, 0.0), "source:reply_likes_below_min": (2.0, 5.0)}
