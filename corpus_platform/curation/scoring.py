"""A transparent heuristic quality score from 1 to 10.

Each component lies in [0, 1] and is stored beside the score (`score_detail`), so a user can see why
an example scored what it did. The LLM judge of the curation issue adds a judged score next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from corpus_platform.curation.decisions import KEPT, REJECTED, decision_rows
from corpus_platform.curation.normalize import role_texts

DEFAULT_WEIGHTS = {"length": 0.30, "diversity": 0.25, "formatting": 0.20, "relevance": 0.10, "feedback": 0.15}
FEEDBACK_VALUE = {"thumbs_up": 1.0, "correction": 0.8, "edit": 0.8, "thumbs_down": 0.0, "report": 0.0}


@dataclass(frozen=True)
class ScoreSettings:
    min_quality: float = 3.0  # examples below are rejected by rule `min_quality_score`
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


def _components() -> dict[str, pl.Expr]:
    answer = role_texts("assistant").list.join("\n")
    prompt = role_texts("user").list.join("\n")
    chars = answer.str.len_chars().cast(pl.Float64)
    # Rises from 20 chars (0) to 300 (1) on a log scale, flat to 3,000, then decays to 0.5 at 12,000.
    rise = ((chars.clip(lower_bound=1).log10() - 1.30103) / (2.47712 - 1.30103)).clip(0.0, 1.0)
    fall = (1.0 - 0.5 * ((chars - 3000.0) / 9000.0)).clip(0.5, 1.0)
    words = answer.str.to_lowercase().str.extract_all(r"\w+")
    diversity = (words.list.n_unique() / words.list.len().clip(lower_bound=1)).cast(pl.Float64)
    starts_well = answer.str.contains(r"^[\p{Lu}\p{N}`\"'(\[*#-]").cast(pl.Float64)
    ends_well = answer.str.contains(r"[.!?)\]`\"'*:]\s*$").cast(pl.Float64)
    content_words = lambda e: e.str.to_lowercase().str.extract_all(r"\p{L}{4,}").list.unique()  # noqa: E731
    p_words, a_words = content_words(prompt), content_words(answer)
    overlap = (
        p_words.list.set_intersection(a_words).list.len()
        / p_words.list.len().clip(lower_bound=1)
    ).cast(pl.Float64)
    kind = pl.col("metadata").str.json_path_match("$.feedback.kind")
    feedback = kind.replace_strict(FEEDBACK_VALUE, default=0.5, return_dtype=pl.Float64)
    return {
        "length": (rise * fall).fill_null(0.0),
        "diversity": diversity.fill_null(0.0),
        "formatting": (0.5 * starts_well + 0.5 * ends_well).fill_null(0.0),
        "relevance": (overlap * 3.0).clip(0.0, 1.0).fill_null(0.0),
        "feedback": feedback.fill_null(0.5),
    }


def _weighted(comps: dict[str, pl.Expr], weights: dict[str, float]) -> pl.Expr:
    weighted = sum(comps[name] * w for name, w in weights.items()) / sum(weights.values())
    return (1.0 + 9.0 * weighted).round(3)


def quality_expr(weights: dict[str, float] | None = None) -> pl.Expr:
    """The 1-10 heuristic score as an expression (dedup's keep rule ranks with it before scoring)."""
    return _weighted(_components(), weights or DEFAULT_WEIGHTS)


def score_examples(df: pl.DataFrame, settings: ScoreSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(examples with quality_score and score_detail, kept and above min_quality; decision rows). The
    components are computed once, as columns, for both the score and its detail (half the work of
    evaluating the two expressions)."""
    names = [f"_c_{n}" for n in DEFAULT_WEIGHTS]
    comps = {n: pl.col(f"_c_{n}") for n in DEFAULT_WEIGHTS}
    scored = df.with_columns(**{f"_c_{n}": e for n, e in _components().items()}).with_columns(
        _weighted(comps, settings.weights or DEFAULT_WEIGHTS).alias("quality_score"),
        pl.struct([e.round(3).alias(n) for n, e in comps.items()]).struct.json_encode().alias("score_detail"),
    ).drop(names)
    low = pl.col("quality_score") < settings.min_quality
    kept, rejected = scored.filter(~low), scored.filter(low)
    decisions = pl.concat(
        [
            decision_rows(kept, stage="score", decision=KEPT, score=pl.col("quality_score"),
                          threshold=settings.min_quality),
            decision_rows(rejected, stage="score", decision=REJECTED, rule=pl.lit("min_quality_score"),
                          score=pl.col("quality_score"), threshold=settings.min_quality),
        ]
    )
    return kept, decisions
