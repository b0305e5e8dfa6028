"""Filters: small named rules, each with a score, a threshold and a direction (datatrove-style).

An example is rejected by the first rule it fails, and the decision row records that rule, its score
and its threshold. Rules are scored in their order, stage by stage (a run of expression rules, then each
model: toxicity, language, repetition), each stage only on the rows no earlier rule has rejected: a later
score cannot change a row's first failure, so the decisions are those of scoring everything, and the
models run on the rows that can still be kept (on the benchmark, toxicity already rejects half).

Thresholds are configuration. `FilterSettings` holds the defaults; `profiles` overrides them per
source ({source: {rule: threshold | true | false}}, "*" for every source), and each row is judged by
the profile of its own `source`, so a partition gets its source's profile and a mixed frame works too.
The defaults of the content rules are the published ones (datatrove's Gopher values); the shipped
profiles (`DEFAULT_PROFILES`) relax what was designed for web documents where chat replies are short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping

import polars as pl

from corpus_platform.curation import quality as q
from corpus_platform.curation.classifiers import ToxicitySettings, detect_languages, toxicity_scores
from corpus_platform.curation.decisions import KEPT, REJECTED, decision_rows
from corpus_platform.curation.normalize import role_texts
from corpus_platform.curation.repetition import DUP_N_GRAMS, TOP_N_GRAMS, repetition_stats

BASIC_RULES = ("has_user_turn", "has_assistant_turn", "ends_with_assistant_reply", "empty_turn",
               "min_response_chars", "max_total_chars", "min_alpha_ratio")

# datatrove GopherQualityFilter / GopherRepetitionFilter defaults (see quality.py and repetition.py).
GOPHER_QUALITY = {
    "gopher_min_words": ("min", 50), "gopher_max_words": ("max", 100_000),
    "gopher_min_avg_word_length": ("min", 3), "gopher_max_avg_word_length": ("max", 10),
    "gopher_hash_ratio": ("max", 0.1), "gopher_ellipsis_ratio": ("max", 0.1),
    "gopher_bullet_lines": ("max", 0.9), "gopher_ellipsis_lines": ("max", 0.3),
    "gopher_alpha_words": ("min", 0.8), "gopher_stop_words": ("min", 2),
}
GOPHER_REPETITION = {
    "rep_dup_para_frac": 0.3, "rep_dup_para_char_frac": 0.2, "rep_dup_line_frac": 0.3, "rep_dup_line_char_frac": 0.2,
    **{f"rep_top_{n}_gram": t for n, t in TOP_N_GRAMS}, **{f"rep_dup_{n}_gram": t for n, t in DUP_N_GRAMS},
}

# Chat replies are not web documents. A correct one-sentence answer has 5-15 words, numbers and
# maybe no Gopher stop word ("Each group gets 24 ÷ 3 = 8 marbles, because 3 × 8 = 24." has a
# letter-word share of 0.35), so every source gets a word floor of 3 (Gopher: 50) and no stop-word
# floor. Instruction and app-log sources (public, synthetic, conversations) also accept code,
# tables and arithmetic (letter-word share down to 0.25, mean word length down to 2), all-bullet
# answers ("List five interview questions") and short correct replies: their diversity floor is 2
# content words ("Restart the router.", "Chile's capital is Santiago." pass; "Of course." and
# "I don't know." do not). YouTube keeps the diversity floor of 8 (transcript answers are
# long); tweets (at most 280 characters) and reddit comment/reply pairs get 5: at 8, 65 % of the
# GoEmotions reddit comments would go, at 5, 35 %. Social sources get tighter URL limits. With these
# profiles the filters keep 93.9 % of alpaca-2k (as public), 91.4 % of hh-rlhf harmless (as
# conversations), 59.5 % of GoEmotions comments (as reddit replies) and 70 % of the Davidson
# "neither" tweets (as twitter: language drops 11 %, mostly slang, and the diversity floor 8 %).
_CHAT = {"gopher_min_words": 3, "gopher_stop_words": 0, "gopher_alpha_words": 0.5}
_INSTRUCTION = {**_CHAT, "gopher_alpha_words": 0.25, "gopher_min_avg_word_length": 2, "gopher_bullet_lines": False,
                "min_distinct_words": 2}
DEFAULT_PROFILES: dict[str, dict[str, float | bool]] = {
    "public": dict(_INSTRUCTION),
    "synthetic": dict(_INSTRUCTION),
    "conversations": dict(_INSTRUCTION),
    "reddit": {**_CHAT, "min_distinct_words": 5},
    "youtube": {**_CHAT, "max_urls": 2},
    "twitter": {**_CHAT, "max_urls": 1, "min_distinct_words": 5},
}


@dataclass(frozen=True)
class FilterSettings:
    min_response_chars: int = 10
    max_total_chars: int = 12_000
    min_alpha_ratio: float = 0.3
    allowed_languages: tuple[str, ...] = ("en",)
    min_language_confidence: float = 0.8  # relative confidence of an allowed language (classifiers.py)
    max_toxicity: float = 0.8
    toxicity: ToxicitySettings = field(default_factory=ToxicitySettings)
    max_safety_hits: int = 0
    safety_keywords: tuple[str, ...] = q.SAFETY_KEYWORDS
    max_spam_hits: int = 0
    spam_keywords: tuple[str, ...] = q.SPAM_KEYWORDS
    max_urls: int = 3
    max_media_placeholders: int = 0
    media_placeholders: tuple[str, ...] = q.MEDIA_PLACEHOLDERS
    min_distinct_words: int = 8
    max_generic_share: float = 0.5  # kept up to half: rejected when generic sentences are the majority
    generic_phrases: tuple[str, ...] = q.GENERIC_PHRASES
    repetition_min_words: int = 50  # n-gram repetition rules skip shorter replies (see repetition.py)
    profiles: Mapping[str, Mapping[str, float | bool]] = field(
        default_factory=lambda: {source: dict(rules) for source, rules in DEFAULT_PROFILES.items()})

    @property
    def toxicity_backend(self) -> str:
        return self.toxicity.backend


@dataclass(frozen=True)
class Rule:
    name: str
    direction: Literal["min", "max"]  # keep when score >= threshold ("min") or <= threshold ("max")
    threshold: float | None  # the default for sources without a profile value; None: off
    score: Callable[[], pl.Expr]
    why: str
    per_source: Mapping[str, float | None] = field(default_factory=dict)  # None: off for that source
    model: str = ""  # the model columns its score reads (MODEL_COLUMNS); "": a plain expression

    def threshold_expr(self) -> pl.Expr:
        """The row's threshold: its source's profile value, else the default (null: rule off)."""
        out = pl.lit(self.threshold, dtype=pl.Float64)
        for source, t in self.per_source.items():
            out = pl.when(pl.col("source") == source).then(pl.lit(t, dtype=pl.Float64)).otherwise(out)
        return out

    def passes(self) -> pl.Expr:
        s, t = pl.col(f"_score_{self.name}"), self.threshold_expr()
        return (t.is_null() | (s >= t if self.direction == "min" else s <= t)).fill_null(True)


def _assistant() -> pl.Expr:
    return role_texts("assistant")


def _all_contents() -> pl.Expr:
    return pl.col("messages").list.eval(pl.element().struct.field("content"))


def _basic_rules(s: FilterSettings) -> list[tuple]:
    assistant_text = _assistant().list.join("\n")
    return [
        ("has_user_turn", "min", 1, lambda: role_texts("user").list.len().cast(pl.Float64),
         "a training example needs a prompt"),
        ("has_assistant_turn", "min", 1, lambda: _assistant().list.len().cast(pl.Float64),
         "a training example needs a response"),
        ("ends_with_assistant_reply", "min", 1,
         lambda: ((pl.col("messages").list.last().struct.field("role") == "assistant")
                  & (role_texts("user").list.len() > 0)).cast(pl.Float64),
         "the training target is an assistant reply to a user turn"),
        ("empty_turn", "max", 0,
         lambda: _all_contents().list.eval(pl.element().str.len_chars() == 0).list.sum().cast(pl.Float64),
         "an empty turn teaches the model to say nothing"),
        ("min_response_chars", "min", s.min_response_chars,
         lambda: _assistant().list.eval(pl.element().str.len_chars()).list.min().cast(pl.Float64),
         "one-word replies ('ok') carry no signal"),
        ("max_total_chars", "max", s.max_total_chars,
         lambda: _all_contents().list.eval(pl.element().str.len_chars()).list.sum().cast(pl.Float64),
         "over-long examples are truncated in training and usually scraped noise"),
        ("min_alpha_ratio", "min", s.min_alpha_ratio,
         lambda: (
             assistant_text.str.count_matches(r"\p{L}")
             / (assistant_text.str.len_chars() - assistant_text.str.count_matches(r"\s")).clip(lower_bound=1)
         ).cast(pl.Float64),
         "responses of symbols and digits alone are not language"),
    ]


def _content_rules(s: FilterSettings) -> list[tuple]:
    answer, everything = pl.col("_answer"), pl.col("_all")
    gopher = q.gopher_quality_scores()
    return [
        ("safety_keywords", "max", s.max_safety_hits, lambda: q.phrase_hits(answer, s.safety_keywords),
         "instructions for self-harm or weapons must never become a training target"),
        ("toxicity", "max", s.max_toxicity, lambda: pl.col("_toxicity"),
         f"a model learns the tone of its targets (backend: {s.toxicity_backend})"),
        ("language", "min", s.min_language_confidence, lambda: pl.col("_lang_allowed_p"),  # prompt + reply
         f"the corpus is for {', '.join(s.allowed_languages)} only; mixed-language targets confuse a small model"),
        ("spam_keywords", "max", s.max_spam_hits, lambda: q.phrase_hits(everything, s.spam_keywords),
         "giveaways and follow-bait are scraped spam"),
        ("max_urls", "max", s.max_urls, q.url_count, "link lists are spam or navigation, not answers"),
        ("media_placeholders", "max", s.max_media_placeholders,
         lambda: q.phrase_hits(everything, s.media_placeholders),
         "a reply to an image we do not have cannot be learned"),
        ("min_distinct_words", "min", s.min_distinct_words, lambda: q.distinct_content_words(answer),
         "too few content words: filler ('yes that is right i think so')"),
        ("generic_phrase_share", "max", s.max_generic_share, lambda: q.generic_share(answer, s.generic_phrases),
         "boilerplate ('As an AI language model', 'I hope this helps') teaches nothing"),
        *[(name, d, t, (lambda e=gopher[name]: e), "Gopher quality heuristic (datatrove default)")
          for name, (d, t) in GOPHER_QUALITY.items()],
        *[(name, "max", t, (lambda c=name[4:]: pl.col(f"_rep_{c}")), "Gopher repetition heuristic (datatrove default)")
          for name, t in GOPHER_REPETITION.items()],
    ]


_MODEL_OF = {"toxicity": "toxicity", "language": "language", **{name: "repetition" for name in GOPHER_REPETITION}}
MODEL_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "toxicity": {"_toxicity": pl.Float64},
    "language": {"_lang": pl.Utf8, "_lang_p": pl.Float64, "_lang_allowed_p": pl.Float64},
    "repetition": {f"_rep_{c[4:]}": pl.Float64 for c in GOPHER_REPETITION},
}


def build_rules(s: FilterSettings) -> list[Rule]:
    specs = [*_basic_rules(s), *_content_rules(s)]
    names = {spec[0] for spec in specs}
    for source, profile in s.profiles.items():
        unknown = set(profile) - names
        if unknown:
            raise ValueError(f"profile {source!r} names unknown rules {sorted(unknown)}; rules: {sorted(names)}")
    rules = []
    for name, direction, threshold, score, why in specs:
        default = s.profiles.get("*", {}).get(name, threshold)
        per_source = {src: _threshold(p[name], threshold) for src, p in s.profiles.items() if src != "*" and name in p}
        rules.append(Rule(name, direction, _threshold(default, threshold), score, why, per_source,
                          _MODEL_OF.get(name, "")))
    return rules


def _threshold(value: float | bool | None, default: float) -> float | None:
    """A profile value: a number is the threshold, false turns the rule off, true keeps the default."""
    if value is False or value is None:
        return None
    return float(default) if value is True else float(value)


def _needs(rules: list[Rule], name: str) -> bool:
    rule = next((r for r in rules if r.name == name), None)
    return rule is not None and (rule.threshold is not None or any(v is not None for v in rule.per_source.values()))


def model_columns(df: pl.DataFrame, model: str, s: FilterSettings, rules: list[Rule]) -> pl.DataFrame:
    """`df` plus one model's columns (MODEL_COLUMNS[model]): the scores that are not plain expressions.
    Each runs over the unique texts of `df` only."""
    if df.height == 0:
        return df.with_columns([pl.lit(None, dtype=t).alias(n) for n, t in MODEL_COLUMNS[model].items()])
    if model == "language":
        if not s.allowed_languages:  # no language rule: nothing to detect
            return df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("_lang"), pl.lit(None, dtype=pl.Float64).alias("_lang_p"),
                                   pl.lit(1.0, dtype=pl.Float64).alias("_lang_allowed_p"))
        langs = detect_languages(df["_dialog"], s.allowed_languages)
        return df.with_columns(langs["lang"].alias("_lang"), langs["lang_p"].alias("_lang_p"),
                               langs["lang_allowed_p"].alias("_lang_allowed_p"))
    if model == "toxicity":
        return df.with_columns(toxicity_scores(df["_answer"], s.toxicity).alias("_toxicity") if _needs(rules, "toxicity")
                               else pl.lit(0.0, dtype=pl.Float64).alias("_toxicity"))
    tokens = df["_tokens"] if "_tokens" in df.columns else None  # the Gopher stage's, when it ran
    rep = repetition_stats(df["_answer"], min_words=s.repetition_min_words, tokens=tokens)
    return df.with_columns([rep[c].alias(f"_rep_{c}") for c in rep.columns])


def _stages(rules: list[Rule]) -> list[tuple[str, list[Rule]]]:
    """Consecutive rules grouped by the model they read ("" for runs of plain expressions)."""
    stages: list[tuple[str, list[Rule]]] = []
    for r in rules:
        if stages and stages[-1][0] == r.model:
            stages[-1][1].append(r)
        else:
            stages.append((r.model, [r]))
    return stages


def evaluate(df: pl.DataFrame, settings: FilterSettings) -> pl.DataFrame:
    """`df` plus the model columns and every rule's `_score_<rule>` (null where an earlier rule already
    rejected the row, so the score was not computed), and the first failure (`_rule`, `_score`,
    `_threshold`; null when kept). Kept rows have every score and model column."""
    rules = build_rules(settings)
    texts, tokens = q.text_columns()
    base = df.with_columns(texts).with_row_index("_i")
    # A connector that knows an item must not be trained on (NSFW, removed, bot, outside its collection
    # rules) keeps it as an example with `metadata.drop_reason`; it is rejected here, first, as
    # `source:<reason>`, so the decision record holds it like any other rule.
    meta = pl.col("metadata")
    drop = meta.str.json_path_match("$.drop_reason")
    live = base.filter(drop.is_null())
    parts, done = [], set()
    for model, stage in _stages(rules):
        if model and model not in done:
            live = model_columns(live, model, settings, rules)
        elif "_tokens" not in live.columns and any(r.name in GOPHER_QUALITY for r in stage):
            live = live.with_columns(tokens)
        names = [f"_score_{r.name}" for r in stage]
        live = live.with_columns([r.score().fill_null(0.0).cast(pl.Float64).alias(n) for r, n in zip(stage, names)])
        parts.append(live.select("_i", *(MODEL_COLUMNS[model] if model and model not in done else ()), *names))
        done.add(model)
        live = live.filter(pl.all_horizontal([r.passes() for r in stage]))
    scored = base
    for part in parts:
        scored = scored.join(part, on="_i", how="left", maintain_order="left")
    failed_rule = pl.lit(None, dtype=pl.Utf8)
    failed_score = pl.lit(None, dtype=pl.Float64)
    failed_threshold = pl.lit(None, dtype=pl.Float64)
    for r in reversed(rules):  # the first failing rule wins (a score not computed is null: it passes)
        fails = ~r.passes()
        failed_rule = pl.when(fails).then(pl.lit(r.name)).otherwise(failed_rule)
        failed_score = pl.when(fails).then(pl.col(f"_score_{r.name}")).otherwise(failed_score)
        failed_threshold = pl.when(fails).then(r.threshold_expr()).otherwise(failed_threshold)
    drop_score = meta.str.json_path_match("$.drop_score").cast(pl.Float64, strict=False).fill_null(1.0)
    drop_threshold = meta.str.json_path_match("$.drop_threshold").cast(pl.Float64, strict=False).fill_null(0.0)
    return scored.drop("_i").with_columns(
        pl.when(drop.is_not_null()).then(pl.lit("source:") + drop).otherwise(failed_rule).alias("_rule"),
        pl.when(drop.is_not_null()).then(drop_score).otherwise(failed_score).alias("_score"),
        pl.when(drop.is_not_null()).then(drop_threshold).otherwise(failed_threshold).alias("_threshold"),
    )


def split_decisions(scored: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    rejected = scored.filter(pl.col("_rule").is_not_null())
    kept = scored.filter(pl.col("_rule").is_null())
    decisions = pl.concat([
        decision_rows(kept, stage="filter", decision=KEPT),
        decision_rows(rejected, stage="filter", decision=REJECTED,
                      rule=pl.col("_rule"), score=pl.col("_score"), threshold=pl.col("_threshold")),
    ])
    return kept.select(columns), decisions


def apply_filters(df: pl.DataFrame, settings: FilterSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns (kept examples, decision rows for every input example)."""
    return split_decisions(evaluate(df, settings), df.columns)
