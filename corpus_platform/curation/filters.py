"""Filters: small named rules, each with a score, a threshold and a direction (datatrove-style).

Every rule is scored for every example in one vectorized pass; an example is rejected by the first
rule it fails, and the decision row records that rule, its score and its threshold. Later curation
work adds rules (language, toxicity, Gopher quality...) by appending to `build_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import polars as pl

from corpus_platform.curation.decisions import KEPT, REJECTED, decision_rows
from corpus_platform.curation.normalize import role_texts


@dataclass(frozen=True)
class FilterSettings:
    min_response_chars: int = 10
    max_total_chars: int = 12_000
    min_alpha_ratio: float = 0.3


@dataclass(frozen=True)
class Rule:
    name: str
    direction: Literal["min", "max"]  # keep when score >= threshold ("min") or <= threshold ("max")
    threshold: float
    score: Callable[[], pl.Expr]
    why: str

    def passes(self) -> pl.Expr:
        s = pl.col(f"_score_{self.name}")
        return s >= self.threshold if self.direction == "min" else s <= self.threshold


def _assistant() -> pl.Expr:
    return role_texts("assistant")


def _all_contents() -> pl.Expr:
    return pl.col("messages").list.eval(pl.element().struct.field("content"))


def build_rules(s: FilterSettings) -> list[Rule]:
    assistant_text = _assistant().list.join("\n")
    return [
        Rule("has_user_turn", "min", 1, lambda: role_texts("user").list.len().cast(pl.Float64),
             "a training example needs a prompt"),
        Rule("has_assistant_turn", "min", 1, lambda: _assistant().list.len().cast(pl.Float64),
             "a training example needs a response"),
        Rule("ends_with_assistant_reply", "min", 1,
             lambda: ((pl.col("messages").list.last().struct.field("role") == "assistant")
                      & (role_texts("user").list.len() > 0)).cast(pl.Float64),
             "the training target is an assistant reply to a user turn"),
        Rule("empty_turn", "max", 0,
             lambda: _all_contents().list.eval(pl.element().str.len_chars() == 0).list.sum().cast(pl.Float64),
             "an empty turn teaches the model to say nothing"),
        Rule("min_response_chars", "min", s.min_response_chars,
             lambda: _assistant().list.eval(pl.element().str.len_chars()).list.min().cast(pl.Float64),
             "one-word replies ('ok') carry no signal"),
        Rule("max_total_chars", "max", s.max_total_chars,
             lambda: _all_contents().list.eval(pl.element().str.len_chars()).list.sum().cast(pl.Float64),
             "over-long examples are truncated in training and usually scraped noise"),
        Rule("min_alpha_ratio", "min", s.min_alpha_ratio,
             lambda: (
                 assistant_text.str.count_matches(r"\p{L}")
                 / (assistant_text.str.len_chars() - assistant_text.str.count_matches(r"\s")).clip(lower_bound=1)
             ).cast(pl.Float64),
             "responses of symbols and digits alone are not language"),
    ]


def apply_filters(df: pl.DataFrame, settings: FilterSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns (kept examples, decision rows for every input example)."""
    rules = build_rules(settings)
    scored = df.with_columns([r.score().fill_null(0.0).alias(f"_score_{r.name}") for r in rules])
    failed_rule = pl.lit(None, dtype=pl.Utf8)
    failed_score = pl.lit(None, dtype=pl.Float64)
    failed_threshold = pl.lit(None, dtype=pl.Float64)
    for r in reversed(rules):  # the first failing rule wins
        fails = ~r.passes()
        failed_rule = pl.when(fails).then(pl.lit(r.name)).otherwise(failed_rule)
        failed_score = pl.when(fails).then(pl.col(f"_score_{r.name}")).otherwise(failed_score)
        failed_threshold = pl.when(fails).then(pl.lit(float(r.threshold))).otherwise(failed_threshold)
    # A connector that knows an item must not be trained on (NSFW, removed, bot, outside its collection
    # rules) keeps it as an example with `metadata.drop_reason`; it is rejected here, first, as
    # `source:<reason>`, so the decision record holds it like any other rule.
    meta = pl.col("metadata")
    drop = meta.str.json_path_match("$.drop_reason")
    drop_score = meta.str.json_path_match("$.drop_score").cast(pl.Float64, strict=False).fill_null(1.0)
    drop_threshold = meta.str.json_path_match("$.drop_threshold").cast(pl.Float64, strict=False).fill_null(0.0)
    scored = scored.with_columns(
        pl.when(drop.is_not_null()).then(pl.lit("source:") + drop).otherwise(failed_rule).alias("_rule"),
        pl.when(drop.is_not_null()).then(drop_score).otherwise(failed_score).alias("_score"),
        pl.when(drop.is_not_null()).then(drop_threshold).otherwise(failed_threshold).alias("_threshold"),
    )
    rejected = scored.filter(pl.col("_rule").is_not_null())
    kept = scored.filter(pl.col("_rule").is_null())
    decisions = pl.concat(
        [
            decision_rows(kept, stage="filter", decision=KEPT),
            decision_rows(
                rejected, stage="filter", decision=REJECTED,
                rule=pl.col("_rule"), score=pl.col("_score"), threshold=pl.col("_threshold"),
            ),
        ]
    )
    return kept.select(df.columns), decisions
