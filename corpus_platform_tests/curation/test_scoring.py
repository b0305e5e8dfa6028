"""score_examples: a transparent 1-10 heuristic whose components are stored beside the score."""

from __future__ import annotations

import json
from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.scoring import DEFAULT_WEIGHTS, ScoreSettings, score_examples
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 4)
AT = datetime(2026, 1, 4, 10, 0)
COMPONENTS = {"length", "diversity", "formatting", "relevance", "feedback"}

PROMPT = "How do cats communicate with their owners?"
GOOD = (
    "Cats communicate with their owners through vocalizations, body language and scent. A slow blink signals "
    "trust, a raised tail shows a friendly greeting, and purring usually means contentment. Many cats also "
    "develop specific meows to ask for food or attention, which owners learn to recognise over time."
)
LOW = "ok ok ok ok ok ok ok ok ok ok ok ok"


def ex(source_id: str, answer: str, prompt: str = PROMPT, **metadata) -> dict:
    return make_example(source="conversations", source_id=source_id, day=DAY, collected_at=AT, metadata=metadata,
                        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])


def scores(rows: list[dict], settings: ScoreSettings = ScoreSettings(min_quality=0.0)) -> dict[str, float]:
    kept, _ = score_examples(examples_frame(rows), settings)
    return dict(zip(kept["source_id"], kept["quality_score"]))


def test_scores_lie_between_1_and_10():
    rows = [
        ex("good", GOOD), ex("low", LOW), ex("empty", ""), ex("huge", "Word " * 5000 + "end."),
        ex("symbols", "!!! ??? ..."), ex("up", GOOD, feedback={"kind": "thumbs_up"}),
        ex("down", LOW, feedback={"kind": "thumbs_down"}),
        make_example(source="conversations", source_id="no-turns", day=DAY, collected_at=AT, messages=[]),
    ]
    s = scores(rows)
    assert len(s) == len(rows)
    assert all(1.0 <= v <= 10.0 for v in s.values()), s


def test_extremes_reach_1_and_10_with_feedback_only_weights():
    settings = ScoreSettings(min_quality=0.0, weights={"feedback": 1.0})
    s = scores([ex("up", LOW, feedback={"kind": "thumbs_up"}), ex("down", GOOD, feedback={"kind": "thumbs_down"}),
                ex("none", GOOD)], settings)
    assert s == {"up": 10.0, "down": 1.0, "none": 5.5}


def test_informative_answer_beats_low_effort_one():
    s = scores([ex("good", GOOD), ex("low", LOW)])
    assert s["good"] > s["low"] + 2.0
    assert s["good"] >= 6.0 and s["low"] <= 4.0


def test_feedback_orders_scores_all_else_equal():
    s = scores([
        ex("up", GOOD, feedback={"kind": "thumbs_up"}),
        ex("none", GOOD),
        ex("down", GOOD, feedback={"kind": "thumbs_down"}),
        ex("unknown", GOOD, feedback={"kind": "shrug"}),
    ])
    assert s["up"] > s["none"] > s["down"]
    assert s["unknown"] == s["none"]  # an unknown kind is neutral
    assert s["up"] - s["none"] == pytest.approx(9 * 0.15 * 0.5, abs=2e-3)


def test_score_detail_is_json_with_the_five_components():
    kept, _ = score_examples(examples_frame([ex("good", GOOD), ex("low", LOW, feedback={"kind": "thumbs_up"})]),
                             ScoreSettings(min_quality=0.0))
    for score, detail in zip(kept["quality_score"], kept["score_detail"]):
        parts = json.loads(detail)
        assert set(parts) == COMPONENTS
        assert all(0.0 <= v <= 1.0 for v in parts.values())
        weighted = sum(parts[k] * w for k, w in DEFAULT_WEIGHTS.items()) / sum(DEFAULT_WEIGHTS.values())
        assert score == pytest.approx(1 + 9 * weighted, abs=0.01)  # the detail explains the score
    low = json.loads(kept.filter(pl.col("source_id") == "low")["score_detail"][0])
    assert low["feedback"] == 1.0
    assert low["diversity"] == pytest.approx(1 / 12, abs=1e-3)  # one distinct word of twelve
    assert low["formatting"] == 0.0  # lower-case start, no closing punctuation


def test_min_quality_rejects_with_rule_score_and_threshold():
    s = scores([ex("good", GOOD), ex("low", LOW)])
    threshold = round((s["good"] + s["low"]) / 2, 2)
    df = examples_frame([ex("good", GOOD), ex("low", LOW)])
    kept, decisions = score_examples(df, ScoreSettings(min_quality=threshold))
    assert kept["source_id"].to_list() == ["good"]
    assert kept.columns == [*df.columns, "quality_score", "score_detail"]
    assert decisions.height == 2 and set(decisions["stage"]) == {"score"}
    d = {r["example_id"]: r for r in decisions.iter_rows(named=True)}
    low = d[df.filter(pl.col("source_id") == "low")["example_id"][0]]
    assert (low["decision"], low["rule"]) == ("rejected", "min_quality_score")
    assert low["score"] == s["low"] and low["threshold"] == threshold
    good = d[df.filter(pl.col("source_id") == "good")["example_id"][0]]
    assert (good["decision"], good["rule"]) == ("kept", None)
    assert good["score"] == s["good"] and good["threshold"] == threshold


def test_min_quality_is_inclusive():
    s = scores([ex("low", LOW)])["low"]
    kept, decisions = score_examples(examples_frame([ex("low", LOW)]), ScoreSettings(min_quality=s))
    assert kept.height == 1 and decisions["decision"].to_list() == ["kept"]
    kept, decisions = score_examples(examples_frame([ex("low", LOW)]), ScoreSettings(min_quality=s + 0.001))
    assert kept.height == 0 and decisions["decision"].to_list() == ["rejected"]


def test_default_min_quality_is_3():
    assert ScoreSettings().min_quality == 3.0
    s = scores([ex("low", LOW, feedback={"kind": "thumbs_down"})])["low"]
    assert s < 3.0
    kept, decisions = score_examples(examples_frame([ex("low", LOW, feedback={"kind": "thumbs_down"})]), ScoreSettings())
    assert kept.height == 0 and decisions["threshold"].to_list() == [3.0]


@pytest.mark.parametrize("weights", [None, {"length": 2.0, "relevance": 1.0}])
def test_score_equals_the_keep_rule_expression_and_adds_two_columns(weights):
    """score_examples computes the components once as columns; dedup's keep rule ranks with quality_expr
    before scoring: both must give the same number, and no helper column may leak."""
    from corpus_platform.curation.scoring import quality_expr

    df = examples_frame([ex("good", GOOD), ex("low", LOW), ex("empty", ""), ex("up", GOOD, feedback={"kind": "thumbs_up"}),
                         ex("other", "Dogs bark. " * 40, prompt="Why do cats purr at night when sleeping?")])
    settings = ScoreSettings(min_quality=0.0, weights=weights) if weights else ScoreSettings(min_quality=0.0)
    kept, _ = score_examples(df, settings)
    assert kept.columns == df.columns + ["quality_score", "score_detail"]
    expected = df.select(quality_expr(weights))
    assert kept["quality_score"].to_list() == expected.to_series().to_list()
    assert len(set(kept["quality_score"])) >= 4  # the rows differ: the comparison is not vacuous
    w = weights or DEFAULT_WEIGHTS
    for score, detail in zip(kept["quality_score"], kept["score_detail"]):
        parts = json.loads(detail)
        assert score == pytest.approx(1 + 9 * sum(parts[n] * v for n, v in w.items()) / sum(w.values()), abs=0.01)
